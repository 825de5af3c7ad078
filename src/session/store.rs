//! The session port: what the session engine needs from wherever sessions are kept, and the
//! error every store port reports.
//!
//! The implementations live in [`crate::store`] (Redis for production, SQL for the embedded
//! default and PostgreSQL); nothing here knows about keys, tables or connections. One
//! conformance suite (`tests/api/session_store.rs`) runs against every implementation. Every
//! method takes `now`, so expiry and rotation are tested without sleeping.

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    policy,
    record::{Millis, Rotated, SessionKey, SessionRecord, Stored, Tombstone, UserSnapshot},
    token::TokenHash,
};

/// The underlying failure, kept for logs (never sent to clients).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a store, by what the caller should do about it. The cause is kept as
/// the error's source, so logs show the whole chain; callers branch on the kind, never on
/// message text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached, timed out, or refused to serve. Authenticated requests
    /// fail closed on it (503) — never 200, never a silent logout.
    #[error("the store is unavailable")]
    Unavailable(#[source] Cause),
    /// A concurrent change won, and retrying did not help in time. Nothing was written.
    #[error("the store is busy with concurrent changes to the same data")]
    Conflict(#[source] Cause),
    /// The store holds a value this version cannot read.
    #[error("the store holds an unreadable value")]
    Corrupt(#[source] Cause),
}

impl StoreError {
    /// An [`StoreError::Unavailable`] with a message of our own as its cause.
    pub fn unavailable(why: impl Into<String>) -> Self {
        StoreError::Unavailable(why.into().into())
    }

    /// A [`StoreError::Conflict`] with a message of our own as its cause.
    pub fn conflict(why: impl Into<String>) -> Self {
        StoreError::Conflict(why.into().into())
    }

    /// The error and its causes on one line, for logs and operator output.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }
}

impl From<super::record::DecodeError> for StoreError {
    fn from(e: super::record::DecodeError) -> Self {
        StoreError::Corrupt(Box::new(e))
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
}

impl Revocation {
    /// The tombstone left under each token of `record`, and how long the store keeps it
    /// ([`policy::tombstone_ttl`]: an hour at most, never longer than the session itself).
    pub fn tombstone(&self, record: &SessionRecord, now: Millis) -> (Stored, Millis) {
        let tombstone = Stored::Revoked(Tombstone {
            reason: self.reason.to_string(),
            message: self.message.clone(),
            revoked_at: now,
            public_id: record.public_id.clone(),
        });
        (tombstone, policy::tombstone_ttl(record, now))
    }
}

/// The per-user session limit a [`SessionStore::create`] enforces, atomically with the
/// creation: concurrent sign-ins can never leave more than `max` live sessions.
#[derive(Debug, Clone)]
pub struct Limit {
    pub max: usize,
    pub action: crate::config::LimitAction,
    /// For [`LimitAction::EndLeastRecentlyUsed`](crate::config::LimitAction): why the ended
    /// sessions ended (`session_limit`), shown on their next request.
    pub revocation: Revocation,
}

/// How many sign-ins of one account from one network (an IPv4 address, an IPv6 /64) may wait
/// for their second factor (or, under `MFA_REQUIRED`, for one to be set up) at once. Each lives
/// a few minutes; past this, a new one from the same network ends the oldest waiting from
/// there, so a flood from one network never ends the owner's own sign-in from elsewhere while
/// they type the code.
pub const MAX_PENDING_SIGN_INS: usize = 10;

/// How many sign-ins of one account may wait at once, from every network: past this, the
/// network holding the most loses its oldest. Without it, whoever knows the password could grow
/// the account's index without bound from many networks — and every sign-in and listing of
/// the owner with it, for they read the whole index.
pub const MAX_PENDING_SIGN_INS_IN_ALL: usize = 40;

impl Limit {
    /// What creating `new` beside the user's `live` sessions must end, or `None` when the limit
    /// refuses it. Only signed-in sessions count and can be ended: a session still finishing its
    /// sign-in (a second factor to give) neither takes a place nor pushes anyone out — else
    /// whoever knows the password could end the owner's sessions without ever getting in.
    /// Such sessions have limits of their own, [`MAX_PENDING_SIGN_INS`] per network and
    /// [`MAX_PENDING_SIGN_INS_IN_ALL`], and end only each other.
    pub fn ending(&self, live: Vec<SessionRecord>, new: &SessionRecord) -> Option<Vec<SessionRecord>> {
        if !new.stage.is_complete() {
            return Some(pending_ending(live, new));
        }
        let live: Vec<SessionRecord> = live.into_iter().filter(|r| r.stage.is_complete()).collect();
        if live.len() < self.max {
            Some(Vec::new())
        } else if self.action == crate::config::LimitAction::Refuse {
            None
        } else {
            Some(least_recently_used(live, self.max))
        }
    }
}

/// What [`SessionStore::create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The session exists; `ended` are the least recently used sessions it displaced.
    Created { ended: Vec<SessionRecord> },
    /// The user already has `max` live sessions and the limit refuses new ones: nothing was
    /// written.
    Refused,
}

/// The waiting sign-ins that must end for `new` (one more) to fit under both limits: the oldest
/// from its own network past [`MAX_PENDING_SIGN_INS`], then, past
/// [`MAX_PENDING_SIGN_INS_IN_ALL`], the oldest from whichever network holds the most.
fn pending_ending(live: Vec<SessionRecord>, new: &SessionRecord) -> Vec<SessionRecord> {
    use std::collections::HashMap;
    let network = |r: &SessionRecord| crate::auth::throttle::network(r.ip.as_deref());
    let mut by_network: HashMap<String, Vec<SessionRecord>> = HashMap::new();
    for r in live.into_iter().filter(|r| !r.stage.is_complete()) {
        by_network.entry(network(&r)).or_default().push(r);
    }
    let mut ending = Vec::new();
    if let Some(same) = by_network.get_mut(&network(new)) {
        ending = least_recently_used(same.clone(), MAX_PENDING_SIGN_INS);
        same.retain(|r| !ending.iter().any(|e| e.public_id == r.public_id));
    }
    let mut left: usize = by_network.values().map(Vec::len).sum();
    while left + 1 > MAX_PENDING_SIGN_INS_IN_ALL {
        // The network holding the most loses its least recently used (ties: the network whose
        // least recently used is oldest).
        let Some(most) = by_network
            .values_mut()
            .filter(|rs| !rs.is_empty())
            .max_by_key(|rs| {
                let oldest = rs.iter().map(|r| (r.last_seen_at, r.created_at)).min();
                (rs.len(), std::cmp::Reverse(oldest))
            })
        else {
            break;
        };
        most.sort_by_key(|r| (r.last_seen_at, r.created_at));
        ending.push(most.remove(0));
        left -= 1;
    }
    ending
}

/// Of `live` sessions, the ones that must end so that one more fits under `max`: the least
/// recently used first (ties: the oldest).
pub fn least_recently_used(mut live: Vec<SessionRecord>, max: usize) -> Vec<SessionRecord> {
    let excess = (live.len() + 1).saturating_sub(max);
    live.sort_by_key(|r| (r.last_seen_at, r.created_at));
    live.truncate(excess);
    live
}

/// A page of sessions from [`SessionStore::list_page`].
pub struct Page {
    pub sessions: Vec<SessionRecord>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<String>,
}

/// Where sessions live. Implementations keep the raw token out: they only see [`TokenHash`].
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// `redis` or `sql`, for logs and readiness.
    fn kind(&self) -> &'static str;

    /// What a token points to: one round trip.
    async fn load(&self, key: &SessionKey, now: Millis) -> Result<Option<Stored>, StoreError>;

    /// Stores a new active session and indexes it under its user, within the user's `limit`:
    /// atomically, it either ends the least recently used sessions to make room or refuses.
    async fn create(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        limit: &Limit,
        now: Millis,
    ) -> Result<Created, StoreError>;

    /// Overwrites an active session (sliding refresh). Returns false, and writes nothing, when
    /// the session is no longer active — a refresh can never resurrect a revoked session.
    async fn touch(&self, hash: &TokenHash, record: &SessionRecord, now: Millis) -> Result<bool, StoreError>;

    /// Single-flight rotation: if `old` is still the active token of its session, store `next`
    /// under `new` and turn `old` into `rotated` (valid until its grace ends). Returns false when
    /// another request rotated first or the session was revoked.
    async fn rotate(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        next: &SessionRecord,
        rotated: &Rotated,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Live sessions of one user; costs the size of that user's index, never a keyspace scan.
    async fn list_user(&self, user_id: &Uuid, now: Millis) -> Result<Vec<SessionRecord>, StoreError>;

    /// A live session by its public id.
    async fn find(&self, public_id: &str, now: Millis) -> Result<Option<SessionRecord>, StoreError>;

    /// Puts `user` in place of the account snapshot of every live session of `user_id` (its
    /// address was verified, the provider renamed it), keeping each session's expiry. Returns
    /// how many changed. Best effort against requests in flight: a session rotated or refreshed
    /// at the same moment may keep the older snapshot until its next sign-in.
    async fn update_user(
        &self,
        user_id: &Uuid,
        user: &UserSnapshot,
        now: Millis,
    ) -> Result<usize, StoreError>;

    /// Revokes sessions of a user, with their predecessors still in grace, leaving tombstones.
    /// Atomic per user: a concurrent rotation cannot leave a successor alive.
    async fn revoke(
        &self,
        user_id: &Uuid,
        which: Which<'_>,
        revocation: &Revocation,
        now: Millis,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// One page of every live session, for operators. `cursor` is `None` for the first page.
    async fn list_page(&self, cursor: Option<String>, limit: usize, now: Millis) -> Result<Page, StoreError>;

    /// A readiness check: what answered.
    async fn ping(&self) -> Result<Reached, StoreError>;
}

/// What a readiness check reached.
#[derive(Debug, Clone)]
pub struct Reached {
    /// The mode and what answered, safe for a public probe (no addresses).
    pub summary: String,
    /// The primary's address (Sentinel) or the primaries' (cluster): for operators only.
    pub primary: Option<String>,
}
