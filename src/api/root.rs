//! `GET /` sends people to the interactive documentation.

use poem_openapi::{ApiResponse, OpenApi};

#[derive(ApiResponse)]
enum RootResponse {
    /// See the Swagger UI at `/docs`.
    #[oai(status = 303)]
    SeeOther(#[oai(header = "Location")] String),
}

pub struct RootApi;

#[OpenApi]
impl RootApi {
    /// Redirects to `/docs` (not part of the API contract).
    #[oai(path = "/", method = "get", hidden)]
    async fn root(&self) -> RootResponse {
        RootResponse::SeeOther("/docs".to_string())
    }
}
