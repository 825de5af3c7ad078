//! The one place that maps errors to HTTP: status, stable JSON error code, message.
//!
//! Every error body is `{"error": "<stable_code>", "message": "…"}`. What each error is — its
//! status, its code, what it means — is one table, [`ErrorKind`]. Endpoints return
//! `Result<Ok, Failure<Set>>`, where `Set` ([`ErrorSet`]) names the kinds the endpoint can answer
//! with; the spec's error responses are derived from those kinds, so they say what the responses
//! do. Errors raised by the framework (unknown route, wrong method, unparseable body) pass through
//! [`render`], so they get the same shape. 500s are opaque to the client and logged with their
//! cause chain.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    marker::PhantomData,
    sync::{LazyLock, Mutex},
};

use bytes::Bytes;

use poem::{
    error::{MethodNotAllowedError, NotFoundError, ResponseError},
    http::{header, HeaderName, HeaderValue, StatusCode},
    IntoResponse, Response,
};
use poem_openapi::{
    error::{ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError},
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::{Example, ToJSON, Type},
    ApiResponse, Object,
};

/// Declares [`ErrorKind`] from one table: each kind's status, stable code and meaning (the
/// meaning is what the spec says about it).
macro_rules! error_kinds {
    ($($(#[$doc:meta])* $kind:ident: $status:ident, $code:literal, $meaning:literal;)*) => {
        /// What an [`ApiError`] is, without the details it carries: its status, its stable code,
        /// and what it means for the client.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[$doc])* $kind,)*
        }

        impl ErrorKind {
            /// Every kind, in table order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind),*];

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorKind::$kind => StatusCode::$status,)*
                }
            }

            /// The stable code clients can branch on.
            pub fn code(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $code,)*
                }
            }

            /// What it means, for the spec.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $meaning,)*
                }
            }
        }
    };
}

