//! E-mail verification, password reset by e-mail and "this wasn't me" links: `users` learns when
//! its address was verified, and `account_tokens` holds the links' tokens — only as SHA-256
//! digests, so a reader of the database learns nothing that opens a link.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    EmailVerifiedAt,
}

#[derive(DeriveIden)]
enum AccountTokens {
    Table,
    Id,
    UserId,
    Purpose,
    TokenHash,
    Email,
    SessionId,
    Detail,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(timestamp_with_time_zone_null(Users::EmailVerifiedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AccountTokens::Table)
                    .col(uuid(AccountTokens::Id).primary_key())
                    .col(uuid(AccountTokens::UserId))
                    // `verify_email`, `reset_password`, `report_sign_in`.
                    .col(string_len(AccountTokens::Purpose, 32))
                    // Hex SHA-256 of the token; the token itself is only ever in the e-mail.
                    .col(string_len(AccountTokens::TokenHash, 64).unique_key())
                    // The address the link was sent to (a verification proves exactly that one).
                    .col(string_len(AccountTokens::Email, 320))
                    // For `report_sign_in`: the session the alert is about.
                    .col(string_len_null(AccountTokens::SessionId, 64))
                    // For `report_sign_in`: when, from which device and network (JSON).
                    .col(text_null(AccountTokens::Detail))
                    // Milliseconds since the epoch, like every time below.
                    .col(big_integer(AccountTokens::CreatedAt))
                    .col(big_integer(AccountTokens::ExpiresAt))
                    .col(big_integer_null(AccountTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("account_tokens_user")
                            .from(AccountTokens::Table, AccountTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A user's outstanding tokens of one kind: what using one of them ends.
        manager
            .create_index(
                Index::create()
                    .name("account_tokens_user_purpose")
                    .table(AccountTokens::Table)
                    .col(AccountTokens::UserId)
                    .col(AccountTokens::Purpose)
                    .to_owned(),
            )
            .await?;
        // The purge of expired tokens.
        manager
            .create_index(
                Index::create()
                    .name("account_tokens_expires_at")
                    .table(AccountTokens::Table)
                    .col(AccountTokens::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AccountTokens::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::EmailVerifiedAt)
                    .to_owned(),
            )
            .await
    }
}
