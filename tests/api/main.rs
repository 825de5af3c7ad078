//! The integration test binary: every test starts the real application (or the real binary)
//! against real PostgreSQL and Redis, each with its own database and key prefix.

mod helpers;

mod cli_config;
mod cli_ops;
mod csrf;
mod email_identity;
mod google;
mod health;
mod migrate;
mod op;
mod passwords;
mod redis_outage;
mod session_store;
mod sessions_http;
