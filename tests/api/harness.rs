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

#[tokio::test]
async fn the_test_redis_cluster_serves_every_slot_through_any_node() {
    let cluster = shared_cluster();
    for node in &cluster.nodes {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut node.connection())
            .unwrap();
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        assert!(info.contains("cluster_known_nodes:6"), "{info}");
    }

    // Keys spread over the slots of every master, written through a client that only knows
    // the first node and read back through one that only knows the last.
    let prefix = unique("harness-cluster:");
    let keys: Vec<String> = (0..60).map(|i| format!("{prefix}:{i}")).collect();
    let urls = cluster.urls();
    let mut writer = redis::cluster::ClusterClient::new(vec![urls[0].clone()])
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    for key in &keys {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(format!("value of {key}"))
            .arg("EX")
            .arg(60)
            .query_async(&mut writer)
            .await
            .unwrap();
    }
    let mut reader = redis::cluster::ClusterClient::new(vec![urls[2].clone()])
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    for key in &keys {
        let value: Option<String> = redis::cmd("GET").arg(key).query_async(&mut reader).await.unwrap();
        assert_eq!(value.as_deref(), Some(format!("value of {key}").as_str()));
    }
    // A node's own SCAN sees only the keys of its slots: each of the three primaries got some.
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3, "three primaries, one replica each");
    for node in primaries.iter().map(|&i| &cluster.nodes[i]) {
        let (_, local): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(0)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut node.connection())
            .unwrap();
        assert!(
            !local.is_empty(),
            "no key landed on the master on port {}",
            node.port
        );
    }
}

#[test]
fn the_test_sentinels_agree_on_the_primary_and_the_replica_follows_it() {
    let topology = shared_sentinel();
    for sentinel in &topology.sentinels {
        let (host, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(RedisSentinel::MASTER_NAME)
            .query(&mut sentinel.connection())
            .unwrap();
        assert_eq!((host.as_str(), port), ("127.0.0.1", topology.primary.port));
    }

    let key = unique("harness-sentinel:");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("replicated")
        .arg("EX")
        .arg(60)
        .query(&mut topology.primary.connection())
        .unwrap();
    let mut replica = topology.replica.connection();
    let mut value: Option<String> = None;
    for _ in 0..50 {
        value = redis::cmd("GET").arg(&key).query(&mut replica).unwrap();
        if value.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        value.as_deref(),
        Some("replicated"),
        "the replica follows the primary"
    );
}
