//! The audit trail: what each action records (type, user, session, actor, reason, address,
//! request id), from the API and from the operator CLI; nothing for a plain authenticated
//! request; a logout while the database is away still succeeds and its event lands later;
//! `GET /auth/activity`; `events list`; retention.

use std::time::{Duration, Instant};

use authauth::audit::query::{self, Filter, Row};
use serde_json::Value;
use uuid::Uuid;

use crate::{cli_ops::cli, helpers::*};

/// The user's events, oldest first, once `done` holds for them (the writer is asynchronous).
async fn events_until(app: &TestApp, user: Uuid, done: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut rows = query::list(
            &app.state.db,
            &Filter {
                user_id: Some(user),
                limit: 1000,
                ..Filter::default()
            },
        )
        .await
        .unwrap_or_default();
        rows.reverse();
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "the audit trail never got there: {:#?}",
            rows.iter()
                .map(|r| (&r.event_type, &r.reason))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn types(rows: &[Row]) -> Vec<&str> {
    rows.iter().map(|r| r.event_type.as_str()).collect()
}

fn detail(row: &Row) -> Value {
    serde_json::from_str(&row.detail).unwrap()
}

async fn user_id(app: &TestApp, c: &reqwest::Client) -> Uuid {
    app.me(c).await.1["user"]["id"].as_str().unwrap().parse().unwrap()
}

per_backend!(a_users_sign_ins_sessions_and_password_change_are_in_the_trail_and_plain_requests_are_not);
async fn a_users_sign_ins_sessions_and_password_change_are_in_the_trail_and_plain_requests_are_not(
    backend: Backend,
) {
    let app = spawn_app_with(
        AppOptions::default()
            .backend(backend)
            .var("SESSION_ROTATION_INTERVAL", "3s")
            .var("SESSION_ROTATION_GRACE", "2s"),
    )
    .await;
    let (a, cookie) = app.signed_up_client("audit-alice@example.com").await;
    let alice = user_id(&app, &a).await;
    let rows = events_until(&app, alice, |r| r.len() >= 3).await;
    assert_eq!(
        types(&rows),
        ["user.signed_up", "email.verification_sent", "session.created"]
    );
    let first_session = rows[2].session_id.clone().unwrap();
    assert_eq!(rows[2].actor, "user");
    assert_eq!(rows[2].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(detail(&rows[2])["method"], "password");

    // A failed sign-in, with the request id the client sent.
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", app.origin())
        .header("x-request-id", "audit-test-failed-login")
        .json(&serde_json::json!({"email": "audit-alice@example.com", "password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // A sign-in whose incoming request id is malformed: the audit trail records the id the
    // server gave the request instead, the one its response carries.
    let b = client();
    let resp = b
        .post(app.url("/auth/login"))
        .header("origin", app.origin())
        .header("x-request-id", "not a well-formed id")
        .json(&serde_json::json!({"email": "audit-alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let given = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(given, "not a well-formed id");
    let rows = events_until(&app, alice, |r| r.len() >= 6).await;
    assert_eq!(
        types(&rows)[3..],
        ["sign_in.failed", "session.created", "sign_in.succeeded"]
    );
    assert_eq!(rows[3].request_id.as_deref(), Some("audit-test-failed-login"));
    assert_eq!(detail(&rows[3])["failure"], "bad_credentials");
    assert_eq!(rows[3].session_id, None);
    assert_eq!(rows[5].session_id, rows[4].session_id);
    assert_eq!(rows[4].request_id.as_deref(), Some(given.as_str()));
    assert_eq!(rows[5].request_id.as_deref(), Some(given.as_str()));

    // Plain authenticated requests record nothing; a rotation does.
    for _ in 0..5 {
        assert_eq!(app.me(&a).await.0, 200);
    }
    app.advance(Duration::from_secs(4));
    assert_eq!(app.me(&a).await.0, 200);
    let rows = events_until(&app, alice, |r| r.len() >= 7).await;
    assert_eq!(types(&rows)[6], "session.rotated");
    assert_eq!(rows[6].session_id.as_deref(), Some(first_session.as_str()));

    // Logout of one browser, then a password change from the other.
    assert_eq!(app.logout(&b).await.status(), 204);
    let resp = app
        .post_json(
            &a,
            "/auth/password",
            &serde_json::json!({"currentPassword": PASSWORD, "newPassword": "another horse battery staple"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let rows = events_until(&app, alice, |r| r.len() >= 11).await;
    assert_eq!(
        types(&rows)[7..],
        [
            "session.ended",
            "password.changed",
            "session.ended",
            "session.created"
        ]
    );
    assert_eq!(rows[7].reason.as_deref(), Some("logout"));
    assert_eq!(rows[7].session_id, rows[4].session_id);
    assert_eq!(rows[9].reason.as_deref(), Some("password_changed"));
    assert_eq!(rows[9].session_id.as_deref(), Some(first_session.as_str()));
    assert!(rows.iter().all(|r| r.actor == "user"));
    // Nothing else came: the plain requests above left no trace.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows = events_until(&app, alice, |_| true).await;
    assert_eq!(rows.len(), 11);
    // No password and no session token anywhere in the trail (ASVS V7.1.1).
    let trail = format!("{rows:?}");
    for secret in [
        PASSWORD,
        "not the password",
        "another horse battery staple",
        cookie.as_str(),
    ] {
        assert!(!trail.contains(secret), "the trail holds a secret");
    }
    let token = cookie.split('.').next().unwrap_or_default();
    assert!(token.len() > 16 && !trail.contains(token));
}

/// The OS login the tests run as, as the CLI records it.
fn os_login() -> String {
    let out = std::process::Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

per_backend!(operator_actions_are_recorded_with_the_os_user_who_ran_them);
async fn operator_actions_are_recorded_with_the_os_user_who_ran_them(backend: Backend) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let out = cli_with_stdin(
        &app,
        &[
            "users",
            "create",
            "--email",
            "audit-bob@example.com",
            "--name",
            "Bob",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let b = client();
    assert_eq!(
        app.login_with(&b, "audit-bob@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    let bob = user_id(&app, &b).await;
    // The app's own events first (the CLI below blocks the runtime the app runs on).
    events_until(&app, bob, |r| r.len() >= 3).await;
    for args in [
        &[
            "sessions",
            "revoke",
            "--user",
            "audit-bob@example.com",
            "--reason",
            "laptop stolen",
            "--yes",
        ][..],
        &["users", "disable", "audit-bob@example.com", "--yes"],
        &["users", "enable", "audit-bob@example.com"],
        &["users", "unlock", "audit-bob@example.com"],
    ] {
        let out = cli(&app, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let rows = events_until(&app, bob, |r| r.len() >= 7).await;
    assert_eq!(
        types(&rows),
        [
            "user.created",
            "session.created",
            "sign_in.succeeded",
            "session.ended",
            "user.disabled",
            "user.enabled",
            "user.unlocked"
        ]
    );
    let login = os_login();
    for r in [&rows[0], &rows[3], &rows[4], &rows[5], &rows[6]] {
        assert_eq!(r.actor, "operator", "{r:?}");
        assert_eq!(r.actor_name.as_deref(), Some(login.as_str()), "{r:?}");
    }
    assert_eq!(rows[2].actor, "user");
    assert_eq!(rows[3].reason.as_deref(), Some("operator"));
    assert_eq!(detail(&rows[3])["message"], "laptop stolen");

    // `events list`: JSON for scripts, a table for people; a type that does not exist is a
    // usage error naming the ones that do.
    let out = cli(
        &app,
        &["events", "list", "--user", "audit-bob@example.com", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 7);
    assert_eq!(listed[0]["type"], "user.unlocked", "newest first");
    assert_eq!(listed[3]["type"], "session.ended");
    assert_eq!(listed[3]["operator"], login.as_str());
    assert_eq!(listed[3]["detail"]["message"], "laptop stolen");
    let out = cli(
        &app,
        &[
            "events",
            "list",
            "--user",
            "audit-bob@example.com",
            "--type",
            "session.ended",
            "--since",
            "1h",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table.contains("session.ended") && table.contains(&format!("operator {login}")),
        "{table}"
    );
    assert!(!table.contains("user.unlocked"), "{table}");
    let out = cli(&app, &["events", "list", "--type", "session.exploded"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("session.ended"), "{}", stderr(&out));
}

fn cli_with_stdin(app: &TestApp, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut cmd = std::process::Command::new(authauth_bin());
    cmd.current_dir(&app.dir.0)
        .env_clear()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in crate::cli_ops::cli_env(app) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{input}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_logout_while_the_database_is_away_succeeds_and_its_event_lands_when_it_returns() {
    let app = spawn_app().await;
    let (a, _) = app.signed_up_client("audit-outage@example.com").await;
    let alice = user_id(&app, &a).await;
    events_until(&app, alice, |r| r.len() >= 3).await;
    let db = app.db.as_ref().unwrap().name.clone();
    let admin = sea_orm::Database::connect(postgres_admin_url()).await.unwrap();
    use sea_orm::ConnectionTrait;
    // The database goes away for the app: no new connection, and the open ones are cut.
    admin
        .execute_unprepared(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
        ))
        .await
        .unwrap();
    // Sessions live in Redis: signing out needs no database, and does not wait for the audit.
    assert_eq!(app.logout(&a).await.status(), 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    admin
        .execute_unprepared(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let rows = events_until(&app, alice, |r| r.len() >= 4).await;
    assert_eq!(types(&rows)[3], "session.ended");
    assert_eq!(rows[3].reason.as_deref(), Some("logout"));
    admin.close().await.ok();
}

#[tokio::test]
async fn activity_shows_the_users_own_events_newest_first_in_pages() {
    let app = spawn_app().await;
    let (a, _) = app.signed_up_client("activity-alice@example.com").await;
    let (_b, _) = app.signed_up_client("activity-bob@example.com").await;
    let alice = user_id(&app, &a).await;
    let out = cli(
        &app,
        &[
            "sessions",
            "revoke",
            "--user",
            "activity-bob@example.com",
            "--yes",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", app.origin())
        .json(&serde_json::json!({"email": "activity-alice@example.com", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    events_until(&app, alice, |r| r.len() >= 4).await;

    let page = |query: &'static str| {
        let (app, a) = (&app, &a);
        async move {
            let resp = a
                .get(app.url(&format!("/auth/activity{query}")))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (status, all) = page("").await;
    assert_eq!(status, 200, "{all}");
    let events = all["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "sign_in.failed",
            "session.created",
            "email.verification_sent",
            "user.signed_up"
        ]
    );
    assert_eq!(events[0]["failure"], "bad_credentials");
    assert_eq!(events[0]["ip"], "127.0.0.1");
    assert_eq!(events[1]["method"], "password");
    assert!(all.get("nextBefore").is_none());

    let (_, first) = page("?limit=2").await;
    assert_eq!(first["events"].as_array().unwrap().len(), 2);
    let before = first["nextBefore"].as_i64().unwrap();
    let resp = a
        .get(app.url(&format!("/auth/activity?limit=2&before={before}")))
        .send()
        .await
        .unwrap();
    let second: Value = resp.json().await.unwrap();
    let second = second["events"].as_array().unwrap();
    assert_eq!(second.len(), 2);
    assert_eq!(second[0]["type"], "email.verification_sent");
    assert_eq!(second[1]["type"], "user.signed_up");

    assert_eq!(page("?limit=0").await.0, 400);
    assert_eq!(page("?limit=101").await.0, 400);
    let resp = client().get(app.url("/auth/activity")).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // Bob's page shows the operator's revocation, but not who the operator is.
    let b = client();
    assert_eq!(
        app.login_with(&b, "activity-bob@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    let resp = b.get(app.url("/auth/activity")).send().await.unwrap();
    let text = resp.text().await.unwrap();
    let bob: Value = serde_json::from_str(&text).unwrap();
    let ended = bob["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "session.ended")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(ended["actor"], "operator");
    assert_eq!(ended["reason"], "operator");
    assert!(!text.contains(&os_login()) || os_login() == "user", "{text}");
    assert!(!text.contains("activity-alice"), "{text}");
}

#[tokio::test]
async fn events_past_the_retention_are_purged_and_recent_ones_kept() {
    let app = spawn_app().await;
    let (a, _) = app.signed_up_client("retention@example.com").await;
    let alice = user_id(&app, &a).await;
    events_until(&app, alice, |r| r.len() >= 3).await;
    let day = 24 * 3600 * 1000;
    let retention = Duration::from_secs(90 * 24 * 3600);
    let kept = query::purge(&app.state.db, retention, app.now() + 89 * day)
        .await
        .unwrap();
    assert_eq!(kept, 0);
    assert_eq!(events_until(&app, alice, |_| true).await.len(), 3);
    let purged = query::purge(&app.state.db, retention, app.now() + 91 * day)
        .await
        .unwrap();
    assert!(purged >= 2);
    assert!(events_until(&app, alice, |_| true).await.is_empty());
}

per_backend!(sessions_watch_on_a_terminal_shows_a_revocation_by_another_process_within_a_second);
async fn sessions_watch_on_a_terminal_shows_a_revocation_by_another_process_within_a_second(
    backend: Backend,
) {
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let (a, _) = app.signed_up_client("watch-alice@example.com").await;
    let alice = user_id(&app, &a).await;
    let env = crate::cli_ops::cli_env(&app);
    let dir = app.dir.0.clone();
    let command = move |args: &[&str]| {
        let mut cmd = std::process::Command::new(authauth_bin());
        cmd.current_dir(&dir)
            .env_clear()
            .envs(env.clone())
            .env("TERM", "xterm")
            .args(args);
        cmd
    };
    let (p, took) = tokio::task::spawn_blocking(move || {
        let mut p = rexpect::session::spawn_command(command(&["sessions", "watch"]), Some(20_000)).unwrap();
        p.exp_string("watching session events").unwrap();
        let out = command(&[
            "sessions",
            "revoke",
            "--user",
            "watch-alice@example.com",
            "--reason",
            "stolen",
            "--yes",
        ])
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let revoked = Instant::now();
        p.exp_regex(&format!(
            "session\\.ended +user={alice} .*reason=operator .*message=stolen"
        ))
        .unwrap();
        (p, revoked.elapsed())
    })
    .await
    .unwrap();
    assert!(
        took < Duration::from_secs(1),
        "the line came {took:?} after the revocation"
    );
    assert_eq!(app.me(&a).await.0, 401);
    // Ctrl-C ends it cleanly.
    let mut p = p;
    tokio::task::spawn_blocking(move || {
        p.send_control('c').unwrap();
        p.exp_eof().unwrap();
        match p.process().wait().unwrap() {
            rexpect::process::WaitStatus::Exited(_, code) => assert_eq!(code, 0),
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap();
}

per_backend!(sessions_watch_json_writes_one_line_per_event_at_once_when_piped);
async fn sessions_watch_json_writes_one_line_per_event_at_once_when_piped(backend: Backend) {
    use std::io::BufRead;
    let app = spawn_app_with(AppOptions::default().backend(backend)).await;
    let mut cmd = std::process::Command::new(authauth_bin());
    cmd.current_dir(&app.dir.0)
        .env_clear()
        .envs(crate::cli_ops::cli_env(&app))
        .args(["sessions", "watch", "--json", "--user", "watch-bob@example.com"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // The user must exist before the watch can filter on it, and the events of the sign-up
    // be behind it.
    let (b, _) = app.signed_up_client("watch-bob@example.com").await;
    let bob = user_id(&app, &b).await;
    // user.signed_up, email.verification_sent, session.created.
    events_until(&app, bob, |r| r.len() >= 3).await;
    let mut child = cmd.spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    err.read_line(&mut banner).unwrap();
    assert!(banner.contains("watching"), "{banner}");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // Another user's sign-in is not shown; Bob's logout is, as soon as it happens.
    let _ = app.signed_up_client("watch-carol@example.com").await;
    assert_eq!(app.logout(&b).await.status(), 204);
    // Waited for off the runtime, which also runs the app (and its audit writer).
    let (rx, received) = tokio::task::spawn_blocking(move || {
        let received = rx.recv_timeout(Duration::from_secs(5));
        (rx, received)
    })
    .await
    .unwrap();
    let line = match received {
        Ok(line) => line,
        Err(e) => {
            use std::io::Read;
            let _ = child.kill();
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            let rows = events_until(&app, bob, |_| true).await;
            panic!(
                "no line for the logout ({e}); the watch said: {banner}{rest}; the trail: {:?}",
                rows.iter().map(|r| (r.id, &r.event_type)).collect::<Vec<_>>()
            );
        }
    };
    let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(event["type"], "session.ended", "{line}");
    assert_eq!(event["reason"], "logout");
    assert_eq!(event["actor"], "user");
    assert!(rx.try_recv().is_err(), "one line per event, nothing else");
    // SIGINT (Ctrl-C) ends it with status 0.
    // SAFETY: kill(2) with the pid of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_watch_says_when_it_loses_the_feed_and_carries_on_when_redis_returns() {
    use std::io::BufRead;
    // A private Redis, to stop and start again.
    let mut redis = crate::helpers::servers::RedisServer::start(&[]);
    let app = spawn_app_with(AppOptions::default().var("REDIS_URL", &redis.url())).await;
    let (_a, _) = app.signed_up_client("outage-alice@example.com").await;
    let mut child = std::process::Command::new(authauth_bin())
        .current_dir(&app.dir.0)
        .env_clear()
        .envs(crate::cli_ops::cli_env(&app))
        .args(["sessions", "watch", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            if err_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let (out_tx, out_rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            if out_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = |rx: &std::sync::mpsc::Receiver<String>, what: &str| {
        rx.recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    };
    assert!(next(&err_rx, "the banner").contains("watching"));
    redis.stop();
    assert!(next(&err_rx, "the outage").contains("lost the event feed"));
    redis.resume();
    assert!(next(&err_rx, "the recovery").contains("answers again"));
    // The app finds Redis again too (its first command after the outage may fail).
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get("/ready").await.status() != 200 {
        assert!(Instant::now() < deadline, "the app never found Redis again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (b, _) = app.signed_up_client("outage-bob@example.com").await;
    assert_eq!(app.logout(&b).await.status(), 204);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("session.ended")) {
        seen.push(next(&out_rx, "bob's logout after the outage"));
    }
    // SAFETY: kill(2) with the pid of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[tokio::test]
async fn a_wrong_current_password_and_a_sign_up_flood_are_recorded() {
    let app = spawn_app().await;
    let (a, _) = app.signed_up_client("pwchange@example.com").await;
    let alice = user_id(&app, &a).await;
    let session = app.me(&a).await.1["session"]["id"].as_str().unwrap().to_string();
    let resp = app
        .post_json(
            &a,
            "/auth/password",
            &serde_json::json!({"currentPassword": "not my password", "newPassword": "another horse battery staple"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    let rows = events_until(&app, alice, |r| r.len() >= 4).await;
    assert_eq!(rows[3].event_type, "sign_in.failed");
    assert_eq!(detail(&rows[3])["method"], "password_change");
    assert_eq!(detail(&rows[3])["failure"], "bad_credentials");
    assert_eq!(rows[3].session_id.as_deref(), Some(session.as_str()));

    // Account creation is limited per network: the refusal is recorded (with no user — none
    // was created). Weak passwords keep each attempt cheap; every attempt counts.
    let mut refused = false;
    for i in 0..40 {
        let resp = app
            .signup_with(&client(), &format!("flood{i}@example.com"), "password1234")
            .await;
        if resp.status() == 429 {
            refused = true;
            break;
        }
    }
    assert!(refused, "the sign-up limit never applied");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = query::list(
            &app.state.db,
            &Filter {
                kind: Some("sign_up.throttled".into()),
                limit: 10,
                ..Filter::default()
            },
        )
        .await
        .unwrap();
        if let Some(r) = rows.first() {
            assert_eq!(r.user_id, None);
            assert_eq!(r.ip.as_deref(), Some("127.0.0.1"));
            break;
        }
        assert!(Instant::now() < deadline, "no sign_up.throttled event");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
