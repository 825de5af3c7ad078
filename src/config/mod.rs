//! Typed configuration, read once from the environment (and a `.env` file, loaded by `main`).
//!
//! One file per section (`server`, `database`, `redis`, `session`, `google`, `logging`);
//! [`Settings::from_vars`] runs them all over one `Parser`, which collects problems instead of
//! stopping at the first: every missing or invalid variable is reported in one [`ConfigError`],
//! so an operator fixes the whole file in one go. Secrets are
//! wrapped in [`SecretString`](secrecy::SecretString) and never appear in `Debug` output or logs;
//! URLs that may carry a password are printed through [`redact_url`].

mod database;
pub mod defaults;
mod google;
mod hashing;
mod logging;
mod mail;
mod mfa;
mod parser;
mod redis;
mod server;
mod session;
mod urls;
mod variables;
mod webhooks;

use std::{net::IpAddr, time::Duration};

use url::Url;

use self::parser::Parser;
pub use self::{
    database::{DatabaseSettings, EMBEDDED_DATABASE_URL},
    google::GoogleSettings,
    hashing::HashCost,
    logging::LogFormat,
    mail::{MailSettings, MailTransport, DEV_OUTBOX},
    mfa::{MfaSettings, PasskeySettings},
    parser::{ConfigError, Origin, Problem, ProcessEnv, Vars},
    redis::{RedisMode, RedisSettings, RedisTls, SentinelSettings, WaitForReplicas},
    server::{parse_origin, AllowedHost},
    session::{LimitAction, SecretSource, SessionSettings, DEV_SECRET_FILE, MIN_SECRET_LEN},
    urls::{local_origin, redact_url},
    webhooks::WebhookSettings,
};

/// `development` runs with zero setup; `production` demands explicit configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

impl AppEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Production => "production",
        }
    }
}

