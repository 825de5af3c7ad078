//! Sessions in the `sessions` table.
//!
//! One row per token hash, in the same three states as the Redis store (`A`ctive, `R`otated,
//! `X` tombstone) with an `expires_at` in milliseconds: reads ignore dead rows, and a
//! background task purges them ([`super::SqlBackend::purge_expired`]). Rotation and
//! revocation run in write transactions, and revocation matches rows by public id, so a
//! successor created by a concurrent rotation is revoked too.

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{retry, SqlBackend};
use crate::{
    entities::sessions,
    session::{
        record::{Millis, Rotated, SessionKey, SessionRecord, Stored},
        store::{Created, Limit, Page, Reached, Revocation, SessionStore, StoreError, Which},
        token::TokenHash,
    },
};

/// The session port on SQL.
#[derive(Clone)]
pub struct SqlSessions(pub SqlBackend);

impl SqlSessions {
    fn active_rows() -> sea_orm::Select<sessions::Entity> {
        sessions::Entity::find().filter(sessions::Column::State.eq("A"))
    }

    fn decode_active(rows: Vec<sessions::Model>, now: Millis) -> Result<Vec<SessionRecord>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Stored::Active(record) = Stored::decode(&row.value)? {
                if !record.is_expired(now) {
                    out.push(Arc::unwrap_or_clone(record));
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
        let txn = self.0.begin().await?;
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
            end_session(&txn, record, revocation, now).await?;
        }
        txn.commit().await?;
        Ok(targets)
    }

    async fn create_once(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        limit: &Limit,
        now: Millis,
    ) -> Result<Created, StoreError> {
        // In the write transaction: a concurrent sign-in of the same user waits (SQLite) or
        // fails to serialise and is retried (PostgreSQL), so the count it sees is current.
        let txn = self.0.begin().await?;
        let rows = Self::active_rows()
            .filter(sessions::Column::UserId.eq(record.user_id))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .all(&txn)
            .await?;
        let live = Self::decode_active(rows, now)?;
        let Some(ending) = limit.ending(live, record) else {
            txn.rollback().await?;
            return Ok(Created::Refused);
        };
        for victim in &ending {
            end_session(&txn, victim, &limit.revocation, now).await?;
        }
        insert_active(&txn, hash, record).await?;
        txn.commit().await?;
        Ok(Created::Created { ended: ending })
    }
}

/// The row of a new active token: a sign-in's first, or a rotation's successor.
async fn insert_active(
    txn: &sea_orm::DatabaseTransaction,
    hash: &TokenHash,
    record: &SessionRecord,
) -> Result<(), StoreError> {
    sessions::Entity::insert(sessions::ActiveModel {
        token_hash: Set(hash.to_b64()),
        public_id: Set(record.public_id.clone()),
        user_id: Set(record.user_id),
        state: Set("A".into()),
        value: Set(Stored::encode_active(record)),
        expires_at: Set(record.expires_at()),
    })
    .exec(txn)
    .await?;
    Ok(())
}

/// Turns every row of `record`'s session into a tombstone — by public id: the active token,
/// its predecessor in grace, and any successor a concurrent rotation created.
async fn end_session(
    txn: &sea_orm::DatabaseTransaction,
    record: &SessionRecord,
    revocation: &Revocation,
    now: Millis,
) -> Result<(), StoreError> {
    let (tombstone, ttl) = revocation.tombstone(record, now);
    sessions::Entity::update_many()
        .col_expr(sessions::Column::State, Expr::value("X"))
        .col_expr(sessions::Column::Value, Expr::value(tombstone.encode()))
        .col_expr(sessions::Column::ExpiresAt, Expr::value(now + ttl))
        .filter(sessions::Column::PublicId.eq(&record.public_id))
        .filter(sessions::Column::State.is_in(["A", "R"]))
        .exec(txn)
        .await?;
    Ok(())
}

