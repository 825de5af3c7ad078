//! Test harness: spawn the real app on port 0 with its own PostgreSQL database (random name,
//! migrated, dropped afterwards) or its own SQLite file, and its own Redis key prefix (deleted
//! afterwards). Postgres and Redis must be running: tests fail, never skip, without them.

#![allow(dead_code)]

use std::{collections::HashMap, path::PathBuf, process::Output};

use authauth::{config::Settings, startup::Application};
use sea_orm::{ConnectionTrait, Database};

pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
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
        let name = unique("authauth_test_");
        let admin = Database::connect(postgres_admin_url())
            .await
            .expect("PostgreSQL must be running for the tests (see README: Running the tests)");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
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

    pub async fn migrated() -> TestDb {
        let db = TestDb::create().await;
        let conn = Database::connect(&db.url).await.unwrap();
        authauth::db::migrate_up(&conn).await.unwrap();
        conn.close().await.ok();
        db
    }
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

/// A directory removed when the test ends.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(unique("authauth-test-"));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
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

/// Which database and session store a test app uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL + Redis: the production layout.
    PostgresRedis,
    /// One SQLite file holding users and sessions: the embedded default.
    Sqlite,
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// Keeps cookies, follows no redirects.
    pub client: reqwest::Client,
    pub backend: Backend,
    pub redis_prefix: String,
    pub db: Option<TestDb>,
    pub dir: TempDir,
    pub vars: HashMap<String, String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub struct AppOptions {
    pub backend: Backend,
    pub vars: Vec<(String, String)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            backend: Backend::PostgresRedis,
            vars: Vec::new(),
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
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(opts: AppOptions) -> TestApp {
    let dir = TempDir::new();
    let redis_prefix = unique("authauth-test:").chars().take(40).collect::<String>() + ":";
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("PORT".into(), "0".into());
    vars.insert(
        "SESSION_SECRET".into(),
        authauth::session::token::generate_secret(),
    );
    vars.insert("LOG_FORMAT".into(), "text".into());
    let db = match opts.backend {
        Backend::PostgresRedis => {
            let db = TestDb::migrated().await;
            vars.insert("DATABASE_URL".into(), db.url.clone());
            vars.insert("REDIS_URL".into(), redis_url());
            vars.insert("REDIS_KEY_PREFIX".into(), redis_prefix.clone());
            Some(db)
        }
        Backend::Sqlite => {
            let url = dir.sqlite_url();
            let conn = Database::connect(&url).await.unwrap();
            authauth::db::migrate_up(&conn).await.unwrap();
            conn.close().await.ok();
            vars.insert("DATABASE_URL".into(), url);
            None
        }
    };
    for (k, v) in opts.vars {
        vars.insert(k, v);
    }
    let settings = Settings::from_vars(&vars).expect("test configuration is valid");
    let app = Application::build(settings).await.expect("the app starts");
    let port = app.port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
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
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
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
        if self.backend == Backend::PostgresRedis {
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

/// Runs the real `authauth` binary with exactly `vars` as its environment, in `dir`.
pub fn run_cli(dir: &std::path::Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_authauth"));
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

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
