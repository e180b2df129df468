//! Configuration distribution v2 and a highly available control plane: the
//! configuration revision and its change log, the fleet registry shared by
//! every replica, leases for singleton work, and the shared login throttle.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One row. Every transaction that changes what data planes serve
        // increments `revision` (the row lock orders concurrent writers, so
        // revisions commit in order) and logs what it touched.
        m.create_table(
            Table::create()
                .table(ConfigState::Table)
                .if_not_exists()
                .col(ColumnDef::new(ConfigState::Id).integer().not_null().primary_key())
                .col(ColumnDef::new(ConfigState::Epoch).string().not_null().default(""))
                .col(ColumnDef::new(ConfigState::Revision).big_integer().not_null().default(0))
                .to_owned(),
        )
        .await?;
        let seed = Query::insert()
            .into_table(ConfigState::Table)
            .columns([ConfigState::Id, ConfigState::Epoch, ConfigState::Revision])
            .values_panic([1.into(), "".into(), 0.into()])
            .on_conflict(OnConflict::column(ConfigState::Id).do_nothing().to_owned())
            .to_owned();
        m.exec_stmt(seed).await?;

        m.create_table(
            Table::create()
                .table(ConfigChanges::Table)
                .if_not_exists()
                .col(ColumnDef::new(ConfigChanges::Revision).big_integer().not_null())
                .col(ColumnDef::new(ConfigChanges::Kind).string().not_null())
                .col(ColumnDef::new(ConfigChanges::Name).string().not_null())
                .col(ColumnDef::new(ConfigChanges::At).timestamp_with_time_zone().not_null())
                .primary_key(
                    Index::create().col(ConfigChanges::Revision).col(ConfigChanges::Kind).col(ConfigChanges::Name),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Dataplanes::Table)
                .if_not_exists()
                .col(ColumnDef::new(Dataplanes::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Dataplanes::Address).string().not_null().default(""))
                .col(ColumnDef::new(Dataplanes::Replica).string().not_null())
                .col(ColumnDef::new(Dataplanes::Connection).string().not_null())
                .col(ColumnDef::new(Dataplanes::ConnectedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Dataplanes::LeaseUntil).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Dataplanes::Epoch).string().not_null().default(""))
                .col(ColumnDef::new(Dataplanes::AckedRevision).big_integer().not_null().default(0))
                .col(ColumnDef::new(Dataplanes::NackedRevision).big_integer().not_null().default(0))
                .col(ColumnDef::new(Dataplanes::NackError).text().not_null().default(""))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Leases::Table)
                .if_not_exists()
                .col(ColumnDef::new(Leases::Name).string().not_null().primary_key())
                .col(ColumnDef::new(Leases::Holder).string().not_null())
                .col(ColumnDef::new(Leases::ExpiresAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(LoginFailures::Table)
                .if_not_exists()
                .col(ColumnDef::new(LoginFailures::Username).string().not_null().primary_key())
                .col(ColumnDef::new(LoginFailures::Failures).integer().not_null().default(0))
                .col(ColumnDef::new(LoginFailures::LastAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            LoginFailures::Table.into_iden(),
            Leases::Table.into_iden(),
            Dataplanes::Table.into_iden(),
            ConfigChanges::Table.into_iden(),
            ConfigState::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ConfigState {
    Table,
    Id,
    Epoch,
    Revision,
}

#[derive(DeriveIden)]
enum ConfigChanges {
    Table,
    Revision,
    Kind,
    Name,
    At,
}

#[derive(DeriveIden)]
enum Dataplanes {
    Table,
    Id,
    Address,
    Replica,
    Connection,
    ConnectedAt,
    LeaseUntil,
    Epoch,
    AckedRevision,
    NackedRevision,
    NackError,
}

#[derive(DeriveIden)]
enum Leases {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    Username,
    Failures,
    LastAt,
}
