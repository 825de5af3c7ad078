//! The port for pending sign-ins at an identity provider: what [`super::oidc`] keeps between
//! sending the browser away and the callback (state, nonce, PKCE verifier, where to return).
//! Implemented in [`crate::store`] on Redis and SQL.

use async_trait::async_trait;

use crate::session::{record::Millis, store::StoreError};

#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Keeps `value` under `key` until `now + ttl`.
    async fn put(&self, key: &str, value: &str, ttl: Millis, now: Millis) -> Result<(), StoreError>;

    /// Takes the value out: of any number of concurrent or later calls for one key, exactly
    /// one gets it (a replayed callback finds nothing). Expired values are never returned.
    async fn take(&self, key: &str, now: Millis) -> Result<Option<String>, StoreError>;
}
