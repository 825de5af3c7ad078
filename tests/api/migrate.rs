//! `authauth migrate` on PostgreSQL and SQLite, the data model's constraints, and the refusal
//! to serve a database with pending migrations.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

use crate::helpers::*;

const MIGRATIONS: &[&str] = &[
    "m20261127_000001_create_users_and_identities",
    "m20261127_000002_create_sessions",
    "m20261127_000003_create_login_failures",
    "m20261127_000004_create_auth_flows",
    "m20261127_000005_add_users_email_canonical",
    "m20261128_000006_create_audit_events",
    "m20261128_000007_create_webhook_deliveries",
    "m20261128_000008_create_account_tokens",
    "m20261204_000009_create_second_factors",
    "m20261204_000010_create_passkeys",
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

    // Zero steps would apply nothing and call the database up to date: refused, as a usage error.
    for zero in [
        &["migrate", "up", "--steps", "0"][..],
        &["migrate", "down", "--steps", "0", "--yes"],
    ] {
        let out = run_cli(&dir.0, &vars, zero);
        assert_eq!(out.status.code(), Some(2), "{zero:?}: {}", stdout(&out));
        assert!(!stdout(&out).contains("up to date"), "{}", stdout(&out));
    }

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
    let insert_user = |id: &str, email: &str, canonical: &str| {
        format!("INSERT INTO users (id, email, email_canonical, full_name, created_at, updated_at) VALUES ({id}, '{email}', '{canonical}', 'A', {now}, {now})")
    };
    exec(conn, &insert_user(u1, "Alice@Example.com", "alice@example.com"))
        .await
        .unwrap();
    // The canonical address is unique: one account per address, however it is spelled.
    assert!(
        exec(conn, &insert_user(u2, "alice@example.COM", "alice@example.com"))
            .await
            .is_err()
    );
    exec(conn, &insert_user(u2, "bob@example.com", "bob@example.com"))
        .await
        .unwrap();
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
async fn data_model_enforces_unique_canonical_email_unique_identities_and_cascade_on_postgres() {
    let db = TestDb::migrated().await;
    let conn = Database::connect(&db.url).await.unwrap();
    // Postgres takes UUID literals as uuid; the same statements work on both backends.
    data_model_constraints(&conn).await;
    conn.close().await.ok();
}

#[tokio::test]
async fn data_model_enforces_unique_canonical_email_unique_identities_and_cascade_on_sqlite() {
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

/// Adds users as an older version stored them (before `email_canonical`).
async fn insert_legacy_users(conn: &DatabaseConnection, emails: &[&str]) {
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "INSERT INTO users (id, email, full_name, created_at, updated_at) VALUES ($1, $2, 'A', now(), now())"
        }
        _ => "INSERT INTO users (id, email, full_name, created_at, updated_at) VALUES (?, ?, 'A', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
    };
    for email in emails {
        conn.execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [uuid::Uuid::new_v4().into(), (*email).into()],
        ))
        .await
        .unwrap_or_else(|e| panic!("{email:?}: {e}"));
    }
}

async fn canonical_column(conn: &DatabaseConnection) -> Result<Vec<(String, String)>, sea_orm::DbErr> {
    Ok(conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT email, email_canonical FROM users ORDER BY email_canonical",
        ))
        .await?
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "email").unwrap(),
                r.try_get::<String>("", "email_canonical").unwrap(),
            )
        })
        .collect())
}

async fn backfill_and_back(url: &str) {
    use migration::{Migrator, MigratorTrait};
    let conn = Database::connect(url).await.unwrap();
    Migrator::up(&conn, Some(4)).await.unwrap();
    insert_legacy_users(
        &conn,
        &[
            "Alice@Example.com",
            "\u{c9}lodie@example.com",
            "user@b\u{fc}cher.example",
        ],
    )
    .await;
    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(
        canonical_column(&conn).await.unwrap(),
        [
            ("Alice@Example.com", "alice@example.com"),
            ("user@b\u{fc}cher.example", "user@xn--bcher-kva.example"),
            ("\u{c9}lodie@example.com", "\u{e9}lodie@example.com"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Down (past the later ones) puts the case-insensitive index back and removes the column.
    let later = MIGRATIONS.len() - 4;
    Migrator::down(&conn, Some(later as u32)).await.unwrap();
    assert!(canonical_column(&conn).await.is_err());
    insert_legacy_users(&conn, &["bob@example.com"]).await;
    let dup = conn
        .execute_unprepared(
            "INSERT INTO users (id, email, full_name, created_at, updated_at) VALUES ('6a8f1f4e-0000-4000-8000-000000000009', 'BOB@example.com', 'B', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        )
        .await;
    assert!(dup.is_err(), "the lower(email) index is back");
    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(canonical_column(&conn).await.unwrap().len(), 4);
    conn.close().await.ok();
}

#[tokio::test]
async fn existing_accounts_get_their_canonical_address_and_down_restores_the_old_index_on_postgres() {
    let db = TestDb::create().await;
    backfill_and_back(&db.url).await;
}

#[tokio::test]
async fn existing_accounts_get_their_canonical_address_and_down_restores_the_old_index_on_sqlite() {
    let dir = TempDir::new();
    backfill_and_back(&dir.sqlite_url()).await;
}

/// Accounts an older version let in that the canonical rule refuses or merges: the migration
/// names them, changes nothing, and stays pending until an operator decides.
async fn lookalikes_stop_the_migration(url: &str, emails: &[&str], named: &[&str]) {
    use migration::{Migrator, MigratorTrait};
    let conn = Database::connect(url).await.unwrap();
    Migrator::up(&conn, Some(4)).await.unwrap();
    insert_legacy_users(&conn, emails).await;
    let err = Migrator::up(&conn, None).await.unwrap_err().to_string();
    for name in named {
        assert!(err.contains(name), "{name} is not named in: {err}");
    }
    assert!(
        !err.chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
        "{err:?}"
    );
    assert!(canonical_column(&conn).await.is_err(), "the column was added");
    // It, and every migration after it.
    assert_eq!(
        authauth::db::pending_migrations(&conn).await.unwrap().len(),
        MIGRATIONS.len() - 4
    );
    conn.close().await.ok();
}

#[tokio::test]
async fn accounts_without_one_canonical_address_stop_the_migration_on_postgres() {
    let db = TestDb::create().await;
    lookalikes_stop_the_migration(
        &db.url,
        &[
            "tim@example.com",
            "a\u{202e}b@example.com",
            "a@evil.com@example.com",
        ],
        &["a\\u{202e}b@example.com", "a@evil.com@example.com"],
    )
    .await;
}

#[tokio::test]
async fn accounts_without_one_canonical_address_stop_the_migration_on_sqlite() {
    let dir = TempDir::new();
    // SQLite's lower() folds ASCII only, so these could all be separate accounts.
    lookalikes_stop_the_migration(
        &dir.sqlite_url(),
        &[
            "tim@example.com",
            "t\u{130}m@example.com",
            "\u{c9}lodie@example.com",
            "\u{e9}lodie@example.com",
        ],
        &[
            "t\u{130}m@example.com",
            "\u{c9}lodie@example.com",
            "\u{e9}lodie@example.com",
        ],
    )
    .await;
}
