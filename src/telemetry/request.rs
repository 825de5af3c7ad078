//! The request a log line belongs to: its id, method and path, on every line logged while the
//! request is served.
//!
//! This was a `tracing` span per request. A span is created in the subscriber's registry (a
//! slot, its fields formatted into an extension), entered and left on every poll of the
//! request's future — each time through the level filter's lock — and closed: about 5,000
//! instructions a request, an eighth of a no-cookie 401 (docs/performance.md). The same three
//! values are kept here in a task-local for the time the request's future runs, and the two log
//! formats read them: the JSON line under `"span"`, exactly as the span was written
//! (`{"name":"request","request_id":…,"method":…,"path":…}`); the text line at its end, as the
//! compact format writes span fields. A line logged outside a request (start-up, background
//! jobs) has none; a span opened by a library inside a request is still written when there is no
//! request around it.

use std::future::Future;

use poem::http::{HeaderValue, Method, Uri};

/// The request being served. The path is taken from the URI when a line is written, never the
/// query string (it can carry OAuth codes and state).
pub struct Request {
    pub id: HeaderValue,
    pub method: Method,
    pub uri: Uri,
}

impl Request {
    /// The id as text: it is either a checked incoming id or a UUID, both ASCII.
    pub fn id(&self) -> &str {
        self.id.to_str().unwrap_or_default()
    }

    pub fn path(&self) -> &str {
        self.uri.path()
    }
}

tokio::task_local! {
    static CURRENT: Request;
}

/// Runs `serve` with `request` as the request every line logged while it runs belongs to.
pub async fn scope<F: Future>(request: Request, serve: F) -> F::Output {
    CURRENT.scope(request, serve).await
}

/// Calls `f` with the request being served on this task, if any.
pub fn with_current<R>(f: impl FnOnce(&Request) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}
