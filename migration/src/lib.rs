//! Database migrations for authauth.
//!
//! One file per migration, named `mYYYYMMDD_NNNNNN_verb_noun.rs`; every migration has a working
//! `down`, and every migration runs on both PostgreSQL and SQLite.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_users_and_identities;
mod m20261127_000002_create_sessions;
mod m20261127_000003_create_login_failures;
mod m20261127_000004_create_auth_flows;
mod m20261127_000005_add_users_email_canonical;
mod m20261128_000006_create_audit_events;
mod m20261128_000007_create_webhook_deliveries;
mod m20261128_000008_create_account_tokens;
mod m20261204_000009_create_second_factors;
mod m20261204_000010_create_passkeys;

/// The ordered list of authauth's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_users_and_identities::Migration),
            Box::new(m20261127_000002_create_sessions::Migration),
            Box::new(m20261127_000003_create_login_failures::Migration),
            Box::new(m20261127_000004_create_auth_flows::Migration),
            Box::new(m20261127_000005_add_users_email_canonical::Migration),
            Box::new(m20261128_000006_create_audit_events::Migration),
            Box::new(m20261128_000007_create_webhook_deliveries::Migration),
            Box::new(m20261128_000008_create_account_tokens::Migration),
            Box::new(m20261204_000009_create_second_factors::Migration),
            Box::new(m20261204_000010_create_passkeys::Migration),
        ]
    }
}
