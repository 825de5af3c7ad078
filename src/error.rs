//! The one place that maps errors to HTTP: status, stable JSON error code, message.
//!
//! Every error body is `{"error": "<stable_code>", "message": "…"}`. Endpoints return
//! `Result<Ok, Failure<Set>>`, where `Set` lists (for the OpenAPI spec) the statuses the endpoint
//! can produce; the mapping itself lives only in [`ApiError`]. Errors raised by the framework
//! (unknown route, wrong method, unparseable body) pass through [`render`], so they get the same
//! shape. 500s are opaque to the client and logged with their cause chain.

use std::{fmt, marker::PhantomData};

use poem::{
    error::{MethodNotAllowedError, NotFoundError, ResponseError},
    http::{header, HeaderValue, StatusCode},
    IntoResponse, Response,
};
use poem_openapi::{
    error::{ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError},
    registry::{MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::{ToJSON, Type},
    ApiResponse, Object,
};

/// The body of every error response.
#[derive(Debug, Clone, Object, serde::Deserialize)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `session_expired` or `csrf_rejected`.
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
    /// For `session_revoked`: why the session ended (`logout`, `password_changed`,
    /// `user_disabled`, `operator`, …).
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
}

/// Every error the API can answer with, and its status and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no route matches this path")]
    NotFound,
    /// `allow`: the methods the path does answer, for the `Allow` header.
    #[error("this method is not allowed on this path")]
    MethodNotAllowed { allow: Vec<poem::http::Method> },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotReady(String),
    #[error("this request needs a session: sign in first")]
    NoSession,
    #[error("the session has expired: sign in again")]
    SessionExpired,
    #[error("the session was ended ({reason}){}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    SessionRevoked { reason: String, message: Option<String> },
    /// Several session cookies that cannot be told apart safely (two live sessions, or more
    /// cookies than are examined): acting as any of them could be acting as a planted one.
    #[error(
        "this request carries several session cookies and none can safely be chosen: sign in again \
         (which ends them) or clear this site's cookies"
    )]
    AmbiguousSession,
    #[error("the session store is unavailable; try again shortly")]
    SessionStoreUnavailable(#[source] crate::session::StoreError),
    #[error("{0}")]
    CsrfRejected(String),
    #[error("this origin may not call the API with credentials (CORS_ORIGINS)")]
    CorsRejected,
    /// The request names a host this server does not answer for (DNS rebinding, or a
    /// misconfigured proxy): `PUBLIC_URL` and `ALLOWED_HOSTS` list the ones it does.
    #[error("this server does not answer for the host this request names (PUBLIC_URL, ALLOWED_HOSTS)")]
    HostNotAllowed,
    #[error("the e-mail address or password is incorrect")]
    InvalidCredentials,
    #[error("too many failed sign-in attempts; try again in {retry_after} seconds")]
    TooManyAttempts { retry_after: u64 },
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("{0}")]
    WeakPassword(String),
    #[error("the current password is incorrect")]
    WrongCurrentPassword,
    #[error("this account has no password: it signs in with an identity provider")]
    NoPassword,
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error("{0}")]
    InvalidEmail(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("no live session of yours has this id")]
    SessionNotFound,
    #[error("sign-in with this provider is not configured on this server")]
    ProviderNotConfigured,
    #[error("{0}")]
    ProviderUnavailable(String),
    #[error("{0}")]
    SignInStateInvalid(String),
    #[error("the authorization response names another issuer than the one configured")]
    IssuerMismatch,
    #[error("{message}")]
    ProviderRefused { error: String, message: String },
    #[error("{0}")]
    IdTokenInvalid(String),
    #[error("{0}")]
    EmailNotVerified(String),
    #[error("{0}")]
    EmailMissing(String),
    #[error("{0}")]
    IdentityConflict(String),
    #[error("the server is busy; try again in a moment")]
    ServerBusy,
    #[error("this account already has {max} sessions, the most allowed (MAX_SESSIONS_PER_USER); sign out of one first")]
    SessionLimitReached { max: usize },
    #[error("the request body is larger than {} bytes", crate::api::guard::MAX_BODY_BYTES)]
    PayloadTooLarge,
    #[error("the request body did not arrive in time (HTTP_BODY_READ_TIMEOUT)")]
    RequestTimeout,
    /// An unexpected failure; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidRequest(_) | ApiError::HostNotAllowed => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NoSession
            | ApiError::SessionExpired
            | ApiError::SessionRevoked { .. }
            | ApiError::AmbiguousSession => StatusCode::UNAUTHORIZED,
            ApiError::SessionStoreUnavailable(_) | ApiError::ServerBusy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::CsrfRejected(_) | ApiError::CorsRejected => StatusCode::FORBIDDEN,
            ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::AccountDisabled | ApiError::WrongCurrentPassword => StatusCode::FORBIDDEN,
            ApiError::WeakPassword(_) | ApiError::InvalidEmail(_) | ApiError::InvalidName(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::NoPassword
            | ApiError::EmailTaken
            | ApiError::IdentityConflict(_)
            | ApiError::SessionLimitReached { .. } => StatusCode::CONFLICT,
            ApiError::SessionNotFound | ApiError::ProviderNotConfigured => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::ProviderUnavailable(_) => StatusCode::BAD_GATEWAY,
            ApiError::SignInStateInvalid(_)
            | ApiError::IssuerMismatch
            | ApiError::ProviderRefused { .. }
            | ApiError::EmailMissing(_) => StatusCode::BAD_REQUEST,
            ApiError::IdTokenInvalid(_) => StatusCode::UNAUTHORIZED,
            ApiError::EmailNotVerified(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients can branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotReady(_) => "not_ready",
            ApiError::NoSession => "no_session",
            ApiError::SessionExpired => "session_expired",
            ApiError::SessionRevoked { .. } => "session_revoked",
            ApiError::AmbiguousSession => "ambiguous_session",
            ApiError::SessionStoreUnavailable(_) => "session_store_unavailable",
            ApiError::CsrfRejected(_) => "csrf_rejected",
            ApiError::CorsRejected => "cors_origin_not_allowed",
            ApiError::HostNotAllowed => "host_not_allowed",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::AccountDisabled => "account_disabled",
            ApiError::WeakPassword(_) => "weak_password",
            ApiError::WrongCurrentPassword => "current_password_incorrect",
            ApiError::NoPassword => "no_password",
            ApiError::EmailTaken => "email_taken",
            ApiError::InvalidEmail(_) => "invalid_email",
            ApiError::InvalidName(_) => "invalid_name",
            ApiError::SessionNotFound => "session_not_found",
            ApiError::ProviderNotConfigured => "provider_not_configured",
            ApiError::ProviderUnavailable(_) => "provider_unavailable",
            ApiError::SignInStateInvalid(_) => "sign_in_state_invalid",
            ApiError::IssuerMismatch => "issuer_mismatch",
            ApiError::ProviderRefused { .. } => "provider_refused",
            ApiError::IdTokenInvalid(_) => "id_token_invalid",
            ApiError::EmailNotVerified(_) => "email_not_verified",
            ApiError::EmailMissing(_) => "email_missing",
            ApiError::IdentityConflict(_) => "identity_conflict",
            ApiError::ServerBusy => "server_busy",
            ApiError::SessionLimitReached { .. } => "session_limit_reached",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code().to_string(),
            message: self.to_string(),
            reason: match self {
                ApiError::SessionRevoked { reason, .. } => Some(reason.clone()),
                ApiError::ProviderRefused { error, .. } => Some(error.clone()),
                _ => None,
            },
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        match self {
            ApiError::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
            ApiError::SessionStoreUnavailable(cause) => {
                tracing::error!(error = %cause.chain(), "session store unavailable; failing closed")
            }
            _ => {}
        }
        let mut resp = json_error(self.status(), &self.body());
        let retry_after = match self {
            ApiError::TooManyAttempts { retry_after } => Some(*retry_after),
            ApiError::ServerBusy => Some(1),
            _ => None,
        };
        if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        match self {
            // RFC 9110 §15.5.6: a 405 names the methods that are allowed.
            ApiError::MethodNotAllowed { allow } if !allow.is_empty() => {
                let names: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
                if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
            }
            _ => {}
        }
        if matches!(self, ApiError::RequestTimeout) {
            // The rest of the body may still be on its way: this connection cannot carry
            // another request.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

impl From<crate::session::SessionError> for ApiError {
    fn from(e: crate::session::SessionError) -> Self {
        use crate::session::SessionError as E;
        match e {
            E::NoSession => ApiError::NoSession,
            E::Expired => ApiError::SessionExpired,
            E::Revoked { reason, message } => ApiError::SessionRevoked { reason, message },
            E::Store(e) => e.into(),
        }
    }
}

/// A store that cannot serve fails closed (503 `session_store_unavailable`); one that stayed
/// busy with concurrent changes through every retry asks the client to come back (503
/// `server_busy`, `Retry-After`); one holding unreadable data is our fault (500).
impl From<crate::session::StoreError> for ApiError {
    fn from(e: crate::session::StoreError) -> Self {
        use crate::session::StoreError as E;
        match e {
            e @ E::Unavailable(_) => ApiError::SessionStoreUnavailable(e),
            e @ E::Conflict(_) => {
                tracing::warn!(error = %e.chain(), "store busy with concurrent changes");
                ApiError::ServerBusy
            }
            e @ E::Corrupt(_) => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::{auth::AuthError as E, users::UserError as U};
        match e {
            E::InvalidCredentials => ApiError::InvalidCredentials,
            E::Throttled { retry_after } => ApiError::TooManyAttempts { retry_after },
            E::Disabled => ApiError::AccountDisabled,
            E::WeakPassword(rule) => ApiError::WeakPassword(rule.to_string()),
            E::WrongCurrentPassword => ApiError::WrongCurrentPassword,
            E::NoPassword => ApiError::NoPassword,
            e @ E::EmailNotVerified => ApiError::EmailNotVerified(e.to_string()),
            e @ E::EmailMissing => ApiError::EmailMissing(e.to_string()),
            e @ E::IdentityConflict => ApiError::IdentityConflict(e.to_string()),
            E::User(U::EmailTaken) => ApiError::EmailTaken,
            E::User(U::InvalidEmail(m)) => ApiError::InvalidEmail(m.to_string()),
            E::User(U::InvalidName(m)) => ApiError::InvalidName(m),
            E::User(U::Db(e)) => ApiError::internal(e),
            E::Store(e) => e.into(),
            E::Busy => ApiError::ServerBusy,
            E::SessionLimit { max } => ApiError::SessionLimitReached { max },
            E::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<crate::auth::oidc::OidcError> for ApiError {
    fn from(e: crate::auth::oidc::OidcError) -> Self {
        use crate::auth::oidc::OidcError as E;
        match e {
            E::ProviderUnavailable(m) => {
                tracing::warn!(error = %m, "identity provider unavailable");
                ApiError::ProviderUnavailable(
                    "the identity provider is unavailable; try again later or sign in with a password".into(),
                )
            }
            e @ E::StateInvalid(_) => ApiError::SignInStateInvalid(e.to_string()),
            E::IssuerMismatch => ApiError::IssuerMismatch,
            E::ProviderError { error, description } => ApiError::ProviderRefused {
                message: format!(
                    "the identity provider refused the sign-in ({error}){}",
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                ),
                error,
            },
            E::TokenRejected(m) => {
                tracing::warn!(error = %m, "identity provider answer rejected");
                ApiError::IdTokenInvalid(format!("the identity provider's answer failed verification: {m}"))
            }
            E::Store(e) => e.into(),
        }
    }
}

fn json_error(status: StatusCode, body: &ErrorBody) -> Response {
    let json = body.to_json_string();
    Response::builder()
        .status(status)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )
        .header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
        .body(json)
}

/// Turns any error that reached the outermost layer into the JSON error shape.
pub async fn render(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.as_response();
    }
    let api = if err.is::<NotFoundError>() {
        ApiError::NotFound
    } else if err.is::<MethodNotAllowedError>() {
        // The API's paths are named by `api::allow` before they get here; a route outside its
        // table has no methods to name.
        ApiError::MethodNotAllowed { allow: Vec::new() }
    } else if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        ApiError::UnsupportedMediaType(format!("{e}; send `Content-Type: application/json`"))
    } else if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        ApiError::InvalidRequest(format!("the request body is not valid: {}", e.reason))
    } else if let Some(e) = err.downcast_ref::<ParseParamError>() {
        ApiError::InvalidRequest(e.to_string())
    } else if let Some(e) = err.downcast_ref::<ParsePathError>() {
        ApiError::InvalidRequest(e.to_string())
    } else {
        let status = err.status();
        if status.is_server_error() {
            ApiError::Internal(anyhow::anyhow!("{err}"))
        } else {
            // Another framework-level client error (e.g. a malformed header): keep its status.
            let body = ErrorBody {
                error: status
                    .canonical_reason()
                    .unwrap_or("client_error")
                    .to_ascii_lowercase()
                    .replace(' ', "_"),
                message: err.to_string(),
                reason: None,
            };
            return json_error(status, &body);
        }
    };
    api.as_response()
}

/// The statuses an endpoint can fail with, for its OpenAPI description.
pub trait ErrorSet: Send + Sync + 'static {
    const RESPONSES: &'static [(u16, &'static str)];
}

