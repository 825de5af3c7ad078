//! Brute-force throttling of password sign-in.
//!
//! Failures are counted in three fixed windows, kept in the session store (Redis or SQL):
//!
//! | bucket | limit | why |
//! |---|---|---|
//! | account + client IP | 10 per 15 min | stops guessing at one account from one place |
//! | account | 100 per hour | the ASVS V2.2.1 ceiling, whatever the number of clients |
//! | client IP | 100 per 15 min | slows credential stuffing across many accounts |
//!
//! While a bucket is full, sign-in answers 429 with `Retry-After` **before** checking the
//! password, for existing and unknown accounts alike — so the limit is no oracle, and the right
//! password is refused exactly like a wrong one. One client alone can add at most 40 failures
//! an hour to an account, less than the account limit: it cannot lock the owner out, who can
//! still sign in from another address. Counters are keyed by SHA-256 of the normalised e-mail
//! and the IP, never the raw values.

use sha2::{Digest, Sha256};

use crate::session::{
    record::Millis,
    store::{AnyStore, StoreError},
};

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

/// The counters for one sign-in attempt.
pub struct Attempt {
    buckets: [(String, Limit); 3],
}

impl Attempt {
    pub fn new(email: &str, ip: Option<&str>) -> Self {
        let email = email.trim().to_lowercase();
        let ip = ip.unwrap_or("unknown");
        Attempt {
            buckets: [
                (format!("ai:{}", digest(&[&email, ip])), ACCOUNT_AND_IP),
                (format!("a:{}", digest(&[&email])), ACCOUNT),
                (format!("i:{}", digest(&[ip])), IP),
            ],
        }
    }

    /// `Some(seconds)` to wait when any bucket is full.
    pub async fn blocked(&self, store: &AnyStore, now: Millis) -> Result<Option<u64>, StoreError> {
        let mut wait: Option<Millis> = None;
        for (key, limit) in &self.buckets {
            let (count, reset_in) = count(store, key, now).await?;
            if count >= limit.max_failures {
                wait = Some(wait.unwrap_or(0).max(reset_in));
            }
        }
        Ok(wait.map(|ms| (ms as u64).div_ceil(1000).max(1)))
    }

    pub async fn failed(&self, store: &AnyStore, now: Millis) -> Result<(), StoreError> {
        for (key, limit) in &self.buckets {
            hit(store, key, limit.window_ms, now).await?;
        }
        Ok(())
    }

    /// After a successful sign-in, this client's failures on this account are forgiven.
    pub async fn succeeded(&self, store: &AnyStore) -> Result<(), StoreError> {
        reset(store, &self.buckets[0].0).await
    }
}

async fn count(store: &AnyStore, key: &str, now: Millis) -> Result<(i64, Millis), StoreError> {
    match store {
        AnyStore::Redis(s) => s.count(key).await,
        AnyStore::Sql(s) => s.count(key, now).await,
    }
}

async fn hit(store: &AnyStore, key: &str, window: Millis, now: Millis) -> Result<(i64, Millis), StoreError> {
    match store {
        AnyStore::Redis(s) => s.hit(key, window).await,
        AnyStore::Sql(s) => s.hit(key, window, now).await,
    }
}

async fn reset(store: &AnyStore, key: &str) -> Result<(), StoreError> {
    match store {
        AnyStore::Redis(s) => s.reset(key).await,
        AnyStore::Sql(s) => s.reset(key).await,
    }
}
