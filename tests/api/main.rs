//! The integration test binary: every test starts the real application (or the real binary)
//! against real PostgreSQL and Redis, each with its own database and key prefix. Unless
//! `TEST_POSTGRES_URL` / `TEST_REDIS_URL` say otherwise, those servers are the run's own,
//! started from the binaries on `PATH` (see `helpers::servers`).

mod helpers;

mod audit;
mod browser;
mod cli_config;
mod cli_ops;
mod cli_output;
mod cookies;
mod csrf;
mod email_identity;
mod failover;
mod forward_auth;
mod google;
mod harness;
mod health;
mod mailbox;
mod metrics;
mod mfa;
mod migrate;
mod op;
mod openapi;
mod pages;
mod partial_failures;
mod passwords;
mod recovery;
mod redis_outage;
mod scale_out;
mod sessions_http;
mod slow_clients;
mod stores;
mod webhooks;
