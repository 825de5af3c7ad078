//! Accounts: `users` (one row per person) and `identities` (one row per external OpenID account
//! linked to a user, keyed on the provider's `(issuer, subject)` — never on e-mail).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    FullName,
    Picture,
    PasswordHash,
    CreatedAt,
    UpdatedAt,
    DisabledAt,
}

#[derive(DeriveIden)]
enum Identities {
    Table,
    Id,
    UserId,
    Issuer,
    Subject,
    Email,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(string_len(Users::Email, 320))
                    .col(string_len(Users::FullName, 200))
                    .col(text_null(Users::Picture))
                    // Only local (email + password) accounts have a hash.
                    .col(text_null(Users::PasswordHash))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Users::DisabledAt))
                    .to_owned(),
            )
            .await?;

        // E-mail addresses are unique regardless of case. An expression index is the one form
        // both PostgreSQL and SQLite (>= 3.9) accept, and lookups use the same `lower(email)`.
        manager
            .get_connection()
            .execute_unprepared("CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email))")
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Identities::Table)
                    .col(pk_uuid(Identities::Id))
                    .col(uuid(Identities::UserId))
                    .col(string_len(Identities::Issuer, 512))
                    .col(string_len(Identities::Subject, 255))
                    .col(string_len_null(Identities::Email, 320))
                    .col(timestamp_with_time_zone(Identities::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("identities_user_id_fkey")
                            .from(Identities::Table, Identities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("identities_issuer_subject_key")
                    .table(Identities::Table)
                    .col(Identities::Issuer)
                    .col(Identities::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("identities_user_id_idx")
                    .table(Identities::Table)
                    .col(Identities::UserId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Identities::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
