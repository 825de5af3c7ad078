//! The SQL database: `DATABASE_URL`, or the tutorial's `POSTGRES_*` parts; in development the
//! embedded SQLite file when nothing is set.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::{
    parser::{Parser, Vars},
    redact_url,
    urls::build_url,
};

/// The SQLite database used when nothing is configured (relative to the working directory).
pub const EMBEDDED_DATABASE_URL: &str = "sqlite://authauth.sqlite?mode=rwc";

#[derive(Clone)]
pub struct DatabaseSettings {
    pub url: SecretString,
    /// True when no database was configured and the SQLite file in the working directory is used.
    pub embedded: bool,
}

impl DatabaseSettings {
    pub fn is_sqlite(&self) -> bool {
        self.url.expose_secret().starts_with("sqlite:")
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(self.url.expose_secret()))
            .field("embedded", &self.embedded)
            .finish()
    }
}

pub(super) fn parse<V: Vars + ?Sized>(p: &mut Parser<'_, V>, production: bool) -> DatabaseSettings {
    if let Some(raw) = p.get("DATABASE_URL") {
        let ok = p
            .url("DATABASE_URL", &raw, &["postgres", "postgresql", "sqlite"])
            .is_some();
        return DatabaseSettings {
            url: SecretString::from(if ok { raw } else { String::new() }),
            embedded: false,
        };
    }
    // The tutorial's variables: POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD,
    // POSTGRES_DB_NAME.
    let keys = [
        "POSTGRES_HOST",
        "POSTGRES_PORT",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB_NAME",
    ];
    if keys.iter().any(|k| p.get(k).is_some()) {
        let host = p.get("POSTGRES_HOST");
        let user = p.get("POSTGRES_USER");
        let db = p.get("POSTGRES_DB_NAME");
        for (k, v) in [
            ("POSTGRES_HOST", &host),
            ("POSTGRES_USER", &user),
            ("POSTGRES_DB_NAME", &db),
        ] {
            if v.is_none() {
                p.problem(
                    k,
                    "required to build DATABASE_URL from the POSTGRES_* variables (or set DATABASE_URL)",
                );
            }
        }
        let port = match p.get("POSTGRES_PORT") {
            None => Some(5432),
            Some(raw) => match raw.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    p.problem("POSTGRES_PORT", format!("`{raw}` is not a port number (1-65535)"));
                    None
                }
            },
        };
        if let (Some(host), Some(user), Some(db), Some(port)) = (host, user, db, port) {
            match build_url(
                "postgres",
                &host,
                port,
                Some(&user),
                p.get("POSTGRES_PASSWORD").as_deref(),
                &db,
            ) {
                Ok(url) => {
                    return DatabaseSettings {
                        url: SecretString::from(url),
                        embedded: false,
                    }
                }
                Err(msg) => p.problem("POSTGRES_HOST", msg),
            }
        }
        return DatabaseSettings {
            url: SecretString::from(String::new()),
            embedded: false,
        };
    }
    if production {
        p.problem(
            "DATABASE_URL",
            "required in production (postgres://user:password@host:5432/db, or the POSTGRES_* variables)",
        );
    }
    DatabaseSettings {
        url: SecretString::from(EMBEDDED_DATABASE_URL.to_string()),
        embedded: !production,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    #[test]
    fn incomplete_postgres_variables_name_what_is_missing() {
        let err = Settings::from_vars(&[("POSTGRES_HOST", "db")]).unwrap_err();
        assert_eq!(err.variables(), vec!["POSTGRES_USER", "POSTGRES_DB_NAME"]);
    }
}
