//! How long one access-log line takes to format and write, with tracing-subscriber's JSON
//! formatter and with authauth's own (`telemetry::json`), in one process, on the same events:
//!
//!     cargo run --release --example log_format [EVENTS]
//!
//! Each formatter writes EVENTS request lines (a request span and the access-log event: the
//! form both formatters know; the server itself now keeps the request in a task-local,
//! `telemetry::request`) into a sink that discards them; the best of five rounds is printed.

use std::time::{Duration, Instant};

use tracing_subscriber::{fmt, prelude::*};

fn lines(events: usize) {
    for i in 0..events {
        let span = tracing::info_span!(
            "request",
            request_id = %"0195a1c2-7d3e-7f00-8a1b-2c3d4e5f6a7b",
            method = %"GET",
            path = %"/auth/me"
        );
        let _entered = span.enter();
        tracing::info!(status = 200u16, latency_ms = 0.4 + (i % 7) as f64, "request");
    }
}

fn best_of_five(events: usize, subscriber: impl Fn() -> tracing::Dispatch) -> Duration {
    (0..5)
        .map(|_| {
            let dispatch = subscriber();
            let started = Instant::now();
            tracing::dispatcher::with_default(&dispatch, || lines(events));
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let stock = best_of_five(events, || {
        tracing_subscriber::registry()
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::sink),
            )
            .into()
    });
    let own = best_of_five(events, || {
        tracing_subscriber::registry()
            .with(authauth::telemetry::json_layer(std::io::sink))
            .into()
    });
    let per = |d: Duration| d.as_nanos() as f64 / events as f64;
    println!("{events} request lines, best of 5 rounds:");
    println!("  tracing-subscriber JSON: {:>8.0} ns per line", per(stock));
    println!(
        "  authauth JSON:           {:>8.0} ns per line ({:.2}x)",
        per(own),
        per(stock) / per(own)
    );
}
