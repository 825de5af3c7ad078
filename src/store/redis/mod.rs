//! Redis (production): one connection shared by the three ports, and the key layout.
//!
//! Key layout, all under `REDIS_KEY_PREFIX` (`P`), with `T` the user's slot tag:
//!
//! | key | type | holds | TTL |
//! |---|---|---|---|
//! | `P{T}:s:<sha256(token)>` | string | `A\|…` active record, or `R\|…` a rotated token in grace | the session's idle/absolute expiry; the grace period |
//! | `P{T}:t:<sha256(token)>` | string | `X\|…` tombstone of a revoked token: why it ended | ≤ 1 h, ≤ the session's absolute expiry |
//! | `P{T}:u:<user id>` | hash | public id → current token hash | the latest absolute expiry of the user's sessions |
//! | `P{T}:p:<public id>` | string | user id (locates a session by its public id) | the session's absolute expiry |
//! | `Pat:<bucket>:<sha256(subject)>` | hash | an attempt counter ([`attempts`]): count and window end | the counting window |
//! | `Pflow:<sha256(flow cookie)>` | string | a pending OpenID sign-in ([`flows`]): its expiry and value | 10 min, taken once |
//! | `Pevents` | stream | the live audit feed ([`feed`]) `sessions watch` follows | capped at ~10,000 entries |
//!
//! `{T}` is a Redis Cluster hash tag: a user's sessions, index and directory entries share one
//! slot, so every multi-key change is one Lua script — atomic on a single server and on a
//! cluster.

pub mod attempts;
pub mod connection;
pub mod feed;
pub mod flows;
pub mod sessions;

use std::time::Duration;

use redis::{
    cluster_async::ClusterConnection,
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr},
    ErrorKind, RedisError,
};

use self::connection::Connection;
use crate::{
    config::{RedisMode, RedisSettings, WaitForReplicas},
    session::store::{Reached, StoreError},
};

/// What a failed Redis command means for the caller: a reply of the wrong shape is data this
/// version cannot read; everything else (refused, timed out, dropped, `LOADING`, `READONLY`,
/// `NOAUTH`…) means the store cannot serve right now.
impl From<RedisError> for StoreError {
    fn from(e: RedisError) -> Self {
        match e.kind() {
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType => StoreError::Corrupt(Box::new(e)),
            _ => StoreError::Unavailable(Box::new(e)),
        }
    }
}

