//! Configuration as the operator meets it: through the real binary.

use crate::helpers::*;

#[test]
fn production_with_a_bad_port_names_every_problem_in_one_message_and_exits_2() {
    let dir = TempDir::new();
    let out = run_cli(&dir.0, &[("APP_ENV", "production"), ("PORT", "abc")], &["serve"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: invalid configuration (5 problems):"),
        "{err}"
    );
    for var in [
        "PORT",
        "DATABASE_URL",
        "REDIS_URL",
        "SESSION_SECRET",
        "PUBLIC_URL",
    ] {
        assert!(
            err.contains(&format!("  - {var}: ")),
            "{var} not named in:\n{err}"
        );
    }
    assert!(stdout(&out).is_empty());
    // Nothing was created on the way out.
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0);
}

#[test]
fn node_env_is_accepted_as_app_env() {
    let dir = TempDir::new();
    let out = run_cli(&dir.0, &[("NODE_ENV", "production")], &["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("SESSION_SECRET"));
}

#[tokio::test]
async fn config_check_connects_to_postgres_and_redis_and_hides_passwords() {
    let db = TestDb::migrated().await;
    let dir = TempDir::new();
    let secret = "x".repeat(40);
    let out = run_cli(
        &dir.0,
        &[
            ("APP_ENV", "production"),
            ("PUBLIC_URL", "https://auth.example.com"),
            ("DATABASE_URL", db.url.as_str()),
            ("REDIS_URL", redis_url().as_str()),
            ("SESSION_SECRET", secret.as_str()),
        ],
        &["config", "check"],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("configuration: valid (production)"), "{text}");
    assert!(
        text.contains("database:         ok, migrations up to date"),
        "{text}"
    );
    assert!(text.contains("session store:    ok (redis standalone)"), "{text}");
    assert!(!text.contains(&secret));
}

#[tokio::test]
async fn config_check_fails_with_exit_1_when_redis_does_not_answer() {
    let db = TestDb::migrated().await;
    let dir = TempDir::new();
    let out = run_cli(
        &dir.0,
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("REDIS_URL", "redis://127.0.0.1:1"),
        ],
        &["config", "check"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("session store:    FAILED (redis)"));
    assert!(stderr(&out).contains("session store did not answer"));
}

/// The `.env` of the NestJS tutorial authauth grew from, unchanged but for local hosts.
#[tokio::test]
async fn the_tutorials_env_file_works_unchanged() {
    let db = TestDb::migrated().await;
    let dir = TempDir::new();
    let admin = url::Url::parse(&postgres_admin_url()).unwrap();
    let redis = url::Url::parse(&redis_url()).unwrap();
    // The test servers' passwords, if any (the docker compose route has them).
    let env_file = format!(
        "NODE_ENV=development\nPORT=3000\n\
         POSTGRES_HOST={}\nPOSTGRES_PORT={}\nPOSTGRES_USER={}\nPOSTGRES_PASSWORD={}\nPOSTGRES_DB_NAME={}\n\
         REDIS_HOST={}\nREDIS_PORT={}\nREDIS_PASSWORD={}\n\
         SESSION_SECRET=keyboard-cat\n\
         GOOGLE_CLIENT_ID=1234.apps.googleusercontent.com\nGOOGLE_CLIENT_SECRET=tutorial-google-secret\n\
         GOOGLE_CALLBACK_URL=http://localhost:3000/auth/google/callback\n",
        admin.host_str().unwrap(),
        admin.port().unwrap_or(5432),
        admin.username(),
        admin.password().unwrap_or(""),
        db.name,
        redis.host_str().unwrap(),
        redis.port().unwrap_or(6379),
        redis.password().unwrap_or(""),
    );
    std::fs::write(dir.0.join(".env"), env_file).unwrap();
    let out = run_cli(&dir.0, &[], &["config", "check"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let redacted = |url: &url::Url| if url.password().is_some() { ":***" } else { "" };
    let expected_db = format!(
        "postgres://{}{}@{}:{}/{}",
        admin.username(),
        redacted(&admin),
        admin.host_str().unwrap(),
        admin.port().unwrap_or(5432),
        db.name
    );
    assert!(text.contains(&expected_db), "{text}");
    assert!(
        text.contains(&format!(
            "redis standalone redis://{}{}:{}",
            if redis.password().is_some() { ":***@" } else { "" },
            redis.host_str().unwrap(),
            redis.port().unwrap_or(6379)
        )),
        "{text}"
    );
    assert!(text.contains("google sign-in   issuer https://accounts.google.com, callback http://localhost:3000/auth/google/callback"), "{text}");
    // The tutorial's short secret works in development, with a warning.
    assert!(text.contains("warning: SESSION_SECRET"), "{text}");
    assert!(!text.contains("tutorial-google-secret") && !text.contains("keyboard-cat"));
}

#[test]
fn help_is_real_documentation() {
    let dir = TempDir::new();
    let out = run_cli(&dir.0, &[], &["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for cmd in ["serve", "migrate", "openapi", "config"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = run_cli(&dir.0, &[], &["migrate", "fresh", "--help"]);
    assert!(stdout(&out).contains("Destroys all data"));
    let out = run_cli(&dir.0, &[], &["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn read_only_commands_in_an_empty_directory_create_nothing_and_say_why() {
    for args in [
        &["users", "list"][..],
        &["sessions", "list"][..],
        &["users", "show", "a@example.com"][..],
    ] {
        let dir = TempDir::new();
        let out = run_cli(&dir.0, &[], args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("authauth serve"),
            "{args:?}: the message should say how the database comes to exist: {}",
            stderr(&out)
        );
        let left: Vec<_> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
}

#[test]
fn an_operator_command_never_writes_a_development_secret() {
    // `users create` may create the embedded database (it is about to hold the account), but
    // the CLI signs no cookie, so it has no reason to invent the server's secret.
    use std::io::Write;
    let dir = TempDir::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authauth"))
        .current_dir(&dir.0)
        .env_clear()
        .args([
            "users",
            "create",
            "--email",
            "first@example.com",
            "--name",
            "First",
        ])
        .arg("--password-stdin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!dir.0.join("authauth.secret").exists());
    assert_sqlite_is_private(&dir.0.join("authauth.sqlite"));
}

/// The embedded database holds e-mails and password hashes: only its owner may read it.
pub fn assert_sqlite_is_private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
}

#[test]
fn the_development_secret_and_database_are_ignored_by_git() {
    let ignore = include_str!("../../.gitignore");
    for needed in ["authauth.secret", "*.sqlite"] {
        assert!(
            ignore.lines().any(|l| l.trim() == needed),
            ".gitignore lacks {needed}"
        );
    }
}

/// A newcomer's `.env`: `.env.example` with Google sign-in switched on, the database and Redis
/// pointed at this run's servers.
fn newcomers_env(dir: &TempDir) -> Vec<(String, String)> {
    let example = include_str!("../../.env.example");
    std::fs::write(
        dir.0.join(".env"),
        format!("{example}\nGOOGLE_CLIENT_ID=1234.apps.googleusercontent.com\nGOOGLE_CLIENT_SECRET=s3cret\n"),
    )
    .unwrap();
    vec![
        ("DATABASE_URL".into(), dir.sqlite_url()),
        ("REDIS_URL".into(), redis_url()),
        // The example's password is for its docker compose Redis (empty counts as unset).
        ("REDIS_PASSWORD".into(), String::new()),
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
    ]
}

fn as_refs(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn config_check_validates_the_mode_that_will_run_and_says_what_production_adds() {
    let dir = TempDir::new();
    let vars = newcomers_env(&dir);
    let out = run_cli(&dir.0, &as_refs(&vars), &["migrate", "up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // As development (the file's APP_ENV) it passes, and says production would not.
    let out = run_cli(&dir.0, &as_refs(&vars), &["config", "check"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("configuration: valid (development)"), "{text}");
    for var in ["GOOGLE_CALLBACK_URL", "SESSION_SECRET", "PUBLIC_URL"] {
        assert!(text.contains(var), "production's {var} not mentioned:\n{text}");
    }
    assert!(text.contains("--env production"), "{text}");
    // As production, what `APP_ENV=production authauth serve` would refuse.
    let out = run_cli(
        &dir.0,
        &as_refs(&vars),
        &["config", "check", "--env", "production"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    for var in ["GOOGLE_CALLBACK_URL", "SESSION_SECRET", "PUBLIC_URL"] {
        assert!(
            err.contains(&format!("  - {var}: ")),
            "{var} not named in:\n{err}"
        );
    }
    let serve = run_cli(
        &dir.0,
        &as_refs(&[vars.clone(), vec![("APP_ENV".into(), "production".into())]].concat()),
        &["serve"],
    );
    assert_eq!(serve.status.code(), Some(2));
    assert_eq!(stderr(&serve), err, "config check and serve disagree");
    // `--env` takes only the two modes.
    let out = run_cli(&dir.0, &as_refs(&vars), &["config", "check", "--env", "staging"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn config_check_fails_while_migrations_are_pending_on_a_configured_database() {
    let db = TestDb::create().await;
    let dir = TempDir::new();
    let out = run_cli(&dir.0, &[("DATABASE_URL", db.url.as_str())], &["config", "check"]);
    // `serve` would refuse to start (exit 2): so does the check that says it is ready.
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("authauth migrate up"), "{}", stderr(&out));
}

#[test]
fn a_mistyped_variable_is_reported_with_what_it_probably_meant() {
    let dir = TempDir::new();
    let out = run_cli(&dir.0, &[("SESSION_IDLE_TIMOUT", "5m")], &["config", "check"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("SESSION_IDLE_TIMEOUT"),
        "the intended variable is not suggested:\n{text}"
    );
    assert!(
        text.contains("warning: SESSION_IDLE_TIMOUT ") && text.contains("did you mean SESSION_IDLE_TIMEOUT?"),
        "{text}"
    );
    // In authauth's own `.env`, a variable with one of our prefixes that we do not read is
    // reported too, even when it is not a near miss.
    std::fs::write(dir.0.join(".env"), "SESSION_TIMEOUT=5m\n").unwrap();
    let text = stdout(&run_cli(&dir.0, &[], &["config", "check"]));
    assert!(text.contains("SESSION_TIMEOUT"), "{text}");
    // The environment is shared with everything else: a desktop's SESSION_MANAGER or a
    // proxy's HTTP_PROXY is not ours to complain about.
    std::fs::remove_file(dir.0.join(".env")).unwrap();
    let text = stdout(&run_cli(
        &dir.0,
        &[
            ("SESSION_MANAGER", "local/host:@/tmp/.ICE-unix/1"),
            ("HTTP_PROXY", "http://proxy:3128"),
        ],
        &["config", "check"],
    ));
    assert!(!text.contains("warning"), "{text}");
}

/// A `.env` line that does not parse is named by its number and variable — never shown: it may
/// hold a password, and after an unclosed quote the parser reads every line that follows,
/// secrets included.
#[test]
fn a_dotenv_line_that_does_not_parse_is_named_never_shown() {
    let dir = TempDir::new();
    std::fs::write(
        dir.0.join(".env"),
        "APP_ENV=development\nPOSTGRES_PASSWORD=it'sMine\nSESSION_SECRET=zz-marker-zz-marker-zz-marker-zz-marker\n",
    )
    .unwrap();
    let out = run_cli(&dir.0, &[], &["config", "check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 2 (POSTGRES_PASSWORD)"), "{err}");
    for secret in ["sMine", "zz-marker"] {
        assert!(!err.contains(secret), "{secret} shown:\n{err}");
        assert!(!stdout(&out).contains(secret));
    }
    // A secret wrapped onto a line of its own, below a commented copy of it: named by its
    // place, never by what it holds.
    std::fs::write(
        dir.0.join(".env"),
        "# 3f9a0c2bd41e\nSESSION_SECRET=\n3f9a0c2bd41e\n",
    )
    .unwrap();
    let out = run_cli(&dir.0, &[], &["config", "check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("3f9a0c2bd41e"), "{err}");
    assert!(err.contains("line 3 does not parse"), "{err}");
}

#[test]
fn serve_logs_a_mistyped_variable_when_it_starts() {
    let dir = TempDir::new();
    let mut server = Server::start(&dir.0, &[("PORT", "0"), ("SESSION_IDLE_TIMOUT", "5m")]);
    let logs = server.startup_logs.join("\n");
    assert!(logs.contains("SESSION_IDLE_TIMEOUT"), "{logs}");
    server.sigterm();
    server.wait_exit(std::time::Duration::from_secs(20));
}

#[test]
fn config_check_in_an_empty_directory_creates_nothing() {
    let dir = TempDir::new();
    let out = run_cli(&dir.0, &[], &["config", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("not created yet"), "{}", stdout(&out));
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "config check created {left:?}");
}
