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

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error("{0}")]
    InvalidEmail(String),
    #[error("{0}")]
    InvalidName(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Trims an e-mail address and checks its shape (`local@domain`, no spaces, ≤ 254 characters);
/// the domain is lowercased. Uniqueness ignores case everywhere.
pub fn normalize_email(raw: &str) -> Result<String, UserError> {
    let email = raw.trim();
    let invalid = |why: &str| {
        Err(UserError::InvalidEmail(format!(
            "`{email}` is not a valid e-mail address: {why}"
        )))
    };
    if email.is_empty() {
        return Err(UserError::InvalidEmail("the e-mail address is empty".into()));
    }
    if email.chars().count() > 254 {
        return invalid("longer than 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("it contains spaces or control characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return invalid("it has no `@`");
    };
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return invalid("expected name@domain.tld");
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

/// Trims a display name; 1–200 characters, no control characters.
pub fn normalize_name(raw: &str) -> Result<String, UserError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(UserError::InvalidName("the full name is empty".into()));
    }
    if name.chars().count() > 200 {
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
    }
}

pub async fn find_by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<User>, DbErr> {
    users::Entity::find_by_id(id).one(db).await
}

/// Looks a user up by e-mail, ignoring case (served by the `lower(email)` index). A string no
/// address can be (control characters, which PostgreSQL would reject) finds nobody.
pub async fn find_by_email(db: &impl ConnectionTrait, email: &str) -> Result<Option<User>, DbErr> {
    if email.chars().any(char::is_control) {
        return Ok(None);
    }
    users::Entity::find()
        .filter(
            Expr::expr(Func::lower(Expr::col(users::Column::Email))).eq(Func::lower(Expr::val(email.trim()))),
        )
        .one(db)
        .await
}

/// Creates a user. A duplicate e-mail (any case) is `EmailTaken`, decided by the unique index,
/// so two concurrent signups cannot both succeed.
pub async fn create(
    db: &impl ConnectionTrait,
    email: &str,
    full_name: &str,
    picture: Option<String>,
    password_hash: Option<String>,
) -> Result<User, UserError> {
    let now = Utc::now();
    let model = users::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set(email.to_string()),
        full_name: Set(full_name.to_string()),
        picture: Set(picture),
        password_hash: Set(password_hash),
        created_at: Set(now),
        updated_at: Set(now),
        disabled_at: Set(None),
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

/// Finds a user by id (a UUID) or e-mail (any case): how operators name users.
pub async fn find_by_email_or_id(db: &impl ConnectionTrait, who: &str) -> Result<Option<User>, DbErr> {
    match Uuid::parse_str(who.trim()) {
        Ok(id) => find_by_id(db, id).await,
        Err(_) => find_by_email(db, who).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(
            normalize_email("  Alice@Example.COM ").unwrap(),
            "Alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "alice@localhost",
            "alice@.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
