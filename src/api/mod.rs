//! The HTTP API (poem-openapi). One `OpenApiService` combines the endpoint groups; the same
//! spec is served at `/openapi.json`, rendered by Swagger UI at `/docs`, and printed by
//! `authauth openapi`.
//!
//! The spec declares no `servers`: Swagger UI then calls the host `/docs` was opened on.

pub mod account;
pub mod actions;
pub mod activity;
pub mod allow;
pub mod auth;
pub mod cookie;
pub mod documented;
pub mod edge;
pub mod fields;
pub mod forward_auth;
pub mod guard;
pub mod header_names;
pub mod health;
pub mod mfa;
pub mod oidc;
pub mod passkeys;
pub mod root;
pub mod session_auth;
pub mod sessions;
pub mod views;

use poem_openapi::OpenApiService;

/// Every endpoint group, in the order the spec lists them.
pub type Apis = (
    root::RootApi,
    health::HealthApi,
    auth::AuthApi,
    account::AccountApi,
    mfa::MfaApi,
    passkeys::PasskeysApi,
    sessions::SessionsApi,
    activity::ActivityApi,
    oidc::OidcApi,
    forward_auth::ForwardAuthApi,
);

/// Every endpoint group.
pub fn apis() -> Apis {
    (
        root::RootApi,
        health::HealthApi,
        auth::AuthApi,
        account::AccountApi,
        mfa::MfaApi,
        passkeys::PasskeysApi,
        sessions::SessionsApi,
        activity::ActivityApi,
        oidc::OidcApi,
        forward_auth::ForwardAuthApi,
    )
}

/// The API description, independent of any running state.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(apis(), "authauth", env!("CARGO_PKG_VERSION"))
        .description(DESCRIPTION)
        .license(poem_openapi::LicenseObject::new("MIT OR Apache-2.0"))
}

const DESCRIPTION: &str = "\
Session-based authentication with explicit, server-side cookie sessions.

**Try it here.** `POST /auth/signup` or `POST /auth/login` sets an HttpOnly session cookie; this \
page's later calls send it automatically (same origin). The cookie is opaque: the session itself \
lives on the server and is named by a public id.

**Errors** are always `{\"error\": \"<stable_code>\", \"message\": \"…\"}`. A 401 says why: \
`no_session`, `session_expired`, `session_revoked` (with `reason`), or `ambiguous_session` \
(several session cookies, none safe to pick: sign in again). A 503 \
`session_store_unavailable` means the session store is down — the session is not lost.

**Cross-site requests** that change state are refused (403 `csrf_rejected`); JSON endpoints \
refuse form and text bodies (415). A request naming a host this server does not answer for gets \
400 `host_not_allowed`.

**Behind a reverse proxy**, `GET /auth/verify` answers the proxy's sub-request for every request \
to the application it protects, and hands it the user in `X-Auth-*` headers. A backend that \
checks a session itself by forwarding the browser's cookie (to `/auth/me` or `/auth/verify`) \
sends `X-Auth-Passive: 1`, so that no rotation is lost on the way.";

/// The OpenAPI 3 document as JSON, exactly as `/openapi.json` serves it.
pub fn spec_json() -> String {
    service().spec()
}
