//! Sessions: the signing secret (and the development secret file), the cookie, timeouts, and
//! the per-account limit.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::SecretString;
use url::Url;

use super::{
    defaults,
    parser::{Parser, Vars},
    Settings,
};

/// Where the generated development session secret is kept (relative to the working directory).
pub const DEV_SECRET_FILE: &str = "authauth.secret";
/// The shortest accepted session secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Where the session secret came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `SESSION_SECRET` was set.
    Environment,
    /// Development only: generated once and kept in this file.
    GeneratedFile(PathBuf),
    /// Not resolved yet (development, before [`Settings::resolve_dev_secret`]).
    Unresolved,
}

#[derive(Clone)]
pub struct SessionSettings {
    /// The first key signs cookies; all of them verify (so rotating the secret logs nobody out).
    pub secrets: Vec<SecretString>,
    pub secret_source: SecretSource,
    pub cookie_name: String,
    pub cookie_secure: bool,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub rotation_interval: Duration,
    pub rotation_grace: Duration,
    /// The most live sessions one account may have (`MAX_SESSIONS_PER_USER`).
    pub max_per_user: usize,
    /// What a sign-in beyond [`SessionSettings::max_per_user`] does (`SESSION_LIMIT_ACTION`).
    pub on_limit: LimitAction,
}

/// What happens when a sign-in would give an account more than `MAX_SESSIONS_PER_USER` live
/// sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAction {
    /// The least recently used session ends (reason `session_limit`), the sign-in succeeds.
    EndLeastRecentlyUsed,
    /// The sign-in is refused (409 `session_limit_reached`) until a session ends.
    Refuse,
}

impl fmt::Debug for SessionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSettings")
            .field("secrets", &format_args!("[{} redacted]", self.secrets.len()))
            .field("secret_source", &self.secret_source)
            .field("cookie_name", &self.cookie_name)
            .field("cookie_secure", &self.cookie_secure)
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_timeout", &self.absolute_timeout)
            .field("rotation_interval", &self.rotation_interval)
            .field("rotation_grace", &self.rotation_grace)
            .field("max_per_user", &self.max_per_user)
            .field("on_limit", &self.on_limit)
            .finish()
    }
}

pub(super) fn parse<V: Vars + ?Sized>(
    p: &mut Parser<'_, V>,
    production: bool,
    public_url: Option<&Url>,
) -> SessionSettings {
    let (secrets, secret_source) = match p.get("SESSION_SECRET") {
        Some(raw) => {
            let parts: Vec<&str> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            let short: Vec<usize> = parts
                .iter()
                .enumerate()
                .filter(|(_, s)| s.len() < MIN_SECRET_LEN)
                .map(|(i, _)| i + 1)
                .collect();
            if parts.is_empty() {
                p.problem("SESSION_SECRET", "is empty");
            } else if !short.is_empty() {
                let message = format!(
                    "secret #{} is shorter than {MIN_SECRET_LEN} bytes; generate one with `openssl rand -base64 48`",
                    short.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", #")
                );
                if production {
                    p.problem("SESSION_SECRET", message);
                } else {
                    // Development accepts the short secrets of tutorial `.env` files, loudly.
                    p.warnings
                        .push(format!("SESSION_SECRET: {message} (rejected in production)"));
                }
            }
            (
                parts
                    .into_iter()
                    .map(|s| SecretString::from(s.to_string()))
                    .collect(),
                SecretSource::Environment,
            )
        }
        None => {
            if production {
                p.problem(
                    "SESSION_SECRET",
                    format!("required in production: at least {MIN_SECRET_LEN} random bytes, e.g. `openssl rand -base64 48`"),
                );
            }
            (Vec::new(), SecretSource::Unresolved)
        }
    };

    let secure_origin = public_url.is_some_and(|u| u.scheme() == "https");
    let cookie_secure = production || secure_origin;
    let cookie_name = match p.get("SESSION_COOKIE_NAME") {
        None if cookie_secure => defaults::COOKIE_NAME_PRODUCTION.to_string(),
        None => defaults::COOKIE_NAME_DEVELOPMENT.to_string(),
        Some(name) => {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                p.problem(
                    "SESSION_COOKIE_NAME",
                    format!("`{name}` is not a valid cookie name (letters, digits, `-`, `_`, `.`)"),
                );
            } else if name.starts_with("__Host-") && !cookie_secure {
                p.problem(
                    "SESSION_COOKIE_NAME",
                    "the `__Host-` prefix needs a Secure cookie: production mode or an https PUBLIC_URL",
                );
            }
            name
        }
    };

    let idle_timeout = p.duration("SESSION_IDLE_TIMEOUT", defaults::IDLE_TIMEOUT);
    let absolute_timeout = p.duration("SESSION_ABSOLUTE_TIMEOUT", defaults::ABSOLUTE_TIMEOUT);
    let rotation_interval = p.duration("SESSION_ROTATION_INTERVAL", defaults::ROTATION_INTERVAL);
    let rotation_grace = p.duration("SESSION_ROTATION_GRACE", defaults::ROTATION_GRACE);
    if idle_timeout > absolute_timeout {
        p.problem(
            "SESSION_IDLE_TIMEOUT",
            "must not be longer than SESSION_ABSOLUTE_TIMEOUT",
        );
    }
    if rotation_grace >= rotation_interval {
        p.problem(
            "SESSION_ROTATION_GRACE",
            "must be shorter than SESSION_ROTATION_INTERVAL",
        );
    }

    let max_per_user = match p.get("MAX_SESSIONS_PER_USER") {
        None => defaults::MAX_SESSIONS_PER_USER,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                p.problem(
                    "MAX_SESSIONS_PER_USER",
                    format!("`{raw}` is not a number from 1 to 1000"),
                );
                defaults::MAX_SESSIONS_PER_USER
            }
        },
    };
    let on_limit = match p.get("SESSION_LIMIT_ACTION").as_deref() {
        None | Some("end-least-recently-used") => LimitAction::EndLeastRecentlyUsed,
        Some("refuse") => LimitAction::Refuse,
        Some(other) => {
            p.problem(
                "SESSION_LIMIT_ACTION",
                format!("`{other}` is not one of `end-least-recently-used`, `refuse`"),
            );
            LimitAction::EndLeastRecentlyUsed
        }
    };

    SessionSettings {
        secrets,
        secret_source,
        cookie_name,
        cookie_secure,
        idle_timeout,
        absolute_timeout,
        rotation_interval,
        rotation_grace,
        max_per_user,
        on_limit,
    }
}

