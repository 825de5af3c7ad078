//! Typed configuration, read once from the environment (and a `.env` file, loaded by `main`).
//!
//! Parsing never stops at the first problem: every missing or invalid variable is collected and
//! reported in one [`ConfigError`], so an operator fixes the whole file in one go. Secrets are
//! wrapped in [`SecretString`] and never appear in `Debug` output or logs; URLs that may carry a
//! password are printed through [`redact_url`].

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// The SQLite database used when nothing is configured (relative to the working directory).
pub const EMBEDDED_DATABASE_URL: &str = "sqlite://authauth.sqlite?mode=rwc";
/// Where the generated development session secret is kept (relative to the working directory).
pub const DEV_SECRET_FILE: &str = "authauth.secret";
/// The shortest accepted session secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

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

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the development default).
    Text,
    /// One JSON object per line (the production default).
    Json,
}

/// Everything authauth needs to run, parsed and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub env: AppEnv,
    pub host: IpAddr,
    pub port: u16,
    /// The origin browsers use to reach authauth, when it differs from `http://HOST:PORT`.
    pub public_url: Option<Url>,
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
    pub log_format: LogFormat,
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
    /// Accepted but unwise settings (development only), logged at startup.
    pub warnings: Vec<String>,
}

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

#[derive(Clone)]
pub struct RedisSettings {
    pub url: SecretString,
    /// Every key authauth writes starts with this prefix.
    pub key_prefix: String,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(self.url.expose_secret()))
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

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

#[derive(Clone)]
pub struct GoogleSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    pub callback_url: Url,
    /// The issuer exactly as the provider writes it in `iss` (no trailing slash).
    pub issuer: String,
    /// Bound on every back-channel call to the provider (discovery, keys, token, userinfo).
    pub http_timeout: Duration,
}

impl fmt::Debug for GoogleSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("callback_url", &self.callback_url.as_str())
            .field("issuer", &self.issuer)
            .field("http_timeout", &self.http_timeout)
            .finish()
    }
}

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: String,
    pub message: String,
}

/// Every problem found in the configuration, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// The variables that have a problem, in the order they were found.
    pub fn variables(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.variable.as_str()).collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {}: {}", p.variable, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A source of configuration variables. Empty values count as unset, as in most `.env` files.
pub trait Vars {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Vars for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned().filter(|v| !v.trim().is_empty())
    }
}

impl<const N: usize> Vars for [(&str, &str); N] {
    fn get(&self, key: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.trim().is_empty())
    }
}

/// One host requests may name in `Host`: a DNS name or IP address, and a port when only that
/// port is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Normalised: lower-case, IDNA (punycode), IPv6 in brackets, no trailing dot.
    pub host: String,
    pub port: Option<u16>,
}

