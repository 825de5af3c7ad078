//! Database connections and migration state.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use secrecy::ExposeSecret;

use crate::config::{redact_url, DatabaseSettings};

/// The file of a SQLite URL (`sqlite://path?…` or `sqlite:path`), if it names one.
pub fn embedded_file(settings: &DatabaseSettings) -> Option<&str> {
    let url = settings.url.expose_secret();
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:" && !rest.contains("mode=memory")).then_some(path)
}

/// Creates a missing SQLite file readable by its owner only: it holds e-mail addresses and
/// password hashes. (SQLite gives its `-wal` and `-shm` files the database file's mode.)
fn create_private(path: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens a connection pool. SQLite files are created when missing (`mode=rwc`), owner-only.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let url = settings.url.expose_secret();
    if let Some(path) = embedded_file(settings).filter(|_| url.contains("mode=rwc")) {
        create_private(path).map_err(|e| DbErr::Custom(format!("cannot create {path}: {e}")))?;
    }
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