error_kinds! {
    NotFound: NOT_FOUND, "not_found", "No route matches this path.";
    MethodNotAllowed: METHOD_NOT_ALLOWED, "method_not_allowed",
        "The path does not answer this method; `Allow` names the ones it does.";
    InvalidRequest: BAD_REQUEST, "invalid_request",
        "The request does not match this operation's schema — a malformed or unreadable body, or a field or parameter outside its documented limits; `message` says which.";
    UnsupportedMediaType: UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
        "The body is not JSON. Form and text bodies are refused before any handler runs, so a cross-site form cannot reach one.";
    NotReady: SERVICE_UNAVAILABLE, "not_ready", "A dependency of the server does not answer.";
    NoSession: UNAUTHORIZED, "no_session", "The request carries no session cookie: sign in first.";
    SessionExpired: UNAUTHORIZED, "session_expired",
        "The session timed out (idle or absolute lifetime): sign in again.";
    SessionRevoked: UNAUTHORIZED, "session_revoked",
        "The session was ended; `reason` says why (`logout`, `logout_all`, `revoked_by_user`, `password_changed`, `password_reset`, `reported_by_user`, `superseded`, `user_disabled`, `operator`, `sign_in_completed`, `second_factor_failed`, `mfa_reset`).";
    AmbiguousSession: UNAUTHORIZED, "ambiguous_session",
        "Several session cookies, none of which can safely be chosen: sign in again (which ends them) or clear this site's cookies.";
    SessionStoreUnavailable: SERVICE_UNAVAILABLE, "session_store_unavailable",
        "The session store does not answer. The session is not lost: try again shortly.";
    CsrfRejected: FORBIDDEN, "csrf_rejected",
        "A cross-site request (`Origin`, `Sec-Fetch-Site`), refused before anything changed.";
    CorsRejected: FORBIDDEN, "cors_origin_not_allowed",
        "A CORS preflight from an origin not listed in `CORS_ORIGINS`.";
    HostNotAllowed: BAD_REQUEST, "host_not_allowed",
        "The request names a host this server does not answer for (`PUBLIC_URL`, `ALLOWED_HOSTS`).";
    InvalidCredentials: UNAUTHORIZED, "invalid_credentials",
        "Unknown e-mail address or wrong password — deliberately indistinguishable.";
    TooManyAttempts: TOO_MANY_REQUESTS, "too_many_attempts",
        "Too many attempts from this network or on this account; `Retry-After` says when to try again.";
    AccountDisabled: FORBIDDEN, "account_disabled", "The account is disabled.";
    WeakPassword: BAD_REQUEST, "weak_password",
        "The new password is refused: it is common (it appears in lists of breached passwords) or is the e-mail address.";
    WrongCurrentPassword: FORBIDDEN, "current_password_incorrect", "The current password is wrong.";
    NoPassword: CONFLICT, "no_password",
        "The account has no password: it signs in with an identity provider.";
    EmailTaken: CONFLICT, "email_taken", "An account with this e-mail address already exists.";
    InvalidEmail: BAD_REQUEST, "invalid_email",
        "The e-mail address is not one the server accepts (`name@domain.tld`; no spaces, invisible characters or look-alike spellings).";
    InvalidName: BAD_REQUEST, "invalid_name", "The full name is blank or holds control characters.";
    SessionNotFound: NOT_FOUND, "session_not_found",
        "No live session of yours has this id — also the answer for another user's session.";
    ProviderNotConfigured: NOT_FOUND, "provider_not_configured",
        "Sign-in with this provider is not configured on this server.";
    ProviderUnavailable: BAD_GATEWAY, "provider_unavailable",
        "The identity provider cannot be reached; password sign-in still works.";
    SignInStateInvalid: BAD_REQUEST, "sign_in_state_invalid",
        "The sign-in cannot be completed: its `state` is missing, wrong, already used, or from another browser.";
    IssuerMismatch: BAD_REQUEST, "issuer_mismatch",
        "The authorization response names another issuer than the one configured.";
    ProviderRefused: BAD_REQUEST, "provider_refused",
        "The provider refused the sign-in (the user cancelled, say); `reason` is its error code.";
    IdTokenInvalid: UNAUTHORIZED, "id_token_invalid", "The provider's answer failed verification.";
    EmailNotVerified: FORBIDDEN, "email_not_verified",
        "The provider has not verified this e-mail address.";
    EmailMissing: BAD_REQUEST, "email_missing", "The provider did not share an e-mail address.";
    IdentityConflict: CONFLICT, "identity_conflict",
        "The e-mail belongs to an account already linked to another identity at this provider.";
    ServerBusy: SERVICE_UNAVAILABLE, "server_busy",
        "The server is busy (too many password checks waiting, or changes racing on one record); `Retry-After` says when to try again.";
    SessionLimitReached: CONFLICT, "session_limit_reached",
        "The account already has the most live sessions allowed (`MAX_SESSIONS_PER_USER`): sign out of one first.";
    InvalidToken: BAD_REQUEST, "invalid_token",
        "The link's token is not valid: already used, expired, or never issued. Ask for a new link.";
    EmailAlreadyVerified: CONFLICT, "email_already_verified", "The account's e-mail address is already verified.";
    EmailVerificationRequired: FORBIDDEN, "email_verification_required",
        "The account's e-mail address is not verified yet and this server requires it (`REQUIRE_VERIFIED_EMAIL`); a new confirmation link was sent to it.";
    MailNotConfigured: NOT_FOUND, "mail_not_configured",
        "This server sends no e-mail (`SMTP_URL` is not set), so e-mail verification and password reset are off.";
    MfaRequired: FORBIDDEN, "mfa_required",
        "This session has proven only its first factor (a password, or the identity provider): finish the sign-in with `POST /auth/mfa/verify` and a code from the authenticator app or a recovery code. Nothing else is open to it.";
    MfaEnrolmentRequired: FORBIDDEN, "mfa_enrolment_required",
        "This server requires a second factor (`MFA_REQUIRED`) and the account has none yet: set one up (`POST /auth/mfa/totp`, then `POST /auth/mfa/totp/confirm`) to finish the sign-in. Nothing else is open to it.";
    ReauthenticationRequired: FORBIDDEN, "reauthentication_required",
        "A sensitive operation needs a recent proof of identity in this session (within `SESSION_PRIVILEGED_MAX_AGE`): `POST /auth/reauthenticate` with the password — or, when the account has a second factor, a code from it — then repeat the request.";
    InvalidCode: BAD_REQUEST, "invalid_code",
        "The code is wrong, expired, or was already used.";
    TotpAlreadyEnabled: CONFLICT, "totp_already_enabled",
        "The account already has an authenticator app; remove it (`DELETE /auth/mfa/totp`) before setting up another.";
    TotpNotEnabled: NOT_FOUND, "totp_not_enabled",
        "The account has no authenticator app (or, for a confirmation, no set-up waiting for one).";
    MfaNotPending: CONFLICT, "mfa_not_pending",
        "This session's sign-in waits for no second factor: it is already signed in, or it must enrol one first.";
    PasskeyRefused: BAD_REQUEST, "passkey_refused",
        "The passkey was not accepted: the ceremony expired (5 minutes) or was already used, the authenticator is not registered here (or is already, at registration), or its answer failed verification — including a signature counter that went backwards (a cloned authenticator).";
    PasskeysNotAvailable: NOT_FOUND, "passkeys_not_available",
        "Passkeys are off on this server: its public address (`PUBLIC_URL`) is an IP address, not a domain name.";
    NoPasskey: NOT_FOUND, "no_passkey", "The account has no passkey to prove itself with.";
    PasskeyNotFound: NOT_FOUND, "passkey_not_found", "No passkey of yours has this id — also the answer for another account's.";
    TooManyPasskeys: CONFLICT, "too_many_passkeys", "The account has the most passkeys allowed (20); remove one first.";
    PayloadTooLarge: PAYLOAD_TOO_LARGE, "payload_too_large",
        "The body is larger than the server accepts (16 KiB).";
    RequestTimeout: REQUEST_TIMEOUT, "request_timeout",
        "The body did not arrive in time (`HTTP_BODY_READ_TIMEOUT`); the connection is closed.";
    Internal: INTERNAL_SERVER_ERROR, "internal_error",
        "An unexpected failure. Nothing about it is sent; the server's log has it under this response's `x-request-id`.";
}