impl AllowedHost {
    /// Parses `host[:port]`, as written in `ALLOWED_HOSTS` and sent in `Host`.
    pub fn parse(raw: &str) -> Result<AllowedHost, String> {
        let (host, port) = match raw.strip_prefix('[') {
            Some(rest) => {
                let (inside, after) = rest
                    .split_once(']')
                    .ok_or_else(|| "an IPv6 address needs its closing `]`".to_string())?;
                (&raw[..inside.len() + 2], after)
            }
            None => match raw.find(':') {
                Some(i) => (&raw[..i], &raw[i..]),
                None => (raw, ""),
            },
        };
        let port = match port {
            "" | ":" => None,
            p => match p.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(n)) => Some(n),
                _ => return Err(format!("`{raw}` is not host[:port]")),
            },
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        // The URL standard's host parser: lower-cases, applies IDNA, refuses `/`, `@`, spaces
        // and other characters that cannot be in a host.
        let host = url::Host::parse(host).map_err(|e| format!("`{raw}`: {e}"))?;
        Ok(AllowedHost {
            host: host.to_string(),
            port,
        })
    }

    /// True when `requested` (a parsed `Host`) names this host, on this port if one is set.
    pub fn admits(&self, requested: &AllowedHost) -> bool {
        self.host == requested.host && self.port.is_none_or(|p| requested.port == Some(p))
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Defaults, documented in `docs/configuration.md`.
pub mod defaults {
    use std::time::Duration;

    pub const HOST: &str = "127.0.0.1";
    pub const PORT: u16 = 3000;
    pub const REDIS_KEY_PREFIX: &str = "authauth:";
    pub const COOKIE_NAME_DEVELOPMENT: &str = "authauth_session";
    pub const COOKIE_NAME_PRODUCTION: &str = "__Host-authauth_session";
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
    pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
    pub const ROTATION_INTERVAL: Duration = Duration::from_secs(15 * 60);
    pub const ROTATION_GRACE: Duration = Duration::from_secs(60);
    /// Enough for every device a person uses, and a bound on what one account can cost the
    /// store (every sign-in adds a session; listing and revoking read all of them).
    pub const MAX_SESSIONS_PER_USER: usize = 25;
    pub const GOOGLE_ISSUER_URL: &str = "https://accounts.google.com";
    pub const GOOGLE_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
    pub const HTTP_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const HTTP_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
}

/// Collects problems while parsing.
struct Parser<'a, V: Vars + ?Sized> {
    vars: &'a V,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl<V: Vars + ?Sized> Parser<'_, V> {
    fn problem(&mut self, variable: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            variable: variable.to_string(),
            message: message.into(),
        });
    }

    fn get(&self, key: &str) -> Option<String> {
        self.vars.get(key).map(|v| v.trim().to_string())
    }

    fn duration(&mut self, key: &str, default: Duration) -> Duration {
        let Some(raw) = self.get(key) else {
            return default;
        };
        match humantime::parse_duration(&raw) {
            Ok(d) if d >= Duration::from_secs(1) => d,
            Ok(_) => {
                self.problem(key, format!("`{raw}` is shorter than one second"));
                default
            }
            Err(e) => {
                self.problem(
                    key,
                    format!("`{raw}` is not a duration ({e}); use forms like `30s`, `15m`, `12h`, `7d`"),
                );
                default
            }
        }
    }

    fn url(&mut self, key: &str, raw: &str, schemes: &[&str]) -> Option<Url> {
        match Url::parse(raw) {
            Ok(u) if schemes.contains(&u.scheme()) => Some(u),
            Ok(u) => {
                self.problem(
                    key,
                    format!(
                        "scheme `{}` is not supported (expected {})",
                        u.scheme(),
                        schemes.join(" or ")
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(key, format!("`{}` is not a URL ({e})", redact_url(raw)));
                None
            }
        }
    }
}

impl Settings {
    /// Reads the process environment. Call `dotenvy::dotenv()` first to include `.env`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&ProcessEnv)
    }

    /// Parses and validates every variable, reporting all problems at once.
    pub fn from_vars<V: Vars + ?Sized>(vars: &V) -> Result<Self, ConfigError> {
        let mut p = Parser {
            vars,
            problems: Vec::new(),
            warnings: Vec::new(),
        };

        let env = match p
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
        };
        let production = env == AppEnv::Production;

        let host = match p.get("HOST") {
            None => defaults::HOST
                .parse()
                .expect("the default host is a valid IP address"),
            Some(raw) => match parse_host(&raw) {
                Some(ip) => ip,
                None => {
                    p.problem(
                        "HOST",
                        format!("`{raw}` is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)"),
                    );
                    defaults::HOST
                        .parse()
                        .expect("the default host is a valid IP address")
                }
            },
        };

        let port = match p.get("PORT") {
            None => defaults::PORT,
            Some(raw) => raw.parse::<u16>().unwrap_or_else(|_| {
                p.problem("PORT", format!("`{raw}` is not a port number (0-65535)"));
                defaults::PORT
            }),
        };

        let public_url = p.get("PUBLIC_URL").and_then(|raw| {
            let url = p.url("PUBLIC_URL", &raw, &["http", "https"])?;
            if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                p.problem(
                    "PUBLIC_URL",
                    "must be an origin only, like `https://auth.example.com` (no path, query or fragment)",
                );
                return None;
            }
            Some(url)
        });

        let database = database_settings(&mut p, production);
        let redis = redis_settings(&mut p);
        if production && redis.is_none() && !p.problems.iter().any(|x| x.variable.starts_with("REDIS")) {
            p.problem(
                "REDIS_URL",
                "required in production (or REDIS_HOST/REDIS_PORT/REDIS_PASSWORD); sessions belong in Redis",
            );
        }

        let session = session_settings(&mut p, production, public_url.as_ref());
        let google = google_settings(&mut p, production, host, port, public_url.as_ref());

        let mut cors_origins = Vec::new();
        if let Some(raw) = p.get("CORS_ORIGINS") {
            for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match parse_origin(item) {
                    Ok(origin) => cors_origins.push(origin),
                    Err(msg) => p.problem("CORS_ORIGINS", format!("`{item}`: {msg}")),
                }
            }
        }

        let mut allowed_hosts = Vec::new();
        if let Some(raw) = p.get("ALLOWED_HOSTS") {
            for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match AllowedHost::parse(item) {
                    Ok(host) => allowed_hosts.push(host),
                    Err(msg) => p.problem("ALLOWED_HOSTS", msg),
                }
            }
        }
        let allowed_hosts = if production || !allowed_hosts.is_empty() {
            // PUBLIC_URL's host, on any port: behind a proxy the port browsers use is not the
            // one in `Host`, and a DNS-rebinding page cannot choose the name, only the port.
            if let Some(host) = public_url.as_ref().and_then(Url::host_str) {
                if let Ok(host) = AllowedHost::parse(host) {
                    allowed_hosts.push(host);
                }
            }
            Some(allowed_hosts)
        } else {
            None
        };
        if production && public_url.is_none() && !p.problems.iter().any(|x| x.variable == "PUBLIC_URL") {
            p.problem(
                "PUBLIC_URL",
                "required in production: the origin browsers use (`https://auth.example.com`); \
                 cross-site checks compare against it and requests naming another host are refused",
            );
        }

        let log_format = match p.get("LOG_FORMAT").map(|v| v.to_ascii_lowercase()) {
            None if production => LogFormat::Json,
            None => LogFormat::Text,
            Some(v) if v == "json" => LogFormat::Json,
            Some(v) if v == "text" => LogFormat::Text,
            Some(v) => {
                p.problem("LOG_FORMAT", format!("`{v}` is not one of `text`, `json`"));
                LogFormat::Text
            }
        };

        let shutdown_timeout = p.duration("SHUTDOWN_TIMEOUT", defaults::SHUTDOWN_TIMEOUT);
        let header_read_timeout = p.duration("HTTP_HEADER_READ_TIMEOUT", defaults::HTTP_HEADER_READ_TIMEOUT);
        let body_read_timeout = p.duration("HTTP_BODY_READ_TIMEOUT", defaults::HTTP_BODY_READ_TIMEOUT);

        let default_threads = std::thread::available_parallelism()
            .map(|n| (n.get() / 2).max(1))
            .unwrap_or(1);
        let hash_threads = match p.get("PASSWORD_HASH_THREADS") {
            None => default_threads,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => n,
                _ => {
                    p.problem(
                        "PASSWORD_HASH_THREADS",
                        format!("`{raw}` is not a number from 1 to 64"),
                    );
                    default_threads
                }
            },
        };
        let trust_forwarded_for = match p.get("TRUST_X_FORWARDED_FOR").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => true,
            Some(v) if matches!(v.as_str(), "false" | "0" | "no") => false,
            Some(v) => {
                p.problem("TRUST_X_FORWARDED_FOR", format!("`{v}` is not `true` or `false`"));
                false
            }
        };

        if !p.problems.is_empty() {
            return Err(ConfigError { problems: p.problems });
        }
        Ok(Settings {
            env,
            host,
            port,
            public_url,
            database,
            redis,
            session,
            google,
            cors_origins,
            allowed_hosts,
            trust_forwarded_for,
            hash_threads,
            log_format,
            shutdown_timeout,
            header_read_timeout,
            body_read_timeout,
            warnings: p.warnings,
        })
    }

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
}

