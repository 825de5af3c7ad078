//! The narrow `SessionStore` interface and the store chosen at startup.
//!
//! Two implementations: [`RedisStore`](super::redis::RedisStore) (production) and
//! [`SqlStore`](super::sql::SqlStore) (the embedded default; also runs on PostgreSQL). One
//! conformance suite (`tests/api/session_store.rs`) runs against both. Every method takes `now`,
//! so expiry and rotation are tested without sleeping.

use std::{future::Future, time::Duration};

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{
    record::{Millis, Rotated, SessionKey, SessionRecord, Stored},
    token::TokenHash,
};
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

impl From<super::record::DecodeError> for StoreError {
    fn from(e: super::record::DecodeError) -> Self {
        StoreError(e.to_string())
    }
}

/// Which of a user's sessions to revoke.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// The session with this public id.
    One(&'a str),
    /// Every session, except the one with this public id if given.
    AllExcept(Option<&'a str>),
}

impl Which<'_> {
    pub fn includes(&self, public_id: &str) -> bool {
        match self {
            Which::One(id) => *id == public_id,
            Which::AllExcept(None) => true,
            Which::AllExcept(Some(id)) => *id != public_id,
        }
    }
}

/// Why sessions are being revoked; becomes each session's tombstone.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// Stable code (see [`super::record::Tombstone::reason`]).
    pub reason: &'static str,
    /// Free text from an operator.
    pub message: Option<String>,
    /// Upper bound of the tombstone's lifetime (each is also capped by its session's).
    pub tombstone_ttl: Millis,
}

/// A page of sessions from [`SessionStore::list_page`].
pub struct Page {
    pub sessions: Vec<SessionRecord>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<String>,
}

/// Where sessions live. Implementations keep the raw token out: they only see [`TokenHash`].
pub trait SessionStore: Send + Sync {
    /// What a token points to: one round trip.
    fn load(
        &self,
        key: &SessionKey,
        now: Millis,
    ) -> impl Future<Output = Result<Option<Stored>, StoreError>> + Send;

    /// Stores a new active session and indexes it under its user, atomically.
    fn create(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        now: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Overwrites an active session (sliding refresh). Returns false, and writes nothing, when
    /// the session is no longer active — a refresh can never resurrect a revoked session.
    fn touch(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        now: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Single-flight rotation: if `old` is still the active token of its session, store `next`
    /// under `new` and turn `old` into `rotated` (valid until its grace ends). Returns false when
    /// another request rotated first or the session was revoked.
    fn rotate(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        next: &SessionRecord,
        rotated: &Rotated,
        now: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Live sessions of one user; costs the size of that user's index, never a keyspace scan.
    fn list_user(
        &self,
        user_id: &Uuid,
        now: Millis,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;

    /// A live session by its public id.
    fn find(
        &self,
        public_id: &str,
        now: Millis,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// Revokes sessions of a user, with their predecessors still in grace, leaving tombstones.
    /// Atomic per user: a concurrent rotation cannot leave a successor alive.
    fn revoke(
        &self,
        user_id: &Uuid,
        which: Which<'_>,
        revocation: &Revocation,
        now: Millis,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;

    /// One page of every live session, for operators. `cursor` is `None` for the first page.
    fn list_page(
        &self,
        cursor: Option<String>,
        limit: usize,
        now: Millis,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// One round trip, for readiness.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The configured store: Redis when `REDIS_URL` is set, else the SQL database.
#[derive(Clone)]
pub enum AnyStore {
    Redis(super::redis::RedisStore),
    Sql(super::sql::SqlStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Redis($s) => $call.await,
            AnyStore::Sql($s) => $call.await,
        }
    };
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

    /// Keeps a pending sign-in (OpenID state) under `key` for `ttl` ms.
    pub async fn put_flow(&self, key: &str, value: &str, ttl: Millis, now: Millis) -> Result<(), StoreError> {
        match self {
            AnyStore::Redis(s) => s.put_flow(key, value, ttl).await,
            AnyStore::Sql(s) => s.put_flow(key, value, ttl, now).await,
        }
    }

    /// Takes a pending sign-in out; a second call (a replay) gets `None`.
    pub async fn take_flow(&self, key: &str, now: Millis) -> Result<Option<String>, StoreError> {
        match self {
            AnyStore::Redis(s) => s.take_flow(key).await,
            AnyStore::Sql(s) => s.take_flow(key, now).await,
        }
    }

    /// [`SessionStore::ping`], bounded by `timeout`.
    pub async fn ping_within(&self, timeout: Duration) -> Result<(), StoreError> {
        tokio::time::timeout(timeout, self.ping())
            .await
            .map_err(|_| StoreError(format!("no answer within {timeout:?}")))?
    }
}

impl SessionStore for AnyStore {
    async fn load(&self, key: &SessionKey, now: Millis) -> Result<Option<Stored>, StoreError> {
        dispatch!(self, s => s.load(key, now))
    }

    async fn create(&self, hash: &TokenHash, record: &SessionRecord, now: Millis) -> Result<(), StoreError> {
        dispatch!(self, s => s.create(hash, record, now))
    }

    async fn touch(&self, hash: &TokenHash, record: &SessionRecord, now: Millis) -> Result<bool, StoreError> {
        dispatch!(self, s => s.touch(hash, record, now))
    }

    async fn rotate(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        next: &SessionRecord,
        rotated: &Rotated,
        now: Millis,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.rotate(old, new, next, rotated, now))
    }

    async fn list_user(&self, user_id: &Uuid, now: Millis) -> Result<Vec<SessionRecord>, StoreError> {
        dispatch!(self, s => s.list_user(user_id, now))
    }

    async fn find(&self, public_id: &str, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(self, s => s.find(public_id, now))
    }

    async fn revoke(
        &self,
        user_id: &Uuid,
        which: Which<'_>,
        revocation: &Revocation,
        now: Millis,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        dispatch!(self, s => s.revoke(user_id, which, revocation, now))
    }

    async fn list_page(&self, cursor: Option<String>, limit: usize, now: Millis) -> Result<Page, StoreError> {
        dispatch!(self, s => s.list_page(cursor, limit, now))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping())
    }
}
