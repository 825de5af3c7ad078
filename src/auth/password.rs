//! Password rules and hashing (argon2id, OWASP parameters), off the async workers.

use std::{
    collections::HashSet,
    sync::{Arc, LazyLock},
};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use secrecy::{ExposeSecret, SecretString};

use crate::config::HashCost;

/// The shortest accepted password, in characters (Unicode scalar values).
pub const MIN_CHARS: usize = 12;
/// The longest accepted password. Nothing is ever truncated: longer ones are refused.
pub const MAX_CHARS: usize = 256;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    #[error("the password must have at least {MIN_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_CHARS} characters")]
    TooLong,
    #[error("this password is too common: it appears in lists of breached passwords")]
    Common,
    #[error("the password must not be your e-mail address")]
    SameAsEmail,
}

/// Checks a new password: length (any Unicode, spaces included) and the breached list. No
/// composition rules.
pub fn check_new(password: &str, email: &str) -> Result<(), PasswordRule> {
    let n = password.chars().count();
    if n < MIN_CHARS {
        return Err(PasswordRule::TooShort);
    }
    if n > MAX_CHARS {
        return Err(PasswordRule::TooLong);
    }
    let lower = password.to_lowercase();
    if COMMON.contains(lower.as_str()) {
        return Err(PasswordRule::Common);
    }
    if lower.trim() == email.trim().to_lowercase() {
        return Err(PasswordRule::SameAsEmail);
    }
    Ok(())
}

/// argon2id at the configured cost (OWASP Password Storage Cheat Sheet: m = 19 MiB, t = 2,
/// p = 1 by default; see [`HashCost`]).
fn argon2(cost: &HashCost) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, cost.params().clone())
}

/// Whether `hash` was made by another algorithm or at another cost than `cost`: then a sign-in
/// that proves the password stores it again at the current cost.
fn outdated(hash: &PasswordHash<'_>, cost: &HashCost) -> bool {
    if hash.algorithm != Algorithm::Argon2id.ident() || hash.version != Some(Version::V0x13.into()) {
        return true;
    }
    Params::try_from(hash).map_or(true, |p| {
        (p.m_cost(), p.t_cost(), p.p_cost()) != (cost.memory_kib(), cost.iterations(), 1)
    })
}

/// Runs one argon2id computation and records how long it took: every computation is counted,
/// so a check that skipped one would show.
fn timed<T>(metrics: &crate::metrics::Metrics, op: &str, argon2: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let out = argon2();
    metrics.password_hash(op, started.elapsed());
    out
}

/// What checking a password found.
#[derive(Debug)]
pub struct Verified {
    /// The password matches (always false without a real hash).
    pub ok: bool,
    /// The password matched a hash made at another cost: the same password hashed at the current
    /// one, to be stored in its place.
    pub rehashed: Option<String>,
}

/// Hashes and verifies passwords on a few dedicated threads of lower CPU priority, fed by a
/// bounded queue:
///
/// - hashing never runs on the async workers, and when a core is shared the scheduler prefers
///   request handling over hashing, so sign-ins do not stall authenticated requests;
/// - memory stays bounded (19 MiB per thread, reused);
/// - a flood of sign-ins gets 503 `server_busy` at once when the queue is full instead of an
///   ever-growing wait.
#[derive(Clone)]
pub struct Hasher {
    jobs: std::sync::mpsc::SyncSender<Job>,
    /// `authauth_password_hash_queue_depth`: hashes queued or running.
    metrics: crate::metrics::Metrics,
    /// Verified against when the account does not exist, so both cases cost the same.
    dummy: Arc<String>,
    cost: Arc<HashCost>,
}

type Job = Box<dyn FnOnce() + Send>;

/// How many hashes may wait for a thread before new ones are refused.
pub const QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many password checks are waiting")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Lowers the calling thread's CPU priority (Linux nice values are per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id, with no pointers involved.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

