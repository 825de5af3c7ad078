//! Database connections and migration state.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use secrecy::ExposeSecret;

use crate::config::{redact_url, DatabaseSettings};

/// Opens a connection pool. SQLite files are created when missing (`mode=rwc`).
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let url = settings.url.expose_secret();
    let mut opts = ConnectOptions::new(url.to_string());
    opts.connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    if settings.is_sqlite() {
        // SQLite serialises writers; a small pool avoids "database is locked" churn.
        opts.max_connections(4).min_connections(1);
    } else {
        opts.max_connections(10).min_connections(0);
    }
    tracing::debug!(database = %redact_url(url), "connecting to the database");
    Database::connect(opts).await
}

/// Names of migrations that are known to this binary but not applied to the database.
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    Ok(Migrator::get_pending_migrations_read_only(db)
        .await?
        .iter()
        .map(|m| m.name().to_string())
        .collect())
}

/// Applies every pending migration.
pub async fn migrate_up(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}
