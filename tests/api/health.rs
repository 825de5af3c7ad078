//! Liveness, readiness, the spec, Swagger UI, the error shape, request ids, graceful shutdown,
//! and the zero-setup embedded default.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

per_backend!(health_answers_ok_on_both_backends);
async fn health_answers_ok_on_both_backends(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), 200, "{backend:?}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn ready_is_200_when_database_and_session_store_answer() {
    let app = spawn_app().await;
    let body: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["kind"], "postgres");
    assert_eq!(body["checks"]["sessionStore"]["kind"], "redis");

    let app = spawn_app_with(AppOptions::default().backend(Backend::Sqlite)).await;
    let resp = app.get("/ready").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["kind"], "sqlite");
    assert_eq!(body["checks"]["sessionStore"]["kind"], "sql");
}

#[tokio::test]
async fn ready_is_503_naming_the_session_store_when_redis_is_unreachable() {
    // Nothing listens on port 1; startup must not depend on Redis.
    let app = spawn_app_with(AppOptions::default().var("REDIS_URL", "redis://127.0.0.1:1")).await;
    let resp = app.get("/ready").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_ready");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["sessionStore"]["status"], "unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("session store (redis)"), "{message}");
    assert!(!message.contains("database"), "{message}");
    // Liveness does not depend on Redis.
    assert_eq!(app.get("/health").await.status(), 200);
}

/// Every route the API serves. A new endpoint must be added here, and so to the spec.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("post", "/auth/signup"),
    ("post", "/auth/login"),
    ("get", "/auth/me"),
    ("post", "/auth/logout"),
    ("post", "/auth/logout-all"),
    ("post", "/auth/password"),
    ("get", "/auth/sessions"),
    ("delete", "/auth/sessions"),
    ("delete", "/auth/sessions/{id}"),
    ("get", "/auth/google"),
    ("get", "/auth/google/callback"),
    ("get", "/auth/verify"),
    ("get", "/auth/activity"),
    ("post", "/auth/email/verify"),
    ("post", "/auth/email/verify/resend"),
    ("post", "/auth/password/forgot"),
    ("post", "/auth/password/reset"),
    ("post", "/auth/sign-in/report"),
    ("get", "/auth/mfa"),
    ("post", "/auth/mfa/totp"),
    ("delete", "/auth/mfa/totp"),
    ("post", "/auth/mfa/totp/confirm"),
    ("post", "/auth/mfa/verify"),
    ("post", "/auth/mfa/recovery-codes"),
    ("post", "/auth/reauthenticate"),
    ("get", "/auth/passkeys"),
    ("delete", "/auth/passkeys/{id}"),
    ("post", "/auth/passkeys/register/start"),
    ("post", "/auth/passkeys/register/finish"),
    ("post", "/auth/passkeys/login/start"),
    ("post", "/auth/passkeys/login/finish"),
];

#[tokio::test]
async fn openapi_json_is_openapi_3_and_lists_every_route() {
    let app = spawn_app().await;
    let resp = app.get("/openapi.json").await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let spec: Value = serde_json::from_str(&text).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(spec["info"]["title"], "authauth");
    // No `servers` entry may send Swagger UI's requests to another host than /docs is on.
    assert!(
        spec["servers"].as_array().is_none_or(|s| s.is_empty()),
        "{}",
        spec["servers"]
    );
    let paths = spec["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} missing from the spec"
        );
    }
    let listed: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        listed,
        ROUTES.len(),
        "the spec lists routes this test does not know"
    );

    // `authauth openapi` prints the very same document.
    let dir = TempDir::new();
    let out = run_cli(&dir.0, &[], &["openapi"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim_end(), text.trim_end());
}

#[tokio::test]
async fn docs_serves_swagger_ui_with_the_spec() {
    let app = spawn_app().await;
    let resp = app.get("/docs").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("SwaggerUIBundle"), "not Swagger UI");
    assert!(html.contains("/ready"), "the spec is not embedded");
    // The root sends people to the docs.
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/docs");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_the_json_error_shape() {
    let app = spawn_app().await;
    let resp = app.get("/no/such/route").await;
    assert_eq!(resp.status(), 404);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().unwrap().len() > 5);

    let resp = app.client.post(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
}

