//! `webhook_deliveries`: the durable outbox of session-lifecycle webhooks. A row is written
//! before the audit event it announces, once per receiver (unique: written again, it is not
//! added twice), and stays until it is delivered (`delivered_at`) or given up (`failed_at`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    MessageId,
    Url,
    EventType,
    Payload,
    CreatedAt,
    NextAttemptAt,
    Attempts,
    LastStatus,
    LastError,
    DeliveredAt,
    FailedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(big_pk_auto(WebhookDeliveries::Id))
                    // `webhook-id`: the same on every attempt, so receivers can drop repeats.
                    .col(string_len(WebhookDeliveries::MessageId, 64))
                    .col(string_len(WebhookDeliveries::Url, 2048))
                    .col(string_len(WebhookDeliveries::EventType, 64))
                    .col(text(WebhookDeliveries::Payload))
                    // Milliseconds since the epoch.
                    .col(big_integer(WebhookDeliveries::CreatedAt))
                    .col(big_integer(WebhookDeliveries::NextAttemptAt))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(integer_null(WebhookDeliveries::LastStatus))
                    .col(string_len_null(WebhookDeliveries::LastError, 512))
                    .col(big_integer_null(WebhookDeliveries::DeliveredAt))
                    .col(big_integer_null(WebhookDeliveries::FailedAt))
                    .to_owned(),
            )
            .await?;
        // One delivery per event and receiver, however often the writer tries.
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_message_url")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::MessageId)
                    .col(WebhookDeliveries::Url)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // What is due: the delivery worker's query.
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::DeliveredAt)
                    .col(WebhookDeliveries::FailedAt)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await
    }
}
