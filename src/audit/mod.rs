//! The audit trail: an append-only record of who did what to which account or session, from
//! where — written for sign-ups, sign-ins (and their failures), session creation, rotation and
//! ending, password changes, account changes and every operator action. Never for a plain
//! authenticated request.
//!
//! Recording never waits for the database: [`Audit::record`] logs the event (the JSON log line
//! is the copy of last resort) and hands it to a bounded in-memory queue; a writer task inserts
//! batches into `audit_events`, and while the database is away it keeps the batch and retries,
//! so a logout or a revocation never fails or waits because auditing cannot write. What does
//! not fit in the queue is dropped and counted (`authauth_audit_events_dropped_total`).
//! [`Audit::close`] flushes on shutdown.

pub mod feed;
pub mod query;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use self::feed::{EventFeed, FeedEvent};
use crate::{
    entities::{audit_events, webhook_deliveries},
    metrics::Metrics,
    session::{record::Millis, service::ClientInfo},
    webhooks::Webhooks,
};

/// Events waiting for the database at most; beyond this they are dropped and counted.
const QUEUE: usize = 10_000;
/// Rows per insert.
const BATCH: usize = 200;
/// The longest wait between two attempts while the database is away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Event types: a stable vocabulary (docs/observability.md).
pub mod kind {
    /// A new account through `POST /auth/signup` (or a first sign-in with a provider).
    pub const USER_SIGNED_UP: &str = "user.signed_up";
    /// An operator created an account (`users create`).
    pub const USER_CREATED: &str = "user.created";
    pub const USER_DISABLED: &str = "user.disabled";
    pub const USER_ENABLED: &str = "user.enabled";
    /// An operator lifted the sign-in throttle (`users unlock`).
    pub const USER_UNLOCKED: &str = "user.unlocked";
    /// `detail.method`; `detail.stage` (`second_factor`, `enrolment`) when the right first
    /// factor starts a sign-in that still waits for its second step.
    pub const SIGN_IN_SUCCEEDED: &str = "sign_in.succeeded";
    /// `detail.failure`: `bad_credentials`, `disabled`, `session_limit`, …
    pub const SIGN_IN_FAILED: &str = "sign_in.failed";
    pub const SIGN_IN_THROTTLED: &str = "sign_in.throttled";
    /// Too many accounts created from one network (no user: none was created).
    pub const SIGN_UP_THROTTLED: &str = "sign_up.throttled";
    /// A provider identity was linked to an existing account (`detail.issuer`).
    pub const IDENTITY_LINKED: &str = "identity.linked";
    pub const SESSION_CREATED: &str = "session.created";
    pub const SESSION_ROTATED: &str = "session.rotated";
    /// `reason`: why (`logout`, `operator`, `password_changed`, …).
    pub const SESSION_ENDED: &str = "session.ended";
    pub const PASSWORD_CHANGED: &str = "password.changed";
    /// An operator sent given-up webhook deliveries again (`webhooks retry`; `detail.count`).
    pub const WEBHOOKS_RETRIED: &str = "webhooks.retried";
    /// A verification link was sent (`detail.by`: `signup`, `resend`).
    pub const EMAIL_VERIFICATION_SENT: &str = "email.verification_sent";
    /// The owner of the address confirmed it with a link.
    pub const EMAIL_VERIFIED: &str = "email.verified";
    /// A password reset was asked for an existing account (`detail.sent`: `link`,
    /// `no_password`, `printed` — an operator's `--print`).
    pub const PASSWORD_RESET_REQUESTED: &str = "password.reset_requested";
    /// A password was reset with an e-mailed link; every session ended (`password_reset`).
    pub const PASSWORD_RESET: &str = "password.reset";
    /// A browser that never signed in to the account did; the owner was mailed.
    pub const SIGN_IN_NEW_DEVICE: &str = "sign_in.new_device";
    /// The owner said "this wasn't me" about a sign-in; its session ended (`reported_by_user`).
    pub const SIGN_IN_REPORTED: &str = "sign_in.reported";
    /// A wrong second-factor code (`detail.factor`: `totp`, `recovery_code`; `detail.during`:
    /// `sign_in`, `reauthentication`, `confirmation`).
    pub const MFA_FAILED: &str = "mfa.failed";
    /// An authenticator app was set up and confirmed.
    pub const MFA_TOTP_ENABLED: &str = "mfa.totp_enabled";
    /// The account's authenticator app was removed by its owner.
    pub const MFA_TOTP_DISABLED: &str = "mfa.totp_disabled";
    /// New recovery codes were issued; the earlier ones no longer work.
    pub const MFA_RECOVERY_CODES_ISSUED: &str = "mfa.recovery_codes_issued";
    /// A recovery code was used (`detail.left`: how many remain).
    pub const MFA_RECOVERY_CODE_USED: &str = "mfa.recovery_code_used";
    /// An operator removed every second factor of the account (`users mfa reset`).
    pub const MFA_RESET: &str = "mfa.reset";
    /// A passkey was registered (`detail.passkey`: its id).
    pub const PASSKEY_ADDED: &str = "mfa.passkey_added";
    /// The owner removed a passkey.
    pub const PASSKEY_REMOVED: &str = "mfa.passkey_removed";
    /// A passkey's signature counter went backwards — a cloned authenticator? The sign-in was
    /// refused.
    pub const PASSKEY_CLONED: &str = "mfa.passkey_cloned";
    /// A session proved its owner again for sensitive operations (`detail.method`).
    pub const SESSION_REAUTHENTICATED: &str = "session.reauthenticated";

