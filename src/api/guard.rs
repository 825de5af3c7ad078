//! Host validation, cross-site request protection and CORS, in front of every route.
//!
//! **Host** — when allowed hosts are configured (always in production: `PUBLIC_URL`'s host and
//! `ALLOWED_HOSTS`), a request naming another host (the request target's authority, else
//! `Host`) gets 400 `host_not_allowed` before anything else. This is the DNS-rebinding defence:
//! a page on `evil.example` whose name now resolves to authauth is same-origin for the browser,
//! so only the host it names gives it away. `/health` and `/ready` are exempt: probes call them
//! by IP address, and they reveal nothing and change nothing.
//!
//! **CSRF** — a state-changing request (anything but GET/HEAD/OPTIONS) is refused with 403
//! `csrf_rejected` when the browser says it comes from another site: a `Sec-Fetch-Site` other
//! than `same-origin`/`none` (unless the `Origin` is listed in `CORS_ORIGINS`), or an `Origin`
//! that is neither this server's origin nor listed. Origins are compared whole — scheme, host and
//! port. This server's origin is `PUBLIC_URL` when set (required in production), else `http://`
//! and the host the request names (authauth itself only speaks plain HTTP). `Origin: null` and
//! a header sent twice (two `Origin`s, two `Sec-Fetch-Site`s) are always refused. Requests with
//! neither header are not from a browser (curl, servers) and pass. Login and signup are covered
//! too (login CSRF). Form and text bodies get 415 before any handler runs, so a cross-site
//! `<form>` can never reach one — except on the hosted pages' form actions
//! (`pages::takes_forms`), which take forms by design: there a post must also say where it comes
//! from (`Origin` or `Sec-Fetch-Site`, which every browser sends with a form post), so one that
//! says nothing is refused instead of trusted. SameSite=Lax is defence in depth, not the defence.
//!
//! Errors on the pages' paths are rendered as HTML (`pages::error_page`), with the status and
//! headers of the JSON answer.
//!
//! **CORS** — only origins listed in `CORS_ORIGINS` get `Access-Control-Allow-Origin` (echoed,
//! with credentials); never `*`, never `null`.
//!
//! It also applies the session cookie action decided during the request (rotation, deletion)
//! and marks every `/auth` response `Cache-Control: no-store`.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use poem::{
    error::ResponseError,
    http::{header, HeaderValue, Method, StatusCode},
    IntoResponse, Request, Response,
};

use super::{
    cookie::{clear_cookie, CookieAction, CookieSlot},
    header_names::SEC_FETCH_SITE,
};
use crate::{config::AllowedHost, error::ApiError, state::AppState};

/// The largest request body accepted (413 `payload_too_large` above it).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

