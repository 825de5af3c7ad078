//! Local accounts and the current session: signup, login, logout, password change, `/auth/me`.

use poem::{web::Data, Request};
use poem_openapi::{
    payload::Json,
    types::{Example, Password},
    ApiResponse, Object, OpenApi, Tags,
};
use secrecy::SecretString;

use super::{
    actions,
    documented::Documented,
    fields::{EmailInput, FullName, EMAIL_EXAMPLE},
    session_auth::{client_info, CurrentSession, PresentedSessions},
    views::{JsonBody, Me},
};
use crate::{
    error::{ApiError, Failure},
    error_set,
    session::Validated,
    state::AppState,
};

#[derive(Tags)]
enum Tag {
    /// Sign up, sign in, sign out, change password.
    Auth,
}

// The password limits below are `auth::password::{MIN_CHARS, MAX_CHARS}`: validators take only
// literals, and tests/api/openapi.rs holds them to the constants.

/// A new local account.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct SignupRequest {
    /// The address to sign in with; unique whatever its letter case.
    email: EmailInput,
    /// 12 to 256 characters (any Unicode, spaces included; counted as characters, not bytes).
    /// Common and breached passwords, and the e-mail address itself, are refused
    /// (`weak_password`).
    #[oai(validator(min_length = 12, max_length = 256))]
    password: Password,
    /// How the account is shown: up to 200 characters, not only spaces, no control characters.
    /// Spaces around it are dropped.
    full_name: FullName,
}

/// The password of a new account in the spec's examples (not a breached one).
const PASSWORD_EXAMPLE: &str = "tuna lantern orbit clay";

impl Example for SignupRequest {
    fn example() -> Self {
        SignupRequest {
            email: EmailInput(EMAIL_EXAMPLE.into()),
            password: Password(PASSWORD_EXAMPLE.into()),
            full_name: FullName("Ada Lovelace".into()),
        }
    }
}

/// Credentials to sign in with.
#[derive(Object)]
#[oai(example)]
struct LoginRequest {
    email: EmailInput,
    /// The account's password. Only its bounds are checked here: the rules for new passwords are
    /// not applied again at sign-in, so changing them locks nobody out.
    #[oai(validator(min_length = 1, max_length = 256))]
    password: Password,
}

impl Example for LoginRequest {
    fn example() -> Self {
        LoginRequest {
            email: EmailInput(EMAIL_EXAMPLE.into()),
            password: Password(PASSWORD_EXAMPLE.into()),
        }
    }
}

/// A password change.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct PasswordChangeRequest {
    /// The password the account has now (only its bounds are checked, as at sign-in).
    #[oai(validator(min_length = 1, max_length = 256))]
    current_password: Password,
    /// Same rules as at signup: 12 to 256 characters, not a common or breached one.
    #[oai(validator(min_length = 12, max_length = 256))]
    new_password: Password,
}

impl Example for PasswordChangeRequest {
    fn example() -> Self {
        PasswordChangeRequest {
            current_password: Password(PASSWORD_EXAMPLE.into()),
            new_password: Password("quiet harbor maple seven".into()),
        }
    }
}

// Built once per sign-up and returned at once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
enum SignedUp {
    /// Account created and signed in: the session cookie is set. A link to confirm the address
    /// is on its way to it.
    #[oai(status = 201)]
    Created(Json<Me>, #[oai(header = "Set-Cookie")] String),
    /// Account created, not signed in: this server requires a verified address
    /// (`REQUIRE_VERIFIED_EMAIL`), and a link to confirm it is on its way. Sign in once it is
    /// confirmed.
    #[oai(status = 202)]
    VerifyFirst(Json<VerificationPending>),
}

/// An account waiting for its address to be confirmed.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct VerificationPending {
    email: String,
    /// Always `false`.
    email_verified: bool,
    message: String,
}

impl Example for VerificationPending {
    fn example() -> Self {
        VerificationPending {
            email: EMAIL_EXAMPLE.into(),
            email_verified: false,
            message: VERIFY_FIRST.into(),
        }
    }
}

