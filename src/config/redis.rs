//! The Redis session store. `REDIS_MODE` says what `REDIS_URL` points at:
//!
//! | mode | `REDIS_URL` | also |
//! |---|---|---|
//! | `standalone` (default) | one server (or `REDIS_URI`, or `REDIS_HOST`/`REDIS_PORT`) | |
//! | `cluster` | seed nodes, comma-separated; one reachable seed is enough | |
//! | `sentinel` | the Sentinels, comma-separated | `REDIS_SENTINEL_MASTER` |
//!
//! Credentials for the data nodes: in the URL, or `REDIS_USERNAME`/`REDIS_PASSWORD` (applied to
//! every URL that has none). In Sentinel mode the URLs are the Sentinels', so their userinfo (or
//! `REDIS_SENTINEL_USERNAME`/`REDIS_SENTINEL_PASSWORD`) authenticates to the Sentinels and
//! `REDIS_USERNAME`/`REDIS_PASSWORD` to the primary. Unset altogether: sessions live in the SQL
//! database.

use std::{fmt, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{
    defaults,
    parser::{Parser, Vars},
    redact_url,
    urls::build_url,
};

/// How authauth reaches Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    Standalone,
    Cluster,
    Sentinel,
}

impl RedisMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisMode::Standalone => "standalone",
            RedisMode::Cluster => "cluster",
            RedisMode::Sentinel => "sentinel",
        }
    }
}

/// Sentinel mode: which primary to ask for, and how to authenticate to it.
#[derive(Clone)]
pub struct SentinelSettings {
    /// The name the Sentinels monitor the primary under (`REDIS_SENTINEL_MASTER`).
    pub master: String,
    /// The primary's (and replicas') ACL user, if any.
    pub username: Option<String>,
    pub password: Option<SecretString>,
}

/// `REDIS_WAIT_REPLICAS`: revocations return only once this many replicas have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitForReplicas {
    pub replicas: u32,
    /// How long a revocation waits for them before failing closed (`REDIS_WAIT_TIMEOUT`).
    pub timeout: Duration,
}

/// `rediss://` trust and identity beyond the system's roots: `REDIS_CA_FILE` (PEM, replaces the
/// system roots), `REDIS_CLIENT_CERT_FILE` + `REDIS_CLIENT_KEY_FILE` (mutual TLS).
#[derive(Clone, Default)]
pub struct RedisTls {
    pub ca: Option<Vec<u8>>,
    pub client: Option<(Vec<u8>, SecretString)>,
}

#[derive(Clone)]
pub struct RedisSettings {
    pub mode: RedisMode,
    /// Standalone: the server. Cluster: the seed nodes. Sentinel: the Sentinels.
    pub urls: Vec<SecretString>,
    /// Set in Sentinel mode.
    pub sentinel: Option<SentinelSettings>,
    /// Every key authauth writes starts with this prefix.
    pub key_prefix: String,
    /// Unset: a revocation returns once the primary has it.
    pub wait: Option<WaitForReplicas>,
    /// For `rediss://`; empty: the system's roots, no client certificate.
    pub tls: RedisTls,
}

impl RedisSettings {
    /// One standalone server, nothing else set.
    pub fn standalone(url: impl Into<String>, key_prefix: impl Into<String>) -> Self {
        RedisSettings {
            mode: RedisMode::Standalone,
            urls: vec![SecretString::from(url.into())],
            sentinel: None,
            key_prefix: key_prefix.into(),
            wait: None,
            tls: RedisTls::default(),
        }
    }

