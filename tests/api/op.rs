//! A real OpenID provider for the tests: `oidc-provider` (OpenID Certified) run by
//! `tests/oidc/provider.mjs`, driven like a browser would (cookie jar, no auto-redirects).

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};

use crate::helpers::*;

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Installs the provider's npm dependencies once (`npm ci`), if missing.
fn ensure_npm() {
    npm_ci_once("oidc", "oidc-provider", "the OpenID provider used by the tests");
}

/// A running provider.
pub struct Op {
    child: Option<Child>,
    pub issuer: String,
    pub port: u16,
    env: Vec<(String, String)>,
}

impl Op {
    /// The run's provider, started by the first test that asks: tests keep apart by
    /// registering their own client (with its own fault, if any) and signing in their own
    /// people (random `sub`s). Starting a provider costs half a CPU-second.
    pub fn shared() -> &'static Op {
        static SHARED: std::sync::OnceLock<Op> = std::sync::OnceLock::new();
        SHARED.get_or_init(Op::start)
    }

    /// A provider of the test's own: for tests that stop, restart or configure it.
    pub fn start() -> Op {
        Op::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Op {
        let mut op = Op {
            child: None,
            issuer: String::new(),
            port: 0,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        op.launch();
        op
    }

    fn launch(&mut self) {
        ensure_npm();
        let mut cmd = Command::new("node");
        cmd.arg("provider.mjs")
            .current_dir(oidc_dir())
            .env("OP_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // Tied to the test process: a killed run leaves no provider behind.
        let mut child = spawn_tied(cmd, libc::SIGTERM).expect("node must be installed");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the OpenID provider did not start");
        let issuer = line
            .trim()
            .strip_prefix("READY ")
            .expect("READY line")
            .to_string();
        self.port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        self.issuer = issuer;
        self.child = Some(child);
    }

    /// Stops the provider (its port stays reserved for `restart`).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port, with the same environment (new keys unless
    /// `OP_JWKS_FILE` is set).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Registers a client (RFC 7591) whose answers misbehave as `fault` says ("" for none).
    pub async fn register(&self, redirect_uri: &str, fault: &str) -> (String, String) {
        let resp = reqwest::Client::new()
            .post(self.url("/reg"))
            .json(&json!({
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
                "x_fault": fault,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "registration failed: {}",
            resp.text().await.unwrap()
        );
        let body: Value = resp.json().await.unwrap();
        (
            body["client_id"].as_str().unwrap().to_string(),
            body["client_secret"].as_str().unwrap().to_string(),
        )
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Who signs in at the provider.
#[derive(Clone, Debug)]
pub struct Person {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
}

impl Person {
    pub fn new(email: &str) -> Person {
        Person {
            sub: format!("sub-{}", uuid::Uuid::new_v4().simple()),
            email: email.to_string(),
            email_verified: true,
            name: "Provider Person".into(),
        }
    }

    pub fn unverified(mut self) -> Person {
        self.email_verified = false;
        self
    }
}

/// An app with Google sign-in pointed at `op`, its client registered with `fault`.
pub async fn google_app(op: &Op, fault: &str, opts: AppOptions) -> TestApp {
    // The callback URL names the port, so the app cannot take port 0; another test may take
    // the free port before the app binds it: then pick another.
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let callback = format!("http://127.0.0.1:{port}/auth/google/callback");
        let (id, secret) = op.register(&callback, fault).await;
        let attempt = opts
            .clone()
            .var("PORT", &port.to_string())
            .var("GOOGLE_CLIENT_ID", &id)
            .var("GOOGLE_CLIENT_SECRET", &secret)
            .var("GOOGLE_CALLBACK_URL", &callback)
            .var("GOOGLE_ISSUER_URL", &op.issuer)
            .var("GOOGLE_HTTP_TIMEOUT", "2s");
        match try_spawn_app_with(attempt).await {
            Ok(app) => return app,
            Err(e) if e.contains("Address already in use") => last = e,
            Err(e) => panic!("the app starts: {e}"),
        }
    }
    panic!("no free port for the app in five attempts: {last}")
}

fn location(resp: &reqwest::Response, base: &str) -> String {
    let loc = resp
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location ({})", resp.status()));
    let loc = loc.to_str().unwrap();
    if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        loc.to_string()
    }
}

/// `GET /auth/google?returnTo=…` on `c`: the provider URL authauth redirects to.
pub async fn begin(app: &TestApp, c: &reqwest::Client, return_to: Option<&str>) -> String {
    let mut url = url::Url::parse(&app.url("/auth/google")).unwrap();
    if let Some(r) = return_to {
        url.query_pairs_mut().append_pair("returnTo", r);
    }
    let resp = c.get(url).send().await.unwrap();
    assert_eq!(
        resp.status(),
        303,
        "start: {}",
        resp.text().await.unwrap_or_default()
    );
    location(&resp, &app.address)
}

/// Signs `person` in at the provider (or cancels when `person` is `None`), following the
/// provider's redirects; returns the callback URL the provider sends the browser to.
pub async fn at_provider(
    op: &Op,
    c: &reqwest::Client,
    authorization_url: &str,
    person: Option<&Person>,
) -> String {
    let resp = c.get(authorization_url).send().await.unwrap();
    assert_eq!(
        resp.status(),
        303,
        "authorization endpoint: {}",
        resp.text().await.unwrap_or_default()
    );
    let interaction = location(&resp, &op.issuer);
    if !interaction.starts_with(&op.issuer) {
        // This browser is still signed in at the provider: straight back to the application.
        return interaction;
    }
    assert!(interaction.contains("/interaction/"), "{interaction}");
    let resp = match person {
        Some(p) => c
            .post(format!("{interaction}/login"))
            .form(&[
                ("sub", p.sub.as_str()),
                ("email", p.email.as_str()),
                ("email_verified", if p.email_verified { "true" } else { "false" }),
                ("name", p.name.as_str()),
            ])
            .send()
            .await
            .unwrap(),
        None => c.post(format!("{interaction}/abort")).send().await.unwrap(),
    };
    assert_eq!(
        resp.status(),
        303,
        "interaction: {}",
        resp.text().await.unwrap_or_default()
    );
    let mut next = location(&resp, &op.issuer);
    // Follow the provider's own redirects until it sends the browser elsewhere.
    for _ in 0..5 {
        if !next.starts_with(&op.issuer) {
            return next;
        }
        let resp = c.get(&next).send().await.unwrap();
        assert_eq!(
            resp.status(),
            303,
            "provider redirect: {}",
            resp.text().await.unwrap_or_default()
        );
        next = location(&resp, &op.issuer);
    }
    panic!("the provider kept redirecting to itself");
}

/// A whole sign-in on `c`: start, provider login, callback. Returns the callback's response.
pub async fn google_login(
    app: &TestApp,
    op: &Op,
    c: &reqwest::Client,
    person: &Person,
    return_to: Option<&str>,
) -> reqwest::Response {
    let auth = begin(app, c, return_to).await;
    let callback = at_provider(op, c, &auth, Some(person)).await;
    assert!(
        callback.starts_with(&app.url("/auth/google/callback")),
        "{callback}"
    );
    c.get(callback).send().await.unwrap()
}

/// How many users have this e-mail, straight from the database.
pub async fn users_with_email(app: &TestApp, email: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let conn = Database::connect(&app.vars["DATABASE_URL"]).await.unwrap();
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            match conn.get_database_backend() {
                sea_orm::DatabaseBackend::Postgres => {
                    "SELECT COUNT(*) AS n FROM users WHERE lower(email) = lower($1)"
                }
                _ => "SELECT COUNT(*) AS n FROM users WHERE lower(email) = lower(?)",
            },
            [email.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    conn.close().await.ok();
    n
}
