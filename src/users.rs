//! The user service, shared by the HTTP API and the operator CLI.

use chrono::Utc;
use sea_orm::{
    sea_query::{Expr, ExprTrait, Func},
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, SqlErr,
};
use uuid::Uuid;

use crate::{
    entities::{
        identities,
        users::{self, Model as User},
    },
    session::record::UserSnapshot,
};

pub use authauth_email::{EmailAddress, InvalidEmail};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error(transparent)]
    InvalidEmail(#[from] InvalidEmail),
    #[error("{0}")]
    InvalidName(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The longest e-mail address accepted, in characters: the e-mail rule allows 254 octets
/// (RFC 5321 §4.5.3.1.3), and no character is shorter than an octet.
pub const EMAIL_MAX_CHARS: usize = authauth_email::MAX_ADDRESS_OCTETS;
/// The longest display name accepted, in characters.
pub const NAME_MAX_CHARS: usize = 200;

/// Checks an e-mail address and computes its identity: the one rule for what is an address and
/// which spellings are the same address, for signup, sign-in, throttling, provider linking and
/// the CLI (documented in the `authauth_email` crate and docs/security.md). Lookups, the unique
/// index and the throttle use [`EmailAddress::canonical`]; [`EmailAddress::display`] is what is
/// stored for display.
pub fn parse_email(raw: &str) -> Result<EmailAddress, UserError> {
    Ok(EmailAddress::parse(raw)?)
}

/// Trims a display name; 1–200 characters, no control characters.
pub fn normalize_name(raw: &str) -> Result<String, UserError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(UserError::InvalidName("the full name is empty".into()));
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(UserError::InvalidName(
            "the full name is longer than 200 characters".into(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(UserError::InvalidName(
            "the full name contains control characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// What a session carries about its user.
pub fn snapshot(user: &User) -> UserSnapshot {
    UserSnapshot {
        email: user.email.clone(),
        full_name: user.full_name.clone(),
        picture: user.picture.clone(),
        email_verified: user.email_verified_at.is_some(),
    }
}

pub async fn find_by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<User>, DbErr> {
    users::Entity::find_by_id(id).one(db).await
}

/// The user with this address, under any spelling of it (served by the unique index on
/// `email_canonical`).
pub async fn find_by_email(db: &impl ConnectionTrait, email: &EmailAddress) -> Result<Option<User>, DbErr> {
    users::Entity::find()
        .filter(users::Column::EmailCanonical.eq(email.canonical()))
        .one(db)
        .await
}

/// Creates a user. An address another account has under any spelling is `EmailTaken`, decided
/// by the unique index, so two concurrent signups cannot both succeed.
pub async fn create(
    db: &impl ConnectionTrait,
    email: &EmailAddress,
    full_name: &str,
    picture: Option<String>,
    password_hash: Option<String>,
    email_verified: bool,
) -> Result<User, UserError> {
    let now = Utc::now();
    let model = users::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set(email.display().to_string()),
        email_canonical: Set(email.canonical().to_string()),
        full_name: Set(full_name.to_string()),
        picture: Set(picture),
        password_hash: Set(password_hash),
        created_at: Set(now),
        updated_at: Set(now),
        disabled_at: Set(None),
        email_verified_at: Set(email_verified.then_some(now)),
    };
    match model.insert(db).await {
        Ok(user) => Ok(user),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(UserError::EmailTaken)
        }
        Err(e) => Err(e.into()),
    }
}

/// The identity a provider knows as `(issuer, subject)`.
pub async fn find_identity(
    db: &impl ConnectionTrait,
    issuer: &str,
    subject: &str,
) -> Result<Option<identities::Model>, DbErr> {
    identities::Entity::find()
        .filter(identities::Column::Issuer.eq(issuer))
        .filter(identities::Column::Subject.eq(subject))
        .one(db)
        .await
}

/// Every identity linked to a user.
pub async fn identities_of(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Vec<identities::Model>, DbErr> {
    identities::Entity::find()
        .filter(identities::Column::UserId.eq(user_id))
        .all(db)
        .await
}

/// The identities of several users in one query (a page of `users list`).
pub async fn identities_of_many(
    db: &impl ConnectionTrait,
    user_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<identities::Model>>, DbErr> {
    let mut by_user: std::collections::HashMap<Uuid, Vec<identities::Model>> = Default::default();
    if user_ids.is_empty() {
        return Ok(by_user);
    }
    for identity in identities::Entity::find()
        .filter(identities::Column::UserId.is_in(user_ids.iter().copied()))
        .all(db)
        .await?
    {
        by_user.entry(identity.user_id).or_default().push(identity);
    }
    Ok(by_user)
}

/// Links a provider identity to a user (unique on `(issuer, subject)`).
pub async fn link_identity(
    db: &impl ConnectionTrait,
    user: &User,
    issuer: &str,
    subject: &str,
    email: Option<&str>,
) -> Result<identities::Model, DbErr> {
    identities::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user.id),
        issuer: Set(issuer.to_string()),
        subject: Set(subject.to_string()),
        email: Set(email.map(str::to_string)),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
}

/// Takes the provider's name and picture when they changed.
pub async fn update_profile(
    db: &impl ConnectionTrait,
    user: &User,
    name: Option<&str>,
    picture: Option<&str>,
) -> Result<User, DbErr> {
    let name = name.and_then(|n| normalize_name(n).ok());
    let name_changed = name.as_ref().is_some_and(|n| *n != user.full_name);
    let picture_changed = picture.is_some() && picture != user.picture.as_deref();
    if !name_changed && !picture_changed {
        return Ok(user.clone());
    }
    let mut model: users::ActiveModel = user.clone().into();
    if let Some(n) = name.filter(|_| name_changed) {
        model.full_name = Set(n);
    }
    if picture_changed {
        model.picture = Set(picture.map(str::to_string));
    }
    model.updated_at = Set(Utc::now());
    model.update(db).await
}

/// Finds a user by id (a UUID) or e-mail (any spelling): how operators name users. A string that
/// is neither names nobody.
pub async fn find_by_email_or_id(db: &impl ConnectionTrait, who: &str) -> Result<Option<User>, DbErr> {
    if let Ok(id) = Uuid::parse_str(who.trim()) {
        return find_by_id(db, id).await;
    }
    match EmailAddress::parse(who) {
        Ok(email) => find_by_email(db, &email).await,
        Err(_) => Ok(None),
    }
}

/// One page of users, ordered by e-mail, optionally filtered by a case-insensitive substring
/// of the e-mail or the name. `after` is the last e-mail of the previous page.
pub async fn list_page(
    db: &impl ConnectionTrait,
    search: Option<&str>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<User>, DbErr> {
    use sea_orm::{sea_query::LikeExpr, Condition, QueryOrder, QuerySelect};
    let mut query = users::Entity::find();
    if let Some(text) = search.map(str::trim).filter(|t| !t.is_empty()) {
        // `%` and `_` in the search are literal; `\` escapes them on both backends.
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let like = || LikeExpr::new(format!("%{escaped}%")).escape('\\');
        query = query.filter(
            Condition::any()
                .add(Expr::expr(Func::lower(Expr::col(users::Column::Email))).like(like()))
                .add(Expr::expr(Func::lower(Expr::col(users::Column::FullName))).like(like())),
        );
    }
    if let Some(after) = after {
        query = query.filter(users::Column::Email.gt(after));
    }
    query
        .order_by_asc(users::Column::Email)
        .limit(limit)
        .all(db)
        .await
}

/// Marks a user disabled (`Some(now)`) or enabled (`None`). Sign-in checks this flag; revoking
/// the sessions of a disabled user is the caller's job (see `cli::users`).
pub async fn set_disabled(db: &impl ConnectionTrait, user: &User, disabled: bool) -> Result<User, DbErr> {
    let mut model: users::ActiveModel = user.clone().into();
    let now = Utc::now();
    model.disabled_at = Set(disabled.then_some(now));
    model.updated_at = Set(now);
    model.update(db).await
}

/// Removes the password of an account (it then signs in only through its linked provider).
pub async fn clear_password(db: &impl ConnectionTrait, user: &User) -> Result<User, DbErr> {
    restore_password_hash(db, user, None).await
}

/// Puts back a password hash (`None`: no password), undoing a change that could not finish.
pub async fn restore_password_hash(
    db: &impl ConnectionTrait,
    user: &User,
    hash: Option<String>,
) -> Result<User, DbErr> {
    let mut model: users::ActiveModel = user.clone().into();
    model.password_hash = Set(hash);
    model.updated_at = Set(Utc::now());
    model.update(db).await
}

pub async fn set_password_hash(db: &impl ConnectionTrait, user: &User, hash: String) -> Result<User, DbErr> {
    let mut model: users::ActiveModel = user.clone().into();
    model.password_hash = Set(Some(hash));
    model.updated_at = Set(Utc::now());
    model.update(db).await
}

/// Stores `new` in place of the password hash `old` — only while the account still has `old`,
/// so a password changed meanwhile is never overwritten. Whether it was stored.
pub async fn upgrade_password_hash(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    old: &str,
    new: String,
) -> Result<bool, DbErr> {
    let done = users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(new))
        .filter(users::Column::Id.eq(user_id))
        .filter(users::Column::PasswordHash.eq(old))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Records that the owner of the address proved it (no change when it was already verified).
pub async fn mark_email_verified(db: &impl ConnectionTrait, user: &User) -> Result<User, DbErr> {
    if user.email_verified_at.is_some() {
        return Ok(user.clone());
    }
    let mut model: users::ActiveModel = user.clone().into();
    let now = Utc::now();
    model.email_verified_at = Set(Some(now));
    model.updated_at = Set(now);
    model.update(db).await
}
