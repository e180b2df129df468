//! Web search emulation: the mode and the key sealing search results
//! (one row), and the search providers of the organisation (scope "") and
//! of users (scope the user id).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(WebSearchSettings::Table)
                .if_not_exists()
                .col(ColumnDef::new(WebSearchSettings::Id).integer().not_null().primary_key())
                .col(ColumnDef::new(WebSearchSettings::Mode).string().not_null().default("enabled"))
                // 32 random bytes, sealed with the control plane's key; empty
                // until a replica that can seal creates it.
                .col(ColumnDef::new(WebSearchSettings::ContentKeyEnc).text().not_null().default(""))
                .col(ColumnDef::new(WebSearchSettings::UpdatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(SearchProviders::Table)
                .if_not_exists()
                .col(ColumnDef::new(SearchProviders::Scope).string().not_null().primary_key())
                // Set for a user's provider, so that it goes with the user.
                .col(ColumnDef::new(SearchProviders::UserId).string().null())
                .col(ColumnDef::new(SearchProviders::Kind).string().not_null())
                .col(ColumnDef::new(SearchProviders::Url).text().not_null().default(""))
                .col(ColumnDef::new(SearchProviders::ApiKeyEnc).text().not_null().default(""))
                .col(ColumnDef::new(SearchProviders::MaxResults).integer().not_null().default(0))
                .col(ColumnDef::new(SearchProviders::UpdatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(SearchProviders::Table, SearchProviders::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(SearchProviders::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(WebSearchSettings::Table).if_exists().to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum WebSearchSettings {
    Table,
    Id,
    Mode,
    ContentKeyEnc,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SearchProviders {
    Table,
    Scope,
    UserId,
    Kind,
    Url,
    ApiKeyEnc,
    MaxResults,
    UpdatedAt,
}
