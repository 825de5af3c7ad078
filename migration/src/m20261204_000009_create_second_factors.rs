//! Second factors: an authenticator app (TOTP) per account, its secret sealed with a key
//! derived from the session secret, and single-use recovery codes stored as SHA-256 digests.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum TotpFactors {
    Table,
    UserId,
    SealedSecret,
    CreatedAt,
    ConfirmedAt,
    LastUsedStep,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    CreatedAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TotpFactors::Table)
                    // One authenticator app per account.
                    .col(uuid(TotpFactors::UserId).primary_key())
                    // base64url(nonce ‖ AES-256-GCM ciphertext): never the secret in clear.
                    .col(string_len(TotpFactors::SealedSecret, 200))
                    // Milliseconds since the epoch, like every time below.
                    .col(big_integer(TotpFactors::CreatedAt))
                    // Null while the set-up waits for its first code.
                    .col(big_integer_null(TotpFactors::ConfirmedAt))
                    // The last time step a code was accepted for: no step is accepted twice.
                    .col(big_integer_null(TotpFactors::LastUsedStep))
                    .col(big_integer_null(TotpFactors::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("totp_factors_user")
                            .from(TotpFactors::Table, TotpFactors::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(uuid(RecoveryCodes::Id).primary_key())
                    .col(uuid(RecoveryCodes::UserId))
                    // Hex SHA-256 of the code (80 random bits); the code itself is shown once.
                    .col(string_len(RecoveryCodes::CodeHash, 64))
                    .col(big_integer(RecoveryCodes::CreatedAt))
                    .col(big_integer_null(RecoveryCodes::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("recovery_codes_user")
                            .from(RecoveryCodes::Table, RecoveryCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("recovery_codes_user_code")
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .col(RecoveryCodes::CodeHash)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RecoveryCodes::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(TotpFactors::Table).to_owned())
            .await
    }
}
