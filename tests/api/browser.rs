//! The hosted pages in a real browser: headless Chromium (the Debian package `chromium`, never a
//! downloaded build) driven by `playwright-core` from `tests/browser/walk.mjs`, with JavaScript
//! off. The walk signs up, signs out, signs in, opens `/account`, sees two devices once a second
//! browser context signs in, signs that one out and sees it refused, and changes the password.
//!
//! Screenshots go to a temporary directory; with `AUTHAUTH_SCREENSHOTS=docs/screenshots` they
//! replace the ones docs/pages.md shows.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::helpers::*;

fn walk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Installs playwright-core once (`npm ci`, from package-lock.json), if missing.
fn ensure_npm() {
    npm_ci_once("browser", "playwright-core", "the browser walk");
}

/// The Chromium the walk drives: `$CHROMIUM`, else Debian's.
fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: install the Debian package `chromium` (apt-get install chromium)"
    );
    path
}

#[tokio::test]
async fn a_browser_walks_the_hosted_pages_without_javascript() {
    let chromium = chromium();
    ensure_npm();
    let app = spawn_app().await;
    let tmp = TempDir::new();
    let shots = match std::env::var("AUTHAUTH_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir),
        _ => tmp.0.join("screenshots"),
    };
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("walk.mjs")
        .arg(&app.address)
        .arg(&shots)
        .current_dir(walk_dir())
        .env("CHROMIUM", &chromium)
        // Where the app writes its mail: the walk follows a reset link from it.
        .env("OUTBOX", app.dir.0.join("outbox"))
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the walk finishes within 3 minutes")
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walk failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("walk: ok ("), "{stdout}");
    for step in [
        "ok sign up",
        "ok sign out",
        "ok sign in",
        "ok the account page lists two devices, this one marked",
        "ok sign the other device out; it is refused",
        "ok change the password",
        "ok only the new password signs in",
        "ok the two-step set-up page shows its QR code",
        "ok no page logged an error",
    ] {
        assert!(stdout.lines().any(|l| l == step), "missing `{step}`:\n{stdout}");
    }
    for page in [
        "signup",
        "login",
        "login-error",
        "account",
        "login-dark",
        "two-factor-setup",
    ] {
        let png = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{}", png.display());
    }
}

#[tokio::test]
async fn passkeys_register_sign_in_without_a_password_and_stand_as_a_second_factor_in_chromium() {
    let chromium = chromium();
    ensure_npm();
    let app = spawn_app().await;
    // WebAuthn binds credentials to a domain: the browser goes to localhost, not 127.0.0.1.
    let base = app.address.replace("127.0.0.1", "localhost");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("passkeys.mjs")
        .arg(&base)
        .current_dir(walk_dir())
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the passkey walk finishes within 3 minutes")
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the passkey walk failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for step in [
        "ok register a passkey",
        "ok sign in with the passkey and no password",
        "ok a password sign-in asks for the passkey as its second factor",
        "ok a cloned authenticator is refused",
        "ok delete the passkey: it no longer signs in, and the password alone does",
        "ok on the hosted pages: add a passkey, sign out, sign in with it",
    ] {
        assert!(stdout.lines().any(|l| l == step), "missing `{step}`:\n{stdout}");
    }
    // The clone was recorded for the owner and the operators.
    let out = crate::cli_ops::cli(
        &app,
        &["events", "list", "--type", "mfa.passkey_cloned", "--json"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Virtual key"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