/// Waits before attempt `attempt + 1` of a change that lost a race: a random 1–2× of a delay
/// that doubles from 2 ms up to 100 ms, so contenders spread out instead of colliding again.
pub(crate) async fn backoff(attempt: u32) {
    use rand::Rng;
    let base: u64 = (2u64 << attempt.min(6)).min(100);
    let pause = rand::thread_rng().gen_range(base..=base * 2);
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

/// The connection (in any [`RedisMode`]), the key prefix and the durability asked of
/// revocations. Cheap to clone: every port holds one.
#[derive(Clone)]
pub struct RedisBackend {
    conn: Connection,
    /// With `REDIS_WAIT_REPLICAS`: a connection of its own for revocations. `WAIT` blocks the
    /// connection it is sent on until the replicas answer (up to `REDIS_WAIT_TIMEOUT` when they
    /// do not), and must follow the write on the same connection; on the shared connection it
    /// would hold up every session check of the server behind it.
    durable: Option<Connection>,
    mode: RedisMode,
    prefix: String,
    wait: Option<WaitForReplicas>,
}

impl RedisBackend {
    /// Prepares the connection without waiting for Redis: the first command connects.
    pub fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        Ok(RedisBackend {
            conn: Connection::open(settings)?,
            durable: settings.wait.map(|_| Connection::open(settings)).transpose()?,
            mode: settings.mode,
            prefix: settings.key_prefix.clone(),
            wait: settings.wait,
        })
    }

    fn conn(&self) -> Connection {
        self.conn.clone()
    }

    /// The connection revocations are written on (then [`Self::replicate`] waits on it).
    fn revocations(&self) -> Connection {
        self.durable.as_ref().unwrap_or(&self.conn).clone()
    }

    /// `P` + `rest`: every key authauth writes goes through here.
    fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// `P`, the prefix of every key.
    fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What a readiness check reached: one round trip in standalone and Sentinel mode; in
    /// cluster mode the slot map (`CLUSTER SLOTS`) and a `PING` to every primary.
    pub async fn ping(&self) -> Result<Reached, StoreError> {
        match self.conn.cluster().await? {
            None => {
                let pong: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
                if pong != "PONG" {
                    return Err(StoreError::unavailable(format!(
                        "unexpected PING answer `{pong}`"
                    )));
                }
                Ok(Reached {
                    summary: match self.mode {
                        RedisMode::Sentinel => "sentinel: the primary answers".into(),
                        _ => "standalone".into(),
                    },
                    primary: self.conn.sentinel_primary(),
                })
            }
            Some(mut cluster) => {
                let primaries = primaries(&mut cluster).await?;
                let covered: u32 = primaries.iter().map(|p| p.slots).sum();
                let mut ping = redis::cmd("PING");
                ping.arg("authauth");
                for p in &primaries {
                    let _: redis::Value = cluster.route_command(ping.clone(), p.route()).await?;
                }
                if covered < 16384 {
                    return Err(StoreError::unavailable(format!(
                        "the cluster serves {covered} of 16384 slots"
                    )));
                }
                Ok(Reached {
                    summary: format!("cluster: {covered}/16384 slots on {} primaries", primaries.len()),
                    primary: Some(
                        primaries
                            .iter()
                            .map(|p| p.address.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                })
            }
        }
    }

    /// One page of a `SCAN … MATCH pattern` over the whole store: in cluster mode one primary
    /// after the other, in slot order (the cursor says which primary and where on it), so every
    /// key is visited whichever node holds it.
    pub(crate) async fn scan_page(
        &self,
        cursor: Option<&str>,
        pattern: &str,
        count: usize,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let mut scan = redis::cmd("SCAN");
        match self.conn.cluster().await? {
            None => {
                let at: u64 = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
                scan.arg(at).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
                let (next, keys): (u64, Vec<String>) = scan.query_async(&mut self.conn()).await?;
                Ok((keys, (next != 0).then(|| next.to_string())))
            }
            Some(mut cluster) => {
                let primaries = primaries(&mut cluster).await?;
                // `<first slot of the primary>.<SCAN cursor on it>`
                let (slot, at) = cursor
                    .and_then(|c| c.split_once('.'))
                    .and_then(|(s, a)| Some((s.parse::<u16>().ok()?, a.parse::<u64>().ok()?)))
                    .or_else(|| primaries.first().map(|p| (p.first_slot, 0)))
                    .ok_or_else(|| StoreError::unavailable("the cluster has no primary"))?;
                scan.arg(at).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
                let route = primary_of(Route::new(slot, SlotAddr::Master));
                let (next, keys): (u64, Vec<String>) =
                    redis::from_redis_value(cluster.route_command(scan, route).await?)
                        .map_err(RedisError::from)?;
                let next = if next != 0 {
                    Some(format!("{slot}.{next}"))
                } else {
                    primaries
                        .iter()
                        .find(|p| p.first_slot > slot)
                        .map(|p| format!("{}.0", p.first_slot))
                };
                Ok((keys, next))
            }
        }
    }

    /// Deletes keys that may live in different slots: one `DEL` in standalone and Sentinel
    /// mode, one per key on a cluster (a multi-key command must stay inside one slot).
    pub(crate) async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        if self.mode != RedisMode::Cluster {
            return Ok(redis::cmd("DEL").arg(keys).query_async(&mut self.conn()).await?);
        }
        let mut deleted = 0;
        for key in keys {
            let n: u64 = redis::cmd("DEL").arg(key).query_async(&mut self.conn()).await?;
            deleted += n;
        }
        Ok(deleted)
    }

    /// With `REDIS_WAIT_REPLICAS`: returns once that many replicas have the writes made so far
    /// on [`Self::revocations`] to the primary holding `key`, or fails closed when they do not
    /// within the timeout. A
    /// revocation acknowledged only by a primary that then dies is lost in the failover — and
    /// the session it ended comes back.
    pub(crate) async fn replicate(&self, key: &str) -> Result<(), StoreError> {
        let Some(wait) = self.wait else {
            return Ok(());
        };
        let timeout_ms = u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(wait.replicas).arg(timeout_ms);
        let conn = self.revocations();
        let acknowledged: u32 = match conn.cluster().await? {
            None => cmd.query_async(&mut conn.clone()).await?,
            Some(mut cluster) => {
                let route = primary_of(Route::with_slot(Slot::for_key(key), SlotAddr::Master));
                redis::from_redis_value(cluster.route_command(cmd, route).await?).map_err(RedisError::from)?
            }
        };
        if acknowledged < wait.replicas {
            return Err(StoreError::unavailable(format!(
                "the change reached {acknowledged} of the {} replica(s) REDIS_WAIT_REPLICAS asks for \
                 within {:?}",
                wait.replicas, wait.timeout
            )));
        }
        Ok(())
    }
}

/// One primary of a cluster, from `CLUSTER SLOTS`.
struct ClusterPrimary {
    /// Its lowest slot: names it in a scan cursor and routes commands to it.
    first_slot: u16,
    slots: u32,
    address: String,
}

impl ClusterPrimary {
    fn route(&self) -> RoutingInfo {
        primary_of(Route::new(self.first_slot, SlotAddr::Master))
    }
}

/// Routes a command to the one node `route` names (always a primary here).
fn primary_of(route: Route) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route))
}

