//! The session engine: how a session is created, stored, validated, rotated and revoked.
//!
//! Nothing here knows about HTTP. Time is passed in (`now`) so policies are testable without
//! sleeping.

pub mod redis;
pub mod sql;
pub mod store;
pub mod token;

pub use store::{AnyStore, StoreError};
