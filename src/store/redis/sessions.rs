//! Sessions in Redis (the layout is in [`super`]).
//!
//! Validating a request is one `GET`; only a token with no live session costs a second one (its
//! tombstone, to say why). A revoked session's key is deleted, not overwritten.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use super::RedisBackend;
use crate::session::{
    derived::Derived,
    policy::ttl_until,
    record::{Millis, Rotated, SessionKey, SessionRecord, Stored},
    store::{Created, Limit, Page, Reached, Revocation, SessionStore, StoreError, Which},
    token::{slot_tag, TokenHash},
};

/// Lua shared by the scripts that end sessions. `KEYS[1]` is the user's index. Each session
/// to end has five keys from `KEYS[kb + 1]` — current key, its tombstone key, predecessor key,
/// its tombstone key (the predecessor pair repeats the current pair when there is none),
/// directory key — and four arguments from `ARGV[ab + 1]`: public id, expected current hash,
/// tombstone, tombstone TTL.
macro_rules! end_sessions_lua {
    () => {
        r"
        local function unchanged(n, ab)
          for i = 0, n - 1 do
            local a = ab + i * 4
            if redis.call('HGET', KEYS[1], ARGV[a + 1]) ~= ARGV[a + 2] then return false end
          end
          return true
        end
        local function end_sessions(n, kb, ab)
          for i = 0, n - 1 do
            local k, a = kb + i * 5, ab + i * 4
            local cur, cur_t, pred, pred_t, dir = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
            local tomb, ttl = ARGV[a + 3], ARGV[a + 4]
            redis.call('DEL', cur)
            redis.call('SET', cur_t, tomb, 'PX', ttl)
            if pred ~= cur and redis.call('DEL', pred) == 1 then
              redis.call('SET', pred_t, tomb, 'PX', ttl)
            end
            redis.call('HDEL', KEYS[1], ARGV[a + 1])
            redis.call('DEL', dir)
          end
        end
        "
    };
}

/// Stores a session, its index entry and its directory entry, within the user's limit.
/// `KEYS[1]` index, `KEYS[2]` the new session, `KEYS[3]` its directory entry, then the sessions
/// to end (see [`end_sessions_lua`]). `ARGV[1..=6]`: record, its TTL, public id, token hash,
/// index TTL, user id; `ARGV[7]`: the index size the caller decided on (`-1`: do not check);
/// then the sessions to end. If the index changed since the caller read it (a concurrent
/// sign-in, revocation or rotation), nothing is written and -1 tells it to read again — so
/// concurrent sign-ins can never pass the limit.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        end_sessions_lua!(),
        r"
        local expected = tonumber(ARGV[7])
        if expected >= 0 and redis.call('HLEN', KEYS[1]) ~= expected then return -1 end
        local n = (#KEYS - 3) / 5
        if not unchanged(n, 7) then return -1 end
        end_sessions(n, 3, 7)
        redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
        redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
        if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then
          redis.call('PEXPIRE', KEYS[1], ARGV[5])
        end
        redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[5])
        return n
        "
    ))
});

/// Overwrites a session only while it is active.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local v = redis.call('GET', KEYS[1])
        if v and string.sub(v, 1, 2) == 'A|' then
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          return 1
        end
        return 0
        ",
    )
});

/// Single-flight rotation: only the request that still finds the old token active and current
/// in the index creates a successor.
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local v = redis.call('GET', KEYS[1])
        if not v or string.sub(v, 1, 2) ~= 'A|' then return 0 end
        if redis.call('HGET', KEYS[3], ARGV[5]) ~= ARGV[7] then return 0 end
        redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
        redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
        redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
        return 1
        ",
    )
});

/// Ends a batch of one user's sessions (see [`end_sessions_lua`] for the layout). If any
/// index entry moved (a rotation raced us) nothing is written and -1 tells the caller to
/// re-read and retry.
static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        end_sessions_lua!(),
        r"
        local n = (#KEYS - 1) / 5
        if not unchanged(n, 0) then return -1 end
        end_sessions(n, 1, 0)
        return n
        "
    ))
});

/// A user's index as [`RedisSessions::read_index`] found it.
#[derive(Default)]
struct IndexRead {
    /// Public id, current token hash, record.
    live: Vec<(String, String, SessionRecord)>,
    /// Entries removed because their session expired.
    stale: usize,
    /// An entry pointed at a token rotated in the meantime: read again before deciding.
    moved: bool,
}

/// The session port on Redis.
#[derive(Clone)]
pub struct RedisSessions {
    backend: RedisBackend,
    /// Records decoded from the bytes a `GET` returned, reused while a session's stored bytes
    /// do not change (see [`Derived`]): decoding the JSON was the largest step of a session
    /// check after HTTP itself. Kept as bytes: an unchanged session is recognised without
    /// checking its UTF-8 again.
    decoded: Arc<Derived<Vec<u8>, Stored>>,
}