/// The audit event's log line is its copy of last resort (the database may be away, the queue
/// full): every field of the row is in it, `detail` included.
#[tokio::test]
async fn the_audit_log_line_carries_every_field_of_the_event() {
    let dir = TempDir::new();
    let server = Server::start(
        &dir.0,
        &[("PORT", "0"), ("LOG_FORMAT", "json"), ("LOG_FLUSH_INTERVAL", "0")],
    );
    let resp = client()
        .post(server.url("/auth/login"))
        .header("origin", format!("http://127.0.0.1:{}", server.port))
        .header("x-request-id", "audit-line-test")
        .header("user-agent", "audit-line-agent/1.0")
        .json(&serde_json::json!({"email": "nobody@example.com", "password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let logs = server.logs_until("sign_in.failed").await;
    let line: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["event"] == "sign_in.failed")
        .unwrap_or_else(|| panic!("no audit line:\n{logs}"));
    assert_eq!(line["request_id"], "audit-line-test", "{line}");
    assert_eq!(line["user_agent"], "audit-line-agent/1.0", "{line}");
    assert!(line["id"].as_str().is_some_and(|id| id.len() == 36), "{line}");
    let detail: Value = serde_json::from_str(line["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["failure"], "bad_credentials", "{line}");
    assert_eq!(detail["method"], "password", "{line}");
}

/// The production log (JSON): every line logged while a request is served — its access line,
/// and a warning from deep inside it — names the request under `"span"` (id, method, path, never
/// the query string); a line logged outside any request names none.
#[tokio::test]
async fn json_log_lines_name_the_request_they_were_logged_in() {
    let dir = TempDir::new();
    let server = Server::start(
        &dir.0,
        &[
            ("PORT", "0"),
            ("LOG_FORMAT", "json"),
            ("LOG_FLUSH_INTERVAL", "0"),
            ("SESSION_COOKIE_NAME", "sid"),
        ],
    );
    // More session cookies than a request may carry: refused with a warning.
    let cookies: Vec<String> = (0..5).map(|i| format!("sid=v{i}")).collect();
    let resp = client()
        .get(server.url("/auth/me?next=query-secret"))
        .header("x-request-id", "json-line-test")
        .header("cookie", cookies.join("; "))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!((400..500).contains(&status), "{status}");
    let logs = server.logs_until("\"status\":").await;
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["request_id"] == "json-line-test")
        .collect();
    let warning = of_request
        .iter()
        .find(|l| l["level"] == "WARN")
        .unwrap_or_else(|| panic!("the warning names the request:\n{logs}"));
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("too many session cookies"),
        "{warning}"
    );
    let access = of_request
        .iter()
        .find(|l| l["message"] == "request")
        .unwrap_or_else(|| panic!("the access line names the request:\n{logs}"));
    assert_eq!(access["span"]["name"], "request");
    assert_eq!(access["span"]["method"], "GET");
    assert_eq!(access["span"]["path"], "/auth/me");
    assert_eq!(access["status"], status);
    assert!(!logs.contains("query-secret"), "{logs}");
    // Start-up happened outside any request.
    let serving: Vec<Value> = server
        .startup_logs
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!serving.is_empty(), "{:?}", server.startup_logs);
    assert!(serving.iter().all(|l| l.get("span").is_none()), "{serving:?}");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let a = app.get("/health").await;
    let b = app.get("/missing").await;
    let ida = a.headers()["x-request-id"].to_str().unwrap().to_string();
    let idb = b.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!ida.is_empty() && ida != idb);
    // A well-formed incoming id is kept (for tracing across services); anything else is replaced.
    let resp = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "edge-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "edge-1234");
    let resp = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "bad id\twith junk")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.headers()["x-request-id"], "bad id\twith junk");
}

