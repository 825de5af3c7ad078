//! `authauth config check`.

use std::time::Duration;

use clap::Subcommand;
use secrecy::ExposeSecret;

use super::{load_dotenv, CliError};
use crate::{
    config::{redact_url, AppEnv, SecretSource, Settings, DEV_SECRET_FILE},
    db,
    session::store::Reached,
    startup::{self, StartupError},
};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration, connect to the database and the session store, and print
    /// what was found.
    ///
    /// Checks the mode APP_ENV (or NODE_ENV) selects, or the one given with --env; a
    /// development check also lists what production would refuse. Exits 2 on an invalid
    /// configuration or while migrations are pending on a configured database (`serve` would
    /// refuse to start), 1 when a dependency does not answer.
    ///
    /// Example: authauth config check --env production
    Check {
        /// Check the configuration as this mode will run it, whatever APP_ENV says.
        #[arg(long, value_enum, value_name = "MODE")]
        env: Option<Mode>,
    },
}

/// The modes `--env` accepts.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    Development,
    Production,
}

impl From<Mode> for AppEnv {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Development => AppEnv::Development,
            Mode::Production => AppEnv::Production,
        }
    }
}

pub async fn run(cmd: ConfigCommand) -> Result<(), CliError> {
    let ConfigCommand::Check { env: mode } = cmd;
    let vars = load_dotenv()?;
    let settings = match mode {
        Some(mode) => Settings::from_vars_as(&vars, mode.into())?,
        None => Settings::from_vars(&vars)?,
    };
    let s = &settings;
    outln!(
        "configuration: valid ({}{})",
        s.env.as_str(),
        if mode.is_some() {
            ", as asked with --env"
        } else {
            ""
        }
    )?;
    outln!("  listen           {}:{}", s.host, s.port)?;
    if let Some(url) = &s.public_url {
        outln!("  public url       {url}")?;
    }
    match &s.allowed_hosts {
        Some(hosts) => outln!(
            "  allowed hosts    {} (/health and /ready: any)",
            hosts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )?,
        None => outln!("  allowed hosts    any (development; set ALLOWED_HOSTS to check)")?,
    }
    outln!(
        "  database         {}{}",
        redact_url(s.database.url.expose_secret()),
        if s.database.embedded {
            " (embedded default)"
        } else {
            ""
        }
    )?;
    match &s.redis {
        Some(r) => {
            outln!(
                "  session store    redis {} {} (key prefix `{}`)",
                r.mode.as_str(),
                r.redacted_urls(),
                r.key_prefix
            )?;
            if let Some(sentinel) = &r.sentinel {
                outln!("  sentinel master  {}", sentinel.master)?;
            }
            match r.wait {
                Some(w) => outln!(
                    "  revocations      wait for {} replica(s), at most {:?}",
                    w.replicas,
                    w.timeout
                )?,
                None => outln!("  revocations      acknowledged by the primary (REDIS_WAIT_REPLICAS off)")?,
            }
        }
        None => outln!("  session store    sql (the database above)")?,
    }
    let secret = match &s.session.secret_source {
        SecretSource::Environment => format!("SESSION_SECRET ({} key(s))", s.session.secrets.len()),
        SecretSource::GeneratedFile(p) => format!("development secret in {}", p.display()),
        SecretSource::Unresolved => {
            format!("development secret in ./{DEV_SECRET_FILE} (created on first serve)")
        }
    };
    outln!("  session secret   {secret}")?;
    outln!(
        "  session cookie   {} (Secure: {}, HttpOnly, SameSite=Lax)",
        s.session.cookie_name,
        if s.session.cookie_secure { "yes" } else { "no" }
    )?;
    outln!(
        "  session timeouts idle {}, absolute {}, rotation every {} (grace {})",
        humantime::format_duration(s.session.idle_timeout),
        humantime::format_duration(s.session.absolute_timeout),
        humantime::format_duration(s.session.rotation_interval),
        humantime::format_duration(s.session.rotation_grace)
    )?;
    match &s.google {
        Some(g) => outln!(
            "  google sign-in   issuer {}, callback {}",
            g.issuer,
            g.callback_url
        )?,
        None => outln!("  google sign-in   not configured")?,
    }
    outln!(
        "  cors origins     {}",
        if s.cors_origins.is_empty() {
            "(none)".to_string()
        } else {
            s.cors_origins.join(", ")
        }
    )?;

    for warning in &s.warnings {
        outln!("warning: {warning}")?;
    }
    if s.env == AppEnv::Development {
        // What a newcomer meets next: the same file with APP_ENV=production.
        match Settings::from_vars_as(&vars, AppEnv::Production) {
            Ok(_) => outln!(
                "production:       this configuration is valid in production too \
                 (`authauth config check --env production` checks it fully)"
            )?,
            Err(e) => {
                outln!(
                    "production:       with APP_ENV=production, `serve` would refuse this configuration \
                     (`authauth config check --env production`):"
                )?;
                for p in &e.problems {
                    outln!("  - {}: {}", p.variable, p.message)?;
                }
            }
        }
    }

    // A check reads; it never brings the embedded database into being (`serve` does).
    if let Some(file) = s
        .database
        .embedded
        .then(|| db::embedded_file(&s.database))
        .flatten()
        .filter(|f| !std::path::Path::new(f).exists())
    {
        outln!(
            "database:         not created yet ({file}): `authauth serve` creates and migrates \
             the embedded default"
        )?;
        if let Some(redis) = &s.redis {
            let store = crate::store::Stores::redis(
                crate::store::redis::RedisBackend::connect(redis)
                    .map_err(|e| CliError::Failed(anyhow::Error::new(e)))?,
            );
            match store.ping_within(Duration::from_secs(3)).await {
                Ok(reached) => outln!("session store:    ok ({})", describe(store.kind(), &reached))?,
                Err(e) => {
                    outln!("session store:    FAILED ({}) {}", store.kind(), e.chain())?;
                    return Err(CliError::Failed(anyhow::anyhow!("session store did not answer")));
                }
            }
        }
        return Ok(());
    }

    let mut failures = Vec::new();
    let mut pending = Vec::new();
    match startup::connect(s).await {
        Err(e) => {
            outln!("database:         FAILED {e:#}")?;
            failures.push("database");
        }
        Ok((conn, store)) => {
            match db::pending_migrations(&conn).await {
                Ok(p) if p.is_empty() => outln!("database:         ok, migrations up to date")?,
                Ok(p) if s.database.embedded => outln!(
                    "database:         ok, {} pending migration(s): `authauth serve` applies them \
                     to the embedded default (or run `authauth migrate up`)",
                    p.len(),
                )?,
                Ok(p) => {
                    outln!(
                        "database:         NOT READY, {} pending migration(s): run `authauth migrate up`; \
                         `serve` refuses to start until then",
                        p.len()
                    )?;
                    pending = p;
                }
                Err(e) => {
                    outln!("database:         FAILED {e}")?;
                    failures.push("database");
                }
            }
            match store.ping_within(Duration::from_secs(3)).await {
                Ok(reached) => outln!("session store:    ok ({})", describe(store.kind(), &reached))?,
                Err(e) => {
                    outln!("session store:    FAILED ({}) {}", store.kind(), e.chain())?;
                    failures.push("session store");
                }
            }
        }
    }
    if !failures.is_empty() {
        return Err(CliError::Failed(anyhow::anyhow!(
            "{} did not answer",
            failures.join(" and ")
        )));
    }
    if !pending.is_empty() {
        // The same refusal, and exit code, as `serve`.
        return Err(StartupError::PendingMigrations(pending).into());
    }
    Ok(())
}

/// What the session store check reached, with addresses: the operator's terminal may see them.
fn describe(kind: &str, reached: &Reached) -> String {
    let what = if reached.summary == kind {
        kind.to_string()
    } else {
        format!("{kind} {}", reached.summary)
    };
    match &reached.primary {
        Some(primary) => format!("{what}; primary {primary}"),
        None => what,
    }
}
