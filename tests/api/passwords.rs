//! Local accounts: SECURITY.md §3 — password rules, storage, enumeration, brute force, logs.

use std::time::Duration;

use authauth::{auth::AuthError, session::ClientInfo};
use sea_orm::{ConnectionTrait, Database, Statement};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn password_rules_allow_long_and_unicode_passwords_and_never_truncate() {
    let app = spawn_app().await;
    let long: String = (0..100)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect::<String>()
        + "Q";
    let resp = app.signup_with(&client(), "long@example.com", &long).await;
    assert_eq!(resp.status(), 201);
    let truncated: String = long.chars().take(72).collect();
    assert_eq!(
        app.login_with(&client(), "long@example.com", &truncated)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.login_with(&client(), "long@example.com", &long)
            .await
            .status(),
        200
    );

    let emoji = "🔐🦀🌍🎲🧩🚲🌵🍋🎈🪁🧭🦉";
    assert_eq!(emoji.chars().count(), 12);
    assert_eq!(
        app.signup_with(&client(), "emoji@example.com", emoji)
            .await
            .status(),
        201
    );
    assert_eq!(
        app.login_with(&client(), "emoji@example.com", emoji)
            .await
            .status(),
        200
    );
    let spaced = "  spaces are fine here  ";
    assert_eq!(
        app.signup_with(&client(), "spaces@example.com", spaced)
            .await
            .status(),
        201
    );
    assert_eq!(
        app.login_with(&client(), "spaces@example.com", spaced)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.login_with(&client(), "spaces@example.com", spaced.trim())
            .await
            .status(),
        401
    );

    for (password, code) in [
        ("password1234", "weak_password"),
        ("123456789012", "weak_password"),
        ("aaaaaaaaaaaa", "weak_password"),
        // Shorter than the schema's minLength: refused as a request that does not match it.
        ("short pass", "invalid_request"),
    ] {
        let resp = app.signup_with(&client(), "weak@example.com", password).await;
        assert_eq!(resp.status(), 400, "{password}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], code, "{password}");
    }
    let resp = app.signup_with(&client(), "not-an-email", PASSWORD).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_email");
    let resp = app.signup_with(&client(), "long@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "email_taken");
    let resp = app.signup_with(&client(), "LONG@Example.com", PASSWORD).await;
    assert_eq!(
        resp.status(),
        409,
        "e-mail addresses are unique regardless of case"
    );
}

/// Every stored password hash, by e-mail address.
async fn stored_hashes(app: &TestApp) -> Vec<String> {
    let conn = Database::connect(&app.vars["DATABASE_URL"]).await.unwrap();
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT password_hash FROM users ORDER BY email",
        ))
        .await
        .unwrap();
    conn.close().await.ok();
    rows.iter()
        .map(|r| r.try_get("", "password_hash").unwrap())
        .collect()
}

per_backend!(passwords_are_stored_as_salted_argon2id_hashes);
async fn passwords_are_stored_as_salted_argon2id_hashes(backend: Backend) {
    // The default cost, not the tests' cheap one.
    let app = spawn_app_with(
        AppOptions::default()
            .backend(backend)
            .var("PASSWORD_HASH_MEMORY_KIB", "19456")
            .var("PASSWORD_HASH_ITERATIONS", "2"),
    )
    .await;
    app.signed_up_client("h1@example.com").await;
    app.signed_up_client("h2@example.com").await;
    let hashes = stored_hashes(&app).await;
    assert_eq!(hashes.len(), 2);
    for h in &hashes {
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!h.contains(PASSWORD));
    }
    assert_ne!(hashes[0], hashes[1], "same password, same hash: no salt");
}

