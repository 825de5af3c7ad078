//! Attempt counters in Redis: one hash per bucket, counted by Lua scripts so a count and its
//! window start together.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use super::RedisBackend;
use crate::{
    auth::throttle::{AttemptStore, Window},
    session::{record::Millis, store::StoreError},
};

/// Counts one in a fixed window kept as a hash `{n: count, e: window end}`. Windows follow the
/// caller's clock (`ARGV[1]`), like the SQL store; the key's TTL only clears it away.
static HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
        local ends = tonumber(redis.call('HGET', KEYS[1], 'e'))
        if not ends or ends <= now then
          redis.call('HSET', KEYS[1], 'n', 1, 'e', now + window)
          redis.call('PEXPIRE', KEYS[1], window)
          return {1, window}
        end
        return {redis.call('HINCRBY', KEYS[1], 'n', 1), ends - now}
        ",
    )
});

/// Gives back one count in a live window; the key goes away at zero.
static UNHIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local ends = tonumber(redis.call('HGET', KEYS[1], 'e'))
        if not ends or ends <= tonumber(ARGV[1]) then return 0 end
        local n = redis.call('HINCRBY', KEYS[1], 'n', -1)
        if n <= 0 then redis.call('DEL', KEYS[1]) end
        return n
        ",
    )
});

#[derive(Clone)]
pub struct RedisAttempts(pub RedisBackend);

impl RedisAttempts {
    fn key(&self, key: &str) -> String {
        self.0.key(format_args!("at:{key}"))
    }
}

#[async_trait]
impl AttemptStore for RedisAttempts {
    async fn hit(&self, key: &str, window: Millis, now: Millis) -> Result<Window, StoreError> {
        let (count, reset_in): (i64, i64) = HIT
            .key(self.key(key))
            .arg(now)
            .arg(window.max(1))
            .invoke_async(&mut self.0.conn())
            .await?;
        Ok(Window { count, reset_in })
    }

    async fn unhit(&self, key: &str, now: Millis) -> Result<(), StoreError> {
        let _: i64 = UNHIT
            .key(self.key(key))
            .arg(now)
            .invoke_async(&mut self.0.conn())
            .await?;
        Ok(())
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        let _: () = self.0.conn().del(self.key(key)).await?;
        Ok(())
    }

    async fn reset_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let pattern = format!("{}*", super::glob_escape(&self.key(prefix)));
        let mut cursor: Option<String> = None;
        let mut cleared = 0;
        loop {
            let (keys, next) = self.0.scan_page(cursor.as_deref(), &pattern, 1000).await?;
            cleared += self.0.delete(&keys).await?;
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(cleared),
            }
        }
    }
}
