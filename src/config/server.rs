//! The HTTP server: where it listens, the origin and hosts it answers for, cross-origin callers,
//! proxies, slow clients, shutdown, and the threads that hash passwords.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use url::Url;

use super::{
    defaults,
    parser::{Parser, Vars},
    urls::is_loopback,
};

/// [`defaults::HOST`] as an address.
const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Where the server listens, and the origin browsers use.
pub(super) struct Listen {
    pub host: IpAddr,
    pub port: u16,
    pub public_url: Option<Url>,
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// How requests are admitted and served.
pub(super) struct Http {
    pub cors_origins: Vec<String>,
    pub allowed_hosts: Option<Vec<AllowedHost>>,
    pub trust_forwarded_for: bool,
    pub sign_in_path: String,
    pub ui_enabled: bool,
    pub shutdown_timeout: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub hash_threads: usize,
    pub audit_retention: Duration,
}

/// `HOST`, `PORT`, `PUBLIC_URL`.
pub(super) fn listen<V: Vars + ?Sized>(p: &mut Parser<'_, V>) -> Listen {
    let host = match p.get("HOST") {
        None => DEFAULT_HOST,
        Some(raw) => match parse_host(&raw) {
            Some(ip) => ip,
            None => {
                p.problem(
                    "HOST",
                    format!("`{raw}` is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)"),
                );
                DEFAULT_HOST
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
    let metrics_addr =
        p.get("METRICS_ADDR")
            .and_then(|raw| match raw.parse::<std::net::SocketAddr>() {
                Ok(addr)
                    if addr.port() != 0
                        && addr.port() == port
                        && (addr.ip() == host || addr.ip().is_unspecified() || host.is_unspecified()) =>
                {
                    p.problem(
                "METRICS_ADDR",
                format!("`{raw}` is the public listener; metrics need their own port, never the public one"),
            );
                    None
                }
                Ok(addr) => Some(addr),
                Err(_) => {
                    p.problem(
                        "METRICS_ADDR",
                        format!("`{raw}` is not an address and port (e.g. 127.0.0.1:9464, [::1]:9464)"),
                    );
                    None
                }
            });
    Listen {
        host,
        port,
        public_url,
        metrics_addr,
    }
}

/// `CORS_ORIGINS`, `ALLOWED_HOSTS` (and `PUBLIC_URL` required in production),
/// `TRUST_X_FORWARDED_FOR`, `SIGN_IN_PATH`, `UI_ENABLED`, the timeouts, `PASSWORD_HASH_THREADS`.
pub(super) fn http<V: Vars + ?Sized>(p: &mut Parser<'_, V>, production: bool, listen: &Listen) -> Http {
    let public_url = listen.public_url.as_ref();
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
        if let Some(host) = public_url.and_then(Url::host_str) {
            if let Ok(host) = AllowedHost::parse(host) {
                allowed_hosts.push(host);
            }
        }
        Some(allowed_hosts)
    } else {
        None
    };
    if let Some(url) = public_url.filter(|u| production && u.scheme() == "http" && !is_loopback(u)) {
        p.problem(
            "PUBLIC_URL",
            format!(
                "`{url}` is plain http in production: browsers drop the Secure session cookie on it, \
                 and reset links, sign-in redirects and cookies would travel in clear; use https \
                 (plain http is accepted for a loopback address only)"
            ),
        );
    }
    if production && public_url.is_none() && !p.problems.iter().any(|x| x.variable == "PUBLIC_URL") {
        p.problem(
            "PUBLIC_URL",
            "required in production: the origin browsers use (`https://auth.example.com`); \
             cross-site checks compare against it and requests naming another host are refused",
        );
    }

    let shutdown_timeout = p.duration("SHUTDOWN_TIMEOUT", defaults::SHUTDOWN_TIMEOUT);
    let audit_retention = p.duration("AUDIT_RETENTION", defaults::AUDIT_RETENTION);
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
    let trust_forwarded_for = flag(p, "TRUST_X_FORWARDED_FOR", false);
    let ui_enabled = flag(p, "UI_ENABLED", defaults::UI_ENABLED);
    let sign_in_path = match p.get("SIGN_IN_PATH") {
        None => defaults::SIGN_IN_PATH.to_string(),
        Some(raw) if is_site_path(&raw) => raw,
        Some(raw) => {
            p.problem(
                "SIGN_IN_PATH",
                format!(
                    "`{raw}` is not a path on this site: it starts with one `/`, has no query, \
                     fragment, backslash, space or control character (e.g. `/login`)"
                ),
            );
            defaults::SIGN_IN_PATH.to_string()
        }
    };
    Http {
        cors_origins,
        allowed_hosts,
        trust_forwarded_for,
        sign_in_path,
        ui_enabled,
        shutdown_timeout,
        header_read_timeout,
        body_read_timeout,
        hash_threads,
        audit_retention,
    }
}

/// A `true`/`false` variable (`1`/`0`, `yes`/`no` too), `default` when unset.
pub(super) fn flag<V: Vars + ?Sized>(p: &mut Parser<'_, V>, name: &'static str, default: bool) -> bool {
    match p.get(name).map(|v| v.to_ascii_lowercase()) {
        None => default,
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => true,
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => false,
        Some(v) => {
            p.problem(name, format!("`{v}` is not `true` or `false`"));
            default
        }
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

    /// True when a raw `Host` value is this host written exactly as [`AllowedHost::parse`]
    /// normalises it (`auth.example.com`, `auth.example.com:8443`), on an admitted port — what
    /// clients send nearly always. Then parsing it (IDNA mapping included) would give this host
    /// back, so the answer is the one [`AllowedHost::admits`] would give, without the parse.
    /// `false` means "not shown this way", not "refused": the caller parses then.
    pub fn admits_verbatim(&self, raw: &str) -> bool {
        let Some(rest) = raw.strip_prefix(self.host.as_str()) else {
            return false;
        };
        if rest.is_empty() {
            return self.port.is_none();
        }
        let Some(digits) = rest.strip_prefix(':') else {
            return false;
        };
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        match digits.parse::<u16>() {
            Ok(port) => self.port.is_none_or(|p| p == port),
            Err(_) => false,
        }
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

/// A path on this site a browser can be sent to: `/`, then printable ASCII without a backslash, `?`,
/// `#` — never `//host` (another site) — up to 512 bytes.
fn is_site_path(raw: &str) -> bool {
    raw.starts_with('/')
        && !raw.starts_with("//")
        && raw.len() <= 512
        && raw
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'\\' | b'?' | b'#'))
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

#[cfg(test)]
mod tests {

    #[test]
    fn metrics_never_share_the_public_listener() {
        use crate::config::Settings;
        let err = Settings::from_vars(&[("PORT", "3000"), ("METRICS_ADDR", "127.0.0.1:3000")]).unwrap_err();
        assert_eq!(err.variables(), ["METRICS_ADDR"], "{err}");
        let err = Settings::from_vars(&[("METRICS_ADDR", "metrics:9464")]).unwrap_err();
        assert!(err.to_string().contains("is not an address and port"), "{err}");
        let s = Settings::from_vars(&[("PORT", "3000"), ("METRICS_ADDR", "127.0.0.1:9464")]).unwrap();
        assert_eq!(s.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(Settings::from_vars(&[]).unwrap().metrics_addr, None);
    }
    use std::collections::HashMap;

    use crate::config::{defaults, server::DEFAULT_HOST, AllowedHost, Settings};

    /// Production's settings: the required variables, then `extra` (an empty value unsets).
    fn production(extra: &[(&str, &str)]) -> Result<Settings, crate::config::ConfigError> {
        let secret = "s".repeat(48);
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
    }

    #[test]
    fn the_default_host_is_the_documented_one() {
        assert_eq!(DEFAULT_HOST.to_string(), defaults::HOST);
    }

    #[test]
    fn the_hosted_pages_are_on_unless_turned_off() {
        assert!(Settings::from_vars(&[("X", "y")]).unwrap().ui_enabled);
        assert!(
            !Settings::from_vars(&[("UI_ENABLED", "false")])
                .unwrap()
                .ui_enabled
        );
        assert!(Settings::from_vars(&[("UI_ENABLED", "1")]).unwrap().ui_enabled);
        let err = Settings::from_vars(&[("UI_ENABLED", "maybe")]).unwrap_err();
        assert_eq!(err.variables(), vec!["UI_ENABLED"]);
    }

    #[test]
    fn the_sign_in_path_is_a_path_on_this_site() {
        assert_eq!(Settings::from_vars(&[("X", "y")]).unwrap().sign_in_path, "/login");
        let s = Settings::from_vars(&[("SIGN_IN_PATH", "/account/sign-in")]).unwrap();
        assert_eq!(s.sign_in_path, "/account/sign-in");
        for bad in [
            "login",
            "//evil.example",
            "https://evil.example/login",
            "/\\evil.example",
            "/login?next=x",
            "/login#x",
            "/with space",
        ] {
            let err = Settings::from_vars(&[("SIGN_IN_PATH", bad)]).unwrap_err();
            assert_eq!(err.variables(), vec!["SIGN_IN_PATH"], "{bad}");
        }
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

    /// Production refuses a plain-http origin, provider callback or issuer — anything but
    /// loopback: the cookie is Secure, and links, codes and the provider's keys travel on them.
    #[test]
    fn production_refuses_plain_http_origins_callbacks_and_issuers_but_on_loopback() {
        let google = |public: &'static str, callback: &'static str, issuer: &'static str| {
            production(&[
                ("PUBLIC_URL", public),
                ("GOOGLE_CLIENT_ID", "id"),
                ("GOOGLE_CLIENT_SECRET", "secret"),
                ("GOOGLE_CALLBACK_URL", callback),
                ("GOOGLE_ISSUER_URL", issuer),
            ])
        };
        let err = production(&[("PUBLIC_URL", "http://auth.example.com")]).unwrap_err();
        assert_eq!(err.variables(), vec!["PUBLIC_URL"]);
        let err = google(
            "https://auth.example.com",
            "http://auth.example.com/auth/google/callback",
            "http://idp.example.com/realms/x",
        )
        .unwrap_err();
        assert_eq!(err.variables(), vec!["GOOGLE_CALLBACK_URL", "GOOGLE_ISSUER_URL"]);
        assert!(google(
            "https://auth.example.com",
            "https://auth.example.com/auth/google/callback",
            "https://idp.example.com/realms/x",
        )
        .is_ok());
        // This machine: a local proxy, a provider on loopback.
        assert!(google(
            "http://localhost:3000",
            "http://127.0.0.1:3000/auth/google/callback",
            "http://127.0.0.1:4000",
        )
        .is_ok());
        // A callback whose normal form differs is sent in that form, and the operator is told.
        let s = google(
            "https://auth.example.com",
            "https://Auth.Example.com:443/auth/google/callback",
            "https://idp.example.com",
        )
        .unwrap();
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("`https://auth.example.com/auth/google/callback`")),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn allowed_hosts_are_normalised_and_checked_in_production_or_when_set() {
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
        // The shortcut for a host written as it is normalised never admits what the parse
        // refuses, and admits the usual spellings.
        for raw in [
            "127.0.0.1",
            "127.0.0.1:3000",
            "127.0.0.10",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "127.0.0.1:+80",
            "127.0.0.1:080",
            "auth.internal:8080",
            "auth.internal:8081",
            "auth.internal",
            "[::1]",
            "[::1]:80",
            "auth.example.com",
            "auth.example.com.evil.example",
            "auth.example.com:443",
            "auth.example.comx",
            "auth.example.com:443:443",
            "auth.example.com@evil.example",
            "auth.example.com/x",
        ] {
            let parsed = AllowedHost::parse(raw).is_ok_and(|r| hosts.iter().any(|h| h.admits(&r)));
            for h in &hosts {
                if h.admits_verbatim(raw) {
                    assert!(parsed, "{raw} admitted verbatim by {h} but not when parsed");
                }
            }
        }
        for usual in [
            "127.0.0.1",
            "127.0.0.1:3000",
            "auth.internal:8080",
            "[::1]:80",
            "auth.example.com",
        ] {
            assert!(hosts.iter().any(|h| h.admits_verbatim(usual)), "{usual}");
        }
        for not_verbatim in [
            "auth.internal:8081",
            "auth.internal",
            "AUTH.example.com",
            "auth.example.com.",
            "127.0.0.1:",
        ] {
            assert!(
                !hosts.iter().any(|h| h.admits_verbatim(not_verbatim)),
                "{not_verbatim}"
            );
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
}
