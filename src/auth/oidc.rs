//! Sign-in with an OpenID Connect provider (Google by default; any provider with discovery).
//!
//! authauth is a confidential client using the authorization code flow with PKCE (S256), a
//! fresh `state` and `nonce` per attempt, and exact redirect URI. What `openidconnect` checks:
//! the ID token's signature (RS256 only), `iss`, `aud`, `exp`, `iat`, `sub`, `nonce`. What it
//! does not, and this module does: `state` (single use, bound to the browser by a cookie),
//! the RFC 9207 `iss` response parameter, a JWKS refetch on an unknown `kid`, and the userinfo
//! `sub`. The back-channel client follows no redirects and has timeouts; provider metadata is
//! fetched lazily and re-fetched on failure, so the provider being down never affects startup
//! or password sign-in.

use std::{sync::Arc, time::Duration};

use openidconnect::{
    core::{
        CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreJwsSigningAlgorithm, CoreProviderMetadata,
        CoreUserInfoClaims,
    },
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, TokenResponse, UserInfoError,
};
use percent_encoding::percent_decode_str;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::{Mutex, RwLock};

use super::flows::FlowStore;
use crate::{
    clock::Clock,
    config::GoogleSettings,
    metrics::Metrics,
    session::{
        record::Millis,
        store::StoreError,
        token::{random_b64, SessionToken},
    },
};

/// How long a started sign-in may take at the provider.
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);
/// Provider metadata and keys are re-fetched at least this often.
const METADATA_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// An unknown `kid` triggers at most one key refetch per this interval.
const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// A sign-in start re-fetches metadata older than this (at most one fetch per interval, however
/// many starts: anonymous traffic cannot turn authauth into an amplifier towards the provider).
const START_REFRESH: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider did not answer properly: {0}")]
    ProviderUnavailable(String),
    #[error("this sign-in is not valid in this browser: {0}; start again")]
    StateInvalid(&'static str),
    #[error("the authorization response names another issuer (RFC 9207 `iss`)")]
    IssuerMismatch,
    #[error("the identity provider refused the sign-in ({error}){}", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    ProviderError {
        error: String,
        description: Option<String>,
    },
    #[error("the identity provider's answer failed verification: {0}")]
    TokenRejected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A pending sign-in, kept server-side; the browser holds only an opaque id.
#[derive(Serialize, Deserialize)]
struct PendingFlow {
    state: String,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
}

/// What a provider vouched for, after every check.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
}

/// The start of a sign-in: where to send the browser, and the flow cookie value.
pub struct Started {
    pub authorization_url: String,
    pub flow_id: String,
}

/// The callback's query parameters.
#[derive(Debug, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

struct Cached {
    metadata: CoreProviderMetadata,
    fetched: Millis,
}

/// One configured OpenID provider.
pub struct OidcProvider {
    /// Short name used in routes and logs (`google`).
    pub name: &'static str,
    settings: GoogleSettings,
    http: reqwest::Client,
    cache: RwLock<Option<Cached>>,
    /// Held by the one fetch of the metadata in flight; with it, when the last fetch failed.
    fetching: Mutex<Option<Millis>>,
    last_refetch: Mutex<Option<Millis>>,
    clock: Clock,
    metrics: Metrics,
}