#[tokio::test]
async fn embedded_default_runs_with_an_empty_environment_and_keeps_its_secret() {
    let dir = TempDir::new();
    // PORT=0 is the only variable, so parallel tests do not fight over port 3000.
    let mut server = Server::start(&dir.0, &[("PORT", "0")]);
    let c = client();
    let base = format!("http://127.0.0.1:{}", server.port);
    assert_eq!(
        c.get(format!("{base}/health")).send().await.unwrap().status(),
        200
    );
    let ready = c.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["kind"], "sqlite");
    assert_eq!(body["checks"]["sessionStore"]["kind"], "sql");
    assert_eq!(c.get(format!("{base}/docs")).send().await.unwrap().status(), 200);
    let spec: Value = c
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(15)).success());

    crate::cli_config::assert_sqlite_is_private(&dir.0.join("authauth.sqlite"));
    let secret_path = dir.0.join("authauth.secret");
    let secret = std::fs::read_to_string(&secret_path).unwrap();
    assert!(secret.trim().len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&secret_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // A restart reuses the same secret (so sessions survive) and the migrated database.
    let mut server = Server::start(&dir.0, &[("PORT", "0")]);
    assert_eq!(c.get(server.url("/ready")).send().await.unwrap().status(), 200);
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(15)).success());
    assert_eq!(std::fs::read_to_string(&secret_path).unwrap(), secret);
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    // A "Redis" that accepts connections and never answers makes /ready take ~2 s.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_port = blackhole.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = blackhole.accept().await {
            held.push(sock);
        }
    });
    let dir = TempDir::new();
    let redis = format!("redis://127.0.0.1:{hole_port}");
    let mut server = Server::start(&dir.0, &[("PORT", "0"), ("REDIS_URL", redis.as_str())]);
    let c = client();
    let url = server.url("/ready");
    let pending = tokio::spawn(async move { c.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.sigterm();
    let resp = pending
        .await
        .unwrap()
        .expect("the in-flight request got its answer");
    assert_eq!(resp.status(), 503);
    let status = tokio::task::spawn_blocking(move || server.wait_exit(Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn the_buffered_log_is_written_out_when_the_server_stops() {
    let dir = TempDir::new();
    // An interval no test waits for: only the flushes at start-up and shutdown write lines.
    let mut server = Server::start(&dir.0, &[("PORT", "0"), ("LOG_FLUSH_INTERVAL", "10s")]);
    let resp = client()
        .get(server.url("/health"))
        .header("x-request-id", "last-request-before-sigterm")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.sigterm();
    let status = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit(Duration::from_secs(15));
        (status, server)
    })
    .await
    .unwrap();
    assert!(status.0.success());
    // The process has exited; its last output reaches the reader thread shortly after.
    let logs = status.1.logs_until("authauth stopped").await;
    assert!(
        logs.contains("last-request-before-sigterm"),
        "the access line was lost:\n{logs}"
    );
    assert!(logs.contains("authauth stopped"), "{logs}");
}

/// Sends `request` as raw bytes and reads until the server closes the connection.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    // Reading to the end proves the server closed the connection; the timeout only turns a
    // hang into a failure.
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection after a protocol error")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Pins what hyper answers to requests it cannot parse, before poem or authauth sees them
/// (docs/security.md, "Errors below the application"): a bare status line, an empty body, none
/// of our headers, and the connection closed. If this starts failing, those answers changed —
/// update the documentation (or enjoy JSON).
#[tokio::test]
async fn protocol_errors_are_answered_by_hyper_with_an_empty_body_and_the_connection_closed() {
    let app = spawn_app().await;
    let many_headers: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("malformed request line", b"GARBAGE\r\n\r\n".to_vec(), "400"),
        (
            "unparseable Content-Length",
            b"POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "two different Content-Lengths",
            b"POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"
                .to_vec(),
            "400",
        ),
        (
            "more than 100 headers",
            format!("GET /health HTTP/1.1\r\nhost: x\r\n{many_headers}\r\n").into_bytes(),
            "431",
        ),
    ];
    for (what, request, status) in cases {
        let answer = raw_exchange(&app, &request).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {answer:?}"
        );
        assert_eq!(body, "", "{what}: hyper sends no body");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-length: 0"), "{what}: {head}");
        assert!(head.contains("connection: close"), "{what}: {head}");
        for ours in [
            "x-content-type-options",
            "x-request-id",
            "cache-control",
            "content-type",
        ] {
            assert!(
                !head.contains(ours),
                "{what}: {ours} appeared: authauth now renders these"
            );
        }
    }
    // The server itself is unaffected.
    assert_eq!(app.get("/health").await.status(), 200);
}