/// An endpoint's error: an [`ApiError`], documented in the spec as the statuses of `S`.
pub struct Failure<S: ErrorSet>(pub ApiError, PhantomData<S>);

impl<S: ErrorSet> Failure<S> {
    pub fn new(err: ApiError) -> Self {
        Failure(err, PhantomData)
    }
}

impl<S: ErrorSet> fmt::Debug for Failure<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: ErrorSet> From<ApiError> for Failure<S> {
    fn from(err: ApiError) -> Self {
        Failure::new(err)
    }
}

impl<S: ErrorSet> From<Failure<S>> for poem::Error {
    fn from(f: Failure<S>) -> Self {
        poem::Error::from(f.0)
    }
}

impl<S: ErrorSet> IntoResponse for Failure<S> {
    fn into_response(self) -> Response {
        self.0.as_response()
    }
}

impl<S: ErrorSet> ApiResponse for Failure<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::RESPONSES
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: ErrorBody::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

/// Declares an [`ErrorSet`]: `error_set!(Name { 401 => "why", 503 => "why" });`
#[macro_export]
macro_rules! error_set {
    ($(#[$meta:meta])* $name:ident { $($status:literal => $desc:literal),* $(,)? }) => {
        $(#[$meta])*
        pub struct $name;
        impl $crate::error::ErrorSet for $name {
            const RESPONSES: &'static [(u16, &'static str)] = &[$(($status, $desc)),*];
        }
    };
}