    /// Every type, for `events list --type` and the docs.
    pub const ALL: [&str; 31] = [
        USER_SIGNED_UP,
        USER_CREATED,
        USER_DISABLED,
        USER_ENABLED,
        USER_UNLOCKED,
        SIGN_IN_SUCCEEDED,
        SIGN_IN_FAILED,
        SIGN_IN_THROTTLED,
        SIGN_UP_THROTTLED,
        IDENTITY_LINKED,
        SESSION_CREATED,
        SESSION_ROTATED,
        SESSION_ENDED,
        PASSWORD_CHANGED,
        WEBHOOKS_RETRIED,
        EMAIL_VERIFICATION_SENT,
        EMAIL_VERIFIED,
        PASSWORD_RESET_REQUESTED,
        PASSWORD_RESET,
        SIGN_IN_NEW_DEVICE,
        SIGN_IN_REPORTED,
        MFA_FAILED,
        MFA_TOTP_ENABLED,
        MFA_TOTP_DISABLED,
        MFA_RECOVERY_CODES_ISSUED,
        MFA_RECOVERY_CODE_USED,
        MFA_RESET,
        PASSKEY_ADDED,
        PASSKEY_REMOVED,
        PASSKEY_CLONED,
        SESSION_REAUTHENTICATED,
    ];
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The account's own user (or whoever held its session or password).
    User,
    /// An operator at the CLI; their OS login.
    Operator(String),
    /// authauth itself (a session limit, a newer sign-in in the same browser, a linked
    /// identity).
    System,
}

impl Actor {
    /// The actor behind `client`: the operator when the CLI acts, else the user.
    pub fn of(client: &ClientInfo) -> Actor {
        match &client.operator {
            Some(name) => Actor::Operator(name.clone()),
            None => Actor::User,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User => "user",
            Actor::Operator(_) => "operator",
            Actor::System => "system",
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Actor::Operator(name) => Some(name),
            _ => None,
        }
    }
}

