//! Builds the application (state, routes, middleware) and binds its socket. Used by
//! `authauth serve` and by the integration tests, which bind port 0 and read the real port.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Instant};

use anyhow::Context;
use poem::{
    endpoint::BoxEndpoint,
    http::{header, HeaderValue},
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
};
use sea_orm::DatabaseConnection;
use tracing::Instrument;

use secrecy::ExposeSecret;

use crate::{
    api::{
        self,
        allow::{name_allowed_methods, AllowedMethods},
        guard,
    },
    auth::oidc::OidcProvider,
    clock::Clock,
    config::{redact_url, SecretSource, Settings},
    db, error, pages,
    state::{services, AppInner, AppState},
    store::Stores,
};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Migrations are pending on an explicitly configured database.
    #[error(
        "the database has {} pending migration(s) ({}); run `authauth migrate up` first",
        .0.len(),
        .0.join(", ")
    )]
    PendingMigrations(Vec<String>),
    /// A reading command found no embedded database: nothing has run here yet.
    #[error(
        "there is no database here yet: the embedded default (./authauth.sqlite) is created by \
         `authauth serve` (or `authauth users create`); set DATABASE_URL to administer another deployment"
    )]
    NoDatabase,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Connects to the database and the session store as configured. Shared by `serve` and the
/// operator commands so they see exactly the same data.
pub async fn connect(settings: &Settings) -> anyhow::Result<(DatabaseConnection, Stores)> {
    let db = db::connect(&settings.database).await.with_context(|| {
        format!(
            "cannot connect to the database {}",
            redact_url(settings.database.url.expose_secret())
        )
    })?;
    let stores = Stores::from_settings(settings, &db).context("cannot set up the session store")?;
    Ok((db, stores))
}

/// Who is opening the data, which decides what may be created on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// `serve`: creates and migrates the embedded default, and its development secret.
    Server,
    /// An operator command that writes (`users create`, `sessions revoke`…): may create and
    /// migrate the embedded database, never a secret — the CLI signs no cookie.
    WritingCommand,
    /// An operator command that only reads: creates nothing; with no embedded database yet
    /// there is nothing to read, and it says so.
    ReadingCommand,
}

/// Everything `serve` and the operator commands do before touching data: log configuration
/// warnings, resolve the development secret, connect, and make sure the schema is current —
/// migrating the embedded default, refusing a configured database with pending migrations.
pub async fn open(
    settings: &mut Settings,
    opener: Opener,
) -> Result<(DatabaseConnection, Stores), StartupError> {
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let dir = std::env::current_dir().context("cannot read the working directory")?;
    if settings.database.embedded
        && opener == Opener::ReadingCommand
        && !db::embedded_file(&settings.database).is_some_and(|f| dir.join(f).exists())
    {
        return Err(StartupError::NoDatabase);
    }
    if settings.session.secret_source == SecretSource::Unresolved {
        if opener == Opener::Server {
            let generated = settings
                .resolve_dev_secret(&dir)
                .context("cannot read or write the development session secret")?;
            if let SecretSource::GeneratedFile(path) = &settings.session.secret_source {
                tracing::warn!(
                    file = %path.display(),
                    generated,
                    "SESSION_SECRET is not set: using a development secret kept in a local file; set SESSION_SECRET in production"
                );
            }
        } else {
            settings.use_ephemeral_secret();
        }
    }
    let (db, stores) = connect(settings).await?;
    if settings.database.embedded {
        // Only the zero-setup default migrates itself; real deployments run
        // `authauth migrate up` as an explicit step.
        db::migrate_up(&db)
            .await
            .context("cannot migrate the embedded database")?;
    } else {
        let pending = db::pending_migrations(&db)
            .await
            .context("cannot read the migration state")?;
        if !pending.is_empty() {
            return Err(StartupError::PendingMigrations(pending));
        }
    }
    Ok((db, stores))
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: tokio::net::TcpListener,
    endpoint: BoxEndpoint<'static>,
    addr: SocketAddr,
    state: AppState,
}

impl Application {
    /// Connects, checks migrations (applying them only for the embedded default), binds.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// [`Application::build`] with the clock every request reads `now` from (tests pass an
    /// adjustable one and move it instead of sleeping).
    pub async fn build_with_clock(mut settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        let (db, stores) = open(&mut settings, Opener::Server).await?;

        let listener = tokio::net::TcpListener::bind(SocketAddr::new(settings.host, settings.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
        let addr = listener
            .local_addr()
            .context("the listener has no local address")?;

        let (sessions, auth) = services(&settings, &db, &stores);
        stores.spawn_maintenance(clock.clone());
        let google = match &settings.google {
            Some(g) => Some(Arc::new(
                OidcProvider::new("google", g.clone(), clock.clone())
                    .context("cannot build the identity provider client")?,
            )),
            None => None,
        };
        let state = AppState(Arc::new(AppInner {
            settings,
            db,
            stores,
            sessions,
            auth,
            google,
            clock,
        }));
        let endpoint = routes(state.clone());
        Ok(Application {
            listener,
            endpoint,
            addr,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (up to
    /// `SHUTDOWN_TIMEOUT`).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let s = &self.state.settings;
        tracing::info!(
            address = %format!("http://{}", self.addr),
            env = s.env.as_str(),
            database = %redact_url(s.database.url.expose_secret()),
            session_store = self.state.stores.kind(),
            "authauth is serving; Swagger UI at /docs"
        );
        crate::server::serve(self.listener, self.endpoint, s, shutdown).await
    }
}

/// The route table and middleware stack.
pub fn routes(state: AppState) -> BoxEndpoint<'static> {
    let api = api::service();
    let spec = api.spec_endpoint();
    let swagger = api.swagger_ui();
    let ui = state.settings.ui_enabled;
    let allowed = AllowedMethods::of(api::apis(), if ui { pages::ROUTES } else { &[] });
    let mut route = Route::new().at("/openapi.json", spec).nest("/docs", swagger);
    if ui {
        route = pages::mount(route);
    }
    route
        .nest("/", api)
        .around(move |ep, req| name_allowed_methods(allowed.clone(), ep, req))
        .around(guard::guard)
        .data(state)
        .around(request_context)
        .catch_all_error(error::render)
        .boxed()
}

/// Assigns each request an id (or keeps a well-formed incoming `x-request-id`), logs one line
/// per request, and adds the id and baseline security headers to every response.
async fn request_context<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    // The path only: query strings can carry OAuth codes and state.
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);
    let started = Instant::now();
    let mut resp = match ep.call(req).instrument(span.clone()).await {
        Ok(resp) => resp.into_response(),
        Err(err) => error::render(err).await,
    };
    let status = resp.status();
    span.in_scope(|| {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), latency_ms = ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms = ms, "request");
        }
    });
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::REFERRER_POLICY) {
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    Ok(resp)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
