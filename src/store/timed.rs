//! A session store that times every operation into `authauth_store_operation_duration_seconds`:
//! a decorator over any [`SessionStore`], so neither backend knows about metrics.

use std::{sync::Arc, time::Instant};

use async_trait::async_trait;
use uuid::Uuid;

use crate::{
    metrics::{Histogram, Metrics},
    session::{
        record::{Millis, Rotated, SessionKey, SessionRecord, Stored},
        store::{Created, Limit, Page, Reached, Revocation, SessionStore, StoreError, Which},
        token::TokenHash,
    },
};

pub struct TimedSessions {
    inner: Arc<dyn SessionStore>,
    /// One histogram per operation, resolved once (`load` runs on every request).
    timers: [Histogram; OPS.len()],
}

const OPS: [&str; 8] = [
    "load",
    "create",
    "touch",
    "rotate",
    "list_user",
    "find",
    "revoke",
    "list_page",
];

impl TimedSessions {
    pub fn new(inner: Arc<dyn SessionStore>, metrics: Metrics) -> Self {
        let kind = inner.kind();
        TimedSessions {
            timers: OPS.map(|op| metrics.store_timer(kind, op)),
            inner,
        }
    }

    fn done(&self, op: &str, started: Instant) {
        if let Some(i) = OPS.iter().position(|o| *o == op) {
            self.timers[i].observe(started.elapsed());
        }
    }
}

#[async_trait]
impl SessionStore for TimedSessions {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn load(&self, key: &SessionKey, now: Millis) -> Result<Option<Stored>, StoreError> {
        let started = Instant::now();
        let r = self.inner.load(key, now).await;
        self.done("load", started);
        r
    }

    async fn create(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        limit: &Limit,
        now: Millis,
    ) -> Result<Created, StoreError> {
        let started = Instant::now();
        let r = self.inner.create(hash, record, limit, now).await;
        self.done("create", started);
        r
    }

    async fn touch(&self, hash: &TokenHash, record: &SessionRecord, now: Millis) -> Result<bool, StoreError> {
        let started = Instant::now();
        let r = self.inner.touch(hash, record, now).await;
        self.done("touch", started);
        r
    }

    async fn rotate(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        next: &SessionRecord,
        rotated: &Rotated,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let started = Instant::now();
        let r = self.inner.rotate(old, new, next, rotated, now).await;
        self.done("rotate", started);
        r
    }

    async fn list_user(&self, user_id: &Uuid, now: Millis) -> Result<Vec<SessionRecord>, StoreError> {
        let started = Instant::now();
        let r = self.inner.list_user(user_id, now).await;
        self.done("list_user", started);
        r
    }

    async fn update_user(
        &self,
        user_id: &Uuid,
        user: &crate::session::record::UserSnapshot,
        now: Millis,
    ) -> Result<usize, StoreError> {
        let started = Instant::now();
        let r = self.inner.update_user(user_id, user, now).await;
        self.done("update_user", started);
        r
    }

    async fn find(&self, public_id: &str, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        let started = Instant::now();
        let r = self.inner.find(public_id, now).await;
        self.done("find", started);
        r
    }

    async fn revoke(
        &self,
        user_id: &Uuid,
        which: Which<'_>,
        revocation: &Revocation,
        now: Millis,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let started = Instant::now();
        let r = self.inner.revoke(user_id, which, revocation, now).await;
        self.done("revoke", started);
        r
    }

    async fn list_page(&self, cursor: Option<String>, limit: usize, now: Millis) -> Result<Page, StoreError> {
        let started = Instant::now();
        let r = self.inner.list_page(cursor, limit, now).await;
        self.done("list_page", started);
        r
    }

    async fn ping(&self) -> Result<Reached, StoreError> {
        self.inner.ping().await
    }
}
