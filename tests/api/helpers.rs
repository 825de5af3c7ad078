//! Test harness: spawn the real app on port 0 with its own PostgreSQL database (random name,
//! migrated, dropped afterwards) or its own SQLite file, and its own Redis key prefix (deleted
//! afterwards).
//!
//! PostgreSQL and Redis are the run's own (see `servers`), unless `TEST_POSTGRES_URL` /
//! `TEST_REDIS_URL` point at running ones: then nothing is started for that service.

#![allow(dead_code)]

pub mod proxies;
pub mod servers;

use std::{collections::HashMap, path::PathBuf, process::Output};

use authauth::{clock::Clock, config::Settings, startup::Application, state::AppState};
pub use proxies::{Proxy, ProxyKind, Upstream};
use sea_orm::{ConnectionTrait, Database};
pub use servers::{
    free_port, private_postgres, private_redis, shared_cluster, shared_sentinel, spawn_tied, RedisSentinel,
    RedisServer,
};

/// A test variable, unless unset or empty (`TEST_X= cargo test` means "not set" too).
fn test_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// An admin connection (allowed to create databases): `TEST_POSTGRES_URL`, else the run's own
/// PostgreSQL.
pub fn postgres_admin_url() -> String {
    test_var("TEST_POSTGRES_URL").unwrap_or_else(|| private_postgres().admin_url())
}

/// `TEST_REDIS_URL`, else the run's own Redis.
pub fn redis_url() -> String {
    test_var("TEST_REDIS_URL").unwrap_or_else(|| private_redis().url())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A PostgreSQL database that exists for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        TestDb::create_from(None).await
    }

    /// A database with every migration applied. On the run's own PostgreSQL it is a copy of a
    /// template migrated once per run (a file copy instead of ten migrations); on a server named
    /// by `TEST_POSTGRES_URL`, which must be left as found, each test migrates its own.
    pub async fn migrated() -> TestDb {
        if test_var("TEST_POSTGRES_URL").is_some() {
            let db = TestDb::create().await;
            let conn = Database::connect(&db.url).await.unwrap();
            authauth::db::migrate_up(&conn).await.unwrap();
            conn.close().await.ok();
            return db;
        }
        TestDb::create_from(Some(migrated_template())).await
    }

    async fn create_from(template: Option<&str>) -> TestDb {
        let name = unique("authauth_test_");
        let admin = Database::connect(postgres_admin_url())
            .await
            .expect("connect to the test PostgreSQL (TEST_POSTGRES_URL, or the run's own)");
        let from = template
            .map(|t| format!(" TEMPLATE \"{t}\" STRATEGY FILE_COPY"))
            .unwrap_or_default();
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\"{from}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let mut url = url::Url::parse(&postgres_admin_url()).unwrap();
        url.set_path(&name);
        TestDb {
            name,
            url: url.to_string(),
        }
    }
}

/// The run's migrated template database (on the run's own PostgreSQL only), created by the first
/// test that needs it. Nobody connects to it afterwards, as `CREATE DATABASE … TEMPLATE` requires.
fn migrated_template() -> &'static str {
    static TEMPLATE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        // Tests run on their own runtimes: migrate on a plain thread with a private one.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let db = TestDb::create_from(None).await;
                    let conn = Database::connect(&db.url).await.unwrap();
                    authauth::db::migrate_up(&conn).await.unwrap();
                    conn.close().await.ok();
                    // It lives as long as the run's PostgreSQL.
                    let db = std::mem::ManuallyDrop::new(db);
                    db.name.clone()
                })
        })
        .join()
        .expect("migrate the template database")
    })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context: use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) = Database::connect(postgres_admin_url()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}

/// A directory removed when the test ends (it lives in the run's directory, so it goes with that
/// at the latest).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        TempDir(servers::run_dir("tmp"))
    }

    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}/authauth.sqlite?mode=rwc", self.0.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deletes every Redis key under `prefix`.
pub async fn delete_redis_prefix(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis_keys(&mut conn, prefix).await;
    for chunk in keys.chunks(500) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
    }
}

pub async fn redis_keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("redis SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// One test per backend: `per_backend!(name);` next to `async fn name(backend: Backend)` runs
/// it as `name::postgres_redis` and `name::sqlite`, so a failure names its backend and never
/// hides the other's (a loop over backends stops at the first).
macro_rules! per_backend {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn postgres_redis() {
                super::$name(crate::helpers::Backend::PostgresRedis).await
            }

            #[tokio::test]
            async fn sqlite() {
                super::$name(crate::helpers::Backend::Sqlite).await
            }
        }
    };
}
pub(crate) use per_backend;

