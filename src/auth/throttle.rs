//! Brute-force throttling of password sign-in.
//!
//! Failures are counted in fixed windows, kept in the attempt store (Redis or SQL). Which
//! buckets apply depends on whether the browser is one the account signed in from before (it
//! holds a device cookie for this account, see [`super::device`]):
//!
//! | bucket | limit | applies to | why |
//! |---|---|---|---|
//! | account + client network | 10 per 15 min | unknown browsers | stops guessing at one account from one place |
//! | account | 100 per hour | unknown browsers | the ASVS V2.2.1 ceiling, whatever the number of clients |
//! | client network | 100 per 15 min | unknown browsers | slows credential stuffing across many accounts |
//! | account + device | 10 per 15 min | known browsers | a stolen device cookie buys no more guesses than one place |
//!
//! A known browser is counted only under its own device, so failures piling up from its
//! network — strangers behind the same proxy or office address, an attacker filling the
//! account's ceiling from many networks — never lock the owner out of the browsers they use.
//!
//! Every attempt first *reserves* a failure in its buckets (an atomic increment), and only then
//! is the password checked; a success gives the reservations back. So parallel attempts cannot
//! slip past the limit between a check and a count. A bucket is full when its *failures*
//! reach the limit: reservations of attempts still being checked count only while they are
//! not yet known to be successes, so a burst of correct sign-ins from one place is not refused
//! for the failures it might have been. While a bucket is full, sign-in answers 429 with
//! `Retry-After` before checking the password, for existing and unknown accounts alike — the
//! limit is no oracle, and the right password is refused exactly like a wrong one; refused
//! attempts give their reservation back, so hammering a full bucket does not fill the others.
//! IPv6 clients are counted per /64 (one customer's network), so rotating addresses inside it
//! does not multiply the allowance. Counters are keyed by SHA-256 of the canonical e-mail
//! address, the network and the device, never the raw values.

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::session::{record::Millis, store::StoreError};

/// A counting window: how many hits it holds and how long until it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub count: i64,
    /// Milliseconds until the window ends (at least 1).
    pub reset_in: Millis,
}

/// The port for attempt counters: fixed windows that start with their first hit. Implemented in
/// [`crate::store`] on Redis and SQL; every operation on one key is atomic.
#[async_trait]
pub trait AttemptStore: Send + Sync {
    /// Counts one hit under `key`, starting a window of `window` ms if none is running.
    async fn hit(&self, key: &str, window: Millis, now: Millis) -> Result<Window, StoreError>;

    /// Gives back one hit under `key` (never below zero; nothing once the window ended).
    async fn unhit(&self, key: &str, now: Millis) -> Result<(), StoreError>;

    /// Forgets `key`'s window.
    async fn reset(&self, key: &str) -> Result<(), StoreError>;

    /// Forgets every window whose key starts with `prefix`; returns how many there were. For
    /// operators: it may scan the whole store.
    async fn reset_prefix(&self, prefix: &str) -> Result<u64, StoreError>;
}

/// Lifts every sign-in limit on the account with the canonical address `email` — from every
/// network and device, on passwords and on second-factor codes — and returns how many counters
/// were cleared (the operator's `authauth users unlock`). Limits on client networks (which
/// concern every account there) stay.
pub async fn unlock(store: &dyn AttemptStore, email: &str) -> Result<u64, StoreError> {
    let account = digest(&[email]);
    let mut cleared = store.reset_prefix(&format!("a:{account}")).await?;
    cleared += store.reset_prefix(&format!("ai:{account}:")).await?;
    cleared += store.reset_prefix(&format!("ad:{account}:")).await?;
    Ok(cleared)
}

