//! The OpenAPI spec tells the truth: what it documents is what the server does — the methods of
//! each path, the statuses each operation can answer, the limits of each field, which operations
//! need a session — and its examples teach.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

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
