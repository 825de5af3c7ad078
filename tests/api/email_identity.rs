//! One e-mail identity everywhere (SECURITY.md §9): spellings of an address that fold together
//! somewhere — in PostgreSQL's `lower()`, in Unicode normalisation, in IDNA — are either the
//! same account for lookup, uniqueness, throttling and provider linking, on every database, or
//! refused outright. Addresses no mail system accepts are refused.

use serde_json::Value;

use crate::{helpers::*, op::*};

/// `tİm-owner` with U+0130 (PostgreSQL's `lower()` folds it to `tim-owner`).
const DOTTED_I: &str = "t\u{130}m-owner@example.com";
/// `kim-owner` with the Kelvin sign U+212A (PostgreSQL's `lower()` folds it to `k`).
const KELVIN: &str = "\u{212a}im-owner@example.com";

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

per_backend!(lookalike_spellings_never_sign_in_and_never_get_a_fresh_throttle_budget);
async fn lookalike_spellings_never_sign_in_and_never_get_a_fresh_throttle_budget(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    app.signed_up_client("tim-owner@example.com").await;
    app.signed_up_client("kim-owner@example.com").await;

    // Never into the account, even with its password.
    for lookalike in [DOTTED_I, KELVIN] {
        let resp = app.login_with(&client(), lookalike, PASSWORD).await;
        assert_ne!(resp.status(), 200, "{backend:?}: {lookalike:?} signed in");
        assert!(set_cookie_value(&resp, app.cookie_name()).is_none());
    }

    // One client exhausts its guesses at each account…
    let c = client();
    for real in ["tim-owner@example.com", "kim-owner@example.com"] {
        for i in 0..10 {
            let resp = app.login_with(&c, real, "wrong password here").await;
            assert_eq!(resp.status(), 401, "{backend:?}: attempt {i}");
        }
        assert_eq!(app.login_with(&c, real, PASSWORD).await.status(), 429);
    }
    // …and no other spelling of the same address gives it more: case variants share the
    // bucket, and look-alikes do not reach the account at all.
    for other in ["TIM-Owner@Example.COM", "Kim-Owner@EXAMPLE.com"] {
        assert_eq!(
            app.login_with(&c, other, PASSWORD).await.status(),
            429,
            "{backend:?}: {other}"
        );
    }
    for lookalike in [DOTTED_I, KELVIN] {
        let resp = app.login_with(&c, lookalike, PASSWORD).await;
        assert_ne!(
            resp.status(),
            200,
            "{backend:?}: {lookalike:?} got a fresh budget"
        );
    }
}

per_backend!(a_provider_asserting_a_lookalike_address_cannot_take_over_the_local_account);
async fn a_provider_asserting_a_lookalike_address_cannot_take_over_the_local_account(backend: Backend) {
    let op = Op::shared();
    let app = google_app(op, "", AppOptions::default().backend(backend)).await;
    let (tim, _) = app.signed_up_client("tim-owner@example.com").await;
    let (kim, _) = app.signed_up_client("kim-owner@example.com").await;
    for lookalike in [DOTTED_I, KELVIN] {
        let c = client();
        let resp = google_login(&app, op, &c, &Person::new(lookalike), None).await;
        assert!(
            set_cookie_value(&resp, app.cookie_name()).is_none_or(|v| v.is_empty()),
            "{backend:?}: {lookalike:?} got a session"
        );
        let (status, body) = error_of(resp).await;
        assert_eq!(status, 400, "{backend:?}: {lookalike:?}: {body}");
        assert_eq!(body["error"], "invalid_email");
        assert_eq!(app.me(&c).await.0, 401);
    }
    // Nothing was linked: linking would have ended the owners' sessions and passwords.
    assert_eq!(app.me(&tim).await.0, 200, "{backend:?}");
    assert_eq!(app.me(&kim).await.0, 200, "{backend:?}");
    for owner in ["tim-owner@example.com", "kim-owner@example.com"] {
        assert_eq!(app.login_with(&client(), owner, PASSWORD).await.status(), 200);
    }
}

per_backend!(spellings_of_one_address_are_one_account_or_refused_alike_on_every_database);
async fn spellings_of_one_address_are_one_account_or_refused_alike_on_every_database(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let signup = |email: &'static str| {
        let app = &app;
        async move { error_of(app.signup_with(&client(), email, PASSWORD).await).await }
    };
    for email in [
        "tim-owner@example.com",
        "\u{e9}lodie@example.com",
        "user@B\u{dc}CHER.example",
    ] {
        let (status, body) = signup(email).await;
        assert_eq!(status, 201, "{backend:?}: {email}: {body}");
    }
    // Look-alikes that only some foldings merge: refused, whatever the database.
    for lookalike in [
        DOTTED_I,
        KELVIN,
        // Full-width letters (NFKC folds them to ASCII).
        "\u{ff54}\u{ff49}\u{ff4d}-owner@example.com",
        // `e` + combining acute: a second spelling of `é`.
        "e\u{301}lodie@example.com",
    ] {
        let (status, body) = signup(lookalike).await;
        assert_eq!(status, 400, "{backend:?}: {lookalike:?}: {body}");
        assert_eq!(body["error"], "invalid_email");
    }
    // Spellings that are the same address: the same account, on every database.
    for same in [
        "TIM-OWNER@example.com",
        "\u{c9}LODIE@Example.com",
        "user@xn--bcher-kva.example",
        "user@b\u{fc}cher.EXAMPLE",
    ] {
        let (status, body) = signup(same).await;
        assert_eq!(status, 409, "{backend:?}: {same}: {body}");
        assert_eq!(body["error"], "email_taken");
    }
    for (spelling, id_of) in [
        ("\u{c9}lodie@EXAMPLE.com", "\u{e9}lodie@example.com"),
        ("user@xn--bcher-kva.example", "user@b\u{fc}cher.example"),
    ] {
        let c = client();
        assert_eq!(
            app.login_with(&c, spelling, PASSWORD).await.status(),
            200,
            "{backend:?}: {spelling}"
        );
        assert_eq!(app.me(&c).await.1["user"]["email"], id_of, "{backend:?}");
    }
}

#[tokio::test]
async fn addresses_no_mail_system_accepts_are_refused() {
    let app = spawn_app_with(AppOptions::default().backend(Backend::Sqlite)).await;
    for bad in [
        "a@evil.com@example.com",
        "a@a..b",
        "a@example..com",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a\u{202e}moc.elpmaxe@example.com",
        "a\u{200b}b@example.com",
        "ab@exa\u{200b}mple.com",
        "\u{feff}ab@example.com",
        "ab@exam\u{ad}ple.com",
        "a b@example.com",
        "\"a b\"@example.com",
        "a@example",
        "a@[127.0.0.1]",
        "a@-example.com",
        "a@exa_mple.com",
    ] {
        let (status, body) = error_of(app.signup_with(&client(), bad, PASSWORD).await).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert_eq!(body["error"], "invalid_email", "{bad:?}");
    }
    assert_eq!(
        app.signup_with(&client(), &format!("{}@example.com", "a".repeat(65)), PASSWORD)
            .await
            .status(),
        400,
        "a local part is at most 64 octets"
    );
}