/// The cluster's primaries, in slot order.
async fn primaries(cluster: &mut ClusterConnection) -> Result<Vec<ClusterPrimary>, StoreError> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    let reply = cluster
        .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary))
        .await?;
    let ranges: Vec<Vec<redis::Value>> = redis::from_redis_value(reply).map_err(RedisError::from)?;
    let mut by_id: std::collections::BTreeMap<String, ClusterPrimary> = Default::default();
    for range in ranges {
        let parse = || -> Result<(u16, u16, String, String), redis::ParsingError> {
            let start: u16 = redis::from_redis_value_ref(range.first().unwrap_or(&redis::Value::Nil))?;
            let end: u16 = redis::from_redis_value_ref(range.get(1).unwrap_or(&redis::Value::Nil))?;
            let node: Vec<redis::Value> =
                redis::from_redis_value_ref(range.get(2).unwrap_or(&redis::Value::Nil))?;
            let host: String = redis::from_redis_value_ref(node.first().unwrap_or(&redis::Value::Nil))?;
            let port: u16 = redis::from_redis_value_ref(node.get(1).unwrap_or(&redis::Value::Nil))?;
            let id: String = redis::from_redis_value_ref(node.get(2).unwrap_or(&redis::Value::Nil))?;
            Ok((start, end, format!("{host}:{port}"), id))
        };
        let (start, end, address, id) = parse().map_err(RedisError::from)?;
        let entry = by_id.entry(id).or_insert(ClusterPrimary {
            first_slot: start,
            slots: 0,
            address,
        });
        entry.first_slot = entry.first_slot.min(start);
        entry.slots += u32::from(end.saturating_sub(start)) + 1;
    }
    let mut primaries: Vec<ClusterPrimary> = by_id.into_values().collect();
    primaries.sort_by_key(|p| p.first_slot);
    Ok(primaries)
}

/// Escapes glob characters for `SCAN … MATCH`.
pub(crate) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
