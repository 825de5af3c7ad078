//! `/metrics` on `METRICS_ADDR`: its own listener, Prometheus text that `promtool` accepts, and
//! counters that follow what happened.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use crate::helpers::*;

async fn app_with_metrics() -> TestApp {
    spawn_app_with(
        AppOptions::default()
            .var("METRICS_ADDR", "127.0.0.1:0")
            .var("SESSION_ROTATION_INTERVAL", "3s")
            .var("SESSION_ROTATION_GRACE", "2s"),
    )
    .await
}

async fn scrape(app: &TestApp) -> String {
    let at = app.metrics_address.as_ref().expect("METRICS_ADDR was set");
    let resp = reqwest::get(format!("{at}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        resp.headers()
    );
    resp.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as exported), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn promtool_check(text: &str) {
    let promtool = crate::helpers::servers::require_binary(
        "promtool",
        "prometheus",
        " (it checks the /metrics output)",
        &std::env::var_os("PATH").unwrap_or_default(),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the output:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn metrics_have_their_own_listener_and_are_never_on_the_public_port() {
    let app = app_with_metrics().await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    let text = scrape(&app).await;
    assert!(
        text.contains("# TYPE authauth_http_requests_total counter"),
        "{text}"
    );
    // Without METRICS_ADDR nothing listens for them.
    let plain = spawn_app().await;
    assert!(plain.metrics_address.is_none());
    assert_eq!(plain.get("/metrics").await.status(), 404);
}

#[tokio::test]
async fn counters_follow_sign_ups_sign_ins_rotation_logout_and_revocation_and_promtool_accepts_them() {
    let app = app_with_metrics().await;
    let (c, cookie) = app.signed_up_client("metrics@example.com").await;
    let stranger = client();
    assert_eq!(
        app.login_with(&stranger, "metrics@example.com", "not the password at all")
            .await
            .status(),
        401
    );
    let second = client();
    assert_eq!(
        app.login_with(&second, "metrics@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    // A rotation, then the old cookie after its grace, then a cookie this server never signed.
    app.advance(Duration::from_millis(3100));
    assert_eq!(app.me(&c).await.0, 200);
    app.advance(Duration::from_millis(2100));
    assert_eq!(app.get_with_cookie("/auth/me", &cookie).await.status(), 401);
    assert_eq!(
        app.get_with_cookie("/auth/me", "forged.value").await.status(),
        401
    );
    // The second browser ends the first one's session by its id: the route label is the
    // template, never the id.
    let first_id = app.me(&c).await.1["session"]["id"].as_str().unwrap().to_string();
    let resp = second
        .delete(app.url(&format!("/auth/sessions/{first_id}")))
        .header("origin", app.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.me(&c).await.0, 401);
    let resp = app.logout(&second).await;
    assert_eq!(resp.status(), 204);

    let text = scrape(&app).await;
    promtool_check(&text);
    for (series, expected) in [
        (r#"authauth_sessions_created_total{method="password"}"#, 2.0),
        (
            r#"authauth_sign_ins_total{method="password",outcome="bad_credentials"}"#,
            1.0,
        ),
        (
            r#"authauth_sign_ins_total{method="password",outcome="success"}"#,
            1.0,
        ),
        // Both browsers' sessions: each rotates on its first request after the interval.
        ("authauth_sessions_rotated_total", 2.0),
        (r#"authauth_sessions_ended_total{reason="revoked_by_user"}"#, 1.0),
        (r#"authauth_sessions_ended_total{reason="logout"}"#, 1.0),
        (r#"authauth_session_checks_total{outcome="expired"}"#, 1.0),
        (r#"authauth_session_checks_total{outcome="tampered"}"#, 1.0),
        (r#"authauth_session_checks_total{outcome="revoked"}"#, 1.0),
        (
            r#"authauth_http_requests_total{method="DELETE",route="/auth/sessions/{id}",status="204"}"#,
            1.0,
        ),
        (
            r#"authauth_http_requests_total{method="POST",route="/auth/signup",status="201"}"#,
            1.0,
        ),
        ("authauth_password_hash_queue_depth", 0.0),
    ] {
        assert_eq!(sample(&text, series), expected, "{series} in\n{text}");
    }
    assert!(sample(&text, r#"authauth_session_checks_total{outcome="valid"}"#) >= 3.0);
    assert!(
        sample(
            &text,
            r#"authauth_store_operation_duration_seconds_count{op="load",store="redis"}"#
        ) >= 5.0,
        "{text}"
    );
    assert!(!text.contains(&first_id), "a session id became a label value");
}

/// The `route` label names the operation that answered — its answers and its refusals alike —
/// and `unmatched` when the guard answered before any operation ran.
#[tokio::test]
async fn requests_are_labelled_by_the_operation_that_answered_and_guard_refusals_are_unmatched() {
    let app = app_with_metrics().await;
    let (c, cookie) = app.signed_up_client("labels@example.com").await;
    // The operation refuses: no session.
    assert_eq!(
        client().get(app.url("/auth/me")).send().await.unwrap().status(),
        401
    );
    // The operation answers: forward auth with a session, twice.
    for _ in 0..2 {
        let resp = app.get_with_cookie("/auth/verify", &cookie).await;
        assert_eq!(resp.status(), 200);
    }
    // The guard refuses a cross-site sign-out before it reaches the operation.
    let resp = c
        .post(app.url("/auth/logout"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let text = scrape(&app).await;
    promtool_check(&text);
    for (series, expected) in [
        (
            r#"authauth_http_requests_total{method="GET",route="/auth/me",status="401"}"#,
            1.0,
        ),
        (
            r#"authauth_http_requests_total{method="GET",route="/auth/verify",status="200"}"#,
            2.0,
        ),
        (
            r#"authauth_http_request_duration_seconds_count{route="/auth/verify"}"#,
            2.0,
        ),
        (
            r#"authauth_http_requests_total{method="POST",route="unmatched",status="403"}"#,
            1.0,
        ),
        (
            r#"authauth_http_requests_total{method="POST",route="/auth/logout",status="403"}"#,
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, series), expected, "{series} in\n{text}");
    }
    // The refused `/auth/me` is timed like any answer.
    assert!(
        sample(
            &text,
            r#"authauth_http_request_duration_seconds_count{route="/auth/me"}"#
        ) >= 1.0
    );
}

/// A client may send any token as its method, to any path, without a session: each would be a
/// series of its own for the life of the process — memory, and a scrape that only grows. Methods
/// HTTP does not define are counted under `other`.
#[tokio::test]
async fn a_client_inventing_methods_adds_no_series() {
    let app = app_with_metrics().await;
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("authauth_http_requests_total{"))
            .count()
    };
    let invented = |i: usize| reqwest::Method::from_bytes(format!("X{i:04}").as_bytes()).unwrap();
    // One first, so that the series it lands in exists before counting.
    client()
        .request(invented(0), app.url("/health"))
        .send()
        .await
        .unwrap();
    let before = series(&scrape(&app).await);
    for i in 1..=50 {
        let resp = client()
            .request(invented(i), app.url("/health"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let text = scrape(&app).await;
    assert!(!text.contains("X0001"), "{text}");
    assert_eq!(series(&text), before, "{text}");
    assert!(text.contains(r#"method="other""#), "counted all the same: {text}");
}

/// The counters and histograms a request updates are kept per worker thread and summed when
/// scraped (`src/metrics/sharded.rs`): requests answered on several threads at once are each
/// counted exactly once, and a histogram's count is its `+Inf` bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_answered_on_several_threads_at_once_are_each_counted_once() {
    let app = app_with_metrics().await;
    let requests: usize = 400;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let url = app.url("/auth/me");
        tasks.spawn(async move {
            let c = client();
            for _ in 0..requests / 8 {
                assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    let text = scrape(&app).await;
    promtool_check(&text);
    let n = requests as f64;
    for series in [
        r#"authauth_http_requests_total{method="GET",route="/auth/me",status="401"}"#,
        r#"authauth_http_request_duration_seconds_count{route="/auth/me"}"#,
        r#"authauth_http_request_duration_seconds_bucket{route="/auth/me",le="+Inf"}"#,
        r#"authauth_session_checks_total{outcome="no_session"}"#,
    ] {
        assert_eq!(sample(&text, series), n, "{series} in\n{text}");
    }
    assert!(
        sample(
            &text,
            r#"authauth_http_request_duration_seconds_sum{route="/auth/me"}"#
        ) > 0.0
    );
}