    /// The URLs without their passwords, comma-separated: for messages.
    pub fn redacted_urls(&self) -> String {
        self.urls
            .iter()
            .map(|u| redact_url(u.expose_secret()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("mode", &self.mode)
            .field("urls", &self.redacted_urls())
            .field("sentinel_master", &self.sentinel.as_ref().map(|s| &s.master))
            .field("key_prefix", &self.key_prefix)
            .field("wait", &self.wait)
            .field("ca_file", &self.tls.ca.is_some())
            .field("client_certificate", &self.tls.client.is_some())
            .finish()
    }
}

pub(super) fn parse<V: Vars + ?Sized>(p: &mut Parser<'_, V>, production: bool) -> Option<RedisSettings> {
    let redis = settings(p);
    if production && redis.is_none() && !p.problems.iter().any(|x| x.variable.starts_with("REDIS")) {
        p.problem(
            "REDIS_URL",
            "required in production (or REDIS_HOST/REDIS_PORT/REDIS_PASSWORD); sessions belong in Redis",
        );
    }
    redis
}

fn mode<V: Vars + ?Sized>(p: &mut Parser<'_, V>) -> Option<RedisMode> {
    match p.get("REDIS_MODE").map(|m| m.to_ascii_lowercase()).as_deref() {
        None | Some("standalone") => Some(RedisMode::Standalone),
        Some("cluster") => Some(RedisMode::Cluster),
        Some("sentinel") => Some(RedisMode::Sentinel),
        Some(other) => {
            p.problem(
                "REDIS_MODE",
                format!("`{other}` is not a mode (expected standalone, cluster or sentinel)"),
            );
            None
        }
    }
}

fn settings<V: Vars + ?Sized>(p: &mut Parser<'_, V>) -> Option<RedisSettings> {
    let key_prefix = p
        .get("REDIS_KEY_PREFIX")
        .unwrap_or_else(|| defaults::REDIS_KEY_PREFIX.to_string());
    if key_prefix.contains(['{', '}']) || key_prefix.chars().any(char::is_whitespace) {
        p.problem(
            "REDIS_KEY_PREFIX",
            "must not contain `{`, `}` or spaces (authauth adds its own cluster hash tags)",
        );
    }
    let mode = mode(p);
    let wait = wait(p);
    let tls = tls(p);
    let username = p.get("REDIS_USERNAME");
    let password = p.get("REDIS_PASSWORD");
    let master = p.get("REDIS_SENTINEL_MASTER");
    let sentinel_username = p.get("REDIS_SENTINEL_USERNAME");
    let sentinel_password = p.get("REDIS_SENTINEL_PASSWORD");
    let (key, raw) = match (p.get("REDIS_URL"), p.get("REDIS_URI")) {
        (Some(url), _) => ("REDIS_URL", url),
        (None, Some(uri)) => ("REDIS_URI", uri),
        (None, None) => {
            let host = p.get("REDIS_HOST")?;
            if mode.is_some_and(|m| m != RedisMode::Standalone) {
                p.problem(
                    "REDIS_HOST",
                    "names one server; in cluster or sentinel mode list the nodes in REDIS_URL",
                );
                return None;
            }
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
            return match build_url("redis", &host, port, username.as_deref(), password.as_deref(), "") {
                Ok(url) => Some(RedisSettings {
                    wait,
                    tls,
                    ..RedisSettings::standalone(url, key_prefix)
                }),
                Err(msg) => {
                    p.problem("REDIS_HOST", msg);
                    None
                }
            };
        }
    };
    let mode = mode?;
    let raws: Vec<&str> = raw.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    if mode == RedisMode::Standalone && raws.len() > 1 {
        p.problem(
            key,
            format!(
                "lists {} servers; set REDIS_MODE=cluster (seed nodes) or REDIS_MODE=sentinel (Sentinels)",
                raws.len()
            ),
        );
        return None;
    }
    let schemes: &[&str] = match mode {
        RedisMode::Standalone => &["redis", "rediss", "redis+unix", "unix"],
        // Cluster nodes and Sentinels announce host:port pairs: no Unix sockets.
        RedisMode::Cluster | RedisMode::Sentinel => &["redis", "rediss"],
    };
    // In Sentinel mode the URLs are the Sentinels': their own credentials apply.
    let (url_user, url_password) = match mode {
        RedisMode::Sentinel => (sentinel_username.as_deref(), sentinel_password.as_deref()),
        _ => (username.as_deref(), password.as_deref()),
    };
    let mut urls: Vec<Url> = Vec::new();
    for raw in raws {
        let Some(mut url) = p.url(key, raw, schemes) else {
            continue;
        };
        if url.has_host() && url.username().is_empty() && url.password().is_none() {
            if let Some(user) = url_user {
                if url.set_username(user).is_err() {
                    p.problem(key, "cannot carry a user name");
                }
            }
            if let Some(pw) = url_password {
                if url.set_password(Some(pw)).is_err() {
                    p.problem("REDIS_PASSWORD", "cannot be combined with this REDIS_URL");
                }
            }
        }
        urls.push(url);
    }
    if urls.is_empty() {
        if !p.problems.iter().any(|x| x.variable == key) {
            p.problem(key, "lists no server");
        }
        return None;
    }
    if mode != RedisMode::Standalone {
        consistent(p, key, mode, &urls);
    }
    let sentinel = match (mode, master) {
        (RedisMode::Sentinel, Some(master)) => Some(SentinelSettings {
            master,
            username,
            password: password.map(SecretString::from),
        }),
        (RedisMode::Sentinel, None) => {
            p.problem(
                "REDIS_SENTINEL_MASTER",
                "required in sentinel mode: the name the Sentinels monitor the primary under",
            );
            None
        }
        (_, Some(_)) => {
            p.problem(
                "REDIS_SENTINEL_MASTER",
                "only read in sentinel mode (set REDIS_MODE=sentinel)",
            );
            None
        }
        (_, None) => None,
    };
    Some(RedisSettings {
        mode,
        urls: urls.iter().map(|u| SecretString::from(u.to_string())).collect(),
        sentinel,
        key_prefix,
        wait,
        tls,
    })
}

/// Reads a PEM file named by `key`, or reports why it cannot.
fn pem<V: Vars + ?Sized>(p: &mut Parser<'_, V>, key: &str) -> Option<Vec<u8>> {
    let path = p.get(key)?;
    match std::fs::read(&path) {
        Ok(bytes) if bytes.windows(11).any(|w| w == b"-----BEGIN ") => Some(bytes),
        Ok(_) => {
            p.problem(key, format!("`{path}` holds no PEM block"));
            None
        }
        Err(e) => {
            p.problem(key, format!("cannot read `{path}` ({e})"));
            None
        }
    }
}

fn tls<V: Vars + ?Sized>(p: &mut Parser<'_, V>) -> RedisTls {
    let ca = pem(p, "REDIS_CA_FILE");
    let cert = pem(p, "REDIS_CLIENT_CERT_FILE");
    let key = pem(p, "REDIS_CLIENT_KEY_FILE");
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((
            cert,
            SecretString::from(String::from_utf8_lossy(&key).into_owned()),
        )),
        (None, None) => None,
        (Some(_), None) => {
            p.problem("REDIS_CLIENT_KEY_FILE", "required with REDIS_CLIENT_CERT_FILE");
            None
        }
        (None, Some(_)) => {
            p.problem("REDIS_CLIENT_CERT_FILE", "required with REDIS_CLIENT_KEY_FILE");
            None
        }
    };
    RedisTls { ca, client }
}

/// Cluster seeds and Sentinels must agree on TLS and credentials, and a cluster has only
/// database 0: one client serves them all.
fn consistent<V: Vars + ?Sized>(p: &mut Parser<'_, V>, key: &str, mode: RedisMode, urls: &[Url]) {
    let first = &urls[0];
    if urls.iter().any(|u| u.scheme() != first.scheme()) {
        p.problem(key, "mixes redis:// and rediss://; use one for every node");
    }
    if urls
        .iter()
        .any(|u| u.username() != first.username() || u.password() != first.password())
    {
        p.problem(
            key,
            "gives the nodes different credentials; one user and password serve them all",
        );
    }
    if mode == RedisMode::Cluster && urls.iter().any(|u| !matches!(u.path(), "" | "/" | "/0")) {
        p.problem(key, "names a database; a Redis Cluster has only database 0");
    }
}

fn wait<V: Vars + ?Sized>(p: &mut Parser<'_, V>) -> Option<WaitForReplicas> {
    let replicas = match p.get("REDIS_WAIT_REPLICAS") {
        None => 0,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if n <= 16 => n,
            _ => {
                p.problem(
                    "REDIS_WAIT_REPLICAS",
                    format!("`{raw}` is not a replica count (0-16)"),
                );
                0
            }
        },
    };
    let timeout = match p.get("REDIS_WAIT_TIMEOUT") {
        None => defaults::REDIS_WAIT_TIMEOUT,
        Some(raw) => match humantime::parse_duration(&raw) {
            Ok(d) if d >= Duration::from_millis(1) && d <= Duration::from_secs(10) => d,
            Ok(_) => {
                p.problem("REDIS_WAIT_TIMEOUT", format!("`{raw}` is outside 1ms-10s"));
                defaults::REDIS_WAIT_TIMEOUT
            }
            Err(e) => {
                p.problem(
                    "REDIS_WAIT_TIMEOUT",
                    format!("`{raw}` is not a duration ({e}); use forms like `250ms` or `1s`"),
                );
                defaults::REDIS_WAIT_TIMEOUT
            }
        },
    };
    (replicas > 0).then_some(WaitForReplicas { replicas, timeout })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::ExposeSecret;

