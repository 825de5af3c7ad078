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

/// Every value of the cookie `name` in a request, in the order sent (a browser may send several
/// with one name: same name, other `Domain` or `Path`).
///
/// Parsed per `;`-separated pair on the raw bytes: a cookie with bytes outside ASCII (say another
/// application's `other=café` on the same host) is skipped alone, instead of hiding every cookie
/// of its header line. A pair of ours whose value is not ASCII was not written by this server
/// and is skipped too.
pub fn session_cookie_values<'a>(req: &'a Request, name: &str) -> Vec<&'a str> {
    let mut values = Vec::new();
    for line in req.headers().get_all(header::COOKIE) {
        let mut rest = line.as_bytes();
        // Pair by pair, each looked at once: a pair that does not start with the name is
        // passed over at its first differing byte.
        while !rest.is_empty() {
            let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
            if let Some(value) = value_of(&rest[..end], name.as_bytes()) {
                values.push(value);
            }
            rest = rest.get(end + 1..).unwrap_or_default();
        }
    }
    values
}

/// The first non-empty value of the cookie `name` (the device, ceremony and sign-in flow
/// cookies: one per browser, an empty one is a deletion that has not reached it yet).
pub fn first_cookie_value<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    session_cookie_values(req, name)
        .into_iter()
        .find(|v| !v.is_empty())
}

/// The value of one `name=value` pair, if the pair is `name`'s and its value ASCII. (A cookie
/// name holds neither `=` nor white space, so the name then `=` is the pair's first `=`.)
fn value_of<'a>(pair: &'a [u8], name: &[u8]) -> Option<&'a str> {
    let after_name = pair.trim_ascii_start().strip_prefix(name)?;
    let value = after_name.trim_ascii_start().strip_prefix(b"=")?.trim_ascii();
    if !value.is_ascii() {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?;
    Some(value.trim_matches('"'))
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
    /// Every presented session cookie is dead (expired, revoked, forged): delete it. Never
    /// decided on a store failure or next to a live cookie (see `session_auth::authenticate`).
    Clear,
}

/// Per-request slot for the [`CookieAction`] and any other `Set-Cookie` a handler wants on its
/// response whatever the outcome (the sign-in flow cookie is cleared on success and on error),
/// placed in the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct CookieSlot {
    action: Arc<Mutex<CookieAction>>,
    extra: Arc<Mutex<Vec<String>>>,
}

impl CookieSlot {
    pub fn set(&self, action: CookieAction) {
        if let Ok(mut slot) = self.action.lock() {
            *slot = action;
        }
    }