/// One audit event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Names the event everywhere it goes (a webhook's `webhook-id` is derived from it), so
    /// writing it again after a failure never makes it a different event.
    pub id: Uuid,
    pub at: Millis,
    pub kind: &'static str,
    pub user_id: Option<Uuid>,
    pub session_id: Option<String>,
    pub actor: Actor,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    /// An event caused from `client` (a request, or the CLI).
    pub fn new(kind: &'static str, client: &ClientInfo, at: Millis) -> Event {
        Event {
            id: Uuid::new_v4(),
            at,
            kind,
            user_id: None,
            session_id: None,
            actor: Actor::of(client),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            reason: None,
            request_id: client.request_id.clone(),
            detail: serde_json::Map::new(),
        }
    }

    pub fn user(mut self, user_id: Uuid) -> Event {
        self.user_id = Some(user_id);
        self
    }

    pub fn session(mut self, public_id: &str) -> Event {
        self.session_id = Some(public_id.to_string());
        self
    }

    pub fn reason(mut self, reason: &str) -> Event {
        self.reason = Some(reason.to_string());
        self
    }

    pub fn by(mut self, actor: Actor) -> Event {
        self.actor = actor;
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Event {
        self.detail.insert(key.to_string(), value.into());
        self
    }

    fn row(self) -> audit_events::ActiveModel {
        audit_events::ActiveModel {
            id: sea_orm::ActiveValue::NotSet,
            at: Set(self.at),
            event_type: Set(self.kind.to_string()),
            user_id: Set(self.user_id),
            session_id: Set(self.session_id),
            actor: Set(self.actor.kind().to_string()),
            actor_name: Set(self.actor.name().map(str::to_string)),
            ip: Set(self.ip),
            user_agent: Set(self.user_agent.map(|ua| ua.chars().take(512).collect())),
            reason: Set(self.reason),
            request_id: Set(self.request_id),
            detail: Set(serde_json::Value::Object(self.detail).to_string()),
        }
    }
}

/// Where events go besides the audit table.
#[derive(Clone)]
pub struct Sinks {
    /// The live feed `sessions watch` follows.
    pub feed: Arc<dyn EventFeed>,
    /// The webhook outbox, written before the audit rows.
    pub webhooks: Option<Webhooks>,
}

/// The audit trail's writer. Cheap to clone.
#[derive(Clone)]
pub struct Audit(Option<Arc<Inner>>);

struct Inner {
    tx: mpsc::Sender<Event>,
    /// A full queue waits for room instead of dropping (the CLI, whose bulk revocations
    /// record an event per session and have nobody waiting on each one).
    waits: bool,
    /// Set once a wait for room timed out: the database is away, stop waiting.
    gave_up: std::sync::atomic::AtomicBool,
    closing: watch::Sender<bool>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    metrics: Metrics,
}

impl Audit {
    /// Starts the writer task on the current runtime, for a server: recording never waits.
    pub fn start(db: DatabaseConnection, sinks: Sinks, metrics: Metrics) -> Audit {
        Audit::spawn(db, sinks, metrics, false)
    }

    /// [`Audit::start`] for an operator command: a full queue makes recording wait, so a bulk
    /// revocation records every session it ends.
    pub fn start_waiting(db: DatabaseConnection, sinks: Sinks, metrics: Metrics) -> Audit {
        Audit::spawn(db, sinks, metrics, true)
    }

    fn spawn(db: DatabaseConnection, sinks: Sinks, metrics: Metrics, waits: bool) -> Audit {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (closing, closed) = watch::channel(false);
        let writer = tokio::spawn(write_batches(db, sinks, rx, closed));
        Audit(Some(Arc::new(Inner {
            tx,
            waits,
            gave_up: std::sync::atomic::AtomicBool::new(false),
            closing,
            writer: Mutex::new(Some(writer)),
            metrics,
        })))
    }

    /// Records nothing: for tools that load fixtures (the benchmark's seeder), which are no
    /// action anyone took. Never used by `serve` or the operator commands.
    pub fn off() -> Audit {
        Audit(None)
    }

