//! The integration test binary: every test starts the real application (or the real binary)
//! against real PostgreSQL and Redis, each with its own database and key prefix.

mod helpers;

mod cli_config;
mod cli_ops;
mod cookies;
mod csrf;
mod google;
mod health;
mod migrate;
mod op;
mod partial_failures;
mod passwords;
mod redis_outage;
mod sessions_http;
mod slow_clients;
mod stores;