/// Which database and session store a test app uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL + Redis: the production layout.
    PostgresRedis,
    /// One SQLite file holding users and sessions: the embedded default.
    Sqlite,
}

pub struct TestApp {
    pub state: AppState,
    pub address: String,
    /// `http://…` of the metrics listener, when the test set `METRICS_ADDR`.
    pub metrics_address: Option<String>,
    pub port: u16,
    /// Keeps cookies, follows no redirects.
    pub client: reqwest::Client,
    pub backend: Backend,
    pub redis_prefix: String,
    pub db: Option<TestDb>,
    pub dir: TempDir,
    pub vars: HashMap<String, String>,
    /// Another instance owns the database and the Redis prefix.
    shared: bool,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

#[derive(Clone)]
pub struct AppOptions {
    pub backend: Backend,
    pub vars: Vec<(String, String)>,
    /// Run as another instance over the same database and Redis prefix as this app.
    pub share_with: Option<(String, String)>,
    /// The clock the app reads; a new adjustable one unless shared with another instance.
    pub clock: Option<Clock>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            backend: Backend::PostgresRedis,
            vars: Vec::new(),
            share_with: None,
            clock: None,
        }
    }
}

impl AppOptions {
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    pub fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_string(), value.to_string()));
        self
    }

    /// A second server instance over `other`'s database and session store, with its signing
    /// secret (a later `var("SESSION_SECRET", …)` replaces it).
    pub fn sharing(mut self, other: &TestApp) -> Self {
        self.backend = other.backend;
        self.vars
            .insert(0, ("SESSION_SECRET".into(), other.vars["SESSION_SECRET"].clone()));
        self.share_with = Some((other.vars["DATABASE_URL"].clone(), other.redis_prefix.clone()));
        self.clock = Some(other.state.clock.clone());
        self
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent("authauth-tests/1.0")
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The argon2id memory the test servers hash with unless a test sets `PASSWORD_HASH_MEMORY_KIB`
/// (with one pass; see [`spawn_app_with`]).
pub const TEST_HASH_MEMORY_KIB: &str = "1024";

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(opts: AppOptions) -> TestApp {
    try_spawn_app_with(opts)
        .await
        .unwrap_or_else(|e| panic!("the app starts: {e}"))
}

/// [`spawn_app_with`], or why the app did not start (e.g. a fixed `PORT` someone else took).
pub async fn try_spawn_app_with(opts: AppOptions) -> Result<TestApp, String> {
    let dir = TempDir::new();
    let redis_prefix = match &opts.share_with {
        Some((_, prefix)) => prefix.clone(),
        None => unique("authauth-test:").chars().take(40).collect::<String>() + ":",
    };
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("PORT".into(), "0".into());
    vars.insert(
        "SESSION_SECRET".into(),
        authauth::session::token::generate_secret(),
    );
    vars.insert("LOG_FORMAT".into(), "text".into());
    let db = match (&opts.share_with, opts.backend) {
        (Some((url, prefix)), backend) => {
            vars.insert("DATABASE_URL".into(), url.clone());
            if backend == Backend::PostgresRedis {
                vars.insert("REDIS_URL".into(), redis_url());
                vars.insert("REDIS_KEY_PREFIX".into(), prefix.clone());
            }
            None
        }
        (None, Backend::PostgresRedis) => {
            let db = TestDb::migrated().await;
            vars.insert("DATABASE_URL".into(), db.url.clone());
            vars.insert("REDIS_URL".into(), redis_url());
            vars.insert("REDIS_KEY_PREFIX".into(), redis_prefix.clone());
            Some(db)
        }
        (None, Backend::Sqlite) => {
            let url = dir.sqlite_url();
            let conn = Database::connect(&url).await.unwrap();
            authauth::db::migrate_up(&conn).await.unwrap();
            conn.close().await.ok();
            vars.insert("DATABASE_URL".into(), url);
            None
        }
    };
    // Mail goes to this app's own outbox unless a test points it at an SMTP server.
    vars.insert(
        "MAIL_OUTBOX_DIR".into(),
        dir.0.join("outbox").display().to_string(),
    );
    // argon2id at a small cost: the suite signs in a thousand times, and at the production cost
    // hashing was its largest CPU item. The code path is the same; tests about the cost itself
    // (the hash format, equal timing for unknown accounts, the upgrade) set their own. Production
    // mode refuses a cost this low, so it keeps the default there.
    let production = opts
        .vars
        .iter()
        .any(|(k, v)| k == "APP_ENV" && v.eq_ignore_ascii_case("production"));
    if !production {
        vars.insert("PASSWORD_HASH_MEMORY_KIB".into(), TEST_HASH_MEMORY_KIB.into());
        vars.insert("PASSWORD_HASH_ITERATIONS".into(), "1".into());
    }
    for (k, v) in opts.vars {
        vars.insert(k, v);
    }
    let settings = Settings::from_vars(&vars).expect("test configuration is valid");
    let clock = opts.clock.unwrap_or_else(Clock::adjustable);
    let app = Application::build_with_clock(settings, clock)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let port = app.port();
    let metrics_address = app.metrics_addr().map(|a| format!("http://{a}"));
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    let shared = opts.share_with.is_some();
    Ok(TestApp {
        state,
        metrics_address,
        shared,
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: client(),
        backend: opts.backend,
        redis_prefix,
        db,
        dir,
        vars,
        shutdown: Some(tx),
        server: Some(server),
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Moves this app's clock (shared with instances started with [`AppOptions::sharing`])
    /// forward: the way tests let time pass.
    pub fn advance(&self, by: std::time::Duration) {
        assert!(
            self.state.clock.advance(by),
            "test apps run on an adjustable clock"
        );
    }

    /// What the app thinks the time is.
    pub fn now(&self) -> i64 {
        self.state.clock.now()
    }

    pub fn cookie_name(&self) -> &str {
        &self.state.settings.session.cookie_name
    }

    /// The origin browsers use for this app: `PUBLIC_URL` when configured, else its address.
    pub fn origin(&self) -> String {
        match &self.state.settings.public_url {
            Some(u) => u.origin().ascii_serialization(),
            None => self.address.clone(),
        }
    }

    /// POST JSON with this app's own origin (a same-origin browser request).
    pub async fn post_json(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        client
            .post(self.url(path))
            .header("origin", self.origin())
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Signs up on `client`; returns the response.
    pub async fn signup_with(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        self.post_json(
            client,
            "/auth/signup",
            &serde_json::json!({"email": email, "password": password, "fullName": "Test User"}),
        )
        .await
    }

    pub async fn login_with(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        self.post_json(
            client,
            "/auth/login",
            &serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    /// A new account signed in on a fresh cookie-keeping client: `(client, cookie value)`.
    pub async fn signed_up_client(&self, email: &str) -> (reqwest::Client, String) {
        let c = client();
        let resp = self.signup_with(&c, email, PASSWORD).await;
        assert_eq!(
            resp.status(),
            201,
            "signup failed: {}",
            resp.text().await.unwrap()
        );
        let cookie = set_cookie_value(&resp, self.cookie_name()).expect("signup sets the session cookie");
        (c, cookie)
    }

    /// `POST /auth/logout` on `client`, from this app's own origin.
    pub async fn logout(&self, client: &reqwest::Client) -> reqwest::Response {
        client
            .post(self.url("/auth/logout"))
            .header("origin", self.origin())
            .send()
            .await
            .unwrap()
    }

    /// `GET /auth/me` on `client`: the status and the JSON body.
    pub async fn me(&self, client: &reqwest::Client) -> (u16, serde_json::Value) {
        let resp = client.get(self.url("/auth/me")).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// A request to `path` carrying exactly this cookie value (no jar).
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .header("cookie", format!("{}={cookie}", self.cookie_name()))
            .send()
            .await
            .unwrap()
    }

    /// A connection to this app's Redis (its own `REDIS_URL` when a test gave it one).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let url = self.vars.get("REDIS_URL").cloned().unwrap_or_else(redis_url);
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test Redis (TEST_REDIS_URL, or the run's own)")
    }

    /// Every Redis key of this app, with its value when it is a string.
    pub async fn redis_dump(&self) -> Vec<(String, Option<String>)> {
        let mut conn = self.redis().await;
        let keys = redis_keys(&mut conn, &self.redis_prefix).await;
        let mut out = Vec::new();
        for k in keys {
            let v: Option<String> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap_or(None);
            out.push((k, v));
        }
        out
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Stops the server and waits for in-flight requests.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if self.backend == Backend::PostgresRedis && !self.shared {
            let prefix = self.redis_prefix.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(delete_redis_prefix(&prefix));
            })
            .join();
        }
    }
}

/// A password that passes the rules.
pub const PASSWORD: &str = "correct horse battery staple";

/// The value of the `name` cookie set by a response, if any (an empty value means "cleared").
pub fn set_cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    set_cookie_header(resp, name).map(|h| h.split(';').next().unwrap_or("")[name.len() + 1..].to_string())
}

/// The whole `Set-Cookie` header for `name`, if any.
pub fn set_cookie_header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The `authauth` binary the tests run: cargo's, unless `AUTHAUTH_TEST_BIN` names another. A
/// target directory shared by several checkouts needs that: cargo puts every checkout's binary
/// at the same `target/debug/authauth`, so another checkout's build can swap it mid-run.
pub fn authauth_bin() -> std::ffi::OsString {
    std::env::var_os("AUTHAUTH_TEST_BIN")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_authauth").into())
}

/// Runs the real `authauth` binary with exactly `vars` as its environment, in `dir`.
pub fn run_cli(dir: &std::path::Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(authauth_bin());
    cmd.current_dir(dir)
        .env_clear()
        .args(args)
        .stdin(std::process::Stdio::null());
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run authauth")
}

/// The session `c` makes its requests with, as `GET /auth/sessions` at `sessions_url` lists it.
pub async fn current_session(c: &reqwest::Client, sessions_url: &str) -> serde_json::Value {
    let list: serde_json::Value = c.get(sessions_url).send().await.unwrap().json().await.unwrap();
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap_or_else(|| panic!("no current session in {list}"))
        .clone()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running `authauth serve` child process.
pub struct Server {
    pub child: std::process::Child,
    pub port: u16,
    /// Every stderr line so far is sent here.
    pub logs: std::sync::mpsc::Receiver<String>,
    /// What it logged before it was serving.
    pub startup_logs: Vec<String>,
}

impl Server {
    /// Starts the binary in `dir` with exactly `vars`, and waits until it reports its address.
    pub fn start(dir: &std::path::Path, vars: &[(&str, &str)]) -> Server {
        use std::io::Read;
        let mut cmd = std::process::Command::new(authauth_bin());
        cmd.current_dir(dir)
            .env_clear()
            .arg("serve")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        // Tied to the test process: a killed run leaves no server behind.
        let mut child = spawn_tied(cmd, libc::SIGTERM).unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut line = Vec::new();
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if b == b'\n' {
                        let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                        line.clear();
                    } else {
                        line.push(b);
                    }
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut startup_logs = Vec::new();
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .unwrap_or_else(|_| {
                    panic!(
                        "authauth did not report its address; status {:?}",
                        child.try_wait()
                    )
                });
            if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                if line.contains("serving") {
                    let port = rest
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                        .parse()
                        .unwrap();
                    return Server {
                        child,
                        port,
                        logs: rx,
                        startup_logs,
                    };
                }
            }
            startup_logs.push(line);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("authauth did not exit within {within:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Everything logged so far.
    pub fn drain_logs(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }

    /// Everything logged from now until a line containing `needle` arrives, one line each, or
    /// what arrived in 10 s if none does. Information lines wait up to `LOG_FLUSH_INTERVAL` in
    /// the server's buffer, and its output is read on a thread of its own.
    pub async fn logs_until(&self, needle: &str) -> String {
        let mut logs = String::new();
        for _ in 0..100 {
            for line in self.drain_logs() {
                logs.push_str(&line);
                logs.push('\n');
            }
            if logs.contains(needle) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        logs
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs the npm dependencies of a test fixture under `tests/` (`npm ci`, from its
/// package-lock.json) once per run, unless `package` is already in its `node_modules`.
/// `what` says what needs it, for the message when npm is missing.
pub fn npm_ci_once(fixture: &str, package: &str, what: &str) -> std::path::PathBuf {
    static DONE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(fixture);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.iter().any(|d| d == fixture) || dir.join("node_modules").join(package).exists() {
        done.push(fixture.to_string());
        return dir;
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .unwrap_or_else(|e| panic!("npm (Node.js) is needed for {what}: {e}"));
    assert!(status.success(), "npm ci in tests/{fixture} failed");
    done.push(fixture.to_string());
    dir
}
