//! The database: PostgreSQL when `DATABASE_URL` says so, otherwise an
//! embedded SQLite file, so the gateway runs with no other set-up.

pub mod audit;
pub mod entities;
pub mod ids;
pub mod names;
mod states;

pub use states::{AuditAction, DeliveryState, DestinationKind, KeyStatus, Role, UserStatus};

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
    Migrator::up(&db, None).await.map_err(|e| format!("applying migrations: {e}"))?;
    Ok(Store { db, backend })
}
