//! The names of the request headers outside `http::header` that the API reads, and the request
//! id's. As `HeaderName` constants, not text: looking a header up (or inserting it) by text
//! parses the name on every call — a few hundred instructions each, on every request.

use poem::http::HeaderName;

/// The request's id, read from the request and returned on every response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The client address appended by a trusted reverse proxy (`TRUST_X_FORWARDED_FOR`).
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// Fetch metadata: where the request comes from (`same-origin`, `same-site`, `cross-site`, `none`).
pub const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
/// Fetch metadata: how the request was made (`navigate` for a top-level navigation).
pub const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
/// nginx `auth_request`: the URL the browser asked for (set in the example configuration).
pub const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
/// nginx `auth_request`: the method the browser used (set in the example configuration).
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
/// Caddy `forward_auth`, Traefik `ForwardAuth`: the URI the browser asked for.
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
/// Caddy `forward_auth`, Traefik `ForwardAuth`: the method the browser used.
pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
