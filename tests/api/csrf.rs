//! Cross-site requests and CORS: SECURITY.md §4.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// Every state-changing route, with a body where it takes one.
fn state_changing_routes(session_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::POST, "/auth/logout".into(), None),
        (Method::POST, "/auth/logout-all".into(), None),
        (
            Method::POST,
            "/auth/password".into(),
            Some(json!({"currentPassword": PASSWORD, "newPassword": "another fine passphrase"})),
        ),
        (Method::DELETE, "/auth/sessions".into(), None),
        (Method::DELETE, format!("/auth/sessions/{session_id}"), None),
        (
            Method::POST,
            "/auth/login".into(),
            Some(json!({"email": "csrf@example.com", "password": PASSWORD})),
        ),
        (
            Method::POST,
            "/auth/signup".into(),
            Some(json!({"email": "csrf2@example.com", "password": PASSWORD, "fullName": "X"})),
        ),
    ]
}

#[tokio::test]
async fn every_state_changing_route_refuses_cross_site_requests() {
    let app = spawn_app().await;
    let (c, _) = app.signed_up_client("csrf@example.com").await;
    let me: Value = app.me(&c).await.1;
    let session_id = me["session"]["id"].as_str().unwrap().to_string();
    let attacks: [(&str, &str); 4] = [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ];
    for (method, path, body) in state_changing_routes(&session_id) {
        for (header, value) in attacks {
            let mut req = c.request(method.clone(), app.url(&path)).header(header, value);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 403, "{method} {path} with {header}: {value}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "csrf_rejected");
        }
    }
    // Nothing happened: the session is intact and no account was created.
    assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 200);
    assert_eq!(
        app.login_with(&client(), "csrf2@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    // The same request from this origin (what Swagger UI sends) goes through, body-less POST
    // included.
    let resp = c
        .post(app.url("/auth/logout"))
        .header("origin", &app.address)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test]
async fn json_routes_refuse_form_and_text_bodies() {
    let app = spawn_app().await;
    let (c, _) = app.signed_up_client("forms@example.com").await;
    let json_body = json!({"email": "forms@example.com", "password": PASSWORD}).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let resp = client()
            .post(app.url("/auth/login"))
            .header("content-type", content_type)
            .body(json_body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{content_type}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"],
            "unsupported_media_type"
        );
        // Body-less routes too: a cross-site <form> cannot log anyone out.
        let resp = c
            .post(app.url("/auth/logout"))
            .header("content-type", content_type)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{content_type}");
    }
    assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn cors_answers_only_listed_origins_never_a_wildcard_or_null() {
    let listed = "http://app.example:5173";
    let app = spawn_app_with(AppOptions::default().var("CORS_ORIGINS", listed)).await;
    let preflight = |origin: &str| {
        client()
            .request(Method::OPTIONS, app.url("/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    for origin in ["http://evil.example", "null"] {
        let resp = preflight(origin).await.unwrap();
        assert!(
            resp.headers().get("access-control-allow-origin").is_none(),
            "preflight from {origin}"
        );
        let resp = client()
            .get(app.url("/health"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert!(
            resp.headers().get("access-control-allow-origin").is_none(),
            "GET from {origin}"
        );
    }
    let resp = preflight(listed).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["access-control-allow-origin"], listed);
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    // A listed front end can sign in cross-origin with credentials.
    app.signed_up_client("spa@example.com").await;
    let resp = client()
        .post(app.url("/auth/login"))
        .header("origin", listed)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"email": "spa@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], listed);
    assert_ne!(resp.headers()["access-control-allow-origin"], "*");

    // Without CORS_ORIGINS nobody gets CORS headers.
    let plain = spawn_app().await;
    let resp = client()
        .get(plain.url("/health"))
        .header("origin", listed)
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}
