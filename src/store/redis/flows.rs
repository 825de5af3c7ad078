//! Pending OpenID sign-ins in Redis: `SET … PX` to keep, `GETDEL` to take exactly once.
//!
//! The value carries its own expiry (`<expires_at ms>|<value>`), checked against the caller's
//! `now` like the SQL store does; the key's TTL only clears it away.

use async_trait::async_trait;

use super::RedisBackend;
use crate::{
    auth::flows::FlowStore,
    session::{record::Millis, store::StoreError},
};

#[derive(Clone)]
pub struct RedisFlows(pub RedisBackend);

impl RedisFlows {
    fn key(&self, key: &str) -> String {
        self.0.key(format_args!("flow:{key}"))
    }
}

#[async_trait]
impl FlowStore for RedisFlows {
    async fn put(&self, key: &str, value: &str, ttl: Millis, now: Millis) -> Result<(), StoreError> {
        let key = self.key(key);
        let ttl = ttl.max(1);
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(format!("{}|{value}", now.saturating_add(ttl)))
            .arg("PX")
            .arg(ttl)
            .query_async(&mut self.0.conn())
            .await?;
        Ok(())
    }

    async fn take(&self, key: &str, now: Millis) -> Result<Option<String>, StoreError> {
        let key = self.key(key);
        // At most one caller ever gets it: a replayed callback finds nothing.
        let raw: Option<String> = redis::cmd("GETDEL")
            .arg(key)
            .query_async(&mut self.0.conn())
            .await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let (expires_at, value) = raw
            .split_once('|')
            .and_then(|(at, v)| Some((at.parse::<Millis>().ok()?, v)))
            .ok_or_else(|| StoreError::Corrupt("a pending sign-in without its expiry".into()))?;
        Ok((expires_at > now).then(|| value.to_string()))
    }
}
