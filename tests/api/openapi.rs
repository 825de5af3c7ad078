//! The OpenAPI spec tells the truth: what it documents is what the server does — the methods of
//! each path, the statuses each operation can answer, the limits of each field, which operations
//! need a session — and its examples teach.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

fn spec() -> Value {
    serde_json::from_str(&authauth::api::spec_json()).unwrap()
}

/// Every operation of the spec: `(path, method, operation)`.
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((path.clone(), method.clone(), op.clone()));
        }
    }
    ops
}

/// A schema, following a `$ref` into `components`.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &spec["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

/// The schema of the JSON body of an operation.
fn body_schema<'a>(spec: &'a Value, path: &str, method: &str) -> &'a Value {
    let content = &spec["paths"][path][method]["requestBody"]["content"];
    let media = content
        .as_object()
        .and_then(|c| c.values().next())
        .unwrap_or_else(|| panic!("{method} {path} has no body"));
    resolve(spec, &media["schema"])
}

fn property<'a>(spec: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    resolve(spec, &body_schema(spec, path, method)["properties"][name])
}

const PROBES: [&str; 2] = ["/health", "/ready"];

/// What every operation documents, whatever its handler does: the errors the middleware, the
/// framework and the session store can answer with before or around any handler.
fn errors_that_reach(path: &str, method: &str, op: &Value) -> Vec<(u16, &'static str)> {
    let mut expected = vec![(500, "internal_error")];
    if !PROBES.contains(&path) {
        expected.extend([
            (400, "host_not_allowed"),
            (503, "session_store_unavailable"),
            (503, "server_busy"),
        ]);
    }
    if matches!(method, "post" | "put" | "patch" | "delete") {
        expected.extend([
            (400, "invalid_request"),
            (403, "csrf_rejected"),
            (408, "request_timeout"),
            (413, "payload_too_large"),
            (415, "unsupported_media_type"),
        ]);
    }
    if op.get("requestBody").is_some() {
        expected.extend([(400, "invalid_request"), (415, "unsupported_media_type")]);
    }
    if op.get("parameters").is_some() {
        expected.push((400, "invalid_request"));
    }
    let security = op["security"].as_array().cloned().unwrap_or_default();
    let needs_session = !security.is_empty()
        && security
            .iter()
            .all(|req| req.as_object().is_some_and(|r| !r.is_empty()));
    if needs_session {
        expected.extend([
            (401, "no_session"),
            (401, "session_expired"),
            (401, "session_revoked"),
            (401, "ambiguous_session"),
        ]);
    }
    expected
}

#[test]
fn every_operation_documents_the_errors_that_can_reach_it() {
    let spec = spec();
    let mut missing = Vec::new();
    for (path, method, op) in operations(&spec) {
        for (status, code) in errors_that_reach(&path, &method, &op) {
            let response = &op["responses"][status.to_string()];
            let documented = response["description"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("`{code}`")));
            if !documented {
                missing.push(format!("{method} {path}: {status} `{code}`"));
                continue;
            }
            let schema = resolve(
                &spec,
                &response["content"]["application/json; charset=utf-8"]["schema"],
            );
            assert!(
                schema["properties"]["error"].is_object(),
                "{method} {path}: {status} is not the error body"
            );
        }
    }
    assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
}

#[test]
fn documented_throttling_and_busy_answers_name_retry_after() {
    let spec = spec();
    for (path, method, op) in operations(&spec) {
        for status in ["429", "503"] {
            let Some(response) = op["responses"].get(status) else {
                continue;
            };
            let description = response["description"].as_str().unwrap_or_default();
            if description.contains("`too_many_attempts`") || description.contains("`server_busy`") {
                assert!(
                    response["headers"]["Retry-After"].is_object(),
                    "{method} {path}: {status} without a documented Retry-After"
                );
            }
        }
    }
}

