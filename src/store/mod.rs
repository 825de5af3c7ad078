//! Where authauth keeps what changes from request to request, behind three small ports:
//!
//! | port | what | used by |
//! |---|---|---|
//! | [`SessionStore`](crate::session::store::SessionStore) | sessions, their per-user index, tombstones | [`crate::session`] |
//! | [`FlowStore`](crate::auth::flows::FlowStore) | pending OpenID sign-ins (state, nonce, PKCE) | [`crate::auth::oidc`] |
//! | [`AttemptStore`](crate::auth::throttle::AttemptStore) | attempt counters for throttling | [`crate::auth::throttle`] |
//!
//! Each port has a Redis implementation ([`redis`], production) and a SQL one ([`sql`], the
//! embedded default, also on PostgreSQL). The ports are defined next to the code that uses them
//! and know nothing of keys or tables; this module only chooses and builds the
//! implementations. Every port reports [`StoreError`] by kind — `Unavailable`, `Conflict`,
//! `Corrupt` — with the cause kept as its source.

pub mod redis;
pub mod sql;
pub mod timed;

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;

use crate::{
    audit::feed::EventFeed,
    auth::{flows::FlowStore, throttle::AttemptStore},
    config::Settings,
    session::store::{Reached, SessionStore, StoreError},
};

/// The configured implementation of every port. Cheap to clone.
#[derive(Clone)]
pub struct Stores {
    pub sessions: Arc<dyn SessionStore>,
    pub flows: Arc<dyn FlowStore>,
    pub attempts: Arc<dyn AttemptStore>,
    /// The live feed of audit events (`sessions watch`).
    pub feed: Arc<dyn EventFeed>,
    /// Set for the SQL backend, whose dead rows need purging.
    sql: Option<sql::SqlBackend>,
}

impl Stores {
    /// Redis when `REDIS_URL` is set, else the SQL database. Connecting to Redis is lazy:
    /// startup never waits for it, and requests fail closed until it answers.
    pub fn from_settings(settings: &Settings, db: &DatabaseConnection) -> Result<Self, StoreError> {
        match &settings.redis {
            Some(redis) => Ok(Self::redis(redis::RedisBackend::connect(redis)?)),
            None => Ok(Self::sql(db.clone())),
        }
    }

    /// Every port on one Redis connection.
    pub fn redis(backend: redis::RedisBackend) -> Self {
        Stores {
            sessions: Arc::new(redis::sessions::RedisSessions::new(backend.clone())),
            flows: Arc::new(redis::flows::RedisFlows(backend.clone())),
            attempts: Arc::new(redis::attempts::RedisAttempts(backend.clone())),
            feed: Arc::new(redis::feed::RedisFeed(backend)),
            sql: None,
        }
    }

    /// Every port in the application database.
    pub fn sql(db: DatabaseConnection) -> Self {
        let feed = Arc::new(sql::feed::SqlFeed(db.clone()));
        let backend = sql::SqlBackend::new(db);
        Stores {
            sessions: Arc::new(sql::sessions::SqlSessions(backend.clone())),
            flows: Arc::new(sql::flows::SqlFlows(backend.clone())),
            attempts: Arc::new(sql::attempts::SqlAttempts(backend.clone())),
            feed,
            sql: Some(backend),
        }
    }

    /// `redis` or `sql`.
    pub fn kind(&self) -> &'static str {
        self.sessions.kind()
    }

    /// A readiness check of the session store, bounded by `timeout`: what answered.
    pub async fn ping_within(&self, timeout: Duration) -> Result<Reached, StoreError> {
        tokio::time::timeout(timeout, self.sessions.ping())
            .await
            .map_err(|_| StoreError::unavailable(format!("no answer within {timeout:?}")))?
    }

    /// Starts what the backend needs in the background while serving: the SQL tables are
    /// purged of dead rows every minute (Redis expires keys by itself).
    pub fn spawn_maintenance(&self, clock: crate::clock::Clock) {
        let Some(backend) = self.sql.clone() else {
            return;
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match backend.purge_expired(clock.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "purged expired sessions, flows and counters"),
                    Err(e) => tracing::warn!(error = %e.chain(), "cannot purge expired sessions"),
                }
            }
        });
    }
}
