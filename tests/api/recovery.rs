//! Accounts people can recover — e-mail verification, password reset by e-mail, new-device
//! alerts — against a real SMTP server (`tests/smtp`): every link a test follows is read from a
//! delivered message.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{
    helpers::*,
    mailbox::Mailbox,
    op::{google_app, google_login, Op, Person},
};

const NEW_PASSWORD: &str = "quiet harbor maple seven";

async fn mail_app(mailbox: &Mailbox, opts: AppOptions) -> TestApp {
    spawn_app_with(opts.var("SMTP_URL", &mailbox.url())).await
}

/// Waits (up to 20 s) for the newest message to `to` whose subject contains `subject`.
async fn wait_for_subject(mailbox: &Mailbox, to: &str, subject: &str) -> crate::mailbox::Delivered {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = mailbox
            .to(to)
            .into_iter()
            .rev()
            .find(|m| m.subject.contains(subject))
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no message to {to} with a subject containing {subject:?} after 20 s; got {:?}",
            mailbox
                .to(to)
                .iter()
                .map(|m| m.subject.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to 20 s) until `n` messages were delivered to `to`; returns them, oldest first.
async fn wait_for(mailbox: &Mailbox, to: &str, n: usize) -> Vec<crate::mailbox::Delivered> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = mailbox.to(to);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} message(s) to {to} after 20 s, expected {n}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn me_status(app: &TestApp, c: &reqwest::Client) -> (u16, Value) {
    app.me(c).await
}

async fn forgot(app: &TestApp, c: &reqwest::Client, email: &str) -> reqwest::Response {
    app.post_json(c, "/auth/password/forgot", &json!({ "email": email }))
        .await
}

async fn reset(app: &TestApp, c: &reqwest::Client, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        c,
        "/auth/password/reset",
        &json!({ "token": token, "newPassword": password }),
    )
    .await
}

/// `browser` asks for a reset link for `email`, and sets `NEW_PASSWORD` with the link mailed.
async fn reset_by_mail(
    app: &TestApp,
    mailbox: &Mailbox,
    browser: &reqwest::Client,
    email: &str,
) -> reqwest::Response {
    assert_eq!(forgot(app, browser, email).await.status(), 202);
    let mail = wait_for_subject(mailbox, email, "Reset your password").await;
    reset(app, browser, &mail.token(), NEW_PASSWORD).await
}

async fn error_code(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

// --- Password reset --------------------------------------------------------------------------

async fn a_forgotten_password_is_reset_by_the_emailed_link_and_every_session_ends(backend: Backend) {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default().backend(backend)).await;
    let email = "reset-flow@example.com";
    let (laptop, _) = app.signed_up_client(email).await;
    let phone = client();
    assert_eq!(app.login_with(&phone, email, PASSWORD).await.status(), 200);

    let stranger = client();
    let resp = forgot(&app, &stranger, email).await;
    assert_eq!(resp.status(), 202);
    let mail = wait_for_subject(&mailbox, email, "Reset your password").await;
    assert!(
        mail.html.contains(&mail.token()),
        "the HTML body carries the same link"
    );
    let token = mail.token();
    assert!(token.len() >= 43, "at least 256 bits: {token}");

    // A mail scanner (or the person) opening the link consumes nothing.
    for _ in 0..3 {
        let page = stranger.get(mail.link()).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("Choose a new password"));
    }
    // The database holds only a digest of the token.
    if let Some(db) = &app.db {
        let conn = sea_orm::Database::connect(&db.url).await.unwrap();
        use sea_orm::{ConnectionTrait, Statement};
        let rows = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT token_hash FROM account_tokens".to_string(),
            ))
            .await
            .unwrap();
        assert!(!rows.is_empty());
        for row in rows {
            let stored: String = row.try_get("", "token_hash").unwrap();
            assert_ne!(stored, token);
            assert_eq!(stored.len(), 64, "a SHA-256 digest");
        }
    }

    // A weak password is refused before the link is used: the link still works afterwards.
    let (status, body) = error_code(reset(&app, &stranger, &token, "password1234").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("weak_password")),
        "{body}"
    );
    let resp = reset(&app, &stranger, &token, NEW_PASSWORD).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let (status, me) = me_status(&app, &stranger).await;
    assert_eq!(status, 200, "the resetting browser is signed in");
    assert_eq!(me["user"]["email"], email);
    assert_eq!(me["user"]["emailVerified"], true, "the link proved the mailbox");

    // Every session the account had ended, with the reason.
    for device in [&laptop, &phone] {
        let (status, body) = me_status(&app, device).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "session_revoked");
        assert_eq!(body["reason"], "password_reset");
    }
    // Used once: a second use is refused and changes nothing.
    let (status, body) = error_code(reset(&app, &client(), &token, "another fine passphrase").await).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_token")));
    assert_eq!(app.login_with(&client(), email, PASSWORD).await.status(), 401);
    assert_eq!(app.login_with(&client(), email, NEW_PASSWORD).await.status(), 200);
}
per_backend!(a_forgotten_password_is_reset_by_the_emailed_link_and_every_session_ends);

