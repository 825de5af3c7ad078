//! Forward auth (`GET /auth/verify`) and the contract for backends that check a session
//! themselves (`X-Auth-Passive`): first against authauth directly, then through real nginx and
//! real Caddy running the example configurations of `examples/forward-auth/`, in front of an
//! upstream that echoes what it receives. SECURITY.md §9 ("Forward-auth trusts forwarded headers
//! only from configured proxies; identity headers from the client never reach the app"), O9
//! (return-to allow-list), V3.1.1 (no token in redirects), V3.3.1 (revocation), SM-CS caching.

use std::{collections::BTreeMap, time::Duration};

use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use crate::{cli_ops::cli, helpers::*};

const MINUTE: Duration = Duration::from_secs(60);

/// authauth behind a proxy it trusts to name the original request.
fn behind_a_proxy() -> AppOptions {
    AppOptions::default().var("TRUST_X_FORWARDED_FOR", "true")
}

/// A client that keeps no cookies and follows no redirects: a proxy, or a backend.
fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET /auth/verify` with this session cookie (if any) and these headers.
async fn verify(app: &TestApp, cookie: Option<&str>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = bare().get(app.url("/auth/verify"));
    if let Some(cookie) = cookie {
        req = req.header("cookie", format!("{}={cookie}", app.cookie_name()));
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

/// The `returnTo` of a sign-in location, decoded.
fn return_to(location: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("returnTo=")?;
        Some(percent_decode_str(value).decode_utf8().unwrap().into_owned())
    })
}

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A page navigation as Caddy or Traefik describe it.
fn navigation(uri: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("accept", HTML),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-uri", uri),
    ]
}

async fn sign_up(app: &TestApp, email: &str, full_name: &str) -> (reqwest::Client, String) {
    let c = client();
    let resp = app
        .post_json(
            &c,
            "/auth/signup",
            &json!({"email": email, "password": PASSWORD, "fullName": full_name}),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let cookie = set_cookie_value(&resp, app.cookie_name()).unwrap();
    (c, cookie)
}

#[tokio::test]
async fn verify_with_a_session_is_200_with_the_identity_in_header_safe_encoding_and_no_body() {
    let app = spawn_app().await;
    let name = "Zoë Ångström-李 100%";
    let (c, cookie) = sign_up(&app, "zoë@bücher.example", name).await;
    let me = app.me(&c).await.1;

    let resp = verify(&app, Some(&cookie), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-auth-user-id"), me["user"]["id"].as_str());
    assert_eq!(header(&resp, "x-auth-session-id"), me["session"]["id"].as_str());
    // A password alone: assurance level 1.
    assert_eq!(header(&resp, "x-auth-aal"), Some("1"));
    assert_eq!(header(&resp, "x-auth-amr"), Some("pwd"));
    for (name, expected) in [
        ("x-auth-email", me["user"]["email"].as_str().unwrap()),
        ("x-auth-name", name),
    ] {
        let raw = header(&resp, name).unwrap();
        assert!(raw.bytes().all(|b| (0x20..0x7f).contains(&b)), "{name}: {raw:?}");
        let decoded = percent_decode_str(raw).decode_utf8().unwrap();
        assert_eq!(decoded, expected, "{name}: {raw}");
    }
    assert_eq!(
        header(&resp, "x-auth-name"),
        Some("Zo%C3%AB %C3%85ngstr%C3%B6m-%E6%9D%8E 100%25")
    );
    assert_eq!(header(&resp, "cache-control"), Some("no-store"));
    assert!(
        set_cookie_header(&resp, app.cookie_name()).is_none(),
        "nothing was due"
    );
    assert_eq!(resp.text().await.unwrap(), "");
}

#[tokio::test]
async fn verify_without_a_session_is_401_with_the_usual_json_and_reason() {
    let app = spawn_app_with(behind_a_proxy()).await;
    let (c, cookie) = sign_up(&app, "refused@example.com", "Refused").await;

    let resp = verify(&app, None, &[("accept", "application/json")]).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "no_session");

    let resp = verify(&app, Some("forged.value.here"), &[]).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "no_session");

    let resp = app.post_json(&c, "/auth/logout", &json!({})).await;
    assert_eq!(resp.status(), 204);
    // An API call through Caddy or Traefik: a 401 that says why, never a redirect.
    let resp = verify(
        &app,
        Some(&cookie),
        &[("x-forwarded-uri", "/api/x"), ("accept", "*/*")],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("location").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["reason"].as_str()),
        (Some("session_revoked"), Some("logout"))
    );
}

#[tokio::test]
async fn a_page_navigation_without_a_session_is_redirected_to_sign_in_with_return_to() {
    let app = spawn_app_with(behind_a_proxy().var("SIGN_IN_PATH", "/account/sign-in")).await;
    let uri = "/reports/2026?q=a%20b&x=1";
    let resp = verify(&app, None, &navigation(uri)).await;
    assert_eq!(resp.status(), 302);
    let location = header(&resp, "location").unwrap();
    assert_eq!(
        location,
        "/account/sign-in?returnTo=/reports/2026%3Fq%3Da%2520b%26x%3D1"
    );
    assert_eq!(return_to(location).as_deref(), Some(uri));

    // A dead cookie: the same redirect, the cookie deleted, and no token in the redirect.
    let (c, cookie) = sign_up(&app, "dead@example.com", "Dead").await;
    app.post_json(&c, "/auth/logout", &json!({})).await;
    let resp = verify(&app, Some(&cookie), &navigation(uri)).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(set_cookie_value(&resp, app.cookie_name()).as_deref(), Some(""));
    let location = header(&resp, "location").unwrap().to_string();
    assert!(!location.contains(&cookie) && !resp.text().await.unwrap().contains(&cookie));

    // A browser's own navigation, told by Sec-Fetch-Mode alone.
    let resp = verify(
        &app,
        None,
        &[("sec-fetch-mode", "navigate"), ("x-forwarded-uri", "/a")],
    )
    .await;
    assert_eq!(resp.status(), 302);
    assert_eq!(header(&resp, "location"), Some("/account/sign-in?returnTo=/a"));
}

#[tokio::test]
async fn api_calls_and_other_methods_get_401_never_a_redirect() {
    let app = spawn_app_with(behind_a_proxy()).await;
    for (what, headers) in [
        ("fetch()", vec![("accept", "*/*"), ("x-forwarded-uri", "/x")]),
        (
            "fetch() accepting HTML",
            vec![
                ("accept", HTML),
                ("sec-fetch-mode", "cors"),
                ("x-forwarded-uri", "/x"),
            ],
        ),
        (
            "a form POST",
            vec![
                ("accept", HTML),
                ("x-forwarded-method", "POST"),
                ("x-forwarded-uri", "/x"),
            ],
        ),
        ("JSON", vec![("accept", "application/json")]),
    ] {
        let resp = verify(&app, None, &headers).await;
        assert_eq!(resp.status(), 401, "{what}");
        assert!(resp.headers().get("location").is_none(), "{what}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"],
            "no_session",
            "{what}"
        );
    }
}

#[tokio::test]
async fn through_nginx_a_refused_page_is_a_401_carrying_the_sign_in_location() {
    let app = spawn_app_with(behind_a_proxy()).await;
    let nginx = |accept: &'static str| {
        vec![
            ("accept", accept),
            ("x-original-url", "http://app.example.com/private/page?x=1"),
            ("x-forwarded-method", "GET"),
        ]
    };
    let resp = verify(&app, None, &nginx(HTML)).await;
    assert_eq!(
        resp.status(),
        401,
        "nginx's auth_request cannot pass a redirect on"
    );
    assert_eq!(
        header(&resp, "location"),
        Some("/login?returnTo=/private/page%3Fx%3D1")
    );
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "no_session");

    let resp = verify(&app, None, &nginx("application/json")).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("location").is_none());
}

#[tokio::test]
async fn return_to_never_leaves_the_site_whatever_the_proxy_names() {
    let app = spawn_app_with(behind_a_proxy()).await;
    let hostile = [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "https:evil.example",
        "/%2F%2Fevil.example",
        "/%252F%252Fevil.example",
        "/%5Cevil.example",
        "http://127.0.0.1:3000@evil.example",
        "javascript:alert(1)",
        "%0d%0aLocation:%20http://evil",
        "/ok%0d%0aLocation:%20http://evil",
        "/a?b=c&d=%0d%0aSet-Cookie:x",
    ];
    for uri in hostile {
        let mut headers = navigation("");
        headers.retain(|(n, _)| *n != "x-forwarded-uri");
        headers.push(("x-forwarded-uri", uri));
        let resp = verify(&app, None, &headers).await;
        assert_eq!(resp.status(), 302, "{uri}");
        assert_eq!(
            header(&resp, "location"),
            Some("/login?returnTo=/"),
            "X-Forwarded-Uri {uri}"
        );
    }
    // nginx names a whole URL: only its path and query are kept, and checked the same way.
    for (url, back) in [
        ("https://evil.example/", Some("/")),
        ("http://127.0.0.1:3000@evil.example/x", Some("/x")),
        ("//evil.example/x", Some("/")),
        ("/\\evil.example", Some("/")),
        ("http://app.example.com//evil.example", Some("/")),
        ("http://app.example.com/%2F%2Fevil.example", Some("/")),
        ("javascript:alert(1)", None),
        ("http://app.example.com/fine?a=1", Some("/fine?a=1")),
    ] {
        let resp = verify(&app, None, &[("accept", HTML), ("x-original-url", url)]).await;
        assert_eq!(resp.status(), 401, "{url}");
        let location = header(&resp, "location").unwrap_or_default();
        assert!(location.starts_with("/login"), "{location}");
        assert_eq!(
            return_to(location).as_deref(),
            back,
            "X-Original-URL {url}: {location}"
        );
    }
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    // TRUST_X_FORWARDED_FOR off: whoever sends these headers may be the client itself.
    let app = spawn_app().await;
    let resp = verify(&app, None, &navigation("/private")).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(
        header(&resp, "location"),
        Some("/login"),
        "no returnTo from an untrusted peer"
    );
    // Nor does it believe the method: this GET is a navigation.
    let mut post = navigation("/private");
    post.push(("x-forwarded-method", "POST"));
    post.retain(|h| *h != ("x-forwarded-method", "GET"));
    let resp = verify(&app, None, &post).await;
    assert_eq!(resp.status(), 302);
    let resp = verify(
        &app,
        None,
        &[("accept", HTML), ("x-original-url", "http://a.example/x")],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(header(&resp, "location"), Some("/login"));
}

/// Calls of each Redis command since the last reset, without the test's own.
async fn command_counts(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.strip_prefix("calls=")?.split(',').next()?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .filter(|(name, _)| {
            let command = name.split('|').next().unwrap_or_default();
            !matches!(
                command,
                "info" | "config" | "ping" | "client" | "hello" | "select"
            )
        })
        .collect()
}

#[tokio::test]
async fn verify_costs_one_store_read_like_auth_me() {
    // A private server, so other tests' commands do not mix into the statistics.
    let redis = RedisServer::start(&[]);
    let app = spawn_app_with(AppOptions::default().var("REDIS_URL", &redis.url())).await;
    let (c, cookie) = app.signed_up_client("cost@example.com").await;
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The sign-up's audit events (user.signed_up, email.verification_sent, session.created)
    // reach the live feed (a stream) in the background, in order: let the last of them land
    // before counting, or its XADD lands in the middle of the measurement.
    let feed = format!("{}events", app.redis_prefix);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !redis::cmd("XREVRANGE")
        .arg(&feed)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async::<Vec<(String, Vec<String>)>>(&mut conn)
        .await
        .unwrap()
        .iter()
        .any(|(_, fields)| fields.iter().any(|f| f.contains("session.created")))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the sign-up never reached the feed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    command_counts(&mut conn).await;
    assert_eq!(app.me(&c).await.0, 200);
    let me = command_counts(&mut conn).await;
    assert_eq!(verify(&app, Some(&cookie), &[]).await.status(), 200);
    let verified = command_counts(&mut conn).await;
    assert_eq!(me, BTreeMap::from([("get".to_string(), 1)]));
    assert_eq!(verified, me);
}

// --- Backends that check a session themselves ------------------------------------------------

per_backend!(a_backend_checking_every_request_with_x_auth_passive_never_signs_the_user_out);
async fn a_backend_checking_every_request_with_x_auth_passive_never_signs_the_user_out(backend: Backend) {
    // Defaults: rotation every 15 minutes, 60 s grace, 30 minutes idle.
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let (browser, cookie) = app.signed_up_client("backend@example.com").await;
    // The backend forwards the browser's cookie to authauth on every request it serves, for
    // 45 minutes — past the rotation interval plus grace, and past the idle timeout — and the
    // browser never talks to authauth itself. Whatever authauth answered would go nowhere.
    for minute in 1..=45 {
        app.advance(MINUTE);
        let path = if minute % 2 == 0 {
            "/auth/me"
        } else {
            "/auth/verify"
        };
        let resp = bare()
            .get(app.url(path))
            .header("cookie", format!("{}={cookie}", app.cookie_name()))
            .header("x-auth-passive", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "{backend:?}: signed out after {minute} min ({path})"
        );
        assert!(
            resp.headers().get("set-cookie").is_none(),
            "{backend:?}: a passive check set a cookie it cannot deliver ({path}, {minute} min)"
        );
    }
    // The browser's own next request rotates, and hands it the new cookie.
    let resp = browser.get(app.url("/auth/me")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let successor = set_cookie_value(&resp, app.cookie_name()).expect("the browser's own request rotates");
    assert_ne!(successor, cookie);
    app.advance(2 * MINUTE);
    let check = |cookie: String| {
        let app = &app;
        async move {
            bare()
                .get(app.url("/auth/me"))
                .header("cookie", format!("{}={cookie}", app.cookie_name()))
                .header("x-auth-passive", "1")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(check(successor).await, 200, "{backend:?}");
    assert_eq!(
        check(cookie).await,
        401,
        "{backend:?}: the old token ends with its grace"
    );
}

#[tokio::test]
async fn without_x_auth_passive_a_backend_that_drops_the_rotated_cookie_signs_the_user_out() {
    // Why the header exists: what a backend that does not send it does to its users.
    let app = spawn_app().await;
    let (_, cookie) = app.signed_up_client("dropped@example.com").await;
    let mut signed_out_at = None;
    for minute in 1..=20 {
        app.advance(MINUTE);
        let resp = app.get_with_cookie("/auth/me", &cookie).await;
        if resp.status() == 401 {
            signed_out_at = Some(minute);
            break;
        }
    }
    assert_eq!(signed_out_at, Some(16), "rotated at 15 min, grace over at 16");
}

// --- Through real nginx and Caddy ---------------------------------------------------------------

/// One test per proxy: `per_proxy!(name);` next to `async fn name(kind: ProxyKind)` runs it as
/// `name::nginx` and `name::caddy`.
macro_rules! per_proxy {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn nginx() {
                super::$name(crate::helpers::ProxyKind::Nginx).await
            }

            #[tokio::test]
            async fn caddy() {
                super::$name(crate::helpers::ProxyKind::Caddy).await
            }
        }
    };
}

/// authauth, the echo application and `kind` in front of both, as the example configures it.
struct Site {
    app: TestApp,
    proxy: Proxy,
    _upstream: Upstream,
}

impl Site {
    async fn start(kind: ProxyKind) -> Site {
        let app = spawn_app_with(behind_a_proxy()).await;
        let upstream = Upstream::start().await;
        let proxy = Proxy::start(kind, app.port, upstream.port);
        Site {
            app,
            proxy,
            _upstream: upstream,
        }
    }

    /// A browser (cookie jar) signed in through the proxy, with its session cookie.
    async fn signed_in_browser(&self, email: &str) -> (reqwest::Client, String) {
        self.app.signed_up_client(email).await;
        let browser = client();
        let resp = self.sign_in(&browser, email).await;
        assert_eq!(resp.status(), 200, "{}", self.proxy.log());
        let cookie = set_cookie_value(&resp, self.app.cookie_name()).unwrap();
        (browser, cookie)
    }

    async fn sign_in(&self, browser: &reqwest::Client, email: &str) -> reqwest::Response {
        browser
            .post(self.proxy.url("/auth/login"))
            .header("origin", self.proxy.origin())
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
    }

    /// What the application received, when the proxy let the request through.
    async fn upstream_saw(resp: reqwest::Response) -> Option<Value> {
        if resp.status() != 200 {
            return None;
        }
        let body: Value = resp.json().await.ok()?;
        body.get("headers").is_some().then_some(body)
    }
}

/// The one value of `name` the application received.
fn received(echo: &Value, name: &str) -> Option<String> {
    let values = echo["headers"][name].as_array()?;
    assert_eq!(
        values.len(),
        1,
        "{name} arrived {} times: {values:?}",
        values.len()
    );
    values[0].as_str().map(str::to_string)
}

per_proxy!(without_a_session_the_browser_signs_in_and_comes_back_with_identity_headers);
async fn without_a_session_the_browser_signs_in_and_comes_back_with_identity_headers(kind: ProxyKind) {
    let site = Site::start(kind).await;
    site.app.signed_up_client("visitor@example.com").await;
    let browser = client();
    let page = "/reports/q3?year=2026&team=a%20b";

    // A page without a session: to the sign-in page, with the way back.
    let resp = browser
        .get(site.proxy.url(page))
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "{kind:?}: {}", site.proxy.log());
    let location = header(&resp, "location").unwrap().to_string();
    assert!(location.starts_with("/login?returnTo="), "{kind:?}: {location}");
    assert_eq!(return_to(&location).as_deref(), Some(page), "{kind:?}");
    // The sign-in page is served by authauth itself, not guarded (no redirect loop).
    let resp = browser
        .get(site.proxy.url(&location))
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().contains_key("x-request-id"),
        "{kind:?}: not authauth's answer"
    );
    assert!(!resp.status().is_redirection(), "{kind:?}: {}", resp.status());

    // An API call without a session: 401, never the application.
    let resp = browser
        .get(site.proxy.url("/api/data"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{kind:?}");

    // Signing in on the hosted page (through the proxy: same origin), then back where the
    // browser was going.
    let resp = browser
        .post(site.proxy.url("/login"))
        .header("origin", site.proxy.origin())
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("email", "visitor@example.com"),
            ("password", PASSWORD),
            ("returnTo", page),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{kind:?}: {}", site.proxy.log());
    assert_eq!(header(&resp, "location"), Some(page), "{kind:?}");
    let me = browser
        .get(site.proxy.url("/auth/me"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    // The account page and the pages' stylesheet are authauth's too.
    for path in ["/account", "/auth/assets/pages.css"] {
        let resp = browser.get(site.proxy.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{kind:?} {path}");
        assert!(resp.headers().contains_key("x-request-id"), "{kind:?} {path}");
    }
    let resp = browser
        .get(site.proxy.url(page))
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    let echo = Site::upstream_saw(resp).await.expect("the application answers");
    assert_eq!(echo["uri"], page, "{kind:?}");
    assert_eq!(
        received(&echo, "x-auth-user-id").as_deref(),
        me["user"]["id"].as_str()
    );
    assert_eq!(
        received(&echo, "x-auth-email").as_deref(),
        Some("visitor@example.com")
    );
    assert_eq!(received(&echo, "x-auth-name").as_deref(), Some("Test User"));
    assert_eq!(
        received(&echo, "x-auth-session-id").as_deref(),
        me["session"]["id"].as_str()
    );
}

per_proxy!(a_session_revoked_from_the_cli_is_refused_on_the_next_proxied_request);
async fn a_session_revoked_from_the_cli_is_refused_on_the_next_proxied_request(kind: ProxyKind) {
    let site = Site::start(kind).await;
    let (browser, _) = site.signed_in_browser("revoked@example.com").await;
    let resp = browser.get(site.proxy.url("/inbox")).send().await.unwrap();
    let echo = Site::upstream_saw(resp).await.expect("signed in");
    let id = received(&echo, "x-auth-session-id").unwrap();

    let out = cli(
        &site.app,
        &["sessions", "revoke", &id, "--yes", "--reason", "laptop stolen"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let resp = browser
        .get(site.proxy.url("/inbox"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "{kind:?}: the revoked session still reaches the application"
    );
    let resp = browser
        .get(site.proxy.url("/inbox"))
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "{kind:?}");
    assert_eq!(header(&resp, "location"), Some("/login?returnTo=/inbox"));
}

per_proxy!(a_rotation_during_a_proxied_request_reaches_the_browser);
async fn a_rotation_during_a_proxied_request_reaches_the_browser(kind: ProxyKind) {
    let site = Site::start(kind).await;
    let (browser, first) = site.signed_in_browser("rotated@example.com").await;
    // Past the rotation interval: the next check rotates, inside the proxy's sub-request.
    site.app.advance(16 * MINUTE);
    let resp = browser.get(site.proxy.url("/dashboard")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{kind:?}: {}", site.proxy.log());
    let successor = set_cookie_value(&resp, site.app.cookie_name())
        .unwrap_or_else(|| panic!("{kind:?}: the rotated cookie did not reach the browser"));
    assert_ne!(successor, first);
    assert!(
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v == "app=1; Path=/"),
        "{kind:?}: the application's own cookie is kept"
    );
    assert!(Site::upstream_saw(resp).await.is_some());

    // Past the grace period, only the successor works: the browser has it.
    site.app.advance(2 * MINUTE);
    let resp = browser.get(site.proxy.url("/dashboard")).send().await.unwrap();
    assert!(
        Site::upstream_saw(resp).await.is_some(),
        "{kind:?}: the browser lost its session"
    );
    let old = bare()
        .get(site.proxy.url("/dashboard"))
        .header("cookie", format!("{}={first}", site.app.cookie_name()))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401, "{kind:?}");
}

per_proxy!(a_client_supplied_identity_header_never_reaches_the_upstream);
async fn a_client_supplied_identity_header_never_reaches_the_upstream(kind: ProxyKind) {
    let site = Site::start(kind).await;
    let forged = [
        ("X-Auth-User-Id", "00000000-0000-0000-0000-000000000000"),
        ("x-auth-user-id", "11111111-1111-1111-1111-111111111111"),
        ("X-Auth-Email", "admin@example.com"),
        ("X-Auth-Name", "Administrator"),
        ("X-Auth-Session-Id", "sforged"),
        // The assurance level an application checks for a second factor, and the methods.
        ("X-Auth-AAL", "2"),
        ("X-Auth-AMR", "pwd otp"),
        // CGI-style servers (WSGI, PHP, Rack) file both spellings under HTTP_X_AUTH_USER_ID.
        ("X_Auth_User_Id", "22222222-2222-2222-2222-222222222222"),
        ("X_Auth_Email", "admin@example.com"),
    ];
    let send = |client: &reqwest::Client| {
        let mut req = client
            .get(site.proxy.url("/admin"))
            .header("accept", "application/json");
        for (name, value) in forged {
            req = req.header(name, value);
        }
        req.send()
    };

    // Without a session the request never reaches the application at all.
    let resp = send(&bare()).await.unwrap();
    assert_eq!(resp.status(), 401, "{kind:?}");

    // With one, the application sees authauth's values only, each once.
    let (browser, _) = site.signed_in_browser("real@example.com").await;
    let echo = Site::upstream_saw(send(&browser).await.unwrap())
        .await
        .expect("signed in");
    let me = site.app.me(&browser).await.1;
    assert_eq!(
        received(&echo, "x-auth-user-id").as_deref(),
        me["user"]["id"].as_str(),
        "{kind:?}"
    );
    assert_eq!(
        received(&echo, "x-auth-email").as_deref(),
        Some("real@example.com"),
        "{kind:?}"
    );
    assert_eq!(
        received(&echo, "x-auth-name").as_deref(),
        Some("Test User"),
        "{kind:?}"
    );
    assert_eq!(
        received(&echo, "x-auth-session-id").as_deref(),
        me["session"]["id"].as_str(),
        "{kind:?}"
    );
    assert_eq!(received(&echo, "x-auth-aal").as_deref(), Some("1"), "{kind:?}");
    assert_eq!(received(&echo, "x-auth-amr").as_deref(), Some("pwd"), "{kind:?}");
    let lookalikes: Vec<&String> = echo["headers"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|name| name.starts_with("x_auth") || name.starts_with("x-auth_"))
        .collect();
    assert!(lookalikes.is_empty(), "{kind:?} passed on {lookalikes:?}");
}

per_proxy!(the_application_gets_the_browsers_cookies_but_never_the_session_token);
async fn the_application_gets_the_browsers_cookies_but_never_the_session_token(kind: ProxyKind) {
    let site = Site::start(kind).await;
    let (_, token) = site.signed_in_browser("cookies@example.com").await;
    let name = site.app.cookie_name();
    let resp = bare()
        .get(site.proxy.url("/notes"))
        // The session cookie twice (a browser may hold it under two paths): both go.
        .header(
            "cookie",
            format!("theme=dark; {name}={token}; lang=en; {name}={token}"),
        )
        .send()
        .await
        .unwrap();
    let echo = Site::upstream_saw(resp).await.expect("signed in");
    let cookie = received(&echo, "cookie").expect("the application's own cookies");
    assert!(
        cookie.contains("theme=dark") && cookie.contains("lang=en"),
        "{kind:?}: {cookie}"
    );
    assert!(
        !cookie.contains(&token),
        "{kind:?} passed the session token on: {cookie}"
    );
}

per_proxy!(every_hosted_page_is_answered_by_authauth_never_the_application);
async fn every_hosted_page_is_answered_by_authauth_never_the_application(kind: ProxyKind) {
    // Signed in, so a page the proxy checks like the application's would reach the echo.
    let site = Site::start(kind).await;
    let (browser, _) = site.signed_in_browser("pages@example.com").await;
    // Signing out last: a page after it would be refused by the check whichever way it went.
    let mut routes: Vec<_> = authauth::pages::ROUTES.iter().collect();
    routes.sort_by_key(|(path, _)| *path == "/logout");
    for (path, methods) in routes {
        let path = path.replace(":id", "s0000000000000000000000");
        let method = if methods.contains(&poem::http::Method::GET) {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
        let resp = browser
            .request(method.clone(), site.proxy.url(&format!("{path}?token=t")))
            .header("accept", HTML)
            .header("origin", site.proxy.origin())
            .header("content-type", "application/x-www-form-urlencoded")
            .body("")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let echo = Site::upstream_saw(resp).await;
        assert!(
            echo.is_none(),
            "{kind:?}: {method} {path} went to the application ({status}): {echo:?}"
        );
    }
}

#[tokio::test]
async fn the_readmes_nginx_lines_sign_a_browser_in_and_pass_the_user_on() {
    // The README's snippet, in a server block with the two upstreams it names.
    let readme = include_str!("../../README.md");
    let snippet = readme
        .split("```nginx\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README shows an nginx block");
    let site = format!(
        "upstream authauth {{ server 127.0.0.1:3000; }}\nupstream app {{ server 127.0.0.1:8000; }}\n\
         server {{\n    listen 80;\n{snippet}}}\n"
    );
    let app = spawn_app_with(behind_a_proxy()).await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start_with(ProxyKind::Nginx, &site, app.port, upstream.port);
    app.signed_up_client("readme@example.com").await;

    let browser = client();
    let resp = browser
        .get(proxy.url("/notes?id=7"))
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "{}", proxy.log());
    assert_eq!(header(&resp, "location"), Some("/login?returnTo=/notes%3Fid%3D7"));
    // The address is nginx's to give: a client naming its own is not believed.
    let resp = browser
        .post(proxy.url("/auth/login"))
        .header("origin", proxy.origin())
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({"email": "readme@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let me: Value = resp.json().await.unwrap();
    let this = current_session(&browser, &proxy.url("/auth/sessions")).await;
    assert_eq!(this["ip"], "127.0.0.1", "{this}");
    let resp = browser
        .get(proxy.url("/notes?id=7"))
        .header("x-auth-user-id", "00000000-0000-0000-0000-000000000000")
        .header("x-auth-email", "admin@example.com")
        .header("x-auth-aal", "2")
        .send()
        .await
        .unwrap();
    let echo = Site::upstream_saw(resp).await.expect("signed in");
    assert_eq!(
        received(&echo, "x-auth-user-id").as_deref(),
        me["user"]["id"].as_str()
    );
    assert_eq!(
        received(&echo, "x-auth-email").as_deref(),
        Some("readme@example.com")
    );
    assert_eq!(received(&echo, "x-auth-aal").as_deref(), Some("1"));

    app.advance(16 * MINUTE);
    let resp = browser.get(proxy.url("/notes?id=7")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        set_cookie_value(&resp, app.cookie_name()).is_some(),
        "the rotation reaches the browser"
    );
}