#[async_trait]
impl SessionStore for SqlSessions {
    fn kind(&self) -> &'static str {
        "sql"
    }

    async fn load(&self, key: &SessionKey, now: Millis) -> Result<Option<Stored>, StoreError> {
        let row = sessions::Entity::find_by_id(key.hash.to_b64())
            .filter(sessions::Column::ExpiresAt.gt(now))
            .one(&self.0.db)
            .await?;
        Ok(row.map(|r| Stored::decode(&r.value)).transpose()?)
    }

    async fn create(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        limit: &Limit,
        now: Millis,
    ) -> Result<Created, StoreError> {
        retry(|| self.create_once(hash, record, limit, now)).await
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
                Expr::value(Stored::encode_active(record)),
            )
            .col_expr(sessions::Column::ExpiresAt, Expr::value(record.expires_at()))
            .filter(sessions::Column::TokenHash.eq(hash.to_b64()))
            .filter(sessions::Column::State.eq("A"))
            .exec(&self.0.db)
            .await;
        match res {
            Ok(r) => Ok(r.rows_affected == 1),
            Err(e) => match StoreError::from(e) {
                // A concurrent rotation or revocation won; the refresh is simply skipped.
                StoreError::Conflict(_) => Ok(false),
                other => Err(other),
            },
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
            let txn = self.0.begin().await?;
            let res = sessions::Entity::update_many()
                .col_expr(sessions::Column::State, Expr::value("R"))
                .col_expr(
                    sessions::Column::Value,
                    Expr::value(Stored::encode_rotated(rotated)),
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
            insert_active(&txn, new, next).await?;
            txn.commit().await?;
            Ok(true)
        };
        match attempt.await {
            // Losing a race to another rotation or a revocation is not an error: the request
            // goes on with the token it presented (or is refused by the revocation).
            Err(StoreError::Conflict(_)) => Ok(false),
            other => other,
        }
    }

    async fn list_user(&self, user_id: &Uuid, now: Millis) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = Self::active_rows()
            .filter(sessions::Column::UserId.eq(*user_id))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .all(&self.0.db)
            .await?;
        Self::decode_active(rows, now)
    }

    async fn update_user(
        &self,
        user_id: &Uuid,
        user: &crate::session::record::UserSnapshot,
        now: Millis,
    ) -> Result<usize, StoreError> {
        let rows = Self::active_rows()
            .filter(sessions::Column::UserId.eq(*user_id))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .all(&self.0.db)
            .await?;
        let mut changed = 0;
        for row in rows {
            let Stored::Active(record) = Stored::decode(&row.value)? else {
                continue;
            };
            if record.is_expired(now) || record.user == *user {
                continue;
            }
            let mut record = Arc::unwrap_or_clone(record);
            record.user = user.clone();
            let res = sessions::Entity::update_many()
                .col_expr(
                    sessions::Column::Value,
                    Expr::value(Stored::encode_active(&record)),
                )
                .filter(sessions::Column::TokenHash.eq(row.token_hash))
                .filter(sessions::Column::State.eq("A"))
                .exec(&self.0.db)
                .await;
            match res {
                Ok(r) => changed += usize::try_from(r.rows_affected).unwrap_or(0),
                // A concurrent rotation or revocation won: that session keeps what it has.
                Err(e) => match StoreError::from(e) {
                    StoreError::Conflict(_) => {}
                    other => return Err(other),
                },
            }
        }
        Ok(changed)
    }

    async fn find(&self, public_id: &str, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        let rows = Self::active_rows()
            .filter(sessions::Column::PublicId.eq(public_id))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .all(&self.0.db)
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
        retry(|| self.revoke_once(user_id, which, revocation, now)).await
    }

    async fn list_page(&self, cursor: Option<String>, limit: usize, now: Millis) -> Result<Page, StoreError> {
        let mut query = Self::active_rows().filter(sessions::Column::ExpiresAt.gt(now));
        if let Some(after) = &cursor {
            query = query.filter(sessions::Column::PublicId.gt(after.as_str()));
        }
        let rows = query
            .order_by_asc(sessions::Column::PublicId)
            .limit(limit as u64)
            .all(&self.0.db)
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

    async fn ping(&self) -> Result<Reached, StoreError> {
        self.0.ping().await?;
        Ok(Reached {
            summary: "sql".into(),
            primary: None,
        })
    }
}
