use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().not_null().primary_key().to_owned()
}
fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().not_null().default("").to_owned()
}
fn text_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().null().to_owned()
}
fn time(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().to_owned()
}
fn time_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().to_owned()
}
fn count(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().default(0).to_owned()
}
fn flag(col: impl IntoIden, default: bool) -> ColumnDef {
    ColumnDef::new(col).boolean().not_null().default(default).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(id(Users::Id))
                .col(text_null(Users::Email).unique_key().to_owned())
                .col(text_null(Users::Subject).unique_key().to_owned())
                .col(text(Users::DisplayName))
                .col(text(Users::Role))
                .col(text(Users::Status))
                .col(text_null(Users::PasswordHash))
                .col(time(Users::CreatedAt))
                .col(time(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Teams::Table)
                .if_not_exists()
                .col(id(Teams::Id))
                .col(text(Teams::Name).unique_key().to_owned())
                .col(text(Teams::Description))
                .col(count(Teams::MemberRpm))
                .col(count(Teams::MemberTpm))
                .col(time(Teams::CreatedAt))
                .col(time(Teams::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TeamMembers::Table)
                .if_not_exists()
                .col(ColumnDef::new(TeamMembers::TeamId).string().not_null())
                .col(ColumnDef::new(TeamMembers::UserId).string().not_null())
                .col(time(TeamMembers::CreatedAt))
                .primary_key(Index::create().col(TeamMembers::TeamId).col(TeamMembers::UserId))
                .foreign_key(
                    ForeignKey::create()
                        .from(TeamMembers::Table, TeamMembers::TeamId)
                        .to(Teams::Table, Teams::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(TeamMembers::Table, TeamMembers::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .if_not_exists()
                .col(id(ApiKeys::Id))
                .col(text(ApiKeys::Name))
                .col(text(ApiKeys::Prefix))
                .col(text(ApiKeys::KeyHash).unique_key().to_owned())
                .col(ColumnDef::new(ApiKeys::UserId).string().not_null())
                .col(text_null(ApiKeys::TeamId))
                .col(text(ApiKeys::Status))
                .col(count(ApiKeys::Rpm))
                .col(count(ApiKeys::Tpm))
                .col(time(ApiKeys::CreatedAt))
                .col(time(ApiKeys::UpdatedAt))
                .col(time_null(ApiKeys::LastUsedAt))
                .col(time_null(ApiKeys::ExpiresAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiKeys::Table, ApiKeys::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiKeys::Table, ApiKeys::TeamId)
                        .to(Teams::Table, Teams::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_api_keys_user")
                .table(ApiKeys::Table)
                .col(ApiKeys::UserId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiTokens::Table)
                .if_not_exists()
                .col(id(ApiTokens::Id))
                .col(text(ApiTokens::Name))
                .col(text(ApiTokens::Prefix))
                .col(text(ApiTokens::TokenHash).unique_key().to_owned())
                .col(ColumnDef::new(ApiTokens::UserId).string().not_null())
                .col(flag(ApiTokens::Revoked, false))
                .col(time(ApiTokens::CreatedAt))
                .col(time_null(ApiTokens::LastUsedAt))
                .col(time_null(ApiTokens::ExpiresAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiTokens::Table, ApiTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Models::Table)
                .if_not_exists()
                .col(id(Models::Id))
                .col(text(Models::AnthropicId).unique_key().to_owned())
                .col(text(Models::BedrockId))
                .col(text(Models::DisplayName))
                .col(flag(Models::Listed, true))
                .col(time(Models::CreatedAt))
                .col(time(Models::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Endpoints::Table)
                .if_not_exists()
                .col(id(Endpoints::Id))
                .col(text(Endpoints::Name).unique_key().to_owned())
                .col(text(Endpoints::Region))
                .col(text(Endpoints::RoleArn))
                .col(flag(Endpoints::Enabled, true))
                .col(ColumnDef::new(Endpoints::Priority).integer().not_null().default(0))
                .col(time(Endpoints::CreatedAt))
                .col(time(Endpoints::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Settings::Table)
                .if_not_exists()
                .col(ColumnDef::new(Settings::Key).string().not_null().primary_key())
                .col(ColumnDef::new(Settings::Value).text().not_null())
                .col(time(Settings::UpdatedAt))
                .to_owned(),
        )
        .await?;

        // Never exposed through the API (signing keys and the like).
        m.create_table(
            Table::create()
                .table(SystemSecrets::Table)
                .if_not_exists()
                .col(ColumnDef::new(SystemSecrets::Name).string().not_null().primary_key())
                .col(ColumnDef::new(SystemSecrets::Value).text().not_null())
                .col(time(SystemSecrets::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .if_not_exists()
                .col(ColumnDef::new(AuditLog::Id).big_integer().not_null().auto_increment().primary_key())
                .col(time(AuditLog::At))
                .col(text(AuditLog::Actor))
                .col(text(AuditLog::Action))
                .col(text(AuditLog::ResourceType))
                .col(text(AuditLog::ResourceId))
                .col(ColumnDef::new(AuditLog::BeforeJson).text().null())
                .col(ColumnDef::new(AuditLog::AfterJson).text().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_audit_resource")
                .table(AuditLog::Table)
                .col(AuditLog::ResourceType)
                .col(AuditLog::ResourceId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            AuditLog::Table.into_iden(),
            SystemSecrets::Table.into_iden(),
            Settings::Table.into_iden(),
            Endpoints::Table.into_iden(),
            Models::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            TeamMembers::Table.into_iden(),
            Teams::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Subject,
    DisplayName,
    Role,
    Status,
    PasswordHash,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
    Name,
    Description,
    MemberRpm,
    MemberTpm,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TeamMembers {
    Table,
    TeamId,
    UserId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    Prefix,
    KeyHash,
    UserId,
    TeamId,
    Status,
    Rpm,
    Tpm,
    CreatedAt,
    UpdatedAt,
    LastUsedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    Name,
    Prefix,
    TokenHash,
    UserId,
    Revoked,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Models {
    Table,
    Id,
    AnthropicId,
    BedrockId,
    DisplayName,
    Listed,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Id,
    Name,
    Region,
    RoleArn,
    Enabled,
    Priority,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SystemSecrets {
    Table,
    Name,
    Value,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    ResourceType,
    ResourceId,
    BeforeJson,
    AfterJson,
}