impl ErrorKind {
    /// The headers an answer of this kind always carries, for the spec: `(name, meaning)`.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        const RETRY_AFTER: (&str, &str) = ("Retry-After", "Seconds to wait before trying again.");
        match self {
            ErrorKind::TooManyAttempts | ErrorKind::ServerBusy => &[RETRY_AFTER],
            _ => &[],
        }
    }
}

/// The body of every error response. Written by serde (the `serde` attributes mirror the `oai`
/// ones; a test compares both writers), not through poem-openapi's `serde_json::Value` tree.
#[derive(Debug, Clone, Object, serde::Deserialize, serde::Serialize)]
#[oai(example)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `session_expired` or `csrf_rejected`.
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
    /// For `session_revoked`: why the session ended (`logout`, `password_changed`,
    /// `user_disabled`, `operator`, …).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `session_revoked` by an operator: the text they gave (`authauth sessions revoke
    /// --reason`), exactly as written — for the person whose session ended ("phone reported
    /// stolen"). Absent when they gave none. `message` quotes it too.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Example for ErrorBody {
    fn example() -> Self {
        ApiError::SessionRevoked {
            reason: "logout".into(),
            note: None,
        }
        .body()
    }
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
    #[error("the session was ended ({reason}){}", .note.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    SessionRevoked {
        reason: String,
        /// The operator's own words, if any.
        note: Option<String>,
    },
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
    /// `what` there were too many of: "failed sign-in attempts", "requests for e-mail", …
    #[error("too many {what}; try again in {retry_after} seconds")]
    TooManyAttempts { retry_after: u64, what: &'static str },
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
    #[error("{0}")]
    InvalidToken(String),
    #[error("this e-mail address is already verified")]
    EmailAlreadyVerified,
    #[error("{0}")]
    EmailVerificationRequired(String),
    #[error("{0}")]
    MailNotConfigured(String),
    #[error("this sign-in is not finished: give a code from your authenticator app or a recovery code (POST /auth/mfa/verify)")]
    MfaRequired,
    #[error("this server requires a second factor and the account has none: set up an authenticator app (POST /auth/mfa/totp) to finish signing in")]
    MfaEnrolmentRequired,
    #[error("{0}")]
    ReauthenticationRequired(String),
    #[error("{0}")]
    InvalidCode(String),
    #[error("this account already has an authenticator app; remove it before setting up another")]
    TotpAlreadyEnabled,
    #[error("{0}")]
    TotpNotEnabled(String),
    #[error("this session's sign-in waits for no second factor")]
    MfaNotPending,
    #[error("{0}")]
    PasskeyRefused(String),
    #[error("{0}")]
    PasskeysNotAvailable(String),
    #[error("this account has no passkey")]
    NoPasskey,
    #[error("no passkey of yours has this id")]
    PasskeyNotFound,
    #[error("{0}")]
    TooManyPasskeys(String),
    #[error("the request body is larger than {} bytes", crate::api::guard::MAX_BODY_BYTES)]
    PayloadTooLarge,
    #[error("the request body did not arrive in time (HTTP_BODY_READ_TIMEOUT)")]
    RequestTimeout,
    /// An unexpected failure; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// What this error is, without the details it carries.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            ApiError::NotFound => K::NotFound,
            ApiError::MethodNotAllowed { .. } => K::MethodNotAllowed,
            ApiError::InvalidRequest(_) => K::InvalidRequest,
            ApiError::UnsupportedMediaType(_) => K::UnsupportedMediaType,
            ApiError::NotReady(_) => K::NotReady,
            ApiError::NoSession => K::NoSession,
            ApiError::SessionExpired => K::SessionExpired,
            ApiError::SessionRevoked { .. } => K::SessionRevoked,
            ApiError::AmbiguousSession => K::AmbiguousSession,
            ApiError::SessionStoreUnavailable(_) => K::SessionStoreUnavailable,
            ApiError::CsrfRejected(_) => K::CsrfRejected,
            ApiError::CorsRejected => K::CorsRejected,
            ApiError::HostNotAllowed => K::HostNotAllowed,
            ApiError::InvalidCredentials => K::InvalidCredentials,
            ApiError::TooManyAttempts { .. } => K::TooManyAttempts,
            ApiError::AccountDisabled => K::AccountDisabled,
            ApiError::WeakPassword(_) => K::WeakPassword,
            ApiError::WrongCurrentPassword => K::WrongCurrentPassword,
            ApiError::NoPassword => K::NoPassword,
            ApiError::EmailTaken => K::EmailTaken,
            ApiError::InvalidEmail(_) => K::InvalidEmail,
            ApiError::InvalidName(_) => K::InvalidName,
            ApiError::SessionNotFound => K::SessionNotFound,
            ApiError::ProviderNotConfigured => K::ProviderNotConfigured,
            ApiError::ProviderUnavailable(_) => K::ProviderUnavailable,
            ApiError::SignInStateInvalid(_) => K::SignInStateInvalid,
            ApiError::IssuerMismatch => K::IssuerMismatch,
            ApiError::ProviderRefused { .. } => K::ProviderRefused,
            ApiError::IdTokenInvalid(_) => K::IdTokenInvalid,
            ApiError::EmailNotVerified(_) => K::EmailNotVerified,
            ApiError::EmailMissing(_) => K::EmailMissing,
            ApiError::IdentityConflict(_) => K::IdentityConflict,
            ApiError::ServerBusy => K::ServerBusy,
            ApiError::SessionLimitReached { .. } => K::SessionLimitReached,
            ApiError::InvalidToken(_) => K::InvalidToken,
            ApiError::EmailAlreadyVerified => K::EmailAlreadyVerified,
            ApiError::EmailVerificationRequired(_) => K::EmailVerificationRequired,
            ApiError::MailNotConfigured(_) => K::MailNotConfigured,
            ApiError::MfaRequired => K::MfaRequired,
            ApiError::MfaEnrolmentRequired => K::MfaEnrolmentRequired,
            ApiError::ReauthenticationRequired(_) => K::ReauthenticationRequired,
            ApiError::InvalidCode(_) => K::InvalidCode,
            ApiError::TotpAlreadyEnabled => K::TotpAlreadyEnabled,
            ApiError::TotpNotEnabled(_) => K::TotpNotEnabled,
            ApiError::MfaNotPending => K::MfaNotPending,
            ApiError::PasskeyRefused(_) => K::PasskeyRefused,
            ApiError::PasskeysNotAvailable(_) => K::PasskeysNotAvailable,
            ApiError::NoPasskey => K::NoPasskey,
            ApiError::PasskeyNotFound => K::PasskeyNotFound,
            ApiError::TooManyPasskeys(_) => K::TooManyPasskeys,
            ApiError::PayloadTooLarge => K::PayloadTooLarge,
            ApiError::RequestTimeout => K::RequestTimeout,
            ApiError::Internal(_) => K::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.kind().status()
    }

    /// The stable code clients can branch on.
    pub fn code(&self) -> &'static str {
        self.kind().code()
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
            note: match self {
                ApiError::SessionRevoked { note, .. } => note.clone(),
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
        let mut resp = match self {
            ApiError::NoSession => json_response(self.status(), NO_SESSION_BODY.clone()),
            _ => json_error(self.status(), &self.body()),
        };
        let retry_after = match self {
            ApiError::TooManyAttempts { retry_after, .. } => Some(*retry_after),
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
            E::Revoked { reason, message } => ApiError::SessionRevoked {
                reason,
                note: message,
            },
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
            E::Throttled { retry_after, what } => ApiError::TooManyAttempts { retry_after, what },
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
            e @ E::InvalidToken => ApiError::InvalidToken(e.to_string()),
            E::AlreadyVerified => ApiError::EmailAlreadyVerified,
            e @ E::EmailVerificationRequired => ApiError::EmailVerificationRequired(e.to_string()),
            e @ E::MailOff => ApiError::MailNotConfigured(e.to_string()),
            E::SessionLimit { max } => ApiError::SessionLimitReached { max },
            e @ E::InvalidCode => ApiError::InvalidCode(e.to_string()),
            e @ E::ReauthenticationRequired { .. } => ApiError::ReauthenticationRequired(e.to_string()),
            E::TotpAlreadyEnabled => ApiError::TotpAlreadyEnabled,
            e @ (E::TotpNotEnabled | E::TotpNotStarted) => ApiError::TotpNotEnabled(e.to_string()),
            E::MfaNotPending => ApiError::MfaNotPending,
            E::Session(e) => e.into(),
            e @ E::PasskeyRefused => ApiError::PasskeyRefused(e.to_string()),
            e @ E::PasskeysOff => ApiError::PasskeysNotAvailable(e.to_string()),
            E::NoPasskey => ApiError::NoPasskey,
            E::PasskeyNotFound => ApiError::PasskeyNotFound,
            e @ E::TooManyPasskeys { .. } => ApiError::TooManyPasskeys(e.to_string()),
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
    json_response(status, error_json(body).into())
}

fn error_json(body: &ErrorBody) -> Vec<u8> {
    // Strings and options of strings always serialise.
    serde_json::to_vec(body).unwrap_or_else(|_| body.to_json_string().into_bytes())
}

/// The body of `no_session`, written once: it never changes, and it is the answer to every
/// request of a signed-out visitor (`GET /auth/me`, a proxy's `GET /auth/verify` for each of
/// their page's requests) — writing it each time was a tenth of such a request.
static NO_SESSION_BODY: LazyLock<Bytes> = LazyLock::new(|| error_json(&ApiError::NoSession.body()).into());

fn json_response(status: StatusCode, json: Bytes) -> Response {
    Response::builder()
        .status(status)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )
        .header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
        .body(json)
}