fn header_str(req: &Request, name: impl header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A header that may appear at most once, as text: `Err` when it appears twice (a proxy or a
/// client playing "the first one wins") or is not visible ASCII, `Ok(None)` when absent.
fn single_header(req: &Request, name: impl header::AsHeaderName) -> Result<Option<&str>, ()> {
    let mut values = req.headers().get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    first.map(|v| v.to_str().map_err(|_| ())).transpose()
}

/// The host the request names: the authority of an absolute request target (HTTP/2
/// `:authority`, or HTTP/1.1 absolute form, which RFC 9112 says wins), else `Host`.
fn requested_authority(req: &Request) -> Option<&str> {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| header_str(req, header::HOST))
}

/// Probes call these by IP address: they are exempt from the host check.
fn is_probe(req: &Request) -> bool {
    matches!(req.uri().path(), "/health" | "/ready")
}

fn host_allowed(req: &Request, state: &AppState) -> bool {
    let Some(allowed) = &state.settings.allowed_hosts else {
        return true;
    };
    let Some(raw) = requested_authority(req) else {
        return false;
    };
    // Nearly every request names the host exactly as configured: no parse needed then.
    if allowed.iter().any(|h| h.admits_verbatim(raw)) {
        return true;
    }
    let Ok(requested) = AllowedHost::parse(raw) else {
        return false;
    };
    allowed.iter().any(|h| h.admits(&requested))
}

/// `scheme://host[:port]`, normalised (lower case, default port dropped), for http(s) origins.
fn normalized_origin(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    bare.then(|| url.origin().ascii_serialization())
}

/// True when `origin` (normalised) is this very server: `PUBLIC_URL` when configured, else the
/// plain-HTTP origin of the host the request names. Never "any scheme on this host": an
/// `https://` page is not this `http://` server, nor the reverse.
fn is_own_origin(req: &Request, state: &AppState, origin: &str) -> bool {
    match &state.settings.public_url {
        Some(public) => public.origin().ascii_serialization() == origin,
        None => requested_authority(req)
            .and_then(|a| normalized_origin(&format!("http://{a}")))
            .is_some_and(|own| own == origin),
    }
}

fn is_listed(state: &AppState, origin: &str) -> bool {
    normalized_origin(origin).is_some_and(|o| state.settings.cors_origins.contains(&o))
}

/// Why a state-changing request is refused, if it is.
fn csrf_verdict(req: &Request, state: &AppState) -> Option<&'static str> {
    let Ok(origin) = single_header(req, header::ORIGIN) else {
        return Some("a request with a duplicated or unreadable Origin header cannot change state");
    };
    let Ok(fetch_site) = single_header(req, SEC_FETCH_SITE) else {
        return Some("a request with a duplicated or unreadable Sec-Fetch-Site header cannot change state");
    };
    let listed = match origin {
        None => false,
        Some(o) if o.eq_ignore_ascii_case("null") => {
            return Some("requests from an opaque origin (`Origin: null`) cannot change state");
        }
        Some(o) => {
            let listed = is_listed(state, o);
            let own = normalized_origin(o).is_some_and(|n| is_own_origin(req, state, &n));
            if !listed && !own {
                return Some("cross-origin requests cannot change state (Origin is not allowed)");
            }
            listed
        }
    };
    match fetch_site {
        None | Some("same-origin") | Some("none") => None,
        Some(_) if listed => None,
        Some(_) => Some("cross-site requests cannot change state (Sec-Fetch-Site)"),
    }
}

/// Body types a cross-site HTML form can send without a CORS preflight.
fn is_form_like(req: &Request) -> bool {
    header_str(req, header::CONTENT_TYPE).is_some_and(|ct| {
        let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(
            ct.as_str(),
            "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
        )
    })
}

fn add_cors(resp: &mut Response, origin: &str) {
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

fn add_vary_origin(resp: &mut Response) {
    resp.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
}

/// True when a request says which site it comes from: a browser's form post always does
/// (`Origin` on every POST, `Sec-Fetch-Site` in current browsers).
fn names_its_site(req: &Request) -> bool {
    req.headers().contains_key(header::ORIGIN) || req.headers().contains_key(SEC_FETCH_SITE)
}

/// Whether `req` is for one of the hosted pages, which answer errors as HTML (with the status and
/// headers of the JSON answer: [`error_page`]).
pub fn is_page(state: &AppState, req: &Request) -> bool {
    state.settings.ui_enabled && crate::pages::is_page(req.uri().path())
}

/// What the guard makes of a request before the operation runs.
pub enum Admission {
    /// Let through to the operation; [`Admitted::finish`] completes its answer.
    Pass(Admitted),
    /// Answered by the guard itself: a CORS preflight.
    Answered(Response),
}

/// What a request let through decided for its answer: the session cookie's action, CORS,
/// `Vary` and `Cache-Control`.
pub struct Admitted {
    slot: CookieSlot,
    is_auth: bool,
    cors_origin: Option<String>,
    sent_origin: bool,
}

// Rare paths' futures are built in functions of their own and boxed there. A future is built on
// the stack of the function that creates it before it is moved into place: created inline, these
// sat in the stack frame of every request's poll, whether the request took the path or not.

/// A hosted page's error, as a page.
#[inline(never)]
pub fn error_page(json: Response) -> BoxFuture<'static, Response> {
    Box::pin(crate::pages::error_page(json))
}

/// The request body, read within `timeout` and at most [`MAX_BODY_BYTES`].
#[inline(never)]
fn read_body(req: &mut Request, timeout: Duration) -> BoxFuture<'static, Result<Bytes, ApiError>> {
    let read = req.take_body().into_bytes_limit(MAX_BODY_BYTES);
    Box::pin(async move {
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
            .map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => ApiError::PayloadTooLarge,
                other => ApiError::InvalidRequest(format!("cannot read the request body: {other}")),
            })
    })
}