/// Lifts the limits on the account's *password* failures, from every network and device — what
/// a password reset by e-mail lifts. The limit on wrong second-factor codes stays: a reset
/// proves the mailbox, not the second factor, and lifting it would give whoever reads the
/// mailbox ten more guesses at a code per reset.
pub async fn unlock_passwords(store: &dyn AttemptStore, email: &str) -> Result<(), StoreError> {
    let account = digest(&[email]);
    store.reset(&format!("a:{account}")).await?;
    store.reset_prefix(&format!("ai:{account}:")).await?;
    store.reset_prefix(&format!("ad:{account}:")).await?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_failures: i64,
    pub window_ms: Millis,
}

pub const ACCOUNT_AND_IP: Limit = Limit {
    max_failures: 10,
    window_ms: 15 * 60 * 1000,
};
pub const ACCOUNT: Limit = Limit {
    max_failures: 100,
    window_ms: 60 * 60 * 1000,
};
pub const IP: Limit = Limit {
    max_failures: 100,
    window_ms: 15 * 60 * 1000,
};
pub const ACCOUNT_AND_DEVICE: Limit = Limit {
    max_failures: 10,
    window_ms: 15 * 60 * 1000,
};

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex(&h.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts of a provider sign-in per client network: each start stores a pending flow, so
/// anonymous clients may not create them without bound.
pub const SIGN_IN_STARTS: Limit = Limit {
    max_failures: 30,
    window_ms: 60 * 1000,
};

/// Account creations per client network: each costs a password hash, and each `email_taken`
/// answer tells whether an address has an account.
pub const SIGNUPS: Limit = Limit {
    max_failures: 30,
    window_ms: 60 * 60 * 1000,
};

/// Counts one signup; `Some(seconds)` when the client must wait.
pub async fn signup(
    store: &dyn AttemptStore,
    ip: Option<&str>,
    now: Millis,
) -> Result<Option<u64>, StoreError> {
    let key = format!("u:{}", digest(&[&network(ip)]));
    Ok(count(store, &[(key, SIGNUPS)], now).await?.map(seconds))
}

/// Counts one more in each window; how long until every window that is over its limit ends
/// (`None`: none is).
async fn count(
    store: &dyn AttemptStore,
    windows: &[(String, Limit)],
    now: Millis,
) -> Result<Option<Millis>, StoreError> {
    let mut wait: Option<Millis> = None;
    for (key, limit) in windows {
        let w = store.hit(key, limit.window_ms, now).await?;
        if w.count > limit.max_failures {
            wait = Some(wait.unwrap_or(0).max(w.reset_in));
        }
    }
    Ok(wait)
}

/// Whole seconds to wait, at least one (for `Retry-After`).
fn seconds(ms: Millis) -> u64 {
    (ms.max(0) as u64).div_ceil(1000).max(1)
}

/// Counts one provider sign-in start; `Some(seconds)` when the client must wait.
pub async fn sign_in_start(
    store: &dyn AttemptStore,
    ip: Option<&str>,
    now: Millis,
) -> Result<Option<u64>, StoreError> {
    let key = format!("s:{}", digest(&[&network(ip)]));
    Ok(count(store, &[(key, SIGN_IN_STARTS)], now).await?.map(seconds))
}

/// Mail a person can ask for without being signed in (`POST /auth/password/forgot`), per
/// address — whether or not an account has it, so a refusal says nothing about one.
pub const MAIL_REQUESTS_PER_ADDRESS: Limit = Limit {
    max_failures: 5,
    window_ms: 60 * 60 * 1000,
};

/// The same, per client network.
pub const MAIL_REQUESTS_PER_NETWORK: Limit = Limit {
    max_failures: 30,
    window_ms: 60 * 60 * 1000,
};

/// Verification links sent again to one account (`POST /auth/email/verify/resend`, or a
/// refused sign-in of an unverified account).
pub const VERIFICATION_RESENDS: Limit = Limit {
    max_failures: 3,
    window_ms: 15 * 60 * 1000,
};

/// Counts a request for mail to `address` (a canonical address) from `ip`. `Some(seconds)`:
/// refused, wait that long.
pub async fn mail_request(
    store: &dyn AttemptStore,
    address: &str,
    ip: Option<&str>,
    now: Millis,
) -> Result<Option<u64>, StoreError> {
    let windows = [
        (format!("ma:{}", digest(&[address])), MAIL_REQUESTS_PER_ADDRESS),
        (
            format!("mi:{}", digest(&[&network(ip)])),
            MAIL_REQUESTS_PER_NETWORK,
        ),
    ];
    Ok(count(store, &windows, now).await?.map(seconds))
}

/// Counts a verification link sent again to the account `user`.
pub async fn verification_resend(
    store: &dyn AttemptStore,
    user: &str,
    now: Millis,
) -> Result<Option<u64>, StoreError> {
    let key = format!("mv:{}", digest(&[user]));
    Ok(count(store, &[(key, VERIFICATION_RESENDS)], now)
        .await?
        .map(seconds))
}

/// Wrong second-factor codes for one sign-in (or one session's re-authentication): then that
/// sign-in must start again.
pub const CODES_PER_SIGN_IN: Limit = Limit {
    max_failures: 5,
    window_ms: 15 * 60 * 1000,
};

/// Wrong second-factor codes for one account, however many sign-ins they are spread over: a
/// six-digit code must not be guessable by starting sign-in after sign-in with a known password.
pub const CODES_PER_ACCOUNT: Limit = Limit {
    max_failures: 10,
    window_ms: 15 * 60 * 1000,
};

/// What a refused second factor had too many of.
pub const CODE_ATTEMPTS: &str = "wrong codes";

/// What a refused sign-in (or a password change's wrong current password) had too many of.
pub const SIGN_IN_ATTEMPTS: &str = "failed sign-in attempts";

/// The counters for one sign-in attempt.
pub struct Attempt {
    /// The account-and-client bucket first (a success resets it), then the others.
    buckets: Vec<(String, Limit)>,
}

/// The network a client is counted as: the address itself for IPv4, its /64 for IPv6.
pub fn network(ip: Option<&str>) -> String {
    match ip
        .and_then(|i| i.parse::<std::net::IpAddr>().ok())
        .map(|i| i.to_canonical())
    {
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(v4) => v4.to_string(),
        None => "unknown".into(),
    }
}

impl Attempt {
    /// The counters for a sign-in to the canonical address `email` from `ip`. `device` is the
    /// id of the browser's device cookie when it proves an earlier sign-in to this account.
    pub fn new(email: &str, ip: Option<&str>, device: Option<&str>) -> Self {
        // Every bucket of an account starts with the account's digest, so an operator can lift
        // them all (`authauth users unlock`) without knowing the networks or devices.
        let account = digest(&[email]);
        let buckets = match device {
            Some(device) => vec![(format!("ad:{account}:{}", digest(&[device])), ACCOUNT_AND_DEVICE)],
            None => {
                let net = network(ip);
                vec![
                    (format!("ai:{account}:{}", digest(&[&net])), ACCOUNT_AND_IP),
                    (format!("a:{account}"), ACCOUNT),
                    (format!("i:{}", digest(&[&net])), IP),
                ]
            }
        };
        Attempt { buckets }
    }

    /// The counters for a second-factor code given to the account with the canonical address
    /// `email`, in the sign-in (or session) `scope`: first the scope's own bucket, then the
    /// account's (cleared by `authauth users unlock` like the others).
    pub fn code(email: &str, scope: &str) -> Self {
        let account = digest(&[email]);
        Attempt {
            buckets: vec![
                (format!("c:{}", digest(&[scope])), CODES_PER_SIGN_IN),
                (format!("a:{account}:codes"), CODES_PER_ACCOUNT),
            ],
        }
    }

    /// Whether the scope's own bucket (the first) is the one that is full: the sign-in it
    /// counts must start again.
    pub async fn scope_exhausted(&self, store: &dyn AttemptStore, now: Millis) -> Result<bool, StoreError> {
        let (key, limit) = &self.buckets[0];
        let w = store.hit(key, limit.window_ms, now).await?;
        store.unhit(key, now).await?;
        Ok(w.count > limit.max_failures)
    }

    /// Reserves one failure in every bucket. `Some(seconds)` means a bucket is full: the
    /// attempt is refused and its reservation given back. With `None` the attempt may proceed;
    /// it counts as a failure unless [`Attempt::succeeded`] is called.
    pub async fn reserve(&self, store: &dyn AttemptStore, now: Millis) -> Result<Option<u64>, StoreError> {
        let wait = count(store, &self.buckets, now).await?;
        if wait.is_some() {
            for (key, _) in &self.buckets {
                store.unhit(key, now).await?;
            }
        }
        Ok(wait.map(seconds))
    }

    /// The attempt succeeded: give the reservations back, and forgive this client's earlier
    /// failures on this account.
    pub async fn succeeded(&self, store: &dyn AttemptStore, now: Millis) -> Result<(), StoreError> {
        for (key, _) in &self.buckets[1..] {
            store.unhit(key, now).await?;
        }
        store.reset(&self.buckets[0].0).await
    }
}

#[cfg(test)]
mod tests {
    //! The throttle's arithmetic against the real SQL attempt store (SQLite in memory, the
    //! migrations applied): every limit at its edge, which buckets an attempt counts in, what a
    //! success and a refusal give back, what `unlock` lifts. Both stores' own behaviour is
    //! tested by the store conformance tests; the HTTP behaviour by `tests/api/passwords.rs`.

    use migration::{Migrator, MigratorTrait};

    use super::*;
    use crate::store::sql::{attempts::SqlAttempts, SqlBackend};

    const NOW: Millis = 1_700_000_000_000;

    async fn store() -> SqlAttempts {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        SqlAttempts(SqlBackend::new(db))
    }

    /// Fails `n` attempts, each reserved and never given back; panics if one is refused.
    async fn fail(store: &SqlAttempts, attempt: &Attempt, n: usize) {
        for i in 0..n {
            assert_eq!(
                attempt.reserve(store, NOW).await.unwrap(),
                None,
                "attempt {i} refused"
            );
        }
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_ipv4_per_address() {
        assert_eq!(network(Some("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(network(Some("2001:db8:1:2:bbbb::9")), "2001:db8:1:2::/64");
        assert_eq!(network(Some("::ffff:192.0.2.7")), "192.0.2.7");
        assert_eq!(network(Some("192.0.2.7")), "192.0.2.7");
        assert_eq!(network(None), "unknown");
        assert_eq!(network(Some("not an address")), "unknown");
    }

    #[test]
    fn keys_are_truncated_sha256_of_the_nul_terminated_parts_in_hex() {
        // printf 'abc\0' | sha256sum, first 16 bytes.
        assert_eq!(digest(&["abc"]), "dc1114cd074914bd872cc1f9a23ec910");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(seconds(-5), 1);
        assert_eq!(seconds(0), 1);
        assert_eq!(seconds(1), 1);
        assert_eq!(seconds(1_000), 1);
        assert_eq!(seconds(1_001), 2);
        assert_eq!(seconds(899_999), 900);
    }

    #[tokio::test]
    async fn ten_failures_from_one_place_are_allowed_and_the_eleventh_waits_for_the_window() {
        let store = store().await;
        let attempt = Attempt::new("alice@example.com", Some("192.0.2.1"), None);
        fail(&store, &attempt, 10).await;
        // Fifteen minutes, from the first failure.
        assert_eq!(attempt.reserve(&store, NOW).await.unwrap(), Some(900));
        assert_eq!(attempt.reserve(&store, NOW + 60_000).await.unwrap(), Some(840));
        // The window ends, the account can be tried again.
        assert_eq!(attempt.reserve(&store, NOW + 900_000).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_refused_attempt_gives_its_reservation_back_so_the_other_buckets_do_not_fill() {
        let store = store().await;
        let here = Attempt::new("alice@example.com", Some("192.0.2.1"), None);
        fail(&store, &here, 10).await;
        for _ in 0..200 {
            assert!(here.reserve(&store, NOW).await.unwrap().is_some());
        }
        // The account's hourly bucket holds the ten failures, not 210: another place still
        // has its own ten; the client network's bucket holds ten of its hundred.
        let there = Attempt::new("alice@example.com", Some("198.51.100.7"), None);
        fail(&store, &there, 10).await;
        let w = store
            .hit(&here.buckets[1].0, ACCOUNT.window_ms, NOW)
            .await
            .unwrap();
        assert_eq!(w.count, 21);
        let w = store.hit(&here.buckets[2].0, IP.window_ms, NOW).await.unwrap();
        assert_eq!(w.count, 11);
    }

    #[tokio::test]
    async fn a_success_forgives_the_place_and_gives_back_its_reservation_elsewhere() {
        let store = store().await;
        let attempt = Attempt::new("alice@example.com", Some("192.0.2.1"), None);
        fail(&store, &attempt, 9).await;
        assert_eq!(attempt.reserve(&store, NOW).await.unwrap(), None);
        attempt.succeeded(&store, NOW).await.unwrap();
        // The account-and-place bucket starts over: ten more.
        fail(&store, &attempt, 10).await;
        assert!(attempt.reserve(&store, NOW).await.unwrap().is_some());
        // The account's and the network's buckets hold the 19 failures, not the success.
        let w = store
            .hit(&attempt.buckets[1].0, ACCOUNT.window_ms, NOW)
            .await
            .unwrap();
        assert_eq!(w.count, 20);
        let w = store.hit(&attempt.buckets[2].0, IP.window_ms, NOW).await.unwrap();
        assert_eq!(w.count, 20);
    }

    #[tokio::test]
    async fn a_hundred_failures_from_one_network_slow_every_unknown_browser_there() {
        let store = store().await;
        for i in 0..10 {
            let a = Attempt::new(&format!("user{i}@example.com"), Some("192.0.2.1"), None);
            fail(&store, &a, 10).await;
        }
        let next = Attempt::new("bob@example.com", Some("192.0.2.1"), None);
        assert_eq!(next.reserve(&store, NOW).await.unwrap(), Some(900));
        // Another network is not concerned, nor a browser that signed in to bob before.
        let elsewhere = Attempt::new("bob@example.com", Some("192.0.2.2"), None);
        assert_eq!(elsewhere.reserve(&store, NOW).await.unwrap(), None);
        let known = Attempt::new("bob@example.com", Some("192.0.2.1"), Some("device-1"));
        assert_eq!(known.reserve(&store, NOW).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_hundred_failures_from_many_networks_close_the_account_for_an_hour() {
        let store = store().await;
        for i in 0..10 {
            let a = Attempt::new("alice@example.com", Some(&format!("192.0.2.{i}")), None);
            fail(&store, &a, 10).await;
        }
        let fresh = Attempt::new("alice@example.com", Some("203.0.113.9"), None);
        assert_eq!(fresh.reserve(&store, NOW).await.unwrap(), Some(3600));
        // The owner's own browser is counted under its device only.
        let known = Attempt::new("alice@example.com", Some("203.0.113.9"), Some("device-1"));
        assert_eq!(known.buckets.len(), 1);
        assert_eq!(known.reserve(&store, NOW).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_known_device_has_ten_guesses_of_its_own() {
        let store = store().await;
        let known = Attempt::new("alice@example.com", Some("192.0.2.1"), Some("device-1"));
        fail(&store, &known, 10).await;
        assert_eq!(known.reserve(&store, NOW).await.unwrap(), Some(900));
        // Another device of the same account, or the same device cookie for another account,
        // is another bucket.
        let other = Attempt::new("alice@example.com", Some("192.0.2.1"), Some("device-2"));
        assert_eq!(other.reserve(&store, NOW).await.unwrap(), None);
        let bob = Attempt::new("bob@example.com", Some("192.0.2.1"), Some("device-1"));
        assert_eq!(bob.reserve(&store, NOW).await.unwrap(), None);
        // Unknown browsers at the same place were not counted.
        let unknown = Attempt::new("alice@example.com", Some("192.0.2.1"), None);
        fail(&store, &unknown, 10).await;
    }

    #[tokio::test]
    async fn unlock_lifts_every_limit_of_the_account_and_nothing_else() {
        let store = store().await;
        let here = Attempt::new("alice@example.com", Some("192.0.2.1"), None);
        let known = Attempt::new("alice@example.com", None, Some("device-1"));
        let codes = Attempt::code("alice@example.com", "sign-in-1");
        let bob = Attempt::new("bob@example.com", Some("192.0.2.1"), None);
        fail(&store, &here, 10).await;
        fail(&store, &known, 10).await;
        fail(&store, &codes, 5).await;
        fail(&store, &bob, 10).await;
        // alice: account+place, account, device, codes per account (the scope's bucket is the
        // sign-in's, not the account's).
        assert_eq!(unlock(&store, "alice@example.com").await.unwrap(), 4);
        fail(&store, &here, 10).await;
        fail(&store, &known, 10).await;
        assert!(bob.reserve(&store, NOW).await.unwrap().is_some());
        // The network's bucket stays: 30 failures counted there.
        let w = store.hit(&here.buckets[2].0, IP.window_ms, NOW).await.unwrap();
        assert_eq!(w.count, 31);
        assert_eq!(unlock(&store, "carol@example.com").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_password_reset_lifts_the_password_limits_but_never_the_code_limit() {
        let store = store().await;
        let here = Attempt::new("alice@example.com", Some("192.0.2.1"), None);
        let known = Attempt::new("alice@example.com", None, Some("device-1"));
        let codes = Attempt::code("alice@example.com", "sign-in-1");
        fail(&store, &here, 10).await;
        fail(&store, &known, 10).await;
        fail(&store, &codes, 5).await;
        fail(&store, &Attempt::code("alice@example.com", "sign-in-2"), 5).await;
        unlock_passwords(&store, "alice@example.com").await.unwrap();
        fail(&store, &here, 10).await;
        fail(&store, &known, 10).await;
        // Ten wrong codes for the account: a new sign-in is still refused a guess.
        let after = Attempt::code("alice@example.com", "sign-in-3");
        assert_eq!(after.reserve(&store, NOW).await.unwrap(), Some(900));
    }

    #[tokio::test]
    async fn five_wrong_codes_end_a_sign_in_and_ten_close_the_account() {
        let store = store().await;
        let first = Attempt::code("alice@example.com", "sign-in-1");
        fail(&store, &first, 4).await;
        assert!(!first.scope_exhausted(&store, NOW).await.unwrap());
        fail(&store, &first, 1).await;
        assert!(first.scope_exhausted(&store, NOW).await.unwrap());
        // Asking does not count.
        assert!(first.scope_exhausted(&store, NOW).await.unwrap());
        assert_eq!(first.reserve(&store, NOW).await.unwrap(), Some(900));
        assert!(first.scope_exhausted(&store, NOW).await.unwrap());
        // A new sign-in has five more, but the account only ten in all.
        let second = Attempt::code("alice@example.com", "sign-in-2");
        assert!(!second.scope_exhausted(&store, NOW).await.unwrap());
        fail(&store, &second, 5).await;
        let third = Attempt::code("alice@example.com", "sign-in-3");
        assert_eq!(third.reserve(&store, NOW).await.unwrap(), Some(900));
        assert!(!third.scope_exhausted(&store, NOW).await.unwrap());
        // Another account is not concerned.
        let bob = Attempt::code("bob@example.com", "sign-in-4");
        assert_eq!(bob.reserve(&store, NOW).await.unwrap(), None);
    }

    #[tokio::test]
    async fn thirty_sign_ups_an_hour_per_network() {
        let store = store().await;
        for _ in 0..30 {
            assert_eq!(signup(&store, Some("192.0.2.1"), NOW).await.unwrap(), None);
        }
        assert_eq!(signup(&store, Some("192.0.2.1"), NOW).await.unwrap(), Some(3600));
        assert_eq!(signup(&store, Some("192.0.2.2"), NOW).await.unwrap(), None);
        // Its own counter: provider sign-ins from there are not refused.
        assert_eq!(sign_in_start(&store, Some("192.0.2.1"), NOW).await.unwrap(), None);
    }

    #[tokio::test]
    async fn thirty_provider_sign_in_starts_a_minute_per_network() {
        let store = store().await;
        for _ in 0..30 {
            assert_eq!(sign_in_start(&store, Some("192.0.2.1"), NOW).await.unwrap(), None);
        }
        assert_eq!(
            sign_in_start(&store, Some("192.0.2.1"), NOW + 500).await.unwrap(),
            Some(60)
        );
        assert_eq!(sign_in_start(&store, Some("192.0.2.2"), NOW).await.unwrap(), None);
        assert_eq!(signup(&store, Some("192.0.2.1"), NOW).await.unwrap(), None);
    }

    #[tokio::test]
    async fn five_mails_an_hour_per_address_and_thirty_per_network() {
        let store = store().await;
        for _ in 0..5 {
            assert_eq!(
                mail_request(&store, "a@example.com", Some("192.0.2.1"), NOW)
                    .await
                    .unwrap(),
                None
            );
        }
        assert_eq!(
            mail_request(&store, "a@example.com", Some("192.0.2.2"), NOW)
                .await
                .unwrap(),
            Some(3600)
        );
        // Five counted on the first network; 25 more addresses from there, then it is full.
        for i in 0..25 {
            let address = format!("n{i}@example.com");
            assert_eq!(
                mail_request(&store, &address, Some("192.0.2.1"), NOW)
                    .await
                    .unwrap(),
                None
            );
        }
        assert_eq!(
            mail_request(&store, "fresh@example.com", Some("192.0.2.1"), NOW)
                .await
                .unwrap(),
            Some(3600)
        );
        assert_eq!(
            mail_request(&store, "fresh@example.com", Some("192.0.2.3"), NOW)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn three_verification_links_again_per_account() {
        let store = store().await;
        for _ in 0..3 {
            assert_eq!(verification_resend(&store, "user-1", NOW).await.unwrap(), None);
        }
        assert_eq!(
            verification_resend(&store, "user-1", NOW).await.unwrap(),
            Some(900)
        );
        assert_eq!(verification_resend(&store, "user-2", NOW).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_longest_wait_of_the_full_buckets_is_the_answer() {
        let store = store().await;
        let windows = [
            (
                "w:short".to_string(),
                Limit {
                    max_failures: 1,
                    window_ms: 10_000,
                },
            ),
            (
                "w:long".to_string(),
                Limit {
                    max_failures: 1,
                    window_ms: 50_000,
                },
            ),
            (
                "w:roomy".to_string(),
                Limit {
                    max_failures: 100,
                    window_ms: 90_000,
                },
            ),
        ];
        assert_eq!(count(&store, &windows, NOW).await.unwrap(), None);
        assert_eq!(count(&store, &windows, NOW + 1_000).await.unwrap(), Some(49_000));
        // The short window has ended and started again; the long one still decides.
        assert_eq!(count(&store, &windows, NOW + 20_000).await.unwrap(), Some(30_000));
    }
}
