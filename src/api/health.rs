//! Liveness and readiness.

use std::time::Duration;

use poem::web::Data;
use poem_openapi::{payload::Json, types::Example, ApiResponse, Object, OpenApi, Tags};

use crate::{error::Failure, error_set, state::AppState};

/// What `/ready` says about a dependency that does not answer (the details go to the log).
const UNAVAILABLE_DETAIL: &str = "did not answer (see the server log)";

/// How long `/ready` waits for each dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Tags)]
enum Tag {
    /// Probes for load balancers and orchestrators.
    Health,
}

/// The process is up.
#[derive(Object)]
#[oai(example)]
struct Health {
    /// Always `ok`.
    status: String,
}

/// The state of one dependency.
#[derive(Object)]
#[oai(example)]
struct Check {
    /// `ok` or `unavailable`.
    status: String,
    /// What the dependency is (`postgres`, `sqlite`, `redis`, `sql`).
    kind: String,
    /// What answered: for Redis the mode and, on a cluster, the slots covered and primaries
    /// reached (`cluster: 16384/16384 slots on 3 primaries`). Never an address.
    #[oai(skip_serializing_if_is_none)]
    reached: Option<String>,
    /// Why it is unavailable, in general terms (the details go to the server's log only).
    #[oai(skip_serializing_if_is_none)]
    detail: Option<String>,
}

/// Dependencies of the running server.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct Checks {
    database: Check,
    session_store: Check,
}

/// Readiness of the server.
#[derive(Object)]
#[oai(example)]
struct Readiness {
    /// `ready`, or `not_ready` with a 503.
    status: String,
    /// On 503, the stable code `not_ready`.
    #[oai(skip_serializing_if_is_none)]
    error: Option<String>,
    /// On 503, which dependency failed.
    #[oai(skip_serializing_if_is_none)]
    message: Option<String>,
    checks: Checks,
}

impl Example for Health {
    fn example() -> Self {
        Health { status: "ok".into() }
    }
}

impl Example for Check {
    fn example() -> Self {
        check_ok("postgres")
    }
}

impl Example for Checks {
    fn example() -> Self {
        Checks {
            database: check_ok("postgres"),
            session_store: Check {
                status: "unavailable".into(),
                kind: "redis".into(),
                reached: None,
                detail: Some(UNAVAILABLE_DETAIL.into()),
            },
        }
    }
}

impl Example for Readiness {
    fn example() -> Self {
        Readiness {
            status: "not_ready".into(),
            error: Some("not_ready".into()),
            message: Some("session store (redis) is unavailable".into()),
            checks: Checks::example(),
        }
    }
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// The database and the session store both answer.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// At least one dependency does not answer; `message` names it.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

error_set!(
    /// The probes answer before the host check and touch no session: only the unexpected.
    ProbeErrors: [] + [ANY]
);

pub struct HealthApi;

#[OpenApi(prefix_path = "/", tag = "Tag::Health")]
impl HealthApi {
    /// Liveness: the process is running and serving HTTP. Touches no dependency.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> Result<Json<Health>, Failure<ProbeErrors>> {
        Ok(Json(Health { status: "ok".into() }))
    }

    /// Readiness: 200 only when the database and the session store both answer, else 503
    /// naming which failed.
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self, state: Data<&AppState>) -> Result<ReadyResponse, Failure<ProbeErrors>> {
        let db_kind = match state.db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "postgres",
            sea_orm::DatabaseBackend::Sqlite => "sqlite",
            _ => "database",
        };
        let (db, store) = tokio::join!(
            tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()),
            state.stores.ping_within(CHECK_TIMEOUT)
        );
        let database = match db {
            Ok(Ok(())) => check_ok(db_kind),
            Ok(Err(e)) => check_failed(db_kind, e.to_string()),
            Err(_) => check_failed(db_kind, format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        let session_store = match store {
            Ok(reached) => Check {
                reached: Some(reached.summary),
                ..check_ok(state.stores.kind())
            },
            Err(e) => check_failed(state.stores.kind(), e.chain()),
        };
        let failed: Vec<String> = [("database", &database), ("session store", &session_store)]
            .iter()
            .filter(|(_, c)| c.status != "ok")
            .map(|(name, c)| format!("{name} ({}) is unavailable", c.kind))
            .collect();
        let checks = Checks {
            database,
            session_store,
        };
        Ok(if failed.is_empty() {
            ReadyResponse::Ready(Json(Readiness {
                status: "ready".into(),
                error: None,
                message: None,
                checks,
            }))
        } else {
            ReadyResponse::NotReady(Json(Readiness {
                status: "not_ready".into(),
                error: Some("not_ready".into()),
                message: Some(failed.join("; ")),
                checks,
            }))
        })
    }
}

fn check_ok(kind: &str) -> Check {
    Check {
        status: "ok".into(),
        kind: kind.into(),
        reached: None,
        detail: None,
    }
}

fn check_failed(kind: &str, detail: String) -> Check {
    // Connection errors can name hosts and users: log them, answer in general terms.
    tracing::warn!(dependency = kind, detail = %detail, "readiness check failed");
    Check {
        status: "unavailable".into(),
        kind: kind.into(),
        reached: None,
        detail: Some(UNAVAILABLE_DETAIL.into()),
    }
}
