//! `sessions`: the SQL session store's table (see `session::sql`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// base64url SHA-256 of the token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub public_id: String,
    pub user_id: Uuid,
    /// `A`, `R` or `X` (see `session::record::Stored`).
    pub state: String,
    /// The encoded `Stored` entry.
    #[sea_orm(column_type = "Text")]
    pub value: String,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