    /// Records `event`: logged now, written to the database as soon as it can be. In a server
    /// this never waits.
    pub async fn record(&self, event: Event) {
        let Some(inner) = &self.0 else { return };
        tracing::info!(
            target: "authauth::audit",
            event = event.kind,
            user = event.user_id.map(|u| u.to_string()),
            session = event.session_id.as_deref(),
            actor = event.actor.kind(),
            operator = event.actor.name(),
            reason = event.reason.as_deref(),
            ip = event.ip.as_deref(),
            user_agent = event.user_agent.as_deref(),
            request_id = event.request_id.as_deref(),
            id = %event.id,
            detail = (!event.detail.is_empty())
                .then(|| serde_json::Value::Object(event.detail.clone()).to_string()),
            "audit event"
        );
        use std::sync::atomic::Ordering::Relaxed;
        let event = if inner.waits && !inner.gave_up.load(Relaxed) {
            match tokio::time::timeout(MAX_BACKOFF, inner.tx.reserve()).await {
                Ok(Ok(permit)) => {
                    permit.send(event);
                    return;
                }
                Ok(Err(_)) => event,
                Err(_) => {
                    inner.gave_up.store(true, Relaxed);
                    event
                }
            }
        } else {
            event
        };
        if let Err(e) = inner.tx.try_send(event) {
            inner.metrics.audit_dropped(1);
            let event = match &e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            tracing::warn!(
                target: "authauth::audit",
                event = event.kind,
                "audit queue full or closed; this event is only in the log"
            );
        }
    }

    /// Writes what is queued (within `within`) and stops the writer. Later events are only
    /// logged.
    pub async fn close(&self, within: Duration) {
        let Some(inner) = &self.0 else { return };
        let _ = inner.closing.send(true);
        let writer = inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(mut writer) = writer {
            if tokio::time::timeout(within, &mut writer).await.is_err() {
                writer.abort();
                let left = QUEUE - inner.tx.capacity();
                inner.metrics.audit_dropped(left as u64);
                tracing::warn!(target: "authauth::audit", left, "shutting down with audit events the database did not take");
            }
        }
    }
}

