//! `authauth migrate` on PostgreSQL and SQLite, the data model's constraints, and the refusal
//! to serve a database with pending migrations.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

use crate::helpers::*;

const MIGRATIONS: &[&str] = &[
    "m20261127_000001_create_users_and_identities",
    "m20261127_000002_create_sessions",
    "m20261127_000003_create_login_failures",
    "m20261127_000004_create_auth_flows",
];

async fn tables(conn: &DatabaseConnection) -> Vec<String> {
    let sql = match conn.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
    };
    conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect()
}

async fn migrate_cycle(database_url: &str) {
    let dir = TempDir::new();
    let vars = [("DATABASE_URL", database_url)];
    let conn = Database::connect(database_url).await.unwrap();

    let out = run_cli(&dir.0, &vars, &["migrate", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("Pending  {}", MIGRATIONS[0])),
        "{}",
        stdout(&out)
    );

    let out = run_cli(&dir.0, &vars, &["migrate", "up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("Applied {}", MIGRATIONS[0])),
        "{}",
        stdout(&out)
    );
    let t = tables(&conn).await;
    assert!(
        t.contains(&"users".to_string()) && t.contains(&"identities".to_string()),
        "{t:?}"
    );

    let out = run_cli(&dir.0, &vars, &["migrate", "status"]);
    assert!(
        stdout(&out).contains(&format!("Applied  {}", MIGRATIONS[0])),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(&format!("{} applied, 0 pending", MIGRATIONS.len())));

    let out = run_cli(&dir.0, &vars, &["migrate", "up"]);
    assert!(stdout(&out).contains("Nothing to apply"));

    // Down without a terminal and without --yes refuses and changes nothing.
    let out = run_cli(&dir.0, &vars, &["migrate", "down"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(tables(&conn).await.contains(&"users".to_string()));

    let steps = MIGRATIONS.len().to_string();
    let out = run_cli(&dir.0, &vars, &["migrate", "down", "--steps", &steps, "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("Reverted {}", MIGRATIONS[0])));
    let t = tables(&conn).await;
    assert!(
        !t.contains(&"users".to_string()) && !t.contains(&"identities".to_string()),
        "{t:?}"
    );

    let out = run_cli(&dir.0, &vars, &["migrate", "fresh", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = tables(&conn).await;
    assert!(
        t.contains(&"users".to_string()) && t.contains(&"identities".to_string()),
        "{t:?}"
    );
    conn.close().await.ok();
}

#[tokio::test]
async fn migrate_up_status_down_fresh_on_postgres() {
    let db = TestDb::create().await;
    migrate_cycle(&db.url).await;
}

#[tokio::test]
async fn migrate_up_status_down_fresh_on_sqlite() {
    let dir = TempDir::new();
    migrate_cycle(&dir.sqlite_url()).await;
}

async fn exec(conn: &DatabaseConnection, sql: &str) -> Result<(), sea_orm::DbErr> {
    conn.execute_unprepared(sql).await.map(|_| ())
}

async fn data_model_constraints(conn: &DatabaseConnection) {
    let now = "'2026-01-01T00:00:00Z'";
    let (u1, u2) = (
        "'6a8f1f4e-0000-4000-8000-000000000001'",
        "'6a8f1f4e-0000-4000-8000-000000000002'",
    );
    let insert_user = |id: &str, email: &str| {
        format!("INSERT INTO users (id, email, full_name, created_at, updated_at) VALUES ({id}, '{email}', 'A', {now}, {now})")
    };
    exec(conn, &insert_user(u1, "Alice@Example.com")).await.unwrap();
    // E-mail is unique regardless of case.
    assert!(exec(conn, &insert_user(u2, "alice@example.COM")).await.is_err());
    exec(conn, &insert_user(u2, "bob@example.com")).await.unwrap();
    let ident = |id: &str, user: &str, sub: &str| {
        format!("INSERT INTO identities (id, user_id, issuer, subject, created_at) VALUES ({id}, {user}, 'https://op.example', '{sub}', {now})")
    };
    exec(
        conn,
        &ident("'6a8f1f4e-0000-4000-8000-0000000000a1'", u1, "sub-1"),
    )
    .await
    .unwrap();
    // (issuer, subject) identifies one account.
    assert!(exec(
        conn,
        &ident("'6a8f1f4e-0000-4000-8000-0000000000a2'", u2, "sub-1")
    )
    .await
    .is_err());
    // Identities follow their user.
    exec(conn, &format!("DELETE FROM users WHERE id = {u1}"))
        .await
        .unwrap();
    let left = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM identities",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn data_model_enforces_case_insensitive_email_unique_identities_and_cascade_on_postgres() {
    let db = TestDb::migrated().await;
    let conn = Database::connect(&db.url).await.unwrap();
    // Postgres takes UUID literals as uuid; the same statements work on both backends.
    data_model_constraints(&conn).await;
    conn.close().await.ok();
}

#[tokio::test]
async fn data_model_enforces_case_insensitive_email_unique_identities_and_cascade_on_sqlite() {
    let dir = TempDir::new();
    let conn = Database::connect(dir.sqlite_url()).await.unwrap();
    authauth::db::migrate_up(&conn).await.unwrap();
    data_model_constraints(&conn).await;
    conn.close().await.ok();
}

#[tokio::test]
async fn production_serve_refuses_pending_migrations_and_says_what_to_run() {
    let db = TestDb::create().await;
    let dir = TempDir::new();
    let secret = "y".repeat(40);
    let out = run_cli(
        &dir.0,
        &[
            ("APP_ENV", "production"),
            ("PUBLIC_URL", "https://auth.example.com"),
            ("PORT", "0"),
            ("DATABASE_URL", db.url.as_str()),
            ("REDIS_URL", redis_url().as_str()),
            ("SESSION_SECRET", secret.as_str()),
        ],
        &["serve"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("pending migration"), "{err}");
    assert!(err.contains("authauth migrate up"), "{err}");
}