per_backend!(a_sign_in_stores_a_password_hashed_at_an_older_cost_at_the_configured_one);
async fn a_sign_in_stores_a_password_hashed_at_an_older_cost_at_the_configured_one(backend: Backend) {
    let old = spawn_app_with(AppOptions::default().backend(backend)).await;
    old.signed_up_client("upgrade@example.com").await;
    let before = stored_hashes(&old).await;
    assert!(before[0].starts_with(&format!("$argon2id$v=19$m={TEST_HASH_MEMORY_KIB},t=1,p=1$")));
    // The operator raises the cost (an OWASP equivalent of the default) and restarts.
    let new = spawn_app_with(
        AppOptions::default()
            .sharing(&old)
            .var("PASSWORD_HASH_MEMORY_KIB", "12288")
            .var("PASSWORD_HASH_ITERATIONS", "3"),
    )
    .await;
    // A wrong password proves nothing and changes nothing.
    let resp = new
        .login_with(&client(), "upgrade@example.com", "not the password at all")
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(stored_hashes(&new).await, before);
    // The right one signs in with the old hash, which is then replaced.
    let resp = new.login_with(&client(), "upgrade@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let after = stored_hashes(&new).await;
    assert!(
        after[0].starts_with("$argon2id$v=19$m=12288,t=3,p=1$"),
        "{}",
        after[0]
    );
    // The new hash holds the same password, and is not replaced again.
    let resp = new.login_with(&client(), "upgrade@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(stored_hashes(&new).await, after);
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_look_the_same() {
    let app = spawn_app().await;
    app.signed_up_client("known@example.com").await;
    // Counted, not timed: every check costs one argon2id verification on a hashing thread, an
    // unknown address (against the dummy hash, made at the configured cost — see the unit
    // tests of `auth::password`) exactly like a wrong password. Timing the two over HTTP
    // compared the machine's load, not the code (a `real && verify(…)` that skipped the
    // dummy hash was caught by a timing test only because it cost 3 ms against 140 ms).
    let verifications = || {
        let text = app.state.metrics.render();
        text.lines()
            .find_map(|l| l.strip_prefix(r#"authauth_password_hash_duration_seconds_count{op="verify"} "#))
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let mut bodies = Vec::new();
    // 9 tries stay under the per-account throttle.
    for i in 0..9 {
        let before = verifications();
        let a = app
            .login_with(&client(), "known@example.com", "wrong password here")
            .await;
        assert_eq!(a.status(), 401);
        assert_eq!(
            verifications(),
            before + 1,
            "a wrong password is one verification"
        );
        let b = app
            .login_with(
                &client(),
                &format!("nobody{i}@example.com"),
                "wrong password here",
            )
            .await;
        assert_eq!(b.status(), 401);
        assert_eq!(
            verifications(),
            before + 2,
            "an unknown address is one verification too"
        );
        bodies.push((a.text().await.unwrap(), b.text().await.unwrap()));
    }
    for (a, b) in &bodies {
        assert_eq!(a, b, "the bodies tell the cases apart");
    }
}

#[tokio::test]
async fn repeated_failures_are_throttled_without_revealing_anything() {
    let app = spawn_app().await;
    app.signed_up_client("victim@example.com").await;
    app.signed_up_client("other@example.com").await;
    let c = client();
    for i in 0..10 {
        let resp = app
            .login_with(&c, "victim@example.com", "wrong password here")
            .await;
        assert_eq!(resp.status(), 401, "attempt {i}");
    }
    let resp = app
        .login_with(&c, "victim@example.com", "wrong password here")
        .await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 15 * 60);
    let throttled: Value = resp.json().await.unwrap();
    assert_eq!(throttled["error"], "too_many_attempts");
    // The right password during the lockout gets the very same answer: no oracle.
    let resp = app.login_with(&c, "victim@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "too_many_attempts");
    // Unknown accounts are throttled alike.
    for _ in 0..10 {
        assert_eq!(
            app.login_with(&c, "ghost@example.com", "wrong password here")
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        app.login_with(&c, "ghost@example.com", "wrong password here")
            .await
            .status(),
        429
    );
    // Another account from the same client still signs in.
    assert_eq!(
        app.login_with(&c, "other@example.com", PASSWORD).await.status(),
        200
    );
}

#[tokio::test]
async fn the_per_account_limit_holds_across_clients_but_one_client_cannot_reach_it() {
    let app = spawn_app().await;
    app.signed_up_client("target@example.com").await;
    let auth = &app.state.auth;
    let now = app.now();
    let from = |i: u32| ClientInfo {
        ip: Some(format!("192.0.2.{i}")),
        ..ClientInfo::default()
    };
    // One client alone is stopped after 10 failures, long before the account limit.
    for _ in 0..10 {
        let r = auth
            .login(
                "target@example.com",
                SecretString::from("wrong password here"),
                &from(1),
                None,
                &[],
                now,
            )
            .await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)));
    }
    let r = auth
        .login(
            "target@example.com",
            SecretString::from(PASSWORD),
            &from(1),
            None,
            &[],
            now,
        )
        .await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })));
    // The owner, elsewhere, still gets in.
    assert!(auth
        .login(
            "target@example.com",
            SecretString::from(PASSWORD),
            &from(200),
            None,
            &[],
            now
        )
        .await
        .is_ok());
    // Many clients together hit the account ceiling of 100 failures an hour.
    for ip in 2..=10 {
        for _ in 0..10 {
            let r = auth
                .login(
                    "target@example.com",
                    SecretString::from("wrong password here"),
                    &from(ip),
                    None,
                    &[],
                    now,
                )
                .await;
            assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{ip}");
        }
    }
    let r = auth
        .login(
            "target@example.com",
            SecretString::from(PASSWORD),
            &from(201),
            None,
            &[],
            now,
        )
        .await;
    match r {
        Err(AuthError::Throttled { retry_after, .. }) => assert!(retry_after > 0 && retry_after <= 3600),
        other => panic!("expected the account limit, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn passwords_and_tokens_never_reach_the_logs() {
    let db = TestDb::migrated().await;
    let dir = TempDir::new();
    let prefix = unique("authauth-logtest:") + ":";
    let secret = authauth::session::token::generate_secret();
    let redis = redis_url();
    let server = Server::start(
        &dir.0,
        &[
            ("PORT", "0"),
            ("RUST_LOG", "debug"),
            ("DATABASE_URL", db.url.as_str()),
            ("REDIS_URL", redis.as_str()),
            ("REDIS_KEY_PREFIX", prefix.as_str()),
            ("SESSION_SECRET", secret.as_str()),
        ],
    );
    let marker = format!("Zq-marker-{}", uuid::Uuid::new_v4().simple());
    let c = client();
    let resp = c
        .post(server.url("/auth/signup"))
        .json(&json!({"email": "logs@example.com", "password": marker, "fullName": "Logs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let cookie = set_cookie_value(&resp, "authauth_session").unwrap();
    let wrong = format!("{marker}-wrong");
    let resp = c
        .post(server.url("/auth/login"))
        .json(&json!({"email": "logs@example.com", "password": wrong}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = c
        .post(server.url("/auth/login"))
        .json(&json!({"email": "logs@example.com", "password": marker}))
        .send()
        .await
        .unwrap();
    let second = set_cookie_value(&resp, "authauth_session").unwrap();
    c.get(server.url("/auth/me")).send().await.unwrap();
    c.post(server.url("/auth/logout")).send().await.unwrap();
    // Up to the last request's line.
    let logs = server.logs_until("/auth/logout").await;
    assert!(logs.contains("session created"), "the test saw no logs:\n{logs}");
    assert!(logs.contains("/auth/logout"), "the test saw no logout:\n{logs}");
    for needle in [marker.as_str(), cookie.as_str(), second.as_str(), secret.as_str()] {
        assert!(!logs.contains(needle), "a secret reached the logs");
    }
    for token in [&cookie, &second] {
        let raw = token.split('.').next().unwrap();
        assert!(!logs.contains(raw), "a token reached the logs");
    }
    drop(server);
    delete_redis_prefix(&prefix).await;
}

#[tokio::test]
async fn parallel_failed_sign_ins_cannot_slip_past_the_limit() {
    let app = spawn_app().await;
    app.signed_up_client("parallel@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let url = app.url("/auth/login");
        tasks.push(tokio::spawn(async move {
            client()
                .post(url)
                .json(&json!({"email": "parallel@example.com", "password": "wrong password here"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut checked = 0;
    for t in tasks {
        match t.await.unwrap() {
            401 => checked += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        checked <= 10,
        "{checked} parallel guesses were checked (limit 10)"
    );
    assert!(checked >= 1);
}

per_backend!(sign_ins_racing_a_password_change_leave_no_session_on_the_old_password);
async fn sign_ins_racing_a_password_change_leave_no_session_on_the_old_password(backend: Backend) {
    // Room for every racing sign-in (four racers, at most 200 each), so that the session limit
    // never ends the owner's session: the race, not the limit, is under test.
    let app = spawn_app_with(
        AppOptions::default()
            .backend(backend)
            .var("MAX_SESSIONS_PER_USER", "1000"),
    )
    .await;
    let (owner, _) = app.signed_up_client("racing@example.com").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for i in 0..4 {
        let (url, stop) = (app.url("/auth/login"), stop.clone());
        attackers.push(tokio::spawn(async move {
            for _ in 0..200 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                // Distinct forwarded addresses are not trusted here: use distinct
                // accounts' buckets instead by succeeding (a success resets the counter).
                let _ = client()
                    .post(&url)
                    .header("x-attacker", i.to_string())
                    .json(&json!({"email": "racing@example.com", "password": PASSWORD}))
                    .send()
                    .await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = app
        .post_json(
            &owner,
            "/auth/password",
            &json!({"currentPassword": PASSWORD, "newPassword": "a new and different passphrase"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "{backend:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for a in attackers {
        a.await.unwrap();
    }
    let list: Value = owner
        .get(app.url("/auth/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(
        sessions.len(),
        1,
        "{backend:?}: sessions from the old password survived: {list}"
    );
    assert_eq!(sessions[0]["current"], true);
}

#[tokio::test]
async fn malformed_input_is_a_client_error_never_a_500() {
    let app = spawn_app().await;
    let resp = client()
        .post(app.url("/auth/login"))
        .json(&json!({"email": "a\u{0}b@example.com", "password": "whatever password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"email":"big@example.com","password":"{}"}}"#,
            "x".repeat(1 << 20)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "payload_too_large");
    let resp = client()
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn a_distributed_lockout_does_not_lock_the_owner_out_of_a_device_they_signed_in_from() {
    // Many networks, through a trusted proxy that reports each client's address.
    let app = spawn_app_with(AppOptions::default().var("TRUST_X_FORWARDED_FOR", "true")).await;
    let owner = client();
    let resp = app.signup_with(&owner, "owner@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 201);
    assert!(
        set_cookie_value(&resp, "authauth_device").is_some(),
        "signup leaves a device cookie"
    );
    let login = |ip: String, password: &'static str| {
        let url = app.url("/auth/login");
        async move {
            client()
                .post(url)
                .header("x-forwarded-for", ip)
                .json(&json!({"email": "owner@example.com", "password": password}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // 10 networks × 10 failures: the account-wide ceiling (100 an hour) is reached.
    for net in 0..10 {
        for _ in 0..10 {
            assert_eq!(
                login(format!("198.51.100.{net}"), "wrong password here").await,
                401
            );
        }
    }
    // A stranger, even with the right password, now waits.
    assert_eq!(login("203.0.113.50".into(), PASSWORD).await, 429);
    // The owner's browser, which signed in before, does not.
    let resp = owner
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", "203.0.113.77")
        .json(&json!({"email": "owner@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A device cookie proves nothing for another account.
    let other = app.signup_with(&client(), "other@example.com", PASSWORD).await;
    let other_device = set_cookie_value(&other, "authauth_device").unwrap();
    let resp = client()
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", "203.0.113.78")
        .header("cookie", format!("authauth_device={other_device}"))
        .json(&json!({"email": "owner@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
}

#[tokio::test]
async fn account_creation_is_limited_per_network() {
    let app = spawn_app_with(AppOptions::default().backend(Backend::Sqlite)).await;
    for i in 0..30 {
        let resp = app
            .signup_with(&client(), &format!("bulk{i}@example.com"), PASSWORD)
            .await;
        assert_eq!(resp.status(), 201, "signup {i}");
    }
    let resp = app.signup_with(&client(), "bulk30@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_attempts");
    // Nobody failed to sign in: the message says what the limit counts.
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("too many accounts created from this network;"),
        "{body}"
    );
}

#[tokio::test]
async fn failures_from_a_shared_address_do_not_lock_an_owner_out_of_their_own_browser() {
    // No forwarded-for trust: every client arrives from the same address, as behind a proxy
    // that is not declared.
    let app = spawn_app().await;
    let alice = client();
    assert_eq!(
        app.signup_with(&alice, "alice@example.com", PASSWORD)
            .await
            .status(),
        201
    );
    for i in 0..105 {
        let status = app
            .login_with(
                &client(),
                &format!("random-{i}@example.com"),
                "wrong password here",
            )
            .await
            .status();
        assert!(status == 401 || status == 429, "{status}");
    }
    // The address is now throttled for strangers...
    assert_eq!(
        app.login_with(&client(), "alice@example.com", PASSWORD)
            .await
            .status(),
        429
    );
    // ...but not for the browser Alice signed in from before.
    assert_eq!(
        app.login_with(&alice, "alice@example.com", PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn ten_correct_concurrent_sign_ins_from_one_address_all_succeed() {
    let app = spawn_app().await;
    app.signed_up_client("burst@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (url, origin) = (app.url("/auth/login"), app.address.clone());
        tasks.push(tokio::spawn(async move {
            client()
                .post(url)
                .header("origin", origin)
                .json(&json!({"email": "burst@example.com", "password": PASSWORD}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test]
async fn forwarding_headers_without_forwarded_for_trust_are_warned_about_once() {
    let dir = TempDir::new();
    let server = Server::start(&dir.0, &[("PORT", "0")]);
    let c = client();
    for _ in 0..3 {
        c.post(server.url("/auth/login"))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&json!({"email": "proxy@example.com", "password": "wrong password here"}))
            .send()
            .await
            .unwrap();
    }
    let mut logs = server.logs_until("TRUST_X_FORWARDED_FOR").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    logs.push_str(&server.drain_logs().join("\n"));
    assert_eq!(logs.matches("TRUST_X_FORWARDED_FOR is off").count(), 1, "{logs}");
}
