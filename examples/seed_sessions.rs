//! Benchmark helper: creates many live sessions through the real session service (what a
//! sign-in does after the password check), and writes the cookie values of some of them.
//!
//! ```text
//! cargo run --release --example seed_sessions -- <count> <sessions-per-user> [<cookies-file> <cookies> [<users-file>]]
//! ```
//!
//! With `<users-file>`, the ids of the users the sessions belong to are written there, one per
//! line, so accounts can be created for them (bench/operator_scale.py does).
//!
//! Reads the same configuration as `authauth serve` (`DATABASE_URL`, `REDIS_URL`,
//! `REDIS_KEY_PREFIX`, `SESSION_SECRET`, …). Used by `bench/bench.py`.

use std::{io::Write, sync::Arc};

use authauth::{
    clock::Clock,
    config::Settings,
    session::{record::SignInMethod, record::UserSnapshot, ClientInfo},
    startup, state,
};
use tokio::sync::Semaphore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let per_user: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10).max(1);
    let cookies_file = args.get(2).cloned();
    let cookies_wanted: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let users_file = args.get(4).cloned();

    let mut settings = Settings::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (db, store) = startup::open(&mut settings, startup::Opener::Server).await?;
    let metrics = authauth::metrics::Metrics::new()?;
    // Seeded sessions are fixtures, not sign-ins anyone made: nothing to audit.
    let audit = authauth::audit::Audit::off();
    // Nor anything to mail.
    let mail = authauth::auth::recovery::AccountMail::off(
        settings.mail.clone(),
        url::Url::parse("http://127.0.0.1").expect("a URL"),
    );
    let (sessions, _) = state::services(&settings, &db, &store, &metrics, &audit, mail);
    let clock = Clock::system();
    let users: Vec<uuid::Uuid> = (0..count.div_ceil(per_user))
        .map(|_| uuid::Uuid::new_v4())
        .collect();
    let users = Arc::new(users);
    let limit = Arc::new(Semaphore::new(64));
    let started = std::time::Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let permit = limit.clone().acquire_owned().await?;
        let (sessions, users, clock) = (sessions.clone(), users.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            let user_id = users[i / per_user];
            let snapshot = UserSnapshot {
                email: format!("bench-{user_id}@example.com"),
                full_name: "Bench User".into(),
                picture: None,
                email_verified: false,
            };
            let client = ClientInfo {
                ip: Some("127.0.0.1".into()),
                user_agent: Some("authauth-bench".into()),
                ..ClientInfo::default()
            };
            let issued = sessions
                .create(user_id, snapshot, SignInMethod::Password, &client, clock.now())
                .await;
            drop(permit);
            issued.map(|i| i.cookie_value)
        }));
    }
    let mut cookies = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let cookie = t.await??;
        if i < cookies_wanted {
            cookies.push(cookie);
        }
    }
    if let Some(path) = users_file {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        for u in users.iter() {
            writeln!(f, "{u}")?;
        }
        f.flush()?;
    }
    if let Some(path) = cookies_file {
        let mut f = std::fs::File::create(path)?;
        for c in &cookies {
            writeln!(f, "{c}")?;
        }
    }
    eprintln!(
        "seeded {count} sessions for {} users in {:.1?}",
        users.len(),
        started.elapsed()
    );
    Ok(())
}
