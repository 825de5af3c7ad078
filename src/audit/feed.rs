//! The live feed of audit events that `authauth sessions watch` follows: from every server as
//! it happens. With Redis it is a capped stream every server appends to (so it keeps working
//! while the database is away); with the SQL store it is the audit table itself, polled.
//!
//! The feed is best effort: a feed that cannot be written loses live lines, never audit rows.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Event;
use crate::session::{record::datetime, store::StoreError};

/// An event as the feed carries it (and `sessions watch --json` prints it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedEvent {
    pub at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub actor: String,
    pub operator: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
}

impl From<&Event> for FeedEvent {
    fn from(e: &Event) -> Self {
        FeedEvent {
            at: datetime(e.at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            kind: e.kind.to_string(),
            user_id: e.user_id.map(|u| u.to_string()),
            session_id: e.session_id.clone(),
            actor: e.actor.kind().to_string(),
            operator: e.actor.name().map(str::to_string),
            ip: e.ip.clone(),
            user_agent: e.user_agent.clone(),
            reason: e.reason.clone(),
            request_id: e.request_id.clone(),
            detail: serde_json::Value::Object(e.detail.clone()),
        }
    }
}

impl From<&super::query::Row> for FeedEvent {
    fn from(r: &super::query::Row) -> Self {
        FeedEvent {
            at: datetime(r.at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            kind: r.event_type.clone(),
            user_id: r.user_id.map(|u| u.to_string()),
            session_id: r.session_id.clone(),
            actor: r.actor.clone(),
            operator: r.actor_name.clone(),
            ip: r.ip.clone(),
            user_agent: r.user_agent.clone(),
            reason: r.reason.clone(),
            request_id: r.request_id.clone(),
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// Where live events go and are read from.
#[async_trait]
pub trait EventFeed: Send + Sync {
    /// Appends `events`.
    async fn publish(&self, events: &[FeedEvent]) -> Result<(), StoreError>;

    /// The feed's current end: reading after it returns only what comes next.
    async fn tail(&self) -> Result<String, StoreError>;

    /// The events after `cursor`, waiting up to about a second for some; and the new cursor.
    async fn read_after(&self, cursor: &str) -> Result<(Vec<FeedEvent>, String), StoreError>;
}
