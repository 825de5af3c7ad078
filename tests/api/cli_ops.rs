//! The operator CLI (`users`, `sessions`), run as the real binary against the same database and
//! session store as a running app — on PostgreSQL + Redis and on the embedded SQLite store.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// The environment that points the binary at `app`'s database and session store.
pub(crate) fn cli_env(app: &TestApp) -> Vec<(String, String)> {
    [
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_MODE",
        "REDIS_SENTINEL_MASTER",
        "REDIS_WAIT_REPLICAS",
        "REDIS_KEY_PREFIX",
        "SESSION_SECRET",
        "WEBHOOK_URLS",
        "WEBHOOK_SECRET",
        "SMTP_URL",
        "MAIL_FROM",
        "MAIL_OUTBOX_DIR",
    ]
    .iter()
    .filter_map(|k| app.vars.get(*k).map(|v| (k.to_string(), v.clone())))
    .collect()
}

pub(crate) fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let env = cli_env(app);
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_cli(&app.dir.0, &vars, args)
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "stderr: {}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

async fn session_id(app: &TestApp, c: &reqwest::Client) -> String {
    app.me(c).await.1["session"]["id"].as_str().unwrap().to_string()
}

per_backend!(operators_list_and_revoke_sessions_by_id_by_user_all_but_one_and_all);
async fn operators_list_and_revoke_sessions_by_id_by_user_all_but_one_and_all(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let (a, a_cookie) = app.signed_up_client("alice@example.com").await;
    let (b, c) = (client(), client());
    let b_cookie = set_cookie_value(
        &app.login_with(&b, "alice@example.com", PASSWORD).await,
        app.cookie_name(),
    )
    .unwrap();
    let c_cookie = set_cookie_value(
        &app.login_with(&c, "alice@example.com", PASSWORD).await,
        app.cookie_name(),
    )
    .unwrap();
    let (bob, bob_cookie) = app.signed_up_client("bob@example.com").await;
    let (a_id, b_id) = (session_id(&app, &a).await, session_id(&app, &b).await);

    // Everything, as JSON: no token anywhere.
    let out = cli(&app, &["sessions", "list", "--json"]);
    let all = json_of(&out);
    assert_eq!(all.as_array().unwrap().len(), 4, "{backend:?}");
    for cookie in [&a_cookie, &b_cookie, &c_cookie, &bob_cookie] {
        let token = cookie.split('.').next().unwrap();
        assert!(!stdout(&out).contains(token), "a token in the listing");
    }
    let first = &all[0];
    for field in [
        "id",
        "userId",
        "email",
        "method",
        "ip",
        "userAgent",
        "createdAt",
        "lastSeenAt",
        "expiresAt",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    let mine = json_of(&cli(
        &app,
        &["sessions", "list", "--user", "ALICE@example.com", "--json"],
    ));
    assert_eq!(mine.as_array().unwrap().len(), 3);
    let table = cli(&app, &["sessions", "list"]);
    assert!(
        stdout(&table).contains(&a_id) && stdout(&table).contains("4 live sessions"),
        "{}",
        stdout(&table)
    );
    let one = json_of(&cli(&app, &["sessions", "show", &a_id, "--json"]));
    assert_eq!(one["email"], "alice@example.com");

    // Without a terminal and without --yes: refused, nothing revoked.
    let out = cli(&app, &["sessions", "revoke", &a_id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(app.me(&a).await.0, 200);
    // Unknown ids and users: exit 3.
    assert_eq!(
        cli(&app, &["sessions", "revoke", "AAAAAAAAAAAAAAAAAAAAAAAA", "--yes"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        cli(&app, &["sessions", "list", "--user", "nobody@example.com"])
            .status
            .code(),
        Some(3)
    );

    // By id, with a reason the signed-out client gets to see.
    let out = cli(
        &app,
        &["sessions", "revoke", &a_id, "--yes", "--reason", "laptop stolen"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Revoked 1 session."));
    let (status, body) = app.me(&a).await;
    assert_eq!(status, 401, "{backend:?}");
    assert_eq!(body["error"], "session_revoked");
    assert_eq!(body["reason"], "operator");
    assert!(
        body["message"].as_str().unwrap().contains("laptop stolen"),
        "{body}"
    );
    assert_eq!(app.me(&b).await.0, 200);

    // All of alice's but B.
    let out = cli(
        &app,
        &[
            "sessions",
            "revoke",
            "--user",
            "alice@example.com",
            "--all-but",
            &b_id,
            "--yes",
        ],
    );
    assert!(stdout(&out).contains("Revoked 1 session."), "{}", stdout(&out));
    assert_eq!(app.me(&c).await.0, 401);
    assert_eq!(app.me(&b).await.0, 200);

    // All of alice's.
    let out = cli(
        &app,
        &["sessions", "revoke", "--user", "alice@example.com", "--yes"],
    );
    assert!(out.status.success());
    assert_eq!(app.me(&b).await.0, 401);
    assert_eq!(app.me(&bob).await.0, 200, "another user's sessions are untouched");

    // Everything.
    let out = cli(&app, &["sessions", "revoke", "--all", "--yes"]);
    assert!(stdout(&out).contains("Revoked 1 session."), "{}", stdout(&out));
    assert_eq!(app.me(&bob).await.0, 401);
    assert_eq!(
        json_of(&cli(&app, &["sessions", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

per_backend!(operators_create_list_show_disable_and_enable_accounts);
async fn operators_create_list_show_disable_and_enable_accounts(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let env = cli_env(&app);
    let mut cmd = std::process::Command::new(authauth_bin());
    cmd.current_dir(&app.dir.0)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args([
            "users",
            "create",
            "--email",
            "Carol@Example.com",
            "--name",
            "Carol",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let carol = client();
    assert_eq!(
        app.login_with(&carol, "carol@example.com", PASSWORD)
            .await
            .status(),
        200,
        "{backend:?}"
    );
    app.login_with(&client(), "carol@example.com", PASSWORD).await;

    // The same rules as signup.
    let out = run_cli_stdin(
        &app,
        &[
            "users",
            "create",
            "--email",
            "weak@example.com",
            "--name",
            "W",
            "--password-stdin",
        ],
        "password1234",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("weak_password"), "{}", stderr(&out));
    let out = run_cli_stdin(
        &app,
        &[
            "users",
            "create",
            "--email",
            "carol@example.com",
            "--name",
            "C",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(stderr(&out).contains("email_taken"), "{}", stderr(&out));

    let list = json_of(&cli(&app, &["users", "list", "--search", "CAROL", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["email"], "Carol@example.com");
    assert_eq!(list[0]["methods"], serde_json::json!(["password"]));
    assert_eq!(list[0]["liveSessions"], 2);
    assert_eq!(list[0]["disabled"], false);
    let show = json_of(&cli(&app, &["users", "show", "carol@example.com", "--json"]));
    assert_eq!(show["sessions"].as_array().unwrap().len(), 2);
    assert!(show["identities"].as_array().unwrap().is_empty());
    assert_eq!(
        cli(&app, &["users", "show", "nobody@example.com"]).status.code(),
        Some(3)
    );

    // Disabling ends every session and blocks sign-in; enabling lets them back in.
    assert_eq!(
        cli(&app, &["users", "disable", "carol@example.com"])
            .status
            .code(),
        Some(2),
        "needs --yes"
    );
    let out = cli(&app, &["users", "disable", "carol@example.com", "--yes"]);
    assert!(stdout(&out).contains("revoked 2 sessions"), "{}", stdout(&out));
    let (status, body) = app.me(&carol).await;
    assert_eq!(status, 401);
    assert_eq!(body["reason"], "user_disabled");
    let resp = app.login_with(&client(), "carol@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "account_disabled");
    let list = json_of(&cli(&app, &["users", "list", "--json"]));
    assert_eq!(list[0]["disabled"], true);
    assert!(cli(&app, &["users", "enable", "carol@example.com"])
        .status
        .success());
    assert_eq!(
        app.login_with(&client(), "carol@example.com", PASSWORD)
            .await
            .status(),
        200
    );
}

fn run_cli_stdin(app: &TestApp, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(authauth_bin())
        .current_dir(&app.dir.0)
        .env_clear()
        .envs(cli_env(app))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// The binary under a pseudo-terminal, for the prompts.
pub(crate) fn pty(app: &TestApp, args: &[&str]) -> rexpect::session::PtySession {
    let mut cmd = std::process::Command::new(authauth_bin());
    cmd.current_dir(&app.dir.0)
        .env_clear()
        .envs(cli_env(app))
        .env("TERM", "xterm")
        .args(args);
    rexpect::session::spawn_command(cmd, Some(20_000)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_revocation_asks_first_and_offers_a_list_to_pick_from() {
    let app = spawn_app().await;
    let (a, _) = app.signed_up_client("pty@example.com").await;
    let b = client();
    app.login_with(&b, "pty@example.com", PASSWORD).await;
    let a_id = session_id(&app, &a).await;

    // Answering "no" changes nothing.
    let app_ref = &app;
    let id = a_id.clone();
    let mut p = tokio::task::block_in_place(|| {
        let mut p = pty(app_ref, &["sessions", "revoke", &id]);
        p.exp_string("Revoke 1 session(s)?").unwrap();
        p.send("n").unwrap();
        p.flush().unwrap();
        p.exp_eof().unwrap();
        pty(app_ref, &["sessions", "revoke", &id])
    });
    assert_eq!(app.me(&a).await.0, 200);
    // Answering "yes" revokes.
    tokio::task::block_in_place(|| {
        p.exp_string("Revoke 1 session(s)?").unwrap();
        p.send("y").unwrap();
        p.flush().unwrap();
        p.exp_string("Revoked 1 session.").unwrap();
    });
    assert_eq!(app.me(&a).await.0, 401);
    assert_eq!(app.me(&b).await.0, 200);

    // No ids on a terminal: pick from the list (space selects, enter confirms), then confirm.
    tokio::task::block_in_place(|| {
        let mut p = pty(app_ref, &["sessions", "revoke", "--reason", "picked"]);
        p.exp_string("Sessions to revoke").unwrap();
        p.send(" ").unwrap();
        p.flush().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        p.send("\r").unwrap();
        p.flush().unwrap();
        p.exp_string("Revoke 1 session(s)?").unwrap();
        p.send("y").unwrap();
        p.flush().unwrap();
        p.exp_string("Revoked 1 session.").unwrap();
    });
    let (status, body) = app.me(&b).await;
    assert_eq!(status, 401);
    assert!(body["message"].as_str().unwrap().contains("picked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_users_create_asks_for_the_password_twice_without_echo() {
    let app = spawn_app_with(AppOptions::default().backend(Backend::Sqlite)).await;
    let app_ref = &app;
    tokio::task::block_in_place(|| {
        let mut p = pty(
            app_ref,
            &["users", "create", "--email", "tty@example.com", "--name", "Tty"],
        );
        p.exp_string("Password").unwrap();
        p.send_line(PASSWORD).unwrap();
        p.exp_string("Repeat the password").unwrap();
        p.send_line(PASSWORD).unwrap();
        let before = p.exp_string("Created tty@example.com").unwrap();
        assert!(!before.contains(PASSWORD), "the password was echoed");
    });
    assert_eq!(
        app.login_with(&client(), "tty@example.com", PASSWORD)
            .await
            .status(),
        200
    );
}

per_backend!(session_ids_starting_with_a_hyphen_are_ids_not_flags);
async fn session_ids_starting_with_a_hyphen_are_ids_not_flags(backend: Backend) {
    use authauth::session::{
        record::{SessionRecord, SignInMethod, UserSnapshot},
        token::{random_b64, slot_tag, SessionToken},
    };
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    // An unknown id that looks like a flag is still an id: "not found" (3), not usage (2).
    let ghost = format!("-{}", "A".repeat(23));
    for args in [
        vec!["sessions", "revoke", ghost.as_str(), "--yes"],
        vec!["sessions", "show", ghost.as_str()],
    ] {
        let out = cli(&app, &args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{backend:?} {args:?}: {}",
            stderr(&out)
        );
    }
    // A mistyped flag is still a usage error, not an id nobody has.
    assert_eq!(cli(&app, &["sessions", "revoke", "--al"]).status.code(), Some(2));

    // Ids issued before they got their prefix (slot tag first) can start with `-`: one
    // user in 64 has such a slot. Operators can still revoke those sessions by id.
    let user_id = (0u128..)
        .map(uuid::Uuid::from_u128)
        .find(|u| slot_tag(u).starts_with('-'))
        .unwrap();
    let now = app.now();
    let legacy = SessionRecord {
        public_id: format!("{}{}", slot_tag(&user_id), random_b64(12)),
        user_id,
        user: UserSnapshot {
            email: "legacy@example.com".into(),
            full_name: "Legacy".into(),
            picture: None,
            email_verified: false,
        },
        method: SignInMethod::Password,
        created_at: now,
        last_seen_at: now,
        idle_expires_at: now + 600_000,
        absolute_expires_at: now + 600_000,
        token_issued_at: now,
        ip: None,
        user_agent: None,
        previous: None,
        stage: Default::default(),
        amr: Vec::new(),
        authenticated_at: None,
    };
    app.state
        .sessions
        .store()
        .create(
            &SessionToken::generate().hash(),
            &legacy,
            &authauth::session::store::Limit {
                max: 25,
                action: authauth::config::LimitAction::EndLeastRecentlyUsed,
                revocation: authauth::session::store::Revocation {
                    reason: "session_limit",
                    message: None,
                },
            },
            now,
        )
        .await
        .unwrap();
    let out = cli(&app, &["sessions", "show", &legacy.public_id, "--json"]);
    assert_eq!(json_of(&out)["id"], legacy.public_id.as_str(), "{backend:?}");
    let out = cli(&app, &["sessions", "revoke", &legacy.public_id, "--yes"]);
    assert!(
        stdout(&out).contains("Revoked 1 session."),
        "{backend:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Characters a terminal acts on or hides: C0 and C1 controls, bidi and zero-width formats.
fn raw_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{200b}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        })
        .collect()
}

per_backend!(user_and_session_tables_never_print_control_characters_raw);
async fn user_and_session_tables_never_print_control_characters_raw(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    // A name the API accepts (a bidi override is not a control character)…
    let resp = app
        .post_json(
            &client(),
            "/auth/signup",
            &serde_json::json!({
                "email": "mallory@example.com",
                "password": PASSWORD,
                "fullName": "Mallory \u{202e}nimda",
            }),
        )
        .await;
    assert_eq!(resp.status(), 201);
    // …and what only a direct database write (or an older version) could store.
    use sea_orm::{ConnectionTrait, Database, Statement};
    let conn = Database::connect(&app.vars["DATABASE_URL"]).await.unwrap();
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        match conn.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                "UPDATE users SET full_name = $1 WHERE email = 'mallory@example.com'"
            }
            _ => "UPDATE users SET full_name = ? WHERE email = 'mallory@example.com'",
        },
        ["Mallory\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\r\u{202e}nimda".into()],
    ))
    .await
    .unwrap();
    conn.close().await.ok();

    for args in [
        vec!["users", "list"],
        vec!["users", "show", "mallory@example.com"],
        vec!["sessions", "list"],
    ] {
        let out = cli(&app, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            raw_controls(&text).is_empty(),
            "{backend:?} {args:?} printed {:?}:\n{text}",
            raw_controls(&text)
        );
        if args[0] == "users" {
            assert!(text.contains("nimda"), "{args:?}: {text}");
        }
    }
    let listed = stdout(&cli(&app, &["users", "list"]));
    assert!(listed.contains("\\u{1b}[2J"), "escaped, not dropped: {listed}");
}

#[tokio::test]
async fn users_create_refuses_addresses_no_mail_system_accepts() {
    let app = spawn_app_with(AppOptions::default().backend(Backend::Sqlite)).await;
    for bad in ["a@evil.com@example.com", "a\u{202e}b@example.com"] {
        let out = run_cli_stdin(
            &app,
            &[
                "users",
                "create",
                "--email",
                bad,
                "--name",
                "A",
                "--password-stdin",
            ],
            PASSWORD,
        );
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(stderr(&out).contains("invalid_email"), "{}", stderr(&out));
        assert!(raw_controls(&stderr(&out)).is_empty(), "{:?}", stderr(&out));
    }
}

#[tokio::test]
async fn an_operator_lifts_the_sign_in_throttle_on_an_account() {
    let app = spawn_app().await;
    app.signed_up_client("locked@example.com").await;
    // Ten failures from this address fill the account's window for it.
    for _ in 0..10 {
        let resp = app
            .login_with(&client(), "locked@example.com", "wrong password here")
            .await;
        assert_eq!(resp.status(), 401);
    }
    assert_eq!(
        app.login_with(&client(), "locked@example.com", PASSWORD)
            .await
            .status(),
        429
    );

    let out = cli(&app, &["users", "unlock", "LOCKED@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Sign-in limits lifted for locked@example.com"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        app.login_with(&client(), "locked@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    // Unknown accounts are "not found".
    assert_eq!(
        cli(&app, &["users", "unlock", "nobody@example.com"])
            .status
            .code(),
        Some(3)
    );
}

#[tokio::test]
async fn users_create_with_a_taken_address_is_a_failed_operation_not_a_usage_error() {
    let app = spawn_app_with(AppOptions::default().backend(Backend::Sqlite)).await;
    app.signed_up_client("taken@example.com").await;
    let out = run_cli_stdin(
        &app,
        &[
            "users",
            "create",
            "--email",
            "Taken@Example.com",
            "--name",
            "Second",
            "--password-stdin",
        ],
        PASSWORD,
    );
    // The command was used correctly; what it was asked to do could not be done.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("email_taken"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[tokio::test]
async fn an_operators_reason_reaches_the_client_in_its_own_field() {
    let app = spawn_app().await;
    let (c, _) = app.signed_up_client("stolen@example.com").await;
    let id = session_id(&app, &c).await;
    let out = cli(
        &app,
        &[
            "sessions",
            "revoke",
            &id,
            "--reason",
            "phone reported stolen",
            "--yes",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, body) = app.me(&c).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "session_revoked");
    assert_eq!(body["reason"], "operator");
    assert_eq!(body["note"], "phone reported stolen", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    // Revocations without a note have no `note`.
    let (c2, _) = app.signed_up_client("plain@example.com").await;
    let id2 = session_id(&app, &c2).await;
    assert!(cli(&app, &["sessions", "revoke", &id2, "--yes"]).status.success());
    let (_, body) = app.me(&c2).await;
    assert!(body.get("note").is_none(), "{body}");
    // The spec documents it.
    let spec: Value = serde_json::from_str(&authauth::api::spec_json()).unwrap();
    let note = &spec["components"]["schemas"]["ErrorBody"]["properties"]["note"];
    assert!(
        note["description"]
            .as_str()
            .is_some_and(|d| d.contains("--reason")),
        "{note}"
    );
}