/// Whether a hosted page shows this answer as an error page: an error in JSON, on a page's path.
pub fn shown_as_page(page: bool, resp: &Response) -> bool {
    page && !resp.is_success() && is_json(resp)
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// The host, a CORS preflight, and for a state-changing request its body (read here, bounded)
/// and where it comes from (CSRF). An `Err` is a refusal, answered without the operation.
///
/// The request is borrowed, not moved: the operation's call takes it by value after this
/// returns, so it is not copied into one more future on every request.
pub async fn admit(state: &AppState, req: &mut Request, page: bool) -> poem::Result<Admission> {
    if !is_probe(req) && !host_allowed(req, state) {
        tracing::warn!(
            host = requested_authority(req).unwrap_or("-"),
            "request for a host that is not allowed refused"
        );
        return Err(ApiError::HostNotAllowed.into());
    }
    let sent_origin = header_str(req, header::ORIGIN).is_some();
    // A duplicated Origin gets no CORS answer (and no state change, below).
    let cors_origin = single_header(req, header::ORIGIN)
        .ok()
        .flatten()
        .filter(|o| is_listed(state, o))
        .map(str::to_string);

    // CORS preflight.
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        let mut resp = match &cors_origin {
            Some(o) => {
                let mut resp = StatusCode::NO_CONTENT.into_response();
                add_cors(&mut resp, o);
                let h = resp.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, DELETE"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("content-type, x-request-id"),
                );
                h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
                resp
            }
            None => ApiError::CorsRejected.as_response(),
        };
        add_vary_origin(&mut resp);
        return Ok(Admission::Answered(resp));
    }

    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        // Every body authauth accepts is a few hundred bytes of JSON: read it here, bounded,
        // whether or not a Content-Length announced it. A client gets `HTTP_BODY_READ_TIMEOUT`
        // to send it: one that trickles or stalls does not hold the connection.
        let body = read_body(req, state.settings.body_read_timeout).await?;
        req.set_body(body);
        if let Some(why) = csrf_verdict(req, state) {
            tracing::warn!(
                origin = header_str(req, header::ORIGIN).unwrap_or("-"),
                "cross-site request refused"
            );
            return Err(ApiError::CsrfRejected(why.to_string()).into());
        }
        if page && crate::pages::takes_forms(req.uri().path()) {
            // The one place form bodies are taken, so the one place a cross-site form could
            // land: a post that does not say where it comes from is refused rather than trusted
            // (a browser always says; SameSite=Lax stays defence in depth).
            if !names_its_site(req) {
                tracing::warn!("form post without Origin or Sec-Fetch-Site refused");
                return Err(ApiError::CsrfRejected(
                    "a form is accepted only from a browser that says where it comes from (Origin or Sec-Fetch-Site)"
                        .into(),
                )
                .into());
            }
        } else if is_form_like(req) {
            return Err(ApiError::UnsupportedMediaType(
                "form and text bodies are not accepted; send JSON with `Content-Type: application/json`"
                    .into(),
            )
            .into());
        }
    }

    let slot = CookieSlot::default();
    req.extensions_mut().insert(slot.clone());
    Ok(Admission::Pass(Admitted {
        slot,
        is_auth: req.uri().path().starts_with("/auth"),
        cors_origin,
        sent_origin,
    }))
}

impl Admitted {
    /// Applies to the operation's answer what the request decided.
    pub fn finish(self, state: &AppState, mut resp: Response) -> Response {
        let cookie_name = &state.settings.session.cookie_name;
        let handler_set_cookie = resp.headers().get_all(header::SET_COOKIE).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.starts_with(&format!("{cookie_name}=")))
        });
        if !handler_set_cookie {
            let set = match self.slot.take() {
                CookieAction::Keep => None,
                CookieAction::Set(c) => Some(c),
                CookieAction::Clear => Some(clear_cookie(&state.settings.session)),
            };
            if let Some(v) = set.and_then(|c| HeaderValue::from_str(&c).ok()) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        for extra in self.slot.take_extra() {
            if let Ok(v) = HeaderValue::from_str(&extra) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        if self.is_auth || resp.headers().contains_key(header::SET_COOKIE) {
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if let Some(o) = &self.cors_origin {
            add_cors(&mut resp, o);
        }
        if self.sent_origin {
            add_vary_origin(&mut resp);
        }
        resp
    }
}
