//! authauth: a session-based authentication server.
//!
//! Data flows request → [`api`] (cookie, CSRF) → [`session`] (validate, rotate, revoke) →
//! [`users`]/[`auth`] → response. The operator CLI enters at [`cli`] and calls the same
//! `session` and `users` functions. Nothing in `session` knows about HTTP; nothing in `api`
//! knows about Redis keys.

// Server code does not panic on bad input: no unwrap/expect/panic outside tests (a justified
// exception is an `#[allow]` with its reason), no placeholders left behind, no lock held
// across an await.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![deny(
    clippy::todo,
    clippy::unimplemented,
    clippy::dbg_macro,
    clippy::await_holding_lock,
    clippy::unreachable
)]
#![warn(unused_extern_crates)]
// Commands write through `cli::output::write` (`outln!`), where a closed stdout is a normal end;
// `println!` panics on it.
#![cfg_attr(not(test), deny(clippy::print_stdout))]

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod entities;
pub mod error;
pub mod mail;
pub mod metrics;
pub mod pages;
pub mod server;
pub mod session;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod user_agent;
pub mod users;
pub mod webhooks;
