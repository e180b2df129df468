//! One sea-orm entity per table of `migrations/`.

pub mod api_keys;
pub mod api_tokens;
pub mod audit_log;
pub mod budget_events;
pub mod budget_spend;
pub mod budgets;
pub mod config_changes;
pub mod config_state;
pub mod dataplanes;
pub mod endpoints;
pub mod leases;
pub mod login_failures;
pub mod model_prices;
pub mod models;
pub mod notification_deliveries;
pub mod notification_destinations;
pub mod notification_events;
pub mod settings;
pub mod system_secrets;
pub mod team_members;
pub mod teams;
pub mod usage_records;
pub mod users;
