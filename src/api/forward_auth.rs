//! Forward authentication: `GET /auth/verify` answers a reverse proxy's sub-request (nginx
//! `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`) for every request to an
//! application behind it, so any application, in any language, gets the signed-in user as
//! request headers without calling authauth itself (docs/forward-auth.md).
//!
//! - A valid session → 200, empty body, the identity in `X-Auth-*` headers that the proxy copies
//!   onto the request it forwards. A rotation (or nothing) is in `Set-Cookie`, which the proxy
//!   must pass on to the browser — the examples show how.
//! - No valid session → 401 with the usual JSON error. When the original request is a page
//!   navigation, the browser should be sent to sign in: Caddy and Traefik pass any non-2xx
//!   answer to the browser, so they get a 302 to `SIGN_IN_PATH?returnTo=…` right away; nginx's
//!   `auth_request` only understands 2xx/401/403, so it gets the 401 with that `Location`, which
//!   its `error_page 401` turns into the redirect.
//!
//! The original URL comes from headers the proxy sets — `X-Forwarded-Method`/`-Uri` (Caddy,
//! Traefik) or `X-Original-URL` (nginx) — and is read only when `TRUST_X_FORWARDED_FOR` says a
//! proxy writes them. Either way `returnTo` is a path on this site, allow-listed by the same rule
//! as after Google sign-in ([`safe_return_to`]): there is no open redirect.

use std::sync::Arc;

use bytes::Bytes;
use poem::{
    http::{header, header::InvalidHeaderValue, HeaderName, HeaderValue, Method, StatusCode},
    web::Data,
    IntoResponse, Request, Response,
};
use poem_openapi::{
    registry::{MetaResponses, Registry},
    ApiResponse, OpenApi, Tags,
};

use super::{
    documented::Documented,
    header_names::{SEC_FETCH_MODE, X_FORWARDED_METHOD, X_FORWARDED_URI, X_ORIGINAL_METHOD, X_ORIGINAL_URL},
    session_auth::SessionCheck,
};
use crate::{
    auth::oidc::safe_return_to,
    config::Settings,
    error::{reach, ApiError, ErrorKind, ErrorSet, Failure},
    session::{record::SessionRecord, Validated},
    state::AppState,
};

#[derive(Tags)]
enum Tag {
    /// Put any application behind a reverse proxy that asks authauth about every request
    /// (nginx `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`).
    ForwardAuth,
}

/// The user's id (a UUID).
pub const USER_ID_HEADER: HeaderName = HeaderName::from_static("x-auth-user-id");
/// The user's e-mail address, [`header_value`]-encoded.
pub const EMAIL_HEADER: HeaderName = HeaderName::from_static("x-auth-email");
/// The user's name, [`header_value`]-encoded.
pub const NAME_HEADER: HeaderName = HeaderName::from_static("x-auth-name");
/// The session's public id (never its token).
pub const SESSION_ID_HEADER: HeaderName = HeaderName::from_static("x-auth-session-id");
/// The session's authenticator assurance level (`1` or `2`).
pub const AAL_HEADER: HeaderName = HeaderName::from_static("x-auth-aal");
/// The methods its sign-in used, space-separated.
pub const AMR_HEADER: HeaderName = HeaderName::from_static("x-auth-amr");

/// The identity headers of an allowed request, in the order [`VerifyResponse::Allowed`]
/// documents them.
const IDENTITY: [HeaderName; 6] = [
    USER_ID_HEADER,
    EMAIL_HEADER,
    NAME_HEADER,
    SESSION_ID_HEADER,
    AAL_HEADER,
    AMR_HEADER,
];

/// The identity headers' values for `record`, in [`IDENTITY`]'s order: written once per state
/// of a session ([`crate::session::derived`]) and shared by the requests it answers.
pub fn identity(record: &SessionRecord) -> Result<Arc<[HeaderValue; 6]>, InvalidHeaderValue> {
    let value = |text: String| HeaderValue::from_maybe_shared(Bytes::from(text));
    Ok(Arc::new([
        value(record.user_id.to_string())?,
        value(header_value(&record.user.email))?,
        value(header_value(&record.user.full_name))?,
        value(record.public_id.clone())?,
        value(record.aal().to_string())?,
        value(amr_value(record))?,
    ]))
}

