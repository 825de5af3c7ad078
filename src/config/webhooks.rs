//! Session-lifecycle webhooks: where to POST them and the key that signs them.

use std::fmt;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{
    parser::{Parser, Vars},
    urls::is_loopback,
};

/// `WEBHOOK_URLS` and `WEBHOOK_SECRET`.
#[derive(Clone)]
pub struct WebhookSettings {
    /// Every receiver; each gets every event.
    pub urls: Vec<Url>,
    /// The Standard Webhooks signing secret, `whsec_<base64>`.
    pub secret: SecretString,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("urls", &self.urls.iter().map(Url::as_str).collect::<Vec<_>>())
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The longest receiver URL: the outbox's column (`webhook_deliveries.url`, `varchar(2048)`).
const MAX_URL_LEN: usize = 2048;

/// The key the Standard Webhooks libraries accept: 24 to 64 random bytes.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

pub(super) fn parse<V: Vars + ?Sized>(p: &mut Parser<'_, V>, production: bool) -> Option<WebhookSettings> {
    let urls = p.get("WEBHOOK_URLS").filter(|v| !v.is_empty());
    let secret = p.get("WEBHOOK_SECRET").filter(|v| !v.is_empty());
    let raw = match (urls, &secret) {
        (None, None) => return None,
        (None, Some(_)) => {
            p.problem(
                "WEBHOOK_URLS",
                "required when WEBHOOK_SECRET is set: where to send the events",
            );
            return None;
        }
        (Some(raw), _) => raw,
    };
    let mut urls = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(url) = p.url("WEBHOOK_URLS", item, &["http", "https"]) else {
            continue;
        };
        if production && url.scheme() == "http" && !is_loopback(&url) {
            p.problem(
                "WEBHOOK_URLS",
                format!(
                    "`{}` is plain http in production: events would cross the network readable and \
                     alterable; use https (plain http is accepted for a loopback receiver only)",
                    url.as_str()
                ),
            );
            continue;
        }
        if !url.username().is_empty() || url.password().is_some() {
            p.problem(
                "WEBHOOK_URLS",
                "a receiver URL must not carry credentials; receivers authenticate authauth by the signature",
            );
            continue;
        }
        if url.as_str().len() > MAX_URL_LEN {
            p.problem(
                "WEBHOOK_URLS",
                format!("a receiver URL is longer than {MAX_URL_LEN} characters, the most the outbox keeps"),
            );
            continue;
        }
        urls.push(url);
    }
    if urls.is_empty() && !p.problems.iter().any(|x| x.variable == "WEBHOOK_URLS") {
        p.problem("WEBHOOK_URLS", "lists no URL");
    }
    let Some(secret) = secret else {
        p.problem(
            "WEBHOOK_SECRET",
            "required when WEBHOOK_URLS is set: the Standard Webhooks signing secret, `whsec_` + \
             base64 of 24 to 64 random bytes (e.g. `echo whsec_$(openssl rand -base64 32)`)",
        );
        return None;
    };
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
    match key {
        Some(key) if KEY_BYTES.contains(&key.len()) => {}
        _ => {
            p.problem(
                "WEBHOOK_SECRET",
                "must be `whsec_` followed by the base64 of 24 to 64 random bytes \
                 (e.g. `echo whsec_$(openssl rand -base64 32)`)",
            );
            return None;
        }
    }
    let secret = SecretString::from(secret);
    // Checked above: the crate accepts it.
    if standardwebhooks::Webhook::new(secret.expose_secret()).is_err() {
        p.problem("WEBHOOK_SECRET", "is not a valid Standard Webhooks secret");
        return None;
    }
    (!urls.is_empty()).then_some(WebhookSettings { urls, secret })
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn urls_and_a_secret_make_webhooks() {
        let s = Settings::from_vars(&[
            (
                "WEBHOOK_URLS",
                "http://127.0.0.1:9000/hooks, https://hooks.example.com/authauth",
            ),
            ("WEBHOOK_SECRET", SECRET),
        ])
        .unwrap();
        let w = s.webhooks.unwrap();
        assert_eq!(w.urls.len(), 2);
        assert!(!format!("{w:?}").contains("C2FV"), "the secret is never printed");
    }

    #[test]
    fn a_malformed_or_missing_secret_and_bad_urls_are_reported() {
        let err = Settings::from_vars(&[("WEBHOOK_URLS", "http://127.0.0.1:9000/")]).unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_SECRET"), "{err}");
        for secret in ["not-a-secret", "whsec_!!!", "whsec_c2hvcnQ="] {
            let err = Settings::from_vars(&[
                ("WEBHOOK_URLS", "http://127.0.0.1:9000/"),
                ("WEBHOOK_SECRET", secret),
            ])
            .unwrap_err();
            assert!(err.to_string().contains("WEBHOOK_SECRET"), "{secret}: {err}");
        }
        let err = Settings::from_vars(&[("WEBHOOK_SECRET", SECRET)]).unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_URLS"), "{err}");
        let err =
            Settings::from_vars(&[("WEBHOOK_URLS", "ftp://x/"), ("WEBHOOK_SECRET", SECRET)]).unwrap_err();
        assert!(err.to_string().contains("scheme"), "{err}");
        let err = Settings::from_vars(&[
            ("WEBHOOK_URLS", "https://u:p@x.example/"),
            ("WEBHOOK_SECRET", SECRET),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("credentials"), "{err}");
        // Longer than the outbox keeps: every delivery to it would be refused by the database.
        let long = format!("https://x.example/{}", "a".repeat(2048));
        let err =
            Settings::from_vars(&[("WEBHOOK_URLS", long.as_str()), ("WEBHOOK_SECRET", SECRET)]).unwrap_err();
        assert!(err.to_string().contains("2048"), "{err}");
    }

    #[test]
    fn production_refuses_plain_http_except_to_loopback() {
        let session_secret = "s".repeat(64);
        let prod = |url: &str| {
            Settings::from_vars(&[
                ("APP_ENV", "production"),
                ("PUBLIC_URL", "https://auth.example.com"),
                ("SESSION_SECRET", session_secret.as_str()),
                ("DATABASE_URL", "postgres://u:p@db/authauth"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("WEBHOOK_URLS", url),
                ("WEBHOOK_SECRET", SECRET),
            ])
        };
        let err = prod("http://hooks.example.com/").unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
        assert!(prod("http://127.0.0.1:9000/").is_ok());
        assert!(prod("https://hooks.example.com/").is_ok());
    }
}
