//! Slow clients cannot hold connections: a request head must arrive within
//! `HTTP_HEADER_READ_TIMEOUT` (which also closes idle keep-alive connections), a body within
//! `HTTP_BODY_READ_TIMEOUT`. These are network timeouts, so the tests wait for them in real
//! time — one second each, the shortest the configuration allows.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

async fn app_with_one_second_timeouts() -> TestApp {
    spawn_app_with(
        AppOptions::default()
            .var("HTTP_HEADER_READ_TIMEOUT", "1s")
            .var("HTTP_BODY_READ_TIMEOUT", "1s"),
    )
    .await
}

/// Reads until the server closes the connection (or `limit` passes); returns what was read
/// and how long it took.
async fn read_until_closed(conn: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), started.elapsed())
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let app = app_with_one_second_timeouts().await;
    let mut conn = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let (_, took) = read_until_closed(&mut conn, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}

#[tokio::test]
async fn headers_trickled_a_byte_at_a_time_do_not_keep_a_connection_open() {
    let app = app_with_one_second_timeouts().await;
    let mut conn = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // A header byte every 200 ms: activity, but never the end of the head.
    let mut closed = false;
    for _ in 0..50 {
        if conn.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                // hyper may answer 408 before closing: that is a close too.
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(
        closed,
        "still open after {:?} of trickled headers",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_json_and_the_connection_closes() {
    let app = app_with_one_second_timeouts().await;
    let mut conn = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let head = format!(
        "POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"email\":",
        port = app.port
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let (response, took) = read_until_closed(&mut conn, Duration::from_secs(10)).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("\"error\":\"request_timeout\""), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert!(took >= Duration::from_millis(900), "answered after {took:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_a_complete_request() {
    let app = app_with_one_second_timeouts().await;
    let mut conn = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let (response, took) = read_until_closed(&mut conn, Duration::from_secs(10)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}
