//! What every request handler and operator command shares: the configuration, the database,
//! the stores, the services built on them, and the clock.

use std::{ops::Deref, sync::Arc};

use bytes::Bytes;
use poem::http::HeaderValue;
use sea_orm::DatabaseConnection;

use crate::{
    audit::Audit,
    auth::{oidc::Providers, password::Hasher, Auth},
    clock::Clock,
    config::Settings,
    metrics::Metrics,
    session::{derived::Derived, policy::Policy, record::SessionRecord, token::CookieSigner, Sessions},
    store::Stores,
};

/// Shared state of a running server. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<AppInner>);

pub struct AppInner {
    pub settings: Settings,
    pub db: DatabaseConnection,
    pub stores: Stores,
    pub sessions: Sessions,
    pub auth: Auth,
    /// Sign-in with Google (or another OpenID provider), when configured.
    pub google: Providers,
    /// Where every request takes `now` from.
    pub clock: Clock,
    /// What `/metrics` exports (on `METRICS_ADDR`).
    pub metrics: Metrics,
    /// The audit trail's writer (flushed on shutdown).
    pub audit: Audit,
    /// `GET /auth/me` bodies, written once per session state.
    /// Keyed by the shared record, which an unchanged session presents again (see `Stored`).
    pub me_bodies: Derived<Arc<SessionRecord>, Bytes>,
    /// `GET /auth/verify`'s identity header values, written once per session state
    /// (`api::forward_auth::identity`).
    pub identities: Derived<Arc<SessionRecord>, Arc<[HeaderValue; 6]>>,
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// The services behind the API and the CLI, built from the configuration.
pub fn services(
    settings: &Settings,
    db: &DatabaseConnection,
    stores: &Stores,
    metrics: &Metrics,
    audit: &Audit,
    mail: crate::auth::recovery::AccountMail,
) -> (Sessions, Auth) {
    let signer = CookieSigner::new(settings.session.secrets.clone());
    let sessions = Sessions::new(
        Arc::new(crate::store::timed::TimedSessions::new(
            stores.sessions.clone(),
            metrics.clone(),
        )),
        signer,
        Policy::from_settings(&settings.session),
        metrics.clone(),
        audit.clone(),
    );
    let auth = Auth::new(
        db.clone(),
        sessions.clone(),
        stores.attempts.clone(),
        Hasher::new(
            settings.hash_threads,
            settings.password_hash_cost.clone(),
            metrics.clone(),
        ),
        metrics.clone(),
        mail,
        crate::auth::mfa::MfaConfig::new(settings, stores.flows.clone()),
    );
    (sessions, auth)
}