/// `X-Auth-AMR`: the methods, space-separated.
fn amr_value(record: &SessionRecord) -> String {
    record
        .amr()
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The characters of an identity header value that are percent-encoded, besides every byte
/// outside ASCII: controls (CR and LF above all: a header must not end early or start another)
/// and `%` itself, so that decoding is exact.
const HEADER_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// What a `returnTo` query value encodes: everything but unreserved characters and `/`.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// A value safe in an HTTP header whatever it holds, and exactly recoverable: its UTF-8, with
/// every byte outside printable ASCII, every control character and `%` percent-encoded (and a
/// space at either end, which parsers trim). `Ada Lovelace` stays `Ada Lovelace`; `Zoë` is
/// `Zo%C3%AB`. Any percent-decoder gives the value back (`decodeURIComponent`,
/// `urllib.parse.unquote`, `rawurldecode`, `url.PathUnescape`); a value without `%` is itself.
pub fn header_value(value: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(value, HEADER_UNSAFE).to_string();
    let mut out = encoded;
    if out.starts_with(' ') {
        out.replace_range(..1, "%20");
    }
    if out.ends_with(' ') {
        let end = out.len() - 1;
        out.replace_range(end.., "%20");
    }
    out
}

/// `GET /auth/verify`'s answers, as the spec documents them. An allowed request is answered
/// by [`Verdict::Allowed`] instead: the same status and headers, written from values prepared
/// once per session state ([`identity`]) (the derived code would parse each header's name and
/// percent-encode each value on every request).
#[derive(ApiResponse)]
enum VerifyResponse {
    /// A valid session: let the request through. Empty body; the identity is in the headers,
    /// for the proxy to set on the request it forwards (and to strip from what the client
    /// sent). E-mail and name are UTF-8, percent-encoded where they hold anything but
    /// printable ASCII (or `%`): decode them once. When this check rotated the session,
    /// `Set-Cookie` carries the new cookie: the proxy must pass it on to the browser (nginx
    /// `add_header Set-Cookie`, Caddy `header`, Traefik `addAuthCookiesToResponse`). A
    /// sliding refresh needs nothing from the browser: it moves the idle expiry in the store.
    // Written by `Verdict::Allowed`; a unit test checks that both write the same answer.
    #[cfg_attr(not(test), allow(dead_code))]
    #[oai(status = 200)]
    Allowed(
        /// The user's id (UUID).
        #[oai(header = "X-Auth-User-Id")]
        String,
        /// The user's e-mail address, percent-encoded UTF-8.
        #[oai(header = "X-Auth-Email")]
        String,
        /// The user's name, percent-encoded UTF-8 (`Ada Lovelace`, `Zo%C3%AB`).
        #[oai(header = "X-Auth-Name")]
        String,
        /// The session's public id, as `GET /auth/sessions` lists it (not a credential).
        #[oai(header = "X-Auth-Session-Id")]
        String,
        /// The session's authenticator assurance level: `2` when its sign-in included a
        /// second factor (authenticator app, recovery code, passkey), else `1`. An application
        /// that needs a second factor checks it.
        #[oai(header = "X-Auth-AAL")]
        String,
        /// The methods its sign-in used, space-separated (`pwd otp`, `google`).
        #[oai(header = "X-Auth-AMR")]
        String,
        /// The session's new cookie, when this check rotated it: pass it on to the browser.
        #[oai(header = "Set-Cookie")]
        Option<String>,
    ),
    /// No valid session, and the original request is a page navigation (`GET`/`HEAD` that
    /// accepts `text/html`) through a proxy that hands this answer to the browser (Caddy,
    /// Traefik): sign in, then come back. `returnTo` is the original path and query when a
    /// trusted proxy named them (`TRUST_X_FORWARDED_FOR`), restricted to this site. A dead
    /// session cookie is deleted (`Set-Cookie`, `Max-Age=0`).
    #[oai(status = 302)]
    SignIn(
        /// `SIGN_IN_PATH?returnTo=<the original path, percent-encoded>`.
        #[oai(header = "Location")]
        String,
    ),
}

/// What `GET /auth/verify` answers: [`VerifyResponse`]'s documentation, an allowed request's
/// headers written from its session's [`identity`].
enum Verdict {
    /// 200, empty body, the identity headers (the guard adds a rotation's `Set-Cookie`).
    Allowed(Arc<[HeaderValue; 6]>),
    /// Any other answer, written as the spec says.
    Documented(VerifyResponse),
}

impl IntoResponse for Verdict {
    fn into_response(self) -> Response {
        match self {
            Verdict::Allowed(identity) => {
                // 200 with an empty body, as the derived code writes `Allowed`.
                let mut resp = Response::builder().status(StatusCode::OK).finish();
                let headers = resp.headers_mut();
                for (name, value) in IDENTITY.into_iter().zip(identity.iter()) {
                    headers.insert(name, value.clone());
                }
                resp
            }
            Verdict::Documented(answer) => answer.into_response(),
        }
    }
}

impl ApiResponse for Verdict {
    const BAD_REQUEST_HANDLER: bool = VerifyResponse::BAD_REQUEST_HANDLER;

    fn meta() -> MetaResponses {
        VerifyResponse::meta()
    }

    fn register(registry: &mut Registry) {
        VerifyResponse::register(registry);
    }
}

/// `GET /auth/verify`'s errors: those of any operation that reads the session, its parameters,
/// and the `Location` its 401 may carry for nginx.
pub struct VerifyErrors;

impl ErrorSet for VerifyErrors {
    const KINDS: &'static [&'static [ErrorKind]] = &[reach::API, reach::PARAMS, reach::SESSION];
    const HEADERS: &'static [(u16, &'static str, &'static str)] = &[(
        401,
        "Location",
        "Where to sign in (`SIGN_IN_PATH?returnTo=…`), when the original request is a page \
         navigation named by `X-Original-URL` (nginx, whose `auth_request` cannot pass a redirect \
         on: its `error_page 401` turns this into one).",
    )];
}

