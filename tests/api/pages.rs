//! The hosted pages (`/login`, `/signup`, `/account` and their form actions) over HTTP, as a
//! browser without JavaScript uses them: forms posted with the headers a browser sends. What the
//! pages do is what the JSON API does (same throttle, same messages, same cookies); these tests
//! hold them to it, and to the cross-site rules: SECURITY.md §4 (V13.2.3 every state-changing
//! route refuses cross-site requests, login CSRF), O9 (return-to allow-list), V3.1.1, SM-CS
//! caching, V3.3.4 (list and end one's own sessions), V3.3.3 (password change ends the others),
//! and the enumeration rule (one generic message for unknown e-mail and wrong password).
//! The walk in a real browser is `browser::*`.

use serde_json::Value;

use crate::helpers::*;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// A cookie-keeping browser-like client with this `User-Agent` (redirects not followed).
fn browser(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Where a form post comes from, as the browser tells it.
#[derive(Clone, Copy, Debug)]
enum Site {
    /// A page of this very site: `Origin` this origin, `Sec-Fetch-Site: same-origin`.
    SameOrigin,
    /// A page on another site posting here: `Origin: http://evil.example`.
    OtherOrigin,
    /// Only the fetch metadata says it: `Sec-Fetch-Site: cross-site`.
    CrossSiteMetadata,
    /// Neither header: not what a browser sends with a form.
    Nowhere,
    /// This origin in `Origin`, no fetch metadata: a browser without `Sec-Fetch-*` (Safari
    /// before 16.4).
    OriginOnly,
    /// `Sec-Fetch-Site: same-origin` alone.
    MetadataOnly,
}

const CROSS_SITE: [Site; 3] = [Site::OtherOrigin, Site::CrossSiteMetadata, Site::Nowhere];

/// Posts an HTML form (`application/x-www-form-urlencoded`) to `path`.
async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
    from: Site,
) -> reqwest::Response {
    let mut req = client.post(app.url(path)).form(fields);
    req = match from {
        Site::SameOrigin => req
            .header("origin", app.origin())
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-mode", "navigate"),
        Site::OtherOrigin => req.header("origin", "http://evil.example"),
        Site::CrossSiteMetadata => req.header("sec-fetch-site", "cross-site"),
        Site::Nowhere => req,
        Site::OriginOnly => req.header("origin", app.origin()),
        Site::MetadataOnly => req.header("sec-fetch-site", "same-origin"),
    };
    req.send().await.unwrap()
}