    pub fn take(&self) -> CookieAction {
        self.action
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    /// Adds a `Set-Cookie` header to the response, success or error.
    pub fn add(&self, set_cookie: String) {
        if let Ok(mut extra) = self.extra.lock() {
            extra.push(set_cookie);
        }
    }

    pub fn take_extra(&self) -> Vec<String> {
        self.extra
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

/// The name of the cookie that binds a pending OpenID sign-in to the browser.
pub fn flow_cookie_name(settings: &SessionSettings) -> &'static str {
    if settings.cookie_secure {
        "__Host-authauth_flow"
    } else {
        "authauth_flow"
    }
}

/// `Set-Cookie` for a pending sign-in: HttpOnly, `SameSite=Lax` (it must come back on the
/// provider's top-level redirect), short-lived.
pub fn set_flow_cookie(settings: &SessionSettings, value: &str, max_age: Duration) -> String {
    let mut c = Cookie::new_with_str(flow_cookie_name(settings), value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_path("/");
    c.set_secure(settings.cookie_secure);
    c.set_max_age(max_age);
    c.to_string()
}

/// `Set-Cookie` that deletes the flow cookie.
pub fn clear_flow_cookie(settings: &SessionSettings) -> String {
    set_flow_cookie(settings, "", Duration::ZERO)
}

/// The name of the device cookie (see `auth::device`).
pub fn device_cookie_name(settings: &SessionSettings) -> &'static str {
    if settings.cookie_secure {
        "__Host-authauth_device"
    } else {
        "authauth_device"
    }
}

/// `Set-Cookie` for a device cookie: HttpOnly, `SameSite=Lax`, kept 180 days.
pub fn set_device_cookie(settings: &SessionSettings, value: &str) -> String {
    let mut c = Cookie::new_with_str(device_cookie_name(settings), value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_path("/");
    c.set_secure(settings.cookie_secure);
    c.set_max_age(Duration::from_secs(180 * 24 * 3600));
    c.to_string()
}

/// The name of the cookie that binds a passkey ceremony to the browser that started it.
pub fn passkey_cookie_name(settings: &SessionSettings) -> &'static str {
    if settings.cookie_secure {
        "__Host-authauth_passkey"
    } else {
        "authauth_passkey"
    }
}

/// `Set-Cookie` for a passkey ceremony: HttpOnly, `SameSite=Strict` (the finish is a
/// same-origin `fetch`), as long as the ceremony (`max_age`; zero deletes it).
pub fn set_passkey_cookie(settings: &SessionSettings, value: &str, max_age: Duration) -> String {
    let mut c = Cookie::new_with_str(passkey_cookie_name(settings), value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Strict);
    c.set_path("/");
    c.set_secure(settings.cookie_secure);
    c.set_max_age(max_age);
    c.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Settings,
        session::record::{SignInMethod, UserSnapshot},
    };

    fn settings(secure: bool) -> SessionSettings {
        let mut s = Settings::from_vars(&[("APP_ENV", "development")])
            .unwrap()
            .session;
        s.cookie_secure = secure;
        if secure {
            s.cookie_name = "__Host-authauth_session".into();
        }
        s
    }

    fn request(cookie_headers: &[&str]) -> Request {
        let mut b = Request::builder();
        for h in cookie_headers {
            b = b.header(header::COOKIE, *h);
        }
        b.finish()
    }

    fn record(absolute_expires_at: Millis) -> SessionRecord {
        SessionRecord {
            public_id: "sAAAAAAAAbbbbbbbbbbbbbbbb".into(),
            user_id: uuid::Uuid::nil(),
            user: UserSnapshot {
                email: "a@example.com".into(),
                full_name: "A".into(),
                picture: None,
                email_verified: false,
            },
            method: SignInMethod::Password,
            created_at: 0,
            last_seen_at: 0,
            idle_expires_at: absolute_expires_at,
            absolute_expires_at,
            token_issued_at: 0,
            ip: None,
            user_agent: None,
            previous: None,
            stage: Default::default(),
            amr: Vec::new(),
            authenticated_at: None,
        }
    }

    #[test]
    fn every_value_of_the_name_is_read_in_order_and_nothing_else() {
        let req = request(&[
            "other=1; authauth_session=a.b; authauth_session2=no; x",
            "authauth_session = \"c.d\" ;  authauth_session=",
            "authauth_sessio=no; =no",
        ]);
        assert_eq!(
            session_cookie_values(&req, "authauth_session"),
            ["a.b", "c.d", ""]
        );
        assert!(session_cookie_values(&request(&[]), "authauth_session").is_empty());
    }

    #[test]
    fn a_non_ascii_cookie_hides_only_itself() {
        let req = request(&[]);
        let mut req = req;
        req.headers_mut().append(
            header::COOKIE,
            header::HeaderValue::from_bytes(
                "other=caf\u{e9}; authauth_session=ok; authauth_session=\u{e9}t\u{e9}".as_bytes(),
            )
            .unwrap(),
        );
        assert_eq!(session_cookie_values(&req, "authauth_session"), ["ok"]);
    }

    #[test]
    fn a_session_cookie_lives_as_long_as_the_session_and_carries_its_attributes() {
        let dev = set_cookie(&settings(false), "v", &record(90_500), 500);
        assert!(dev.starts_with("authauth_session=v"), "{dev}");
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=90"] {
            assert!(dev.contains(attr), "{attr}: {dev}");
        }
        assert!(!dev.contains("Secure") && !dev.contains("Domain"), "{dev}");
        let prod = set_cookie(&settings(true), "v", &record(90_500), 500);
        assert!(
            prod.starts_with("__Host-authauth_session=v") && prod.contains("Secure"),
            "{prod}"
        );
        // Past its end: deleted, never a negative or huge Max-Age.
        let over = set_cookie(&settings(false), "v", &record(1_000), 5_000);
        assert!(over.contains("Max-Age=0"), "{over}");
        let cleared = clear_cookie(&settings(true));
        assert!(cleared.starts_with("__Host-authauth_session=;"), "{cleared}");
        for attr in ["Max-Age=0", "HttpOnly", "Secure", "Path=/"] {
            assert!(cleared.contains(attr), "{attr}: {cleared}");
        }
    }

    #[test]
    fn the_other_cookies_have_their_names_lifetimes_and_same_site() {
        let (dev, prod) = (settings(false), settings(true));
        assert_eq!(flow_cookie_name(&dev), "authauth_flow");
        assert_eq!(flow_cookie_name(&prod), "__Host-authauth_flow");
        assert_eq!(device_cookie_name(&dev), "authauth_device");
        assert_eq!(device_cookie_name(&prod), "__Host-authauth_device");
        assert_eq!(passkey_cookie_name(&dev), "authauth_passkey");
        assert_eq!(passkey_cookie_name(&prod), "__Host-authauth_passkey");
        let flow = set_flow_cookie(&prod, "f", Duration::from_secs(600));
        for attr in [
            "__Host-authauth_flow=f",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Secure",
            "Max-Age=600",
        ] {
            assert!(flow.contains(attr), "{attr}: {flow}");
        }
        assert!(clear_flow_cookie(&dev).contains("Max-Age=0"));
        let device = set_device_cookie(&prod, "d");
        for attr in [
            "__Host-authauth_device=d",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Secure",
            "Max-Age=15552000",
        ] {
            assert!(device.contains(attr), "{attr}: {device}");
        }
        assert!(!set_device_cookie(&dev, "d").contains("Secure"));
        let passkey = set_passkey_cookie(&prod, "p", Duration::from_secs(300));
        for attr in [
            "__Host-authauth_passkey=p",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Secure",
            "Max-Age=300",
        ] {
            assert!(passkey.contains(attr), "{attr}: {passkey}");
        }
        assert!(!set_passkey_cookie(&dev, "p", Duration::ZERO).contains("Secure"));
        assert!(!set_flow_cookie(&dev, "f", Duration::ZERO).contains("Secure"));
    }

    #[test]
    fn the_slot_hands_its_action_and_extra_cookies_over_once() {
        let slot = CookieSlot::default();
        assert!(matches!(slot.take(), CookieAction::Keep));
        slot.set(CookieAction::Set("a=b".into()));
        assert!(matches!(slot.take(), CookieAction::Set(v) if v == "a=b"));
        assert!(matches!(slot.take(), CookieAction::Keep), "taken once");
        slot.set(CookieAction::Clear);
        assert!(
            matches!(slot.clone().take(), CookieAction::Clear),
            "clones share the slot"
        );
        slot.add("x=1".into());
        slot.add("y=2".into());
        assert_eq!(slot.take_extra(), ["x=1", "y=2"]);
        assert!(slot.take_extra().is_empty());
    }
}
