//! sea-orm entities, one per table, mirroring `migration/`. Queries live in the services
//! (`users`, `session::sql`), not here.

pub mod account_tokens;
pub mod audit_events;
pub mod auth_flows;
pub mod identities;
pub mod login_failures;
pub mod passkeys;
pub mod recovery_codes;
pub mod sessions;
pub mod totp_factors;
pub mod users;
pub mod webhook_deliveries;
