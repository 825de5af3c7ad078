//! The live event feed with the SQL store: the audit table itself, polled by id.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{
    audit::feed::{EventFeed, FeedEvent},
    entities::audit_events,
    session::store::StoreError,
};

/// How often the table is looked at while nothing new is there.
const POLL: Duration = Duration::from_millis(200);
/// How long one read waits for new events.
const WAIT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct SqlFeed(pub DatabaseConnection);

fn unavailable(e: sea_orm::DbErr) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

#[async_trait]
impl EventFeed for SqlFeed {
    /// Nothing to do: the audit writer's rows are the feed.
    async fn publish(&self, _events: &[FeedEvent]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn tail(&self) -> Result<String, StoreError> {
        let last = audit_events::Entity::find()
            .order_by_desc(audit_events::Column::Id)
            .one(&self.0)
            .await
            .map_err(unavailable)?;
        Ok(last.map_or(0, |r| r.id).to_string())
    }

    async fn read_after(&self, cursor: &str) -> Result<(Vec<FeedEvent>, String), StoreError> {
        let after: i64 = cursor
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("`{cursor}` is no feed position").into()))?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let rows = audit_events::Entity::find()
                .filter(audit_events::Column::Id.gt(after))
                .order_by_asc(audit_events::Column::Id)
                .limit(100)
                .all(&self.0)
                .await
                .map_err(unavailable)?;
            if let Some(last) = rows.last() {
                let next = last.id.to_string();
                return Ok((rows.iter().map(FeedEvent::from).collect(), next));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok((Vec::new(), cursor.to_string()));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