/// Turns any error that reached the outermost layer into the JSON error shape. Not `async`: it
/// waits for nothing, and a future of its own in every caller's state would only make the
/// request's futures larger.
pub fn render(err: poem::Error) -> Response {
    let extra = err.data::<ExtraHeaders>().cloned();
    // The route that answered, for the metrics' `route` label (poem records it on the error).
    let route = err.data::<poem::PathPattern>().cloned();
    let mut resp = render_error(err);
    if let Some(route) = route {
        resp.set_data(route);
    }
    if let Some(ExtraHeaders(headers)) = extra {
        for (name, value) in headers {
            resp.headers_mut().append(name, value);
        }
    }
    resp
}

fn render_error(err: poem::Error) -> Response {
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
                note: None,
            };
            return json_error(status, &body);
        }
    };
    api.as_response()
}

/// The errors an endpoint can answer with, by kind: its own, and those that reach it from
/// around its handler ([`reach`]). The spec documents each status once, listing every code it can
/// carry with its meaning and the headers it comes with.
pub trait ErrorSet: Send + Sync + 'static {
    const KINDS: &'static [&'static [ErrorKind]];
    /// Headers the operation itself adds to some of its error answers, for the spec:
    /// `(status, name, meaning)`; never required. Set on an answer with [`Failure::with_header`].
    const HEADERS: &'static [(u16, &'static str, &'static str)] = &[];
}

