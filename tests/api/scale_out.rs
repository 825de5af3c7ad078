//! Several authauth servers on one Redis Cluster or Sentinel topology: revocation seen at once
//! everywhere, a rotation raced across servers, the operator CLI over every primary, and what
//! readiness reports. (Failovers are in `failover.rs`.)

use std::{collections::HashSet, time::Duration};

use serde_json::Value;

use crate::{
    cli_ops::cli,
    helpers::{
        servers::{test_ca, Acl, RedisCluster, RedisServer},
        *,
    },
};

/// The variables that put an app on the run's shared Redis Cluster.
pub(crate) fn on_cluster(opts: AppOptions, cluster: &RedisCluster) -> AppOptions {
    opts.var("REDIS_MODE", "cluster")
        .var("REDIS_URL", &cluster.redis_url())
}

/// The variables that put an app on the Sentinel topology `sentinels` watches.
pub(crate) fn on_sentinel(opts: AppOptions, sentinels: &[String]) -> AppOptions {
    opts.var("REDIS_MODE", "sentinel")
        .var("REDIS_URL", &sentinels.join(","))
        .var("REDIS_SENTINEL_MASTER", RedisSentinel::MASTER_NAME)
}

async fn cluster() -> &'static RedisCluster {
    tokio::task::spawn_blocking(shared_cluster).await.unwrap()
}

/// The ports of the primaries that hold a key under `prefix` (each node scanned to the end).
async fn primaries_holding(cluster: &'static RedisCluster, prefix: &str) -> HashSet<u16> {
    let primaries = tokio::task::spawn_blocking(|| cluster.primaries()).await.unwrap();
    let mut holders = HashSet::new();
    for node in primaries.into_iter().map(|i| &cluster.nodes[i]) {
        let mut conn = redis::Client::open(node.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        if !redis_keys(&mut conn, prefix).await.is_empty() {
            holders.insert(node.port);
        }
    }
    holders
}

async fn logout(app: &TestApp, cookie: &str) -> u16 {
    reqwest::Client::new()
        .post(app.url("/auth/logout"))
        .header("cookie", format!("{}={cookie}", app.cookie_name()))
        .header("origin", app.origin())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn on_a_cluster_a_revocation_through_one_server_or_the_cli_is_refused_at_the_next_request_on_another() {
    let cluster = cluster().await;
    let a = spawn_app_with(on_cluster(AppOptions::default(), cluster)).await;
    let b = spawn_app_with(on_cluster(AppOptions::default().sharing(&a), cluster)).await;
    let (_c, first) = a.signed_up_client("fleet-cluster@example.com").await;
    let second = set_cookie_value(
        &b.login_with(&client(), "fleet-cluster@example.com", PASSWORD)
            .await,
        b.cookie_name(),
    )
    .unwrap();
    for (app, cookie) in [(&a, &first), (&b, &first), (&a, &second), (&b, &second)] {
        assert_eq!(app.get_with_cookie("/auth/me", cookie).await.status(), 200);
    }

    // Logging out through B: A refuses the session at its very next request, saying why.
    assert_eq!(logout(&b, &first).await, 204);
    let resp = a.get_with_cookie("/auth/me", &first).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "session_revoked");

    // An operator revoking from the terminal: both servers refuse the other session at once.
    let out = cli(
        &a,
        &[
            "sessions",
            "revoke",
            "--user",
            "fleet-cluster@example.com",
            "--yes",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for app in [&a, &b] {
        let resp = app.get_with_cookie("/auth/me", &second).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], "session_revoked");
    }
}

#[tokio::test]
async fn on_a_cluster_parallel_requests_split_over_two_servers_across_a_rotation_have_exactly_one_successor()
{
    let cluster = cluster().await;
    let rotation = |o: AppOptions| {
        o.var("SESSION_ROTATION_INTERVAL", "3s")
            .var("SESSION_ROTATION_GRACE", "2s")
    };
    let a = spawn_app_with(on_cluster(rotation(AppOptions::default()), cluster)).await;
    let b = spawn_app_with(on_cluster(rotation(AppOptions::default().sharing(&a)), cluster)).await;
    let (_c, cookie) = a.signed_up_client("rotate-cluster@example.com").await;
    a.advance(Duration::from_millis(3100));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = if i % 2 == 0 { &a } else { &b };
        let (url, name, cookie) = (app.url("/auth/me"), app.cookie_name().to_string(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let resp = reqwest::Client::new()
                .get(url)
                .header("cookie", format!("{name}={cookie}"))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), set_cookie_value(&resp, &name))
        }));
    }
    let mut successors = HashSet::new();
    for t in tasks {
        let (status, set) = t.await.unwrap();
        assert_eq!(status, 200, "a parallel request was logged out");
        successors.extend(set);
    }
    assert_eq!(successors.len(), 1, "{successors:?}");
    let successor = successors.into_iter().next().unwrap();
    assert_ne!(successor, cookie);
    for app in [&a, &b] {
        assert_eq!(app.get_with_cookie("/auth/me", &successor).await.status(), 200);
    }
    a.advance(Duration::from_millis(2100));
    assert_eq!(
        b.get_with_cookie("/auth/me", &cookie).await.status(),
        401,
        "grace ended"
    );
}