/// A path of the spec with its parameters filled in (a well-formed session id).
fn concrete(path: &str) -> String {
    path.replace("{id}", "AAAAAAAAAAAAAAAAAAAAAAAA")
}

fn allow_header(resp: &reqwest::Response) -> Option<BTreeSet<String>> {
    let allow = resp.headers().get("allow")?.to_str().ok()?;
    Some(
        allow
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .collect(),
    )
}

#[tokio::test]
async fn a_method_a_path_does_not_support_is_405_with_allow_naming_the_ones_it_does() {
    let app = spawn_app().await;
    let spec: Value = app.get("/openapi.json").await.json().await.unwrap();
    let mut paths: Vec<(String, BTreeSet<String>)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .map(|m| m.to_ascii_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect();
    // `GET /` (a redirect to the docs) is not in the spec, and answers 405 all the same.
    paths.push(("/".into(), BTreeSet::from(["GET".to_string()])));

    let candidates = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
    ];
    let mut checked = 0;
    for (path, declared) in paths {
        let mut allowed = declared.clone();
        // HEAD is answered wherever GET is (RFC 9110 §9.3.2).
        if declared.contains("GET") {
            allowed.insert("HEAD".into());
        }
        for method in candidates.iter().filter(|m| !allowed.contains(**m)) {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let resp = client()
                .request(method.clone(), app.url(&concrete(&path)))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 405, "{method} {path}");
            assert_eq!(
                allow_header(&resp).as_ref(),
                Some(&allowed),
                "{method} {path}: Allow"
            );
            if method != Method::HEAD {
                assert!(resp.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json"));
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["error"], "method_not_allowed", "{method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} wrong methods tried");
}

#[tokio::test]
async fn logout_without_a_live_session_is_a_no_op_that_still_clears_the_cookie() {
    let app = spawn_app().await;
    // No cookie at all: there is nothing to end.
    let resp = client().post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(set_cookie_header(&resp, app.cookie_name()).is_some_and(|c| c.contains("Max-Age=0")));

    // A cookie whose session already ended: a second logout (another tab, a retried request).
    let (c, cookie) = app.signed_up_client("twice@example.com").await;
    assert_eq!(
        c.post(app.url("/auth/logout")).send().await.unwrap().status(),
        204
    );
    let resp = client()
        .post(app.url("/auth/logout"))
        .header("cookie", format!("{}={cookie}", app.cookie_name()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(set_cookie_header(&resp, app.cookie_name()).is_some_and(|c| c.contains("Max-Age=0")));

    // The spec says so: the cookie is optional for logout, and required where it is needed.
    let spec = spec();
    let security = |path: &str| spec["paths"][path]["post"]["security"].clone();
    assert!(
        security("/auth/logout")
            .as_array()
            .is_some_and(|s| s.contains(&json!({})) && s.contains(&json!({"sessionCookie": []}))),
        "{}",
        security("/auth/logout")
    );
    assert_eq!(security("/auth/logout-all"), json!([{"sessionCookie": []}]));
}

#[tokio::test]
async fn logout_ends_every_live_session_the_browser_presents() {
    let app = spawn_app().await;
    let (a, cookie_a) = app.signed_up_client("first@example.com").await;
    let (b, cookie_b) = app.signed_up_client("second@example.com").await;
    let name = app.cookie_name().to_string();
    // Two live session cookies in one request (one planted by a sibling subdomain, say): no
    // session can be picked for `/auth/me`, but signing out of both is safe and is what the
    // browser asked for.
    let resp = client()
        .post(app.url("/auth/logout"))
        .header("cookie", format!("{name}={cookie_a}; {name}={cookie_b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.me(&a).await.0, 401);
    assert_eq!(app.me(&b).await.0, 401);
}

#[tokio::test]
async fn request_fields_state_the_limits_the_server_enforces() {
    let spec = spec();
    let min = authauth::auth::password::MIN_CHARS;
    let max = authauth::auth::password::MAX_CHARS;
    for (path, field, lengths) in [
        ("/auth/signup", "password", (min, max)),
        ("/auth/password", "newPassword", (min, max)),
        // Sign-in checks a stored password: no rule for new passwords applies, only the bound.
        ("/auth/login", "password", (1, max)),
        ("/auth/password", "currentPassword", (1, max)),
    ] {
        let p = property(&spec, path, "post", field);
        assert_eq!(p["format"], "password", "{path} {field}");
        assert_eq!(p["minLength"], lengths.0, "{path} {field}");
        assert_eq!(p["maxLength"], lengths.1, "{path} {field}");
    }
    for path in ["/auth/signup", "/auth/login"] {
        let email = property(&spec, path, "post", "email");
        assert_eq!(email["format"], "email", "{path}");
        assert_eq!(email["minLength"], 3, "{path}");
        assert_eq!(email["maxLength"], authauth::users::EMAIL_MAX_CHARS, "{path}");
    }
    let name = property(&spec, "/auth/signup", "post", "fullName");
    assert_eq!(name["minLength"], 1);
    assert_eq!(name["maxLength"], authauth::users::NAME_MAX_CHARS);
    assert_eq!(name["pattern"], authauth::api::fields::FULL_NAME_PATTERN);
    let id = &spec["paths"]["/auth/sessions/{id}"]["delete"]["parameters"][0];
    assert_eq!(id["name"], "id");
    assert_eq!(
        id["schema"]["pattern"],
        authauth::session::record::PUBLIC_ID_PATTERN
    );

    let app = spawn_app().await;
    let signup = |email: &str, password: &str, name: &str| json!({"email": email, "password": password, "fullName": name});
    let long_email = format!("{}@example.com", "a".repeat(243));
    assert_eq!(long_email.chars().count(), 255);
    let refused = [
        ("/auth/signup", signup("", PASSWORD, "Ada")),
        ("/auth/signup", signup("a@", PASSWORD, "Ada")),
        ("/auth/signup", signup(&long_email, PASSWORD, "Ada")),
        (
            "/auth/signup",
            signup("ada@example.com", &"p".repeat(min - 1), "Ada"),
        ),
        (
            "/auth/signup",
            signup("ada@example.com", &"p".repeat(max + 1), "Ada"),
        ),
        ("/auth/signup", signup("ada@example.com", PASSWORD, "")),
        (
            "/auth/signup",
            signup("ada@example.com", PASSWORD, " \u{3000}\t "),
        ),
        ("/auth/signup", signup("ada@example.com", PASSWORD, "Ada\u{7}")),
        (
            "/auth/signup",
            signup("ada@example.com", PASSWORD, &"n".repeat(201)),
        ),
        ("/auth/login", json!({"email": "", "password": PASSWORD})),
        ("/auth/login", json!({"email": "ada@example.com", "password": ""})),
        (
            "/auth/login",
            json!({"email": "ada@example.com", "password": "p".repeat(max + 1)}),
        ),
    ];
    for (path, body) in refused {
        let resp = app.post_json(&client(), path, &body).await;
        let status = resp.status();
        let error: Value = resp.json().await.unwrap();
        assert_eq!(status, 400, "{path} {body}: {error}");
        assert_eq!(error["error"], "invalid_request", "{path} {body}: {error}");
    }

    // The limits themselves are accepted: the longest address, name and password, the
    // shortest password (in emoji: characters, not bytes), a name with spaces around it.
    let longest_email = format!(
        "{}@{}.{}.{}.com",
        "a".repeat(64),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(57)
    );
    assert_eq!(longest_email.chars().count(), 254);
    for (email, password, name) in [
        (longest_email.as_str(), PASSWORD.to_string(), "n".repeat(200)),
        ("emoji@example.com", "🔑".repeat(min), "  Ada Lovelace  ".into()),
        ("long@example.com", "p".repeat(max - 8) + "12345678", "A".into()),
    ] {
        let resp = app
            .post_json(&client(), "/auth/signup", &signup(email, &password, &name))
            .await;
        assert_eq!(resp.status(), 201, "{email}: {}", resp.text().await.unwrap());
    }

    // A session id that cannot be one is refused as such; a well-formed unknown one is not found.
    let (c, _) = app.signed_up_client("ids@example.com").await;
    for (id, status, code) in [
        ("x", 400, "invalid_request"),
        ("AAAAAAAAAAAAAAAAAAAAAAA!", 400, "invalid_request"),
        ("AAAAAAAAAAAAAAAAAAAAAAAAA", 400, "invalid_request"),
        ("sAAAAAAAAAAAAAAAAAAAAAAA!", 400, "invalid_request"),
        ("AAAAAAAAAAAAAAAAAAAAAAAA", 404, "session_not_found"),
        ("sAAAAAAAAAAAAAAAAAAAAAAAA", 404, "session_not_found"),
    ] {
        let resp = c
            .delete(app.url(&format!("/auth/sessions/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{id}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], code, "{id}");
    }
    // What the spec's pattern says is what the server issues.
    let me = app.me(&c).await.1;
    let own = me["session"]["id"].as_str().unwrap();
    assert!(authauth::session::record::is_public_id(own), "{own}");
}

#[test]
fn the_spec_teaches_with_realistic_examples() {
    let spec = spec();
    let example = |path: &str, method: &str| body_schema(&spec, path, method)["example"].clone();
    let signup = example("/auth/signup", "post");
    assert!(
        signup["email"].as_str().unwrap().ends_with("@example.com"),
        "{signup}"
    );
    assert!(!signup["fullName"].as_str().unwrap().is_empty());
    assert!(signup["password"].as_str().unwrap().chars().count() >= authauth::auth::password::MIN_CHARS);
    assert!(example("/auth/login", "post")["email"]
        .as_str()
        .unwrap()
        .contains('@'));
    assert!(example("/auth/password", "post")["newPassword"].is_string());

    let schemas = &spec["components"]["schemas"];
    let session = &schemas["SessionView"]["example"];
    assert!(
        authauth::session::record::is_public_id(session["id"].as_str().unwrap()),
        "{session}"
    );
    assert!(schemas["Me"]["example"]["user"]["email"]
        .as_str()
        .unwrap()
        .contains('@'));
    let error = &schemas["ErrorBody"]["example"];
    assert_eq!(error["error"], "session_revoked", "{error}");
    assert_eq!(error["reason"], "logout", "{error}");
    let id = &spec["paths"]["/auth/sessions/{id}"]["delete"]["parameters"][0];
    assert!(authauth::session::record::is_public_id(
        id["example"]
            .as_str()
            .or(id["schema"]["example"].as_str())
            .unwrap()
    ));
    // Every object the API takes or gives has one, so Swagger UI never falls back to
    // placeholders such as "string". A choice between objects (`oneOf`) is shown by its
    // branches' examples: each branch must have one.
    let has_example = |name: &str| !schemas[name]["example"].is_null();
    let missing: Vec<&String> = schemas
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| match s["oneOf"].as_array() {
            Some(branches) => !branches.iter().all(|b| {
                b["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .is_some_and(has_example)
            }),
            None => s["example"].is_null(),
        })
        .map(|(name, _)| name)
        .collect();
    assert!(missing.is_empty(), "no example: {missing:?}");
}

#[tokio::test]
async fn a_value_of_another_json_type_is_refused_not_converted() {
    let app = spawn_app().await;
    for name in [json!(false), json!(42), json!(null), json!(["Ada"])] {
        let body = json!({"email": "typed@example.com", "password": PASSWORD, "fullName": name});
        let resp = app.post_json(&client(), "/auth/signup", &body).await;
        let status = resp.status();
        let error: Value = resp.json().await.unwrap();
        assert_eq!(status, 400, "fullName: {name}: {error}");
        assert_eq!(error["error"], "invalid_request", "fullName: {name}");
    }
}

#[tokio::test]
async fn an_absent_value_is_left_out_of_a_response_never_sent_as_null() {
    let app = spawn_app().await;
    let (c, _) = app.signed_up_client("nopicture@example.com").await;
    let me = app.me(&c).await.1;
    let user = me["user"].as_object().unwrap();
    assert!(!user.contains_key("picture"), "{me}");
    // The spec calls nothing nullable: absent is how a response says "none".
    assert!(!authauth::api::spec_json().contains("\"nullable\""));
}

/// The status, the headers a client can see (less the per-request id and date) and the body.
async fn answer(resp: reqwest::Response) -> (u16, Vec<(String, String)>, String) {
    let status = resp.status().as_u16();
    let mut headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "x-request-id" | "date"))
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_string()))
        .collect();
    headers.sort();
    (status, headers, resp.text().await.unwrap())
}

/// Operations with a fixed path and no query parameters are called without routing (the edge's
/// direct table); a query string sends the same request through poem's router. Both must be the
/// same operation: same status, headers and body, for a success, a refusal and a validation
/// error — the fast path cannot drift from what the spec documents.
#[tokio::test]
async fn an_operation_answers_the_same_called_directly_or_through_the_router() {
    let app = spawn_app().await;
    let (_, cookie) = app.signed_up_client("direct-or-routed@example.com").await;
    let http = client();
    let me = |suffix: &'static str, with_cookie: bool| {
        let mut req = http
            .get(app.url(&format!("/auth/me{suffix}")))
            .header("x-auth-passive", "1");
        if with_cookie {
            req = req.header("cookie", format!("{}={cookie}", app.cookie_name()));
        }
        req.send()
    };
    let direct = answer(me("", true).await.unwrap()).await;
    assert_eq!(direct.0, 200, "{direct:?}");
    assert_eq!(direct, answer(me("?via=router", true).await.unwrap()).await);
    let direct = answer(me("", false).await.unwrap()).await;
    assert_eq!(direct.0, 401, "{direct:?}");
    assert_eq!(direct, answer(me("?via=router", false).await.unwrap()).await);

    let login = |suffix: &'static str| {
        http.post(app.url(&format!("/auth/login{suffix}")))
            .header("origin", app.origin())
            .json(&json!({"email": "direct-or-routed@example.com"}))
            .send()
    };
    let direct = answer(login("").await.unwrap()).await;
    assert_eq!(direct.0, 400, "{direct:?}");
    assert_eq!(direct, answer(login("?via=router").await.unwrap()).await);
}

/// The headers the server reads from the request itself (the proxy headers of forward auth, the
/// passive check) are documented as optional string header parameters — exactly what
/// `Header<Option<String>>` documented before they stopped being extracted for nothing.
#[test]
fn headers_the_server_reads_itself_are_documented_as_optional_header_parameters() {
    let spec = spec();
    let cases = [
        (
            "/auth/verify",
            &[
                "X-Forwarded-Method",
                "X-Forwarded-Proto",
                "X-Forwarded-Host",
                "X-Forwarded-Uri",
                "X-Original-URL",
                "X-Auth-Passive",
            ][..],
        ),
        ("/auth/me", &["X-Auth-Passive"][..]),
    ];
    for (path, names) in cases {
        let params = spec["paths"][path]["get"]["parameters"].as_array().unwrap();
        let documented: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(documented, names, "{path}");
        for p in params {
            let description = p["description"].as_str().unwrap_or_default();
            assert!(!description.is_empty(), "{path} {p}");
            let mut rest = p.clone();
            let rest = rest.as_object_mut().unwrap();
            rest.remove("name");
            rest.remove("description");
            assert_eq!(
                Value::Object(rest.clone()),
                json!({"schema": {"type": "string"}, "in": "header", "required": false,
                       "deprecated": false, "explode": true}),
                "{path} {p}"
            );
        }
    }
}