/// Errors that reach whole classes of operations from around their handlers — the guard, the
/// framework, the session store — so that no operation has to remember them one by one. A test
/// (`tests/api/openapi.rs`) checks every operation of the spec documents its classes.
pub mod reach {
    use super::ErrorKind::{self, *};

    /// Every operation, probes included: an unexpected failure.
    pub const ANY: &[ErrorKind] = &[Internal];
    /// Every operation but the probes: they are behind the host check, and each reads or writes
    /// the session store (sessions, attempt counters, sign-in flows).
    pub const API: &[ErrorKind] = &[HostNotAllowed, SessionStoreUnavailable, ServerBusy, Internal];
    /// State-changing operations (POST, DELETE): before any handler, the guard reads the body
    /// (bounded and timed), checks where the request comes from, and refuses form bodies.
    pub const WRITE: &[ErrorKind] = &[
        InvalidRequest,
        CsrfRejected,
        RequestTimeout,
        PayloadTooLarge,
        UnsupportedMediaType,
    ];
    /// Operations with a JSON body: one that does not parse or does not match the schema.
    pub const JSON_BODY: &[ErrorKind] = &[InvalidRequest, UnsupportedMediaType];
    /// Operations with path or query parameters: one that does not match its schema.
    pub const PARAMS: &[ErrorKind] = &[InvalidRequest];
    /// Operations that need a session.
    pub const SESSION: &[ErrorKind] = &[
        NoSession,
        SessionExpired,
        SessionRevoked,
        AmbiguousSession,
        MfaRequired,
        MfaEnrolmentRequired,
    ];
    /// A session whose sign-in may still be unfinished (the operations that finish it).
    pub const ANY_SESSION: &[ErrorKind] = &[NoSession, SessionExpired, SessionRevoked, AmbiguousSession];
}

