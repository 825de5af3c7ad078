//! The delivery task every server runs while webhooks are configured.

use std::time::Duration;

use sea_orm::DatabaseConnection;

use super::{outbox, Webhooks};
use crate::{clock::Clock, metrics::Metrics};

/// How often the outbox is looked at when nothing woke the task.
const TICK: Duration = Duration::from_millis(500);
/// The most one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries taken per look.
const BATCH: u64 = 20;

/// Starts the delivery tasks on the current runtime: one per receiver, so a receiver that
/// does not answer (each attempt may take 10 s) never holds up the others.
pub fn spawn(db: DatabaseConnection, webhooks: Webhooks, clock: Clock, metrics: Metrics) {
    let http = match reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        // A receiver answers where it is: following a redirect could hand the event to
        // someone else.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("authauth-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; webhooks are not delivered");
            return;
        }
    };
    for url in webhooks.0.urls.clone() {
        let (db, webhooks, http, clock, metrics) = (
            db.clone(),
            webhooks.clone(),
            http.clone(),
            clock.clone(),
            metrics.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(TICK) => {}
                    () = webhooks.0.wake.notified() => {}
                }
                if let Err(e) = deliver_due(&db, &url, &webhooks, &http, &clock, &metrics).await {
                    tracing::warn!(error = %e, "cannot read the webhook outbox; retrying");
                }
            }
        });
    }
}

/// Sends what is due now to `url`, in order. Returns how many were attempted.
async fn deliver_due(
    db: &DatabaseConnection,
    url: &str,
    webhooks: &Webhooks,
    http: &reqwest::Client,
    clock: &Clock,
    metrics: &Metrics,
) -> Result<usize, sea_orm::DbErr> {
    let mut attempted = 0;
    for d in outbox::due(db, url, clock.now(), BATCH).await? {
        attempted += deliver_one(db, webhooks, http, clock, metrics, d).await?;
    }
    Ok(attempted)
}

/// One attempt at `d`, if no other server took it first. Returns 1 when attempted.
async fn deliver_one(
    db: &DatabaseConnection,
    webhooks: &Webhooks,
    http: &reqwest::Client,
    clock: &Clock,
    metrics: &Metrics,
    d: outbox::Delivery,
) -> Result<usize, sea_orm::DbErr> {
    if !outbox::claim(db, &d, clock.now()).await? {
        return Ok(0);
    }
    let now = clock.now();
    let timestamp = now / 1000;
    let Some(signature) = webhooks.sign(&d.message_id, timestamp, &d.payload) else {
        outbox::attempt_failed(db, &d, None, "cannot sign the payload", now).await?;
        return Ok(1);
    };
    let sent = http
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await;
    let now = clock.now();
    match sent {
        Ok(resp) if resp.status().is_success() => {
            outbox::delivered(db, &d, resp.status().as_u16(), now).await?;
            metrics.webhook_delivery("delivered");
            tracing::info!(id = d.id, webhook_id = %d.message_id, event = %d.event_type, url = %crate::config::redact_url(&d.url), "webhook delivered");
        }
        other => {
            let (status, error) = match other {
                Ok(resp) => (
                    Some(resp.status().as_u16()),
                    format!("answered {}", resp.status()),
                ),
                Err(e) => (None, describe(&e)),
            };
            let gave_up = outbox::attempt_failed(db, &d, status, &error, now).await?;
            metrics.webhook_delivery(if gave_up { "given_up" } else { "retry" });
            if gave_up {
                tracing::error!(id = d.id, webhook_id = %d.message_id, url = %crate::config::redact_url(&d.url), error, "webhook given up after every retry; `authauth webhooks retry` sends it again");
            } else {
                tracing::warn!(id = d.id, webhook_id = %d.message_id, url = %crate::config::redact_url(&d.url), attempt = d.attempts + 1, error, "webhook not delivered; will retry");
            }
        }
    }
    Ok(1)
}

/// What went wrong, without the URL's query (which might carry a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "answered with a redirect"
    } else {
        "request failed"
    };
    let mut out = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
