//! Attempt counters in the `login_failures` table.
//!
//! Counting is one statement — an upsert that starts a new window or adds to the live one and
//! returns the result — so concurrent attempts never read-then-write: there is no transaction
//! to lose, and on SQLite the statement simply waits its turn for the write lock.

use async_trait::async_trait;
use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict, Query},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};

use super::SqlBackend;
use crate::{
    auth::throttle::{AttemptStore, Window},
    entities::login_failures::{self, Column},
    session::{record::Millis, store::StoreError},
};

#[derive(Clone)]
pub struct SqlAttempts(pub SqlBackend);

#[async_trait]
impl AttemptStore for SqlAttempts {
    async fn hit(&self, key: &str, window: Millis, now: Millis) -> Result<Window, StoreError> {
        let db = &self.0.db;
        let existing = |c: Column| Expr::col((login_failures::Entity, c));
        let live = existing(Column::WindowEndsAt).gt(now);
        let new_end = now.saturating_add(Ord::max(window, 1));
        let insert = Query::insert()
            .into_table(login_failures::Entity)
            .columns([Column::Key, Column::Count, Column::WindowEndsAt])
            .values_panic([key.into(), 1i64.into(), new_end.into()])
            .on_conflict(
                OnConflict::column(Column::Key)
                    .value(
                        Column::Count,
                        Expr::case(live.clone(), existing(Column::Count).add(1i64)).finally(1i64),
                    )
                    .value(
                        Column::WindowEndsAt,
                        Expr::case(live, existing(Column::WindowEndsAt)).finally(new_end),
                    )
                    .to_owned(),
            )
            .returning(Query::returning().columns([Column::Count, Column::WindowEndsAt]))
            .to_owned();
        let row = super::retry(|| async { Ok(db.query_one(&insert).await?) })
            .await?
            .ok_or_else(|| StoreError::Corrupt("the counter upsert returned no row".into()))?;
        let count: i64 = row.try_get("", "count").map_err(StoreError::from)?;
        let ends: i64 = row.try_get("", "window_ends_at").map_err(StoreError::from)?;
        Ok(Window {
            count,
            reset_in: Ord::max(ends - now, 1),
        })
    }

    async fn unhit(&self, key: &str, now: Millis) -> Result<(), StoreError> {
        let update = login_failures::Entity::update_many()
            .col_expr(Column::Count, Expr::col(Column::Count).sub(1i64))
            .filter(Column::Key.eq(key))
            .filter(Column::Count.gt(0))
            .filter(Column::WindowEndsAt.gt(now));
        super::retry(|| async { Ok(update.clone().exec(&self.0.db).await?) }).await?;
        Ok(())
    }

    async fn reset_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        // Keys are hex digests and `:`; refuse anything that could be a LIKE pattern.
        if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':') {
            return Err(StoreError::Corrupt(
                format!("not a counter key prefix: {prefix:?}").into(),
            ));
        }
        let delete = login_failures::Entity::delete_many().filter(Column::Key.starts_with(prefix));
        Ok(
            super::retry(|| async { Ok(delete.clone().exec(&self.0.db).await?) })
                .await?
                .rows_affected,
        )
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        super::retry(|| async {
            Ok(login_failures::Entity::delete_by_id(key.to_string())
                .exec(&self.0.db)
                .await?)
        })
        .await?;
        Ok(())
    }
}
