//! Sign in with Google, against a real OpenID provider: SECURITY.md §5 (O1–O13).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{helpers::*, op::*};

fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

fn has_session_cookie(resp: &reqwest::Response, app: &TestApp) -> bool {
    set_cookie_value(resp, app.cookie_name()).is_some_and(|v| !v.is_empty())
}

#[tokio::test]
async fn o1_o3_the_authorization_request_uses_code_pkce_state_and_nonce_and_keeps_them_server_side() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default()).await;
    let c = client();
    let first = begin(&app, &c, None).await;
    let second = begin(&app, &c, None).await;
    assert!(first.starts_with(&op.url("/auth?")), "{first}");
    let (a, b) = (query(&first), query(&second));
    assert_eq!(a["response_type"], "code");
    let scopes: Vec<&str> = a["scope"].split(' ').collect();
    assert!(
        scopes.contains(&"openid") && scopes.contains(&"email"),
        "{scopes:?}"
    );
    assert_eq!(a["code_challenge_method"], "S256");
    assert_eq!(a["redirect_uri"], app.url("/auth/google/callback"));
    for p in ["state", "nonce", "code_challenge"] {
        assert!(a[p].len() >= 22, "{p} too short");
        assert_ne!(a[p], b[p], "{p} is reused across attempts");
    }
    // The browser holds only an opaque flow id: no state, nonce or verifier.
    let resp = c.get(app.url("/auth/google")).send().await.unwrap();
    let flow = set_cookie_header(&resp, "authauth_flow").expect("flow cookie");
    assert!(
        flow.contains("HttpOnly") && flow.contains("SameSite=Lax") && flow.contains("Max-Age=600"),
        "{flow}"
    );
    let q = query(&location_of(&resp));
    let value = set_cookie_value(&resp, "authauth_flow").unwrap();
    for secret in [&q["state"], &q["nonce"], &q["code_challenge"]] {
        assert!(!value.contains(secret.as_str()));
    }
}

fn location_of(resp: &reqwest::Response) -> String {
    resp.headers()["location"].to_str().unwrap().to_string()
}

per_backend!(a_new_user_signs_in_then_returns_and_the_provider_profile_follows);
async fn a_new_user_signs_in_then_returns_and_the_provider_profile_follows(backend: Backend) {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default().backend(backend)).await;
    let mut person = Person::new("newcomer@example.com");
    let c = client();
    let resp = google_login(&app, op, &c, &person, Some("/welcome")).await;
    assert_eq!(
        resp.status(),
        303,
        "{backend:?}: {}",
        resp.text().await.unwrap_or_default()
    );
    assert_eq!(location_of(&resp), "/welcome");
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    assert!(has_session_cookie(&resp, &app));
    let cleared = set_cookie_header(&resp, "authauth_flow").expect("the flow cookie is cleared");
    assert!(cleared.contains("Max-Age=0"));
    let me: Value = app.me(&c).await.1;
    assert_eq!(me["user"]["email"], "newcomer@example.com");
    assert_eq!(me["user"]["fullName"], "Provider Person");
    assert_eq!(me["session"]["method"], "google");
    let id = me["user"]["id"].clone();
    assert_eq!(verified_name(&app, &c).await, "Provider Person");

    // Returning, in another browser, with a new display name at the provider.
    person.name = "Renamed Person".into();
    let c2 = client();
    let resp = google_login(&app, op, &c2, &person, None).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location_of(&resp), "/");
    let me: Value = app.me(&c2).await.1;
    assert_eq!(me["user"]["id"], id, "{backend:?}: the same account");
    assert_eq!(me["user"]["fullName"], "Renamed Person");
    assert_eq!(users_with_email(&app, "newcomer@example.com").await, 1);
    // The first browser's session shows the new name too, to a proxy as well (its identity
    // headers are written once per session state: a new state, new headers).
    assert_eq!(verified_name(&app, &c).await, "Renamed Person", "{backend:?}");
    let me: Value = app.me(&c).await.1;
    assert_eq!(me["user"]["fullName"], "Renamed Person", "{backend:?}");
}