impl Hasher {
    /// Starts `threads` hashing threads (at least one), hashing at `cost`.
    pub fn new(threads: usize, cost: HashCost, metrics: crate::metrics::Metrics) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("authauth-hash-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        // At the current cost, so an unknown account costs what a known one does.
        let dummy = argon2(&cost)
            .hash_password(
                b"authauth dummy password for unknown accounts",
                &SaltString::generate(&mut OsRng),
            )
            .map(|h| h.to_string())
            .unwrap_or_default();
        Hasher {
            jobs: tx,
            metrics,
            dummy: Arc::new(dummy),
            cost: Arc::new(cost),
        }
    }

    /// Runs `work` on a hashing thread.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let metrics = self.metrics.clone();
        let job: Job = Box::new(move || {
            let result = work();
            // Done before the caller hears of it: the gauge never counts a finished job.
            metrics.hash_queue(-1);
            let _ = done.send(result);
        });
        self.metrics.hash_queue(1);
        self.jobs.try_send(job).map_err(|e| {
            self.metrics.hash_queue(-1);
            match e {
                std::sync::mpsc::TrySendError::Full(_) => HashError::Busy,
                std::sync::mpsc::TrySendError::Disconnected(_) => {
                    HashError::Failed("no hashing thread".into())
                }
            }
        })?;
        result
            .await
            .map_err(|_| HashError::Failed("the hashing thread stopped".into()))
    }

    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let cost = self.cost.clone();
        let metrics = self.metrics.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            timed(&metrics, "hash", || {
                argon2(&cost).hash_password(password.expose_secret().as_bytes(), &salt)
            })
            .map(|h| h.to_string())
            .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// True when `password` matches `hash`. With `hash = None` (no such account, or an account
    /// without a password) it does the same work and returns false.
    pub async fn verify(&self, password: SecretString, hash: Option<String>) -> Result<bool, HashError> {
        Ok(self.check(password, hash, false).await?.ok)
    }

    /// [`Hasher::verify`], and when the password matches a hash of another cost (the operator
    /// changed it, or the hash predates the setting), the password hashed again at the current
    /// cost — in the same job, so the password never waits in memory for a second one.
    pub async fn verify_and_upgrade(
        &self,
        password: SecretString,
        hash: Option<String>,
    ) -> Result<Verified, HashError> {
        self.check(password, hash, true).await
    }

    /// The one password check; `upgrade`: also hash an outdated match again (only a caller that
    /// stores the result asks, so the others never pay for a hash they would throw away).
    async fn check(
        &self,
        password: SecretString,
        hash: Option<String>,
        upgrade: bool,
    ) -> Result<Verified, HashError> {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.as_ref().clone());
        let cost = self.cost.clone();
        let metrics = self.metrics.clone();
        self.run(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| HashError::Failed(e.to_string()))?;
            let password = password.expose_secret().as_bytes();
            // The hash's own parameters decide the work (argon2 reads them from the hash). The
            // check runs whether or not the account exists — `real` is looked at afterwards —
            // so an unknown address costs exactly what a wrong password does (and is counted
            // alike in `authauth_password_hash_duration_seconds{op="verify"}`).
            let matches = timed(&metrics, "verify", || {
                argon2(&cost).verify_password(password, &parsed).is_ok()
            });
            let ok = matches && real;
            let rehashed = if upgrade && ok && outdated(&parsed, &cost) {
                let salt = SaltString::generate(&mut OsRng);
                let new = timed(&metrics, "hash", || argon2(&cost).hash_password(password, &salt))
                    .map_err(|e| HashError::Failed(e.to_string()))?
                    .to_string();
                Some(new)
            } else {
                None
            };
            Ok(Verified { ok, rehashed })
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters_not_bytes_and_allows_any_unicode() {
        assert_eq!(check_new("short pass", "a@b.c"), Err(PasswordRule::TooShort));
        assert_eq!(check_new(&"🔑".repeat(12), "a@b.c"), Ok(()));
        assert_eq!(check_new("correct horse battery", "a@b.c"), Ok(()));
        assert_eq!(
            check_new(&"x".repeat(MAX_CHARS + 1), "a@b.c"),
            Err(PasswordRule::TooLong)
        );
        // The bounds themselves are allowed.
        assert_eq!(check_new(&"xy".repeat(MAX_CHARS / 2), "a@b.c"), Ok(()));
        assert_eq!(check_new("correct hors", "a@b.c"), Ok(()));
    }

    #[test]
    fn the_lists_comments_and_blank_lines_are_not_passwords() {
        assert!(COMMON.len() > 1000, "the list is loaded");
        assert!(!COMMON.contains(""));
        assert!(!COMMON.iter().any(|p| p.starts_with('#')));
    }

    #[test]
    fn common_passwords_are_refused_case_insensitively() {
        for p in [
            "password1234",
            "123456789012",
            "Password1234",
            "aaaaaaaaaaaa",
            "qwertyuiopas",
        ] {
            assert_eq!(check_new(p, "a@b.c"), Err(PasswordRule::Common), "{p}");
        }
    }

    fn queue_depth(metrics: &crate::metrics::Metrics) -> String {
        metrics
            .render()
            .lines()
            .find(|l| l.starts_with("authauth_password_hash_queue_depth "))
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn the_queue_is_bounded_counted_and_hashes_at_lower_priority() {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let h = Hasher::new(1, HashCost::default(), metrics.clone());
        // The hashing thread runs at nice 10, below request handling.
        #[cfg(target_os = "linux")]
        {
            // SAFETY: plain system calls about the calling thread itself.
            let nice = h
                .run(|| unsafe {
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    libc::getpriority(libc::PRIO_PROCESS, tid)
                })
                .await
                .unwrap();
            assert_eq!(nice, 10);
        }
        assert_eq!(queue_depth(&metrics), "authauth_password_hash_queue_depth 0");
        // One job holds the thread, QUEUE wait: the next is refused at once, uncounted.
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(gate));
        let (running, started) = std::sync::mpsc::channel::<()>();
        let mut waiting = Vec::new();
        {
            let (gate, h) = (gate.clone(), h.clone());
            waiting.push(tokio::spawn(async move {
                h.run(move || {
                    let _ = running.send(());
                    let _ = gate.lock().map(|g| g.recv());
                })
                .await
            }));
        }
        // The thread has taken it off the queue before the others fill the queue.
        tokio::task::spawn_blocking(move || started.recv_timeout(std::time::Duration::from_secs(10)))
            .await
            .unwrap()
            .unwrap();
        for _ in 0..QUEUE {
            let gate = gate.clone();
            let h = h.clone();
            waiting.push(tokio::spawn(async move {
                h.run(move || {
                    let _ = gate.lock().map(|g| g.recv());
                })
                .await
            }));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while queue_depth(&metrics) != format!("authauth_password_hash_queue_depth {}", QUEUE + 1) {
            assert!(std::time::Instant::now() < deadline, "{}", queue_depth(&metrics));
            tokio::task::yield_now().await;
        }
        assert!(matches!(h.run(|| ()).await, Err(HashError::Busy)));
        assert_eq!(
            queue_depth(&metrics),
            format!("authauth_password_hash_queue_depth {}", QUEUE + 1)
        );
        for _ in 0..=QUEUE {
            release.send(()).unwrap();
        }
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        assert_eq!(queue_depth(&metrics), "authauth_password_hash_queue_depth 0");
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify_without_truncation() {
        let h = Hasher::new(2, HashCost::default(), crate::metrics::Metrics::new().unwrap());
        let long = "p".repeat(100);
        let a = h.hash(SecretString::from(long.clone())).await.unwrap();
        let b = h.hash(SecretString::from(long.clone())).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_ne!(a, b);
        assert!(h
            .verify(SecretString::from(long.clone()), Some(a.clone()))
            .await
            .unwrap());
        assert!(!h
            .verify(SecretString::from(long[..72].to_string()), Some(a))
            .await
            .unwrap());
        assert!(!h.verify(SecretString::from(long), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_password_hashed_at_another_cost_is_hashed_again_at_the_current_one() {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let cheap = Hasher::new(1, HashCost::new(1024, 1).unwrap(), metrics.clone());
        let current = Hasher::new(1, HashCost::new(12288, 3).unwrap(), metrics);
        let pw = || SecretString::from("correct horse battery".to_string());
        let old = cheap.hash(pw()).await.unwrap();
        assert!(old.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{old}");
        // The unknown-account hash is made at the current cost, so it costs what a real one does.
        assert!(current.dummy.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"));

        let v = current.verify_and_upgrade(pw(), Some(old.clone())).await.unwrap();
        assert!(v.ok);
        let new = v.rehashed.expect("hashed again at the current cost");
        assert!(new.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"), "{new}");
        assert!(current.verify(pw(), Some(new.clone())).await.unwrap());
        // At the current cost already: nothing to do.
        let v = current.verify_and_upgrade(pw(), Some(new)).await.unwrap();
        assert!(v.ok && v.rehashed.is_none());
        // A wrong password, or no account, proves nothing and gets nothing.
        let wrong = SecretString::from("wrong horse battery".to_string());
        let v = current.verify_and_upgrade(wrong, Some(old)).await.unwrap();
        assert!(!v.ok && v.rehashed.is_none());
        let v = current.verify_and_upgrade(pw(), None).await.unwrap();
        assert!(!v.ok && v.rehashed.is_none());
    }

    #[tokio::test]
    async fn a_plain_check_of_an_outdated_hash_hashes_nothing_again() {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let old = Hasher::new(1, HashCost::new(1024, 1).unwrap(), metrics.clone())
            .hash(SecretString::from("correct horse battery".to_string()))
            .await
            .unwrap();
        let hashes = || {
            metrics
                .render()
                .lines()
                .find_map(|l| l.strip_prefix(r#"authauth_password_hash_duration_seconds_count{op="hash"} "#))
                .map(str::to_string)
        };
        let current = Hasher::new(1, HashCost::new(12288, 3).unwrap(), metrics.clone());
        let before = hashes();
        assert_eq!(before.as_deref(), Some("1"), "the old password's hash");
        // Re-authentication and password changes check without storing: no second hash.
        assert!(current
            .verify(SecretString::from("correct horse battery".to_string()), Some(old))
            .await
            .unwrap());
        assert_eq!(hashes(), before);
    }

    #[test]
    fn a_hash_of_another_algorithm_version_or_cost_is_outdated() {
        let cost = HashCost::default();
        let outdated_str = |h: &str| outdated(&PasswordHash::new(h).unwrap(), &cost);
        let salt = "$c2FsdHNhbHRzYWx0$";
        let digest = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!outdated_str(&format!(
            "$argon2id$v=19$m=19456,t=2,p=1{salt}{digest}"
        )));
        assert!(outdated_str(&format!(
            "$argon2i$v=19$m=19456,t=2,p=1{salt}{digest}"
        )));
        assert!(outdated_str(&format!(
            "$argon2id$v=16$m=19456,t=2,p=1{salt}{digest}"
        )));
        assert!(outdated_str(&format!(
            "$argon2id$v=19$m=19457,t=2,p=1{salt}{digest}"
        )));
        assert!(outdated_str(&format!(
            "$argon2id$v=19$m=19456,t=3,p=1{salt}{digest}"
        )));
        assert!(outdated_str(&format!(
            "$argon2id$v=19$m=19456,t=2,p=2{salt}{digest}"
        )));
    }
}
