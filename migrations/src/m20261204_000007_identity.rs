//! Identity: OpenID Connect providers, the IdP subjects linked to users,
//! browser sign-ins in flight, and server-side sessions (revocable, unlike
//! the signed tokens they replace).

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
                .table(IdentityProviders::Table)
                .if_not_exists()
                .col(ColumnDef::new(IdentityProviders::Id).string().not_null().primary_key())
                .col(ColumnDef::new(IdentityProviders::Name).string().not_null().unique_key())
                .col(ColumnDef::new(IdentityProviders::Issuer).text().not_null())
                .col(ColumnDef::new(IdentityProviders::ClientId).text().not_null())
                // Sealed (AES-256-GCM): it must be read back to call the token endpoint.
                .col(text(IdentityProviders::ClientSecretEnc))
                .col(text(IdentityProviders::Scopes))
                .col(text(IdentityProviders::EmailClaim))
                .col(text(IdentityProviders::GroupsClaim))
                .col(text(IdentityProviders::AllowedDomains))
                .col(ColumnDef::new(IdentityProviders::AutoProvision).boolean().not_null().default(true))
                .col(ColumnDef::new(IdentityProviders::DefaultRole).string().not_null().default("member"))
                .col(text(IdentityProviders::AdminGroups))
                // JSON object: IdP group -> team id.
                .col(text(IdentityProviders::TeamMappings))
                .col(ColumnDef::new(IdentityProviders::Enabled).boolean().not_null().default(true))
                .col(ColumnDef::new(IdentityProviders::Source).string().not_null().default("admin"))
                .col(ts(IdentityProviders::CreatedAt))
                .col(ts(IdentityProviders::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(UserIdentities::Table)
                .if_not_exists()
                .col(ColumnDef::new(UserIdentities::IdpId).string().not_null())
                .col(ColumnDef::new(UserIdentities::Subject).string().not_null())
                .col(ColumnDef::new(UserIdentities::UserId).string().not_null())
                .col(text(UserIdentities::Email))
                .col(ts(UserIdentities::CreatedAt))
                .col(ts(UserIdentities::LastLoginAt))
                .primary_key(Index::create().col(UserIdentities::IdpId).col(UserIdentities::Subject))
                .foreign_key(
                    ForeignKey::create()
                        .from(UserIdentities::Table, UserIdentities::IdpId)
                        .to(IdentityProviders::Table, IdentityProviders::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(UserIdentities::Table, UserIdentities::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(LoginFlows::Table)
                .if_not_exists()
                // SHA-256 of the `state` parameter: the state itself is never stored.
                .col(ColumnDef::new(LoginFlows::Id).string().not_null().primary_key())
                .col(ColumnDef::new(LoginFlows::IdpId).string().not_null())
                .col(text(LoginFlows::Nonce))
                .col(text(LoginFlows::VerifierEnc))
                // SHA-256 of the cookie that ties the flow to the browser that began it.
                .col(text(LoginFlows::BrowserHash))
                .col(text(LoginFlows::ReturnTo))
                .col(ts(LoginFlows::CreatedAt))
                .col(ts(LoginFlows::ExpiresAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(LoginFlows::Table, LoginFlows::IdpId)
                        .to(IdentityProviders::Table, IdentityProviders::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .if_not_exists()
                .col(ColumnDef::new(Sessions::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Sessions::TokenHash).string().not_null().unique_key())
                .col(ColumnDef::new(Sessions::UserId).string().not_null())
                .col(ColumnDef::new(Sessions::Via).string().not_null())
                .col(text(Sessions::IdpId))
                .col(text(Sessions::UserAgent))
                .col(text(Sessions::Ip))
                .col(ts(Sessions::CreatedAt))
                .col(ts(Sessions::ExpiresAt))
                .col(ts(Sessions::LastSeenAt))
                .col(ts_null(Sessions::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Sessions::Table, Sessions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_sessions_user")
                .table(Sessions::Table)
                .col(Sessions::UserId)
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
enum IdentityProviders {
    Table,
    Id,
    Name,
    Issuer,
    ClientId,
    ClientSecretEnc,
    Scopes,
    EmailClaim,
    GroupsClaim,
    AllowedDomains,
    AutoProvision,
    DefaultRole,
    AdminGroups,
    TeamMappings,
    Enabled,
    Source,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserIdentities {
    Table,
    IdpId,
    Subject,
    UserId,
    Email,
    CreatedAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum LoginFlows {
    Table,
    Id,
    IdpId,
    Nonce,
    VerifierEnc,
    BrowserHash,
    ReturnTo,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    TokenHash,
    UserId,
    Via,
    IdpId,
    UserAgent,
    Ip,
    CreatedAt,
    ExpiresAt,
    LastSeenAt,
    RevokedAt,
}
