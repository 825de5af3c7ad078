//! The Redis store under stress: SECURITY.md §6 — fail closed, recover, TTLs, hashes only.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn with_redis_down_requests_fail_closed_and_recover_without_a_restart() {
    // Its own server, kept on disk so that the sessions outlive the outage.
    let mut redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let app = spawn_app_with(AppOptions::default().var("REDIS_URL", &redis.url())).await;
    let (c, cookie) = app.signed_up_client("outage@example.com").await;
    assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 200);

    redis.stop();
    let resp = app.get_with_cookie("/auth/me", &cookie).await;
    assert_eq!(resp.status(), 503, "never 200 while the store is down");
    assert!(
        set_cookie_header(&resp, app.cookie_name()).is_none(),
        "never a silent logout"
    );
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "session_store_unavailable"
    );
    // Several session cookies: still undecided, so still nothing deleted.
    let resp = reqwest::Client::new()
        .get(app.url("/auth/me"))
        .header(
            "cookie",
            format!("{name}=forged; {name}={cookie}", name = app.cookie_name()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(set_cookie_header(&resp, app.cookie_name()).is_none());
    let resp = app.login_with(&client(), "outage@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 503);
    assert!(set_cookie_header(&resp, app.cookie_name()).is_none());
    assert_eq!(app.get("/ready").await.status(), 503);
    assert_eq!(app.get("/health").await.status(), 200);

    redis.resume();
    let mut status = 0;
    for _ in 0..50 {
        status = app.get_with_cookie("/auth/me", &cookie).await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the same session works again once Redis is back");
    assert_eq!(
        app.login_with(&client(), "outage@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/ready").await.status(), 200);
}

#[tokio::test]
async fn redis_holds_hashes_of_tokens_and_every_key_expires() {
    let app = spawn_app().await;
    let (c, cookie) = app.signed_up_client("hashes@example.com").await;
    let (_c2, cookie2) = app.signed_up_client("hashes2@example.com").await;
    c.get(app.url("/auth/me")).send().await.unwrap();
    let dump = app.redis_dump().await;
    assert!(!dump.is_empty());
    for secret in [&cookie, &cookie2] {
        let token = secret.split('.').next().unwrap();
        for (k, v) in &dump {
            assert!(!k.contains(token), "a Redis key holds a live token");
            assert!(
                !v.as_deref().unwrap_or("").contains(token),
                "a Redis value holds a live token"
            );
        }
    }
    let mut conn = app.redis().await;
    for (k, _) in &dump {
        let ttl: i64 = redis::cmd("PTTL").arg(k).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0, "{k} never expires");
    }
    // Logging out leaves only short-lived tombstones, still with TTLs.
    c.post(app.url("/auth/logout")).send().await.unwrap();
    for (k, _) in app.redis_dump().await {
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0, "{k} never expires");
    }
}

#[tokio::test]
async fn fifty_parallel_requests_on_one_session_all_succeed_and_share_one_key() {
    let app = spawn_app().await;
    let (_c, cookie) = app.signed_up_client("fifty@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (url, name, cookie) = (app.url("/auth/me"), app.cookie_name().to_string(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .header("cookie", format!("{name}={cookie}"))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let sessions = app
        .redis_dump()
        .await
        .into_iter()
        .filter(|(k, _)| k.contains("}:s:"))
        .count();
    assert_eq!(sessions, 1);
}

#[tokio::test]
async fn listing_a_users_sessions_reads_that_users_index_only() {
    // A private server, so other tests' commands do not mix into the statistics.
    let redis = RedisServer::start(&[]);
    let app = spawn_app_with(AppOptions::default().var("REDIS_URL", &redis.url())).await;
    let (c, _) = app.signed_up_client("index@example.com").await;
    for i in 0..20 {
        app.signed_up_client(&format!("noise{i}@example.com")).await;
    }
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    let list: Value = c
        .get(app.url("/auth/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    for forbidden in ["cmdstat_scan:", "cmdstat_keys:"] {
        assert!(!info.contains(forbidden), "listing scanned the keyspace:\n{info}");
    }
}
