//! Accounts people can recover: confirm an e-mail address, reset a forgotten password by
//! e-mail, and end a sign-in reported from a new-device alert ("this wasn't me").
//!
//! Every link a message carries opens a page (a GET, which a mail scanner may fetch too) that
//! changes nothing; these operations — POSTs with the link's `token` — do the work, once.

use poem::{web::Data, Request};
use poem_openapi::{
    payload::Json,
    types::{Example, Password},
    ApiResponse, Object, OpenApi, Tags,
};
use secrecy::SecretString;

use super::{
    actions,
    fields::{EmailInput, EMAIL_EXAMPLE},
    session_auth::CurrentSession,
    views::Me,
};
use crate::{error::Failure, error_set, state::AppState};

#[derive(Tags)]
enum Tag {
    /// Confirm an e-mail address, reset a forgotten password, report a sign-in that was not you.
    Recovery,
}

/// The token of an e-mailed link (the `token` of its `?token=…`).
#[derive(Object)]
#[oai(example)]
struct TokenRequest {
    /// 43 base64url characters (256 random bits); only its SHA-256 is stored on the server.
    #[oai(validator(pattern = r"^[A-Za-z0-9_-]{43}$"))]
    token: String,
}

/// An example token (none like it is ever issued: tokens are random).
const TOKEN_EXAMPLE: &str = "x8Bq1cF0v7o3mNQeJ2dZk9Ya5tWg4HsLpRu6CiE_b-A";

impl Example for TokenRequest {
    fn example() -> Self {
        TokenRequest {
            token: TOKEN_EXAMPLE.into(),
        }
    }
}

/// A reset link's token and the new password.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct ResetRequest {
    /// The reset link's token: 43 base64url characters.
    #[oai(validator(pattern = r"^[A-Za-z0-9_-]{43}$"))]
    token: String,
    /// Same rules as at signup: 12 to 256 characters, not a common or breached one. Checked
    /// before the link is used: a refused password leaves the link working.
    #[oai(validator(min_length = 12, max_length = 256))]
    new_password: Password,
}

impl Example for ResetRequest {
    fn example() -> Self {
        ResetRequest {
            token: TOKEN_EXAMPLE.into(),
            new_password: Password("quiet harbor maple seven".into()),
        }
    }
}

/// Who forgot a password.
#[derive(Object)]
#[oai(example)]
struct ForgotRequest {
    email: EmailInput,
}

impl Example for ForgotRequest {
    fn example() -> Self {
        ForgotRequest {
            email: EmailInput(EMAIL_EXAMPLE.into()),
        }
    }
}

/// A message is on its way (or, for an address without an account, deliberately not — the
/// answer is the same).
#[derive(Object)]
#[oai(example)]
struct Accepted {
    message: String,
}

impl Example for Accepted {
    fn example() -> Self {
        Accepted {
            message: FORGOT_MESSAGE.into(),
        }
    }
}

const FORGOT_MESSAGE: &str =
    "If an account has this address, a message is on its way to it with what to do next.";
const RESEND_MESSAGE: &str = "A new confirmation link is on its way to your address.";

/// The confirmed address.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct EmailVerified {
    email: String,
    /// Always `true`.
    email_verified: bool,
}

impl Example for EmailVerified {
    fn example() -> Self {
        EmailVerified {
            email: EMAIL_EXAMPLE.into(),
            email_verified: true,
        }
    }
}

/// What a "this wasn't me" report did.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct Reported {
    /// True when the session was still live and has now ended (`reported_by_user`); false when
    /// it had already ended.
    session_ended: bool,
    /// The account's address: `POST /auth/password/forgot` with it sends a reset link, the
    /// next step if the password may be known to someone else.
    email: String,
}

impl Example for Reported {
    fn example() -> Self {
        Reported {
            session_ended: true,
            email: EMAIL_EXAMPLE.into(),
        }
    }
}

#[derive(ApiResponse)]
enum VerifyResponse {
    /// The address is verified; every live session of the account says so (`/auth/me`).
    #[oai(status = 200)]
    Ok(Json<EmailVerified>),
}

#[derive(ApiResponse)]
enum MailResponse {
    /// Accepted: the message is queued (sending never delays the answer).
    #[oai(status = 202)]
    Accepted(Json<Accepted>),
}

