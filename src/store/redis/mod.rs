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
//!
//! `{T}` is a Redis Cluster hash tag: a user's sessions, index and directory entries share one
//! slot, so every multi-key change is one Lua script — atomic on a single server and on a
//! cluster.

pub mod attempts;
pub mod flows;
pub mod sessions;

use std::time::Duration;

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    ErrorKind, RedisError,
};
use secrecy::ExposeSecret;

use crate::{config::RedisSettings, session::store::StoreError};

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

/// One multiplexed connection that reconnects by itself, and the key prefix. Cheap to clone:
/// every port holds one.
#[derive(Clone)]
pub struct RedisBackend {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisBackend {
    /// Prepares the connection without waiting for Redis: the first command connects.
    pub fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        let client = redis::Client::open(settings.url.expose_secret())?;
        // Fail fast while Redis is down (requests answer 503 quickly); the manager reconnects
        // on later commands, so service recovers without a restart.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisBackend {
            conn,
            prefix: settings.key_prefix.clone(),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// `P` + `rest`: every key authauth writes goes through here.
    fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// One round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::unavailable(format!(
                "unexpected PING answer `{pong}`"
            )))
        }
    }
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
