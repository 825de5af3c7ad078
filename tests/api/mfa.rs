//! Second factors and step-up: an authenticator app whose codes the test computes from the seed
//! the server hands out (RFC 6238, `totp-rs`), recovery codes, the half-finished sign-in that
//! can do nothing but finish, re-authentication, and the operator's reset.

use std::time::Duration;

use serde_json::{json, Value};
use totp_rs::{Builder, Secret};

use crate::{cli_ops::cli, helpers::*};

/// The code an authenticator app shows for `secret` (base32) at the app's time.
fn code_at(app: &TestApp, secret: &str) -> String {
    let totp = Builder::new()
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    totp.generate((app.now() / 1000) as u64).to_string()
}

/// A code that is wrong now (the right one plus one, mod 10^6).
fn wrong_code(app: &TestApp, secret: &str) -> String {
    let right: u32 = code_at(app, secret).parse().unwrap();
    format!("{:06}", (right + 1) % 1_000_000)
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sets up an authenticator app on the signed-in `c`; returns its seed and recovery codes.
pub(crate) async fn enrol(app: &TestApp, c: &reqwest::Client) -> (String, Vec<String>) {
    let (status, setup) = json_of(app.post_json(c, "/auth/mfa/totp", &json!({})).await).await;
    assert_eq!(status, 200, "{setup}");
    let secret = setup["secret"].as_str().unwrap().to_string();
    assert!(setup["otpauthUri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/authauth:"));
    assert!(setup["qrCode"]
        .as_str()
        .unwrap()
        .starts_with("data:image/svg+xml;base64,"));
    let code = code_at(app, &secret);
    let (status, confirmed) = json_of(
        app.post_json(c, "/auth/mfa/totp/confirm", &json!({ "code": code }))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    let codes: Vec<String> = confirmed["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(confirmed["session"]["aal"], 2);
    (secret, codes)
}

/// Password sign-in on a fresh client: the response.
async fn first_step(app: &TestApp, email: &str) -> (reqwest::Client, reqwest::Response) {
    let c = client();
    let resp = app.login_with(&c, email, PASSWORD).await;
    (c, resp)
}

#[tokio::test]
async fn an_authenticator_app_makes_sign_in_a_two_step_affair_that_ends_in_a_new_session() {
    let app = spawn_app().await;
    let (owner, _) = app.signed_up_client("two-step@example.com").await;
    let (secret, _) = enrol(&app, &owner).await;
    let (status, factors) = json_of(owner.get(app.url("/auth/mfa")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(factors["totp"], true);
    assert_eq!(factors["recoveryCodesLeft"], 10);

    let (c, resp) = first_step(&app, "two-step@example.com").await;
    let pending_cookie = set_cookie_value(&resp, app.cookie_name()).unwrap();
    let (status, pending) = json_of(resp).await;
    assert_eq!(status, 202, "{pending}");
    assert_eq!(pending["session"]["stage"], "second_factor");
    assert_eq!(pending["session"]["aal"], 1);
    let pending_id = pending["session"]["id"].as_str().unwrap().to_string();

    // The half-finished sign-in opens nothing else.
    for (method, path) in [
        ("GET", "/auth/me"),
        ("GET", "/auth/sessions"),
        ("GET", "/auth/mfa"),
        ("GET", "/auth/activity"),
        ("POST", "/auth/logout-all"),
        ("DELETE", "/auth/sessions"),
        ("POST", "/auth/mfa/totp"),
    ] {
        let resp = c
            .request(method.parse().unwrap(), app.url(path))
            .header("origin", app.origin())
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(resp).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("mfa_required")),
            "{method} {path}"
        );
    }
    let verify = app.get_with_cookie("/auth/verify", &pending_cookie).await;
    assert_ne!(verify.status(), 200, "forward-auth refuses it too");

    // A wrong code is refused and changes nothing.
    let (status, body) = json_of(
        app.post_json(
            &c,
            "/auth/mfa/verify",
            &json!({ "code": wrong_code(&app, &secret) }),
        )
        .await,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_code")));
    // Neither both factors nor none.
    let (status, _) = json_of(app.post_json(&c, "/auth/mfa/verify", &json!({})).await).await;
    assert_eq!(status, 400);

    // The code that confirmed the app was for this time step: the next one brings a new code.
    app.advance(Duration::from_secs(30));
    let resp = app
        .post_json(&c, "/auth/mfa/verify", &json!({ "code": code_at(&app, &secret) }))
        .await;
    let (status, me) = json_of(resp).await;
    assert_eq!(status, 200, "{me}");
    assert_ne!(me["session"]["id"], pending_id.as_str(), "a new session id");
    assert_eq!(me["session"]["amr"], json!(["pwd", "otp"]));
    assert_eq!(me["session"]["aal"], 2);
    assert_eq!(me["session"]["stage"], "complete");
    let (status, me) = app.me(&c).await;
    assert_eq!((status, me["session"]["aal"].as_u64()), (200, Some(2)));
    // The waiting session is dead.
    let (status, body) = json_of(app.get_with_cookie("/auth/me", &pending_cookie).await).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("sign_in_completed"))
    );
    // Counted as a first step that waits, and a second step that succeeded.
    let metrics = app.state.metrics.render();
    for line in [
        r#"authauth_sign_ins_total{method="password",outcome="second_step"} 1"#,
        r#"authauth_sign_ins_total{method="totp",outcome="bad_credentials"} 1"#,
        r#"authauth_sign_ins_total{method="totp",outcome="success"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    // Forward-auth tells the application how the person signed in.
    let cookie = c.get(app.url("/auth/verify")).send().await.unwrap();
    assert_eq!(cookie.status(), 200);
    assert_eq!(cookie.headers()["x-auth-aal"], "2");
    assert_eq!(cookie.headers()["x-auth-amr"], "pwd otp");
    // The first step of a two-step sign-in is recorded as such.
    let out = cli(&app, &["events", "list", "--type", "sign_in.succeeded", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(r#""stage":"second_factor""#),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn a_code_is_accepted_once_and_the_next_time_step_brings_a_new_one() {
    let app = spawn_app().await;
    let (owner, _) = app.signed_up_client("replay@example.com").await;
    let (secret, _) = enrol(&app, &owner).await;
    // The code that confirmed the app is used: the same time step is refused at sign-in.
    let (c, _) = first_step(&app, "replay@example.com").await;
    let code = code_at(&app, &secret);
    let (status, body) = json_of(
        app.post_json(&c, "/auth/mfa/verify", &json!({ "code": code }))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_code")),
        "replayed"
    );
    app.advance(Duration::from_secs(30));
    let code = code_at(&app, &secret);
    let (status, _) = json_of(
        app.post_json(&c, "/auth/mfa/verify", &json!({ "code": code }))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    // The same code again, in another sign-in within its window: refused.
    let (c2, _) = first_step(&app, "replay@example.com").await;
    let (status, _) = json_of(
        app.post_json(&c2, "/auth/mfa/verify", &json!({ "code": code }))
            .await,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn five_wrong_codes_end_the_sign_in_and_ten_stop_the_account_for_a_while() {
    let app = spawn_app().await;
    let (owner, _) = app.signed_up_client("guessed@example.com").await;
    let (secret, _) = enrol(&app, &owner).await;
    let (c, _) = first_step(&app, "guessed@example.com").await;
    for _ in 0..5 {
        let (status, _) = json_of(
            app.post_json(
                &c,
                "/auth/mfa/verify",
                &json!({ "code": wrong_code(&app, &secret) }),
            )
            .await,
        )
        .await;
        assert_eq!(status, 400);
    }
    let (status, body) = json_of(
        app.post_json(&c, "/auth/mfa/verify", &json!({ "code": code_at(&app, &secret) }))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("second_factor_failed")),
        "even the right code cannot revive it: {body}"
    );
    // Five more in a second sign-in reach the account's limit: the next sign-in is refused a
    // code, right or wrong, until the window ends.
    let (c2, _) = first_step(&app, "guessed@example.com").await;
    for _ in 0..5 {
        let (status, _) = json_of(
            app.post_json(
                &c2,
                "/auth/mfa/verify",
                &json!({ "code": wrong_code(&app, &secret) }),
            )
            .await,
        )
        .await;
        assert_eq!(status, 400);
    }
    let (c3, _) = first_step(&app, "guessed@example.com").await;
    let resp = app
        .post_json(
            &c3,
            "/auth/mfa/verify",
            &json!({ "code": code_at(&app, &secret) }),
        )
        .await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    app.advance(Duration::from_secs(15 * 60 + 1));
    let (c4, _) = first_step(&app, "guessed@example.com").await;
    let (status, _) = json_of(
        app.post_json(
            &c4,
            "/auth/mfa/verify",
            &json!({ "code": code_at(&app, &secret) }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_recovery_code_stands_in_for_the_app_once() {
    let app = spawn_app().await;
    let (owner, _) = app.signed_up_client("lost-phone@example.com").await;
    let (_, codes) = enrol(&app, &owner).await;
    let (c, _) = first_step(&app, "lost-phone@example.com").await;
    // Typed in capitals without hyphens: the same code.
    let typed = codes[3].replace('-', "").to_uppercase();
    let (status, me) = json_of(
        app.post_json(&c, "/auth/mfa/verify", &json!({ "recoveryCode": typed }))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["session"]["amr"], json!(["pwd", "recovery_code"]));
    let (c2, _) = first_step(&app, "lost-phone@example.com").await;
    let (status, _) = json_of(
        app.post_json(&c2, "/auth/mfa/verify", &json!({ "recoveryCode": codes[3] }))
            .await,
    )
    .await;
    assert_eq!(status, 400, "used once");
    let (_, factors) = json_of(c.get(app.url("/auth/mfa")).send().await.unwrap()).await;
    assert_eq!(factors["recoveryCodesLeft"], 9);
    // New codes replace the old ones.
    let (status, fresh) = json_of(app.post_json(&c, "/auth/mfa/recovery-codes", &json!({})).await).await;
    assert_eq!(status, 200);
    assert_eq!(fresh["recoveryCodes"].as_array().unwrap().len(), 10);
    let (status, _) = json_of(
        app.post_json(&c2, "/auth/mfa/verify", &json!({ "recoveryCode": codes[4] }))
            .await,
    )
    .await;
    assert_eq!(status, 400, "the old codes died");
}

#[tokio::test]
async fn sensitive_operations_need_a_recent_proof_and_re_authentication_elevates_only_its_own_session() {
    let app = spawn_app().await;
    let (a, _) = app.signed_up_client("step-up@example.com").await;
    let (b, _) = first_step(&app, "step-up@example.com").await;
    app.advance(Duration::from_secs(11 * 60));
    let change = json!({ "currentPassword": PASSWORD, "newPassword": "quiet harbor maple seven" });
    let (status, body) = json_of(app.post_json(&a, "/auth/password", &change).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("reauthentication_required")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("your password"),
        "{body}"
    );
    let resp = a
        .delete(app.url("/auth/sessions"))
        .header("origin", app.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let (status, _) = json_of(app.post_json(&a, "/auth/mfa/totp", &json!({})).await).await;
    assert_eq!(status, 403);

    // A wrong password proves nothing.
    let (status, body) = json_of(
        app.post_json(
            &a,
            "/auth/reauthenticate",
            &json!({ "password": "not the password" }),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("current_password_incorrect"))
    );
    let before = app.me(&a).await.1["session"]["id"].clone();
    let (status, me) = json_of(
        app.post_json(&a, "/auth/reauthenticate", &json!({ "password": PASSWORD }))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["session"]["id"], before, "the same session, with a new token");
    // The other session of the same account is not elevated by it.
    let resp = b
        .delete(app.url("/auth/sessions"))
        .header("origin", app.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let (status, body) = json_of(app.post_json(&a, "/auth/password", &change).await).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn with_a_second_factor_a_password_alone_does_not_re_authenticate() {
    let app = spawn_app().await;
    let (owner, _) = app.signed_up_client("strong@example.com").await;
    let (secret, _) = enrol(&app, &owner).await;
    app.advance(Duration::from_secs(11 * 60));
    let resp = owner
        .delete(app.url("/auth/mfa/totp"))
        .header("origin", app.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "removing the factor is sensitive");
    let (status, body) = json_of(
        app.post_json(&owner, "/auth/reauthenticate", &json!({ "password": PASSWORD }))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("reauthentication_required"))
    );
    let (status, me) = json_of(
        app.post_json(
            &owner,
            "/auth/reauthenticate",
            &json!({ "code": code_at(&app, &secret) }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert!(me["session"]["amr"].as_array().unwrap().contains(&json!("otp")));
    // A password change keeps what the session proved: the new session is still aal 2.
    let change = json!({ "currentPassword": PASSWORD, "newPassword": "quiet harbor maple seven" });
    let (status, changed) = json_of(app.post_json(&owner, "/auth/password", &change).await).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["session"]["amr"], json!(["pwd", "otp"]));
    assert_eq!(changed["session"]["aal"], 2);
    let resp = owner
        .delete(app.url("/auth/mfa/totp"))
        .header("origin", app.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // Sign-in is one step again.
    let resp = app
        .login_with(&client(), "strong@example.com", "quiet harbor maple seven")
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn mfa_required_makes_a_sign_in_enrol_a_factor_before_anything_else() {
    let app = spawn_app_with(AppOptions::default().var("MFA_REQUIRED", "true")).await;
    let c = client();
    let resp = app.signup_with(&c, "enrol@example.com", PASSWORD).await;
    let (status, me) = json_of(resp).await;
    assert_eq!(status, 201);
    assert_eq!(me["session"]["stage"], "enrolment");
    let (status, body) = app.me(&c).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("mfa_enrolment_required"))
    );
    let (status, _) = json_of(
        app.post_json(&c, "/auth/mfa/verify", &json!({ "code": "123456" }))
            .await,
    )
    .await;
    assert_eq!(status, 409, "nothing to verify: it must enrol");
    let (_, setup) = json_of(app.post_json(&c, "/auth/mfa/totp", &json!({})).await).await;
    let secret = setup["secret"].as_str().unwrap();
    let (status, confirmed) = json_of(
        app.post_json(
            &c,
            "/auth/mfa/totp/confirm",
            &json!({ "code": code_at(&app, secret) }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["session"]["stage"], "complete");
    assert_ne!(confirmed["session"]["id"], me["session"]["id"]);
    let (status, me) = app.me(&c).await;
    assert_eq!((status, me["session"]["aal"].as_u64()), (200, Some(2)));
}

#[tokio::test]
async fn sign_ins_waiting_for_a_second_factor_never_push_the_owners_sessions_out() {
    let app = spawn_app_with(AppOptions::default().var("MAX_SESSIONS_PER_USER", "2")).await;
    let (owner, _) = app.signed_up_client("crowded@example.com").await;
    let (secret, _) = enrol(&app, &owner).await;
    app.advance(Duration::from_secs(30));
    let (second, _) = first_step(&app, "crowded@example.com").await;
    let (status, _) = json_of(
        app.post_json(
            &second,
            "/auth/mfa/verify",
            &json!({ "code": code_at(&app, &secret) }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    // Someone with the password but not the app starts sign-in after sign-in.
    for _ in 0..4 {
        let (_, resp) = first_step(&app, "crowded@example.com").await;
        assert_eq!(resp.status(), 202);
    }
    assert_eq!(app.me(&owner).await.0, 200);
    assert_eq!(app.me(&second).await.0, 200);
}

#[tokio::test]
async fn the_sign_in_page_asks_for_the_code_and_then_goes_where_it_was_headed() {
    let app = spawn_app().await;
    let (owner, _) = app.signed_up_client("page-two-step@example.com").await;
    let (secret, _) = enrol(&app, &owner).await;
    app.advance(Duration::from_secs(30));
    let c = client();
    let resp = c
        .post(app.url("/login"))
        .header("origin", app.origin())
        .form(&[
            ("email", "page-two-step@example.com"),
            ("password", PASSWORD),
            ("returnTo", "/docs"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/login/second-factor?returnTo=/docs");
    let page = c
        .get(app.url("/login/second-factor?returnTo=/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("authenticator app"));
    let resp = c
        .post(app.url("/login/second-factor"))
        .header("origin", app.origin())
        .form(&[
            ("code", wrong_code(&app, &secret).as_str()),
            ("returnTo", "/docs"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = c
        .post(app.url("/login/second-factor"))
        .header("origin", app.origin())
        .form(&[("code", code_at(&app, &secret).as_str()), ("returnTo", "/docs")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/docs");
    assert_eq!(app.me(&c).await.1["session"]["aal"], 2);
}

#[tokio::test]
async fn an_operator_mfa_reset_removes_the_factors_and_ends_every_session() {
    let app = spawn_app().await;
    let (owner, _) = app.signed_up_client("reset-mfa@example.com").await;
    enrol(&app, &owner).await;
    let out = cli(&app, &["users", "show", "reset-mfa@example.com", "--json"]);
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["mfa"]["totp"], true, "{shown}");
    assert_eq!(shown["mfa"]["recoveryCodesLeft"], 10);
    assert!(!stdout(&out).contains("sealed"), "no secret is shown");
    // The session that confirmed the app counts as re-authenticated with it.
    let out = cli(
        &app,
        &["sessions", "list", "--user", "reset-mfa@example.com", "--json"],
    );
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed[0]["amr"], json!(["pwd", "otp"]), "{listed}");
    assert_eq!(listed[0]["aal"], 2);
    let out = cli(&app, &["sessions", "list", "--user", "reset-mfa@example.com"]);
    assert!(stdout(&out).contains("pwd+otp aal2"), "{}", stdout(&out));

    let out = cli(&app, &["users", "mfa", "reset", "reset-mfa@example.com", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Removed the second factors of reset-mfa@example.com"),
        "{}",
        stdout(&out)
    );
    let (status, body) = app.me(&owner).await;
    assert_eq!((status, body["reason"].as_str()), (401, Some("mfa_reset")));
    let (_, resp) = first_step(&app, "reset-mfa@example.com").await;
    assert_eq!(resp.status(), 200, "one step again");
    let out = cli(&app, &["events", "list", "--type", "mfa.reset", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("operator"), "{}", stdout(&out));
}

/// A same-origin form post from `c`.
async fn form(app: &TestApp, c: &reqwest::Client, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    c.post(app.url(path))
        .header("origin", app.origin())
        .form(fields)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_account_pages_set_up_an_authenticator_app_with_its_qr_code_and_show_the_codes_once() {
    let app = spawn_app().await;
    let (c, _) = app.signed_up_client("page-setup@example.com").await;
    let account = c
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        account.contains("Off: your password alone signs in."),
        "{account}"
    );
    let page = form(&app, &c, "/account/two-factor/setup", &[]).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<svg") && !html.contains("<?xml"),
        "the QR code is inline SVG"
    );
    let secret = regex::Regex::new(r#"id="totp-secret">([A-Z2-7]+)<"#)
        .unwrap()
        .captures(&html)
        .unwrap_or_else(|| panic!("{html}"))[1]
        .to_string();
    let wrong = form(
        &app,
        &c,
        "/account/two-factor/confirm",
        &[("code", &wrong_code(&app, &secret))],
    )
    .await;
    assert_eq!(wrong.status(), 400);
    let done = form(
        &app,
        &c,
        "/account/two-factor/confirm",
        &[("code", &code_at(&app, &secret))],
    )
    .await;
    assert_eq!(done.status(), 200);
    let html = done.text().await.unwrap();
    assert_eq!(html.matches("<li>").count(), 10, "ten recovery codes: {html}");
    let account = c
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(account.contains("On: an authenticator app."), "{account}");
    let overview = c
        .get(app.url("/account/two-factor"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(overview.contains("10 left."), "{overview}");
    assert!(!overview.contains(&secret), "the seed is never shown again");
}

#[tokio::test]
async fn a_sensitive_change_on_the_account_page_asks_to_confirm_it_is_you_then_goes_on() {
    let app = spawn_app().await;
    let (c, _) = app.signed_up_client("page-step-up@example.com").await;
    app.advance(Duration::from_secs(11 * 60));
    let change = [
        ("currentPassword", PASSWORD),
        ("newPassword", "quiet harbor maple seven"),
        ("confirmPassword", "quiet harbor maple seven"),
    ];
    let resp = form(&app, &c, "/account/password", &change).await;
    assert_eq!(resp.status(), 303);
    // Back to the account page afterwards (the default, so no `returnTo`).
    assert_eq!(resp.headers()["location"], "/account/confirm");
    let page = c.get(app.url("/account/confirm")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("current-password"));
    let wrong = form(
        &app,
        &c,
        "/account/confirm",
        &[("password", "not my password"), ("returnTo", "/account")],
    )
    .await;
    assert_eq!(wrong.status(), 403);
    let ok = form(
        &app,
        &c,
        "/account/confirm",
        &[("password", PASSWORD), ("returnTo", "/account")],
    )
    .await;
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/account");
    let resp = form(&app, &c, "/account/password", &change).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/account?notice=password-changed");
}

#[tokio::test]
async fn a_two_step_sign_in_from_a_new_browser_is_mailed_once_it_is_finished() {
    let mailbox = crate::mailbox::Mailbox::start();
    let app = spawn_app_with(AppOptions::default().var("SMTP_URL", &mailbox.url())).await;
    let email = "two-step-alert@example.com";
    let (owner, _) = app.signed_up_client(email).await;
    let (secret, _) = enrol(&app, &owner).await;
    app.advance(Duration::from_secs(30));
    // A browser that never signed in to the account gives the password: no device cookie is
    // handed out yet — the sign-in is not finished.
    let (c, first) = first_step(&app, email).await;
    assert_eq!(first.status(), 202);
    let device = app
        .state
        .settings
        .session
        .cookie_name
        .replace("session", "device");
    assert!(
        set_cookie_value(&first, &device).is_none(),
        "no device cookie for a first step"
    );
    let (status, _) = json_of(
        app.post_json(&c, "/auth/mfa/verify", &json!({ "code": code_at(&app, &secret) }))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    // Finished from a new browser: the owner is told.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if mailbox
            .to(email)
            .iter()
            .any(|m| m.subject.contains("New sign-in"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new-device alert after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ending_another_session_needs_a_recent_proof_like_ending_all_of_them() {
    let app = spawn_app().await;
    let email = "end-one@example.com";
    let (a, _) = app.signed_up_client(email).await;
    let b = client();
    assert_eq!(app.login_with(&b, email, PASSWORD).await.status(), 200);
    let b_id = app.me(&b).await.1["session"]["id"].as_str().unwrap().to_string();
    let end = |c: &reqwest::Client, id: &str| {
        c.delete(app.url(&format!("/auth/sessions/{id}")))
            .header("origin", app.origin())
            .send()
    };

    // A cookie whose sign-in is old — a stolen one, say — cannot sign the owner out of the
    // other devices one at a time any more than all at once.
    app.advance(Duration::from_secs(11 * 60));
    let (status, body) = json_of(end(&a, &b_id).await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("reauthentication_required")),
        "{body}"
    );
    assert_eq!(app.me(&b).await.0, 200, "the other session goes on");

    // Proved again: it ends.
    let (status, _) = json_of(
        app.post_json(&a, "/auth/reauthenticate", &json!({ "password": PASSWORD }))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(end(&a, &b_id).await.unwrap().status(), 204);
    let (status, body) = app.me(&b).await;
    assert_eq!((status, body["reason"].as_str()), (401, Some("revoked_by_user")));

    // Ending this browser's own session is signing out: no proof asked.
    app.advance(Duration::from_secs(11 * 60));
    let own = app.me(&a).await.1["session"]["id"].as_str().unwrap().to_string();
    assert_eq!(end(&a, &own).await.unwrap().status(), 204);
    assert_eq!(app.me(&a).await.0, 401);
}

#[tokio::test]
async fn a_sign_in_enrolling_a_factor_can_do_nothing_once_the_owner_has_set_one_up() {
    let app = spawn_app_with(AppOptions::default().var("MFA_REQUIRED", "true")).await;
    let email = "enrol-race@example.com";
    let owner = client();
    assert_eq!(app.signup_with(&owner, email, PASSWORD).await.status(), 201);
    // Someone who knows the password signs in (twice) while the account has no factor: sign-ins
    // that may only set one up.
    let (api, pages) = (client(), client());
    for intruder in [&api, &pages] {
        app.login_with(intruder, email, PASSWORD).await;
        let (status, body) = app.me(intruder).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("mfa_enrolment_required"))
        );
    }
    // The owner sets up an app first.
    enrol(&app, &owner).await;

    // Such a sign-in proves the password only: its next factor operation ends it — a passkey
    // of its own would have finished signing in.
    let resp = app
        .post_json(&api, "/auth/passkeys/register/start", &json!({ "name": "mine" }))
        .await;
    let (status, body) = json_of(resp).await;
    assert_eq!(
        (status, body["error"].as_str(), body["reason"].as_str()),
        (401, Some("session_revoked"), Some("sign_in_outdated")),
        "{body}"
    );
    let (status, _) = json_of(app.post_json(&api, "/auth/mfa/totp", &json!({})).await).await;
    assert_eq!(status, 401, "ended");
    // On the pages: new recovery codes would stand in for the owner's app.
    let resp = pages
        .post(app.url("/account/two-factor/recovery-codes"))
        .header("origin", app.origin())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/login"), "{to}");
    assert!(!resp.text().await.unwrap().contains("recovery code"));
    assert_eq!(app.me(&pages).await.0, 401);

    let (status, factors) = json_of(owner.get(app.url("/auth/mfa")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(factors["totp"], true);
    assert_eq!(factors["recoveryCodesLeft"], 10, "the owner's codes still stand");
    // Signing in again asks for the app.
    assert_eq!(app.login_with(&client(), email, PASSWORD).await.status(), 202);
}
