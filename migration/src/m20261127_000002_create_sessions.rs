//! `sessions`: the SQL session store (the embedded default; unused when sessions live in
//! Redis). Keyed by SHA-256 of the token — the raw token is never stored.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    TokenHash,
    PublicId,
    UserId,
    State,
    Value,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string_len(Sessions::TokenHash, 64).primary_key())
                    .col(string_len(Sessions::PublicId, 32))
                    .col(uuid(Sessions::UserId))
                    // `A` active, `R` rotated (in grace), `X` revoked (tombstone).
                    .col(char_len(Sessions::State, 1))
                    .col(text(Sessions::Value))
                    // Milliseconds since the epoch; rows past it are dead and purged.
                    .col(big_integer(Sessions::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("sessions_user_id_idx", Sessions::UserId),
            ("sessions_public_id_idx", Sessions::PublicId),
            ("sessions_expires_at_idx", Sessions::ExpiresAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Sessions::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}
