//! The session cookie as browsers really send it: several cookies with the session's name (a
//! sibling subdomain can plant one whenever the `__Host-` prefix is off — as it is here, with
//! the development name `authauth_session`), and other cookies the server does not own.

use std::time::Duration;

use reqwest::header::HeaderValue;
use serde_json::Value;

use crate::helpers::*;

/// `GET path` with exactly this `Cookie` header (no jar).
async fn get_with_cookie_header(app: &TestApp, path: &str, cookie: HeaderValue) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// `name=a; name=b; …` for the session cookie.
fn session_cookies(app: &TestApp, values: &[&str]) -> HeaderValue {
    let header = values
        .iter()
        .map(|v| format!("{}={v}", app.cookie_name()))
        .collect::<Vec<_>>()
        .join("; ");
    HeaderValue::from_str(&header).unwrap()
}

/// A session that was signed in and then signed out: its cookie is signed but revoked.
async fn revoked_cookie(app: &TestApp, email: &str) -> String {
    let (c, cookie) = app.signed_up_client(email).await;
    let resp = c
        .post(app.url("/auth/logout"))
        .header("origin", &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    cookie
}

per_backend!(a_dead_cookie_planted_before_the_live_one_neither_wins_nor_deletes_it);
async fn a_dead_cookie_planted_before_the_live_one_neither_wins_nor_deletes_it(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    assert!(!app.cookie_name().starts_with("__Host-"));
    let planted = revoked_cookie(&app, "mallory@example.com").await;
    let (_victim, live) = app.signed_up_client("victim@example.com").await;
    for order in [
        [planted.as_str(), live.as_str()],
        [live.as_str(), planted.as_str()],
    ] {
        let resp = get_with_cookie_header(&app, "/auth/me", session_cookies(&app, &order)).await;
        assert!(
            set_cookie_header(&resp, app.cookie_name()).is_none(),
            "{backend:?}: a request with a live session must not delete its cookie"
        );
        assert_eq!(resp.status(), 200, "{backend:?}: the revoked cookie won");
        let me: Value = resp.json().await.unwrap();
        assert_eq!(me["user"]["email"], "victim@example.com", "{backend:?}");
    }
    // A forged value in front changes nothing either.
    let resp = get_with_cookie_header(&app, "/auth/me", session_cookies(&app, &["forged", &live])).await;
    assert_eq!(resp.status(), 200, "{backend:?}");
    assert!(set_cookie_header(&resp, app.cookie_name()).is_none());
}

per_backend!(two_live_sessions_in_one_request_authenticate_as_neither_and_sign_in_ends_both);
async fn two_live_sessions_in_one_request_authenticate_as_neither_and_sign_in_ends_both(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let (_mallory, attacker) = app.signed_up_client("mallory@example.com").await;
    let (_victim, victim) = app.signed_up_client("victim@example.com").await;
    for order in [
        [attacker.as_str(), victim.as_str()],
        [victim.as_str(), attacker.as_str()],
    ] {
        let resp = get_with_cookie_header(&app, "/auth/me", session_cookies(&app, &order)).await;
        assert!(
            set_cookie_header(&resp, app.cookie_name()).is_none(),
            "{backend:?}: neither live cookie may be deleted"
        );
        assert_eq!(resp.status(), 401, "{backend:?}: acted as one of two sessions");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "ambiguous_session", "{backend:?}");
    }
    // A state-changing request on behalf of a session is refused the same way and ends nothing.
    // (Logout is not one: it ends every session presented, see `openapi`.)
    let resp = reqwest::Client::new()
        .post(app.url("/auth/logout-all"))
        .header("origin", &app.address)
        .header("cookie", session_cookies(&app, &[&attacker, &victim]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{backend:?}");
    for cookie in [&attacker, &victim] {
        assert_eq!(app.get_with_cookie("/auth/me", cookie).await.status(), 200);
    }
    // Signing in again is the way out: it ends every session the browser presented, so
    // the planted one can no longer stand in the way of the new one.
    let resp = reqwest::Client::new()
        .post(app.url("/auth/login"))
        .header("origin", &app.address)
        .header("cookie", session_cookies(&app, &[&attacker, &victim]))
        .json(&serde_json::json!({"email": "victim@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{backend:?}");
    let fresh = set_cookie_value(&resp, app.cookie_name()).unwrap();
    let resp = get_with_cookie_header(&app, "/auth/me", session_cookies(&app, &[&attacker, &fresh])).await;
    assert_eq!(resp.status(), 200, "{backend:?}");
    assert_eq!(
        resp.json::<Value>().await.unwrap()["user"]["email"],
        "victim@example.com"
    );
}

#[tokio::test]
async fn when_every_presented_session_cookie_is_dead_the_answer_is_401_and_the_cookie_is_cleared() {
    let app = spawn_app().await;
    let (_a, first) = app.signed_up_client("first@example.com").await;
    let (_b, second) = app.signed_up_client("second@example.com").await;
    app.advance(app.state.settings.session.idle_timeout + Duration::from_secs(1));
    let resp = get_with_cookie_header(&app, "/auth/me", session_cookies(&app, &[&first, &second])).await;
    let cleared = set_cookie_header(&resp, app.cookie_name()).expect("the dead cookie is deleted");
    assert!(cleared.to_ascii_lowercase().contains("max-age=0"), "{cleared}");
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "session_expired");
}

#[tokio::test]
async fn more_than_four_session_cookies_are_refused_and_none_is_deleted() {
    let app = spawn_app().await;
    let planted = revoked_cookie(&app, "mallory@example.com").await;
    let (_victim, live) = app.signed_up_client("victim@example.com").await;
    let mut values = vec![planted.as_str(); 4];
    values.push(&live);
    let resp = get_with_cookie_header(&app, "/auth/me", session_cookies(&app, &values)).await;
    assert!(set_cookie_header(&resp, app.cookie_name()).is_none());
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "ambiguous_session");
    // Four are examined.
    let resp = get_with_cookie_header(&app, "/auth/me", session_cookies(&app, &values[1..])).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_non_ascii_byte_in_another_cookie_does_not_hide_the_session_cookie() {
    let app = spawn_app().await;
    let (_c, live) = app.signed_up_client("cafe@example.com").await;
    let mut header = b"other=caf\xc3\xa9; ".to_vec();
    header.extend_from_slice(format!("{}={live}", app.cookie_name()).as_bytes());
    let resp = get_with_cookie_header(&app, "/auth/me", HeaderValue::from_bytes(&header).unwrap()).await;
    assert_eq!(resp.status(), 200);
    // In its own header line too, and with a byte that is not even UTF-8.
    let resp = reqwest::Client::new()
        .get(app.url("/auth/me"))
        .header("cookie", HeaderValue::from_bytes(b"other=\xff\xfe").unwrap())
        .header("cookie", session_cookies(&app, &[&live]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