/// The original request, as a proxy describes it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Original {
    /// Its method, when a trusted proxy named it.
    method: Option<String>,
    /// Its path and query, when a trusted proxy named them.
    path: Option<String>,
    /// It came through nginx (`X-Original-URL`), which cannot pass a redirect on.
    via_nginx: bool,
}

/// A header that may appear at most once: `None` when absent, repeated or not text.
fn single<'a>(req: &'a Request, name: &HeaderName) -> Option<&'a str> {
    let mut values = req.headers().get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok().map(str::trim)
}

/// The path and query of `X-Original-URL` (an absolute URL, or already a path).
fn path_of_url(raw: &str) -> Option<String> {
    if raw.starts_with('/') {
        return Some(raw.to_string());
    }
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    })
}

fn original(req: &Request, settings: &Settings) -> Original {
    let original_url = single(req, &X_ORIGINAL_URL);
    let via_nginx = req.headers().contains_key(X_ORIGINAL_URL);
    if !settings.trust_forwarded_for {
        warn_if_forwarded_without_trust(req);
        return Original {
            via_nginx,
            ..Original::default()
        };
    }
    let path = match original_url {
        Some(url) => path_of_url(url),
        None => single(req, &X_FORWARDED_URI).map(str::to_string),
    };
    let method = single(req, &X_FORWARDED_METHOD)
        .or_else(|| single(req, &X_ORIGINAL_METHOD))
        .map(str::to_ascii_uppercase);
    Original {
        method,
        path,
        via_nginx,
    }
}

/// Says once per process that a proxy names the original URL while `TRUST_X_FORWARDED_FOR` is
/// off: browsers are then sent to sign in without a way back.
fn warn_if_forwarded_without_trust(req: &Request) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let h = req.headers();
    if (h.contains_key(X_FORWARDED_URI) || h.contains_key(X_ORIGINAL_URL))
        && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(
            "forward-auth requests name the original URL (X-Forwarded-Uri / X-Original-URL), but \
             TRUST_X_FORWARDED_FOR is off, so they are ignored and browsers that sign in come back \
             to `/`; set TRUST_X_FORWARDED_FOR=true when authauth is only reachable through the proxy"
        );
    }
}

