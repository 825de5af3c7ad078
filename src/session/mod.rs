//! The session engine: how a session is created, stored, validated, rotated and revoked.
//!
//! Nothing here knows about HTTP. Time is passed in (`now`, milliseconds) so policies are
//! testable without sleeping.

pub mod policy;
pub mod record;
pub mod redis;
pub mod service;
pub mod sql;
pub mod store;
pub mod token;

pub use service::{ClientInfo, SessionError, Sessions, Validated};
pub use store::{AnyStore, SessionStore, StoreError};

/// The current time in the store's unit (milliseconds since the Unix epoch).
pub fn now_ms() -> record::Millis {
    chrono::Utc::now().timestamp_millis()
}
