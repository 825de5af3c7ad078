//! What a request's metric updates cost when every core makes them at once: prometheus's own
//! counter and histogram against authauth's per-thread shards (`metrics::sharded`), in one
//! process:
//!
//!     cargo run --release --example metrics_contention [UPDATES]
//!
//! Each thread counts UPDATES requests into one operation's series — its request counter and
//! its duration histogram, resolved once, as the edge does for `GET /auth/me` — first on one
//! thread, then on one thread per core all at once. Prints nanoseconds per request per thread,
//! the best of five rounds. One thread shows what the instructions cost; all cores at once,
//! what the cache lines that every core writes add (here, nothing else happens between two
//! updates, so each finds its line wherever another core left it).

use std::{
    hint::black_box,
    sync::Barrier,
    time::{Duration, Instant},
};

use authauth::metrics::{Metrics, SECONDS};
use poem::http::{Method, StatusCode};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

/// Nanoseconds per request per thread, the best of five rounds of `threads` threads at once.
fn per_request(threads: usize, updates: u32, request: impl Fn(Duration) + Sync) -> f64 {
    (0..5)
        .map(|_| {
            let start = Barrier::new(threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            let t = Instant::now();
                            for i in 0..updates {
                                request(black_box(Duration::from_micros(200 + u64::from(i % 700))));
                            }
                            t.elapsed()
                        })
                    })
                    .collect();
                let slowest = handles
                    .into_iter()
                    .filter_map(|h| h.join().ok())
                    .max()
                    .unwrap_or_default();
                slowest.as_nanos() as f64 / f64::from(updates)
            })
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let updates: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2_000_000);
    let cores = std::thread::available_parallelism()?.get();

    let counters = IntCounterVec::new(Opts::new("requests_total", "-"), &["route", "method", "status"])?;
    let durations = HistogramVec::new(
        // authauth's buckets.
        HistogramOpts::new("duration_seconds", "-").buckets(SECONDS.to_vec()),
        &["route"],
    )?;
    let (counter, histogram) = (
        counters.with_label_values(&["/auth/me", "GET", "200"]),
        durations.with_label_values(&["/auth/me"]),
    );
    let shared = |took: Duration| {
        counter.inc();
        histogram.observe(took.as_secs_f64());
    };

    let metrics = Metrics::new()?;
    let route = metrics.http_route("/auth/me", &Method::GET, &[200, 401]);
    let sharded = |took: Duration| route.request(&metrics, StatusCode::OK, took);

    println!("{updates} requests per thread, ns per request per thread (best of 5):\n");
    println!("| metrics | 1 thread | {cores} threads at once |");
    println!("|---|---:|---:|");
    for (name, request) in [
        (
            "prometheus IntCounter + Histogram",
            &shared as &(dyn Fn(Duration) + Sync),
        ),
        ("authauth's sharded counter + histogram", &sharded),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} |",
            per_request(1, updates, request),
            per_request(cores, updates, request)
        );
    }
    Ok(())
}