    use super::{RedisMode, WaitForReplicas};
    use crate::config::Settings;

    fn urls(s: &Settings) -> Vec<String> {
        s.redis
            .as_ref()
            .unwrap()
            .urls
            .iter()
            .map(|u| u.expose_secret().to_string())
            .collect()
    }

    #[test]
    fn redis_uri_is_an_alias_and_password_is_applied() {
        let s = Settings::from_vars(&[("REDIS_URI", "redis://127.0.0.1:6379"), ("REDIS_PASSWORD", "pw")])
            .unwrap();
        assert_eq!(urls(&s), ["redis://:pw@127.0.0.1:6379"]);
    }

    #[test]
    fn cluster_mode_takes_every_seed_and_applies_the_acl_user_to_each() {
        let s = Settings::from_vars(&[
            ("REDIS_MODE", "cluster"),
            ("REDIS_URL", "redis://10.0.0.1:7000, redis://10.0.0.2:7000,"),
            ("REDIS_USERNAME", "authauth"),
            ("REDIS_PASSWORD", "pw"),
        ])
        .unwrap();
        assert_eq!(s.redis.as_ref().unwrap().mode, RedisMode::Cluster);
        assert_eq!(
            urls(&s),
            [
                "redis://authauth:pw@10.0.0.1:7000",
                "redis://authauth:pw@10.0.0.2:7000"
            ]
        );
    }

