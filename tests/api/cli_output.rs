//! How commands write: to a reader that goes away early (`| head`).

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
