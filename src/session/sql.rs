//! The SQL session store: the embedded default (SQLite) when `REDIS_URL` is unset; also runs
//! on PostgreSQL.
//!
//! One row per token hash, in the same three states as the Redis store (`A`ctive, `R`otated,
//! `X` tombstone) with an `expires_at` in milliseconds: reads ignore dead rows, and a
//! background task purges them. Writes that must not race — rotation and revocation — run in
//! transactions (SERIALIZABLE on PostgreSQL; SQLite serialises writers), and revocation matches
//! rows by public id, so a successor created by a concurrent rotation is revoked too.

use sea_orm::{
    sea_query::{Expr, OnConflict},
    ActiveValue::Set,
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, IsolationLevel,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::{
    record::{Millis, Rotated, SessionKey, SessionRecord, Stored, Tombstone},
    store::{Page, Revocation, SessionStore, StoreError, Which},
    token::TokenHash,
};
use crate::entities::{auth_flows, login_failures, sessions};

/// Sessions in the `sessions` table of the application database.
#[derive(Clone)]
pub struct SqlStore {
    db: DatabaseConnection,
}

const MAX_ATTEMPTS: usize = 8;

impl SqlStore {
    pub fn new(db: DatabaseConnection) -> Self {
        SqlStore { db }
    }

    async fn begin(&self) -> Result<DatabaseTransaction, StoreError> {
        Ok(match self.db.get_database_backend() {
            DbBackend::Postgres => {
                self.db
                    .begin_with_config(Some(IsolationLevel::Serializable), None)
                    .await?
            }
            _ => self.db.begin().await?,
        })
    }

    /// Deletes rows that are past their expiry; returns how many.
    pub async fn purge_expired(&self, now: Millis) -> Result<u64, StoreError> {
        let sessions = sessions::Entity::delete_many()
            .filter(sessions::Column::ExpiresAt.lte(now))
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

    fn active_rows() -> sea_orm::Select<sessions::Entity> {
        sessions::Entity::find().filter(sessions::Column::State.eq("A"))
    }

    fn decode_active(rows: Vec<sessions::Model>, now: Millis) -> Result<Vec<SessionRecord>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Stored::Active(record) = Stored::decode(&row.value)? {
                if !record.is_expired(now) {
                    out.push(record);
                }
            }
        }
        Ok(out)
    }

    async fn revoke_once(
        &self,
        user_id: &Uuid,
        which: Which<'_>,
        revocation: &Revocation,
        now: Millis,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let txn = self.begin().await?;
        let rows = Self::active_rows()
            .filter(sessions::Column::UserId.eq(*user_id))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .all(&txn)
            .await?;
        let targets: Vec<SessionRecord> = Self::decode_active(rows, now)?
            .into_iter()
            .filter(|r| which.includes(&r.public_id))
            .collect();
        for record in &targets {
            let tombstone = Stored::Revoked(Tombstone {
                reason: revocation.reason.to_string(),
                message: revocation.message.clone(),
                revoked_at: now,
                public_id: record.public_id.clone(),
            });
            let ttl = revocation
                .tombstone_ttl
                .min(record.absolute_expires_at - now)
                .max(1000);
            // By public id: the active token, its predecessor in grace, and any successor a
            // concurrent rotation created.
            sessions::Entity::update_many()
                .col_expr(sessions::Column::State, Expr::value("X"))
                .col_expr(sessions::Column::Value, Expr::value(tombstone.encode()))
                .col_expr(sessions::Column::ExpiresAt, Expr::value(now + ttl))
                .filter(sessions::Column::PublicId.eq(&record.public_id))
                .filter(sessions::Column::State.is_in(["A", "R"]))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(targets)
    }

    /// Counts one failure under `key` in a fixed window: `(count, ms until reset)`.
    pub async fn hit(&self, key: &str, window: Millis, now: Millis) -> Result<(i64, Millis), StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            match self.hit_once(key, window, now).await {
                Ok(v) => return Ok(v),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError("the failed-login counter is too contended".into()))
    }

    async fn hit_once(&self, key: &str, window: Millis, now: Millis) -> Result<(i64, Millis), StoreError> {
        let txn = self.begin().await?;
        let current = login_failures::Entity::find_by_id(key.to_string())
            .one(&txn)
            .await?;
        let (count, ends) = match current {
            Some(row) if row.window_ends_at > now => (row.count + 1, row.window_ends_at),
            _ => (1, now + window),
        };
        login_failures::Entity::insert(login_failures::ActiveModel {
            key: Set(key.to_string()),
            count: Set(count),
            window_ends_at: Set(ends),
        })
        .on_conflict(
            OnConflict::column(login_failures::Column::Key)
                .update_columns([
                    login_failures::Column::Count,
                    login_failures::Column::WindowEndsAt,
                ])
                .to_owned(),
        )
        .exec(&txn)
        .await?;
        txn.commit().await?;
        Ok((count, ends - now))
    }

    /// Gives back one count under `key` (never below zero).
    pub async fn unhit(&self, key: &str, now: Millis) -> Result<(), StoreError> {
        login_failures::Entity::update_many()
            .col_expr(
                login_failures::Column::Count,
                sea_orm::sea_query::ExprTrait::sub(Expr::col(login_failures::Column::Count), 1),
            )
            .filter(login_failures::Column::Key.eq(key))
            .filter(login_failures::Column::Count.gt(0))
            .filter(login_failures::Column::WindowEndsAt.gt(now))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn reset(&self, key: &str) -> Result<(), StoreError> {
        login_failures::Entity::delete_by_id(key.to_string())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Keeps a pending sign-in until `now + ttl`.
    pub async fn put_flow(&self, key: &str, value: &str, ttl: Millis, now: Millis) -> Result<(), StoreError> {
        auth_flows::Entity::insert(auth_flows::ActiveModel {
            key: Set(key.to_string()),
            value: Set(value.to_string()),
            expires_at: Set(now + ttl),
        })
        .exec(&self.db)
        .await?;
        Ok(())
    }

    /// Takes a pending sign-in out: the `DELETE` decides, so at most one caller gets it.
    pub async fn take_flow(&self, key: &str, now: Millis) -> Result<Option<String>, StoreError> {
        let Some(row) = auth_flows::Entity::find_by_id(key.to_string())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let deleted = auth_flows::Entity::delete_many()
            .filter(auth_flows::Column::Key.eq(key))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok((deleted == 1 && row.expires_at > now).then_some(row.value))
    }
}

/// A serialization failure (PostgreSQL) or a busy database (SQLite): the transaction can be
/// retried.
fn is_conflict(e: &StoreError) -> bool {
    let m = e.0.to_ascii_lowercase();
    m.contains("could not serialize")
        || m.contains("40001")
        || m.contains("database is locked")
        || m.contains("deadlock")
}

impl SessionStore for SqlStore {
    async fn load(&self, key: &SessionKey, now: Millis) -> Result<Option<Stored>, StoreError> {
        let row = sessions::Entity::find_by_id(key.hash.to_b64())
            .filter(sessions::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?;
        Ok(row.map(|r| Stored::decode(&r.value)).transpose()?)
    }

    async fn create(&self, hash: &TokenHash, record: &SessionRecord, _now: Millis) -> Result<(), StoreError> {
        sessions::Entity::insert(sessions::ActiveModel {
            token_hash: Set(hash.to_b64()),
            public_id: Set(record.public_id.clone()),
            user_id: Set(record.user_id),
            state: Set("A".into()),
            value: Set(Stored::Active(record.clone()).encode()),
            expires_at: Set(record.expires_at()),
        })
        .exec(&self.db)
        .await?;
        Ok(())
    }

    async fn touch(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        _now: Millis,
    ) -> Result<bool, StoreError> {
        let res = sessions::Entity::update_many()
            .col_expr(
                sessions::Column::Value,
                Expr::value(Stored::Active(record.clone()).encode()),
            )
            .col_expr(sessions::Column::ExpiresAt, Expr::value(record.expires_at()))
            .filter(sessions::Column::TokenHash.eq(hash.to_b64()))
            .filter(sessions::Column::State.eq("A"))
            .exec(&self.db)
            .await;
        match res {
            Ok(r) => Ok(r.rows_affected == 1),
            // A concurrent rotation or revocation won; the refresh is simply skipped.
            Err(e) if is_conflict(&StoreError::from(e.clone())) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn rotate(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        next: &SessionRecord,
        rotated: &Rotated,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let attempt = async {
            let txn = self.begin().await?;
            let res = sessions::Entity::update_many()
                .col_expr(sessions::Column::State, Expr::value("R"))
                .col_expr(
                    sessions::Column::Value,
                    Expr::value(Stored::Rotated(rotated.clone()).encode()),
                )
                .col_expr(
                    sessions::Column::ExpiresAt,
                    Expr::value(rotated.grace_until.min(next.absolute_expires_at)),
                )
                .filter(sessions::Column::TokenHash.eq(old.to_b64()))
                .filter(sessions::Column::State.eq("A"))
                .filter(sessions::Column::ExpiresAt.gt(now))
                .exec(&txn)
                .await?;
            if res.rows_affected != 1 {
                txn.rollback().await?;
                return Ok::<bool, StoreError>(false);
            }
            sessions::Entity::insert(sessions::ActiveModel {
                token_hash: Set(new.to_b64()),
                public_id: Set(next.public_id.clone()),
                user_id: Set(next.user_id),
                state: Set("A".into()),
                value: Set(Stored::Active(next.clone()).encode()),
                expires_at: Set(next.expires_at()),
            })
            .exec(&txn)
            .await?;
            txn.commit().await?;
            Ok(true)
        };
        match attempt.await {
            // Losing a race to another rotation or a revocation is not an error: the request
            // goes on with the token it presented (or is refused by the revocation).
            Err(e) if is_conflict(&e) => Ok(false),
            other => other,
        }
    }

    async fn list_user(&self, user_id: &Uuid, now: Millis) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = Self::active_rows()
            .filter(sessions::Column::UserId.eq(*user_id))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await?;
        Self::decode_active(rows, now)
    }

    async fn find(&self, public_id: &str, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        let rows = Self::active_rows()
            .filter(sessions::Column::PublicId.eq(public_id))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await?;
        Ok(Self::decode_active(rows, now)?.into_iter().next())
    }

    async fn revoke(
        &self,
        user_id: &Uuid,
        which: Which<'_>,
        revocation: &Revocation,
        now: Millis,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            match self.revoke_once(user_id, which, revocation, now).await {
                Ok(revoked) => return Ok(revoked),
                Err(e) if is_conflict(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError("revocation kept conflicting; try again".into())))
    }

    async fn list_page(&self, cursor: Option<String>, limit: usize, now: Millis) -> Result<Page, StoreError> {
        let mut query = Self::active_rows().filter(sessions::Column::ExpiresAt.gt(now));
        if let Some(after) = &cursor {
            query = query.filter(sessions::Column::PublicId.gt(after.as_str()));
        }
        let rows = query
            .order_by_asc(sessions::Column::PublicId)
            .limit(limit as u64)
            .all(&self.db)
            .await?;
        let full = rows.len() == limit;
        let next = if full {
            rows.last().map(|r| r.public_id.clone())
        } else {
            None
        };
        Ok(Page {
            sessions: Self::decode_active(rows, now)?,
            next,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.db.ping().await?)
    }
}
