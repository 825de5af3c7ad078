//! The session cookie on the wire: reading it from requests and writing `Set-Cookie`.
//!
//! Attributes: `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`; `Secure` (and by default the
//! `__Host-` prefix) in production. `Max-Age` is the session's remaining absolute lifetime, so
//! the browser never keeps the cookie longer than the server would accept it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use poem::{
    http::header,
    web::cookie::{Cookie, SameSite},
    Request,
};

use crate::{
    config::SessionSettings,
    session::record::{Millis, SessionRecord},
};

/// Every value of the session cookie in a request (a browser may send several with one name).
pub fn session_cookie_values(req: &Request, name: &str) -> Vec<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
        .collect()
}

/// `Set-Cookie` for a session.
pub fn set_cookie(settings: &SessionSettings, value: &str, record: &SessionRecord, now: Millis) -> String {
    let mut c = base(settings, value);
    let remaining = (record.absolute_expires_at - now).max(0) as u64;
    c.set_max_age(Duration::from_millis(remaining));
    c.to_string()
}

/// `Set-Cookie` that deletes the session cookie.
pub fn clear_cookie(settings: &SessionSettings) -> String {
    let mut c = base(settings, "");
    c.set_max_age(Duration::ZERO);
    c.to_string()
}

fn base(settings: &SessionSettings, value: &str) -> Cookie {
    let mut c = Cookie::new_with_str(settings.cookie_name.clone(), value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_path("/");
    c.set_secure(settings.cookie_secure);
    c
}

/// What the response must do with the session cookie, decided while handling the request
/// (rotation, or a cookie the server no longer accepts) and applied by the guard middleware.
#[derive(Debug, Clone, Default)]
pub enum CookieAction {
    #[default]
    Keep,
    /// A rotated token: send this `Set-Cookie`.
    Set(String),
    /// The presented cookie is dead (expired, revoked, forged): delete it.
    Clear,
}

/// Per-request slot for the [`CookieAction`], placed in the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct CookieSlot(pub Arc<Mutex<CookieAction>>);

impl CookieSlot {
    pub fn set(&self, action: CookieAction) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = action;
        }
    }

    pub fn take(&self) -> CookieAction {
        self.0
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}
