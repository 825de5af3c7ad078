//! The `SessionStore` abstraction and the store chosen at startup.

use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::config::Settings;

/// The session store could not be reached or answered nonsense. Authenticated requests fail
/// closed (503) on it — never 200, never a silent logout.
#[derive(Debug, thiserror::Error)]
#[error("session store unavailable: {0}")]
pub struct StoreError(pub String);

impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        StoreError(e.to_string())
    }
}

impl From<sea_orm::DbErr> for StoreError {
    fn from(e: sea_orm::DbErr) -> Self {
        StoreError(e.to_string())
    }
}

/// The configured store: Redis when `REDIS_URL` is set, else the SQL database.
#[derive(Clone)]
pub enum AnyStore {
    Redis(super::redis::RedisStore),
    Sql(super::sql::SqlStore),
}

impl AnyStore {
    /// Chooses the store from the configuration. Connecting to Redis is lazy: startup never
    /// waits for it, and requests fail closed until it answers.
    pub fn from_settings(settings: &Settings, db: &DatabaseConnection) -> Result<Self, StoreError> {
        match &settings.redis {
            Some(redis) => Ok(AnyStore::Redis(super::redis::RedisStore::connect(redis)?)),
            None => Ok(AnyStore::Sql(super::sql::SqlStore::new(db.clone()))),
        }
    }

    /// `redis` or `sql`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Redis(_) => "redis",
            AnyStore::Sql(_) => "sql",
        }
    }

    /// One round trip to the store, bounded by `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        let fut = async {
            match self {
                AnyStore::Redis(s) => s.ping().await,
                AnyStore::Sql(s) => s.ping().await,
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| StoreError(format!("no answer within {timeout:?}")))?
    }
}
