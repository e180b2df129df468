//! SCIM 2.0 provisioning: bearer tokens bound to one identity provider, the
//! SCIM view of the users a provider provisions (one provider claims a
//! user), and its groups with their members.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ScimTokens::Table)
                .if_not_exists()
                .col(ColumnDef::new(ScimTokens::Id).string().not_null().primary_key())
                .col(ColumnDef::new(ScimTokens::IdpId).string().not_null())
                .col(ColumnDef::new(ScimTokens::Name).string().not_null())
                .col(ColumnDef::new(ScimTokens::Prefix).string().not_null())
                .col(ColumnDef::new(ScimTokens::TokenHash).string().not_null().unique_key())
                .col(ColumnDef::new(ScimTokens::CreatedBy).string().not_null())
                .col(ColumnDef::new(ScimTokens::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(ScimTokens::LastUsedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(ScimTokens::Revoked).boolean().not_null().default(false))
                .foreign_key(
                    ForeignKey::create()
                        .from(ScimTokens::Table, ScimTokens::IdpId)
                        .to(IdentityProviders::Table, IdentityProviders::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScimUsers::Table)
                .if_not_exists()
                // The SCIM id is the gateway user's id.
                .col(ColumnDef::new(ScimUsers::UserId).string().not_null().primary_key())
                .col(ColumnDef::new(ScimUsers::IdpId).string().not_null())
                .col(ColumnDef::new(ScimUsers::UserName).string().not_null())
                // userName is unique per provider, case-insensitively.
                .col(ColumnDef::new(ScimUsers::UserNameKey).string().not_null())
                .col(ColumnDef::new(ScimUsers::ExternalId).string().null())
                .col(ColumnDef::new(ScimUsers::GivenName).string().not_null().default(""))
                .col(ColumnDef::new(ScimUsers::FamilyName).string().not_null().default(""))
                // The emails array as the provider sent it.
                .col(ColumnDef::new(ScimUsers::EmailsJson).text().not_null().default("[]"))
                .col(ColumnDef::new(ScimUsers::Version).big_integer().not_null().default(1))
                .col(ColumnDef::new(ScimUsers::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(ScimUsers::UpdatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(ScimUsers::Table, ScimUsers::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ScimUsers::Table, ScimUsers::IdpId)
                        .to(IdentityProviders::Table, IdentityProviders::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("scim_users_idp_user_name")
                .table(ScimUsers::Table)
                .col(ScimUsers::IdpId)
                .col(ScimUsers::UserNameKey)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScimGroups::Table)
                .if_not_exists()
                .col(ColumnDef::new(ScimGroups::Id).string().not_null().primary_key())
                .col(ColumnDef::new(ScimGroups::IdpId).string().not_null())
                .col(ColumnDef::new(ScimGroups::DisplayName).string().not_null())
                .col(ColumnDef::new(ScimGroups::ExternalId).string().null())
                .col(ColumnDef::new(ScimGroups::Version).big_integer().not_null().default(1))
                .col(ColumnDef::new(ScimGroups::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(ScimGroups::UpdatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(ScimGroups::Table, ScimGroups::IdpId)
                        .to(IdentityProviders::Table, IdentityProviders::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScimGroupMembers::Table)
                .if_not_exists()
                .col(ColumnDef::new(ScimGroupMembers::GroupId).string().not_null())
                .col(ColumnDef::new(ScimGroupMembers::UserId).string().not_null())
                .primary_key(Index::create().col(ScimGroupMembers::GroupId).col(ScimGroupMembers::UserId))
                .foreign_key(
                    ForeignKey::create()
                        .from(ScimGroupMembers::Table, ScimGroupMembers::GroupId)
                        .to(ScimGroups::Table, ScimGroups::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ScimGroupMembers::Table, ScimGroupMembers::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("scim_group_members_user")
                .table(ScimGroupMembers::Table)
                .col(ScimGroupMembers::UserId)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ScimGroupMembers::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(ScimGroups::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(ScimUsers::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(ScimTokens::Table).if_exists().to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum IdentityProviders {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ScimTokens {
    Table,
    Id,
    IdpId,
    Name,
    Prefix,
    TokenHash,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    Revoked,
}

#[derive(DeriveIden)]
enum ScimUsers {
    Table,
    UserId,
    IdpId,
    UserName,
    UserNameKey,
    ExternalId,
    GivenName,
    FamilyName,
    EmailsJson,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScimGroups {
    Table,
    Id,
    IdpId,
    DisplayName,
    ExternalId,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScimGroupMembers {
    Table,
    GroupId,
    UserId,
}
