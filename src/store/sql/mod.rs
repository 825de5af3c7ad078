//! SQL (the embedded SQLite default; also PostgreSQL): the application database's `sessions`,
//! `auth_flows` and `login_failures` tables behind the three ports.
//!
//! Writes that must not race run in transactions that take the write lock up front:
//! SERIALIZABLE on PostgreSQL, `BEGIN IMMEDIATE` on SQLite (a deferred SQLite transaction that
//! reads and then writes fails at once with `SQLITE_BUSY` when another writer got there first,
//! instead of waiting). A transaction that still loses a race reports
//! [`StoreError::Conflict`] — recognised by SQLSTATE or SQLite result code, never by message
//! text — and [`retry`] runs it again after a short random pause.

pub mod attempts;
pub mod feed;
pub mod flows;
pub mod sessions;

use std::{future::Future, time::Duration};

use rand::Rng;
use sea_orm::{
    sqlx, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    IsolationLevel, QueryFilter, RuntimeErr, SqlErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

use crate::{
    entities::{auth_flows, login_failures, sessions as session_rows},
    session::{record::Millis, store::StoreError},
};

/// SQLSTATE `serialization_failure` and `deadlock_detected` (PostgreSQL); SQLite's `BUSY` and
/// `LOCKED` primary result codes (extended codes keep the primary one in their low byte).
fn is_conflict(e: &DbErr) -> bool {
    if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        return true;
    }
    let (DbErr::Exec(RuntimeErr::SqlxError(err))
    | DbErr::Query(RuntimeErr::SqlxError(err))
    | DbErr::Conn(RuntimeErr::SqlxError(err))) = e
    else {
        return false;
    };
    let sqlx::Error::Database(db) = err.as_ref() else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        const SQLITE_BUSY: i64 = 5;
        const SQLITE_LOCKED: i64 = 6;
        return code
            .parse::<i64>()
            .is_ok_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED));
    }
    matches!(code.as_ref(), "40001" | "40P01")
}

/// What a failed database call means for the caller: a lost race can be retried; a value of
/// the wrong type is data this version cannot read; anything else means the database cannot
/// serve right now.
impl From<DbErr> for StoreError {
    fn from(e: DbErr) -> Self {
        if is_conflict(&e) {
            StoreError::Conflict(Box::new(e))
        } else if matches!(e, DbErr::Type(_) | DbErr::Json(_)) {
            StoreError::Corrupt(Box::new(e))
        } else {
            StoreError::Unavailable(Box::new(e))
        }
    }
}

/// How many times a conflicting transaction runs before the conflict is reported.
const MAX_ATTEMPTS: u32 = 10;

/// Runs `op` until it stops reporting a [`StoreError::Conflict`] (at most [`MAX_ATTEMPTS`]
/// times), pausing a random 1–2× of an exponentially growing delay in between so that
/// contenders spread out instead of colliding again.
pub async fn retry<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut delay_ms: u64 = 2;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(StoreError::Conflict(_)) if attempt < MAX_ATTEMPTS => {
                let pause = rand::thread_rng().gen_range(delay_ms..=delay_ms * 2);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                delay_ms = (delay_ms * 2).min(100);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The application database, shared by the three ports. Cheap to clone.
#[derive(Clone)]
pub struct SqlBackend {
    db: DatabaseConnection,
}

impl SqlBackend {
    pub fn new(db: DatabaseConnection) -> Self {
        SqlBackend { db }
    }

    /// A transaction that holds the write lock from its first statement (see the module docs).
    async fn begin(&self) -> Result<DatabaseTransaction, StoreError> {
        let options = match self.db.get_database_backend() {
            DbBackend::Postgres => TransactionOptions {
                isolation_level: Some(IsolationLevel::Serializable),
                ..Default::default()
            },
            DbBackend::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            },
            _ => TransactionOptions::default(),
        };
        Ok(self.db.begin_with_options(options).await?)
    }

    /// Deletes rows that are past their expiry; returns how many. Reads ignore them anyway.
    pub async fn purge_expired(&self, now: Millis) -> Result<u64, StoreError> {
        let sessions = session_rows::Entity::delete_many()
            .filter(session_rows::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected;
        let counters = login_failures::Entity::delete_many()
            .filter(login_failures::Column::WindowEndsAt.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected;
        let flows = auth_flows::Entity::delete_many()
            .filter(auth_flows::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(sessions + counters + flows)
    }

    /// One round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.db.ping().await?)
    }
}
