//! The one endpoint every request enters: request id, access log and metrics, baseline
//! security headers, the guard (host, CSRF, CORS, cookie actions), then the operation.
//!
//! Each step used to be a poem middleware layer (`around`, `data`, `catch_all_error`) over a
//! `Route` nesting the `OpenApiService`, which routes again: every layer and every route level
//! moved the request's future into a heap box of its own, and the nested routers rebuilt the
//! path pattern with `format!` on each request. Here the steps are plain calls in one `async`
//! function, called by the connection loop as it is (not as a boxed poem endpoint: hyper keeps
//! each connection's request future in a box of its own), and an operation with a fixed path
//! and no query parameters (`GET /auth/me`, `GET /auth/verify`, every `POST` without a path
//! parameter) is called directly: its endpoint is the very one poem-openapi generated for the
//! spec — the same extractors, validation, responses and documentation — taken from
//! [`OpenApi::add_routes`](poem_openapi::OpenApi::add_routes), so the fast path cannot drift
//! from `/openapi.json`. Everything else (path parameters, query strings, `HEAD`, the spec,
//! Swagger UI, the hosted pages, unknown paths) goes through poem's router as before.

use std::{collections::HashMap, sync::Arc, time::Instant};

use futures_util::future::BoxFuture;
use poem::{
    endpoint::{BoxEndpoint, DynEndpoint},
    error::MethodNotAllowedError,
    http::{header, HeaderValue, Method, Uri},
    Endpoint, PathPattern, Request, Response,
};
use poem_openapi::{registry::MetaParamIn, OpenApi};

use super::{allow::AllowedMethods, guard, header_names::X_REQUEST_ID};
use crate::{
    error,
    error::ApiError,
    metrics::{Metrics, RouteMetrics},
    state::AppState,
    telemetry,
};

/// An operation called without routing.
struct DirectOp {
    method: Method,
    path: String,
    /// The endpoint poem-openapi generated for it.
    endpoint: BoxEndpoint<'static>,
    /// Its series in the metrics, resolved once; its `route` label is its path (it has no
    /// parameters).
    metrics: RouteMetrics,
}

/// The operations called without routing, looked up by method and path. A list, not a hash
/// map: a few dozen comparisons of short strings (most differ in length or method) cost less
/// than hashing the path with SipHash on every request.
struct Direct(Vec<DirectOp>);

impl Direct {
    fn get(&self, method: &Method, path: &str) -> Option<&DirectOp> {
        self.0
            .iter()
            .find(|op| op.path.len() == path.len() && op.method == *method && op.path == path)
    }
}

pub struct Edge {
    state: AppState,
    templates: RouteTemplates,
    allowed: AllowedMethods,
    direct: Direct,
    /// poem's router: the spec, Swagger UI, the hosted pages and the whole API.
    router: BoxEndpoint<'static>,
}

impl Edge {
    /// `router` answers every request the direct table does not; `pages` are the hosted pages'
    /// routes (for `Allow` and the metrics' route label).
    pub fn new(state: AppState, router: BoxEndpoint<'static>, pages: &[(&str, &[Method])]) -> Self {
        let templates = RouteTemplates::of_api(pages);
        Edge {
            allowed: AllowedMethods::of(super::apis(), pages),
            direct: direct_operations(&templates, &state.metrics),
            templates,
            router,
            state,
        }
    }

    /// The operation answering `req` without routing, if it is one of those.
    fn direct(&self, req: &Request) -> Option<&DirectOp> {
        if req.uri().query().is_some() {
            return None;
        }
        self.direct.get(req.method(), req.uri().path())
    }

    /// The operation (`direct`, looked up before the guard ran), or poem's router; a "method
    /// not allowed" names the path's methods. poem's router records the route it took on the
    /// response (or the error) for the `route` label; a direct operation's label is its own.
    ///
    /// Both are called as [`DynEndpoint`]s, whose futures are boxed already: through
    /// `Endpoint for Box<_>` each call was wrapped in two more futures holding the request.
    async fn dispatch(&self, req: Request, direct: Option<&DirectOp>) -> poem::Result<Response> {
        if let Some(op) = direct {
            return DynEndpoint::call(&*op.endpoint, req).await;
        }
        let uri = req.uri().clone();
        match DynEndpoint::call(&*self.router, req).await {
            Err(e) if e.is::<MethodNotAllowedError>() => Err(ApiError::MethodNotAllowed {
                allow: self.allowed_at(uri).await,
            }
            .into()),
            other => other,
        }
    }