/// The name forward auth (`GET /auth/verify`) gives a proxy for this browser's session.
async fn verified_name(app: &TestApp, c: &reqwest::Client) -> String {
    let resp = c.get(app.url("/auth/verify")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()["x-auth-name"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_verified_email_links_to_the_password_account_with_that_address() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default()).await;
    let (local, _) = app.signed_up_client("linked@example.com").await;
    let me: Value = app.me(&local).await.1;
    let c = client();
    let linked_person = Person::new("Linked@Example.com");
    let resp = google_login(&app, op, &c, &linked_person, None).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap_or_default());
    let via_google: Value = app.me(&c).await.1;
    assert_eq!(via_google["user"]["id"], me["user"]["id"]);
    assert_eq!(users_with_email(&app, "linked@example.com").await, 1);
    // Pre-hijacking defence: whoever signed up with the address before the provider proved
    // who owns it loses everything they set up — their sessions and their password.
    let resp = local.get(app.url("/auth/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["reason"], "identity_linked");
    assert_eq!(
        app.login_with(&client(), "linked@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    // The owner keeps signing in with the provider, into the same account.
    assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 200);
    assert_eq!(
        google_login(&app, op, &client(), &linked_person, None)
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn o7_an_unverified_email_never_claims_or_creates_an_account() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default()).await;
    app.signed_up_client("unverified@example.com").await;
    for email in ["unverified@example.com", "brand-new-unverified@example.com"] {
        let c = client();
        let resp = google_login(&app, op, &c, &Person::new(email).unverified(), None).await;
        assert_eq!(resp.status(), 403, "{email}");
        assert!(!has_session_cookie(&resp, &app));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "email_not_verified");
        assert!(body["message"].as_str().unwrap().contains("verif"));
        assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 401);
    }
    assert_eq!(
        users_with_email(&app, "brand-new-unverified@example.com").await,
        0
    );
}

#[tokio::test]
async fn o6_the_account_is_keyed_by_issuer_and_subject_never_by_email() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default()).await;
    let alice = Person::new("alice@example.com");
    let c = client();
    assert_eq!(google_login(&app, op, &c, &alice, None).await.status(), 303);
    // Another subject at the same provider now asserts alice's (verified) address.
    let impostor = Person {
        sub: format!("{}-009", alice.sub),
        ..alice.clone()
    };
    let c2 = client();
    let resp = google_login(&app, op, &c2, &impostor, None).await;
    assert_eq!(resp.status(), 409);
    assert!(!has_session_cookie(&resp, &app));
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "identity_conflict");
    assert_eq!(c2.get(app.url("/auth/me")).send().await.unwrap().status(), 401);
    // The real alice still gets in.
    assert_eq!(
        google_login(&app, op, &client(), &alice, None).await.status(),
        303
    );
}

#[tokio::test]
async fn o2_state_is_single_use_and_bound_to_the_browser_that_started() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default()).await;
    let person = Person::new("state@example.com");

    // (a, d) Started in A, finished in B (which has no flow cookie).
    let (a, b) = (client(), client());
    let auth = begin(&app, &a, None).await;
    let callback = at_provider(op, &a, &auth, Some(&person)).await;
    let resp = b.get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(!has_session_cookie(&resp, &app));
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "sign_in_state_invalid"
    );

    // (b) Finished in A: works once. Replaying it — even with A's flow cookie — is refused,
    // because the server-side flow was taken by the first use.
    let resp = a.get(app.url("/auth/google")).send().await.unwrap();
    let flow_id = set_cookie_value(&resp, "authauth_flow").unwrap();
    let auth = location_of(&resp);
    let callback = at_provider(op, &a, &auth, Some(&person)).await;
    assert_eq!(a.get(&callback).send().await.unwrap().status(), 303);
    let replay = reqwest::Client::new()
        .get(&callback)
        .header("cookie", format!("authauth_flow={flow_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400, "replay");
    assert!(!has_session_cookie(&replay, &app));

    // (c) Wrong and missing state.
    for tamper in ["wrong", "missing"] {
        let c = client();
        let auth = begin(&app, &c, None).await;
        let callback = at_provider(op, &c, &auth, Some(&person)).await;
        let mut url = url::Url::parse(&callback).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        {
            let mut q = url.query_pairs_mut();
            q.clear();
            for (k, v) in &pairs {
                match (k.as_str(), tamper) {
                    ("state", "missing") => {}
                    ("state", _) => {
                        q.append_pair("state", "attacker-state");
                    }
                    _ => {
                        q.append_pair(k, v);
                    }
                }
            }
        }
        let resp = c.get(url.as_str()).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{tamper} state");
        assert!(!has_session_cookie(&resp, &app));
        assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 401);
    }
}