impl Settings {
    /// In development without `SESSION_SECRET`: read the secret kept in `dir/authauth.secret`, or
    /// generate and keep one, so sessions survive restarts. Returns true when it was generated.
    pub fn resolve_dev_secret(&mut self, dir: &Path) -> std::io::Result<bool> {
        if self.session.secret_source != SecretSource::Unresolved {
            return Ok(false);
        }
        let path = dir.join(DEV_SECRET_FILE);
        let (secret, generated) = match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= MIN_SECRET_LEN => (s.trim().to_string(), false),
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                    "{} holds a secret shorter than {MIN_SECRET_LEN} bytes; delete it to generate a new one",
                    path.display()
                ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = crate::session::token::generate_secret();
                write_private_file(&path, &secret)?;
                (secret, true)
            }
            Err(e) => return Err(e),
        };
        self.session.secrets = vec![SecretString::from(secret)];
        self.session.secret_source = SecretSource::GeneratedFile(path);
        Ok(generated)
    }

    /// For operator commands without `SESSION_SECRET`: a random secret kept in memory only.
    /// They sign no cookie; they only need a signer to build the services with.
    pub fn use_ephemeral_secret(&mut self) {
        if self.session.secret_source == SecretSource::Unresolved {
            self.session.secrets = vec![SecretString::from(crate::session::token::generate_secret())];
        }
    }
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::ExposeSecret;

    use crate::config::{LogFormat, Settings, MIN_SECRET_LEN};

    #[test]
    fn short_session_secret_is_rejected_in_production_and_lists_are_accepted() {
        let err =
            Settings::from_vars(&[("APP_ENV", "production"), ("SESSION_SECRET", "too-short")]).unwrap_err();
        assert!(err.variables().contains(&"SESSION_SECRET"));
        let dev = Settings::from_vars(&[("SESSION_SECRET", "too-short")]).unwrap();
        assert_eq!(dev.warnings.len(), 1);
        let long = "k".repeat(32);
        let two = format!("{long}, {}", "j".repeat(40));
        let s = Settings::from_vars(&[("SESSION_SECRET", two.as_str())]).unwrap();
        assert_eq!(s.session.secrets.len(), 2);
        assert_eq!(s.session.secrets[0].expose_secret(), long);
    }

    #[test]
    fn durations_are_human_and_validated() {
        let s = Settings::from_vars(&[("SESSION_IDLE_TIMEOUT", "2s"), ("SESSION_ABSOLUTE_TIMEOUT", "7d")])
            .unwrap();
        assert_eq!(s.session.idle_timeout, Duration::from_secs(2));
        assert_eq!(s.session.absolute_timeout, Duration::from_secs(7 * 86400));
        let err = Settings::from_vars(&[("SESSION_IDLE_TIMEOUT", "soon"), ("SESSION_ROTATION_GRACE", "1h")])
            .unwrap_err();
        assert_eq!(
            err.variables(),
            vec!["SESSION_IDLE_TIMEOUT", "SESSION_ROTATION_GRACE"]
        );
    }

    #[test]
    fn production_cookie_is_secure_with_host_prefix() {
        let secret = "s".repeat(48);
        let s = Settings::from_vars(&[
            ("APP_ENV", "production"),
            ("PUBLIC_URL", "https://auth.example.com"),
            ("DATABASE_URL", "postgres://localhost/authauth"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("SESSION_SECRET", secret.as_str()),
        ])
        .unwrap();
        assert!(s.session.cookie_secure);
        assert_eq!(s.session.cookie_name, "__Host-authauth_session");
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn dev_secret_is_generated_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("authauth-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut a = Settings::from_vars(&[("X", "")]).unwrap();
        assert!(a.resolve_dev_secret(&dir).unwrap());
        let mut b = Settings::from_vars(&[("X", "")]).unwrap();
        assert!(!b.resolve_dev_secret(&dir).unwrap());
        assert_eq!(
            a.session.secrets[0].expose_secret(),
            b.session.secrets[0].expose_secret()
        );
        assert!(a.session.secrets[0].expose_secret().len() >= MIN_SECRET_LEN);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
