//! Claude Code's gateway sign-in: the keys the control plane signs gateway
//! access tokens with (public halves go to the data planes), device
//! authorization grants in flight (RFC 8628, shared by every replica),
//! rotating refresh tokens, one-time setup tokens for key-based onboarding,
//! and the managed settings served to signed-in
//! Claude Code sessions.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn ts(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).timestamp_with_time_zone().not_null().to_owned()
}

fn ts_null(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).timestamp_with_time_zone().null().to_owned()
}

fn text(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).text().not_null().default("").to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SigningKeys::Table)
                .if_not_exists()
                .col(ColumnDef::new(SigningKeys::Kid).string().not_null().primary_key())
                // Ed25519: the raw public key, base64url; the PKCS#8 private key, sealed.
                .col(ColumnDef::new(SigningKeys::PublicKey).text().not_null())
                .col(ColumnDef::new(SigningKeys::PrivateEnc).text().not_null())
                .col(ts(SigningKeys::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DeviceGrants::Table)
                .if_not_exists()
                .col(ColumnDef::new(DeviceGrants::Id).string().not_null().primary_key())
                // SHA-256 of the device code and of the normalised user code.
                .col(ColumnDef::new(DeviceGrants::DeviceHash).string().not_null().unique_key())
                .col(ColumnDef::new(DeviceGrants::UserCodeHash).string().not_null().unique_key())
                .col(ColumnDef::new(DeviceGrants::Client).string().not_null())
                .col(ColumnDef::new(DeviceGrants::State).string().not_null())
                .col(ColumnDef::new(DeviceGrants::UserId).string().null())
                .col(ColumnDef::new(DeviceGrants::IntervalSecs).integer().not_null())
                .col(ts_null(DeviceGrants::LastPollAt))
                .col(text(DeviceGrants::Ip))
                .col(ts(DeviceGrants::CreatedAt))
                .col(ts(DeviceGrants::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .if_not_exists()
                .col(ColumnDef::new(RefreshTokens::Id).string().not_null().primary_key())
                .col(ColumnDef::new(RefreshTokens::TokenHash).string().not_null().unique_key())
                // Every rotation of one sign-in shares the family; revoking
                // it ends the sign-in.
                .col(ColumnDef::new(RefreshTokens::FamilyId).string().not_null())
                .col(ColumnDef::new(RefreshTokens::UserId).string().not_null())
                .col(ColumnDef::new(RefreshTokens::KeyId).string().not_null())
                .col(ts(RefreshTokens::CreatedAt))
                .col(ts(RefreshTokens::ExpiresAt))
                .col(ts_null(RefreshTokens::UsedAt))
                .col(ts_null(RefreshTokens::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(RefreshTokens::Table, RefreshTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_refresh_tokens_family")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::FamilyId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(SetupTokens::Table)
                .if_not_exists()
                .col(ColumnDef::new(SetupTokens::Id).string().not_null().primary_key())
                .col(ColumnDef::new(SetupTokens::TokenHash).string().not_null().unique_key())
                // The key made when it is used belongs to this user (and team).
                .col(ColumnDef::new(SetupTokens::UserId).string().not_null())
                .col(ColumnDef::new(SetupTokens::TeamId).string().null())
                .col(ColumnDef::new(SetupTokens::KeyName).string().not_null())
                .col(ColumnDef::new(SetupTokens::CreatedBy).string().not_null())
                .col(ts(SetupTokens::CreatedAt))
                .col(ts(SetupTokens::ExpiresAt))
                .col(ts_null(SetupTokens::UsedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(SetupTokens::Table, SetupTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ManagedSettings::Table)
                .if_not_exists()
                // "" for everyone, or a team id.
                .col(ColumnDef::new(ManagedSettings::Scope).string().not_null().primary_key())
                .col(ColumnDef::new(ManagedSettings::Settings).text().not_null())
                .col(ts(ManagedSettings::UpdatedAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    PublicKey,
    PrivateEnc,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DeviceGrants {
    Table,
    Id,
    DeviceHash,
    UserCodeHash,
    Client,
    State,
    UserId,
    IntervalSecs,
    LastPollAt,
    Ip,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    TokenHash,
    FamilyId,
    UserId,
    KeyId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum SetupTokens {
    Table,
    Id,
    TokenHash,
    UserId,
    TeamId,
    KeyName,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum ManagedSettings {
    Table,
    Scope,
    Settings,
    UpdatedAt,
}
