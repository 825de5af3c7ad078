//! `users`: one row per person.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The address for display and for writing to: as typed (trimmed), the domain in its
    /// lowercase Unicode form.
    pub email: String,
    /// The identity of the address (`authauth_email`): equal for every spelling of it. Unique;
    /// what lookups, the sign-in throttle, device cookies and provider linking use.
    pub email_canonical: String,
    pub full_name: String,
    pub picture: Option<String>,
    /// PHC string (`$argon2id$…`); `None` for accounts that only sign in with a provider.
    pub password_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub disabled_at: Option<DateTimeUtc>,
    /// When the owner of the address proved it (a verification link, a password reset by
    /// e-mail, or an identity provider that vouches for it); `None`: not yet.
    pub email_verified_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::identities::Entity")]
    Identities,
}

impl Related<super::identities::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Identities.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