    /// The methods the path answers, for a 405's `Allow`. Rare: its future is built here and
    /// boxed, not on the stack of every request's poll (see `guard::error_page`).
    #[inline(never)]
    fn allowed_at(&self, uri: Uri) -> BoxFuture<'_, Vec<Method>> {
        Box::pin(self.allowed.at(uri))
    }
}

impl Endpoint for Edge {
    type Output = Response;

    /// Assigns each request an id (or keeps a well-formed incoming `x-request-id`), logs one
    /// line per request, counts it, and adds the id and baseline security headers to every
    /// response — errors included.
    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let request_id = request_id(&req);
        req.extensions_mut().insert(self.state.clone());
        let method = req.method().clone();
        let logged = telemetry::request::Request {
            id: request_id.clone(),
            method: method.clone(),
            uri: req.uri().clone(),
        };
        let started = Instant::now();
        let direct = self.direct(&req);
        // Pinned where it is: the future is large, and the scope holds only a pointer to it
        // (moved into the scope, it was copied on every request: 16,000 instructions of
        // `memcpy`).
        let serve = std::pin::pin!(async {
            // The guard borrows the request and the operation takes it: the request is moved
            // once, into the operation's call, not through a future of the guard's as well.
            let page = guard::is_page(&self.state, &req);
            // `routed`: the guard let the request through to the operation; a request the guard
            // answers itself (a preflight, a refused Host, a cross-site form) was not routed and
            // is labelled `unmatched`. `refused`: the guard said no.
            let (resp, routed, refused) = match guard::admit(&self.state, &mut req, page).await {
                Ok(guard::Admission::Pass(admitted)) => {
                    let resp = match self.dispatch(req, direct).await {
                        Ok(r) => r,
                        Err(e) => error::render(e),
                    };
                    (admitted.finish(&self.state, resp), true, false)
                }
                Ok(guard::Admission::Answered(resp)) => (resp, false, false),
                Err(e) => (error::render(e), false, true),
            };
            // On a hosted page an error is shown as a page: a refusal always, any other answer
            // when it is an error in JSON.
            let resp = if (page && refused) || guard::shown_as_page(page, &resp) {
                guard::error_page(resp).await
            } else {
                resp
            };
            let status = resp.status();
            let took = started.elapsed();
            let metrics = &self.state.metrics;
            match direct {
                Some(op) if routed => op.metrics.request(metrics, status, took),
                _ => metrics.http_request(
                    self.templates.label(resp.data::<PathPattern>()),
                    &method,
                    status.as_str(),
                    took,
                ),
            }
            let ms = took.as_secs_f64() * 1000.0;
            // `message` as a text field, the same in the line as a format string but not run
            // through `fmt::Arguments` on every request.
            if status.is_server_error() {
                tracing::warn!(
                    message = "request failed",
                    status = status.as_u16(),
                    latency_ms = ms
                );
            } else {
                tracing::info!(message = "request", status = status.as_u16(), latency_ms = ms);
            }
            resp
        });
        let mut resp = telemetry::request::scope(logged, serve).await;
        let headers = resp.headers_mut();
        headers.insert(X_REQUEST_ID, request_id);
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        if !headers.contains_key(header::REFERRER_POLICY) {
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        }
        Ok(resp)
    }
}

/// The request's id: a well-formed incoming `x-request-id` (at most 64 letters, digits, `-`
/// and `_`), else a new UUID. Handlers read it from the request's log context
/// ([`telemetry::request`]; the audit trail records it), not from the request's headers, where
/// a malformed incoming one stays as it came.
fn request_id(req: &Request) -> HeaderValue {
    let incoming = req.headers().get(X_REQUEST_ID).filter(|v| {
        let v = v.as_bytes();
        !v.is_empty()
            && v.len() <= 64
            && v.iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    });
    match incoming {
        Some(id) => id.clone(),
        None => {
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
            // Hyphens and hex digits: always a valid header value.
            HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("-"))
        }
    }
}