/// Everything authauth needs to run, parsed and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub env: AppEnv,
    pub host: IpAddr,
    pub port: u16,
    /// The origin browsers use to reach authauth, when it differs from `http://HOST:PORT`.
    pub public_url: Option<Url>,
    /// Where `/metrics` is served (`METRICS_ADDR`); `None`: not at all. Never the public port.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub database: DatabaseSettings,
    /// `None` keeps sessions in the SQL database (the embedded default).
    pub redis: Option<RedisSettings>,
    pub session: SessionSettings,
    pub google: Option<GoogleSettings>,
    /// Origins allowed to call the API cross-origin with credentials.
    pub cors_origins: Vec<String>,
    /// The hosts requests may name (`Host`), when they are checked: always in production
    /// (`PUBLIC_URL`'s host and `ALLOWED_HOSTS`), in development only when `ALLOWED_HOSTS` is
    /// set. `None`: any host.
    pub allowed_hosts: Option<Vec<AllowedHost>>,
    /// Take the client address from the last `X-Forwarded-For` entry (set behind one trusted
    /// reverse proxy).
    pub trust_forwarded_for: bool,
    /// Where a browser without a session is sent to sign in by `GET /auth/verify` (a path on
    /// this site; `returnTo` is appended).
    pub sign_in_path: String,
    /// Serve the hosted pages (`UI_ENABLED`, on by default): sign-in, sign-up, account.
    pub ui_enabled: bool,
    pub log_format: LogFormat,
    /// How long the server's information log lines may wait in its buffer (`0`: none).
    pub log_flush_interval: Duration,
    /// How long in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_timeout: Duration,
    /// How long a client may take to send a request's head (line and headers), counted from
    /// when the connection is ready for a request: it also closes idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// Threads that hash passwords (`PASSWORD_HASH_THREADS`; default: half the cores, at least
    /// one, so request handling keeps a core).
    pub hash_threads: usize,
    /// argon2id's memory and passes (`PASSWORD_HASH_MEMORY_KIB`, `PASSWORD_HASH_ITERATIONS`;
    /// OWASP's 19 MiB × 2 by default, never below OWASP's floor in production).
    pub password_hash_cost: HashCost,
    /// How long audit events are kept (`AUDIT_RETENTION`, 90 days by default).
    pub audit_retention: Duration,
    /// Session-lifecycle webhooks (`WEBHOOK_URLS`, `WEBHOOK_SECRET`), when configured.
    pub webhooks: Option<WebhookSettings>,
    /// E-mail (`SMTP_URL`, `MAIL_FROM`, the outbox) and the account features that send it.
    pub mail: MailSettings,
    /// Second factors and step-up (`MFA_REQUIRED`, `SESSION_PRIVILEGED_MAX_AGE`, `TOTP_ISSUER`).
    pub mfa: MfaSettings,
    /// Accepted but doubtful settings — a short development secret, a variable that looks meant
    /// for authauth but is not read — logged by `serve` at startup, printed by `config check`.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads the process environment. Load `.env` into it first (see `cli::load_settings`,
    /// which also tells which names came from the file).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&ProcessEnv::default())
    }

    /// Parses and validates every variable, reporting all problems at once.
    pub fn from_vars<V: Vars + ?Sized>(vars: &V) -> Result<Self, ConfigError> {
        Self::parse(vars, None)
    }

    /// [`Settings::from_vars`] in `env` mode, whatever `APP_ENV` says: what the same variables
    /// give when run in that mode (`config check --env production`).
    pub fn from_vars_as<V: Vars + ?Sized>(vars: &V, env: AppEnv) -> Result<Self, ConfigError> {
        Self::parse(vars, Some(env))
    }

    fn parse<V: Vars + ?Sized>(vars: &V, env: Option<AppEnv>) -> Result<Self, ConfigError> {
        let mut p = Parser {
            vars,
            problems: Vec::new(),
            warnings: Vec::new(),
        };

        let env = env.unwrap_or_else(|| app_env(&mut p));
        let production = env == AppEnv::Production;
        let listen = server::listen(&mut p);
        let database = database::parse(&mut p, production);
        let redis = redis::parse(&mut p, production);
        let session = session::parse(&mut p, production, listen.public_url.as_ref());
        let google = google::parse(
            &mut p,
            production,
            listen.host,
            listen.port,
            listen.public_url.as_ref(),
        );
        let http = server::http(&mut p, production, &listen);
        let password_hash_cost = hashing::parse(&mut p, production);
        let webhooks = webhooks::parse(&mut p, production);
        let mail = mail::parse(&mut p, production, http.ui_enabled);
        let mfa = mfa::parse(&mut p, listen.public_url.as_ref());
        let log_format = logging::parse(&mut p, production);
        let log_flush_interval = logging::flush_interval(&mut p);

        let unknown = variables::unknown(p.vars.names());
        if !p.problems.is_empty() {
            variables::annotate(&mut p.problems, &unknown);
            return Err(ConfigError { problems: p.problems });
        }
        Ok(Settings {
            env,
            host: listen.host,
            port: listen.port,
            public_url: listen.public_url,
            metrics_addr: listen.metrics_addr,
            database,
            redis,
            session,
            google,
            cors_origins: http.cors_origins,
            allowed_hosts: http.allowed_hosts,
            trust_forwarded_for: http.trust_forwarded_for,
            sign_in_path: http.sign_in_path,
            ui_enabled: http.ui_enabled,
            hash_threads: http.hash_threads,
            password_hash_cost,
            audit_retention: http.audit_retention,
            webhooks,
            mail,
            mfa,
            log_format,
            log_flush_interval,
            shutdown_timeout: http.shutdown_timeout,
            header_read_timeout: http.header_read_timeout,
            body_read_timeout: http.body_read_timeout,
            warnings: p
                .warnings
                .into_iter()
                .chain(unknown.iter().map(|u| u.warning()))
                .collect(),
        })
    }
}