/// True for a page navigation: a `GET`/`HEAD` that a browser will render. `Sec-Fetch-Mode`
/// decides when the browser sent it (a `fetch()` never navigates), else `Accept`.
fn wants_html(req: &Request, original: &Original) -> bool {
    let method = original
        .method
        .as_deref()
        .unwrap_or_else(|| req.method().as_str());
    if method != Method::GET.as_str() && method != Method::HEAD.as_str() {
        return false;
    }
    if let Some(mode) = single(req, &SEC_FETCH_MODE) {
        return mode.eq_ignore_ascii_case("navigate");
    }
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.to_ascii_lowercase().contains("text/html"))
}

/// Where to sign in: `SIGN_IN_PATH`, with `returnTo` when the original path is known.
fn sign_in_location(settings: &Settings, original: &Original) -> String {
    match &original.path {
        Some(path) => {
            let back = safe_return_to(Some(path));
            format!(
                "{}?returnTo={}",
                settings.sign_in_path,
                percent_encoding::utf8_percent_encode(&back, QUERY_VALUE)
            )
        }
        None => settings.sign_in_path.clone(),
    }
}

pub struct ForwardAuthApi;

#[OpenApi(tag = "Tag::ForwardAuth")]
impl ForwardAuthApi {
    /// Forward auth: may the request a reverse proxy is holding go through?
    ///
    /// For nginx `auth_request`, Caddy `forward_auth` and Traefik `ForwardAuth`
    /// (docs/forward-auth.md has each configuration). Costs what `GET /auth/me` costs: one
    /// session-store read. May rotate the session like any request (unless `X-Auth-Passive`
    /// is sent); the proxy passes the new `Set-Cookie` on to the browser.
    ///
    /// The `X-Forwarded-*` and `X-Original-URL` headers are read only with
    /// `TRUST_X_FORWARDED_FOR=true`; then `X-Original-URL` wins over `X-Forwarded-Uri`.
    #[oai(path = "/auth/verify", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn verify(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: SessionCheck,
        // The parameters document what the proxy sends; they are read from the request itself,
        // where a header sent twice counts as absent.
        /// The original request's method (Caddy, Traefik; nginx with the example
        /// configuration). A redirect to sign in only answers `GET` and `HEAD`.
        #[oai(name = "X-Forwarded-Method")]
        _forwarded_method: Documented<Option<String>>,
        /// The original request's scheme (informational).
        #[oai(name = "X-Forwarded-Proto")]
        _forwarded_proto: Documented<Option<String>>,
        /// The original request's host (informational: `returnTo` is always a path on this
        /// site).
        #[oai(name = "X-Forwarded-Host")]
        _forwarded_host: Documented<Option<String>>,
        /// The original request's path and query (Caddy, Traefik): where to come back after
        /// signing in.
        #[oai(name = "X-Forwarded-Uri")]
        _forwarded_uri: Documented<Option<String>>,
        /// The original request's URL (nginx: `$scheme://$http_host$request_uri`). Its presence
        /// also says the proxy is nginx: a refusal is then always a 401.
        #[oai(name = "X-Original-URL")]
        _original_url: Documented<Option<String>>,
        /// Sent by a backend that checks a browser's session on its behalf: never rotate (the
        /// new cookie would not reach the browser); the answer sets no cookie.
        #[oai(name = "X-Auth-Passive")]
        _passive: Documented<Option<String>>,
    ) -> Result<Verdict, Failure<VerifyErrors>> {
        let refusal = match session.0 {
            Ok(Validated { record, key, .. }) => {
                // Written once per state of the session, like `/auth/me`'s body.
                let identity = state
                    .identities
                    .get_or_try(&key.hash, &record, |r| identity(r))
                    .map_err(ApiError::internal)?;
                return Ok(Verdict::Allowed(identity));
            }
            Err(e) => e,
        };
        // Only "not signed in" sends a browser to sign in: a store outage (503) is not fixed
        // by signing in again.
        let original = original(req, &state.settings);
        if refusal.status() != StatusCode::UNAUTHORIZED || !wants_html(req, &original) {
            return Err(Failure::new(refusal));
        }
        let location = sign_in_location(&state.settings, &original);
        if original.via_nginx {
            let mut failure = Failure::new(refusal);
            // Always printable ASCII: a checked path and a percent-encoded query.
            if let Ok(value) = HeaderValue::from_str(&location) {
                failure = failure.with_header(header::LOCATION, value);
            }
            return Err(failure);
        }
        Ok(Verdict::Documented(VerifyResponse::SignIn(location)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::session::record::{Amr, SignInMethod, UserSnapshot};

    fn record(full_name: &str, amr: Vec<Amr>) -> SessionRecord {
        SessionRecord {
            public_id: "sAAAAAAAAbbbbbbbbbbbbbbbb".into(),
            user_id: uuid::Uuid::from_u128(0x0193_a5f0_7c1e_7d6a_9b1f_3c2d_4e5f_6a7b),
            user: UserSnapshot {
                email: "zoë@bücher.example".into(),
                full_name: full_name.into(),
                picture: None,
                email_verified: true,
            },
            method: SignInMethod::Password,
            created_at: 0,
            last_seen_at: 0,
            idle_expires_at: 1,
            absolute_expires_at: 1,
            token_issued_at: 0,
            ip: None,
            user_agent: None,
            previous: None,
            stage: Default::default(),
            amr,
            authenticated_at: None,
        }
    }

    /// The answer written from the prepared values is the one poem-openapi's derived code
    /// writes for the documented `Allowed`: status, every header, empty body.
    #[tokio::test]
    async fn an_allowed_request_is_answered_as_the_spec_documents_it() {
        for (r, aal, amr) in [
            // Recorded before sessions kept their methods: the sign-in method alone.
            (record("Ada Lovelace", Vec::new()), "1", "pwd"),
            (
                record(" Zoë \r\n100%", vec![Amr::Password, Amr::Totp]),
                "2",
                "pwd otp",
            ),
            (record("", vec![Amr::Google, Amr::Passkey]), "2", "google hwk"),
        ] {
            let documented = VerifyResponse::Allowed(
                "0193a5f0-7c1e-7d6a-9b1f-3c2d4e5f6a7b".into(),
                "zo%C3%AB@b%C3%BCcher.example".into(),
                header_value(&r.user.full_name),
                "sAAAAAAAAbbbbbbbbbbbbbbbb".into(),
                aal.into(),
                amr.into(),
                None,
            )
            .into_response();
            let written = Verdict::Allowed(identity(&r).unwrap()).into_response();
            assert_eq!(written.status(), documented.status());
            assert_eq!(written.headers(), documented.headers(), "{:?}", r.user.full_name);
            assert_eq!(written.headers().len(), 6);
            assert!(written.into_body().into_vec().await.unwrap().is_empty());
            assert!(documented.into_body().into_vec().await.unwrap().is_empty());
        }
    }

    #[test]
    fn identity_header_values_are_safe_and_exactly_recoverable() {
        for (value, encoded) in [
            ("Ada Lovelace", "Ada Lovelace"),
            ("Zoë", "Zo%C3%AB"),
            ("李小龙", "%E6%9D%8E%E5%B0%8F%E9%BE%99"),
            ("100% real", "100%25 real"),
            ("a\r\nX-Auth-User-Id: 0", "a%0D%0AX-Auth-User-Id: 0"),
            ("tab\there\u{7f}", "tab%09here%7F"),
            (" padded ", "%20padded%20"),
            ("élodie@bücher.example", "%C3%A9lodie@b%C3%BCcher.example"),
        ] {
            let got = header_value(value);
            assert_eq!(got, encoded, "{value:?}");
            assert!(HeaderValue::from_str(&got).is_ok(), "{got:?}");
            assert!(got.bytes().all(|b| (0x20..0x7f).contains(&b)), "{got:?}");
            let back = percent_encoding::percent_decode_str(&got).decode_utf8().unwrap();
            assert_eq!(back, value);
        }
    }
}
