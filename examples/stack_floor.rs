//! Benchmark yardstick: the floor of authauth's stack. What a request costs on exactly what
//! authauth serves it with — its connection loop (`authauth::server::serve`: hyper's HTTP/1.1
//! on tokio, the header-read timeout), a poem `Endpoint`, its Redis connection
//! (`store::redis::connection`: the redis crate's `ConnectionManager`, configured as authauth
//! configures it) and its allocator (mimalloc) — with none of authauth's own work: no request
//! id, log line, metrics, Host or CSRF check, cookie signature, session decision or security
//! headers.
//!
//! ```text
//! cargo run --release --example stack_floor
//! ```
//!
//! Reads the same configuration as `authauth serve` (`PORT`, `REDIS_URL`, `REDIS_KEY_PREFIX`,
//! …). `GET /auth/me` with a `Cookie` header that holds the session cookie's name makes one
//! Redis `GET` of a fixed key (written at start-up: a 500-byte JSON document, about the size of
//! authauth's `/auth/me` body) and answers 200 with the value as the body; without that cookie
//! it answers 401 with a fixed JSON error; any other request gets 404. So `wrk` can drive it
//! with the scripts it drives authauth with, and `bench/bench.py --peers` measures it in the
//! same rounds: the distance between this and authauth is what authauth's own code costs, and
//! the distance between this and Redis's `GET` is what no code on this stack gets under.

use authauth::{config::Settings, store::redis::connection::Connection};
use poem::{
    http::{header, HeaderValue, StatusCode},
    Body, Endpoint, Request, Response,
};

// authauth's allocator (src/main.rs), so the floor differs from it in nothing but its work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The session cookie's name, as authauth's cookies are named (what `bench/wrk/me.lua` sends).
const COOKIE: &str = "authauth_session=";

struct Floor {
    redis: Connection,
    key: String,
}

impl Floor {
    fn json(status: StatusCode, body: impl Into<Body>) -> Response {
        Response::builder()
            .status(status)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            )
            .body(body)
    }
}

impl Endpoint for Floor {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.uri().path() != "/auth/me" {
            return Ok(Response::builder().status(StatusCode::NOT_FOUND).finish());
        }
        let signed_in = req
            .headers()
            .get(header::COOKIE)
            .is_some_and(|c| c.as_bytes().windows(COOKIE.len()).any(|w| w == COOKIE.as_bytes()));
        if !signed_in {
            return Ok(Self::json(
                StatusCode::UNAUTHORIZED,
                r#"{"code":"no_session","message":"No valid session."}"#,
            ));
        }
        let mut conn = self.redis.clone();
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut conn)
            .await
            .map_err(|e| poem::Error::from_string(e.to_string(), StatusCode::SERVICE_UNAVAILABLE))?;
        Ok(match value {
            Some(body) => Self::json(StatusCode::OK, body),
            None => Self::json(StatusCode::UNAUTHORIZED, "{}"),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    let redis_settings = settings
        .redis
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("REDIS_URL is needed"))?;
    let mut redis = Connection::open(redis_settings)?;
    let key = format!("{}floor:me", redis_settings.key_prefix);
    // About the size of authauth's `/auth/me` body.
    let body = serde_json::json!({
        "user": {
            "id": "0193a5f0-7c1e-7d6a-9b1f-3c2d4e5f6a7b",
            "email": "someone@example.com",
            "name": "Someone With A Name",
            "email_verified": true,
        },
        "session": {
            "id": "3f2a9c1e5b7d4a6f8e0c2b4d6f8a0c2e",
            "created_at": "2026-12-06T03:00:00Z",
            "last_seen_at": "2026-12-06T03:00:00Z",
            "idle_expires_at": "2026-12-06T05:00:00Z",
            "absolute_expires_at": "2026-12-13T03:00:00Z",
            "authenticated_at": "2026-12-06T03:00:00Z",
            "sign_in_method": "password",
            "ip": "127.0.0.1",
            "user_agent": "wrk",
            "second_factor": false,
        },
    })
    .to_string();
    redis::cmd("SET")
        .arg(&key)
        .arg(&body)
        .query_async::<()>(&mut redis)
        .await?;
    let listener = tokio::net::TcpListener::bind((settings.host, settings.port)).await?;
    println!("stack floor listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    authauth::server::serve(listener, Floor { redis, key }, &settings, shutdown).await?;
    Ok(())
}