#[tokio::test]
async fn o4_o5_o10_every_misbehaving_provider_answer_ends_with_no_session_and_no_user() {
    let op = Op::shared();
    let faults = [
        ("iss", 401, "id_token_invalid"),
        ("aud", 401, "id_token_invalid"),
        ("nonce", 401, "id_token_invalid"),
        ("sig", 401, "id_token_invalid"),
        ("alg-none", 401, "id_token_invalid"),
        ("hs256", 401, "id_token_invalid"),
        ("unknown-kid", 401, "id_token_invalid"),
        ("expired", 401, "id_token_invalid"),
        ("no-sub", 401, "id_token_invalid"),
        ("no-iat", 401, "id_token_invalid"),
        ("userinfo-sub", 401, "id_token_invalid"),
        ("auth-iss", 400, "issuer_mismatch"),
    ];
    for (fault, status, code) in faults {
        let app = google_app(op, fault, AppOptions::default().backend(Backend::Sqlite)).await;
        let email = format!("{fault}@example.com");
        let c = client();
        let resp = google_login(&app, op, &c, &Person::new(&email), None).await;
        assert_eq!(resp.status(), status, "fault {fault}");
        assert!(
            !has_session_cookie(&resp, &app),
            "fault {fault}: a session cookie was set"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], code, "fault {fault}: {body}");
        assert_eq!(
            c.get(app.url("/auth/me")).send().await.unwrap().status(),
            401,
            "fault {fault}"
        );
        assert_eq!(
            users_with_email(&app, &email).await,
            0,
            "fault {fault}: a user row was created"
        );
    }
}

#[tokio::test]
async fn o9_return_to_is_restricted_to_same_origin_paths() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default()).await;
    let person = Person::new("redirects@example.com");
    for payload in [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "https:evil.example",
        "/%2F%2Fevil.example",
        "http://127.0.0.1:3000@evil.example",
        "javascript:alert(1)",
        "%0d%0aLocation:%20http://evil",
    ] {
        let resp = google_login(&app, op, &client(), &person, Some(payload)).await;
        assert_eq!(resp.status(), 303, "{payload}");
        assert_eq!(location_of(&resp), "/", "{payload}");
    }
    let resp = google_login(
        &app,
        op,
        &client(),
        &person,
        Some("/account/settings?tab=security"),
    )
    .await;
    assert_eq!(location_of(&resp), "/account/settings?tab=security");
}

#[tokio::test]
async fn o11_o12_a_cancelled_sign_in_ends_cleanly_without_leaking_the_code() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default()).await;
    let c = client();
    let auth = begin(&app, &c, None).await;
    let callback = at_provider(op, &c, &auth, None).await;
    assert_eq!(query(&callback)["error"], "access_denied");
    let resp = c.get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    assert!(!has_session_cookie(&resp, &app));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "provider_refused");
    assert_eq!(body["reason"], "access_denied");
    // A successful callback answers at once with a redirect and no referrer.
    let resp = google_login(&app, op, &client(), &Person::new("o11@example.com"), None).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    assert!(resp.text().await.unwrap().is_empty());
}

#[tokio::test]
async fn o13_a_provider_outage_fails_fast_leaves_passwords_working_and_heals_itself() {
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/auth/google/callback");
    let secret = authauth::session::token::random_b64(32);
    let clients = serde_json::json!([{
        "client_id": "authauth-o13",
        "client_secret": secret,
        "redirect_uris": [callback],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }])
    .to_string();
    let mut op = Op::start_with(&[("OP_CLIENTS", clients.as_str())]);
    let app = spawn_app_with(
        AppOptions::default()
            .var("PORT", &port.to_string())
            .var("GOOGLE_CLIENT_ID", "authauth-o13")
            .var("GOOGLE_CLIENT_SECRET", &secret)
            .var("GOOGLE_CALLBACK_URL", &callback)
            .var("GOOGLE_ISSUER_URL", &op.issuer)
            .var("GOOGLE_HTTP_TIMEOUT", "2s"),
    )
    .await;
    let person = Person::new("o13@example.com");
    assert_eq!(
        google_login(&app, &op, &client(), &person, None).await.status(),
        303
    );
    app.signed_up_client("password-user@example.com").await;

    op.stop();
    // Starts reuse metadata fetched in the last 5 s (no amplification towards the provider).
    app.advance(Duration::from_millis(5100));
    let started = Instant::now();
    let resp = client().get(app.url("/auth/google")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "provider_unavailable"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not fast: {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.login_with(&client(), "password-user@example.com", PASSWORD)
            .await
            .status(),
        200
    );

    // Back, with new signing keys (a new kid): authauth refetches them by itself — once the
    // 5 s in which it asks a provider that failed no more have passed.
    op.restart();
    app.advance(Duration::from_millis(5100));
    let resp = google_login(&app, &op, &client(), &person, None).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap_or_default());
}

