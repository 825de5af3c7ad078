//! `audit_events`: the append-only audit trail (who did what to which account or session, from
//! where). Rows are only ever inserted, and deleted by the retention purge (`AUDIT_RETENTION`).
//! No foreign key to `users`: the trail outlives what it describes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    EventType,
    UserId,
    SessionId,
    Actor,
    ActorName,
    Ip,
    UserAgent,
    Reason,
    RequestId,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(big_pk_auto(AuditEvents::Id))
                    // Milliseconds since the epoch, like every other time authauth stores.
                    .col(big_integer(AuditEvents::At))
                    .col(string_len(AuditEvents::EventType, 64))
                    .col(uuid_null(AuditEvents::UserId))
                    .col(string_len_null(AuditEvents::SessionId, 64))
                    // `user`, `operator` or `system`; an operator's OS login in `actor_name`.
                    .col(string_len(AuditEvents::Actor, 16))
                    .col(string_len_null(AuditEvents::ActorName, 128))
                    .col(string_len_null(AuditEvents::Ip, 64))
                    .col(string_len_null(AuditEvents::UserAgent, 512))
                    .col(string_len_null(AuditEvents::Reason, 64))
                    .col(string_len_null(AuditEvents::RequestId, 64))
                    // A small JSON object (method, failure kind, operator note…).
                    .col(text(AuditEvents::Detail))
                    .to_owned(),
            )
            .await?;
        // A user's own events, newest first (`GET /auth/activity`, `events list --user`).
        manager
            .create_index(
                Index::create()
                    .name("audit_events_user_id_id")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::UserId)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;
        // `--since` and the retention purge.
        manager
            .create_index(
                Index::create()
                    .name("audit_events_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}