fn location(resp: &reqwest::Response) -> &str {
    resp.headers()
        .get("location")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

/// The text of the page's error alert, if any.
fn alert(html: &str) -> Option<String> {
    let start = html.find("role=\"alert\"")?;
    let text = &html[start..];
    let text = &text[text.find('>')? + 1..];
    Some(text[..text.find('<')?].to_string())
}

/// Signs up through the form on `client`; returns the session cookie value.
async fn sign_up(app: &TestApp, client: &reqwest::Client, email: &str) -> String {
    let resp = post_form(
        app,
        client,
        "/signup",
        &[
            ("fullName", "Page User"),
            ("email", email),
            ("password", PASSWORD),
            ("returnTo", ""),
        ],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert_eq!(location(&resp), "/account");
    set_cookie_value(&resp, app.cookie_name()).expect("signup sets the session cookie")
}

async fn account_html(app: &TestApp, client: &reqwest::Client) -> String {
    page_html(app, client, "/account").await
}

/// The page at `path`, which must answer 200.
async fn page_html(app: &TestApp, client: &reqwest::Client, path: &str) -> String {
    let resp = client.get(app.url(path)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

/// The public session ids the account page lists, and the one marked as this device.
fn devices(html: &str) -> (Vec<String>, Option<String>) {
    let mut ids = Vec::new();
    let mut current = None;
    for chunk in html.split("<li class=\"device").skip(1) {
        let id = chunk
            .split("data-session=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string();
        if chunk.starts_with(" current") {
            assert!(current.is_none(), "two devices marked current");
            assert!(chunk.contains("This device"));
            current = Some(id.clone());
        }
        ids.push(id);
    }
    (ids, current)
}

/// The pages that load the passkey script.
const PASSKEY_PAGES: &[&str] = &["/login", "/login/second-factor", "/account/two-factor"];

fn assert_page_headers(resp: &reqwest::Response, what: &str) {
    assert!(header(resp, "content-type").starts_with("text/html"), "{what}");
    let csp = header(resp, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    // The pages that offer passkeys run the one script authauth serves, nothing inline; the
    // others run none.
    if PASSKEY_PAGES.contains(&what) {
        assert!(csp.contains("script-src 'self';"), "{what}: {csp}");
        assert!(csp.contains("connect-src 'self';"), "{what}: {csp}");
    } else {
        assert!(!csp.contains("script-src"), "{what}: no script is allowed: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(header(resp, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(resp, "cache-control"), "no-store", "{what}");
    // Not `no-referrer`: under it a browser posts forms with `Origin: null`.
    assert_eq!(header(resp, "referrer-policy"), "same-origin", "{what}");
    assert_eq!(header(resp, "x-content-type-options"), "nosniff", "{what}");
}

#[tokio::test]
async fn every_page_is_html_without_script_unframeable_and_uncached() {
    let app = spawn_app().await;
    let c = client();
    // The pages e-mailed links open answer 400 for a token that is no live link, as a page.
    for (path, status) in [
        ("/login", 200),
        ("/signup", 200),
        ("/forgot-password", 200),
        ("/verify-email?token=some-token", 200),
        ("/reset-password?token=not-a-live-link", 400),
        ("/report-sign-in?token=not-a-live-link", 400),
    ] {
        let resp = c.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert_page_headers(&resp, path);
        let html = resp.text().await.unwrap();
        // No inline script anywhere; the passkey pages load the one file, deferred.
        let scripts: Vec<&str> = html.split("<script").skip(1).collect();
        if PASSKEY_PAGES.contains(&path) {
            assert_eq!(scripts.len(), 1, "{path}");
            assert!(
                scripts[0].starts_with(" src=\"/auth/assets/passkeys.js\" defer></script>"),
                "{path}: {}",
                scripts[0]
            );
        } else {
            assert!(scripts.is_empty(), "{path}");
        }
        assert!(html.contains("<html lang=\"en\">"), "{path}");
        // Every input has a label.
        for id in html
            .split("<input id=\"")
            .skip(1)
            .map(|r| r.split('"').next().unwrap())
        {
            assert!(
                html.contains(&format!("<label for=\"{id}\">")),
                "{path}: #{id} unlabelled"
            );
        }
    }
    sign_up(&app, &c, "headers@example.com").await;
    let resp = c.get(app.url("/account")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_page_headers(&resp, "/account");
    let html = resp.text().await.unwrap();
    assert!(!html.to_ascii_lowercase().contains("<script"));

    // The stylesheet is same-origin (CSP `style-src 'self'`), with a dark scheme.
    let css = c.get(app.url("/auth/assets/pages.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(header(&css, "content-type").starts_with("text/css"));
    assert!(css.text().await.unwrap().contains("prefers-color-scheme: dark"));

    // Errors on page paths are pages too, with the API's status and headers.
    let resp = c.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(header(&resp, "allow"), "POST");
    assert_page_headers(&resp, "405");
}

/// A form post needs to say where it comes from, by either header: browsers without fetch
/// metadata send only `Origin`, and `Sec-Fetch-Site: same-origin` alone is as telling.
#[tokio::test]
async fn a_same_site_form_post_is_accepted_with_either_origin_or_fetch_metadata() {
    let app = spawn_app().await;
    for (email, from) in [
        ("origin-only@example.com", Site::OriginOnly),
        ("metadata-only@example.com", Site::MetadataOnly),
    ] {
        let c = client();
        let resp = post_form(
            &app,
            &c,
            "/signup",
            &[("fullName", "Ada"), ("email", email), ("password", PASSWORD)],
            from,
        )
        .await;
        assert_eq!(resp.status(), 303, "{from:?}");
        assert_eq!(app.me(&c).await.1["user"]["email"], email, "{from:?}");
    }
}

#[tokio::test]
async fn the_signup_form_creates_the_account_with_the_api_s_cookie() {
    let app = spawn_app().await;
    let c = client();
    let page_cookie = {
        let resp = post_form(
            &app,
            &c,
            "/signup",
            &[
                ("fullName", "  Ada Lovelace "),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("returnTo", "/app/welcome"),
            ],
            Site::SameOrigin,
        )
        .await;
        assert_eq!(resp.status(), 303);
        assert_eq!(location(&resp), "/app/welcome");
        set_cookie_header(&resp, app.cookie_name()).unwrap()
    };
    let (status, me) = app.me(&c).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["email"], "ada@example.com");
    assert_eq!(me["user"]["fullName"], "Ada Lovelace");

    // Exactly the attributes of the JSON signup's cookie.
    let api = app.signup_with(&client(), "grace@example.com", PASSWORD).await;
    let api_cookie = set_cookie_header(&api, app.cookie_name()).unwrap();
    let attributes = |h: &str| {
        h.split(';')
            .skip(1)
            .map(|a| a.trim().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(attributes(&page_cookie), attributes(&api_cookie));

    // Refusals are shown in place, the API's message, the fields kept (never the password).
    let resp = post_form(
        &app,
        &client(),
        "/signup",
        &[
            ("fullName", "Someone"),
            ("email", "ada@example.com"),
            ("password", PASSWORD),
        ],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 409);
    assert!(set_cookie_header(&resp, app.cookie_name()).is_none());
    let html = resp.text().await.unwrap();
    assert_eq!(
        alert(&html).as_deref(),
        Some("An account with this e-mail address already exists.")
    );
    assert!(html.contains("value=\"Someone\""));
    assert!(!html.contains(PASSWORD));

    let resp = post_form(
        &app,
        &client(),
        "/signup",
        &[
            ("fullName", "Weak"),
            ("email", "weak@example.com"),
            ("password", "password1234"),
        ],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"password\" name=\"password\" type=\"password\""));
    assert!(html.contains("aria-invalid=\"true\""));
    assert!(
        alert(&html).unwrap().to_lowercase().contains("password"),
        "{html}"
    );
}

#[tokio::test]
async fn the_login_form_signs_in_and_returns_only_within_the_site() {
    let app = spawn_app().await;
    app.signed_up_client("ret@example.com").await;
    let login = |return_to: &'static str| {
        let app = &app;
        async move {
            let c = client();
            let resp = post_form(
                app,
                &c,
                "/login",
                &[
                    ("email", "ret@example.com"),
                    ("password", PASSWORD),
                    ("returnTo", return_to),
                ],
                Site::SameOrigin,
            )
            .await;
            assert_eq!(resp.status(), 303, "{return_to}");
            let cookie = set_cookie_value(&resp, app.cookie_name()).unwrap();
            let loc = location(&resp).to_string();
            // The token is never in the URL.
            assert!(!loc.contains(&cookie));
            assert_eq!(app.me(&c).await.0, 200);
            loc
        }
    };
    assert_eq!(login("").await, "/account");
    assert_eq!(login("/").await, "/");
    assert_eq!(login("/app/report?id=7&x=%20y").await, "/app/report?id=7&x=%20y");
    for evil in [
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
        assert_eq!(login(evil).await, "/", "{evil}");
    }

    // The page carries the allow-listed returnTo (escaped) into its form and its links.
    let html = client()
        .get(app.url("/login?returnTo=%2Fapp%2Fx%3Fa%3D1%26b%3D%22q%22"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"name="returnTo" value="/app/x?a=1&#38;b=&#34;q&#34;""#),
        "{html}"
    );
    assert!(html.contains(r#"href="/signup?returnTo=/app/x%3Fa%3D1%26b%3D%22q%22""#));
    let html = client()
        .get(app.url("/login?returnTo=//evil.example"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"returnTo\" value=\"/\""), "{html}");
    assert!(!html.contains("evil.example"));

    // Signed in already: the page sends the browser on.
    let (c, _) = app.signed_up_client("already@example.com").await;
    let resp = c.get(app.url("/login?returnTo=/app/y")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/app/y");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_address_get_one_generic_message() {
    let app = spawn_app().await;
    app.signed_up_client("known@example.com").await;
    let attempt = |email: &'static str| {
        let app = &app;
        async move {
            let resp = post_form(
                app,
                &client(),
                "/login",
                &[("email", email), ("password", "not the password at all")],
                Site::SameOrigin,
            )
            .await;
            let status = resp.status().as_u16();
            assert!(set_cookie_header(&resp, app.cookie_name()).is_none());
            let html = resp.text().await.unwrap();
            (status, alert(&html), html.replace(email, "EMAIL"))
        }
    };
    let wrong = attempt("known@example.com").await;
    let unknown = attempt("nobody@example.com").await;
    assert_eq!(wrong.0, 401);
    assert_eq!(
        wrong.1.as_deref(),
        Some("The e-mail address or password is incorrect.")
    );
    // The whole page is the same, but for the address typed in.
    assert_eq!(wrong, unknown);
    // And it is the JSON API's message.
    let api: Value = app
        .login_with(&client(), "known@example.com", "not the password at all")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        format!("{}.", api["message"].as_str().unwrap()).to_lowercase(),
        wrong.1.unwrap().to_lowercase()
    );
}

#[tokio::test]
async fn the_login_form_shares_the_json_login_s_throttle() {
    let app = spawn_app().await;
    app.signed_up_client("locked@example.com").await;
    // Five failures through the API and five through the form: one account, one network.
    for _ in 0..5 {
        let resp = app
            .login_with(&client(), "locked@example.com", "wrong wrong wrong")
            .await;
        assert_eq!(resp.status(), 401);
    }
    for _ in 0..5 {
        let resp = post_form(
            &app,
            &client(),
            "/login",
            &[("email", "locked@example.com"), ("password", "wrong wrong wrong")],
            Site::SameOrigin,
        )
        .await;
        assert_eq!(resp.status(), 401);
    }
    // Now even the right password is refused, by the form as by the API, with Retry-After.
    let resp = post_form(
        &app,
        &client(),
        "/login",
        &[("email", "locked@example.com"), ("password", PASSWORD)],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert!(header(&resp, "retry-after").parse::<u64>().unwrap() > 0);
    assert!(set_cookie_header(&resp, app.cookie_name()).is_none());
    let message = alert(&resp.text().await.unwrap()).unwrap();
    assert!(
        message.starts_with("Too many failed sign-in attempts"),
        "{message}"
    );
    assert_eq!(
        app.login_with(&client(), "locked@example.com", PASSWORD)
            .await
            .status(),
        429
    );
    // An unknown address gets the same refusal shape (no oracle).
    let resp = post_form(
        &app,
        &client(),
        "/login",
        &[("email", "locked@example.com"), ("password", "anything at all")],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 429);
}

#[tokio::test]
async fn a_cross_site_form_post_to_any_page_action_is_refused() {
    let app = spawn_app().await;
    let c = client();
    sign_up(&app, &c, "victim@example.com").await;
    let other = browser(FIREFOX);
    let other_cookie = sign_up_again(&app, &other, "victim@example.com").await;
    let (ids, current) = devices(&account_html(&app, &c).await);
    let current = current.unwrap();
    let other_id = ids.iter().find(|id| **id != current).unwrap().clone();
    let end_other = format!("/account/sessions/{other_id}/end");

    let actions: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/login",
            vec![("email", "victim@example.com"), ("password", PASSWORD)],
        ),
        (
            "/signup",
            vec![
                ("fullName", "Planted"),
                ("email", "planted@example.com"),
                ("password", PASSWORD),
            ],
        ),
        (
            "/account/password",
            vec![
                ("currentPassword", PASSWORD),
                ("newPassword", "a brand new passphrase"),
                ("confirmPassword", "a brand new passphrase"),
            ],
        ),
        (&end_other, vec![]),
        ("/account/sessions/end-others", vec![]),
        ("/logout", vec![]),
    ];
    for (path, fields) in &actions {
        for from in CROSS_SITE {
            let resp = post_form(&app, &c, path, fields, from).await;
            assert_eq!(resp.status(), 403, "{path} {from:?}");
            assert!(
                set_cookie_header(&resp, app.cookie_name()).is_none(),
                "{path} {from:?}"
            );
            assert!(
                alert(&resp.text().await.unwrap()).is_some(),
                "{path} {from:?}: the refusal is a page"
            );
        }
    }
    // Nothing changed: both sessions live, no account planted, the password the same.
    assert_eq!(app.me(&c).await.0, 200);
    assert_eq!(app.get_with_cookie("/auth/me", &other_cookie).await.status(), 200);
    assert_eq!(
        app.login_with(&client(), "planted@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.login_with(&client(), "victim@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    // The same posts from the site itself go through (the test above is not vacuous).
    let resp = post_form(&app, &c, &end_other, &[], Site::SameOrigin).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/account?notice=device-ended");

    // A JSON endpoint still refuses form bodies, and a page action refuses JSON.
    let resp = post_form(
        &app,
        &client(),
        "/auth/login",
        &[("email", "victim@example.com"), ("password", PASSWORD)],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 415);
    let resp = app
        .post_json(
            &client(),
            "/login",
            &serde_json::json!({"email": "victim@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert!(set_cookie_header(&resp, app.cookie_name()).is_none());
}

/// Signs in through the form on `client` (a second device of an existing account).
async fn sign_up_again(app: &TestApp, client: &reqwest::Client, email: &str) -> String {
    let resp = post_form(
        app,
        client,
        "/login",
        &[("email", email), ("password", PASSWORD)],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 303);
    set_cookie_value(&resp, app.cookie_name()).unwrap()
}

per_backend!(the_account_page_lists_my_devices_and_signs_one_out);
async fn the_account_page_lists_my_devices_and_signs_one_out(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let laptop = client();
    let laptop_cookie = sign_up(&app, &laptop, "devices@example.com").await;
    let phone = browser(FIREFOX);
    let phone_cookie = sign_up_again(&app, &phone, "devices@example.com").await;

    let html = account_html(&app, &laptop).await;
    assert!(html.contains("devices@example.com") && html.contains("Page User"));
    let (ids, current) = devices(&html);
    assert_eq!(ids.len(), 2, "{html}");
    let me = app.me(&laptop).await.1;
    assert_eq!(current.as_deref(), me["session"]["id"].as_str());
    assert!(html.contains("Firefox on Linux"), "{html}");
    assert!(html.contains("authauth-tests"), "{html}");
    assert!(html.contains("127.0.0.1"));
    assert!(html.contains("Sign out everywhere else"));
    // Public ids only: no cookie value is on the page.
    for cookie in [&laptop_cookie, &phone_cookie] {
        let token = cookie.split('.').next().unwrap();
        assert!(!html.contains(token));
    }

    // End the phone's session from the laptop: the phone is refused at once.
    let phone_id = ids.iter().find(|id| Some(*id) != current.as_ref()).unwrap();
    let resp = post_form(
        &app,
        &laptop,
        &format!("/account/sessions/{phone_id}/end"),
        &[],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/account?notice=device-ended");
    let (status, body) = app.me(&phone).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "session_revoked");
    assert_eq!(body["reason"], "revoked_by_user");
    let html = page_html(&app, &laptop, location(&resp)).await;
    assert_eq!(devices(&html).0.len(), 1);
    assert!(html.contains("That device is signed out."));
    // The phone, sent to its account page, is sent to sign in.
    let resp = phone.get(app.url("/account")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/login");

    // An id that is not one of mine: the API's 404, shown on the account page.
    let resp = post_form(
        &app,
        &laptop,
        "/account/sessions/s0123456789abcdefghijklmn/end",
        &[],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        alert(&resp.text().await.unwrap()).as_deref(),
        Some("No live session of yours has this id.")
    );

    // Sign out everywhere else.
    let tablet = browser(FIREFOX);
    sign_up_again(&app, &tablet, "devices@example.com").await;
    let resp = post_form(
        &app,
        &laptop,
        "/account/sessions/end-others",
        &[],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(location(&resp), "/account?notice=others-ended");
    assert_eq!(app.me(&tablet).await.0, 401);
    assert_eq!(app.me(&laptop).await.0, 200);

    // Ending this very device signs it out and sends it to sign in.
    let resp = post_form(
        &app,
        &laptop,
        &format!("/account/sessions/{}/end", current.unwrap()),
        &[],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/login?notice=signed-out");
    assert_eq!(set_cookie_value(&resp, app.cookie_name()).as_deref(), Some(""));
    assert_eq!(
        app.get_with_cookie("/auth/me", &laptop_cookie).await.status(),
        401
    );
}

#[tokio::test]
async fn the_password_form_changes_it_and_signs_out_the_other_devices() {
    let app = spawn_app().await;
    let laptop = client();
    let old_cookie = sign_up(&app, &laptop, "pw@example.com").await;
    let phone = browser(FIREFOX);
    sign_up_again(&app, &phone, "pw@example.com").await;
    let new_password = "a completely new passphrase";
    let change = |current: &'static str, new: &'static str, again: &'static str| {
        let (app, laptop) = (&app, &laptop);
        async move {
            post_form(
                app,
                laptop,
                "/account/password",
                &[
                    ("currentPassword", current),
                    ("newPassword", new),
                    ("confirmPassword", again),
                ],
                Site::SameOrigin,
            )
            .await
        }
    };

    let resp = change("wrong current password", new_password, new_password).await;
    assert_eq!(resp.status(), 403);
    let html = resp.text().await.unwrap();
    assert_eq!(
        alert(&html).as_deref(),
        Some("The current password is incorrect.")
    );
    assert!(
        html.contains("Your devices"),
        "the account page, with the error in place"
    );
    assert!(!html.contains(new_password));

    let resp = change(PASSWORD, new_password, "something else entirely").await;
    assert_eq!(resp.status(), 400);
    assert!(alert(&resp.text().await.unwrap()).unwrap().contains("differ"));

    let resp = change(PASSWORD, "password1234", "password1234").await;
    assert_eq!(resp.status(), 400);

    let resp = change(PASSWORD, new_password, new_password).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/account?notice=password-changed");
    let new_cookie = set_cookie_value(&resp, app.cookie_name()).unwrap();
    assert_ne!(new_cookie, old_cookie);
    assert!(page_html(&app, &laptop, location(&resp))
        .await
        .contains("Your password has changed."));
    let (status, body) = app.me(&phone).await;
    assert_eq!(status, 401);
    assert_eq!(body["reason"], "password_changed");
    assert_eq!(
        app.login_with(&client(), "pw@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.login_with(&client(), "pw@example.com", new_password)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_and_the_pages_need_one() {
    let app = spawn_app().await;
    let c = client();
    let cookie = sign_up(&app, &c, "out@example.com").await;
    let resp = post_form(&app, &c, "/logout", &[], Site::SameOrigin).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/login?notice=signed-out");
    assert_eq!(set_cookie_value(&resp, app.cookie_name()).as_deref(), Some(""));
    let resp = app.get_with_cookie("/auth/me", &cookie).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["reason"], "logout");
    let html = c
        .get(app.url("/login?notice=signed-out"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("You are signed out."));
    // Signing out again is harmless.
    assert_eq!(
        post_form(&app, &c, "/logout", &[], Site::SameOrigin)
            .await
            .status(),
        303
    );

    // Without a session the account page and its actions send the browser to sign in.
    let resp = c.get(app.url("/account")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/login");
    for path in ["/account/password", "/account/sessions/end-others"] {
        let resp = post_form(&app, &c, path, &[], Site::SameOrigin).await;
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(location(&resp), "/login", "{path}");
    }
    // Unknown notices show nothing (nothing from the URL becomes text).
    let html = c
        .get(app.url("/login?notice=%3Cb%3Ehi"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("role=\"status\""));
    assert!(!html.contains("<b>hi"));
}

#[tokio::test]
async fn forward_auth_sends_the_browser_to_the_hosted_sign_in_and_it_comes_back() {
    let app = spawn_app_with(AppOptions::default().var("TRUST_X_FORWARDED_FOR", "true")).await;
    app.signed_up_client("fa@example.com").await;
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/auth/verify"))
        .header("accept", "text/html")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/reports/q3?view=full")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let sign_in = location(&resp).to_string();
    assert!(sign_in.starts_with("/login?returnTo="), "{sign_in}");

    let c = client();
    let html = c
        .get(app.url(&sign_in))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let return_to = html
        .split("name=\"returnTo\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#61;", "=");
    assert_eq!(return_to, "/reports/q3?view=full");
    let resp = post_form(
        &app,
        &c,
        "/login",
        &[
            ("email", "fa@example.com"),
            ("password", PASSWORD),
            ("returnTo", &return_to),
        ],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/reports/q3?view=full");
}

#[tokio::test]
async fn sign_in_with_google_is_offered_only_when_configured() {
    let app = spawn_app().await;
    let html = app.get("/login").await.text().await.unwrap();
    assert!(!html.contains("Sign in with Google"));

    let app = spawn_app_with(
        AppOptions::default()
            .var("GOOGLE_CLIENT_ID", "client")
            .var("GOOGLE_CLIENT_SECRET", "secret"),
    )
    .await;
    let html = app.get("/login?returnTo=/app/z").await.text().await.unwrap();
    assert!(html.contains("Sign in with Google"));
    assert!(html.contains("href=\"/auth/google?returnTo=/app/z\""), "{html}");
}

#[tokio::test]
async fn ui_enabled_false_serves_no_pages() {
    let app = spawn_app_with(AppOptions::default().var("UI_ENABLED", "false")).await;
    for path in ["/login", "/signup", "/account", "/auth/assets/pages.css"] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert!(header(&resp, "content-type").starts_with("application/json"));
    }
    // Without pages their paths take no forms: a form body there is refused as anywhere else
    // (415), not checked as a page's form post (which would answer 403 without an Origin).
    for (path, from) in [("/logout", Site::SameOrigin), ("/login", Site::Nowhere)] {
        let resp = post_form(&app, &client(), path, &[("email", "a@example.com")], from).await;
        assert_eq!(resp.status(), 415, "{path}");
        assert_eq!(
            resp.json::<serde_json::Value>().await.unwrap()["error"],
            "unsupported_media_type",
            "{path}"
        );
    }
    // The JSON API is untouched.
    assert_eq!(
        app.signup_with(&client(), "api@example.com", PASSWORD)
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn page_requests_are_counted_under_their_route_template_never_an_id() {
    let app = spawn_app_with(AppOptions::default().var("METRICS_ADDR", "127.0.0.1:0")).await;
    let c = client();
    sign_up(&app, &c, "metrics@example.com").await;
    let (_, current) = devices(&account_html(&app, &c).await);
    let id = current.unwrap();
    let resp = post_form(
        &app,
        &c,
        &format!("/account/sessions/{id}/end"),
        &[],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 303);
    let at = app.metrics_address.as_ref().expect("METRICS_ADDR was set");
    let text = reqwest::get(format!("{at}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        r#"authauth_http_requests_total{method="POST",route="/signup",status="303"}"#,
        r#"authauth_http_requests_total{method="GET",route="/account",status="200"}"#,
        r#"authauth_http_requests_total{method="POST",route="/account/sessions/{id}/end",status="303"}"#,
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(series)),
            "{series} missing:\n{text}"
        );
    }
    assert!(!text.contains(&id), "a session id became a label");
}

per_backend!(the_account_page_shows_recent_activity_in_words);
async fn the_account_page_shows_recent_activity_in_words(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let laptop = client();
    sign_up(&app, &laptop, "history@example.com").await;
    let phone = browser(FIREFOX);
    let resp = post_form(
        &app,
        &phone,
        "/login",
        &[("email", "history@example.com"), ("password", "not my password")],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 401);
    sign_up_again(&app, &phone, "history@example.com").await;
    let phone_id = app.me(&phone).await.1["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = post_form(
        &app,
        &laptop,
        &format!("/account/sessions/{phone_id}/end"),
        &[],
        Site::SameOrigin,
    )
    .await;
    assert_eq!(resp.status(), 303);
    // The trail is written in the background: the page shows it once it is there.
    let expected = [
        "A device was signed out from another one",
        "Signed in with a password",
        "Sign-in failed: wrong password",
        "Account created",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let html = loop {
        let html = account_html(&app, &laptop).await;
        if expected.iter().all(|e| html.contains(e)) {
            break html;
        }
        assert!(std::time::Instant::now() < deadline, "{html}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // Newest first, with the device and address it came from.
    let at = |s: &str| html.find(s).unwrap();
    assert!(
        at(expected[0]) < at(expected[1])
            && at(expected[1]) < at(expected[2])
            && at(expected[2]) < at(expected[3])
    );
    assert!(html.contains("Firefox on Linux, 127.0.0.1"), "{html}");
    // Rotations and the sessions beside each sign-in are not listed: only what a person did.
    assert!(!html.contains("session."), "{html}");
}
