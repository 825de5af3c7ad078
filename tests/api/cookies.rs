//! The session cookie as browsers really send it, next to cookies the server does not own.

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
