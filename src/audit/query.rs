//! Reading the audit trail (`authauth events list`, `GET /auth/activity`) and the retention
//! purge.

use std::time::Duration;

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::{
    clock::Clock,
    entities::{audit_events, webhook_deliveries},
    session::record::Millis,
};

pub use audit_events::Model as Row;

/// Which events to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user_id: Option<Uuid>,
    pub kind: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Millis>,
    /// Only events older than this id (the next page).
    pub before_id: Option<i64>,
    pub limit: u64,
}

/// The events `filter` selects, newest first.
pub async fn list(db: &DatabaseConnection, filter: &Filter) -> Result<Vec<Row>, DbErr> {
    let mut q = audit_events::Entity::find();
    if let Some(user) = filter.user_id {
        q = q.filter(audit_events::Column::UserId.eq(user));
    }
    if let Some(kind) = &filter.kind {
        q = q.filter(audit_events::Column::EventType.eq(kind.as_str()));
    }
    if let Some(since) = filter.since {
        q = q.filter(audit_events::Column::At.gte(since));
    }
    if let Some(before) = filter.before_id {
        q = q.filter(audit_events::Column::Id.lt(before));
    }
    q.order_by_desc(audit_events::Column::Id)
        .limit(filter.limit)
        .all(db)
        .await
}

/// Deletes the events older than `retention`, and the webhook deliveries made of them (their
/// payloads carry the same user ids, addresses and browsers) once they are done with: delivered,
/// given up, or still pending a whole retry schedule past the retention (a receiver no longer
/// configured, or servers down all that time). One still within its retries — a retention
/// shorter than them, a backlog — stays. Returns how many rows.
pub async fn purge(db: &DatabaseConnection, retention: Duration, now: Millis) -> Result<u64, DbErr> {
    let cutoff = now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let deleted = audit_events::Entity::delete_many()
        .filter(audit_events::Column::At.lt(cutoff))
        .exec(db)
        .await?;
    let deliveries = webhook_deliveries::Entity::delete_many()
        .filter(webhook_deliveries::Column::CreatedAt.lt(cutoff))
        .filter(
            sea_orm::Condition::any()
                .add(webhook_deliveries::Column::DeliveredAt.is_not_null())
                .add(webhook_deliveries::Column::FailedAt.is_not_null())
                .add(
                    webhook_deliveries::Column::CreatedAt
                        .lt(cutoff.saturating_sub(crate::webhooks::outbox::SCHEDULE_MS)),
                ),
        )
        .exec(db)
        .await?;
    Ok(deleted.rows_affected + deliveries.rows_affected)
}

/// Runs [`purge`] every hour for as long as the server runs.
pub fn spawn_retention(db: DatabaseConnection, clock: Clock, retention: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match purge(&db, retention, clock.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, ?retention, "purged audit events past AUDIT_RETENTION"),
                Err(e) => tracing::warn!(error = %e, "cannot purge old audit events"),
            }
            // The tokens of e-mailed links, a day after they expired (kept that long so a late
            // click is told "expired" by the audit trail's neighbour, not "unknown").
            match crate::auth::tokens::purge_expired(&db, clock.now() - 24 * 3600 * 1000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "purged expired link tokens"),
                Err(e) => tracing::warn!(error = %e, "cannot purge expired link tokens"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};

    use super::*;

    const DAY: Millis = 24 * 3600 * 1000;

    /// A delivery made at `created`, next tried at `next`, delivered or given up when said.
    async fn delivery(
        db: &DatabaseConnection,
        name: &str,
        created: Millis,
        next: Millis,
        delivered: Option<Millis>,
        failed: Option<Millis>,
    ) {
        webhook_deliveries::ActiveModel {
            message_id: Set(format!("msg_{name}")),
            url: Set("https://hooks.example/".into()),
            event_type: Set("session.ended".into()),
            payload: Set("{}".into()),
            created_at: Set(created),
            next_attempt_at: Set(next),
            attempts: Set(1),
            last_status: Set(None),
            last_error: Set(None),
            delivered_at: Set(delivered),
            failed_at: Set(failed),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
    }

    /// Past the retention, a delivery goes once it is done with; one still being retried (a
    /// retention shorter than the retries, or `webhooks retry` on an old one) stays.
    #[tokio::test]
    async fn old_deliveries_go_once_done_with_and_one_still_retried_stays() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let now = 100 * DAY;
        let old = now - 2 * DAY;
        delivery(&db, "delivered", old, old, Some(old), None).await;
        delivery(&db, "given-up", old, old, None, Some(old)).await;
        delivery(&db, "abandoned", now - 4 * DAY, old, None, None).await;
        // Still within its retries: coming up, or overdue after servers were down a while.
        delivery(&db, "retrying", old, now + 3600 * 1000, None, None).await;
        delivery(&db, "overdue", old, old, None, None).await;
        delivery(&db, "recent", now - 3600 * 1000, now, Some(now), None).await;
        purge(&db, Duration::from_secs(24 * 3600), now).await.unwrap();
        let mut left: Vec<String> = webhook_deliveries::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.message_id)
            .collect();
        left.sort();
        assert_eq!(left, ["msg_overdue", "msg_recent", "msg_retrying"]);
    }
}
