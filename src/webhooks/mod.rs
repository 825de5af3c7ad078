//! Session-lifecycle webhooks: `session.created`, `session.ended` (with the reason),
//! `password.changed` and `user.disabled`, POSTed as JSON to every `WEBHOOK_URLS` receiver and
//! signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`:
//! HMAC-SHA256 with `WEBHOOK_SECRET`, by the `standardwebhooks` crate).
//!
//! Durable and never in the way: the audit writer adds one outbox row per receiver before the
//! event's audit row (keyed by event and receiver, so writing it again adds nothing), so an
//! event in the audit trail is in the outbox too (and while the database is away, both wait in
//! the writer's memory like any audit event). One delivery task per
//! receiver in every server sends what is due, retries with backoff, and gives up after a day
//! and a half; every
//! attempt of one event carries the same `webhook-id` (at-least-once, idempotent by id).

pub mod deliver;
pub mod outbox;

use std::sync::Arc;

use sea_orm::ActiveValue::{NotSet, Set};
use serde::Serialize;

use crate::{
    audit::{feed::FeedEvent, kind, Event},
    config::WebhookSettings,
    entities::webhook_deliveries,
};

/// The event types sent to receivers.
pub const KINDS: [&str; 5] = [
    kind::SESSION_CREATED,
    kind::SESSION_ENDED,
    kind::PASSWORD_CHANGED,
    kind::PASSWORD_RESET,
    kind::USER_DISABLED,
];

/// What a receiver gets: the Standard Webhooks payload shape.
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: &'a str,
    data: &'a FeedEvent,
}

/// The receivers and the signing key. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks(Arc<Inner>);

struct Inner {
    urls: Vec<String>,
    signer: standardwebhooks::Webhook,
    /// Rung when new deliveries are in the outbox.
    wake: tokio::sync::Notify,
}

impl Webhooks {
    /// `None` when no receiver is configured.
    pub fn from_settings(settings: Option<&WebhookSettings>) -> Option<Webhooks> {
        use secrecy::ExposeSecret;
        let settings = settings?;
        // Validated with the configuration.
        let signer = standardwebhooks::Webhook::new(settings.secret.expose_secret()).ok()?;
        Some(Webhooks(Arc::new(Inner {
            urls: settings.urls.iter().map(|u| u.to_string()).collect(),
            signer,
            wake: tokio::sync::Notify::new(),
        })))
    }

    /// Tells this server's delivery tasks that new deliveries are waiting.
    pub fn wake(&self) {
        self.0.wake.notify_waiters();
    }

    /// The outbox rows for `events`: one per receiver for each event of a sent type.
    pub fn outbox_rows(&self, events: &[Event]) -> Vec<webhook_deliveries::ActiveModel> {
        let mut rows = Vec::new();
        for event in events.iter().filter(|e| KINDS.contains(&e.kind)) {
            let data = FeedEvent::from(event);
            let body = serde_json::to_string(&Payload {
                kind: event.kind,
                timestamp: &data.at,
                data: &data,
            })
            .unwrap_or_default();
            let message_id = format!("msg_{}", event.id.simple());
            for url in &self.0.urls {
                rows.push(webhook_deliveries::ActiveModel {
                    id: NotSet,
                    message_id: Set(message_id.clone()),
                    url: Set(url.clone()),
                    event_type: Set(event.kind.to_string()),
                    payload: Set(body.clone()),
                    created_at: Set(event.at),
                    next_attempt_at: Set(event.at),
                    attempts: Set(0),
                    last_status: Set(None),
                    last_error: Set(None),
                    delivered_at: Set(None),
                    failed_at: Set(None),
                });
            }
        }
        rows
    }

    /// `webhook-signature` for one attempt.
    fn sign(&self, message_id: &str, timestamp: i64, body: &str) -> Option<String> {
        self.0.signer.sign(message_id, timestamp, body.as_bytes()).ok()
    }
}