/// `MetaResponse` wants `&'static str`, and descriptions are composed: each distinct one is
/// leaked once (a few dozen, for the life of the process), however often the spec is built.
fn interned(text: String) -> &'static str {
    static INTERNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut interned = INTERNED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = interned.get(text.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    interned.insert(leaked);
    leaked
}

/// The spec's error responses for these kinds: one per status, naming each code it can carry.
fn error_responses(
    kinds: impl IntoIterator<Item = ErrorKind>,
    extra_headers: &[(u16, &'static str, &'static str)],
) -> Vec<MetaResponse> {
    let mut by_status: BTreeMap<u16, Vec<ErrorKind>> = BTreeMap::new();
    for kind in kinds {
        let same_status = by_status.entry(kind.status().as_u16()).or_default();
        if !same_status.contains(&kind) {
            same_status.push(kind);
        }
    }
    by_status
        .into_iter()
        .map(|(status, kinds)| {
            let description = match kinds.as_slice() {
                [one] => format!("`{}`: {}", one.code(), one.meaning()),
                many => many
                    .iter()
                    .map(|k| format!("- `{}`: {}", k.code(), k.meaning()))
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            let mut headers: Vec<MetaHeader> = Vec::new();
            for (name, meaning) in kinds.iter().flat_map(|k| k.headers()) {
                if headers.iter().any(|h| h.name == *name) {
                    continue;
                }
                headers.push(MetaHeader {
                    name: name.to_string(),
                    description: Some(meaning.to_string()),
                    // Required only when every code of this status carries it.
                    required: kinds.iter().all(|k| k.headers().iter().any(|(n, _)| n == name)),
                    deprecated: false,
                    schema: u64::schema_ref(),
                });
            }
            for (_, name, meaning) in extra_headers.iter().filter(|(s, _, _)| *s == status) {
                headers.push(MetaHeader {
                    name: name.to_string(),
                    description: Some(meaning.to_string()),
                    required: false,
                    deprecated: false,
                    schema: String::schema_ref(),
                });
            }
            MetaResponse {
                description: interned(description),
                status: Some(status),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: ErrorBody::schema_ref(),
                }],
                headers,
            }
        })
        .collect()
}