    #[test]
    fn sentinel_credentials_stay_apart_from_the_primarys() {
        let s = Settings::from_vars(&[
            ("REDIS_MODE", "sentinel"),
            ("REDIS_URL", "redis://10.0.0.1:26379,redis://10.0.0.2:26379"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
            ("REDIS_SENTINEL_PASSWORD", "sentinel-pw"),
            ("REDIS_USERNAME", "app"),
            ("REDIS_PASSWORD", "data-pw"),
        ])
        .unwrap();
        assert_eq!(
            urls(&s),
            [
                "redis://:sentinel-pw@10.0.0.1:26379",
                "redis://:sentinel-pw@10.0.0.2:26379"
            ]
        );
        let sentinel = s.redis.unwrap().sentinel.unwrap();
        assert_eq!(sentinel.master, "mymaster");
        assert_eq!(sentinel.username.as_deref(), Some("app"));
        assert_eq!(sentinel.password.unwrap().expose_secret(), "data-pw");
    }

    #[test]
    fn every_redis_mode_problem_is_reported_at_once() {
        let err = Settings::from_vars(&[
            ("REDIS_MODE", "sentinel"),
            ("REDIS_URL", "redis://a:26379,rediss://b:26379,unix:///tmp/r.sock"),
            ("REDIS_WAIT_REPLICAS", "many"),
            ("REDIS_WAIT_TIMEOUT", "0ms"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("REDIS_URL: scheme `unix` is not supported"),
            "{text}"
        );
        assert!(text.contains("mixes redis:// and rediss://"), "{text}");
        assert!(
            text.contains("REDIS_SENTINEL_MASTER: required in sentinel mode"),
            "{text}"
        );
        assert!(text.contains("REDIS_WAIT_REPLICAS: `many`"), "{text}");
        assert!(text.contains("REDIS_WAIT_TIMEOUT: `0ms` is outside"), "{text}");

        let err =
            Settings::from_vars(&[("REDIS_MODE", "replicated"), ("REDIS_URL", "redis://a")]).unwrap_err();
        assert_eq!(err.variables(), ["REDIS_MODE"]);
        let err = Settings::from_vars(&[("REDIS_URL", "redis://a:7000,redis://b:7000")]).unwrap_err();
        assert!(err.to_string().contains("set REDIS_MODE=cluster"), "{err}");
        let err =
            Settings::from_vars(&[("REDIS_MODE", "cluster"), ("REDIS_URL", "redis://a:7000/3")]).unwrap_err();
        assert!(err.to_string().contains("only database 0"), "{err}");
        let err = Settings::from_vars(&[
            ("REDIS_URL", "redis://a:6379"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
        ])
        .unwrap_err();
        assert_eq!(err.variables(), ["REDIS_SENTINEL_MASTER"]);
    }

    #[test]
    fn tls_files_must_be_readable_pem_and_the_client_pair_complete() {
        let dir = std::env::temp_dir().join(format!("authauth-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("ca.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let cert = dir.join("client.pem");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n").unwrap();
        let err = Settings::from_vars(&[
            ("REDIS_URL", "rediss://a:6380"),
            ("REDIS_CA_FILE", not_pem.to_str().unwrap()),
            ("REDIS_CLIENT_CERT_FILE", cert.to_str().unwrap()),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("REDIS_CA_FILE: `") && text.contains("holds no PEM block"),
            "{text}"
        );
        assert!(
            text.contains("REDIS_CLIENT_KEY_FILE: required with REDIS_CLIENT_CERT_FILE"),
            "{text}"
        );
        let err = Settings::from_vars(&[
            ("REDIS_URL", "rediss://a:6380"),
            ("REDIS_CA_FILE", "/nonexistent/ca.pem"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("cannot read `/nonexistent/ca.pem`"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn waiting_for_replicas_is_off_unless_asked_for() {
        let s = Settings::from_vars(&[("REDIS_URL", "redis://a:6379")]).unwrap();
        assert_eq!(s.redis.unwrap().wait, None);
        let s = Settings::from_vars(&[
            ("REDIS_URL", "redis://a:6379"),
            ("REDIS_WAIT_REPLICAS", "1"),
            ("REDIS_WAIT_TIMEOUT", "250ms"),
        ])
        .unwrap();
        assert_eq!(
            s.redis.unwrap().wait,
            Some(WaitForReplicas {
                replicas: 1,
                timeout: Duration::from_millis(250)
            })
        );
    }
}
