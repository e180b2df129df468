//! Multi-account, multi-region routing: endpoints gain their weight, URL,
//! credentials (a role with an optional external id, or a sealed Bedrock
//! API key), inference-profile scope, profile ARNs and models; teams gain a
//! routing strategy and an ordered list of endpoints; data planes' counters
//! per endpoint are kept per minute; the spend log names the endpoint that
//! answered each request and how many were tried.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Adds a column unless a previous, interrupted run already did.
async fn add(m: &SchemaManager<'_>, table: &str, mut col: ColumnDef) -> Result<(), DbErr> {
    let name = col.get_column_name();
    if !m.has_column(table, &name).await? {
        m.alter_table(Table::alter().table(Alias::new(table)).add_column(&mut col).to_owned()).await?;
    }
    Ok(())
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let endpoints: [ColumnDef; 10] = [
            col("weight").integer().not_null().default(1).to_owned(),
            col("endpoint_url").text().not_null().default("").to_owned(),
            // default | assume_role | api_key
            col("credentials").string().not_null().default("default").to_owned(),
            col("external_id").string().not_null().default("").to_owned(),
            // Sealed with the control plane's key; never in the audit log.
            col("api_key_sealed").text().null().to_owned(),
            col("per_user_sessions").boolean().not_null().default(false).to_owned(),
            // "" (the region's geo) | global | explicit | regional
            col("scope").string().not_null().default("").to_owned(),
            col("scope_prefix").string().not_null().default("").to_owned(),
            // {"model id": "application inference profile ARN"}
            col("profile_arns").text().not_null().default("{}").to_owned(),
            // ["model id", …]; empty: every model
            col("models").text().not_null().default("[]").to_owned(),
        ];
        for c in endpoints {
            add(m, "endpoints", c).await?;
        }
        // Endpoints from before: a role means an assumed role.
        m.get_connection()
            .execute_unprepared(
                "UPDATE endpoints SET credentials = 'assume_role' WHERE role_arn <> '' AND credentials = 'default'",
            )
            .await?;
        // "" (the organisation's) | fallback | round-robin | sticky | adaptive
        add(m, "teams", col("routing_strategy").string().not_null().default("").to_owned()).await?;
        add(m, "usage_records", col("endpoint_id").string().not_null().default("").to_owned()).await?;
        add(m, "usage_records", col("attempts").integer().not_null().default(0).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(TeamEndpoints::Table)
                .if_not_exists()
                .col(ColumnDef::new(TeamEndpoints::TeamId).string().not_null())
                .col(ColumnDef::new(TeamEndpoints::EndpointId).string().not_null())
                .col(ColumnDef::new(TeamEndpoints::Position).integer().not_null())
                .primary_key(Index::create().col(TeamEndpoints::TeamId).col(TeamEndpoints::EndpointId))
                .foreign_key(
                    ForeignKey::create()
                        .from(TeamEndpoints::Table, TeamEndpoints::TeamId)
                        .to(Teams::Table, Teams::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(TeamEndpoints::Table, TeamEndpoints::EndpointId)
                        .to(Endpoints::Table, Endpoints::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_team_endpoints_endpoint")
                .table(TeamEndpoints::Table)
                .col(TeamEndpoints::EndpointId)
                .to_owned(),
        )
        .await?;

        // No foreign key: a data plane may report an endpoint deleted
        // meanwhile, which must not fail its usage report (ingest skips
        // unknown endpoints; deleting one deletes its rows).
        m.create_table(
            Table::create()
                .table(EndpointStats::Table)
                .if_not_exists()
                .col(ColumnDef::new(EndpointStats::EndpointId).string().not_null())
                .col(ColumnDef::new(EndpointStats::DataplaneId).string().not_null())
                // Unix minutes (the minute of the report's until_ms).
                .col(ColumnDef::new(EndpointStats::Minute).big_integer().not_null())
                .col(ColumnDef::new(EndpointStats::Requests).big_integer().not_null().default(0))
                .col(ColumnDef::new(EndpointStats::Throttles).big_integer().not_null().default(0))
                .col(ColumnDef::new(EndpointStats::Errors).big_integer().not_null().default(0))
                // Counts per bucket of ccag_proto::routing::LATENCY_BOUNDS_MS.
                .col(ColumnDef::new(EndpointStats::LatencyBuckets).text().not_null().default("[]"))
                // "" | closed | open | half_open: the latest report's.
                .col(ColumnDef::new(EndpointStats::Circuit).string().not_null().default(""))
                .col(ColumnDef::new(EndpointStats::ReportedAt).timestamp_with_time_zone().not_null())
                .primary_key(
                    Index::create()
                        .col(EndpointStats::EndpointId)
                        .col(EndpointStats::DataplaneId)
                        .col(EndpointStats::Minute),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_endpoint_stats_minute")
                .table(EndpointStats::Table)
                .col(EndpointStats::Minute)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(EndpointStats::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(TeamEndpoints::Table).if_exists().to_owned()).await?;
        let columns: &[(&str, &[&str])] = &[
            (
                "endpoints",
                &[
                    "weight",
                    "endpoint_url",
                    "credentials",
                    "external_id",
                    "api_key_sealed",
                    "per_user_sessions",
                    "scope",
                    "scope_prefix",
                    "profile_arns",
                    "models",
                ],
            ),
            ("teams", &["routing_strategy"]),
            ("usage_records", &["endpoint_id", "attempts"]),
        ];
        for (table, cols) in columns {
            for c in *cols {
                if m.has_column(*table, *c).await? {
                    m.alter_table(Table::alter().table(Alias::new(*table)).drop_column(Alias::new(*c)).to_owned())
                        .await?;
                }
            }
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum TeamEndpoints {
    Table,
    TeamId,
    EndpointId,
    Position,
}

#[derive(DeriveIden)]
enum EndpointStats {
    Table,
    EndpointId,
    DataplaneId,
    Minute,
    Requests,
    Throttles,
    Errors,
    LatencyBuckets,
    Circuit,
    ReportedAt,
}
