//! The integration test binary: every test starts the real application (or the real binary)
//! against real PostgreSQL and Redis, each with its own database and key prefix.

mod helpers;

mod cli_config;
mod health;
mod migrate;
mod session_store;
mod sessions_http;
