//! `users.email_canonical`: the identity of an account's e-mail address, computed in Rust by
//! `authauth_email` (see its crate documentation for the rule), unique.
//!
//! It replaces the unique index on `lower(email)`: `lower()` folds differently on each database
//! (PostgreSQL maps `İ` to `i` and the Kelvin sign to `k`; SQLite folds ASCII only) and
//! differently from Rust, so the same address could be one account on one database and two on
//! another, and the sign-in throttle could count one account under several names.
//!
//! Existing rows are backfilled with the same function the server uses. Rows the rule refuses,
//! or that it finds to be the same address, stop the migration before anything changes, naming
//! them: which account keeps an address is an operator's decision, not a migration's.

use std::collections::HashMap;

use authauth_email::EmailAddress;
use sea_orm_migration::{
    prelude::*,
    sea_orm::{DatabaseBackend, Statement},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // A half-done backfill would leave accounts with no usable identity: all or nothing, on
    // SQLite too.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT email FROM users ORDER BY created_at, email",
            ))
            .await?;
        let mut owner_of: HashMap<String, String> = HashMap::new();
        let mut backfill = Vec::new();
        let mut problems = Vec::new();
        for row in rows {
            let email: String = row.try_get("", "email")?;
            // `{:?}`: the addresses may hold characters a terminal would act on.
            match EmailAddress::parse(&email) {
                Err(why) => problems.push(format!("{email:?}: {why}")),
                Ok(address) => match owner_of.get(address.canonical()) {
                    Some(first) => {
                        problems.push(format!("{email:?} is the same address as {first:?}"));
                    }
                    None => {
                        owner_of.insert(address.canonical().to_string(), email.clone());
                        backfill.push((email, address.canonical().to_string()));
                    }
                },
            }
        }
        if !problems.is_empty() {
            return Err(DbErr::Migration(format!(
                "{} account(s) have no canonical e-mail address of their own; nothing was changed. \
                 Change their `users.email` or delete them, then run the migration again:\n  {}",
                problems.len(),
                problems.join("\n  ")
            )));
        }

        // Every row gets its value below; the default only lets the column be added as NOT NULL.
        db.execute_unprepared(
            "ALTER TABLE users ADD COLUMN email_canonical VARCHAR(320) NOT NULL DEFAULT ''",
        )
        .await?;
        let update = match backend {
            DatabaseBackend::Postgres => "UPDATE users SET email_canonical = $1 WHERE email = $2",
            _ => "UPDATE users SET email_canonical = ? WHERE email = ?",
        };
        // `email` is unique (the `lower(email)` index still stands here).
        for (email, canonical) in backfill {
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                update,
                [canonical.into(), email.into()],
            ))
            .await?;
        }
        if backend == DatabaseBackend::Postgres {
            // SQLite cannot drop a default without rebuilding the table (which would cascade to
            // `identities`); there the unique index still allows at most one empty value.
            db.execute_unprepared("ALTER TABLE users ALTER COLUMN email_canonical DROP DEFAULT")
                .await?;
        }
        db.execute_unprepared("DROP INDEX users_email_lower_key").await?;
        manager
            .create_index(
                Index::create()
                    .name("users_email_canonical_key")
                    .table(Users::Table)
                    .col(Users::EmailCanonical)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX users_email_canonical_key")
            .await?;
        db.execute_unprepared("ALTER TABLE users DROP COLUMN email_canonical")
            .await?;
        db.execute_unprepared("CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email))")
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    EmailCanonical,
}
