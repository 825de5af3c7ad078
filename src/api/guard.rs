//! Cross-site request protection and CORS, in front of every route.
//!
//! **CSRF** — a state-changing request (anything but GET/HEAD/OPTIONS) is refused with 403
//! `csrf_rejected` when the browser says it comes from another site:
//! `Sec-Fetch-Site` other than `same-origin`/`none`, or an `Origin` that is neither this host
//! (compared with the `Host` the browser sent), `PUBLIC_URL`, nor one of `CORS_ORIGINS`.
//! `Origin: null` is always refused. Requests with neither header are not from a browser (curl,
//! servers) and pass. Login and signup are covered too (login CSRF). Form and text bodies get 415
//! before any handler runs, so a cross-site `<form>` can never reach one. SameSite=Lax is defence
//! in depth, not the defence.
//!
//! **CORS** — only origins listed in `CORS_ORIGINS` get `Access-Control-Allow-Origin` (echoed,
//! with credentials); never `*`, never `null`.
//!
//! It also applies the session cookie action decided during the request (rotation, deletion)
//! and marks every `/auth` response `Cache-Control: no-store`.

use std::sync::Arc;

use poem::{
    error::ResponseError,
    http::{header, HeaderValue, Method, StatusCode},
    Endpoint, IntoResponse, Request, Response,
};

use super::cookie::{clear_cookie, CookieAction, CookieSlot};
use crate::{error::ApiError, state::AppState};

/// The largest request body accepted (413 `payload_too_large` above it).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

fn header_str(req: &Request, name: impl header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// True when `origin` (as sent in the `Origin` header) is this very server.
fn is_same_origin(req: &Request, state: &AppState, origin: &str) -> bool {
    let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| header_str(req, header::HOST));
    if host.is_some_and(|h| !authority.is_empty() && h.eq_ignore_ascii_case(authority)) {
        return true;
    }
    state
        .settings
        .public_url
        .as_ref()
        .is_some_and(|u| u.origin().ascii_serialization().eq_ignore_ascii_case(origin))
}

fn is_listed(state: &AppState, origin: &str) -> bool {
    state
        .settings
        .cors_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
}

/// Why a state-changing request is refused, if it is.
fn csrf_verdict(req: &Request, state: &AppState) -> Option<&'static str> {
    let origin = header_str(req, header::ORIGIN);
    if origin.is_some_and(|o| o.eq_ignore_ascii_case("null")) {
        return Some("requests from an opaque origin (`Origin: null`) cannot change state");
    }
    let listed = origin.is_some_and(|o| is_listed(state, o));
    match header_str(req, "sec-fetch-site") {
        Some("same-origin") | Some("none") => None,
        Some(_) if listed => None,
        Some(_) => Some("cross-site requests cannot change state (Sec-Fetch-Site)"),
        None => match origin {
            Some(o) if listed || is_same_origin(req, state, o) => None,
            Some(_) => Some("cross-origin requests cannot change state (Origin is not allowed)"),
            None => None,
        },
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

pub async fn guard<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let Some(state) = req.data::<AppState>().cloned() else {
        return Err(ApiError::internal(anyhow::anyhow!("application state missing")).into());
    };
    let origin = header_str(&req, header::ORIGIN).map(str::to_string);
    let cors_origin = origin
        .as_deref()
        .filter(|o| is_listed(&state, o))
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
        return Ok(resp);
    }

    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        // Every body authauth accepts is a few hundred bytes of JSON: read it here, bounded,
        // whether or not a Content-Length announced it.
        // A client gets `HTTP_BODY_READ_TIMEOUT` to send it: one that trickles or stalls does
        // not hold the connection.
        let read = req.take_body().into_bytes_limit(MAX_BODY_BYTES);
        let body = tokio::time::timeout(state.settings.body_read_timeout, read)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
            .map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => ApiError::PayloadTooLarge,
                other => ApiError::InvalidRequest(format!("cannot read the request body: {other}")),
            })?;
        req.set_body(body);
        if let Some(why) = csrf_verdict(&req, &state) {
            tracing::warn!(
                origin = origin.as_deref().unwrap_or("-"),
                "cross-site request refused"
            );
            return Err(ApiError::CsrfRejected(why.to_string()).into());
        }
        if is_form_like(&req) {
            return Err(ApiError::UnsupportedMediaType(
                "form and text bodies are not accepted; send JSON with `Content-Type: application/json`"
                    .into(),
            )
            .into());
        }
    }

    let slot = CookieSlot::default();
    req.extensions_mut().insert(slot.clone());
    let is_auth = req.uri().path().starts_with("/auth");
    let mut resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => crate::error::render(e).await,
    };

    let cookie_name = &state.settings.session.cookie_name;
    let handler_set_cookie = resp.headers().get_all(header::SET_COOKIE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.starts_with(&format!("{cookie_name}=")))
    });
    if !handler_set_cookie {
        let set = match slot.take() {
            CookieAction::Keep => None,
            CookieAction::Set(c) => Some(c),
            CookieAction::Clear => Some(clear_cookie(&state.settings.session)),
        };
        if let Some(v) = set.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    for extra in slot.take_extra() {
        if let Ok(v) = HeaderValue::from_str(&extra) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if is_auth || resp.headers().contains_key(header::SET_COOKIE) {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(o) = &cors_origin {
        add_cors(&mut resp, o);
    }
    if origin.is_some() {
        add_vary_origin(&mut resp);
    }
    Ok(resp)
}