impl Settings {
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

fn parse_host(raw: &str) -> Option<IpAddr> {
    if raw.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::from([127, 0, 0, 1]));
    }
    raw.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// Parses one `scheme://host[:port]` origin, as browsers send it in the `Origin` header.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    if raw == "*" {
        return Err("`*` is not allowed: credentialed CORS needs explicit origins".into());
    }
    if raw.eq_ignore_ascii_case("null") {
        return Err("`null` is not allowed: it is the origin of sandboxed and file:// pages".into());
    }
    let url = Url::parse(raw).map_err(|e| format!("not an origin ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("an origin must be http:// or https://".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("an origin is scheme://host[:port] only, without a path".into());
    }
    Ok(url.origin().ascii_serialization())
}

fn database_settings<V: Vars + ?Sized>(p: &mut Parser<'_, V>, production: bool) -> DatabaseSettings {
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

fn redis_settings<V: Vars + ?Sized>(p: &mut Parser<'_, V>) -> Option<RedisSettings> {
    let key_prefix = p
        .get("REDIS_KEY_PREFIX")
        .unwrap_or_else(|| defaults::REDIS_KEY_PREFIX.to_string());
    if key_prefix.contains(['{', '}']) || key_prefix.chars().any(char::is_whitespace) {
        p.problem(
            "REDIS_KEY_PREFIX",
            "must not contain `{`, `}` or spaces (authauth adds its own cluster hash tags)",
        );
    }
    let password = p.get("REDIS_PASSWORD");
    let (key, raw) = match (p.get("REDIS_URL"), p.get("REDIS_URI")) {
        (Some(url), _) => ("REDIS_URL", url),
        (None, Some(uri)) => ("REDIS_URI", uri),
        (None, None) => {
            let host = p.get("REDIS_HOST")?;
            let port = match p.get("REDIS_PORT") {
                None => 6379,
                Some(raw) => match raw.parse::<u16>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        p.problem("REDIS_PORT", format!("`{raw}` is not a port number (1-65535)"));
                        return None;
                    }
                },
            };
            return match build_url("redis", &host, port, None, password.as_deref(), "") {
                Ok(url) => Some(RedisSettings {
                    url: SecretString::from(url),
                    key_prefix,
                }),
                Err(msg) => {
                    p.problem("REDIS_HOST", msg);
                    None
                }
            };
        }
    };
    let mut url = p.url(key, &raw, &["redis", "rediss", "redis+unix", "unix"])?;
    // The tutorial keeps the password apart; honour it when the URL carries none.
    if let Some(pw) = password {
        if url.password().is_none() && url.has_host() && url.set_password(Some(&pw)).is_err() {
            p.problem("REDIS_PASSWORD", "cannot be combined with this REDIS_URL");
        }
    }
    Some(RedisSettings {
        url: SecretString::from(url.to_string()),
        key_prefix,
    })
}