impl RedisSessions {
    pub fn new(backend: RedisBackend) -> Self {
        RedisSessions {
            backend,
            decoded: Arc::default(),
        }
    }
}

/// How many times a change that lost a race reads again before reporting a conflict.
const MAX_ATTEMPTS: u32 = 10;

impl RedisSessions {
    fn conn(&self) -> super::connection::Connection {
        self.backend.conn()
    }

    fn session_key(&self, slot: &str, hash: &str) -> String {
        self.backend.key(format_args!("{{{slot}}}:s:{hash}"))
    }

    /// [`Self::session_key`] of `hash`, put together piece by piece: every session check reads
    /// it, and formatting it (`format!` around `format_args!`, the hash's base64 in a `String`
    /// of its own) was about 2,000 instructions of each request.
    fn session_key_of(&self, slot: &str, hash: &TokenHash) -> String {
        let prefix = self.backend.prefix();
        // The hash's 32 bytes are 43 base64 characters.
        let mut key = String::with_capacity(prefix.len() + slot.len() + 4 + 43);
        key.push_str(prefix);
        key.push('{');
        key.push_str(slot);
        key.push_str("}:s:");
        hash.push_b64(&mut key);
        key
    }

    fn tombstone_key(&self, slot: &str, hash: &str) -> String {
        self.backend.key(format_args!("{{{slot}}}:t:{hash}"))
    }

    fn index_key(&self, slot: &str, user_id: &Uuid) -> String {
        self.backend.key(format_args!("{{{slot}}}:u:{user_id}"))
    }

    fn directory_key(&self, slot: &str, public_id: &str) -> String {
        self.backend.key(format_args!("{{{slot}}}:p:{public_id}"))
    }

    /// The user's index: public id → current token hash.
    async fn index(&self, slot: &str, user_id: &Uuid) -> Result<Vec<(String, String)>, StoreError> {
        let entries: Vec<(String, String)> = self.conn().hgetall(self.index_key(slot, user_id)).await?;
        Ok(entries)
    }

    /// A user's live sessions — public id, current token hash, record — read through the index;
    /// drops index entries whose session is gone (expired by TTL). An entry whose token was
    /// rotated between the two reads is read again rather than left out: a listing that an
    /// operator's revocation is planned from must name every live session.
    async fn live(
        &self,
        slot: &str,
        user_id: &Uuid,
        now: Millis,
    ) -> Result<Vec<(String, String, SessionRecord)>, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let entries = self.index(slot, user_id).await?;
            let read = self.read_index(slot, user_id, &entries, now).await?;
            if !read.moved {
                return Ok(read.live);
            }
            super::backoff(attempt).await;
        }
        Err(StoreError::conflict(
            "a user's sessions kept rotating while they were read",
        ))
    }

    /// What a user's index entries point to, for a change that must see all of them. Removes
    /// stale entries (sessions gone by TTL) and counts them.
    async fn read_index(
        &self,
        slot: &str,
        user_id: &Uuid,
        entries: &[(String, String)],
        now: Millis,
    ) -> Result<IndexRead, StoreError> {
        let mut read = IndexRead::default();
        if entries.is_empty() {
            return Ok(read);
        }
        let keys: Vec<String> = entries.iter().map(|(_, h)| self.session_key(slot, h)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn())
            .await?;
        let mut stale = Vec::new();
        for ((pid, hash), value) in entries.iter().zip(values) {
            match value.as_deref().map(Stored::decode).transpose()? {
                Some(Stored::Active(record)) if !record.is_expired(now) => {
                    read.live
                        .push((pid.clone(), hash.clone(), Arc::unwrap_or_clone(record)));
                }
                // The entry named a token that was rotated between our two reads: the index
                // has already moved on to its successor.
                Some(Stored::Rotated(_)) => read.moved = true,
                Some(_) => {}
                None => stale.push(pid.clone()),
            }
        }
        if !stale.is_empty() {
            let _: () = self.conn().hdel(self.index_key(slot, user_id), &stale).await?;
        }
        read.stale = stale.len();
        Ok(read)
    }

    /// Adds a session to end to a [`CREATE`] or [`REVOKE`] invocation.
    #[allow(clippy::too_many_arguments)]
    fn push_ending(
        &self,
        script: &mut redis::ScriptInvocation<'_>,
        slot: &str,
        pid: &str,
        hash: &str,
        record: &SessionRecord,
        revocation: &Revocation,
        now: Millis,
    ) {
        // Whatever the caller's clock says of its grace: Redis keeps the predecessor until its
        // own TTL ends, and an operator's machine whose clock runs ahead must not skip it.
        let predecessor = record.previous.as_ref().map_or(hash, |p| p.hash.as_str());
        let (tombstone, ttl) = revocation.tombstone(record, now);
        script
            .key(self.session_key(slot, hash))
            .key(self.tombstone_key(slot, hash))
            .key(self.session_key(slot, predecessor))
            .key(self.tombstone_key(slot, predecessor))
            .key(self.directory_key(slot, pid))
            .arg(pid)
            .arg(hash)
            .arg(tombstone.encode())
            .arg(ttl);
    }
}

