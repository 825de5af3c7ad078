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
        (
            Method::POST,
            "/auth/password/forgot".into(),
            Some(json!({"email": "csrf@example.com"})),
        ),
        (
            Method::POST,
            "/auth/password/reset".into(),
            Some(json!({"token": "t", "newPassword": "another fine passphrase"})),
        ),
        (
            Method::POST,
            "/auth/email/verify".into(),
            Some(json!({"token": "t"})),
        ),
        (Method::POST, "/auth/email/verify/resend".into(), None),
        (
            Method::POST,
            "/auth/sign-in/report".into(),
            Some(json!({"token": "t"})),
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

/// `POST /auth/logout-all` without a session, with these headers: 403 when the guard refuses
/// it, 401 (`no_session`) when it reaches the handler.
async fn logout_status(app: &TestApp, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client().post(app.url("/auth/logout-all"));
    for (name, value) in headers {
        // `header` appends: a name given twice is sent twice.
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn the_origin_is_compared_whole_scheme_host_and_port() {
    let app = spawn_app().await;
    let host = format!("127.0.0.1:{}", app.port);
    for origin in [
        format!("https://{host}"),
        format!("evil://{host}"),
        format!("http://127.0.0.1:{}", app.port.wrapping_add(1)),
        format!("http://{host}.evil.example"),
        // Not an origin at all (no browser sends these): never mistaken for this server's.
        format!("http://{host}/evil"),
        format!("http://user@{host}"),
        format!("http://{host}?x=1"),
        format!("http://{host}#x"),
    ] {
        let (status, body) = logout_status(&app, &[("origin", &origin)]).await;
        assert_eq!(status, 403, "Origin: {origin}");
        assert_eq!(body["error"], "csrf_rejected");
    }
    // An opaque origin is refused for what it is.
    let (status, body) = logout_status(&app, &[("origin", "null")]).await;
    assert_eq!(status, 403);
    assert!(
        body["message"].as_str().unwrap().contains("opaque origin"),
        "{body}"
    );
    // The server's own origin: the listener's scheme (http) and the Host.
    assert_eq!(logout_status(&app, &[("origin", &app.address)]).await.0, 401);
    assert_eq!(
        logout_status(&app, &[("origin", &format!("HTTP://{host}"))])
            .await
            .0,
        401,
        "scheme and host compare case-insensitively"
    );

    // With PUBLIC_URL, that is the origin — also when the Host header names the public host.
    let app = spawn_app_with(AppOptions::default().var("PUBLIC_URL", "https://auth.example.com")).await;
    for origin in ["http://auth.example.com", "https://auth.example.com:8443"] {
        let (status, _) = logout_status(&app, &[("origin", origin), ("host", "auth.example.com")]).await;
        assert_eq!(
            status, 403,
            "Origin: {origin} with PUBLIC_URL https://auth.example.com"
        );
    }
    let ok = [
        ("origin", "https://auth.example.com"),
        ("host", "auth.example.com"),
    ];
    assert_eq!(logout_status(&app, &ok).await.0, 401);
}

#[tokio::test]
async fn a_request_with_two_origin_headers_is_refused() {
    let app = spawn_app().await;
    for pair in [
        [app.address.as_str(), "http://evil.example"],
        [app.address.as_str(); 2],
    ] {
        let (status, body) = logout_status(&app, &[("origin", pair[0]), ("origin", pair[1])]).await;
        assert_eq!(status, 403, "Origin: {pair:?}");
        assert_eq!(body["error"], "csrf_rejected");
    }
    let (status, _) = logout_status(
        &app,
        &[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "cross-site"),
        ],
    )
    .await;
    assert_eq!(status, 403, "two Sec-Fetch-Site headers");
    // An Origin that is not even text is not "no Origin".
    let resp = client()
        .post(app.url("/auth/logout"))
        .header(
            "origin",
            reqwest::header::HeaderValue::from_bytes(b"http://\xc3\xa9vil.example").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "unreadable Origin");
}

/// A GET with this `Host` header (no jar, no cookie).
async fn get_with_host(app: &TestApp, path: &str, host: &str) -> reqwest::Response {
    client()
        .get(app.url(path))
        .header("host", host)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn in_production_a_host_that_is_not_allowed_gets_400_but_probes_still_answer() {
    let app = spawn_app_with(
        AppOptions::default()
            .var("APP_ENV", "production")
            .var("PUBLIC_URL", "https://auth.example.com"),
    )
    .await;
    let direct = format!("127.0.0.1:{}", app.port);
    // DNS rebinding: a page on evil.example whose name now resolves to this server.
    for host in [
        direct.as_str(),
        "evil.example",
        "evil.example:3000",
        "auth.example.com.evil.example",
    ] {
        for path in ["/auth/me", "/openapi.json", "/"] {
            let resp = get_with_host(&app, path, host).await;
            assert_eq!(resp.status(), 400, "{path} with Host: {host}");
            assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "host_not_allowed", "{path} with Host: {host}");
        }
        let resp = client()
            .post(app.url("/auth/login"))
            .header("host", host)
            .header("origin", format!("http://{host}"))
            .json(&json!({"email": "x@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "login with Host: {host}");
    }
    // The public host gets through (and on to "who are you?").
    for host in ["auth.example.com", "AUTH.example.com", "auth.example.com:443"] {
        let resp = get_with_host(&app, "/auth/me", host).await;
        assert_eq!(resp.status(), 401, "Host: {host}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], "no_session");
    }
    let resp = client()
        .post(app.url("/auth/login"))
        .header("host", "auth.example.com")
        .header("origin", "https://auth.example.com")
        .json(&json!({"email": "x@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a same-origin login through the public host");
    // Probes call by IP.
    for path in ["/health", "/ready"] {
        assert_eq!(get_with_host(&app, path, &direct).await.status(), 200, "{path}");
    }

    // ALLOWED_HOSTS adds names (any port unless one is given).
    let app = spawn_app_with(
        AppOptions::default()
            .var("APP_ENV", "production")
            .var("PUBLIC_URL", "https://auth.example.com")
            .var("ALLOWED_HOSTS", "127.0.0.1, auth.internal:8080"),
    )
    .await;
    let direct = format!("127.0.0.1:{}", app.port);
    for (host, status) in [
        (direct.as_str(), 401),
        ("auth.example.com", 401),
        ("auth.internal:8080", 401),
        ("auth.internal:8081", 400),
        ("evil.example", 400),
    ] {
        assert_eq!(
            get_with_host(&app, "/auth/me", host).await.status(),
            status,
            "Host: {host}"
        );
    }
}

#[tokio::test]
async fn cors_answers_vary_by_origin_so_a_shared_cache_never_serves_one_origins_answer_to_another() {
    let listed = "http://app.example:5173";
    let app = spawn_app_with(AppOptions::default().var("CORS_ORIGINS", listed)).await;
    for resp in [
        client()
            .request(Method::OPTIONS, app.url("/auth/login"))
            .header("origin", listed)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap(),
        client()
            .get(app.url("/health"))
            .header("origin", listed)
            .send()
            .await
            .unwrap(),
    ] {
        let vary: Vec<String> = resp
            .headers()
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .collect();
        assert!(
            vary.iter().any(|v| v.split(',').any(|p| p.trim() == "origin")),
            "{vary:?}"
        );
    }
}

#[tokio::test]
async fn only_an_options_request_is_a_preflight_not_a_get_that_names_a_method() {
    let app = spawn_app_with(AppOptions::default().var("CORS_ORIGINS", "http://app.example:5173")).await;
    // A GET carrying Access-Control-Request-Method reaches the handler like any GET.
    let resp = client()
        .get(app.url("/auth/me"))
        .header("origin", "http://app.example:5173")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "no_session");
}

#[tokio::test]
async fn a_legitimate_body_up_to_the_limit_is_read_whole() {
    let app = spawn_app().await;
    app.signed_up_client("roomy@example.com").await;
    // JSON may carry whitespace: 15 KiB of it stays under the 16 KiB limit and signs in.
    let body = format!(
        r#"{{"email":"roomy@example.com","password":"{PASSWORD}"{}}}"#,
        " ".repeat(15 * 1024)
    );
    assert!(body.len() < authauth::api::guard::MAX_BODY_BYTES);
    let resp = client()
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}
