//! The outbox table: what is due, claiming a delivery, recording an attempt, and what the CLI
//! shows and retries.

use sea_orm::{
    sea_query::Expr, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::{entities::webhook_deliveries as rows, session::record::Millis};

pub use rows::Model as Delivery;

/// Waits after the 1st, 2nd, … failed attempt, in seconds: about a day and a half in all, then
/// the delivery is given up (`failed`).
const BACKOFF_SECS: [i64; 12] = [
    5, 30, 120, 600, 1800, 3600, 7200, 14_400, 28_800, 28_800, 28_800, 28_800,
];
/// The whole retry schedule, in milliseconds: a delivery older than this (counted from its
/// last retry's start) is done with, one way or the other.
pub const SCHEDULE_MS: i64 = {
    let mut total = 0;
    let mut i = 0;
    while i < BACKOFF_SECS.len() {
        total += BACKOFF_SECS[i];
        i += 1;
    }
    total * 1000
};

/// How long a claimed delivery is left to the server that claimed it before another may try.
const LEASE_MS: i64 = 120_000;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum State {
    /// Not delivered yet; will be tried (again).
    Pending,
    /// Given up after every retry.
    Failed,
    Delivered,
    All,
}

impl Delivery {
    pub fn state(&self) -> State {
        match (self.delivered_at, self.failed_at) {
            (Some(_), _) => State::Delivered,
            (None, Some(_)) => State::Failed,
            (None, None) => State::Pending,
        }
    }
}

/// Up to `limit` deliveries to `url` due at `now`, oldest first.
pub async fn due(
    db: &DatabaseConnection,
    url: &str,
    now: Millis,
    limit: u64,
) -> Result<Vec<Delivery>, DbErr> {
    rows::Entity::find()
        .filter(rows::Column::Url.eq(url))
        .filter(rows::Column::DeliveredAt.is_null())
        .filter(rows::Column::FailedAt.is_null())
        .filter(rows::Column::NextAttemptAt.lte(now))
        .order_by_asc(rows::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Takes `d` for this server: true when no other server took it since it was read.
pub async fn claim(db: &DatabaseConnection, d: &Delivery, now: Millis) -> Result<bool, DbErr> {
    let claimed = rows::Entity::update_many()
        .col_expr(rows::Column::NextAttemptAt, Expr::value(now + LEASE_MS))
        .filter(rows::Column::Id.eq(d.id))
        .filter(rows::Column::NextAttemptAt.eq(d.next_attempt_at))
        .filter(rows::Column::DeliveredAt.is_null())
        .filter(rows::Column::FailedAt.is_null())
        .exec(db)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// Records a successful attempt.
pub async fn delivered(db: &DatabaseConnection, d: &Delivery, status: u16, now: Millis) -> Result<(), DbErr> {
    rows::Entity::update_many()
        .col_expr(rows::Column::DeliveredAt, Expr::value(now))
        .col_expr(rows::Column::Attempts, Expr::value(d.attempts + 1))
        .col_expr(rows::Column::LastStatus, Expr::value(i32::from(status)))
        .col_expr(rows::Column::LastError, Expr::value(Option::<String>::None))
        .filter(rows::Column::Id.eq(d.id))
        .exec(db)
        .await?;
    Ok(())
}

/// Records a failed attempt: the next one is scheduled, or the delivery given up. Returns
/// true when it was given up.
pub async fn attempt_failed(
    db: &DatabaseConnection,
    d: &Delivery,
    status: Option<u16>,
    error: &str,
    now: Millis,
) -> Result<bool, DbErr> {
    let attempts = d.attempts + 1;
    let wait = usize::try_from(attempts - 1)
        .ok()
        .and_then(|i| BACKOFF_SECS.get(i).copied());
    let error: String = error.chars().take(500).collect();
    let mut update = rows::Entity::update_many()
        .col_expr(rows::Column::Attempts, Expr::value(attempts))
        .col_expr(rows::Column::LastStatus, Expr::value(status.map(i32::from)))
        .col_expr(rows::Column::LastError, Expr::value(error));
    update = match wait {
        Some(secs) => update.col_expr(rows::Column::NextAttemptAt, Expr::value(now + secs * 1000)),
        None => update.col_expr(rows::Column::FailedAt, Expr::value(now)),
    };
    update.filter(rows::Column::Id.eq(d.id)).exec(db).await?;
    Ok(wait.is_none())
}

/// Deliveries in `state`, newest first.
pub async fn list(db: &impl ConnectionTrait, state: State, limit: u64) -> Result<Vec<Delivery>, DbErr> {
    let mut q = rows::Entity::find();
    q = match state {
        State::Pending => q
            .filter(rows::Column::DeliveredAt.is_null())
            .filter(rows::Column::FailedAt.is_null()),
        State::Failed => q
            .filter(rows::Column::DeliveredAt.is_null())
            .filter(rows::Column::FailedAt.is_not_null()),
        State::Delivered => q.filter(rows::Column::DeliveredAt.is_not_null()),
        State::All => q,
    };
    q.order_by_desc(rows::Column::Id).limit(limit).all(db).await
}

/// Puts failed deliveries (all of them, or those with the given ids) back in the queue, due
/// now, with their attempts counted afresh. Returns how many.
pub async fn retry(db: &DatabaseConnection, ids: &[i64], now: Millis) -> Result<u64, DbErr> {
    let mut update = rows::Entity::update_many()
        .col_expr(rows::Column::FailedAt, Expr::value(Option::<i64>::None))
        .col_expr(rows::Column::Attempts, Expr::value(0))
        .col_expr(rows::Column::NextAttemptAt, Expr::value(now))
        .filter(rows::Column::DeliveredAt.is_null())
        .filter(rows::Column::FailedAt.is_not_null());
    if !ids.is_empty() {
        update = update.filter(rows::Column::Id.is_in(ids.iter().copied()));
    }
    Ok(update.exec(db).await?.rows_affected)
}
