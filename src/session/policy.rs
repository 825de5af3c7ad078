//! Timeouts and rotation: pure functions of a record and `now`, so they are tested without
//! sleeping.

use std::time::Duration;

use super::record::{Millis, SessionRecord};
use crate::config::{LimitAction, SessionSettings};

/// How long a revocation tombstone remembers why a session ended (capped by the session's own
/// absolute lifetime, so no key outlives it).
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(60 * 60);

/// What a validated request should do to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing: the request costs one read.
    Nothing,
    /// Slide the idle expiry forward (throttled to once per `touch_interval`).
    Touch,
    /// Replace the token (every `rotation_interval`).
    Rotate,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub idle: Duration,
    pub absolute: Duration,
    pub rotation_interval: Duration,
    pub grace: Duration,
    /// Sliding refreshes happen at most this often: a tenth of the idle timeout, at most a
    /// minute. The idle timeout is therefore honoured to within that margin.
    pub touch_interval: Duration,
    /// The most live sessions one user may have, and what a sign-in beyond it does.
    pub max_per_user: usize,
    pub on_limit: LimitAction,
}

fn ms(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

impl Policy {
    pub fn new(idle: Duration, absolute: Duration, rotation_interval: Duration, grace: Duration) -> Self {
        let touch_interval = (idle / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
        Policy {
            idle,
            absolute,
            rotation_interval,
            grace,
            touch_interval,
            max_per_user: crate::config::defaults::MAX_SESSIONS_PER_USER,
            on_limit: LimitAction::EndLeastRecentlyUsed,
        }
    }

    /// The same policy with another per-user session limit.
    pub fn with_limit(mut self, max_per_user: usize, on_limit: LimitAction) -> Self {
        self.max_per_user = max_per_user;
        self.on_limit = on_limit;
        self
    }

    pub fn from_settings(s: &SessionSettings) -> Self {
        Policy::new(
            s.idle_timeout,
            s.absolute_timeout,
            s.rotation_interval,
            s.rotation_grace,
        )
        .with_limit(s.max_per_user, s.on_limit)
    }

    /// `(idle_expires_at, absolute_expires_at)` for a session created at `now`.
    pub fn initial_expiry(&self, now: Millis) -> (Millis, Millis) {
        let absolute = now.saturating_add(ms(self.absolute));
        (now.saturating_add(ms(self.idle)).min(absolute), absolute)
    }

    pub fn due(&self, r: &SessionRecord, now: Millis) -> Due {
        if now - r.token_issued_at >= ms(self.rotation_interval) {
            Due::Rotate
        } else if now - r.last_seen_at >= ms(self.touch_interval) {
            Due::Touch
        } else {
            Due::Nothing
        }
    }

    /// [`Policy::due`] for a check whose answer cannot reach the browser's cookie jar (a
    /// backend checking the session on the browser's behalf): never a rotation — its new cookie
    /// would be lost, and the browser signed out once the grace ends — only the sliding refresh,
    /// so an active user is not timed out. The browser's own next direct request rotates.
    pub fn due_passive(&self, r: &SessionRecord, now: Millis) -> Due {
        match self.due(r, now) {
            Due::Rotate if now - r.last_seen_at >= ms(self.touch_interval) => Due::Touch,
            Due::Rotate => Due::Nothing,
            due => due,
        }
    }

    /// The record after a request at `now`: seen, idle expiry slid (never past absolute).
    pub fn touched(&self, r: &SessionRecord, now: Millis) -> SessionRecord {
        let mut next = r.clone();
        next.last_seen_at = now;
        next.idle_expires_at = now.saturating_add(ms(self.idle)).min(r.absolute_expires_at);
        if next.previous.as_ref().is_some_and(|p| p.grace_until <= now) {
            next.previous = None;
        }
        next
    }

    pub fn grace_ms(&self) -> Millis {
        ms(self.grace)
    }
}

/// How long a tombstone for `r`, revoked at `now`, is kept: [`TOMBSTONE_TTL`], but never past
/// the session's own absolute expiry (no key outlives its session), and at least a second (a
/// store TTL of 0 means "no expiry" or an error, depending on the store).
pub fn tombstone_ttl(r: &SessionRecord, now: Millis) -> Millis {
    ms(TOMBSTONE_TTL).min(r.absolute_expires_at - now).max(1000)
}

/// Milliseconds left until `at`, at least 1 (a store TTL of 0 would mean "no expiry" or an
/// error, depending on the store).
pub fn ttl_until(at: Millis, now: Millis) -> Millis {
    (at - now).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::record::{SignInMethod, UserSnapshot};

    fn record(now: Millis, p: &Policy) -> SessionRecord {
        let (idle, abs) = p.initial_expiry(now);
        SessionRecord {
            public_id: "AAAAAAAAbbbbbbbbbbbbbbbb".into(),
            user_id: uuid::Uuid::nil(),
            user: UserSnapshot {
                email: "a@b.c".into(),
                full_name: "A".into(),
                picture: None,
                email_verified: false,
            },
            method: SignInMethod::Password,
            created_at: now,
            last_seen_at: now,
            idle_expires_at: idle,
            absolute_expires_at: abs,
            token_issued_at: now,
            ip: None,
            user_agent: None,
            previous: None,
            stage: Default::default(),
            amr: Vec::new(),
            authenticated_at: None,
        }
    }

    #[test]
    fn idle_slides_but_never_past_absolute() {
        let p = Policy::new(
            Duration::from_secs(2),
            Duration::from_secs(6),
            Duration::from_secs(60),
            Duration::from_secs(5),
        );
        let mut r = record(0, &p);
        assert_eq!((r.idle_expires_at, r.absolute_expires_at), (2000, 6000));
        for now in [1000, 2000, 3000, 4000, 5000] {
            assert!(!r.is_expired(now), "expired at {now}");
            r = p.touched(&r, now);
        }
        assert_eq!(r.idle_expires_at, 6000);
        assert!(r.is_expired(6000), "absolute timeout is never extended");
        let idle = record(0, &p);
        assert!(idle.is_expired(2000) && !idle.is_expired(1999));
    }

    #[test]
    fn refreshes_are_throttled_and_rotation_comes_on_schedule() {
        let p = Policy::new(
            Duration::from_secs(1800),
            Duration::from_secs(43200),
            Duration::from_secs(900),
            Duration::from_secs(60),
        );
        assert_eq!(p.touch_interval, Duration::from_secs(60));
        // Real clock values, not 0: elapsed time is a difference, and `t - 0 == t + 0` would
        // let a sign slip through unnoticed (cargo-mutants found exactly that).
        let t0: Millis = 1_900_000_000_000;
        let r = record(t0, &p);
        assert_eq!(p.due(&r, t0 + 59_999), Due::Nothing);
        assert_eq!(p.due(&r, t0 + 60_000), Due::Touch);
        assert_eq!(p.due(&r, t0 + 900_000), Due::Rotate);
        let seen = p.touched(&r, t0 + 100_000);
        assert_eq!(p.due(&seen, t0 + 159_999), Due::Nothing, "seen a moment ago");
        assert_eq!(p.due(&seen, t0 + 160_000), Due::Touch);
    }

    #[test]
    fn a_refresh_keeps_the_predecessor_while_it_is_in_grace_and_drops_it_after() {
        // Revocation finds the predecessor token through `previous`: dropping it during the
        // grace period would leave the old cookie alive after a logout until the grace ends.
        let p = Policy::new(
            Duration::from_secs(1800),
            Duration::from_secs(43200),
            Duration::from_secs(900),
            Duration::from_secs(60),
        );
        let t0: Millis = 1_900_000_000_000;
        let mut r = record(t0, &p);
        r.previous = Some(crate::session::record::Predecessor {
            hash: "old".into(),
            grace_until: t0 + 60_000,
        });
        assert!(p.touched(&r, t0 + 59_999).previous.is_some(), "still in grace");
        assert!(p.touched(&r, t0 + 60_000).previous.is_none(), "grace over");
    }

    #[test]
    fn a_passive_check_never_rotates_but_still_slides_the_idle_expiry() {
        let p = Policy::new(
            Duration::from_secs(1800),
            Duration::from_secs(43200),
            Duration::from_secs(900),
            Duration::from_secs(60),
        );
        let r = record(0, &p);
        assert_eq!(p.due_passive(&r, 59_999), Due::Nothing);
        assert_eq!(p.due_passive(&r, 60_000), Due::Touch);
        assert_eq!(
            p.due_passive(&r, 900_000),
            Due::Touch,
            "rotation due: refresh only"
        );
        let seen = p.touched(&r, 890_000);
        assert_eq!(p.due(&seen, 900_000), Due::Rotate);
        assert_eq!(
            p.due_passive(&seen, 900_000),
            Due::Nothing,
            "refreshed a moment ago"
        );
    }

    #[test]
    fn tombstones_never_outlive_the_session() {
        let p = Policy::new(
            Duration::from_secs(2),
            Duration::from_secs(6),
            Duration::from_secs(60),
            Duration::from_secs(5),
        );
        let r = record(0, &p);
        assert_eq!(tombstone_ttl(&r, 1000), 5000);
        assert_eq!(tombstone_ttl(&r, 5_900), 1000, "at least a second");
        let long = record(
            0,
            &Policy::new(
                Duration::from_secs(7200),
                Duration::from_secs(86_400),
                Duration::from_secs(60),
                Duration::from_secs(5),
            ),
        );
        assert_eq!(tombstone_ttl(&long, 1000), 3_600_000, "an hour at most");
    }
}
