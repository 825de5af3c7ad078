//! `audit_events`: the audit trail (see `audit`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Milliseconds since the epoch.
    pub at: i64,
    pub event_type: String,
    pub user_id: Option<Uuid>,
    pub session_id: Option<String>,
    pub actor: String,
    pub actor_name: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    /// A JSON object.
    #[sea_orm(column_type = "Text")]
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