async fn write_batches(
    db: DatabaseConnection,
    sinks: Sinks,
    mut rx: mpsc::Receiver<Event>,
    mut closed: watch::Receiver<bool>,
) {
    let mut batch: Vec<Event> = Vec::new();
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        // Events already in the batch are on the live feed: only what joins now goes there.
        let published = batch.len();
        let closing = *closed.borrow();
        if batch.is_empty() {
            if closing {
                // Whatever is still queued goes in this last round.
                match rx.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => return,
                }
            } else {
                tokio::select! {
                    event = rx.recv() => match event {
                        Some(event) => batch.push(event),
                        None => return,
                    },
                    _ = closed.changed() => continue,
                }
            }
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        // Live first: the database may be away for a while.
        publish(sinks.feed.as_ref(), &batch[published..]).await;
        match insert(&db, &batch, sinks.webhooks.as_ref()).await {
            Ok(deliveries) => {
                if deliveries {
                    if let Some(w) = &sinks.webhooks {
                        w.wake();
                    }
                }
                if failing {
                    tracing::info!(target: "authauth::audit", "the audit trail is written again");
                    failing = false;
                }
                batch.clear();
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(target: "authauth::audit", error = %e, queued = batch.len() + QUEUE - rx.capacity(), "cannot write the audit trail; keeping events in memory and retrying");
                    failing = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = closed.changed(), if !closing => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Appends `events` to the live feed, within a second; a feed that is down loses live lines,
/// never audit rows.
async fn publish(feed: &dyn EventFeed, events: &[Event]) {
    let events: Vec<FeedEvent> = events.iter().map(FeedEvent::from).collect();
    match tokio::time::timeout(Duration::from_secs(1), feed.publish(&events)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(target: "authauth::audit", error = %e.chain(), "cannot append to the live event feed")
        }
        Err(_) => tracing::debug!(target: "authauth::audit", "the live event feed did not answer in time"),
    }
}

/// Webhook deliveries written by one statement: eleven parameters each, well under every
/// backend's limit.
const DELIVERIES_PER_STATEMENT: usize = 1_000;

/// Writes `batch`: its webhook deliveries first, then its audit rows — each one statement, so
/// no lock is held between them. Writing a batch again after a failure is safe: a delivery is
/// keyed by its event and receiver and is never added twice, and the audit rows are written
/// last, all or none. Returns whether there were deliveries.
async fn insert(
    db: &DatabaseConnection,
    batch: &[Event],
    webhooks: Option<&Webhooks>,
) -> Result<bool, sea_orm::DbErr> {
    use sea_orm::sea_query::OnConflict;
    let deliveries = webhooks.map(|w| w.outbox_rows(batch)).unwrap_or_default();
    let any = !deliveries.is_empty();
    if any {
        let once = OnConflict::columns([
            webhook_deliveries::Column::MessageId,
            webhook_deliveries::Column::Url,
        ])
        .do_nothing()
        .to_owned();
        // A statement takes 65,535 parameters at most on PostgreSQL (32,766 on SQLite), and a
        // full batch to many receivers holds more: a batch refused every time would stop the
        // whole trail behind it.
        for rows in deliveries.chunks(DELIVERIES_PER_STATEMENT) {
            webhook_deliveries::Entity::insert_many(rows.to_vec())
                .on_conflict(once.clone())
                .exec_without_returning(db)
                .await?;
        }
    }
    let rows: Vec<_> = batch.iter().cloned().map(Event::row).collect();
    audit_events::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(any)
}

#[cfg(test)]
mod tests {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{EntityTrait, PaginatorTrait};

    use super::*;
    use crate::config::Settings;

    #[tokio::test]
    async fn writing_a_batch_again_adds_no_second_webhook_delivery() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let settings = Settings::from_vars(&[
            ("WEBHOOK_URLS", "http://127.0.0.1:9/a,http://127.0.0.1:9/b"),
            ("WEBHOOK_SECRET", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
        ])
        .unwrap();
        let webhooks = Webhooks::from_settings(settings.webhooks.as_ref()).unwrap();
        let client = ClientInfo::default();
        let batch = vec![
            Event::new(kind::SESSION_ENDED, &client, 1_000).reason("logout"),
            // Not a webhook event: audited only.
            Event::new(kind::SIGN_IN_FAILED, &client, 1_001),
        ];
        assert!(insert(&db, &batch, Some(&webhooks)).await.unwrap());
        // As after a failure between the two statements.
        assert!(insert(&db, &batch, Some(&webhooks)).await.unwrap());
        let deliveries = webhook_deliveries::Entity::find().all(&db).await.unwrap();
        assert_eq!(deliveries.len(), 2, "one per receiver, once");
        assert!(deliveries
            .iter()
            .all(|d| d.message_id == format!("msg_{}", batch[0].id.simple())));
        assert_eq!(audit_events::Entity::find().count(&db).await.unwrap(), 4);
    }

    /// A full batch to thirty receivers is 6,000 deliveries — 66,000 parameters, more than any
    /// backend takes in one statement. Refused every time, it would stop the trail behind it.
    #[tokio::test]
    async fn a_full_batch_to_many_receivers_is_written() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let urls: Vec<String> = (0..30).map(|i| format!("http://127.0.0.1:9/{i}")).collect();
        let settings = Settings::from_vars(&[
            ("WEBHOOK_URLS", urls.join(",").as_str()),
            ("WEBHOOK_SECRET", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
        ])
        .unwrap();
        let webhooks = Webhooks::from_settings(settings.webhooks.as_ref()).unwrap();
        let client = ClientInfo::default();
        let batch: Vec<Event> = (0..BATCH as i64)
            .map(|i| Event::new(kind::SESSION_ENDED, &client, 1_000 + i).reason("logout"))
            .collect();
        assert!(insert(&db, &batch, Some(&webhooks)).await.unwrap());
        assert_eq!(
            webhook_deliveries::Entity::find().count(&db).await.unwrap(),
            30 * BATCH as u64
        );
        assert_eq!(
            audit_events::Entity::find().count(&db).await.unwrap(),
            BATCH as u64
        );
    }
}