#[async_trait]
impl SessionStore for RedisSessions {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn load(&self, key: &SessionKey, _now: Millis) -> Result<Option<Stored>, StoreError> {
        let value: Option<Vec<u8>> = self.conn().get(self.session_key_of(&key.slot, &key.hash)).await?;
        if let Some(v) = value {
            return Ok(Some(
                self.decoded
                    .get_or_try(&key.hash, &v, |v| Stored::decode_bytes(v))?,
            ));
        }
        // No live session: was it revoked (and why)?
        let hash = key.hash.to_b64();
        let tomb: Option<String> = self.conn().get(self.tombstone_key(&key.slot, &hash)).await?;
        Ok(tomb.as_deref().map(Stored::decode).transpose()?)
    }

    async fn create(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        limit: &Limit,
        now: Millis,
    ) -> Result<Created, StoreError> {
        let slot = slot_tag(&record.user_id);
        let hash = hash.to_b64();
        let index_key = self.index_key(&slot, &record.user_id);
        for attempt in 0..MAX_ATTEMPTS {
            let entries = self.index(&slot, &record.user_id).await?;
            let read = self.read_index(&slot, &record.user_id, &entries, now).await?;
            if read.moved {
                super::backoff(attempt).await;
                continue;
            }
            let live = read.live;
            let expected = entries.len() - read.stale;
            let by_id: Vec<SessionRecord> = live.iter().map(|(_, _, r)| r.clone()).collect();
            let Some(ending) = limit.ending(by_id, record) else {
                return Ok(Created::Refused);
            };
            let mut script = CREATE.key(&index_key);
            script
                .key(self.session_key(&slot, &hash))
                .key(self.directory_key(&slot, &record.public_id))
                .arg(Stored::encode_active(record))
                .arg(ttl_until(record.expires_at(), now))
                .arg(&record.public_id)
                .arg(&hash)
                .arg(ttl_until(record.absolute_expires_at, now))
                .arg(record.user_id.to_string())
                .arg(expected);
            for victim in &ending {
                if let Some((pid, current, r)) = live.iter().find(|(pid, _, _)| *pid == victim.public_id) {
                    self.push_ending(&mut script, &slot, pid, current, r, &limit.revocation, now);
                }
            }
            // A sign-in that ends sessions revokes them: written where replicate() waits.
            let mut conn = if ending.is_empty() {
                self.conn()
            } else {
                self.backend.revocations()
            };
            let n: i64 = script.invoke_async(&mut conn).await?;
            if n >= 0 {
                if !ending.is_empty() {
                    // Sessions ended to make room are revocations: as durable as the others.
                    self.backend.replicate(&index_key).await?;
                }
                return Ok(Created::Created { ended: ending });
            }
            super::backoff(attempt).await;
        }
        Err(StoreError::conflict(
            "the sign-in kept racing with other changes to the same user's sessions",
        ))
    }

    async fn touch(&self, hash: &TokenHash, record: &SessionRecord, now: Millis) -> Result<bool, StoreError> {
        let slot = slot_tag(&record.user_id);
        let done: i64 = TOUCH
            .key(self.session_key(&slot, &hash.to_b64()))
            .arg(Stored::encode_active(record))
            .arg(ttl_until(record.expires_at(), now))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(done == 1)
    }

    async fn rotate(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        next: &SessionRecord,
        rotated: &Rotated,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let slot = slot_tag(&next.user_id);
        let (old, new) = (old.to_b64(), new.to_b64());
        let grace_end = rotated.grace_until.min(next.absolute_expires_at);
        let done: i64 = ROTATE
            .key(self.session_key(&slot, &old))
            .key(self.session_key(&slot, &new))
            .key(self.index_key(&slot, &next.user_id))
            .arg(Stored::encode_active(next))
            .arg(ttl_until(next.expires_at(), now))
            .arg(Stored::encode_rotated(rotated))
            .arg(ttl_until(grace_end, now))
            .arg(&next.public_id)
            .arg(&new)
            .arg(&old)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(done == 1)
    }