#[tokio::test]
async fn o13_with_the_provider_down_from_the_start_sign_in_fails_fast_with_502() {
    let port = free_port();
    // Nothing listens there.
    let app = spawn_app_with(
        AppOptions::default()
            .var("GOOGLE_CLIENT_ID", "id")
            .var("GOOGLE_CLIENT_SECRET", "secret")
            .var("GOOGLE_ISSUER_URL", &format!("http://127.0.0.1:{port}"))
            .var("GOOGLE_HTTP_TIMEOUT", "2s"),
    )
    .await;
    let started = Instant::now();
    let resp = client().get(app.url("/auth/google")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "provider_unavailable"
    );
    assert_eq!(
        app.get("/ready").await.status(),
        200,
        "readiness does not depend on the provider"
    );
}

#[tokio::test]
async fn sign_in_with_google_is_404_when_not_configured_and_json_for_fetch_callers() {
    let app = spawn_app().await;
    let resp = client().get(app.url("/auth/google")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "provider_not_configured"
    );

    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default()).await;
    // What Swagger UI's "Try it out" (fetch) sends: no cross-origin redirect, the URL instead.
    let resp = client()
        .get(app.url("/auth/google"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(set_cookie_value(&resp, "authauth_flow").is_some());
    let body: Value = resp.json().await.unwrap();
    assert!(body["authorizationUrl"]
        .as_str()
        .unwrap()
        .starts_with(&op.url("/auth?")));
}

#[tokio::test]
async fn google_sign_in_replaces_the_browsers_session_and_refuses_disabled_accounts() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default()).await;
    // A planted session cookie is never adopted (V3.2.1 for the callback).
    let (c, old) = app.signed_up_client("fixation@example.com").await;
    let person = Person::new("fixation@example.com");
    let resp = google_login(&app, op, &c, &person, None).await;
    assert_eq!(resp.status(), 303);
    let new = set_cookie_value(&resp, app.cookie_name()).unwrap();
    assert_ne!(new, old);
    assert_eq!(app.get_with_cookie("/auth/me", &old).await.status(), 401);
    assert_eq!(app.get_with_cookie("/auth/me", &new).await.status(), 200);

    // A disabled account cannot sign in with Google.
    use sea_orm::{ConnectionTrait, Database};
    let conn = Database::connect(&app.vars["DATABASE_URL"]).await.unwrap();
    conn.execute_unprepared("UPDATE users SET disabled_at = now() WHERE email = 'fixation@example.com'")
        .await
        .unwrap();
    let resp = google_login(&app, op, &client(), &person, None).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "account_disabled");
}

/// How many times the app has fetched the provider's metadata and keys (its metric).
fn metadata_fetches(app: &TestApp) -> u64 {
    fetches_ending(app, "ok")
}

/// How many of those fetches ended with `outcome` (`ok`, `failed`).
fn fetches_ending(app: &TestApp, outcome: &str) -> u64 {
    let text = app.state.metrics.render();
    text.lines()
        .find(|l| {
            l.starts_with("authauth_oidc_metadata_fetches_total{")
                && l.contains(&format!(r#"outcome="{outcome}""#))
                && l.contains(r#"provider="google""#)
        })
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Starts arriving together when the copy is stale wait for one fetch and share it.
#[tokio::test]
async fn starts_arriving_together_share_one_metadata_fetch() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default().backend(Backend::Sqlite)).await;
    begin(&app, &client(), None).await;
    assert_eq!(metadata_fetches(&app), 1);
    app.advance(Duration::from_secs(6));
    let starts = (0..20).map(|_| {
        let app = &app;
        async move { begin(app, &client(), None).await }
    });
    futures_util::future::join_all(starts).await;
    assert_eq!(metadata_fetches(&app), 2, "one fetch for twenty starts");
}

/// A provider that does not answer is asked again once per 5 s at most, however many anonymous
/// starts arrive meanwhile: they are refused at once, without a request of their own.
#[tokio::test]
async fn a_provider_that_does_not_answer_is_asked_once_per_five_seconds_however_many_starts() {
    let app = spawn_app_with(
        AppOptions::default()
            .backend(Backend::Sqlite)
            .var("GOOGLE_CLIENT_ID", "id")
            .var("GOOGLE_CLIENT_SECRET", "secret")
            .var("GOOGLE_CALLBACK_URL", "http://127.0.0.1:9/auth/google/callback")
            .var("GOOGLE_ISSUER_URL", "http://127.0.0.1:9")
            .var("GOOGLE_HTTP_TIMEOUT", "2s"),
    )
    .await;
    let start = || async {
        let resp = client().get(app.url("/auth/google")).send().await.unwrap();
        assert!(resp.status().is_server_error(), "{}", resp.status());
    };
    for _ in 0..5 {
        start().await;
    }
    assert_eq!(fetches_ending(&app, "failed"), 1, "one attempt for five starts");
    app.advance(Duration::from_secs(6));
    start().await;
    assert_eq!(
        fetches_ending(&app, "failed"),
        2,
        "and another once 5 s have passed"
    );
}

/// The provider's metadata is cached: a sign-in start re-fetches it once it is 5 s old (never
/// more often, however many anonymous starts arrive), a finishing sign-in uses it for up to an
/// hour. Counted by `authauth_oidc_metadata_fetches_total`, on the app's injected clock.
#[tokio::test]
async fn provider_metadata_is_fetched_once_per_interval_and_reused_in_between() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default().backend(Backend::Sqlite)).await;
    let c = client();
    let auth = begin(&app, &c, None).await;
    let after_first = metadata_fetches(&app);
    assert_eq!(after_first, 1, "the first start fetched the metadata");
    // More starts within START_REFRESH (5 s): the cached copy. (The app's clock is real time
    // plus what the test adds: the steps leave seconds of slack for the real time they take.)
    begin(&app, &client(), None).await;
    app.advance(Duration::from_secs(3));
    begin(&app, &client(), None).await;
    assert_eq!(metadata_fetches(&app), 1, "starts within 5 s use the cache");
    // Past 5 s the copy is too old for a start.
    app.advance(Duration::from_secs(3));
    let auth_fresh = begin(&app, &c, None).await;
    assert_eq!(metadata_fetches(&app), 2, "a start re-fetches after 5 s");
    // Finishing a sign-in nine minutes later (the flow lasts ten) uses the copy (good for an
    // hour).
    app.advance(Duration::from_secs(9 * 60));
    let callback = at_provider(
        op,
        &c,
        &auth_fresh,
        Some(&Person::new("cached-metadata@example.com")),
    )
    .await;
    let resp = c.get(callback).send().await.unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap_or_default());
    assert_eq!(metadata_fetches(&app), 2, "the callback used the cached metadata");
    drop(auth);
}

