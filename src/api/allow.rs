//! RFC 9110 §15.5.6: a 405 must say which methods the resource does support, in `Allow`.
//!
//! The methods come from the route table poem-openapi builds the API from (hidden operations
//! included), and a path is matched by poem's own router over that table: the answer cannot
//! drift from routing, and a new endpoint needs nothing here.

use std::{collections::HashMap, sync::Arc};

use poem::{
    http::{Method, Uri},
    Endpoint, Request, Response, Route,
};
use poem_openapi::OpenApi;

/// The order methods are listed in: the usual one, safe methods first.
const ORDER: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// Which methods each path of the API answers.
#[derive(Clone)]
pub struct AllowedMethods(Arc<Route>);

/// The lookup router's endpoint for one path: answers with that path's methods.
struct Methods(Vec<Method>);

impl Endpoint for Methods {
    type Output = Response;

    async fn call(&self, _req: Request) -> poem::Result<Response> {
        let mut resp = Response::default();
        resp.extensions_mut().insert(self.0.clone());
        Ok(resp)
    }
}

impl AllowedMethods {
    /// The methods of every path of `api`, and of the other routes in `more` (the hosted pages).
    pub fn of(api: impl OpenApi, more: &[(&str, &[Method])]) -> Self {
        let mut table = HashMap::new();
        api.add_routes(&mut table);
        let route = more.iter().fold(Route::new(), |route, (path, methods)| {
            route.at(*path, Methods(methods.to_vec()))
        });
        let route = table.into_iter().fold(route, |route, (path, endpoints)| {
            let mut methods: Vec<Method> = endpoints.into_keys().collect();
            // poem answers HEAD wherever there is a GET (RFC 9110 §9.3.2).
            if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
                methods.push(Method::HEAD);
            }
            methods.sort_by_key(|m| ORDER.iter().position(|o| o == m).unwrap_or(ORDER.len()));
            route.at(path, Methods(methods))
        });
        AllowedMethods(Arc::new(route))
    }

    /// The methods the resource at `uri` answers; empty when the API has no such path.
    pub async fn at(&self, uri: Uri) -> Vec<Method> {
        match self.0.call(Request::builder().uri(uri).finish()).await {
            Ok(resp) => resp
                .extensions()
                .get::<Vec<Method>>()
                .cloned()
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }
}