    async fn list_user(&self, user_id: &Uuid, now: Millis) -> Result<Vec<SessionRecord>, StoreError> {
        let slot = slot_tag(user_id);
        Ok(self
            .live(&slot, user_id, now)
            .await?
            .into_iter()
            .map(|(_, _, r)| r)
            .collect())
    }

    async fn update_user(
        &self,
        user_id: &Uuid,
        user: &crate::session::record::UserSnapshot,
        now: Millis,
    ) -> Result<usize, StoreError> {
        let slot = slot_tag(user_id);
        let mut changed = 0;
        for (_, hash, mut record) in self.live(&slot, user_id, now).await? {
            if record.user == *user {
                continue;
            }
            record.user = user.clone();
            // Only while the key still holds an active session (not rotated or revoked since).
            let done: i64 = TOUCH
                .key(self.session_key(&slot, &hash))
                .arg(Stored::encode_active(&record))
                .arg(ttl_until(record.expires_at(), now))
                .invoke_async(&mut self.conn())
                .await?;
            changed += usize::from(done == 1);
        }
        Ok(changed)
    }

    async fn find(&self, public_id: &str, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        let Some(slot) = SessionRecord::slot_of_public_id(public_id) else {
            return Ok(None);
        };
        let user: Option<String> = self.conn().get(self.directory_key(slot, public_id)).await?;
        let Some(user_id) = user.and_then(|u| Uuid::parse_str(&u).ok()) else {
            return Ok(None);
        };
        Ok(self
            .list_user(&user_id, now)
            .await?
            .into_iter()
            .find(|r| r.public_id == public_id))
    }

    async fn revoke(
        &self,
        user_id: &Uuid,
        which: Which<'_>,
        revocation: &Revocation,
        now: Millis,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let slot = slot_tag(user_id);
        let index_key = self.index_key(&slot, user_id);
        for attempt in 0..MAX_ATTEMPTS {
            let entries: Vec<(String, String)> = self
                .index(&slot, user_id)
                .await?
                .into_iter()
                .filter(|(pid, _)| which.includes(pid))
                .collect();
            let read = self.read_index(&slot, user_id, &entries, now).await?;
            if read.moved {
                super::backoff(attempt).await;
                continue;
            }
            let targets = read.live;
            if targets.is_empty() {
                return Ok(Vec::new());
            }
            let mut script = REVOKE.key(&index_key);
            for (pid, hash, record) in &targets {
                self.push_ending(&mut script, &slot, pid, hash, record, revocation, now);
            }
            let n: i64 = script.invoke_async(&mut self.backend.revocations()).await?;
            if n >= 0 {
                self.backend.replicate(&index_key).await?;
                return Ok(targets.into_iter().map(|(_, _, r)| r).collect());
            }
            super::backoff(attempt).await;
        }
        Err(StoreError::conflict(
            "revocation kept racing with rotations of the same user's sessions",
        ))
    }

    async fn list_page(&self, cursor: Option<String>, limit: usize, now: Millis) -> Result<Page, StoreError> {
        let pattern = format!("{}{{*}}:u:*", super::glob_escape(&self.backend.prefix));
        let (keys, next) = self
            .backend
            .scan_page(cursor.as_deref(), &pattern, limit.max(10))
            .await?;
        let mut sessions = Vec::new();
        for key in keys {
            // `P{T}:u:<uuid>`
            let Some(user_id) = key.rsplit(":u:").next().and_then(|u| Uuid::parse_str(u).ok()) else {
                continue;
            };
            sessions.extend(self.list_user(&user_id, now).await?);
        }
        Ok(Page { sessions, next })
    }

    async fn ping(&self) -> Result<Reached, StoreError> {
        self.backend.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedisSettings;

    /// The key a session check reads is the very key every other command writes.
    #[tokio::test]
    async fn a_session_check_reads_the_key_the_session_is_written_under() {
        // Prepared without connecting: nothing is sent.
        let backend =
            RedisBackend::connect(&RedisSettings::standalone("redis://127.0.0.1:1", "app:")).unwrap();
        let sessions = RedisSessions::new(backend);
        let counting: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        for hash in [TokenHash([0; 32]), TokenHash([0xfb; 32]), TokenHash(counting)] {
            for slot in ["AbC", "-_9"] {
                assert_eq!(
                    sessions.session_key_of(slot, &hash),
                    sessions.session_key(slot, &hash.to_b64())
                );
            }
        }
        assert_eq!(
            sessions.session_key_of("AbC", &TokenHash([0; 32])),
            format!("app:{{AbC}}:s:{}", "A".repeat(43))
        );
    }
}
