//! Notifications: the outbox of gateway events (written in the transaction
//! of the change that caused each), the destinations they go to, and one
//! delivery per (event, destination) that tracks its attempts.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn ts(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).timestamp_with_time_zone().not_null().to_owned()
}

fn ts_null(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).timestamp_with_time_zone().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(NotificationEvents::Table)
                .if_not_exists()
                .col(ColumnDef::new(NotificationEvents::Id).string().not_null().primary_key())
                .col(ColumnDef::new(NotificationEvents::Type).string().not_null())
                // What makes two writes the same event (a budget crossing,
                // a key's expiry, a minute of refusals): the second is dropped.
                .col(ColumnDef::new(NotificationEvents::DedupeKey).string().not_null().unique_key())
                .col(ColumnDef::new(NotificationEvents::Payload).text().not_null())
                .col(ts(NotificationEvents::OccurredAt))
                .col(ColumnDef::new(NotificationEvents::FannedOut).boolean().not_null().default(false))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_notification_events_fan_out")
                .table(NotificationEvents::Table)
                .col(NotificationEvents::FannedOut)
                .col(NotificationEvents::OccurredAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(NotificationDestinations::Table)
                .if_not_exists()
                .col(ColumnDef::new(NotificationDestinations::Id).string().not_null().primary_key())
                .col(ColumnDef::new(NotificationDestinations::Name).string().not_null().unique_key())
                .col(ColumnDef::new(NotificationDestinations::Kind).string().not_null())
                .col(ColumnDef::new(NotificationDestinations::Target).text().not_null())
                .col(ColumnDef::new(NotificationDestinations::Events).text().not_null().default(""))
                .col(ColumnDef::new(NotificationDestinations::Enabled).boolean().not_null().default(true))
                .col(ColumnDef::new(NotificationDestinations::RoleArn).text().not_null().default(""))
                // Webhook signing secrets, encrypted (AES-256-GCM): they must
                // be read back to sign. The previous one signs too until
                // `previous_secret_until`, so receivers can roll over.
                .col(ColumnDef::new(NotificationDestinations::SecretEnc).text().not_null().default(""))
                .col(ColumnDef::new(NotificationDestinations::PreviousSecretEnc).text().not_null().default(""))
                .col(ts_null(NotificationDestinations::PreviousSecretUntil))
                .col(ColumnDef::new(NotificationDestinations::Failures).integer().not_null().default(0))
                .col(ts_null(NotificationDestinations::BackoffUntil))
                .col(ts_null(NotificationDestinations::FailingSince))
                .col(ColumnDef::new(NotificationDestinations::FailingReported).boolean().not_null().default(false))
                .col(ColumnDef::new(NotificationDestinations::LastError).text().not_null().default(""))
                .col(ts_null(NotificationDestinations::LastSuccessAt))
                .col(ts(NotificationDestinations::CreatedAt))
                .col(ts(NotificationDestinations::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(NotificationDeliveries::Table)
                .if_not_exists()
                .col(ColumnDef::new(NotificationDeliveries::Id).string().not_null().primary_key())
                .col(ColumnDef::new(NotificationDeliveries::EventId).string().not_null())
                .col(ColumnDef::new(NotificationDeliveries::DestinationId).string().not_null())
                .col(ColumnDef::new(NotificationDeliveries::State).string().not_null())
                .col(ColumnDef::new(NotificationDeliveries::Attempts).integer().not_null().default(0))
                .col(ts(NotificationDeliveries::NextAttemptAt))
                // A replica sending it holds it until then; another replica
                // takes it only once the claim lapses.
                .col(ColumnDef::new(NotificationDeliveries::ClaimedBy).string().not_null().default(""))
                .col(ts_null(NotificationDeliveries::ClaimedUntil))
                .col(ColumnDef::new(NotificationDeliveries::LastStatus).integer().not_null().default(0))
                .col(ColumnDef::new(NotificationDeliveries::LastError).text().not_null().default(""))
                .col(ts(NotificationDeliveries::CreatedAt))
                .col(ts(NotificationDeliveries::UpdatedAt))
                .col(ts_null(NotificationDeliveries::DeliveredAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(NotificationDeliveries::Table, NotificationDeliveries::EventId)
                        .to(NotificationEvents::Table, NotificationEvents::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(NotificationDeliveries::Table, NotificationDeliveries::DestinationId)
                        .to(NotificationDestinations::Table, NotificationDestinations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_notification_deliveries_once")
                .table(NotificationDeliveries::Table)
                .col(NotificationDeliveries::EventId)
                .col(NotificationDeliveries::DestinationId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_notification_deliveries_due")
                .table(NotificationDeliveries::Table)
                .col(NotificationDeliveries::DestinationId)
                .col(NotificationDeliveries::State)
                .col(NotificationDeliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum NotificationEvents {
    Table,
    Id,
    Type,
    DedupeKey,
    Payload,
    OccurredAt,
    FannedOut,
}

#[derive(DeriveIden)]
enum NotificationDestinations {
    Table,
    Id,
    Name,
    Kind,
    Target,
    Events,
    Enabled,
    RoleArn,
    SecretEnc,
    PreviousSecretEnc,
    PreviousSecretUntil,
    Failures,
    BackoffUntil,
    FailingSince,
    FailingReported,
    LastError,
    LastSuccessAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum NotificationDeliveries {
    Table,
    Id,
    EventId,
    DestinationId,
    State,
    Attempts,
    NextAttemptAt,
    ClaimedBy,
    ClaimedUntil,
    LastStatus,
    LastError,
    CreatedAt,
    UpdatedAt,
    DeliveredAt,
}
