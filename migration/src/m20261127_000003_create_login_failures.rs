//! `login_failures`: failed-login counters for brute-force throttling when sessions live in the
//! SQL database (with Redis, the counters live in Redis).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    Key,
    Count,
    WindowEndsAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginFailures::Table)
                    // A hash of the account or client address, never the address itself.
                    .col(string_len(LoginFailures::Key, 128).primary_key())
                    .col(big_integer(LoginFailures::Count))
                    .col(big_integer(LoginFailures::WindowEndsAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginFailures::Table).to_owned())
            .await
    }
}
