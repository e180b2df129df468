//! The CCAG schema. Migrations run at control-plane start-up; each is
//! idempotent (`IF NOT EXISTS`) and recorded in `seaql_migrations`, so a
//! restart, or two control planes starting together, applies nothing twice.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_initial;
mod m20261127_000002_limits_usage;
mod m20261201_000003_config_distribution;
mod m20261201_000004_money_as_integers;
mod m20261202_000005_budgets;
mod m20261203_000006_notifications;
mod m20261204_000007_identity;
mod m20261205_000008_gateway_signin;
mod m20261206_000009_web_search;
mod m20261207_000010_scim;
mod m20261208_000011_routing;
mod m20261209_000012_usage_rollups;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_initial::Migration),
            Box::new(m20261127_000002_limits_usage::Migration),
            Box::new(m20261201_000003_config_distribution::Migration),
            Box::new(m20261201_000004_money_as_integers::Migration),
            Box::new(m20261202_000005_budgets::Migration),
            Box::new(m20261203_000006_notifications::Migration),
            Box::new(m20261204_000007_identity::Migration),
            Box::new(m20261205_000008_gateway_signin::Migration),
            Box::new(m20261206_000009_web_search::Migration),
            Box::new(m20261207_000010_scim::Migration),
            Box::new(m20261208_000011_routing::Migration),
            Box::new(m20261209_000012_usage_rollups::Migration),
        ]
    }
}
