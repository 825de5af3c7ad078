//! `authauth config check`.

use std::time::Duration;

use clap::Subcommand;
use secrecy::ExposeSecret;

use super::{load_settings, CliError};
use crate::{
    config::{redact_url, SecretSource, DEV_SECRET_FILE},
    db, startup,
};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration, connect to the database and the session store, and print
    /// what was found. Exits 2 on an invalid configuration, 1 when a dependency fails.
    Check,
}

pub async fn run(cmd: ConfigCommand) -> Result<(), CliError> {
    let ConfigCommand::Check = cmd;
    let settings = load_settings()?;
    let s = &settings;
    println!("configuration: valid ({})", s.env.as_str());
    println!("  listen           {}:{}", s.host, s.port);
    if let Some(url) = &s.public_url {
        println!("  public url       {url}");
    }
    match &s.allowed_hosts {
        Some(hosts) => println!(
            "  allowed hosts    {} (/health and /ready: any)",
            hosts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => println!("  allowed hosts    any (development; set ALLOWED_HOSTS to check)"),
    }
    println!(
        "  database         {}{}",
        redact_url(s.database.url.expose_secret()),
        if s.database.embedded {
            " (embedded default)"
        } else {
            ""
        }
    );
    match &s.redis {
        Some(r) => println!(
            "  session store    redis {} (key prefix `{}`)",
            redact_url(r.url.expose_secret()),
            r.key_prefix
        ),
        None => println!("  session store    sql (the database above)"),
    }
    let secret = match &s.session.secret_source {
        SecretSource::Environment => format!("SESSION_SECRET ({} key(s))", s.session.secrets.len()),
        SecretSource::GeneratedFile(p) => format!("development secret in {}", p.display()),
        SecretSource::Unresolved => {
            format!("development secret in ./{DEV_SECRET_FILE} (created on first serve)")
        }
    };
    println!("  session secret   {secret}");
    println!(
        "  session cookie   {} (Secure: {}, HttpOnly, SameSite=Lax)",
        s.session.cookie_name,
        if s.session.cookie_secure { "yes" } else { "no" }
    );
    println!(
        "  session timeouts idle {}, absolute {}, rotation every {} (grace {})",
        humantime::format_duration(s.session.idle_timeout),
        humantime::format_duration(s.session.absolute_timeout),
        humantime::format_duration(s.session.rotation_interval),
        humantime::format_duration(s.session.rotation_grace)
    );
    match &s.google {
        Some(g) => println!(
            "  google sign-in   issuer {}, callback {}",
            g.issuer, g.callback_url
        ),
        None => println!("  google sign-in   not configured"),
    }
    println!(
        "  cors origins     {}",
        if s.cors_origins.is_empty() {
            "(none)".to_string()
        } else {
            s.cors_origins.join(", ")
        }
    );

    for warning in &s.warnings {
        println!("warning: {warning}");
    }

    let mut failures = Vec::new();
    match startup::connect(s).await {
        Err(e) => {
            println!("database:        FAILED {e:#}");
            failures.push("database");
        }
        Ok((conn, store)) => {
            match db::pending_migrations(&conn).await {
                Ok(p) if p.is_empty() => println!("database:         ok, migrations up to date"),
                Ok(p) => println!(
                    "database:         ok, {} pending migration(s): run `authauth migrate up`{}",
                    p.len(),
                    if s.database.embedded {
                        " (or `authauth serve`, which migrates the embedded default)"
                    } else {
                        ""
                    }
                ),
                Err(e) => {
                    println!("database:         FAILED {e}");
                    failures.push("database");
                }
            }
            match store.ping_within(Duration::from_secs(3)).await {
                Ok(()) => println!("session store:    ok ({})", store.kind()),
                Err(e) => {
                    println!("session store:    FAILED ({}) {}", store.kind(), e.chain());
                    failures.push("session store");
                }
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(anyhow::anyhow!(
            "{} did not answer",
            failures.join(" and ")
        )))
    }
}
