//! Sign-in with Google, or any OpenID provider with discovery.

use std::{fmt, net::IpAddr, time::Duration};

use secrecy::SecretString;
use url::Url;

use super::{
    defaults,
    parser::{Parser, Vars},
    urls::is_loopback,
};

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

pub(super) fn parse<V: Vars + ?Sized>(
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
        Some(raw) => p
            .url("GOOGLE_CALLBACK_URL", &raw, &["http", "https"])
            .and_then(|url| {
                if production && url.scheme() == "http" && !is_loopback(&url) {
                    p.problem(
                    "GOOGLE_CALLBACK_URL",
                    "is plain http in production: the provider's code would come back in clear; use https",
                );
                    return None;
                }
                if url.as_str() != raw {
                    // What the provider compares with the registered redirect URI, exactly.
                    p.warnings.push(format!(
                        "GOOGLE_CALLBACK_URL is sent to the provider as `{url}`, its normal form: \
                     register exactly that as the redirect URI"
                    ));
                }
                Some(url)
            }),
        None => match public_url {
            Some(base) => base.join("/auth/google/callback").ok(),
            None if production => {
                p.problem(
                    "GOOGLE_CALLBACK_URL",
                    "required in production (or set PUBLIC_URL)",
                );
                None
            }
            None => Url::parse(&format!(
                "{}/auth/google/callback",
                super::urls::local_origin(host, port)
            ))
            .ok(),
        },
    };
    let issuer_raw = issuer.unwrap_or_else(|| defaults::GOOGLE_ISSUER_URL.to_string());
    // The issuer is compared character for character with the provider's `iss`: keep the
    // configured string exactly (some providers' issuers end with `/`, Google's does not).
    let issuer = issuer_raw.clone();
    let issuer_ok = match p.url("GOOGLE_ISSUER_URL", &issuer, &["https", "http"]) {
        Some(url) if production && url.scheme() == "http" && !is_loopback(&url) => {
            p.problem(
                "GOOGLE_ISSUER_URL",
                "is plain http in production: its discovery document and signing keys — what every \
                 ID token is checked against — and the client secret would travel in clear; use \
                 https (plain http is accepted for a loopback provider only)",
            );
            false
        }
        Some(_) => true,
        None => false,
    };
    let http_timeout = p.duration("GOOGLE_HTTP_TIMEOUT", defaults::GOOGLE_HTTP_TIMEOUT);
    Some(GoogleSettings {
        client_id: client_id?,
        client_secret: SecretString::from(client_secret?),
        callback_url: callback_url?,
        issuer: issuer_ok.then_some(issuer)?,
        http_timeout,
    })
}
