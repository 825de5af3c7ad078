//! Builds the application (state, routes, middleware) and binds its socket. Used by
//! `authauth serve` and by the integration tests, which bind port 0 and read the real port.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use poem::{http::header, Endpoint, EndpointExt, Request, Response, Route};
use sea_orm::DatabaseConnection;

use secrecy::ExposeSecret;

use crate::{
    api::{self, edge::Edge},
    audit::{Audit, Sinks},
    auth::oidc::OidcProvider,
    clock::Clock,
    config::{redact_url, SecretSource, Settings},
    db,
    metrics::Metrics,
    pages,
    session::derived::Derived,
    state::{services, AppInner, AppState},
    store::Stores,
    webhooks::Webhooks,
};

/// How long shutdown waits for the audit trail to reach the database.
const AUDIT_FLUSH: Duration = Duration::from_secs(5);

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
    endpoint: Edge,
    addr: SocketAddr,
    /// `METRICS_ADDR`'s listener, bound, and its address.
    metrics: Option<(tokio::net::TcpListener, SocketAddr)>,
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

        let metrics = Metrics::new().context("cannot define the metrics")?;
        let metrics_listener = match settings.metrics_addr {
            None => None,
            Some(at) => {
                let l = tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen on METRICS_ADDR {at}"))?;
                let bound = l
                    .local_addr()
                    .context("the metrics listener has no local address")?;
                Some((l, bound))
            }
        };
        let webhooks = Webhooks::from_settings(settings.webhooks.as_ref());
        let sinks = Sinks {
            feed: stores.feed.clone(),
            webhooks: webhooks.clone(),
        };
        let audit = Audit::start(db.clone(), sinks, metrics.clone());
        if let Some(webhooks) = webhooks {
            crate::webhooks::deliver::spawn(db.clone(), webhooks, clock.clone(), metrics.clone());
        }
        let mailer = crate::mail::Mailer::from_settings(&settings.mail).context("cannot set up mail")?;
        if let Some(m) = &mailer {
            tracing::info!(to = %m.describe(), "mail is sent");
        }
        let postman = crate::mail::Postman::queued(mailer, metrics.clone());
        let mail = crate::auth::recovery::AccountMail::new(postman, &settings, addr)
            .context("cannot build the address of e-mailed links")?;
        let (sessions, auth) = services(&settings, &db, &stores, &metrics, &audit, mail);
        stores.spawn_maintenance(clock.clone());
        crate::audit::query::spawn_retention(db.clone(), clock.clone(), settings.audit_retention);
        let google = match &settings.google {
            Some(g) => Some(Arc::new(
                OidcProvider::new("google", g.clone(), clock.clone(), metrics.clone())
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
            metrics,
            audit,
            me_bodies: Derived::default(),
            identities: Derived::default(),
        }));
        let endpoint = routes(state.clone());
        Ok(Application {
            listener,
            endpoint,
            addr,
            metrics: metrics_listener,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where `/metrics` is served, when `METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
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
        // Whoever waits for the server to come up reads this line now, not an interval later.
        crate::telemetry::flush();
        // The metrics listener lives as long as the public one.
        let exporter = self.metrics.map(|(listener, at)| {
            tracing::info!(address = %format!("http://{at}/metrics"), "metrics are served");
            let endpoint = Route::new()
                .at("/metrics", poem::get(ExportMetrics(self.state.metrics.clone())))
                .boxed();
            let settings = s.clone();
            tokio::spawn(async move {
                crate::server::serve(listener, endpoint, &settings, std::future::pending()).await
            })
        });
        let served = crate::server::serve(self.listener, self.endpoint, s, shutdown).await;
        if let Some(exporter) = exporter {
            exporter.abort();
        }
        // What the last requests recorded reaches the database before the process ends.
        self.state.audit.close(AUDIT_FLUSH).await;
        served
    }
}

/// `GET /metrics` on `METRICS_ADDR`: the Prometheus text exposition.
struct ExportMetrics(Metrics);

impl Endpoint for ExportMetrics {
    type Output = Response;

    async fn call(&self, _req: Request) -> poem::Result<Response> {
        Ok(Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .body(self.0.render()))
    }
}

/// The one endpoint every request enters ([`api::edge::Edge`]) and the route table behind it.
/// Not boxed: the connection loop calls it directly (`server::serve`).
pub fn routes(state: AppState) -> Edge {
    let api = api::service();
    let spec = api.spec_endpoint();
    let swagger = api.swagger_ui();
    let ui = state.settings.ui_enabled;
    let page_routes = if ui { pages::ROUTES } else { &[] };
    let mut route = Route::new().at("/openapi.json", spec).nest("/docs", swagger);
    if ui {
        route = pages::mount(route);
    }
    let router = route.nest("/", api).boxed();
    Edge::new(state, router, page_routes)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: the server answers requests before it polls its shutdown future, and
/// a SIGTERM in between (a deploy stopping an instance that just came up) used to kill the
/// process outright instead of letting in-flight requests finish.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                }
            }
            (int, term) => {
                tracing::warn!(
                    sigint = int.is_ok(),
                    sigterm = term.is_ok(),
                    "cannot watch for every shutdown signal; waiting for Ctrl-C only"
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    }
}

#[cfg(all(test, unix))]
mod shutdown_tests {
    #[tokio::test]
    async fn a_sigterm_is_caught_from_the_moment_the_shutdown_signal_is_made() {
        // Not yet polled, as when the server starts answering before it polls it.
        let stop = super::shutdown_signal();
        // SAFETY: raise(3) sends a signal to this process; with the handler installed it only
        // wakes the future (without it, the test process dies: the failure this catches).
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        tokio::time::timeout(std::time::Duration::from_secs(10), stop)
            .await
            .expect("the SIGTERM was seen");
    }
}
