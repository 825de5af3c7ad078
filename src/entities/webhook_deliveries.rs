//! `webhook_deliveries`: the webhook outbox (see `webhooks`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub message_id: String,
    pub url: String,
    pub event_type: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// Milliseconds since the epoch, like every time below.
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub failed_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