/// A token signed with a key the cached set does not have makes authauth re-fetch the keys —
/// once per 10 s at most, so forged tokens cannot make it hammer the provider.
#[tokio::test]
async fn an_unknown_signing_key_refetches_the_keys_at_most_once_per_ten_seconds() {
    let op = Op::shared();
    let app = google_app(op, "unknown-kid", AppOptions::default().backend(Backend::Sqlite)).await;
    // Up to the callback: the start, the provider's login.
    let attempt = |email: &'static str| {
        let app = &app;
        async move {
            let c = client();
            let auth = begin(app, &c, None).await;
            let callback = at_provider(op, &c, &auth, Some(&Person::new(email))).await;
            let before = metadata_fetches(app);
            let resp = c.get(callback).send().await.unwrap();
            assert_eq!(resp.status(), 401, "a token with an unknown key is refused");
            metadata_fetches(app) - before
        }
    };
    // The app's clock is real time plus what the test adds: the steps leave seconds of slack
    // for the real time the sign-ins take.
    assert_eq!(
        attempt("kid-1@example.com").await,
        1,
        "the first unknown key re-fetches"
    );
    assert_eq!(attempt("kid-2@example.com").await, 0, "not again within 10 s");
    app.advance(Duration::from_secs(5));
    assert_eq!(attempt("kid-3@example.com").await, 0, "not again within 10 s");
    app.advance(Duration::from_secs(6));
    assert_eq!(
        attempt("kid-4@example.com").await,
        1,
        "again once 10 s have passed"
    );
}

/// Each sign-in in progress is its own record: two browsers starting at once both finish, each
/// as its own person.
#[tokio::test]
async fn two_sign_ins_in_progress_at_once_each_finish_as_their_own() {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default().backend(Backend::Sqlite)).await;
    let (a, b) = (client(), client());
    let auth_a = begin(&app, &a, None).await;
    let auth_b = begin(&app, &b, None).await;
    let callback_b = at_provider(op, &b, &auth_b, Some(&Person::new("second-browser@example.com"))).await;
    let callback_a = at_provider(op, &a, &auth_a, Some(&Person::new("first-browser@example.com"))).await;
    for (c, callback, email) in [
        (&a, callback_a, "first-browser@example.com"),
        (&b, callback_b, "second-browser@example.com"),
    ] {
        let resp = c.get(callback).send().await.unwrap();
        assert_eq!(
            resp.status(),
            303,
            "{email}: {}",
            resp.text().await.unwrap_or_default()
        );
        let (status, me) = app.me(c).await;
        assert_eq!(status, 200, "{email}");
        assert_eq!(me["user"]["email"], email);
    }
}
