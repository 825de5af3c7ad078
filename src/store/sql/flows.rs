//! Pending OpenID sign-ins in the `auth_flows` table.

use async_trait::async_trait;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::SqlBackend;
use crate::{
    auth::flows::FlowStore,
    entities::auth_flows,
    session::{record::Millis, store::StoreError},
};

#[derive(Clone)]
pub struct SqlFlows(pub SqlBackend);

#[async_trait]
impl FlowStore for SqlFlows {
    async fn put(&self, key: &str, value: &str, ttl: Millis, now: Millis) -> Result<(), StoreError> {
        auth_flows::Entity::insert(auth_flows::ActiveModel {
            key: Set(key.to_string()),
            value: Set(value.to_string()),
            expires_at: Set(now.saturating_add(ttl)),
        })
        .exec(&self.0.db)
        .await?;
        Ok(())
    }

    async fn take(&self, key: &str, now: Millis) -> Result<Option<String>, StoreError> {
        let db = &self.0.db;
        let Some(row) = auth_flows::Entity::find_by_id(key.to_string()).one(db).await? else {
            return Ok(None);
        };
        // The `DELETE` decides: of two callers that read the row, only one deletes it.
        let deleted = auth_flows::Entity::delete_many()
            .filter(auth_flows::Column::Key.eq(key))
            .exec(db)
            .await?
            .rows_affected;
        Ok((deleted == 1 && row.expires_at > now).then_some(row.value))
    }
}