/// An endpoint's error: an [`ApiError`], documented in the spec as the statuses of `S`, with
/// any headers the operation adds to it (documented in `S::HEADERS`).
pub struct Failure<S: ErrorSet> {
    pub error: ApiError,
    headers: Vec<(HeaderName, HeaderValue)>,
    set: PhantomData<S>,
}

/// Headers an operation added to its error answer, carried by the `poem::Error` to [`render`].
#[derive(Clone)]
struct ExtraHeaders(Vec<(HeaderName, HeaderValue)>);

impl<S: ErrorSet> Failure<S> {
    pub fn new(err: ApiError) -> Self {
        Failure {
            error: err,
            headers: Vec::new(),
            set: PhantomData,
        }
    }

    /// The same answer with one more header (one `S::HEADERS` documents).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl<S: ErrorSet> fmt::Debug for Failure<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<S: ErrorSet> From<ApiError> for Failure<S> {
    fn from(err: ApiError) -> Self {
        Failure::new(err)
    }
}

impl<S: ErrorSet> From<Failure<S>> for poem::Error {
    fn from(f: Failure<S>) -> Self {
        let mut err = poem::Error::from(f.error);
        if !f.headers.is_empty() {
            err.set_data(ExtraHeaders(f.headers));
        }
        err
    }
}

impl<S: ErrorSet> IntoResponse for Failure<S> {
    fn into_response(self) -> Response {
        let mut resp = self.error.as_response();
        for (name, value) in self.headers {
            resp.headers_mut().append(name, value);
        }
        resp
    }
}

impl<S: ErrorSet> ApiResponse for Failure<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: error_responses(
                S::KINDS.iter().flat_map(|group| group.iter().copied()),
                S::HEADERS,
            ),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

