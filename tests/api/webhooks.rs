//! Session-lifecycle webhooks against a real local HTTP receiver: signed the Standard Webhooks
//! way (checked with that specification's own crate), the event in the body, every event
//! delivered after the receiver was down for a while, one `webhook-id` per event, operator
//! actions included, given up after the retries and sent again on `webhooks retry`.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU16, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{cli_ops::cli, helpers::*};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: poem::http::HeaderMap,
    body: String,
}

/// A webhook receiver on a loopback port: records what it gets and answers `status`.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    /// Listens on `port` (0: any free one).
    async fn start_on(port: u16) -> Receiver {
        use poem::{
            listener::{Acceptor, Listener},
            EndpointExt,
        };
        let acceptor = poem::listener::TcpListener::bind(format!("127.0.0.1:{port}"))
            .into_acceptor()
            .await
            .expect("bind the webhook receiver");
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(204));
        let (g, s) = (got.clone(), status.clone());
        let endpoint = poem::endpoint::make(move |mut req: poem::Request| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                let body = req.take_body().into_string().await.unwrap_or_default();
                g.lock().unwrap().push(Received {
                    headers: req.headers().clone(),
                    body,
                });
                poem::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
            }
        })
        .map_to_response();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                endpoint,
                async {
                    let _ = rx.await;
                },
                None,
            ),
        );
        Receiver {
            port,
            got,
            status,
            shutdown: Some(tx),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// What it received once `done` holds.
    async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{what}; received: {:#?}",
                got.iter().map(|r| &r.body).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn body(r: &Received) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers.get(name).unwrap().to_str().unwrap()
}

async fn app_sending_to(url: &str) -> TestApp {
    spawn_app_with(
        AppOptions::default()
            .var("WEBHOOK_URLS", url)
            .var("WEBHOOK_SECRET", SECRET),
    )
    .await
}

#[tokio::test]
async fn session_webhooks_are_signed_the_standard_webhooks_way_and_carry_the_event() {
    let receiver = Receiver::start_on(0).await;
    let app = app_sending_to(&receiver.url()).await;
    let (a, _) = app.signed_up_client("hook-alice@example.com").await;
    assert_eq!(app.logout(&a).await.status(), 204);
    let got = receiver
        .until("a session.created and a session.ended", |g| g.len() >= 2)
        .await;
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    for r in &got {
        assert_eq!(header(r, "content-type"), "application/json");
        assert!(header(r, "webhook-id").starts_with("msg_"));
        verifier
            .verify(r.body.as_bytes(), &r.headers)
            .unwrap_or_else(|e| panic!("{e}: {r:?}"));
        // One changed byte and it no longer verifies.
        let tampered = r
            .body
            .replacen("hook-", "hook_", 1)
            .replacen("\"user\"", "\"usr\"", 1);
        assert!(verifier.verify(tampered.as_bytes(), &r.headers).is_err());
    }
    let (created, ended) = (body(&got[0]), body(&got[1]));
    assert_eq!(created["type"], "session.created");
    assert_eq!(created["data"]["detail"]["method"], "password");
    assert_eq!(ended["type"], "session.ended");
    assert_eq!(ended["data"]["reason"], "logout");
    assert_eq!(ended["data"]["actor"], "user");
    assert_eq!(ended["data"]["sessionId"], created["data"]["sessionId"]);
    assert_eq!(ended["timestamp"], ended["data"]["at"]);
    assert!(ended["data"]["userId"].is_string());
    assert_ne!(header(&got[0], "webhook-id"), header(&got[1], "webhook-id"));
    // A plain authenticated request sends nothing; neither does a failed sign-in.
    let b = client();
    assert_eq!(
        app.login_with(&b, "hook-alice@example.com", "wrong password")
            .await
            .status(),
        401
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.received().len(), 2);
}

/// A delivery's payload carries the user id, the address and the browser: it goes with the
/// audit trail at `AUDIT_RETENTION`, delivered or not, and not before.
#[tokio::test]
async fn deliveries_are_purged_with_the_audit_trail_they_were_made_of() {
    use sea_orm::{EntityTrait, PaginatorTrait};
    let receiver = Receiver::start_on(0).await;
    let app = app_sending_to(&receiver.url()).await;
    let (a, _) = app.signed_up_client("hook-retention@example.com").await;
    assert_eq!(app.logout(&a).await.status(), 204);
    receiver.until("two deliveries", |g| g.len() >= 2).await;
    let count = || async {
        authauth::entities::webhook_deliveries::Entity::find()
            .count(&app.state.db)
            .await
            .unwrap()
    };
    assert!(count().await >= 2);
    let day = 24 * 3600 * 1000;
    let retention = Duration::from_secs(90 * 24 * 3600);
    authauth::audit::query::purge(&app.state.db, retention, app.now() + 89 * day)
        .await
        .unwrap();
    assert!(count().await >= 2, "kept within the retention");
    authauth::audit::query::purge(&app.state.db, retention, app.now() + 91 * day)
        .await
        .unwrap();
    assert_eq!(count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_every_event_afterwards_each_under_one_id() {
    // A port nobody listens on yet: the receiver is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = app_sending_to(&format!("http://127.0.0.1:{port}/hooks")).await;
    let (a, _) = app.signed_up_client("down-alice@example.com").await;
    let (_b, _) = app.signed_up_client("down-bob@example.com").await;
    let resp = app
        .post_json(
            &a,
            "/auth/password",
            &serde_json::json!({"currentPassword": PASSWORD, "newPassword": "another horse battery staple"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // An operator's revocation is an event too: the CLI puts it in the outbox, the server
    // delivers it.
    let out = cli(
        &app,
        &[
            "sessions",
            "revoke",
            "--user",
            "down-bob@example.com",
            "--reason",
            "audit",
            "--yes",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Every attempt so far failed: the CLI shows them pending, with why.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pending = loop {
        let out = cli(&app, &["webhooks", "list", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
        let list = list.as_array().unwrap().clone();
        if list.len() == 6 && list.iter().all(|d| d["attempts"].as_i64() >= Some(1)) {
            break list;
        }
        assert!(Instant::now() < deadline, "{list:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(pending.iter().all(|d| d["state"] == "pending"));
    assert!(
        pending[0]["lastError"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{pending:#?}"
    );
    let out = cli(&app, &["webhooks", "list"]);
    assert!(stdout(&out).contains("could not connect"), "{}", stdout(&out));

    // The receiver comes back; once the retries are due, everything arrives.
    let receiver = Receiver::start_on(port).await;
    app.advance(Duration::from_secs(3600));
    let got = receiver.until("all six events", |g| g.len() >= 6).await;
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &got {
        let b = body(r);
        let event = format!("{} {} {}", b["type"], b["data"]["sessionId"], b["data"]["reason"]);
        ids.entry(event)
            .or_default()
            .push(header(r, "webhook-id").to_string());
    }
    assert_eq!(ids.len(), 6, "{ids:#?}");
    for (event, seen) in &ids {
        assert!(
            seen.iter().all(|id| id == &seen[0]),
            "{event} came under several ids: {seen:?}"
        );
    }
    let kinds: Vec<String> = got
        .iter()
        .map(|r| body(r)["type"].as_str().unwrap().to_string())
        .collect();
    for kind in ["session.created", "session.ended", "password.changed"] {
        assert!(kinds.contains(&kind.to_string()), "{kinds:?}");
    }
    assert!(
        got.iter().any(|r| {
            let b = body(r);
            b["data"]["reason"] == "operator" && b["data"]["actor"] == "operator"
        }),
        "the operator's revocation"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = cli(&app, &["webhooks", "list", "--state", "delivered", "--json"]);
        let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
        if list.as_array().unwrap().len() == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "{list:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_refused_through_every_retry_is_given_up_and_sent_again_on_retry() {
    let receiver = Receiver::start_on(0).await;
    receiver.status.store(500, Ordering::SeqCst);
    let app = app_sending_to(&receiver.url()).await;
    let (a, _) = app.signed_up_client("refused@example.com").await;
    let _ = a;
    // Each retry is due after the one before: move the clock past every wait.
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        app.advance(Duration::from_secs(9 * 3600));
        let out = cli(&app, &["webhooks", "list", "--state", "failed", "--json"]);
        let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
        if let Some(d) = list.as_array().unwrap().first() {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "never given up");
        tokio::time::sleep(Duration::from_millis(600)).await;
    };
    assert_eq!(failed["type"], "session.created");
    assert_eq!(failed["attempts"], 13);
    assert_eq!(failed["lastStatus"], 500);
    let tries = receiver.received().len();
    assert_eq!(tries, 13, "one request per attempt");
    let ids: std::collections::BTreeSet<String> = receiver
        .received()
        .iter()
        .map(|r| header(r, "webhook-id").to_string())
        .collect();
    assert_eq!(ids.len(), 1, "every attempt under the same id");

    receiver.status.store(200, Ordering::SeqCst);
    let out = cli(&app, &["webhooks", "retry", "--failed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 delivery queued again"),
        "{}",
        stdout(&out)
    );
    receiver.until("the retried delivery", |g| g.len() > tries).await;
    // The operator's retry is in the audit trail.
    let out = cli(&app, &["events", "list", "--type", "webhooks.retried", "--json"]);
    let events: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(events[0]["actor"], "operator", "{events}");
    assert_eq!(events[0]["detail"]["count"], 1, "{events}");
    let out = cli(&app, &["webhooks", "retry", "--failed"]);
    assert_eq!(out.status.code(), Some(3), "nothing left to retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_hold_up_the_others() {
    // Accepts connections (the kernel's backlog) and never answers: each attempt there waits
    // for its whole 10 s timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://127.0.0.1:{}/hooks", silent.local_addr().unwrap().port());
    let receiver = Receiver::start_on(0).await;
    // The silent one first: its deliveries come first in the outbox.
    let app = app_sending_to(&format!("{silent_url},{}", receiver.url())).await;
    let started = Instant::now();
    let (a, _) = app.signed_up_client("silent@example.com").await;
    assert_eq!(app.logout(&a).await.status(), 204);
    receiver
        .until("both events at the receiver that answers", |g| g.len() >= 2)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "held up behind the silent receiver for {:?}",
        started.elapsed()
    );
    drop(silent);
}