/// The operations with a fixed path and no query parameters, as the spec describes them. An
/// operation the spec does not list (hidden) is left to the router: its parameters are unknown.
fn direct_operations(templates: &RouteTemplates, metrics: &Metrics) -> Direct {
    // Each one's documented statuses, by method and path.
    let mut fixed: HashMap<(Method, String), Vec<u16>> = HashMap::new();
    for api in super::Apis::meta() {
        for path in api.paths {
            if path.path.contains(['{', '*', ':']) {
                continue;
            }
            for op in path.operations {
                if op.params.iter().all(|p| !matches!(p.in_type, MetaParamIn::Query)) {
                    let statuses = op.responses.responses.iter().filter_map(|r| r.status).collect();
                    fixed.insert((op.method, path.path.clone()), statuses);
                }
            }
        }
    }
    let mut routes = HashMap::new();
    super::apis().add_routes(&mut routes);
    let mut direct = Vec::new();
    for (path, methods) in routes {
        for (method, endpoint) in methods {
            if let Some(statuses) = fixed.get(&(method.clone(), path.clone())) {
                // The label poem's router would have led to.
                let label = templates.label(Some(&PathPattern(path.as_str().into())));
                direct.push(DirectOp {
                    metrics: metrics.http_route(label, &method, statuses),
                    method,
                    path: path.clone(),
                    endpoint,
                });
            }
        }
    }
    Direct(direct)
}

/// The `route` label of a request: the OpenAPI path template of the operation that answered it
/// (`/auth/sessions/{id}`), never the raw path, so ids never become label values. poem names
/// path parameters `:param0`, `:param1`… in its own patterns: they are mapped back to the
/// spec's templates. Anything else — Swagger UI, no route at all — is `other` or `unmatched`.
#[derive(Clone)]
struct RouteTemplates(Arc<HashMap<String, String>>);

impl RouteTemplates {
    /// The spec's templates, and the hosted pages' (`/account/sessions/{id}/end`).
    fn of_api(pages: &[(&str, &[Method])]) -> Self {
        let mut map = HashMap::new();
        for (pattern, _) in pages {
            map.insert(pattern.to_string(), pattern.replace(":id", "{id}"));
        }
        for api in super::Apis::meta() {
            for path in api.paths {
                let mut n = 0;
                let poem_pattern: String = path
                    .path
                    .split('/')
                    .map(|segment| {
                        if segment.starts_with('{') && segment.ends_with('}') {
                            n += 1;
                            format!(":param{}", n - 1)
                        } else {
                            segment.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                map.insert(poem_pattern, path.path);
            }
        }
        RouteTemplates(Arc::new(map))
    }

    /// Borrowed, not built: this runs on every request.
    fn label(&self, pattern: Option<&PathPattern>) -> &str {
        match pattern {
            None => "unmatched",
            Some(p) => match self.0.get(p.0.as_ref()) {
                Some(template) => template,
                None if p.0.starts_with("/docs") => "/docs",
                None if &*p.0 == "/openapi.json" => "/openapi.json",
                None => "other",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_table_holds_fixed_paths_without_query_parameters_only() {
        let direct = direct_operations(&RouteTemplates::of_api(&[]), &Metrics::new().unwrap());
        assert!(direct.get(&Method::GET, "/auth/me").is_some());
        assert!(direct.get(&Method::GET, "/auth/verify").is_some());
        assert!(direct.get(&Method::POST, "/auth/me").is_none());
        // A path parameter: routed.
        assert!(direct.0.iter().all(|op| !op.path.contains([':', '{'])));
        // Query parameters (the OpenID callback's `code` and `state`): routed, so that
        // poem-openapi's query parsing runs.
        assert!(direct.get(&Method::GET, "/auth/google/callback").is_none());
        assert!(direct.get(&Method::POST, "/auth/login").is_some());
        // Each is labelled with its path, as the spec writes it.
        assert!(direct.0.iter().all(|op| op.metrics.route() == op.path));
    }
}