#[tokio::test]
async fn on_a_cluster_the_cli_lists_every_session_once_and_revokes_by_user_all_and_disable() {
    let cluster = cluster().await;
    let app = spawn_app_with(on_cluster(AppOptions::default(), cluster)).await;
    // A user's sessions sit in the slot their id hashes to, and the server draws ids at random:
    // twelve users miss one of three primaries about one time in forty, so sign users up until
    // every primary holds a session. Thirty, the signups one network may make in an hour, miss
    // one about once in 60,000 runs.
    let mut cookies = Vec::new();
    let mut holders = HashSet::new();
    while holders.len() < 3 {
        assert!(
            cookies.len() < 30,
            "thirty users and their sessions sit on {holders:?} only"
        );
        let n = cookies.len();
        let (_c, cookie) = app.signed_up_client(&format!("spread-{n}@example.com")).await;
        cookies.push(cookie);
        if cookies.len() >= 12 {
            holders = primaries_holding(cluster, &app.redis_prefix).await;
        }
    }
    let listed = |app: &TestApp| -> Vec<String> {
        let out = cli(app, &["sessions", "list", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let all: Value = serde_json::from_str(&stdout(&out)).unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let ids = listed(&app);
    assert_eq!(ids.len(), cookies.len(), "{ids:?}");
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        cookies.len(),
        "a session listed twice"
    );

    let out = cli(
        &app,
        &["sessions", "revoke", "--user", "spread-0@example.com", "--yes"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(app.get_with_cookie("/auth/me", &cookies[0]).await.status(), 401);
    let out = cli(&app, &["users", "disable", "spread-1@example.com", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(app.get_with_cookie("/auth/me", &cookies[1]).await.status(), 401);
    assert_eq!(listed(&app).len(), cookies.len() - 2);

    let out = cli(&app, &["sessions", "revoke", "--all", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for cookie in &cookies {
        assert_eq!(app.get_with_cookie("/auth/me", cookie).await.status(), 401);
    }
    assert!(listed(&app).is_empty());
}

#[tokio::test]
async fn readiness_and_config_check_say_what_they_reached_on_a_cluster_and_through_sentinels() {
    let cluster = cluster().await;
    let app = spawn_app_with(on_cluster(AppOptions::default(), cluster)).await;
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(
        ready["checks"]["sessionStore"]["reached"], "cluster: 16384/16384 slots on 3 primaries",
        "{ready}"
    );
    let out = cli(&app, &["config", "check"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("redis cluster redis://127.0.0.1:"), "{text}");
    assert!(
        text.contains("ok (redis cluster: 16384/16384 slots on 3 primaries; primary 127.0.0.1:"),
        "{text}"
    );

    let (sentinels, primary) = tokio::task::spawn_blocking(|| {
        let t = shared_sentinel();
        (t.sentinel_urls(), t.primary.port)
    })
    .await
    .unwrap();
    let app = spawn_app_with(on_sentinel(AppOptions::default(), &sentinels)).await;
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(
        ready["checks"]["sessionStore"]["reached"],
        "sentinel: the primary answers"
    );
    // The public probe never names an internal address; the operator's terminal does.
    assert!(!ready.to_string().contains(&primary.to_string()), "{ready}");
    let out = cli(&app, &["config", "check"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("sentinel master  authauth"), "{text}");
    assert!(
        text.contains(&format!(
            "ok (redis sentinel: the primary answers; primary 127.0.0.1:{primary})"
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acl_users_are_used_on_a_cluster_and_kept_apart_from_the_sentinels_own() {
    // A cluster whose default user is off: only the named ACL user gets in.
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start_as(5000, Acl::DATA))
        .await
        .unwrap();
    let seeds: Vec<String> = cluster.nodes.iter().map(|n| n.bare_url()).collect();
    let as_user = |password: &str| {
        AppOptions::default()
            .var("REDIS_MODE", "cluster")
            .var("REDIS_URL", &seeds.join(","))
            .var("REDIS_USERNAME", Acl::DATA.user)
            .var("REDIS_PASSWORD", password)
    };
    let app = spawn_app_with(as_user(Acl::DATA.password)).await;
    let (c, _) = app.signed_up_client("acl-cluster@example.com").await;
    assert_eq!(app.me(&c).await.0, 200);
    let refused = spawn_app_with(as_user("not-the-password")).await;
    let ready = refused.get("/ready").await;
    assert_eq!(ready.status(), 503, "a wrong password must not pass readiness");

    // Sentinels with their own user, data nodes with another.
    let topology = tokio::task::spawn_blocking(RedisSentinel::start_with_acl)
        .await
        .unwrap();
    let sentinels: Vec<String> = topology.sentinels.iter().map(|s| s.bare_url()).collect();
    let app = spawn_app_with(
        AppOptions::default()
            .var("REDIS_MODE", "sentinel")
            .var("REDIS_URL", &sentinels.join(","))
            .var("REDIS_SENTINEL_MASTER", RedisSentinel::MASTER_NAME)
            .var("REDIS_SENTINEL_USERNAME", Acl::SENTINEL.user)
            .var("REDIS_SENTINEL_PASSWORD", Acl::SENTINEL.password)
            .var("REDIS_USERNAME", Acl::DATA.user)
            .var("REDIS_PASSWORD", Acl::DATA.password),
    )
    .await;
    let (c, _) = app.signed_up_client("acl-sentinel@example.com").await;
    assert_eq!(app.me(&c).await.0, 200);
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rediss_is_verified_against_redis_ca_file_on_a_server_and_on_a_cluster() {
    let (server, tls_port) = tokio::task::spawn_blocking(RedisServer::start_tls).await.unwrap();
    let ca = tokio::task::spawn_blocking(|| test_ca().ca.display().to_string())
        .await
        .unwrap();
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let app = spawn_app_with(
        AppOptions::default()
            .var("REDIS_URL", &url)
            .var("REDIS_CA_FILE", &ca),
    )
    .await;
    let (c, _) = app.signed_up_client("tls-server@example.com").await;
    assert_eq!(app.me(&c).await.0, 200);
    // The same server without the CA: its certificate is not trusted, nothing is sent.
    let untrusted = spawn_app_with(AppOptions::default().var("REDIS_URL", &url)).await;
    assert_eq!(untrusted.get("/ready").await.status(), 503);

    let (cluster, seeds) = tokio::task::spawn_blocking(RedisCluster::start_tls)
        .await
        .unwrap();
    let app = spawn_app_with(
        AppOptions::default()
            .var("REDIS_MODE", "cluster")
            .var("REDIS_URL", &seeds.join(","))
            .var("REDIS_CA_FILE", &ca),
    )
    .await;
    let (c, _) = app.signed_up_client("tls-cluster@example.com").await;
    assert_eq!(app.me(&c).await.0, 200);
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(
        ready["checks"]["sessionStore"]["reached"], "cluster: 16384/16384 slots on 3 primaries",
        "{ready}"
    );
    drop((server, cluster));
}
