//! The connection loop: accepts TCP connections and serves HTTP/1.1 on them with hyper,
//! handing every request to the poem endpoint. (authauth runs behind a TLS-terminating proxy
//! or load balancer, which speaks HTTP/2 to browsers and HTTP/1.1 to its upstreams;
//! cleartext HTTP/2 is not offered.)
//!
//! authauth runs its own loop instead of `poem::Server` for one reason: slow clients. A client
//! that sends its request head a byte at a time, or opens a connection and says nothing, must
//! not hold it forever. hyper bounds the time to receive a request head
//! ([`Settings::header_read_timeout`], counted from when the connection is ready for a request,
//! so it also closes idle keep-alive connections); the body is bounded by the CSRF guard,
//! which reads it within [`Settings::body_read_timeout`]. On shutdown, the listener closes,
//! in-flight requests finish (up to `SHUTDOWN_TIMEOUT`), and idle connections are closed.

use std::{convert::Infallible, sync::Arc, time::Duration};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use poem::{
    http::{self, uri::Scheme},
    web::{LocalAddr, RemoteAddr},
    Addr, Endpoint, IntoResponse,
};
use tokio::net::TcpListener;

use crate::config::Settings;

/// How the connections are served, from the configuration.
fn builder(settings: &Settings) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    builder
}

/// Serves `endpoint` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish for at most `settings.shutdown_timeout`.
pub async fn serve<E: Endpoint + 'static>(
    listener: TcpListener,
    endpoint: E,
    settings: &Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let endpoint = Arc::new(endpoint);
    let builder = builder(settings);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: pause instead of spinning.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let endpoint = endpoint.clone();
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let endpoint = endpoint.clone();
                    async move {
                        let req = poem::Request::from((
                            req,
                            LocalAddr(Addr::SocketAddr(local)),
                            RemoteAddr(Addr::SocketAddr(peer)),
                            Scheme::HTTP,
                        ));
                        // `call`, not `get_response`: the latter wraps the call in one more
                        // future holding the request, for the same answer.
                        let resp = match endpoint.call(req).await {
                            Ok(resp) => resp.into_response(),
                            Err(err) => err.into_response(),
                        };
                        Ok::<_, Infallible>(hyper::Response::from(resp))
                    }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(settings.shutdown_timeout) => {
            tracing::warn!(timeout = ?settings.shutdown_timeout, "requests still running at the end of SHUTDOWN_TIMEOUT were cut off");
        }
    }
    Ok(())
}
