//! The harness itself: the servers it starts are what the tests believe they are.

use std::{ffi::OsStr, path::PathBuf};

use crate::helpers::{servers::require_binary, *};

#[test]
fn a_missing_server_binary_fails_naming_the_package_to_install() {
    let nowhere = TempDir::new();
    let err = require_binary(
        "redis-server",
        "redis-server",
        ". (TEST_REDIS_URL points most tests at a running Redis instead.)",
        nowhere.0.as_os_str(),
        &[],
    )
    .unwrap_err();
    assert!(err.contains("`redis-server`, which is not on PATH"), "{err}");
    assert!(err.contains("apt-get install redis-server"), "{err}");
    assert!(err.contains("TEST_REDIS_URL"), "{err}");

    let err = require_binary(
        "initdb",
        "postgresql",
        ", or set TEST_POSTGRES_URL to a running PostgreSQL",
        OsStr::new(""),
        &[PathBuf::from("/nonexistent/postgresql/15/bin")],
    )
    .unwrap_err();
    assert!(err.contains("nor in /nonexistent/postgresql/15/bin"), "{err}");
    assert!(err.contains("apt-get install postgresql"), "{err}");
}