/// Declares an [`ErrorSet`]: the operation's own error kinds, then the [`reach`] classes it is
/// in — `error_set!(Name: [EmailTaken, WeakPassword] + [API, WRITE, JSON_BODY]);`
#[macro_export]
macro_rules! error_set {
    ($(#[$meta:meta])* $name:ident: [$($kind:ident),* $(,)?] + [$($class:ident),* $(,)?]) => {
        $(#[$meta])*
        pub struct $name;
        impl $crate::error::ErrorSet for $name {
            const KINDS: &'static [&'static [$crate::error::ErrorKind]] = &[
                &[$($crate::error::ErrorKind::$kind),*],
                $($crate::error::reach::$class),*
            ];
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde (what the server writes) and poem-openapi (the spec's `ToJSON`) write the same
    /// error document: the same fields, absent when `None`, the same escaping.
    #[tokio::test]
    async fn serde_and_poem_openapi_write_the_same_error_body() {
        let bodies = [
            ApiError::NoSession.body(),
            ErrorBody::example(),
            ApiError::SessionRevoked {
                reason: "operator".into(),
                note: Some("phone \"reported\" stolen\n\u{1b}[31m".into()),
            }
            .body(),
            ApiError::InvalidRequest("the request body is not valid: `email`".into()).body(),
        ];
        for body in bodies {
            let by_serde: serde_json::Value =
                serde_json::from_slice(&serde_json::to_vec(&body).unwrap()).unwrap();
            assert_eq!(by_serde, body.to_json().unwrap(), "{body:?}");
        }
        let bytes = json_error(StatusCode::UNAUTHORIZED, &ApiError::NoSession.body())
            .into_body()
            .into_bytes()
            .await
            .unwrap();
        let written: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(written["error"], "no_session");
        assert!(written.get("reason").is_none() && written.get("note").is_none());
    }

    /// `no_session`'s body, written once, is the response the error makes — status, headers and
    /// body as every other error's.
    #[tokio::test]
    async fn the_no_session_answer_is_written_like_every_other_error() {
        let kept = ApiError::NoSession.as_response();
        let fresh = json_error(StatusCode::UNAUTHORIZED, &ApiError::NoSession.body());
        assert_eq!(kept.status(), fresh.status());
        assert_eq!(kept.headers(), fresh.headers());
        let kept = kept.into_body().into_bytes().await.unwrap();
        assert_eq!(kept, fresh.into_body().into_bytes().await.unwrap());
        let written: serde_json::Value = serde_json::from_slice(&kept).unwrap();
        assert_eq!(written["error"], "no_session");
        assert_eq!(written["message"], ApiError::NoSession.to_string());
    }

    #[test]
    fn every_kind_has_its_own_code_and_a_meaning() {
        let codes: BTreeSet<&str> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len(), "two kinds share a code");
        for kind in ErrorKind::ALL {
            assert!(kind.meaning().ends_with('.'), "{kind:?}");
            assert!(kind.status().is_client_error() || kind.status().is_server_error());
        }
    }

    #[test]
    fn the_body_limit_is_the_one_the_spec_states() {
        assert_eq!(crate::api::guard::MAX_BODY_BYTES, 16 * 1024);
        assert!(ErrorKind::PayloadTooLarge.meaning().contains("16 KiB"));
    }

    #[test]
    fn one_status_is_documented_once_with_every_code_it_carries() {
        use ErrorKind::*;
        let responses = error_responses(
            [TooManyAttempts, ServerBusy, SessionStoreUnavailable, ServerBusy],
            &[],
        );
        let statuses: Vec<_> = responses.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [Some(429), Some(503)]);
        let busy = &responses[1];
        assert!(busy.description.contains("`server_busy`"));
        assert!(busy.description.contains("`session_store_unavailable`"));
        assert_eq!(busy.description.matches("`server_busy`").count(), 1);
        // Retry-After comes with every 429, and with only some 503s.
        assert!(responses[0].headers[0].required);
        assert_eq!(busy.headers[0].name, "Retry-After");
        assert!(!busy.headers[0].required);
    }
}