const VERIFY_FIRST: &str =
    "Account created. Confirm your e-mail address with the link we sent to it, then sign in.";

#[derive(ApiResponse)]
enum SignedIn {
    /// Signed in with a brand-new session: the session cookie is set.
    #[oai(status = 200)]
    Ok(Json<Me>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum LoggedIn {
    /// Signed in with a brand-new session: the session cookie is set.
    #[oai(status = 200)]
    Ok(Json<Me>, #[oai(header = "Set-Cookie")] String),
    /// The password is right and the sign-in has one more step (`session.stage`):
    /// `second_factor` — give a code from the authenticator app or a recovery code to
    /// `POST /auth/mfa/verify` within 5 minutes; `enrolment` — this server requires a second
    /// factor (`MFA_REQUIRED`): set one up (`POST /auth/mfa/totp`, then `/auth/mfa/totp/confirm`)
    /// within 15 minutes. The cookie set here opens nothing else (403 `mfa_required`,
    /// `mfa_enrolment_required`).
    #[oai(status = 202)]
    Pending(Json<Me>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum MeResponse {
    /// The signed-in user and this session.
    #[oai(status = 200)]
    Ok(JsonBody<Me>),
}

#[derive(ApiResponse)]
enum SignedOut {
    /// Signed out: the session is revoked server-side and the cookie cleared.
    #[oai(status = 204)]
    NoContent(#[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum LoggedOut {
    /// Signed out: every live session the browser presented is revoked server-side (none when
    /// it had none), and the cookie is cleared.
    #[oai(status = 204)]
    NoContent(#[oai(header = "Set-Cookie")] String),
}

error_set!(SignupErrors: [InvalidEmail, InvalidName, WeakPassword, EmailTaken, TooManyAttempts, SessionLimitReached]
    + [API, WRITE, JSON_BODY]);

error_set!(LoginErrors: [InvalidCredentials, AccountDisabled, EmailVerificationRequired, TooManyAttempts, SessionLimitReached]
    + [API, WRITE, JSON_BODY]);

error_set!(
    /// Errors of operations that only read the session.
    ReadErrors: [] + [API, SESSION]
);

error_set!(
    /// Errors of `GET /auth/me`: those of reading the session, and its header parameter.
    MeErrors: [] + [API, PARAMS, SESSION]
);

error_set!(
    /// Errors of state-changing operations on the session.
    WriteErrors: [] + [API, WRITE, SESSION]
);

error_set!(
    /// Logout needs no session: none is no error.
    LogoutErrors: [] + [API, WRITE]
);

error_set!(
    /// Errors of ending every other session: a sensitive operation.
    RevokeOthersErrors: [ReauthenticationRequired] + [API, WRITE, SESSION]
);

error_set!(PasswordErrors: [
        ReauthenticationRequired,
        WeakPassword,
        WrongCurrentPassword,
        AccountDisabled,
        NoPassword,
        TooManyAttempts,
        SessionLimitReached,
    ]
    + [API, WRITE, JSON_BODY, SESSION]);

fn secret(p: Password) -> SecretString {
    SecretString::from(p.0)
}

pub struct AuthApi;

#[OpenApi(tag = "Tag::Auth")]
impl AuthApi {
    /// Create a local account (email + password) and sign in.
    ///
    /// Creates a brand-new session; a session the browser already had is revoked
    /// (`superseded`), never adopted.
    #[oai(path = "/auth/signup", method = "post")]
    async fn signup(
        &self,
        req: &Request,
        state: Data<&AppState>,
        body: Json<SignupRequest>,
    ) -> Result<SignedUp, Failure<SignupErrors>> {
        let Json(body) = body;
        let signed_up = actions::signup(
            req,
            &state,
            body.email.as_str(),
            secret(body.password),
            body.full_name.as_str(),
        )
        .await?;
        Ok(match signed_up {
            actions::SignedUp::Started(started) => {
                SignedUp::Created(Json(Me::from_record(&started.record)), started.set_cookie)
            }
            actions::SignedUp::VerifyFirst { email } => SignedUp::VerifyFirst(Json(VerificationPending {
                email,
                email_verified: false,
                message: VERIFY_FIRST.into(),
            })),
        })
    }

    /// Sign in with email and password.
    ///
    /// Always creates a brand-new session (new token, new id): a cookie planted before login
    /// is never adopted, and a session this browser already had is revoked (`superseded`).
    #[oai(path = "/auth/login", method = "post")]
    async fn login(
        &self,
        req: &Request,
        state: Data<&AppState>,
        body: Json<LoginRequest>,
    ) -> Result<LoggedIn, Failure<LoginErrors>> {
        let Json(body) = body;
        let started = actions::login(req, &state, body.email.as_str(), secret(body.password)).await?;
        let me = Json(Me::from_record(&started.record));
        Ok(if started.record.stage.is_complete() {
            LoggedIn::Ok(me, started.set_cookie)
        } else {
            LoggedIn::Pending(me, started.set_cookie)
        })
    }

    /// The signed-in user and the current session.
    ///
    /// Costs one session-store read and no SQL query. May rotate the session token (the
    /// response then sets a new cookie; the old one keeps working for a short grace period).
    ///
    /// A backend checking a browser's session on its behalf (forwarding its `Cookie`) sends
    /// `X-Auth-Passive: 1`: then nothing is rotated — the new cookie would never reach the
    /// browser, which would be signed out when the grace period ends — and the answer sets no
    /// cookie; the sliding expiry is still refreshed.
    #[oai(path = "/auth/me", method = "get")]
    async fn me(
        &self,
        state: Data<&AppState>,
        session: CurrentSession,
        /// Any value (send `1`): a server checking on the browser's behalf; never rotate.
        #[oai(name = "X-Auth-Passive")]
        _passive: Documented<Option<String>>,
    ) -> Result<MeResponse, Failure<MeErrors>> {
        let Validated { record, key, .. } = &session.0;
        // Written once per state of the session: the same record always gives the same body.
        let body = state
            .me_bodies
            .get_or_try(&key.hash, record, |r| JsonBody::write(&Me::from_record(r)))
            .map_err(ApiError::internal)?;
        Ok(MeResponse::Ok(JsonBody::from_written(body)))
    }

    /// Sign out of this browser: its session is revoked server-side and the cookie cleared.
    ///
    /// Safe to repeat: without a live session (no cookie, or one that already ended) there is
    /// nothing to end, and the answer is the same 204. When the browser presents several live
    /// session cookies (a sibling site planted one), each of them ends — presenting a cookie
    /// proves holding it, which is all it takes to sign it out.
    #[oai(path = "/auth/logout", method = "post")]
    async fn logout(
        &self,
        req: &Request,
        state: Data<&AppState>,
        presented: PresentedSessions,
    ) -> Result<LoggedOut, Failure<LogoutErrors>> {
        let client = client_info(req, &state.settings);
        Ok(LoggedOut::NoContent(
            actions::logout(&state, &presented.0, &client).await?,
        ))
    }

    /// Sign out of every session of this account, on every device.
    #[oai(path = "/auth/logout-all", method = "post")]
    async fn logout_all(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: CurrentSession,
    ) -> Result<SignedOut, Failure<WriteErrors>> {
        let client = client_info(req, &state.settings);
        Ok(SignedOut::NoContent(
            actions::logout_all(&state, &session.0.record, &client).await?,
        ))
    }

    /// Change the password.
    ///
    /// Needs the current password. Every session of the account ends (reason
    /// `password_changed`), this one included, and the response carries a brand-new session.
    #[oai(path = "/auth/password", method = "post")]
    async fn change_password(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: CurrentSession,
        body: Json<PasswordChangeRequest>,
    ) -> Result<SignedIn, Failure<PasswordErrors>> {
        let Json(body) = body;
        let started = actions::change_password(
            req,
            &state,
            &session.0,
            secret(body.current_password),
            secret(body.new_password),
        )
        .await?;
        Ok(SignedIn::Ok(
            Json(Me::from_record(&started.record)),
            started.set_cookie,
        ))
    }
}