/// `APP_ENV`, or its alias `NODE_ENV`.
fn app_env<V: Vars + ?Sized>(p: &mut Parser<'_, V>) -> AppEnv {
    match p
        .get("APP_ENV")
        .map(|v| ("APP_ENV", v))
        .or_else(|| p.get("NODE_ENV").map(|v| ("NODE_ENV", v)))
    {
        None => AppEnv::Development,
        Some((key, v)) => match v.to_ascii_lowercase().as_str() {
            "development" | "dev" => AppEnv::Development,
            "production" | "prod" => AppEnv::Production,
            _ => {
                p.problem(key, format!("`{v}` is not one of `development`, `production`"));
                // Check the rest as development so this one mistake is not buried in noise.
                AppEnv::Development
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn empty_environment_is_the_embedded_development_default() {
        let s = Settings::from_vars(&[("UNRELATED", "x")]).unwrap();
        assert_eq!(s.env, AppEnv::Development);
        assert_eq!(s.port, 3000);
        assert_eq!(s.host.to_string(), "127.0.0.1");
        assert!(s.database.embedded);
        assert!(s.database.is_sqlite());
        assert!(s.redis.is_none());
        assert_eq!(s.session.secret_source, SecretSource::Unresolved);
        assert!(!s.session.cookie_secure);
        assert!(s.google.is_none());
    }

    #[test]
    fn production_reports_every_problem_at_once() {
        let err = Settings::from_vars(&[("APP_ENV", "production"), ("PORT", "abc")]).unwrap_err();
        let vars = err.variables();
        for v in [
            "PORT",
            "DATABASE_URL",
            "REDIS_URL",
            "SESSION_SECRET",
            "PUBLIC_URL",
        ] {
            assert!(vars.contains(&v), "{v} missing from {err}");
        }
        assert!(
            err.to_string().starts_with("invalid configuration (5 problems):"),
            "{err}"
        );
    }

    #[test]
    fn a_mode_can_be_asked_for_whatever_app_env_says() {
        let vars = [
            ("APP_ENV", "development"),
            ("GOOGLE_CLIENT_ID", "id"),
            ("GOOGLE_CLIENT_SECRET", "s"),
        ];
        assert!(Settings::from_vars(&vars).is_ok());
        let err = Settings::from_vars_as(&vars, AppEnv::Production).unwrap_err();
        for v in ["SESSION_SECRET", "PUBLIC_URL", "GOOGLE_CALLBACK_URL"] {
            assert!(err.variables().contains(&v), "{v} missing from {err}");
        }
        let as_dev = Settings::from_vars_as(&[("APP_ENV", "production")], AppEnv::Development).unwrap();
        assert_eq!(as_dev.env, AppEnv::Development);
    }

    #[test]
    fn node_env_is_an_alias_of_app_env() {
        let err = Settings::from_vars(&[("NODE_ENV", "production")]).unwrap_err();
        assert!(err.variables().contains(&"SESSION_SECRET"));
        assert!(
            Settings::from_vars(&[("NODE_ENV", "staging")])
                .unwrap_err()
                .variables()
                == vec!["NODE_ENV"]
        );
    }

    #[test]
    fn tutorial_variables_build_database_and_redis_urls() {
        let s = Settings::from_vars(&[
            ("POSTGRES_HOST", "db.internal"),
            ("POSTGRES_PORT", "5433"),
            ("POSTGRES_USER", "app"),
            ("POSTGRES_PASSWORD", "p@ss:w/rd"),
            ("POSTGRES_DB_NAME", "auth"),
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "r3dis"),
        ])
        .unwrap();
        assert_eq!(
            s.database.url.expose_secret(),
            "postgres://app:p%40ss%3Aw%2Frd@db.internal:5433/auth"
        );
        assert!(!s.database.embedded);
        let redis = s.redis.unwrap();
        assert_eq!(
            redis.urls[0].expose_secret(),
            "redis://:r3dis@cache.internal:6380"
        );
        assert_eq!(redis.key_prefix, "authauth:");
    }

    #[test]
    fn debug_output_never_contains_secrets() {
        let s = Settings::from_vars(&[
            ("DATABASE_URL", "postgres://u:db-password-xyz@h/d"),
            ("REDIS_URL", "redis://:redis-password-xyz@h:6379"),
            ("SESSION_SECRET", "session-secret-xyz-0123456789abcdef0123"),
            ("GOOGLE_CLIENT_ID", "id"),
            ("GOOGLE_CLIENT_SECRET", "google-secret-xyz"),
        ])
        .unwrap();
        let debug = format!("{s:?}");
        for secret in [
            "db-password-xyz",
            "redis-password-xyz",
            "session-secret-xyz",
            "google-secret-xyz",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
    }
}
