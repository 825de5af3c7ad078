//! The session engine: how a session is created, stored, validated, rotated and revoked.
//!
//! Nothing here knows about HTTP. Time is passed in (`now`, milliseconds, from a [`crate::clock::Clock`]) so policies are
//! testable without sleeping.

pub mod derived;
pub mod policy;
pub mod record;
pub mod service;
pub mod store;
pub mod token;

pub use service::{ClientInfo, Delivery, Presented, SessionError, Sessions, Validated};
pub use store::{SessionStore, StoreError};