#[derive(ApiResponse)]
enum ResetResponse {
    /// The password changed, every session of the account ended (`password_reset`), and this
    /// browser is signed in with a brand-new session: the session cookie is set.
    #[oai(status = 200)]
    Ok(Json<Me>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum ReportResponse {
    /// The report is recorded and the session ended.
    #[oai(status = 200)]
    Ok(Json<Reported>),
}

error_set!(VerifyErrors: [InvalidToken] + [API, WRITE, JSON_BODY]);
error_set!(ResendErrors: [EmailAlreadyVerified, MailNotConfigured, TooManyAttempts] + [API, WRITE, SESSION]);
error_set!(ForgotErrors: [InvalidEmail, MailNotConfigured, TooManyAttempts] + [API, WRITE, JSON_BODY]);
error_set!(ResetErrors: [InvalidToken, WeakPassword, AccountDisabled, SessionLimitReached] + [API, WRITE, JSON_BODY]);
error_set!(ReportErrors: [InvalidToken] + [API, WRITE, JSON_BODY]);

pub struct AccountApi;

#[OpenApi(tag = "Tag::Recovery")]
impl AccountApi {
    /// Confirm an e-mail address with the token of a verification link.
    ///
    /// The link works once and expires (`EMAIL_VERIFICATION_TTL`, 24 hours). Needs no session.
    #[oai(path = "/auth/email/verify", method = "post")]
    async fn verify(
        &self,
        req: &Request,
        state: Data<&AppState>,
        body: Json<TokenRequest>,
    ) -> Result<VerifyResponse, Failure<VerifyErrors>> {
        let email = actions::verify_email(req, &state, &body.0.token).await?;
        Ok(VerifyResponse::Ok(Json(EmailVerified {
            email,
            email_verified: true,
        })))
    }

    /// Send a new verification link to the signed-in account's address.
    ///
    /// At most 3 in 15 minutes (then 429 with `Retry-After`). Earlier links keep working until
    /// they expire or one of them is used.
    #[oai(path = "/auth/email/verify/resend", method = "post")]
    async fn resend(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: CurrentSession,
    ) -> Result<MailResponse, Failure<ResendErrors>> {
        actions::resend_verification(req, &state, &session.0.record).await?;
        Ok(MailResponse::Accepted(Json(Accepted {
            message: RESEND_MESSAGE.into(),
        })))
    }

    /// Ask for a password reset link.
    ///
    /// Always the same answer, after the same work, whether or not an account has the address
    /// (a string that is no address at all is 400 `invalid_email`, as at sign-up):
    /// it tells nobody who has an account. An account with a password gets a link that works
    /// once, for `PASSWORD_RESET_TTL` (1 hour); an account that signs in with an identity
    /// provider gets a message saying so. At most 5 requests per address and 30 per network
    /// an hour (then 429, for known and unknown addresses alike).
    #[oai(path = "/auth/password/forgot", method = "post")]
    async fn forgot(
        &self,
        req: &Request,
        state: Data<&AppState>,
        body: Json<ForgotRequest>,
    ) -> Result<MailResponse, Failure<ForgotErrors>> {
        actions::forgot_password(req, &state, body.0.email.as_str()).await?;
        Ok(MailResponse::Accepted(Json(Accepted {
            message: FORGOT_MESSAGE.into(),
        })))
    }

    /// Set a new password with the token of a reset link.
    ///
    /// The new password is checked first; only then is the link used — atomically, once, and
    /// every other reset link of the account dies with it. Every session of the account ends
    /// (`password_reset`), the address counts as verified, the limits on the account's password
    /// failures are lifted (never the one on wrong second-factor codes), and this browser is
    /// signed in with a brand-new session. An account whose address was not verified before
    /// loses its second factors (whoever signed up with the address set them up); a verified
    /// account keeps them, and the new session asks for one.
    #[oai(path = "/auth/password/reset", method = "post")]
    async fn reset(
        &self,
        req: &Request,
        state: Data<&AppState>,
        body: Json<ResetRequest>,
    ) -> Result<ResetResponse, Failure<ResetErrors>> {
        let Json(body) = body;
        let started =
            actions::reset_password(req, &state, &body.token, SecretString::from(body.new_password.0))
                .await?;
        Ok(ResetResponse::Ok(
            Json(Me::from_record(&started.record)),
            started.set_cookie,
        ))
    }

    /// Report a sign-in as not yours, with the token of a new-device alert's link.
    ///
    /// Ends exactly the session the alert was about (`reported_by_user`), once; needs no
    /// session. The answer names the account's address, for the next step: a password reset.
    #[oai(path = "/auth/sign-in/report", method = "post")]
    async fn report(
        &self,
        req: &Request,
        state: Data<&AppState>,
        body: Json<TokenRequest>,
    ) -> Result<ReportResponse, Failure<ReportErrors>> {
        let outcome = actions::report_sign_in(req, &state, &body.0.token).await?;
        Ok(ReportResponse::Ok(Json(Reported {
            session_ended: outcome.session_ended,
            email: outcome.user.email,
        })))
    }
}
