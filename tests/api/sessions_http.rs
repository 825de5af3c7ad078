//! Sessions seen from a browser: SECURITY.md §1 (token and cookie) and §2 (logout, timeouts,
//! revocation), on the production layout (PostgreSQL + Redis) and the embedded SQL store.

use std::{collections::HashSet, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::{json, Value};

use crate::helpers::*;

/// Production, reached directly on 127.0.0.1 (allowed next to the public host).
fn production(backend: Backend) -> AppOptions {
    AppOptions::default()
        .backend(backend)
        .var("APP_ENV", "production")
        .var("PUBLIC_URL", "https://auth.example.com")
        .var("ALLOWED_HOSTS", "127.0.0.1")
}

per_backend!(the_session_cookie_is_host_prefixed_secure_httponly_and_lax_in_production);
async fn the_session_cookie_is_host_prefixed_secure_httponly_and_lax_in_production(backend: Backend) {
    let app = if backend == Backend::PostgresRedis {
        spawn_app_with(production(backend)).await
    } else {
        // Production requires Redis; the embedded store gets a Secure cookie from an https
        // PUBLIC_URL.
        spawn_app_with(
            AppOptions::default()
                .backend(backend)
                .var("PUBLIC_URL", "https://auth.example.com")
                .var("SESSION_COOKIE_NAME", "__Host-authauth_session"),
        )
        .await
    };
    let c = client();
    let resp = app.signup_with(&c, "cookie@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 201);
    let header = set_cookie_header(&resp, "__Host-authauth_session").expect("a __Host- cookie");
    let attrs: Vec<String> = header
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for required in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(
            attrs.contains(&required.to_string()),
            "{backend:?}: {required} missing in {header}"
        );
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{header}");
    let max_age: u64 = attrs
        .iter()
        .find_map(|a| a.strip_prefix("max-age="))
        .expect("Max-Age")
        .parse()
        .unwrap();
    assert!(
        max_age > 0 && max_age <= 12 * 3600,
        "Max-Age {max_age} exceeds the absolute timeout"
    );
    // reqwest's jar keeps Secure cookies on loopback: the session works.
    assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 200);

    if backend == Backend::PostgresRedis {
        let mut conn = app.redis().await;
        let keys = redis_keys(&mut conn, &app.redis_prefix).await;
        let session_keys: Vec<&String> = keys.iter().filter(|k| k.contains("}:s:")).collect();
        assert_eq!(session_keys.len(), 1);
        for k in &keys {
            let ttl: i64 = redis::cmd("PTTL").arg(k).query_async(&mut conn).await.unwrap();
            assert!(ttl > 0 && ttl <= 12 * 3600 * 1000, "{k} has TTL {ttl}");
        }
    }
}

#[tokio::test]
async fn the_token_never_appears_in_urls_or_bodies_and_is_accepted_from_the_cookie_only() {
    let app = spawn_app().await;
    let c = client();
    let resp = app.signup_with(&c, "url@example.com", PASSWORD).await;
    let token = set_cookie_value(&resp, app.cookie_name()).unwrap();
    assert!(!resp.text().await.unwrap().contains(&token));
    for path in ["/auth/me", "/auth/sessions", "/no-such-page"] {
        let resp = c.get(app.url(path)).send().await.unwrap();
        assert!(resp.headers().get("location").is_none());
        assert!(
            !resp.text().await.unwrap().contains(&token),
            "{path} leaks the token"
        );
    }
    let resp = app.login_with(&c, "url@example.com", PASSWORD).await;
    assert!(!resp.text().await.unwrap().contains(&token));
    for query in ["session", "sid", "token", "authauth_session"] {
        let resp = client()
            .get(app.url(&format!("/auth/me?{query}={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "?{query}= must not authenticate");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "no_session");
    }
}

per_backend!(sign_in_always_issues_a_new_token_and_never_adopts_a_planted_one);
async fn sign_in_always_issues_a_new_token_and_never_adopts_a_planted_one(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let (c, first) = app.signed_up_client("plant@example.com").await;
    // A session from an earlier sign-in, and an attacker-chosen value.
    for planted in [first.clone(), "attacker-chosen".to_string()] {
        let resp = reqwest::Client::new()
            .post(app.url("/auth/login"))
            .header("cookie", format!("{}={planted}", app.cookie_name()))
            .json(&json!({"email": "plant@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let issued = set_cookie_value(&resp, app.cookie_name()).unwrap();
        assert_ne!(issued, planted, "{backend:?}: login adopted the presented cookie");
        assert_eq!(app.get_with_cookie("/auth/me", &issued).await.status(), 200);
    }
    // The earlier session was replaced by the new sign-in, not kept alive.
    let resp = app.get_with_cookie("/auth/me", &first).await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "session_revoked");
    assert_eq!(body["reason"], "superseded");
    drop(c);
}

#[tokio::test]
async fn a_token_the_server_did_not_issue_is_refused_without_touching_the_store() {
    let app = spawn_app().await;
    let (_c, real) = app.signed_up_client("strict@example.com").await;
    let before = app.redis_dump().await.len();
    // Same shape as a real cookie, random content.
    let forged = format!(
        "{}.{}.{}",
        authauth::session::token::random_b64(32),
        &real.split('.').nth(1).unwrap(),
        authauth::session::token::random_b64(32)
    );
    for value in [forged.as_str(), "attacker-chosen", ""] {
        let resp = app.get_with_cookie("/auth/me", value).await;
        assert_eq!(resp.status(), 401);
        if let Some(v) = set_cookie_value(&resp, app.cookie_name()) {
            assert!(v.is_empty(), "the answer echoes a cookie: {v}");
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "no_session");
    }
    assert_eq!(
        app.redis_dump().await.len(),
        before,
        "an unknown token created state"
    );
}

#[tokio::test]
async fn tokens_are_unique_random_and_meaningless() {
    let app = spawn_app().await;
    let (c, _) = app.signed_up_client("entropy@example.com").await;
    let me: Value = app.me(&c).await.1;
    let user_id = me["user"]["id"].as_str().unwrap().to_string();
    let mut tokens = Vec::new();
    for _ in 0..200 {
        let resp = app.login_with(&client(), "entropy@example.com", PASSWORD).await;
        assert_eq!(resp.status(), 200);
        tokens.push(set_cookie_value(&resp, app.cookie_name()).unwrap());
    }
    let unique: HashSet<&String> = tokens.iter().collect();
    assert_eq!(unique.len(), 200);
    let secrets: Vec<&str> = tokens.iter().map(|t| t.split('.').next().unwrap()).collect();
    for s in &secrets {
        assert!(s.len() >= 22, "fewer than 128 bits");
        let raw = URL_SAFE_NO_PAD.decode(s).unwrap();
        assert_eq!(raw.len(), 32, "256 bits");
        assert!(serde_json::from_slice::<Value>(&raw).is_err());
    }
    for t in &tokens {
        assert!(!t.contains("entropy") && !t.contains("example.com"));
        assert!(!t.contains(user_id.as_str()) && !t.contains(&user_id.replace('-', "")));
    }
    // No common prefix and no counter: the first characters spread out.
    let firsts: HashSet<&str> = secrets.iter().map(|s| &s[..2]).collect();
    assert!(firsts.len() > 150, "token prefixes repeat: {}", firsts.len());
}

#[tokio::test]
async fn responses_that_set_cookies_or_carry_user_data_are_not_cacheable() {
    let app = spawn_app().await;
    let c = client();
    let signup = app.signup_with(&c, "cache@example.com", PASSWORD).await;
    let login = app.login_with(&c, "cache@example.com", PASSWORD).await;
    let me = c.get(app.url("/auth/me")).send().await.unwrap();
    let list = c.get(app.url("/auth/sessions")).send().await.unwrap();
    let logout = c.post(app.url("/auth/logout")).send().await.unwrap();
    let unauthorized = c.get(app.url("/auth/me")).send().await.unwrap();
    for (name, resp) in [
        ("signup", signup),
        ("login", login),
        ("me", me),
        ("sessions", list),
        ("logout", logout),
        ("401", unauthorized),
    ] {
        assert_eq!(
            resp.headers().get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{name}"
        );
    }
}

per_backend!(logout_ends_the_session_on_the_server_and_clears_the_cookie);
async fn logout_ends_the_session_on_the_server_and_clears_the_cookie(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let (c, cookie) = app.signed_up_client("logout@example.com").await;
    let resp = c.post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let cleared = set_cookie_header(&resp, app.cookie_name()).expect("logout clears the cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // Replaying the saved value is refused, with the reason.
    let resp = app.get_with_cookie("/auth/me", &cookie).await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "session_revoked", "{backend:?}");
    assert_eq!(body["reason"], "logout");
    if backend == Backend::PostgresRedis {
        let keys: Vec<String> = app.redis_dump().await.into_iter().map(|(k, _)| k).collect();
        assert!(
            !keys.iter().any(|k| k.contains("}:s:")),
            "the session key survived logout: {keys:?}"
        );
    }
    // No state change on GET: GET /auth/logout is not a route, and the session of a new
    // sign-in survives it.
    app.login_with(&c, "logout@example.com", PASSWORD).await;
    assert_eq!(c.get(app.url("/auth/logout")).send().await.unwrap().status(), 405);
    assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 200);
}

per_backend!(idle_and_absolute_timeouts_are_enforced_by_the_server);
async fn idle_and_absolute_timeouts_are_enforced_by_the_server(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::default()
            .backend(backend)
            .var("SESSION_IDLE_TIMEOUT", "2s")
            .var("SESSION_ABSOLUTE_TIMEOUT", "5s"),
    )
    .await;
    let (_idle, idle_cookie) = app.signed_up_client("idle@example.com").await;
    let busy = client();
    let resp = app.login_with(&busy, "idle@example.com", PASSWORD).await;
    let busy_cookie = set_cookie_value(&resp, app.cookie_name()).unwrap();
    // `busy` is used every 700 ms of the app's clock: it outlives the idle timeout, not the
    // absolute one.
    let mut elapsed = Duration::ZERO;
    let mut last_ok = Duration::ZERO;
    let mut idle_checked = false;
    while elapsed < Duration::from_millis(6500) {
        let status = busy.get(app.url("/auth/me")).send().await.unwrap().status();
        if !idle_checked && elapsed > Duration::from_millis(3000) {
            // `idle` has not been used for more than its 2 s idle timeout, while `busy`
            // lives on.
            let resp = app.get_with_cookie("/auth/me", &idle_cookie).await;
            assert_eq!(resp.status(), 401, "{backend:?}");
            assert_eq!(resp.json::<Value>().await.unwrap()["error"], "session_expired");
            assert_eq!(status, 200);
            idle_checked = true;
        }
        if status == 200 {
            last_ok = elapsed;
        } else {
            assert_eq!(status, 401);
            break;
        }
        app.advance(Duration::from_millis(700));
        elapsed += Duration::from_millis(700);
    }
    assert!(
        last_ok > Duration::from_secs(3),
        "{backend:?}: the busy session died early ({last_ok:?})"
    );
    assert!(
        last_ok < Duration::from_millis(5000),
        "{backend:?}: absolute timeout not enforced"
    );
    let body: Value = app
        .get_with_cookie("/auth/me", &busy_cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"], "session_expired", "{backend:?}");
    assert!(idle_checked);
}

#[tokio::test]
async fn a_client_side_max_age_changes_nothing() {
    let app = spawn_app_with(AppOptions::default().var("SESSION_IDLE_TIMEOUT", "2s")).await;
    let (_c, cookie) = app.signed_up_client("maxage@example.com").await;
    // A client that keeps the cookie for a year and says so in its request gains nothing: the
    // server's own record decides.
    let name = app.cookie_name().to_string();
    let forever = format!("{name}={cookie}; Max-Age=31536000; Expires=Fri, 31 Dec 9999 23:59:59 GMT");
    let me = |header: String| {
        let url = app.url("/auth/me");
        async move {
            reqwest::Client::new()
                .get(url)
                .header("cookie", header)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        me(forever.clone()).await.status(),
        200,
        "the cookie works while fresh"
    );
    app.advance(Duration::from_millis(2600));
    let resp = me(forever).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "session_expired");
}

per_backend!(auth_me_shows_every_new_state_of_the_session_and_never_an_earlier_one);
/// `/auth/me` bodies (and, on Redis, decoded records) are reused while a session's stored state
/// is unchanged: each change — a sliding refresh, a rotation, a re-authentication, the end —
/// must show in the very next answer.
async fn auth_me_shows_every_new_state_of_the_session_and_never_an_earlier_one(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::default()
            .backend(backend)
            // Touched after 60 s, rotated after 10 min.
            .var("SESSION_IDLE_TIMEOUT", "30m")
            .var("SESSION_ROTATION_INTERVAL", "10m"),
    )
    .await;
    let (c, _) = app.signed_up_client("states@example.com").await;
    let (_, first) = app.me(&c).await;
    assert_eq!(app.me(&c).await.1, first, "{backend:?}: same state, same answer");

    // A sliding refresh: seen later, expires later.
    app.advance(Duration::from_secs(61));
    let (status, touched) = app.me(&c).await;
    assert_eq!(status, 200);
    assert_ne!(
        touched["session"]["lastSeenAt"], first["session"]["lastSeenAt"],
        "{backend:?}"
    );
    assert_ne!(
        touched["session"]["expiresAt"], first["session"]["expiresAt"],
        "{backend:?}"
    );
    assert_eq!(app.me(&c).await.1, touched, "{backend:?}");

    // A re-authentication: a new moment of proof.
    app.advance(Duration::from_secs(5));
    let resp = app
        .post_json(&c, "/auth/reauthenticate", &json!({ "password": PASSWORD }))
        .await;
    assert_eq!(resp.status(), 200);
    let (_, proved) = app.me(&c).await;
    assert_ne!(
        proved["session"]["authenticatedAt"], touched["session"]["authenticatedAt"],
        "{backend:?}"
    );

    // A rotation: same session, new token, seen now.
    app.advance(Duration::from_secs(11 * 60));
    let (status, rotated) = app.me(&c).await;
    assert_eq!(status, 200);
    assert_eq!(rotated["session"]["id"], first["session"]["id"]);
    assert_ne!(
        rotated["session"]["lastSeenAt"], proved["session"]["lastSeenAt"],
        "{backend:?}"
    );

    // The end: the next request with that cookie is refused, whatever was answered before.
    let other = client();
    let resp = app.login_with(&other, "states@example.com", PASSWORD).await;
    let cookie = set_cookie_value(&resp, app.cookie_name()).unwrap();
    assert_eq!(app.get_with_cookie("/auth/me", &cookie).await.status(), 200);
    assert_eq!(
        app.post_json(&other, "/auth/logout", &json!({})).await.status(),
        204
    );
    let resp = app.get_with_cookie("/auth/me", &cookie).await;
    assert_eq!(resp.status(), 401, "{backend:?}");
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "session_revoked");
}

per_backend!(changing_the_password_ends_every_other_session_and_issues_a_new_one);
async fn changing_the_password_ends_every_other_session_and_issues_a_new_one(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let (a, a_cookie) = app.signed_up_client("pw@example.com").await;
    let b = client();
    assert_eq!(app.login_with(&b, "pw@example.com", PASSWORD).await.status(), 200);
    // Re-authentication is required: a missing or wrong current password changes nothing.
    let resp = app
        .post_json(
            &a,
            "/auth/password",
            &json!({"newPassword": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let resp = app
        .post_json(
            &a,
            "/auth/password",
            &json!({"currentPassword": "not the password", "newPassword": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "current_password_incorrect"
    );
    assert_eq!(b.get(app.url("/auth/me")).send().await.unwrap().status(), 200);

    let resp = app
        .post_json(
            &a,
            "/auth/password",
            &json!({"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "{backend:?}");
    let fresh = set_cookie_value(&resp, app.cookie_name()).unwrap();
    assert_ne!(fresh, a_cookie);
    assert_eq!(
        a.get(app.url("/auth/me")).send().await.unwrap().status(),
        200,
        "A keeps working"
    );
    let resp = b.get(app.url("/auth/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["reason"], "password_changed");
    let old: Value = app
        .get_with_cookie("/auth/me", &a_cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        old["reason"], "password_changed",
        "the pre-change token of A is dead too"
    );
    assert_eq!(
        app.login_with(&client(), "pw@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.login_with(&client(), "pw@example.com", "a brand new passphrase")
            .await
            .status(),
        200
    );
}

per_backend!(users_list_and_end_their_own_sessions_but_not_anyone_elses);
async fn users_list_and_end_their_own_sessions_but_not_anyone_elses(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let (a, a_cookie) = app.signed_up_client("list@example.com").await;
    let b = client();
    let b_cookie = set_cookie_value(
        &app.login_with(&b, "list@example.com", PASSWORD).await,
        app.cookie_name(),
    )
    .unwrap();
    let (mallory, _) = app.signed_up_client("mallory@example.com").await;

    let list: Value = a
        .get(app.url("/auth/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let text = list.to_string();
    assert!(
        !text.contains(&a_cookie) && !text.contains(&b_cookie),
        "listing exposes tokens"
    );
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let b_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for field in [
        "id",
        "createdAt",
        "lastSeenAt",
        "expiresAt",
        "method",
        "ip",
        "userAgent",
    ] {
        assert!(sessions[0].get(field).is_some(), "{field} missing");
    }

    // Another user's session id is simply not found (no IDOR), and stays alive.
    let resp = mallory
        .delete(app.url(&format!("/auth/sessions/{b_id}")))
        .header("origin", &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(b.get(app.url("/auth/me")).send().await.unwrap().status(), 200);

    let resp = a
        .delete(app.url(&format!("/auth/sessions/{b_id}")))
        .header("origin", &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{backend:?}");
    let resp = b.get(app.url("/auth/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["reason"], "revoked_by_user");

    // All but the current one.
    let c = client();
    app.login_with(&c, "list@example.com", PASSWORD).await;
    let resp = a
        .delete(app.url("/auth/sessions"))
        .header("origin", &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 401);
    assert_eq!(a.get(app.url("/auth/me")).send().await.unwrap().status(), 200);

    // Everything, everywhere.
    let resp = a
        .post(app.url("/auth/logout-all"))
        .header("origin", &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.get_with_cookie("/auth/me", &a_cookie).await.status(), 401);
    assert_eq!(
        mallory.get(app.url("/auth/me")).send().await.unwrap().status(),
        200,
        "other users unaffected"
    );
}

per_backend!(parallel_requests_across_a_rotation_all_succeed_with_exactly_one_successor);
async fn parallel_requests_across_a_rotation_all_succeed_with_exactly_one_successor(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::default()
            .backend(backend)
            .var("SESSION_ROTATION_INTERVAL", "3s")
            .var("SESSION_ROTATION_GRACE", "2s"),
    )
    .await;
    let (_c, cookie) = app.signed_up_client("rotate@example.com").await;
    app.advance(Duration::from_millis(3100));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (url, name, cookie) = (app.url("/auth/me"), app.cookie_name().to_string(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let resp = reqwest::Client::new()
                .get(url)
                .header("cookie", format!("{name}={cookie}"))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), set_cookie_value(&resp, &name))
        }));
    }
    let mut successors = HashSet::new();
    for t in tasks {
        let (status, set) = t.await.unwrap();
        assert_eq!(status, 200, "{backend:?}: a parallel request was logged out");
        if let Some(v) = set {
            successors.insert(v);
        }
    }
    assert_eq!(
        successors.len(),
        1,
        "{backend:?}: {} successors",
        successors.len()
    );
    let successor = successors.into_iter().next().unwrap();
    assert_ne!(successor, cookie);
    if backend == Backend::PostgresRedis {
        let keys = app.redis_dump().await;
        let live: Vec<&(String, Option<String>)> = keys.iter().filter(|(k, _)| k.contains("}:s:")).collect();
        assert_eq!(
            live.len(),
            2,
            "the successor and the old token in grace: {keys:?}"
        );
    }
    assert_eq!(app.get_with_cookie("/auth/me", &successor).await.status(), 200);
    app.advance(Duration::from_millis(2100));
    assert_eq!(
        app.get_with_cookie("/auth/me", &cookie).await.status(),
        401,
        "grace ended"
    );
    assert_eq!(app.get_with_cookie("/auth/me", &successor).await.status(), 200);
}

per_backend!(a_logout_racing_with_requests_wins_for_every_request_after_it);
async fn a_logout_racing_with_requests_wins_for_every_request_after_it(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let (c, cookie) = app.signed_up_client("race@example.com").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (url, name, cookie, stop) = (
            app.url("/auth/me"),
            app.cookie_name().to_string(),
            cookie.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let started = std::time::Instant::now();
                let status = http
                    .get(&url)
                    .header("cookie", format!("{name}={cookie}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                seen.push((started, status));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = c.post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let logged_out = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut after = 0;
    for w in workers {
        for (started, status) in w.await.unwrap() {
            if started > logged_out {
                after += 1;
                assert_eq!(status, 401, "{backend:?}: a request after the logout was served");
            } else {
                assert!(status == 200 || status == 401);
            }
        }
    }
    assert!(after > 0, "no request ran after the logout");
}

#[tokio::test]
async fn revocation_is_immediate_on_every_instance_and_secret_rotation_logs_nobody_out() {
    let a = spawn_app().await;
    let old_secret = a.vars["SESSION_SECRET"].clone();
    let (_c, cookie) = a.signed_up_client("fleet@example.com").await;
    // A second server over the same PostgreSQL and Redis, with a new signing secret first.
    let new_secret = authauth::session::token::generate_secret();
    let rotated = format!("{new_secret},{old_secret}");
    let b = spawn_app_with(AppOptions::default().sharing(&a).var("SESSION_SECRET", &rotated)).await;
    assert_eq!(
        b.get_with_cookie("/auth/me", &cookie).await.status(),
        200,
        "old-secret cookies still verify"
    );
    // New cookies from B are signed with the new secret: A (old secret only) refuses them.
    let fresh = set_cookie_value(
        &b.login_with(&client(), "fleet@example.com", PASSWORD).await,
        b.cookie_name(),
    )
    .unwrap();
    assert_eq!(b.get_with_cookie("/auth/me", &fresh).await.status(), 200);
    assert_eq!(a.get_with_cookie("/auth/me", &fresh).await.status(), 401);
    // Logging out through B is effective on A at the very next request.
    let resp = reqwest::Client::new()
        .post(b.url("/auth/logout"))
        .header("cookie", format!("{}={cookie}", b.cookie_name()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = a.get_with_cookie("/auth/me", &cookie).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "session_revoked");
}

#[tokio::test]
async fn the_client_address_comes_from_x_forwarded_for_only_when_trusted() {
    for (trusted, header, expected) in [
        (false, "203.0.113.66, 198.51.100.7", "127.0.0.1"),
        // A forged entry first, then the one the trusted proxy appended.
        (true, "203.0.113.66, 198.51.100.7", "198.51.100.7"),
        (true, "203.0.113.66, 198.51.100.7:51234", "198.51.100.7"),
        (true, "203.0.113.66, [2001:db8::7]:443", "2001:db8::7"),
        // An entry that is not an address never falls back to the client-supplied one.
        (true, "203.0.113.66, unknown", "127.0.0.1"),
    ] {
        let app =
            spawn_app_with(AppOptions::default().var("TRUST_X_FORWARDED_FOR", &trusted.to_string())).await;
        app.signed_up_client("proxy@example.com").await;
        let c = client();
        let resp = c
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", header)
            .json(&json!({"email": "proxy@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let current = current_session(&c, &app.url("/auth/sessions")).await;
        assert_eq!(current["ip"], expected, "trusted: {trusted}, {header}");
    }
}

#[tokio::test]
async fn signing_up_in_a_browser_signed_in_as_someone_else_ends_that_session() {
    let app = spawn_app().await;
    let (c, first) = app.signed_up_client("first@example.com").await;
    let resp = app.signup_with(&c, "second@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 201);
    let resp = app.get_with_cookie("/auth/me", &first).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["reason"], "superseded");
    let me: Value = app.me(&c).await.1;
    assert_eq!(me["user"]["email"], "second@example.com");
}

#[tokio::test]
async fn a_sign_in_beyond_the_session_limit_ends_the_least_recently_used_session() {
    let app = spawn_app_with(AppOptions::default().var("MAX_SESSIONS_PER_USER", "2")).await;
    let (first, _) = app.signed_up_client("limit@example.com").await;
    app.advance(Duration::from_secs(120));
    let second = client();
    assert_eq!(
        app.login_with(&second, "limit@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    app.advance(Duration::from_secs(120));
    let third = client();
    assert_eq!(
        app.login_with(&third, "limit@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    let resp = first.get(app.url("/auth/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "session_revoked");
    assert_eq!(body["reason"], "session_limit");
    for c in [&second, &third] {
        assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn with_the_refuse_action_a_sign_in_beyond_the_limit_is_409_and_nothing_ends() {
    let app = spawn_app_with(
        AppOptions::default()
            .var("MAX_SESSIONS_PER_USER", "1")
            .var("SESSION_LIMIT_ACTION", "refuse"),
    )
    .await;
    let (first, _) = app.signed_up_client("refuse@example.com").await;
    let resp = app.login_with(&client(), "refuse@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 409);
    assert!(resp.headers().get("set-cookie").is_none_or(|v| !v
        .to_str()
        .unwrap()
        .starts_with(&format!("{}=", app.cookie_name()))));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "session_limit_reached");
    assert_eq!(first.get(app.url("/auth/me")).send().await.unwrap().status(), 200);
}