fn build_url(
    scheme: &str,
    host: &str,
    port: u16,
    user: Option<&str>,
    password: Option<&str>,
    path: &str,
) -> Result<String, String> {
    let mut url = Url::parse(&format!("{scheme}://localhost")).map_err(|e| e.to_string())?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    url.set_host(Some(&host))
        .map_err(|e| format!("`{host}` is not a host name ({e})"))?;
    url.set_port(Some(port))
        .map_err(|_| "cannot set the port".to_string())?;
    if let Some(user) = user {
        url.set_username(user)
            .map_err(|_| "cannot set the user".to_string())?;
    }
    if let Some(pw) = password {
        url.set_password(Some(pw))
            .map_err(|_| "cannot set the password".to_string())?;
    }
    if !path.is_empty() {
        url.path_segments_mut()
            .map_err(|_| "cannot set the database name".to_string())?
            .push(path);
    }
    Ok(url.to_string())
}

fn session_settings<V: Vars + ?Sized>(
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

fn google_settings<V: Vars + ?Sized>(
    p: &mut Parser<'_, V>,
    production: bool,
    host: IpAddr,
    port: u16,
    public_url: Option<&Url>,
) -> Option<GoogleSettings> {
    let client_id = p.get("GOOGLE_CLIENT_ID");
    let client_secret = p.get("GOOGLE_CLIENT_SECRET");
    let callback = p.get("GOOGLE_CALLBACK_URL");
    let issuer = p.get("GOOGLE_ISSUER_URL");
    if client_id.is_none() && client_secret.is_none() && callback.is_none() {
        return None;
    }
    if client_id.is_none() {
        p.problem("GOOGLE_CLIENT_ID", "required when Google sign-in is configured");
    }
    if client_secret.is_none() {
        p.problem(
            "GOOGLE_CLIENT_SECRET",
            "required when Google sign-in is configured",
        );
    }
    let callback_url = match callback {
        Some(raw) => p.url("GOOGLE_CALLBACK_URL", &raw, &["http", "https"]),
        None => match public_url {
            Some(base) => base.join("/auth/google/callback").ok(),
            None if production => {
                p.problem(
                    "GOOGLE_CALLBACK_URL",
                    "required in production (or set PUBLIC_URL)",
                );
                None
            }
            None => {
                let host = if host.is_unspecified() {
                    "127.0.0.1".to_string()
                } else if host.is_ipv6() {
                    format!("[{host}]")
                } else {
                    host.to_string()
                };
                Url::parse(&format!("http://{host}:{port}/auth/google/callback")).ok()
            }
        },
    };
    let issuer_raw = issuer.unwrap_or_else(|| defaults::GOOGLE_ISSUER_URL.to_string());
    // The issuer is compared character for character with the provider's `iss`: keep the
    // configured string exactly (some providers' issuers end with `/`, Google's does not).
    let issuer = issuer_raw.clone();
    let issuer_ok = p.url("GOOGLE_ISSUER_URL", &issuer, &["https", "http"]).is_some();
    let http_timeout = p.duration("GOOGLE_HTTP_TIMEOUT", defaults::GOOGLE_HTTP_TIMEOUT);
    Some(GoogleSettings {
        client_id: client_id?,
        client_secret: SecretString::from(client_secret?),
        callback_url: callback_url?,
        issuer: issuer_ok.then_some(issuer)?,
        http_timeout,
    })
}

/// Replaces the password of a URL with `***`, for logs and messages.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "<unparseable URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(redis.url.expose_secret(), "redis://:r3dis@cache.internal:6380");
        assert_eq!(redis.key_prefix, "authauth:");
    }

    #[test]
    fn redis_uri_is_an_alias_and_password_is_applied() {
        let s = Settings::from_vars(&[("REDIS_URI", "redis://127.0.0.1:6379"), ("REDIS_PASSWORD", "pw")])
            .unwrap();
        assert_eq!(s.redis.unwrap().url.expose_secret(), "redis://:pw@127.0.0.1:6379");
    }

    #[test]
    fn incomplete_postgres_variables_name_what_is_missing() {
        let err = Settings::from_vars(&[("POSTGRES_HOST", "db")]).unwrap_err();
        assert_eq!(err.variables(), vec!["POSTGRES_USER", "POSTGRES_DB_NAME"]);
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
    fn cors_origins_refuse_wildcards_null_and_paths() {
        let s = Settings::from_vars(&[("CORS_ORIGINS", "https://app.example.com, http://localhost:5173")])
            .unwrap();
        assert_eq!(
            s.cors_origins,
            vec!["https://app.example.com", "http://localhost:5173"]
        );
        let err = Settings::from_vars(&[("CORS_ORIGINS", "*,null,https://x.example/path")]).unwrap_err();
        assert_eq!(err.problems.len(), 3);
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
    fn allowed_hosts_are_normalised_and_checked_in_production_or_when_set() {
        let secret = "s".repeat(48);
        let production = |extra: &[(&str, &str)]| {
            let mut vars: HashMap<String, String> = [
                ("APP_ENV", "production"),
                ("DATABASE_URL", "postgres://localhost/authauth"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("SESSION_SECRET", secret.as_str()),
            ]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            vars.retain(|_, v| !v.is_empty());
            Settings::from_vars(&vars)
        };
        let err = production(&[]).unwrap_err();
        assert_eq!(err.variables(), vec!["PUBLIC_URL"]);
        let s = production(&[
            ("PUBLIC_URL", "https://Auth.Example.com"),
            (
                "ALLOWED_HOSTS",
                "127.0.0.1, auth.internal:8080, [::1], bücher.example.",
            ),
        ])
        .unwrap();
        let hosts = s.allowed_hosts.unwrap();
        let names: Vec<String> = hosts
            .iter()
            .map(|h| {
                format!(
                    "{}{}",
                    h.host,
                    h.port.map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                "127.0.0.1",
                "auth.internal:8080",
                "[::1]",
                "xn--bcher-kva.example",
                "auth.example.com"
            ]
        );
        let admitted = |raw: &str| {
            let requested = AllowedHost::parse(raw).unwrap();
            hosts.iter().any(|h| h.admits(&requested))
        };
        for ok in [
            "AUTH.example.com:443",
            "auth.example.com.",
            "127.0.0.1:3000",
            "auth.internal:8080",
            "[::1]:80",
        ] {
            assert!(admitted(ok), "{ok}");
        }
        for refused in [
            "auth.internal:8081",
            "evil.example",
            "auth.example.com.evil.example",
        ] {
            assert!(!admitted(refused), "{refused}");
        }
        for bad in ["a b", "host:port", "user@host", "host/path", "[::1", "::1"] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
        let err = production(&[
            ("PUBLIC_URL", "https://a.example"),
            ("ALLOWED_HOSTS", "ok, bad host"),
        ])
        .unwrap_err();
        assert_eq!(err.variables(), vec!["ALLOWED_HOSTS"]);
        // Development checks hosts only when asked to.
        assert!(Settings::from_vars(&[("PUBLIC_URL", "https://a.example")])
            .unwrap()
            .allowed_hosts
            .is_none());
        let dev = Settings::from_vars(&[("ALLOWED_HOSTS", "localhost")]).unwrap();
        assert_eq!(dev.allowed_hosts.unwrap().len(), 1);
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