fn ms(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// Only same-origin relative paths: anything else (absolute URLs, `//host`, backslashes,
/// encoded variants, control characters) becomes `/`.
pub fn safe_return_to(raw: Option<&str>) -> String {
    let Some(raw) = raw else { return "/".into() };
    let same_origin_path = |p: &str| p.starts_with('/') && !p.starts_with("//") && !p.contains('\\');
    // What the browser gets, verbatim: printable ASCII only.
    let literal = raw.len() <= 2048 && raw.bytes().all(|b| b.is_ascii_graphic()) && same_origin_path(raw);
    // What a proxy or framework decoding it once or twice would see: still a same-origin path,
    // and no control characters (CR/LF); an encoded space or letter is fine.
    let decoded_ok = |p: &str| same_origin_path(p) && !p.chars().any(char::is_control);
    let decoded = percent_decode_str(raw).decode_utf8_lossy();
    let twice = percent_decode_str(&decoded).decode_utf8_lossy();
    if literal && decoded_ok(&decoded) && decoded_ok(&twice) {
        raw.to_string()
    } else {
        "/".into()
    }
}

fn flow_key(flow_id: &str) -> String {
    // The flow id is a bearer secret like a session token: store only its hash.
    SessionToken::from_raw(flow_id).hash().to_b64()
}

impl OidcProvider {
    pub fn new(
        name: &'static str,
        settings: GoogleSettings,
        clock: Clock,
        metrics: Metrics,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            // SSRF and mix-up defence: the back channel never follows redirects.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.http_timeout.min(Duration::from_secs(3)))
            .timeout(settings.http_timeout)
            .build()?;
        Ok(OidcProvider {
            name,
            settings,
            http,
            cache: RwLock::new(None),
            fetching: Mutex::new(None),
            last_refetch: Mutex::new(None),
            clock,
            metrics,
        })
    }

    /// Provider metadata with its keys: cached, fetched when missing or stale, or when `force`.
    async fn metadata(&self, force: bool) -> Result<CoreProviderMetadata, OidcError> {
        self.metadata_younger_than(if force { Duration::ZERO } else { METADATA_MAX_AGE })
            .await
    }

    /// The cached metadata when younger than `max_age`; else one fetch for all the callers that
    /// want it at once (they wait for it and share its result), and none at all for
    /// [`START_REFRESH`] after a fetch failed — those callers are refused at once, as it was: a
    /// slow or absent provider is not asked again by every anonymous start that arrives.
    async fn metadata_younger_than(&self, max_age: Duration) -> Result<CoreProviderMetadata, OidcError> {
        let fresh = |cache: &Option<Cached>| {
            cache
                .as_ref()
                .filter(|c| self.clock.now() - c.fetched < ms(max_age))
                .map(|c| c.metadata.clone())
        };
        if let Some(metadata) = fresh(&*self.cache.read().await) {
            return Ok(metadata);
        }
        let mut failed_at = self.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(metadata) = fresh(&*self.cache.read().await) {
            return Ok(metadata);
        }
        // A forced fetch (an unknown signing key) has its own limit (`may_refetch`), and must
        // reach a provider that just came back with new keys.
        let forced = max_age.is_zero();
        if !forced && failed_at.is_some_and(|t| self.clock.now() - t < ms(START_REFRESH)) {
            // The provider did not answer moments ago: fail fast, as that fetch did, rather
            // than send the browser to it (o13).
            return Err(OidcError::ProviderUnavailable(
                "discovery failed moments ago; try again shortly".into(),
            ));
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| OidcError::ProviderUnavailable(format!("bad issuer URL: {e}")))?;
        let discovered = CoreProviderMetadata::discover_async(issuer, &self.http).await;
        self.metrics.oidc_metadata_fetch(self.name, discovered.is_ok());
        *failed_at = discovered.is_err().then(|| self.clock.now());
        let metadata =
            discovered.map_err(|e| OidcError::ProviderUnavailable(format!("discovery failed: {e}")))?;
        tracing::info!(
            provider = self.name,
            keys = metadata.jwks().keys().len(),
            "provider metadata fetched"
        );
        *self.cache.write().await = Some(Cached {
            metadata: metadata.clone(),
            fetched: self.clock.now(),
        });
        Ok(metadata)
    }

    /// Whether an unknown `kid` may trigger a refetch now (at most once per interval).
    async fn may_refetch(&self) -> bool {
        let mut last = self.last_refetch.lock().await;
        let now = self.clock.now();
        if last.is_some_and(|t| now - t < ms(REFETCH_MIN_INTERVAL)) {
            return false;
        }
        *last = Some(now);
        true
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect = RedirectUrl::new(self.settings.callback_url.to_string())
            .map_err(|e| OidcError::ProviderUnavailable(format!("bad callback URL: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(
                self.settings.client_secret.expose_secret().to_string(),
            )),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: a fresh state, nonce and PKCE verifier, kept server-side under a new
    /// flow id (the browser gets only the id, in a cookie).
    ///
    /// The provider's metadata and keys are re-fetched here when older than a few seconds (two
    /// small requests): a provider that is down is reported with a 502 instead of sending the
    /// browser to a dead page, and key rotations are picked up before the callback needs them.
    pub async fn start(
        &self,
        store: &dyn FlowStore,
        return_to: &str,
        now: Millis,
    ) -> Result<Started, OidcError> {
        let metadata = self.metadata_younger_than(START_REFRESH).await?;
        let client = self.client(metadata)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let flow = PendingFlow {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to: return_to.to_string(),
        };
        let flow_id = random_b64(32);
        let value =
            serde_json::to_string(&flow).map_err(|e| OidcError::ProviderUnavailable(e.to_string()))?;
        let ttl = Millis::try_from(FLOW_TTL.as_millis()).unwrap_or(600_000);
        store.put(&flow_key(&flow_id), &value, ttl, now).await?;
        Ok(Started {
            authorization_url: url.to_string(),
            flow_id,
        })
    }

    /// Finishes a sign-in. Returns the verified identity and where to send the browser.
    pub async fn finish(
        &self,
        store: &dyn FlowStore,
        flow_id: Option<&str>,
        cb: Callback,
        now: Millis,
    ) -> Result<(VerifiedIdentity, String), OidcError> {
        let flow_id = flow_id.ok_or(OidcError::StateInvalid("no sign-in was started in this browser"))?;
        // Single use: taken out before anything else, so a replay finds nothing.
        let raw = store
            .take(&flow_key(flow_id), now)
            .await?
            .ok_or(OidcError::StateInvalid(
                "the sign-in is unknown, expired or already used",
            ))?;
        let flow: PendingFlow = serde_json::from_str(&raw)
            .map_err(|_| OidcError::StateInvalid("the sign-in record is unreadable"))?;
        let state = cb
            .state
            .as_deref()
            .ok_or(OidcError::StateInvalid("the response has no state"))?;
        if !bool::from(state.as_bytes().ct_eq(flow.state.as_bytes())) {
            return Err(OidcError::StateInvalid("the state does not match"));
        }
        // RFC 9207: when the provider names itself, it must be the one we asked.
        if let Some(iss) = &cb.iss {
            if iss != &self.settings.issuer {
                return Err(OidcError::IssuerMismatch);
            }
        }
        if let Some(error) = cb.error {
            return Err(OidcError::ProviderError {
                error,
                description: cb.error_description,
            });
        }
        let code = cb
            .code
            .ok_or(OidcError::StateInvalid("the response has no code"))?;

        let metadata = self.metadata(false).await?;
        let client = self.client(metadata)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::ProviderUnavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => {
                    OidcError::TokenRejected(format!("the token endpoint refused the code: {}", r.error()))
                }
                RequestTokenError::Parse(e, _) => {
                    OidcError::TokenRejected(format!("unreadable token response: {e}"))
                }
                other => OidcError::ProviderUnavailable(format!("token request failed: {other}")),
            })?;
        let id_token = token
            .id_token()
            .ok_or_else(|| OidcError::TokenRejected("the token response has no ID token".into()))?;
        let nonce = Nonce::new(flow.nonce);

        // Verify; on an unknown key, refetch the provider's keys once and try again.
        let mut refetched = false;
        let (claims, client) = loop {
            let metadata = self.metadata(refetched).await?;
            let client = self.client(metadata)?;
            let verifier = client
                .id_token_verifier()
                .set_allowed_algs(vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
            let verified = id_token.claims(&verifier, &nonce).cloned();
            drop(verifier);
            match verified {
                Ok(claims) => break (claims, client),
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) if !refetched && self.may_refetch().await => {
                    tracing::info!(
                        provider = self.name,
                        "unknown signing key; refetching the provider's keys"
                    );
                    refetched = true;
                }
                Err(e) => return Err(OidcError::TokenRejected(format!("ID token: {e}"))),
            }
        };
        let mut identity = identity_from(&self.settings.issuer, &claims);

        // Userinfo, when offered, must describe the same subject (OIDC Core §5.3.4).
        if client.user_info_url().is_some() {
            let request = client
                .user_info(token.access_token().clone(), Some(claims.subject().clone()))
                .map_err(|e| OidcError::ProviderUnavailable(e.to_string()))?;
            let info: CoreUserInfoClaims = request.request_async(&self.http).await.map_err(|e| match e {
                UserInfoError::ClaimsVerification(e) => OidcError::TokenRejected(format!("userinfo: {e}")),
                other => OidcError::ProviderUnavailable(format!("userinfo request failed: {other}")),
            })?;
            if identity.email.is_none() {
                identity.email = info.email().map(|e| e.as_str().to_string());
                identity.email_verified = info.email_verified().unwrap_or(false);
            }
            identity.name = identity
                .name
                .or_else(|| info.name().and_then(|n| n.get(None)).map(|n| n.to_string()));
            identity.picture = identity.picture.or_else(|| {
                info.picture()
                    .and_then(|p| p.get(None))
                    .map(|p| p.as_str().to_string())
            });
        }
        Ok((identity, flow.return_to))
    }
}

fn identity_from(issuer: &str, claims: &CoreIdTokenClaims) -> VerifiedIdentity {
    VerifiedIdentity {
        issuer: issuer.to_string(),
        subject: claims.subject().as_str().to_string(),
        email: claims.email().map(|e| e.as_str().to_string()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
        picture: claims
            .picture()
            .and_then(|p| p.get(None))
            .map(|p| p.as_str().to_string()),
    }
}

/// The configured providers (Google today), shared by the routes.
pub type Providers = Option<Arc<OidcProvider>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_accepts_only_same_origin_paths() {
        // An encoded space is fine wherever it is in the query (it was only accepted after the
        // first `&` while the decoder stopped there).
        for ok in ["/", "/dashboard", "/a/b?c=d&e=%20f", "/a/b?e=%20f", "/path#frag"] {
            assert_eq!(safe_return_to(Some(ok)), ok);
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "https:evil.example",
            "/%2F%2Fevil.example",
            "/%252F%252Fevil.example",
            "/%5Cevil.example",
            "http://127.0.0.1:3000@evil.example",
            "javascript:alert(1)",
            "%0d%0aLocation:%20http://evil",
            "/ok%0d%0aLocation:%20http://evil",
            "/with space",
            // Past the first `&` too: the decoded form is checked whole.
            "/a?b=c&d=%5C",
            "/a?b=c&d=%0d%0aSet-Cookie:x",
            "",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
