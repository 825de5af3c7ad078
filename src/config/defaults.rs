//! Defaults, documented in `docs/configuration.md`.

use std::time::Duration;

pub const HOST: &str = "127.0.0.1";
pub const PORT: u16 = 3000;
pub const REDIS_KEY_PREFIX: &str = "authauth:";
/// How long a revocation waits for `REDIS_WAIT_REPLICAS` replicas before failing closed.
pub const REDIS_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
pub const COOKIE_NAME_DEVELOPMENT: &str = "authauth_session";
pub const COOKIE_NAME_PRODUCTION: &str = "__Host-authauth_session";
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
pub const ROTATION_INTERVAL: Duration = Duration::from_secs(15 * 60);
pub const ROTATION_GRACE: Duration = Duration::from_secs(60);
/// Enough for every device a person uses, and a bound on what one account can cost the
/// store (every sign-in adds a session; listing and revoking read all of them).
pub const MAX_SESSIONS_PER_USER: usize = 25;
pub const GOOGLE_ISSUER_URL: &str = "https://accounts.google.com";
pub const GOOGLE_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long audit events are kept before the purge removes them.
pub const AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
pub const HTTP_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Where `GET /auth/verify` sends a browser without a session: the hosted sign-in page.
pub const SIGN_IN_PATH: &str = "/login";
/// The hosted pages (`/login`, `/signup`, `/account`) are served unless turned off.
pub const UI_ENABLED: bool = true;
pub const HTTP_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
