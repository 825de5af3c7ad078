//! The Redis session store (production).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;

use super::store::StoreError;
use crate::config::RedisSettings;

/// Sessions in Redis, over one multiplexed connection that reconnects by itself.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisStore {
    /// Prepares the connection without waiting for Redis: the first command connects.
    pub fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        let client = redis::Client::open(settings.url.expose_secret())?;
        // Fail fast while Redis is down (requests answer 503 quickly); the manager keeps
        // trying to reconnect on later commands, so service recovers without a restart.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisStore {
            conn,
            prefix: settings.key_prefix.clone(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError(format!("unexpected PING answer `{pong}`")))
        }
    }
}
