//! Prometheus metrics: one registry per server, served on its own listener (`METRICS_ADDR`),
//! never on the public port. Names and labels are a stable interface (docs/observability.md):
//! dashboards rely on them.
//!
//! Labels only ever take values from small fixed sets (route templates, outcomes, reasons), never
//! ids, paths or addresses. Updating a metric is an in-process counter: it never costs a store
//! round trip, and the counters and histograms a request updates are kept per thread
//! ([`sharded`]), so two cores never wait for each other's cache line to count.

mod sharded;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use poem::http::{Method, StatusCode};
use prometheus::{Encoder, IntCounter, IntGauge, Opts, Registry, TextEncoder};

pub use sharded::{Counter, Histogram, SECONDS};
use sharded::{CounterVec, HistogramVec};

/// What checking a request's session came to: the `outcome` label of
/// `authauth_session_checks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    Valid,
    /// No session cookie at all.
    NoSession,
    /// A cookie this server did not sign.
    Tampered,
    Expired,
    Revoked,
    /// Several live sessions in one request.
    Ambiguous,
    /// A session whose sign-in is not finished (a second factor to give, one to enrol).
    Incomplete,
    StoreUnavailable,
    Error,
}

impl CheckOutcome {
    const ALL: [CheckOutcome; 9] = [
        CheckOutcome::Valid,
        CheckOutcome::NoSession,
        CheckOutcome::Tampered,
        CheckOutcome::Expired,
        CheckOutcome::Revoked,
        CheckOutcome::Ambiguous,
        CheckOutcome::Incomplete,
        CheckOutcome::StoreUnavailable,
        CheckOutcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::Valid => "valid",
            CheckOutcome::NoSession => "no_session",
            CheckOutcome::Tampered => "tampered",
            CheckOutcome::Expired => "expired",
            CheckOutcome::Revoked => "revoked",
            CheckOutcome::Ambiguous => "ambiguous",
            CheckOutcome::Incomplete => "incomplete",
            CheckOutcome::StoreUnavailable => "store_unavailable",
            CheckOutcome::Error => "error",
        }
    }
}

/// Every metric authauth exports. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

pub struct Inner {
    registry: Registry,
    http_requests: CounterVec,
    http_duration: HistogramVec,
    /// One counter per [`CheckOutcome`], resolved once: every request updates one.
    session_checks: Vec<Counter>,
    sessions_created: CounterVec,
    sessions_rotated: IntCounter,
    sessions_ended: CounterVec,
    sign_ins: CounterVec,
    store_duration: HistogramVec,
    hash_queue_depth: IntGauge,
    hash_duration: HistogramVec,
    audit_dropped: IntCounter,
    webhook_deliveries: CounterVec,
    mail: CounterVec,
    oidc_metadata_fetches: CounterVec,
}

