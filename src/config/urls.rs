//! Building URLs from parts, and printing them without their password.

use url::Url;

/// Replaces the password of a URL with `***`, for logs and messages: the one before `@`, and
/// any query parameter that carries one (`?password=` for PostgreSQL, `?pass=` for Redis over a
/// Unix socket, a webhook receiver's `?token=`…).
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = Url::parse(raw) else {
        return "<unparseable URL>".to_string();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_parameter(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// Whether a query parameter named `name` may carry a secret.
fn secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "sig",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

pub(super) fn build_url(
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

/// Whether `url` names this machine: `localhost` or a loopback address — also under a scheme
/// the url crate does not know (`smtp:`), whose host it leaves unparsed.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The origin a development server is reached on when `PUBLIC_URL` is not set:
/// `http://HOST:PORT`, with `127.0.0.1` for an unspecified host and IPv6 in brackets. What
/// `GOOGLE_CALLBACK_URL` and the e-mailed links default to.
pub fn local_origin(host: std::net::IpAddr, port: u16) -> String {
    match host {
        ip if ip.is_unspecified() => format!("http://127.0.0.1:{port}"),
        std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
        ip => format!("http://{ip}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_local_origin_is_reachable_and_brackets_ipv6() {
        use super::local_origin;
        assert_eq!(
            local_origin("0.0.0.0".parse().unwrap(), 3000),
            "http://127.0.0.1:3000"
        );
        assert_eq!(local_origin("::".parse().unwrap(), 3000), "http://127.0.0.1:3000");
        assert_eq!(local_origin("::1".parse().unwrap(), 8080), "http://[::1]:8080");
        assert_eq!(
            local_origin("10.0.0.5".parse().unwrap(), 80),
            "http://10.0.0.5:80"
        );
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_url;

    #[test]
    fn no_password_survives_redaction_before_the_host_or_in_the_query() {
        for (raw, secret) in [
            ("postgres://app:hunter2@db/authauth", "hunter2"),
            (
                "postgres://app@db/authauth?password=hunter2&sslmode=require",
                "hunter2",
            ),
            ("redis+unix:///run/redis.sock?pass=hunter2", "hunter2"),
            ("https://hooks.example/x?token=hunter2", "hunter2"),
            ("https://hooks.example/x?api_key=hunter2", "hunter2"),
        ] {
            let shown = redact_url(raw);
            assert!(!shown.contains(secret), "{raw} → {shown}");
            assert!(shown.contains("***"), "{raw} → {shown}");
        }
        // The rest stays readable.
        assert_eq!(
            redact_url("postgres://app@db/authauth?sslmode=require"),
            "postgres://app@db/authauth?sslmode=require"
        );
        assert_eq!(redact_url("not a url"), "<unparseable URL>");
    }
}