#[tokio::test(flavor = "multi_thread")]
async fn using_one_reset_link_kills_every_older_one() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "two-links@example.com";
    app.signed_up_client(email).await;
    let c = client();
    assert_eq!(forgot(&app, &c, email).await.status(), 202);
    let first = wait_for_subject(&mailbox, email, "Reset your password")
        .await
        .token();
    assert_eq!(forgot(&app, &c, email).await.status(), 202);
    let all = wait_for(&mailbox, email, 3).await;
    let second = all.last().unwrap().token();
    assert_ne!(first, second);
    assert_eq!(reset(&app, &c, &second, NEW_PASSWORD).await.status(), 200);
    let (status, body) = error_code(reset(&app, &client(), &first, "another fine passphrase").await).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_token")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_of_the_wrong_shape_is_a_request_error_and_an_unknown_one_an_invalid_link() {
    let app = spawn_app().await;
    let unknown = "A".repeat(43);
    for path in ["/auth/email/verify", "/auth/sign-in/report"] {
        let (status, body) =
            error_code(app.post_json(&client(), path, &json!({ "token": "short" })).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{path}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("token"),
            "{path}: {body}"
        );
        let (status, body) =
            error_code(app.post_json(&client(), path, &json!({ "token": unknown })).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_token")),
            "{path}: {body}"
        );
    }
    let (status, body) = error_code(reset(&app, &client(), "short", NEW_PASSWORD).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let (status, body) = error_code(reset(&app, &client(), &unknown, NEW_PASSWORD).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_token")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_reset_link_is_refused_and_its_page_says_so() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "expired-link@example.com";
    app.signed_up_client(email).await;
    let c = client();
    assert_eq!(forgot(&app, &c, email).await.status(), 202);
    let mail = wait_for_subject(&mailbox, email, "Reset your password").await;
    app.advance(Duration::from_secs(61 * 60));
    let page = c.get(mail.link()).send().await.unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("This link does not work"));
    let (status, body) = error_code(reset(&app, &c, &mail.token(), NEW_PASSWORD).await).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_token")));
    assert_eq!(app.login_with(&client(), email, PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_address_gets_the_answer_and_timing_of_a_known_one() {
    let mailbox = Mailbox::start();
    // Each request comes from its own network (X-Forwarded-For), so no limit interferes.
    let app = mail_app(
        &mailbox,
        AppOptions::default().var("TRUST_X_FORWARDED_FOR", "true"),
    )
    .await;
    const N: usize = 30;
    let mut known = Vec::new();
    for i in 0..N {
        let email = format!("timing-known-{i}@example.com");
        app.state
            .auth
            .create_local_user(
                &email,
                secrecy::SecretString::from(PASSWORD.to_string()),
                "Timing",
                &Default::default(),
                app.now(),
            )
            .await
            .unwrap();
        known.push(email);
    }
    let c = client();
    let send = |email: String, n: usize| {
        let c = c.clone();
        let url = app.url("/auth/password/forgot");
        let origin = app.origin();
        async move {
            let started = Instant::now();
            let resp = c
                .post(url)
                .header("origin", origin)
                .header("x-forwarded-for", format!("198.51.100.{n}"))
                .json(&json!({ "email": email }))
                .send()
                .await
                .unwrap();
            let elapsed = started.elapsed();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap(), elapsed)
        }
    };
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    let mut bodies = std::collections::BTreeSet::new();
    // Interleaved, so whatever else the machine does weighs on both alike.
    for (i, email) in known.iter().enumerate() {
        let (s1, b1, t1) = send(email.clone(), 2 * i).await;
        let (s2, b2, t2) = send(format!("timing-nobody-{i}@example.com"), 2 * i + 1).await;
        assert_eq!((s1, s2), (202, 202));
        bodies.insert(b1);
        bodies.insert(b2);
        known_times.push(t1);
        unknown_times.push(t2);
    }
    assert_eq!(bodies.len(), 1, "one body for both: {bodies:?}");
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (k, u) = (median(&mut known_times), median(&mut unknown_times));
    // The figures, for the record (`cargo test … -- --nocapture`).
    eprintln!("forgot-password medians of {N}: known {k:?}, unknown {u:?}");
    let (fast, slow) = (k.min(u), k.max(u));
    assert!(
        slow <= fast * 2 + Duration::from_millis(5),
        "same timing class: median {k:?} for known addresses, {u:?} for unknown ones"
    );
    // The known ones did get their mail.
    wait_for(&mailbox, &known[N - 1], 1).await;
    assert!(mailbox.to("timing-nobody-0@example.com").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_requests_are_limited_per_address_whether_or_not_it_has_an_account() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    app.signed_up_client("limited@example.com").await;
    for email in ["limited@example.com", "limited-nobody@example.com"] {
        for _ in 0..5 {
            assert_eq!(forgot(&app, &client(), email).await.status(), 202);
        }
        let resp = forgot(&app, &client(), email).await;
        assert_eq!(resp.status(), 429, "{email}");
        assert!(resp.headers().contains_key("retry-after"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "too_many_attempts");
        // Says what there were too many of — not "failed sign-in attempts".
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("too many requests for e-mail;"),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_request_for_a_string_that_is_no_address_is_refused_as_at_sign_up() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    for not_an_address in ["000", "no-at-sign.example.com", "a@b"] {
        let (status, body) = error_code(forgot(&app, &client(), not_an_address).await).await;
        assert_eq!(status, 400, "{not_an_address}: {body}");
        assert!(
            matches!(body["error"].as_str(), Some("invalid_email" | "invalid_request")),
            "{not_an_address}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_without_a_password_is_told_how_it_signs_in() {
    let op = Op::shared();
    let mailbox = Mailbox::start();
    let app = google_app(op, "", AppOptions::default().var("SMTP_URL", &mailbox.url())).await;
    let email = "google-only@example.com";
    assert_eq!(
        google_login(&app, op, &client(), &Person::new(email), None)
            .await
            .status(),
        303
    );
    assert_eq!(forgot(&app, &client(), email).await.status(), 202);
    let mail = wait_for_subject(&mailbox, email, "About your password reset request").await;
    assert!(mail.text.contains("has no password"), "{}", mail.text);
    assert!(
        !mail.text.contains("token="),
        "no link: there is no password to reset"
    );
}

// --- E-mail verification -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn signup_mails_a_link_that_verifies_the_address_once() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "verify-me@example.com";
    let (c, _) = app.signed_up_client(email).await;
    assert_eq!(me_status(&app, &c).await.1["user"]["emailVerified"], false);
    let mail = wait_for_subject(&mailbox, email, "Confirm your e-mail address").await;

    // Opening the link (a scanner's GET) verifies nothing.
    let page = client().get(mail.link()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Confirm my address"));
    let user = authauth::users::find_by_email_or_id(&app.state.db, email)
        .await
        .unwrap()
        .unwrap();
    assert!(user.email_verified_at.is_none());

    // Confirmed: the session says so at once, without a new cookie.
    let resp = app
        .post_json(&c, "/auth/email/verify", &json!({ "token": mail.token() }))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(set_cookie_value(&resp, app.cookie_name()).is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({ "email": email, "emailVerified": true }));
    assert_eq!(me_status(&app, &c).await.1["user"]["emailVerified"], true);

    let (status, body) = error_code(
        app.post_json(&client(), "/auth/email/verify", &json!({ "token": mail.token() }))
            .await,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_token")));
    // Already verified: nothing to resend.
    let resp = app.post_json(&c, "/auth/email/verify/resend", &json!({})).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "email_already_verified"
    );
}

async fn verifying_the_address_shows_in_every_live_session_of_the_account(backend: Backend) {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default().backend(backend)).await;
    let email = "every-session@example.com";
    let (laptop, _) = app.signed_up_client(email).await;
    let phone = client();
    assert_eq!(app.login_with(&phone, email, PASSWORD).await.status(), 200);
    app.signed_up_client("someone-else@example.com").await;
    let mail = wait_for_subject(&mailbox, email, "Confirm your e-mail address").await;
    // From a browser that is signed in to nothing.
    let resp = app
        .post_json(&client(), "/auth/email/verify", &json!({ "token": mail.token() }))
        .await;
    assert_eq!(resp.status(), 200);
    for device in [&laptop, &phone] {
        let (status, me) = me_status(&app, device).await;
        assert_eq!(status, 200);
        assert_eq!(me["user"]["emailVerified"], true, "{me}");
    }
    // Another account's sessions are not touched.
    let other = authauth::users::find_by_email_or_id(&app.state.db, "someone-else@example.com")
        .await
        .unwrap()
        .unwrap();
    let others = app.state.sessions.list_user(&other.id, app.now()).await.unwrap();
    assert!(!others.is_empty());
    assert!(others.iter().all(|r| !r.user.email_verified));
}
per_backend!(verifying_the_address_shows_in_every_live_session_of_the_account);

#[tokio::test(flavor = "multi_thread")]
async fn a_verification_link_works_without_a_session_and_expires() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "verify-later@example.com";
    let (c, _) = app.signed_up_client(email).await;
    let first = wait_for_subject(&mailbox, email, "Confirm your e-mail address").await;
    app.advance(Duration::from_secs(25 * 3600));
    let (status, body) = error_code(
        app.post_json(
            &client(),
            "/auth/email/verify",
            &json!({ "token": first.token() }),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_token")),
        "expired"
    );
    // A new link (the day-old session timed out: sign in again), used from a browser that is
    // not signed in: verified, no cookie set.
    assert_eq!(app.login_with(&c, email, PASSWORD).await.status(), 200);
    let resp = app.post_json(&c, "/auth/email/verify/resend", &json!({})).await;
    assert_eq!(resp.status(), 202);
    let all = wait_for(&mailbox, email, 2).await;
    let resp = app
        .post_json(
            &client(),
            "/auth/email/verify",
            &json!({ "token": all[1].token() }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(set_cookie_value(&resp, app.cookie_name()).is_none());
    let out = crate::cli_ops::cli(&app, &["users", "show", email, "--json"]);
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["emailVerified"], true, "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resending_a_verification_link_is_throttled() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let (c, _) = app.signed_up_client("resend@example.com").await;
    for _ in 0..3 {
        let resp = app.post_json(&c, "/auth/email/verify/resend", &json!({})).await;
        assert_eq!(resp.status(), 202);
    }
    let resp = app.post_json(&c, "/auth/email/verify/resend", &json!({})).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("too many confirmation links sent;"),
        "{body}"
    );
    // The sign-up's link and three more.
    assert_eq!(wait_for(&mailbox, "resend@example.com", 4).await.len(), 4);
    // Without a session there is nothing to resend to.
    let resp = app
        .post_json(&client(), "/auth/email/verify/resend", &json!({}))
        .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn require_verified_email_keeps_an_account_out_until_its_address_is_verified() {
    let mailbox = Mailbox::start();
    let app = mail_app(
        &mailbox,
        AppOptions::default().var("REQUIRE_VERIFIED_EMAIL", "true"),
    )
    .await;
    let email = "must-verify@example.com";
    let c = client();
    let resp = app.signup_with(&c, email, PASSWORD).await;
    assert_eq!(resp.status(), 202);
    assert!(
        set_cookie_value(&resp, app.cookie_name()).is_none(),
        "not signed in"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["emailVerified"], false);
    wait_for_subject(&mailbox, email, "Confirm your e-mail address").await;

    // The right password, unverified: refused with a clear code, and a fresh link is sent.
    let (status, body) = error_code(app.login_with(&c, email, PASSWORD).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("email_verification_required"))
    );
    let all = wait_for(&mailbox, email, 2).await;
    // A wrong password learns nothing about verification.
    let (status, _) = error_code(app.login_with(&c, email, "not the password at all").await).await;
    assert_eq!(status, 401);

    let resp = app
        .post_json(&c, "/auth/email/verify", &json!({ "token": all[1].token() }))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.login_with(&c, email, PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_require_verified_email_an_unverified_account_signs_in() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "may-skip@example.com";
    app.signed_up_client(email).await;
    let c = client();
    let resp = app.login_with(&c, email, PASSWORD).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["user"]["emailVerified"],
        false
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn google_links_to_a_verified_local_account_keeping_its_password_and_sessions() {
    let op = Op::shared();
    let mailbox = Mailbox::start();
    let app = google_app(op, "", AppOptions::default().var("SMTP_URL", &mailbox.url())).await;
    let email = "verified-link@example.com";
    let (local, _) = app.signed_up_client(email).await;
    let mail = wait_for_subject(&mailbox, email, "Confirm your e-mail address").await;
    let resp = app
        .post_json(&local, "/auth/email/verify", &json!({ "token": mail.token() }))
        .await;
    assert_eq!(resp.status(), 200);

    let g = client();
    let resp = google_login(&app, op, &g, &Person::new(email), None).await;
    assert_eq!(resp.status(), 303);
    let (_, via_google) = me_status(&app, &g).await;
    let (status, via_password) = me_status(&app, &local).await;
    assert_eq!(
        status, 200,
        "the password session survives: its owner verified the address"
    );
    assert_eq!(via_google["user"]["id"], via_password["user"]["id"]);
    assert_eq!(
        app.login_with(&client(), email, PASSWORD).await.status(),
        200,
        "the password stays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn google_linking_to_an_unverified_local_account_still_removes_the_password() {
    let op = Op::shared();
    let mailbox = Mailbox::start();
    let app = google_app(op, "", AppOptions::default().var("SMTP_URL", &mailbox.url())).await;
    let email = "unverified-link@example.com";
    let (local, _) = app.signed_up_client(email).await;
    let g = client();
    assert_eq!(
        google_login(&app, op, &g, &Person::new(email), None)
            .await
            .status(),
        303
    );
    let (status, body) = me_status(&app, &local).await;
    assert_eq!((status, body["reason"].as_str()), (401, Some("identity_linked")));
    assert_eq!(app.login_with(&client(), email, PASSWORD).await.status(), 401);
    assert_eq!(
        me_status(&app, &g).await.1["user"]["emailVerified"],
        true,
        "the provider vouched"
    );
}

/// The account's second factors as `GET /auth/mfa` lists them to `c`: (app, recovery codes left).
async fn factors(app: &TestApp, c: &reqwest::Client) -> (bool, u64) {
    let resp = c.get(app.url("/auth/mfa")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    (
        body["totp"].as_bool().unwrap(),
        body["recoveryCodesLeft"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn google_linking_to_an_unverified_local_account_removes_the_second_factors_its_signer_set_up() {
    let op = Op::shared();
    let mailbox = Mailbox::start();
    let app = google_app(op, "", AppOptions::default().var("SMTP_URL", &mailbox.url())).await;
    let email = "prehijacked-factors@example.com";
    // Whoever signed up with the address sets up an authenticator app before its owner comes.
    let (squatter, _) = app.signed_up_client(email).await;
    crate::mfa::enrol(&app, &squatter).await;

    let owner = client();
    assert_eq!(
        google_login(&app, op, &owner, &Person::new(email), None)
            .await
            .status(),
        303
    );
    let (status, me) = me_status(&app, &owner).await;
    assert_eq!(
        status, 200,
        "the owner is signed in, no one else's app asked for: {me}"
    );
    assert_eq!(factors(&app, &owner).await, (false, 0));
    assert_eq!(me_status(&app, &squatter).await.0, 401);
}

#[tokio::test]
async fn a_reset_that_first_proves_the_mailbox_removes_the_second_factors_set_up_before_it() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "reset-prehijacked@example.com";
    let (squatter, _) = app.signed_up_client(email).await;
    crate::mfa::enrol(&app, &squatter).await;

    let owner = client();
    let resp = reset_by_mail(&app, &mailbox, &owner, email).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let (status, me) = me_status(&app, &owner).await;
    assert_eq!(status, 200, "signed in without the squatter's app: {me}");
    assert_eq!(factors(&app, &owner).await, (false, 0));
    assert_eq!(me_status(&app, &squatter).await.0, 401);
}

#[tokio::test]
async fn a_reset_of_an_account_whose_owner_proved_the_address_keeps_its_second_factors() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "reset-keeps-factors@example.com";
    let (laptop, _) = app.signed_up_client(email).await;
    let mail = wait_for_subject(&mailbox, email, "Confirm your e-mail address").await;
    let resp = app
        .post_json(&laptop, "/auth/email/verify", &json!({ "token": mail.token() }))
        .await;
    assert_eq!(resp.status(), 200);
    crate::mfa::enrol(&app, &laptop).await;

    // Whoever reads the mailbox can set a password, never skip the app.
    let reader = client();
    assert_eq!(reset_by_mail(&app, &mailbox, &reader, email).await.status(), 200);
    let (status, body) = me_status(&app, &reader).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("mfa_required")),
        "{body}"
    );
}

#[tokio::test]
async fn changing_the_password_ends_every_reset_link_mailed_before() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "change-ends-links@example.com";
    let (owner, _) = app.signed_up_client(email).await;
    assert_eq!(forgot(&app, &client(), email).await.status(), 202);
    let mail = wait_for_subject(&mailbox, email, "Reset your password").await;

    let resp = app
        .post_json(
            &owner,
            "/auth/password",
            &json!({ "currentPassword": PASSWORD, "newPassword": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let (status, body) =
        error_code(reset(&app, &client(), &mail.token(), "another quiet harbor tune").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_token")),
        "{body}"
    );
    assert_eq!(me_status(&app, &owner).await.0, 200, "the new session stays");
}

// --- New-device alerts -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_from_a_new_browser_mails_an_alert_whose_link_ends_that_session_once() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "alerted@example.com";
    let (laptop, _) = app.signed_up_client(email).await;
    wait_for_subject(&mailbox, email, "Confirm your e-mail address").await;

    // The laptop again (it holds the device cookie its sign-up earned): no alert.
    assert_eq!(app.login_with(&laptop, email, PASSWORD).await.status(), 200);
    // A browser that never signed in to the account: one alert.
    let intruder = reqwest::Client::builder()
        .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(app.login_with(&intruder, email, PASSWORD).await.status(), 200);
    let alert = wait_for_subject(&mailbox, email, "New sign-in to your account").await;
    assert!(alert.text.contains("Firefox on Linux"), "{}", alert.text);
    assert!(alert.text.contains("127.0.0.1"), "{}", alert.text);
    // The intruder's browser now holds a device cookie too: signing in again alerts no more.
    assert_eq!(app.login_with(&intruder, email, PASSWORD).await.status(), 200);
    let third = client();
    assert_eq!(app.login_with(&third, email, PASSWORD).await.status(), 200);
    let all = wait_for(&mailbox, email, 3).await;
    let alerts: Vec<_> = all.iter().filter(|m| m.subject.contains("New sign-in")).collect();
    assert_eq!(
        alerts.len(),
        2,
        "the intruder's first sign-in and the third browser's"
    );
    // The third browser's agent (`authauth-tests/1.0`) is no browser the table knows: the
    // mail names none, and never repeats the agent.
    assert!(
        alerts[1].text.contains("an unrecognised browser"),
        "{}",
        alerts[1].text
    );
    assert!(!alerts[1].text.contains("authauth-tests"), "{}", alerts[1].text);

    // The page the link opens shows the sign-in and ends nothing.
    let page = client().get(alert.link()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Firefox on Linux"), "{html}");
    assert_eq!(me_status(&app, &intruder).await.0, 200);

    // The POST ends exactly the session of the alert — the intruder's latest sign-in replaced
    // the alerted one (`superseded`), so report the one the third browser got instead.
    let resp = app
        .post_json(
            &client(),
            "/auth/sign-in/report",
            &json!({ "token": alerts[1].token() }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({ "sessionEnded": true, "email": email }));
    let (status, me) = me_status(&app, &third).await;
    assert_eq!((status, me["reason"].as_str()), (401, Some("reported_by_user")));
    assert_eq!(me_status(&app, &laptop).await.0, 200, "only that session ended");
    assert_eq!(me_status(&app, &intruder).await.0, 200);
    // Once.
    let (status, body) = error_code(
        app.post_json(
            &client(),
            "/auth/sign-in/report",
            &json!({ "token": alerts[1].token() }),
        )
        .await,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_token")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_google_sign_in_from_a_new_browser_alerts_but_the_first_one_that_creates_the_account_does_not() {
    let op = Op::shared();
    let mailbox = Mailbox::start();
    let app = google_app(op, "", AppOptions::default().var("SMTP_URL", &mailbox.url())).await;
    let email = "google-alert@example.com";
    let person = Person::new(email);
    let first = client();
    assert_eq!(google_login(&app, op, &first, &person, None).await.status(), 303);
    // The same browser again: it holds the device cookie the first sign-in set.
    assert_eq!(google_login(&app, op, &first, &person, None).await.status(), 303);
    let other = client();
    assert_eq!(google_login(&app, op, &other, &person, None).await.status(), 303);
    let alert = wait_for_subject(&mailbox, email, "New sign-in to your account").await;
    assert!(alert.text.contains("Signed in with: google"), "{}", alert.text);
    // A message queued after the sign-ins arrives after anything they queued.
    assert_eq!(forgot(&app, &client(), email).await.status(), 202);
    wait_for_subject(&mailbox, email, "About your password reset request").await;
    let alerts = mailbox
        .to(email)
        .into_iter()
        .filter(|m| m.subject.contains("New sign-in"))
        .count();
    assert_eq!(alerts, 1, "only the other browser's sign-in");
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_can_be_turned_off() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default().var("NEW_DEVICE_ALERTS", "false")).await;
    let email = "no-alerts@example.com";
    app.signed_up_client(email).await;
    assert_eq!(app.login_with(&client(), email, PASSWORD).await.status(), 200);
    // A message queued after the sign-in arrives after anything the sign-in queued.
    assert_eq!(forgot(&app, &client(), email).await.status(), 202);
    wait_for_subject(&mailbox, email, "Reset your password").await;
    assert!(mailbox
        .to(email)
        .iter()
        .all(|m| !m.subject.contains("New sign-in")));
}

// --- Mail server outages, the outbox, the CLI -------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn with_the_smtp_server_down_requests_answer_normally_and_mail_arrives_when_it_returns() {
    let mut mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "smtp-down@example.com";
    tokio::task::block_in_place(|| mailbox.stop());
    let c = client();
    let resp = app.signup_with(&c, email, PASSWORD).await;
    assert_eq!(resp.status(), 201, "sign-up does not wait for mail");
    assert_eq!(forgot(&app, &client(), email).await.status(), 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| mailbox.restart());
    wait_for_subject(&mailbox, email, "Confirm your e-mail address").await;
    wait_for_subject(&mailbox, email, "Reset your password").await;
    let metrics = app.state.metrics.render();
    assert!(
        metrics.contains("authauth_mail_total{kind=\"verify_email\",outcome=\"retry\"}"),
        "the failed attempts are counted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nothing_configured_mail_lands_in_the_outbox_and_its_links_work() {
    // The test apps' default: mail to an outbox folder, as `authauth serve` does with nothing set.
    let app = spawn_app().await;
    let email = "outbox@example.com";
    let (c, _) = app.signed_up_client(email).await;
    let outbox = app.dir.0.join("outbox");
    let deadline = Instant::now() + Duration::from_secs(20);
    let eml = loop {
        let found = std::fs::read_dir(&outbox)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "eml"));
        if let Some(p) = found {
            break std::fs::read(p).unwrap();
        }
        assert!(Instant::now() < deadline, "no .eml in {}", outbox.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let parsed = mail_parser::MessageParser::default().parse(&eml).unwrap();
    let text = parsed.body_text(0).unwrap().to_string();
    let token = regex::Regex::new(r"token=([A-Za-z0-9_-]+)")
        .unwrap()
        .captures(&text)
        .unwrap()[1]
        .to_string();
    let resp = app
        .post_json(&c, "/auth/email/verify", &json!({ "token": token }))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn production_without_smtp_says_mail_is_not_configured() {
    let app = spawn_app_with(
        AppOptions::default()
            .var("APP_ENV", "production")
            .var("PUBLIC_URL", "https://auth.example.com")
            .var("MAIL_OUTBOX_DIR", ""),
    )
    .await;
    let resp = app
        .client
        .post(app.url("/auth/password/forgot"))
        .header("host", "auth.example.com")
        .header("origin", "https://auth.example.com")
        .json(&json!({ "email": "someone@example.com" }))
        .send()
        .await
        .unwrap();
    let (status, body) = error_code(resp).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("mail_not_configured")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_prints_or_sends_a_reset_link_from_the_terminal() {
    let mailbox = Mailbox::start();
    let app = mail_app(&mailbox, AppOptions::default()).await;
    let email = "desk@example.com";
    let (c, _) = app.signed_up_client(email).await;
    let out = tokio::task::block_in_place(|| {
        crate::cli_ops::cli(&app, &["users", "reset-password", email, "--print"])
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let token = regex::Regex::new(r"token=([A-Za-z0-9_-]+)")
        .unwrap()
        .captures(&printed)
        .unwrap()[1]
        .to_string();
    assert!(
        mailbox.to(email).iter().all(|m| !m.subject.contains("Reset")),
        "--print sends nothing"
    );
    assert_eq!(reset(&app, &client(), &token, NEW_PASSWORD).await.status(), 200);
    assert_eq!(me_status(&app, &c).await.0, 401);

    let out = tokio::task::block_in_place(|| crate::cli_ops::cli(&app, &["users", "reset-password", email]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Sent a password reset link"),
        "{}",
        stdout(&out)
    );
    wait_for_subject(&mailbox, email, "Reset your password").await;

    let out = tokio::task::block_in_place(|| {
        crate::cli_ops::cli(&app, &["users", "reset-password", "nobody@example.com"])
    });
    assert_eq!(out.status.code(), Some(3), "unknown user: {}", stderr(&out));
}