impl std::ops::Deref for Metrics {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<CounterVec> {
    let c = sharded::counter_vec(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

/// A duration histogram (request and store latencies, hashing times): 0.1 ms to 10 s.
fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let h = sharded::histogram_vec(name, help, labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Defines every metric in a new registry. Fails only if a definition here is invalid (the
    /// tests build it).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let sessions_rotated = IntCounter::new(
            "authauth_sessions_rotated_total",
            "Session tokens replaced by a successor (rotation).",
        )?;
        registry.register(Box::new(sessions_rotated.clone()))?;
        let hash_queue_depth = IntGauge::new(
            "authauth_password_hash_queue_depth",
            "Password hashes waiting for or running on a hashing thread.",
        )?;
        registry.register(Box::new(hash_queue_depth.clone()))?;
        let audit_dropped = IntCounter::new(
            "authauth_audit_events_dropped_total",
            "Audit events that never reached the database (the queue was full, or shutdown came first); each is still in the log.",
        )?;
        registry.register(Box::new(audit_dropped.clone()))?;
        Ok(Metrics(Arc::new(Inner {
            http_requests: counter(
                &registry,
                "authauth_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
                &["route", "method", "status"],
            )?,
            http_duration: histogram(
                &registry,
                "authauth_http_request_duration_seconds",
                "Time to answer an HTTP request, by route template.",
                &["route"],
            )?,
            session_checks: {
                let family = counter(
                    &registry,
                    "authauth_session_checks_total",
                    "Requests whose session was checked, by outcome.",
                    &["outcome"],
                )?;
                CheckOutcome::ALL
                    .iter()
                    .map(|o| family.get_metric_with_label_values(&[o.as_str()]))
                    .collect::<prometheus::Result<_>>()?
            },
            sessions_created: counter(
                &registry,
                "authauth_sessions_created_total",
                "Sessions created, by sign-in method.",
                &["method"],
            )?,
            sessions_ended: counter(
                &registry,
                "authauth_sessions_ended_total",
                "Sessions ended before their expiry, by reason.",
                &["reason"],
            )?,
            sign_ins: counter(
                &registry,
                "authauth_sign_ins_total",
                "Sign-in attempts, by method and outcome.",
                &["method", "outcome"],
            )?,
            store_duration: histogram(
                &registry,
                "authauth_store_operation_duration_seconds",
                "Time of a session store operation, by store and operation.",
                &["store", "op"],
            )?,
            sessions_rotated,
            webhook_deliveries: counter(
                &registry,
                "authauth_webhook_deliveries_total",
                "Webhook delivery attempts, by outcome: delivered, retry (failed, will be tried again), given_up.",
                &["outcome"],
            )?,
            mail: counter(
                &registry,
                "authauth_mail_total",
                "E-mail sending attempts, by message kind and outcome: sent, retry (failed, will be tried again), given_up, dropped (the queue was full).",
                &["kind", "outcome"],
            )?,
            hash_duration: histogram(
                &registry,
                "authauth_password_hash_duration_seconds",
                "Time one argon2id computation took on a hashing thread: op hash (a new password) or verify (a sign-in or re-authentication, unknown accounts included).",
                &["op"],
            )?,
            oidc_metadata_fetches: counter(
                &registry,
                "authauth_oidc_metadata_fetches_total",
                "Fetches of an OpenID provider's discovery document and signing keys, by provider and outcome (ok, failed): at most one per START_REFRESH for sign-in starts, one per hour otherwise, and one per 10 s for an unknown signing key.",
                &["provider", "outcome"],
            )?,
            hash_queue_depth,
            audit_dropped,
            registry,
        })))
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn http_request(&self, route: &str, method: &Method, status: &str, took: Duration) {
        self.http_requests
            .with_label_values(&[route, method_label(method), status])
            .inc();
        self.http_duration.with_label_values(&[route]).observe(took);
    }

    /// The series of one operation, for a caller that knows it in advance (the operations the
    /// edge calls directly) and resolves them once instead of looking them up by their labels
    /// on every request: its duration histogram (which exists from then on, at zero) and its
    /// request counter for each status in `statuses` (made on the first request answered so).
    pub fn http_route(&self, route: &str, method: &Method, statuses: &[u16]) -> RouteMetrics {
        let mut statuses = statuses.to_vec();
        statuses.sort_unstable();
        statuses.dedup();
        RouteMetrics {
            route: route.to_owned(),
            method: method.clone(),
            duration: self.http_duration.with_label_values(&[route]),
            by_status: statuses.into_iter().map(|s| (s, OnceLock::new())).collect(),
        }
    }

    /// One fetch of a provider's metadata and keys, successful or not.
    pub fn oidc_metadata_fetch(&self, provider: &str, ok: bool) {
        self.oidc_metadata_fetches
            .with_label_values(&[provider, if ok { "ok" } else { "failed" }])
            .inc();
    }

    pub fn session_check(&self, outcome: CheckOutcome) {
        if let Some(c) = self.session_checks.get(outcome as usize) {
            c.inc();
        }
    }

    pub fn session_created(&self, method: &str) {
        self.sessions_created.with_label_values(&[method]).inc();
    }

    pub fn session_rotated(&self) {
        self.sessions_rotated.inc();
    }

    pub fn sessions_ended(&self, reason: &str, count: usize) {
        self.sessions_ended
            .with_label_values(&[reason])
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    pub fn sign_in(&self, method: &str, outcome: &str) {
        self.sign_ins.with_label_values(&[method, outcome]).inc();
    }

    pub fn store_operation(&self, store: &str, op: &str, took: Duration) {
        self.store_timer(store, op).observe(took);
    }

    /// The histogram of one store operation, for a caller that resolves it once and observes
    /// it on every request.
    pub fn store_timer(&self, store: &str, op: &str) -> Histogram {
        self.store_duration.with_label_values(&[store, op])
    }

    /// The hashing queue: one more waiting or running (`+1`), one done (`-1`).
    pub fn hash_queue(&self, delta: i64) {
        self.hash_queue_depth.add(delta);
    }

    /// One argon2id computation: `hash` or `verify`.
    pub fn password_hash(&self, op: &str, took: Duration) {
        self.hash_duration.with_label_values(&[op]).observe(took);
    }

    /// One webhook delivery attempt: `delivered`, `retry` or `given_up`.
    pub fn webhook_delivery(&self, outcome: &str) {
        self.webhook_deliveries.with_label_values(&[outcome]).inc();
    }

    /// One e-mail sending attempt (see `mail`): `sent`, `retry`, `given_up` or `dropped`.
    pub fn mail(&self, kind: &str, outcome: &str) {
        self.mail.with_label_values(&[kind, outcome]).inc();
    }

    /// Audit events lost to the database (see `audit`).
    pub fn audit_dropped(&self, count: u64) {
        self.audit_dropped.inc_by(count);
    }
}

/// The request series of one operation, resolved once ([`Metrics::http_route`]).
pub struct RouteMetrics {
    route: String,
    method: Method,
    duration: Histogram,
    /// The counter of each status the operation documents, once it has answered with it.
    by_status: Vec<(u16, OnceLock<Counter>)>,
}

impl RouteMetrics {
    /// The route label.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// One request answered by this operation. A status it does not document is counted all
    /// the same, looked up by its labels.
    pub fn request(&self, metrics: &Metrics, status: StatusCode, took: Duration) {
        let series = || {
            metrics.http_requests.with_label_values(&[
                self.route.as_str(),
                self.method.as_str(),
                status.as_str(),
            ])
        };
        match self.by_status.iter().find(|(s, _)| *s == status.as_u16()) {
            Some((_, counter)) => counter.get_or_init(series).inc(),
            None => series().inc(),
        }
        self.duration.observe(took);
    }
}

/// The `method` label of a request: a method HTTP defines (RFC 9110, and `PATCH`), else
/// `other`. A client may send any token as its method, even to a path authauth does not serve,
/// and each new label value would be a series of its own, kept for the life of the process.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Metrics;

    #[test]
    fn every_metric_is_exported_with_its_labels() {
        let m = Metrics::new().unwrap();
        m.http_request(
            "/auth/me",
            &poem::http::Method::GET,
            "200",
            Duration::from_millis(1),
        );
        m.session_check(super::CheckOutcome::Valid);
        m.session_created("password");
        m.session_rotated();
        m.sessions_ended("logout", 2);
        m.sign_in("password", "success");
        m.store_operation("redis", "load", Duration::from_micros(300));
        m.hash_queue(1);
        m.password_hash("verify", Duration::from_millis(30));
        let text = m.render();
        for line in [
            r#"authauth_http_requests_total{method="GET",route="/auth/me",status="200"} 1"#,
            r#"authauth_http_request_duration_seconds_count{route="/auth/me"} 1"#,
            r#"authauth_session_checks_total{outcome="valid"} 1"#,
            r#"authauth_sessions_created_total{method="password"} 1"#,
            "authauth_sessions_rotated_total 1",
            r#"authauth_sessions_ended_total{reason="logout"} 2"#,
            r#"authauth_sign_ins_total{method="password",outcome="success"} 1"#,
            r#"authauth_store_operation_duration_seconds_count{op="load",store="redis"} 1"#,
            "authauth_password_hash_queue_depth 1",
            r#"authauth_password_hash_duration_seconds_count{op="verify"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
