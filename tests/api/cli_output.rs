//! How commands write: to a reader that goes away early (`| head`), and to a terminal that
//! reports no size.

use crate::{cli_ops::cli_env, helpers::*};

/// Runs the binary with its stdout a pipe nobody reads any more: the first write fails with
/// EPIPE, as in `authauth … | head -1` once `head` has what it wants.
fn run_into_closed_pipe(
    dir: &std::path::Path,
    vars: &[(String, String)],
    args: &[&str],
) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = std::process::Command::new(authauth_bin());
    cmd.current_dir(dir)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // The parent's copy of the write end is gone with `cmd`; only the child holds the pipe.
    drop(cmd);
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_reader_that_goes_away_is_a_normal_end_for_every_command() {
    let app = spawn_app_with(AppOptions::default().backend(Backend::Sqlite)).await;
    app.signed_up_client("piped@example.com").await;
    let env = cli_env(&app);
    for args in [
        &["config", "check"][..],
        &["openapi"][..],
        &["users", "list"][..],
        &["users", "list", "--json"][..],
        &["sessions", "list"][..],
        &["sessions", "list", "--json"][..],
    ] {
        let out = run_into_closed_pipe(&app.dir.0, &env, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?} said something about it: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_keep_readable_columns_on_a_terminal_that_reports_no_size() {
    let app = spawn_app_with(AppOptions::default().backend(Backend::Sqlite)).await;
    app.signed_up_client("zero@example.com").await;
    // Some terminals (serial consoles, a `docker exec -t` before its first resize, CI runners)
    // report 0 rows and 0 columns.
    let mut cmd = std::process::Command::new("sh");
    cmd.current_dir(&app.dir.0)
        .env_clear()
        .envs(cli_env(&app))
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("-c")
        .arg("stty rows 0 cols 0 && exec \"$0\" users list")
        .arg(authauth_bin());
    let raw = tokio::task::block_in_place(|| {
        let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
        p.exp_eof().unwrap()
    });
    // rexpect hands back one `char` per byte read.
    let bytes: Vec<u8> = raw.chars().map(|c| c as u32 as u8).collect();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("zero@example.com"),
        "the e-mail column collapsed:\n{text}"
    );
    let widest = text
        .lines()
        .map(|l| l.trim_end().chars().count())
        .max()
        .unwrap_or(0);
    assert!(
        widest <= 80,
        "wider than the 80-column fallback ({widest}):\n{text}"
    );
}
