//! The database: PostgreSQL when `DATABASE_URL` says so, otherwise an
//! embedded SQLite file, so the gateway runs with no other set-up.

pub mod audit;
pub mod entities;
pub mod ids;
pub mod names;
mod states;

pub use states::{
    AuditAction, Circuit, CredentialKind, DeliveryState, DestinationKind, KeyStatus, Role, Routing, Scope, UserStatus,
};

use std::path::Path;
use std::time::Duration;

use ccag_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

pub struct Store {
    pub db: DatabaseConnection,
    pub backend: Backend,
}

/// Connects and applies every pending migration.
pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Store, String> {
    let (url, backend) = match database_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => (u.to_owned(), Backend::Postgres),
        Some(u) if u.starts_with("sqlite:") => (u.to_owned(), Backend::Sqlite),
        Some(u) => {
            let scheme = u.split(':').next().unwrap_or("");
            return Err(format!("DATABASE_URL: unsupported scheme {scheme:?}; use postgres:// or sqlite:"));
        }
        None => {
            std::fs::create_dir_all(data_dir).map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
            let file = data_dir.join("ccag.db");
            (format!("sqlite://{}?mode=rwc", file.display()), Backend::Sqlite)
        }
    };
    let mut opts = ConnectOptions::new(url);
    opts.connect_timeout(Duration::from_secs(10)).acquire_timeout(Duration::from_secs(10)).sqlx_logging(false);
    if backend == Backend::Sqlite {
        // SQLite allows one writer, and a deferred transaction that reads and
        // then writes fails at once (SQLITE_BUSY, which no busy timeout
        // waits out) when another connection wrote in between. One
        // connection serialises every statement instead: no such failures,
        // and plenty for an admin API. Production runs on PostgreSQL.
        opts.max_connections(1).min_connections(1);
    } else {
        opts.max_connections(16);
    }
    let db =
        Database::connect(opts).await.map_err(|e| format!("connecting to the {} database: {e}", backend.name()))?;
    if backend == Backend::Sqlite {
        use sea_orm::ConnectionTrait;
        db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;")
            .await
            .map_err(|e| format!("configuring SQLite: {e}"))?;
    }
    let store = Store { db, backend };
    let held = store.startup_lock().await?;
    Migrator::up(&store.db, None).await.map_err(|e| format!("applying migrations: {e}"))?;
    release(held).await?;
    Ok(store)
}

/// Held by one replica at a time while it migrates the schema or seeds
/// first-start rows: replicas starting together on PostgreSQL take turns
/// instead of racing (the loser would fail on a duplicate and restart).
/// `pg_advisory_xact_lock` in a transaction of its own: released when the
/// transaction ends, even if the process dies. SQLite needs none (one
/// process owns the file).
pub struct StartupLock(Option<sea_orm::DatabaseTransaction>);

/// Any fixed key: "ccag" in ASCII.
const STARTUP_LOCK_KEY: i64 = 0x6363_6167;

impl Store {
    pub async fn startup_lock(&self) -> Result<StartupLock, String> {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        if self.backend != Backend::Postgres {
            return Ok(StartupLock(None));
        }
        let txn = self.db.begin().await.map_err(|e| format!("taking the start-up lock: {e}"))?;
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({STARTUP_LOCK_KEY})"))
            .await
            .map_err(|e| format!("taking the start-up lock: {e}"))?;
        Ok(StartupLock(Some(txn)))
    }
}

pub async fn release(lock: StartupLock) -> Result<(), String> {
    match lock.0 {
        Some(txn) => txn.commit().await.map_err(|e| format!("releasing the start-up lock: {e}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use ccag_migrations::{Migrator, MigratorTrait};
    use sea_orm::{ConnectOptions, ConnectionTrait, Database, EntityTrait};

    use super::entities::{endpoints, teams, usage_records};

    /// The routing migration over a database that already holds endpoints:
    /// an endpoint with a role keeps assuming it.
    #[tokio::test]
    async fn the_routing_migration_keeps_existing_endpoints_as_they_were() {
        let mut opts = ConnectOptions::new("sqlite::memory:");
        opts.max_connections(1).min_connections(1).sqlx_logging(false);
        let db = Database::connect(opts).await.unwrap();
        Migrator::up(&db, Some(10)).await.unwrap();
        db.execute_unprepared(
            "INSERT INTO endpoints (id, name, region, role_arn, enabled, priority, created_at, updated_at) VALUES \
             ('ep_1', 'role', 'us-east-1', 'arn:aws:iam::111111111111:role/x', true, 0, \
              '2026-12-01T00:00:00+00:00', '2026-12-01T00:00:00+00:00'), \
             ('ep_2', 'plain', 'eu-west-1', '', true, 1, '2026-12-01T00:00:00+00:00', '2026-12-01T00:00:00+00:00'); \
             INSERT INTO teams (id, name, description, member_rpm, member_tpm, created_at, updated_at, rpm, tpm) \
             VALUES ('team_1', 't', '', 0, 0, '2026-12-01T00:00:00+00:00', '2026-12-01T00:00:00+00:00', 0, 0)",
        )
        .await
        .unwrap();
        Migrator::up(&db, None).await.unwrap();
        // Applying again changes nothing.
        Migrator::up(&db, None).await.unwrap();
        let rows = endpoints::Entity::find().all(&db).await.unwrap();
        let of = |id: &str| rows.iter().find(|e| e.id == id).unwrap();
        assert_eq!((of("ep_1").credentials.as_str(), of("ep_1").weight), ("assume_role", 1));
        assert_eq!((of("ep_2").credentials.as_str(), of("ep_2").models.as_str()), ("default", "[]"));
        assert_eq!(of("ep_2").profile_arns, "{}");
        assert!(of("ep_2").api_key_sealed.is_none());
        assert_eq!(teams::Entity::find().all(&db).await.unwrap()[0].routing_strategy, "");
        assert!(usage_records::Entity::find().all(&db).await.unwrap().is_empty());
    }
}
