//! The HTTP API (poem-openapi). One `OpenApiService` combines the endpoint groups; the same
//! spec is served at `/openapi.json`, rendered by Swagger UI at `/docs`, and printed by
//! `authauth openapi`.
//!
//! The spec declares no `servers`: Swagger UI then calls the host `/docs` was opened on.

pub mod health;
pub mod root;

use poem_openapi::OpenApiService;

/// The API description, independent of any running state.
pub fn service() -> OpenApiService<(root::RootApi, health::HealthApi), ()> {
    OpenApiService::new(
        (root::RootApi, health::HealthApi),
        "authauth",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Session-based authentication: explicit, server-side cookie sessions.\n\n\
             Every error body is `{\"error\": \"<stable_code>\", \"message\": \"…\"}`.",
    )
    .license(poem_openapi::LicenseObject::new("MIT OR Apache-2.0"))
}

/// The OpenAPI 3 document as JSON, exactly as `/openapi.json` serves it.
pub fn spec_json() -> String {
    service().spec()
}
