//! The tokens of e-mailed links — verify an address, reset a password, report a sign-in.
//!
//! A token is 256 bits from the OS's random number generator (43 base64url characters). Only
//! its SHA-256 is stored: the token is far too long to guess from the digest, so a reader of
//! the database learns no usable link. A token is found by its digest, works until it expires
//! and is used once: [`consume`] is one conditional `UPDATE`, so two requests racing with the
//! same link cannot both succeed.

use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    entities::{
        account_tokens::{self, Model as Token},
        users::Model as User,
    },
    session::{record::Millis, token::random_b64},
};

/// What a token is for: each is accepted only where it belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    ReportSignIn,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
            Purpose::ReportSignIn => "report_sign_in",
        }
    }
}

/// The longest token accepted in a request (a token is 43 characters; anything much longer is
/// not one and is not hashed).
pub const MAX_TOKEN_CHARS: usize = 128;

fn digest(raw: &str) -> String {
    Sha256::digest(raw.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What to store beside a new token.
#[derive(Default)]
pub struct Extra {
    pub session_id: Option<String>,
    pub detail: Option<String>,
}

/// A new token for `user`, valid for `ttl_ms`; returns the raw token (for the link) and its
/// row. The user's expired tokens are removed on the way.
pub async fn issue(
    db: &impl ConnectionTrait,
    user: &User,
    purpose: Purpose,
    ttl_ms: Millis,
    extra: Extra,
    now: Millis,
) -> Result<(String, Token), DbErr> {
    account_tokens::Entity::delete_many()
        .filter(account_tokens::Column::UserId.eq(user.id))
        .filter(account_tokens::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?;
    let raw = random_b64(32);
    let row = account_tokens::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user.id),
        purpose: Set(purpose.as_str().to_string()),
        token_hash: Set(digest(&raw)),
        email: Set(user.email.clone()),
        session_id: Set(extra.session_id),
        detail: Set(extra.detail),
        created_at: Set(now),
        expires_at: Set(now + ttl_ms),
        used_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok((raw, row))
}

/// The unused, unexpired token of this purpose `raw` names, if any. Reads only: a link opened
/// (a GET, a mail scanner's prefetch) consumes nothing.
pub async fn find_live(
    db: &impl ConnectionTrait,
    purpose: Purpose,
    raw: &str,
    now: Millis,
) -> Result<Option<Token>, DbErr> {
    if raw.is_empty() || raw.len() > MAX_TOKEN_CHARS {
        return Ok(None);
    }
    account_tokens::Entity::find()
        .filter(account_tokens::Column::TokenHash.eq(digest(raw)))
        .filter(account_tokens::Column::Purpose.eq(purpose.as_str()))
        .filter(account_tokens::Column::UsedAt.is_null())
        .filter(account_tokens::Column::ExpiresAt.gt(now))
        .one(db)
        .await
}

/// Uses `token`: true for exactly one caller, false when it was used (or expired) meanwhile.
pub async fn consume(db: &impl ConnectionTrait, token: &Token, now: Millis) -> Result<bool, DbErr> {
    let done = account_tokens::Entity::update_many()
        .col_expr(account_tokens::Column::UsedAt, Expr::value(now))
        .filter(account_tokens::Column::Id.eq(token.id))
        .filter(account_tokens::Column::UsedAt.is_null())
        .filter(account_tokens::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Uses every outstanding token of this purpose of the user: one reset link used, the others
/// die with it. Returns how many there were.
pub async fn consume_all(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: Purpose,
    now: Millis,
) -> Result<u64, DbErr> {
    let done = account_tokens::Entity::update_many()
        .col_expr(account_tokens::Column::UsedAt, Expr::value(now))
        .filter(account_tokens::Column::UserId.eq(user_id))
        .filter(account_tokens::Column::Purpose.eq(purpose.as_str()))
        .filter(account_tokens::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// Removes every token that expired before `before` (the retention task).
pub async fn purge_expired(db: &impl ConnectionTrait, before: Millis) -> Result<u64, DbErr> {
    Ok(account_tokens::Entity::delete_many()
        .filter(account_tokens::Column::ExpiresAt.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_token_is_stored_as_its_sha256_only() {
        let d = super::digest("abc");
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
