//! `auth_flows`: pre-authentication state of OpenID sign-ins (state, nonce, PKCE verifier,
//! return path) when sessions live in the SQL database; with Redis it lives in Redis. Keyed by
//! SHA-256 of the browser-binding cookie, single use, short-lived.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuthFlows {
    Table,
    Key,
    Value,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthFlows::Table)
                    .col(string_len(AuthFlows::Key, 64).primary_key())
                    .col(text(AuthFlows::Value))
                    // Milliseconds since the epoch.
                    .col(big_integer(AuthFlows::ExpiresAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuthFlows::Table).to_owned())
            .await
    }
}
