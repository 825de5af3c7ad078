//! Second factors and step-up: an authenticator app (TOTP) with recovery codes, the second step
//! of a sign-in, and re-authentication for sensitive operations.

use base64::{engine::general_purpose::STANDARD, Engine};
use chrono::{DateTime, Utc};
use poem::{web::Data, Request};
use poem_openapi::{
    payload::Json,
    types::{Example, Password},
    ApiResponse, Object, OpenApi, Tags, Union,
};
use secrecy::SecretString;

use super::{
    actions,
    fields::{OtpCode, RecoveryCodeInput},
    session_auth::{CurrentSession, SignInSession},
    views::{Me, SessionView},
};
use crate::{
    auth::mfa::{Reauthentication, SecondFactor},
    error::{ApiError, Failure},
    error_set,
    session::record::{datetime, Stage},
    state::AppState,
};

#[derive(Tags)]
enum Tag {
    /// Second factors (authenticator app, recovery codes) and re-authentication.
    Mfa,
}

/// The account's second factors (never a secret).
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct MfaStatus {
    /// Whether sign-in asks for a code from an authenticator app.
    totp: bool,
    /// When the authenticator app was set up.
    #[oai(skip_serializing_if_is_none)]
    totp_enabled_at: Option<DateTime<Utc>>,
    /// When a code from it was last accepted.
    #[oai(skip_serializing_if_is_none)]
    totp_last_used_at: Option<DateTime<Utc>>,
    /// Recovery codes not used yet.
    recovery_codes_left: u64,
    /// Whether this server requires every account to have a second factor (`MFA_REQUIRED`).
    required: bool,
}

impl Example for MfaStatus {
    fn example() -> Self {
        MfaStatus {
            totp: true,
            totp_enabled_at: Some(datetime(1_773_480_413_000)),
            totp_last_used_at: Some(datetime(1_773_480_713_000)),
            recovery_codes_left: 9,
            required: false,
        }
    }
}

/// An authenticator app to set up: scan `qrCode` (or type `secret`), then confirm with the
/// app's first code.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct TotpSetupView {
    /// The seed in base32, for apps that cannot scan (shown only now; never again).
    secret: String,
    /// `otpauth://totp/…`: what the QR code holds.
    otpauth_uri: String,
    /// The QR code of `otpauthUri`: a `data:image/svg+xml;base64,…` URL for an `<img src>`.
    qr_code: String,
}

impl Example for TotpSetupView {
    fn example() -> Self {
        TotpSetupView {
            secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
            otpauth_uri: "otpauth://totp/authauth:ada%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=authauth".into(),
            qr_code: "data:image/svg+xml;base64,PHN2Zz4uLi48L3N2Zz4=".into(),
        }
    }
}

/// A code from the authenticator app.
#[derive(Object)]
#[oai(example)]
struct CodeRequest {
    /// Six digits (spaces and hyphens are ignored).
    code: OtpCode,
}

impl Example for CodeRequest {
    fn example() -> Self {
        CodeRequest {
            code: OtpCode("123456".into()),
        }
    }
}

/// Six digits from the authenticator app.
#[derive(Object)]
#[oai(example)]
struct TotpAnswer {
    /// Six digits (spaces and hyphens are ignored).
    code: OtpCode,
}

impl Example for TotpAnswer {
    fn example() -> Self {
        TotpAnswer {
            code: OtpCode("123456".into()),
        }
    }
}

/// One of the account's recovery codes: each works once.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct RecoveryCodeAnswer {
    /// `xxxx-xxxx-xxxx-xxxx`; case, hyphens and spaces do not matter.
    recovery_code: RecoveryCodeInput,
}

impl Example for RecoveryCodeAnswer {
    fn example() -> Self {
        RecoveryCodeAnswer {
            recovery_code: RecoveryCodeInput("7k2m-9q4r-x8vt-3h6p".into()),
        }
    }
}

/// The account's password.
#[derive(Object)]
#[oai(example)]
struct PasswordAnswer {
    #[oai(validator(min_length = 1, max_length = 256))]
    password: Password,
}

impl Example for PasswordAnswer {
    fn example() -> Self {
        PasswordAnswer {
            password: Password("tuna lantern orbit clay".into()),
        }
    }
}

/// The second step of a sign-in: a code from the authenticator app, or a recovery code.
#[derive(Union)]
#[oai(one_of)]
enum SecondFactorRequest {
    Code(TotpAnswer),
    RecoveryCode(RecoveryCodeAnswer),
}

/// A proof of identity for step-up: the password, a code from the authenticator app, or a
/// recovery code. An account with a second factor must use it (a password alone is refused).
#[derive(Union)]
#[oai(one_of)]
enum ReauthenticateRequest {
    Password(PasswordAnswer),
    Code(TotpAnswer),
    RecoveryCode(RecoveryCodeAnswer),
}

/// Recovery codes, shown once: each stands in for the authenticator app one time.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

impl Example for RecoveryCodes {
    fn example() -> Self {
        RecoveryCodes {
            recovery_codes: vec!["7k2m-9q4r-x8vt-3h6p".into(), "b5nw-2c8d-q4zt-j7e9".into()],
        }
    }
}

/// A confirmed authenticator app: the recovery codes (shown once) and the session this browser
/// goes on with.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct TotpConfirmed {
    recovery_codes: Vec<String>,
    session: SessionView,
}

impl Example for TotpConfirmed {
    fn example() -> Self {
        TotpConfirmed {
            recovery_codes: RecoveryCodes::example().recovery_codes,
            session: SessionView {
                ip: None,
                user_agent: None,
                current: None,
                ..SessionView::example()
            },
        }
    }
}

#[derive(ApiResponse)]
enum StatusResponse {
    /// The account's second factors.
    #[oai(status = 200)]
    Ok(Json<MfaStatus>),
}

#[derive(ApiResponse)]
enum TotpStarted {
    /// A new seed, waiting for its first code (`POST /auth/mfa/totp/confirm`). Starting again
    /// before confirming replaces it.
    #[oai(status = 200)]
    Ok(Json<TotpSetupView>),
}

#[derive(ApiResponse)]
enum TotpConfirmedResponse {
    /// The app is on: sign-in now asks for its codes. The session cookie is replaced — this
    /// session counts as re-authenticated with the app, or, finishing an enrolment
    /// (`MFA_REQUIRED`), the sign-in is finished in a new session.
    #[oai(status = 200)]
    Ok(Json<TotpConfirmed>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
enum CodesResponse {
    /// Ten new recovery codes; every earlier one stopped working.
    #[oai(status = 200)]
    Ok(Json<RecoveryCodes>),
}

#[derive(ApiResponse)]
enum SignedIn {
    /// The sign-in is finished: the waiting session ended and a brand-new one is set.
    #[oai(status = 200)]
    Ok(Json<Me>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum Reauthenticated {
    /// This session may do sensitive operations for `SESSION_PRIVILEGED_MAX_AGE` from
    /// `session.authenticatedAt`. Its token is replaced (a change of privilege): the new cookie
    /// is set.
    #[oai(status = 200)]
    Ok(Json<Me>, #[oai(header = "Set-Cookie")] String),
}

error_set!(StatusErrors: [] + [API, SESSION]);
error_set!(TotpStartErrors: [TotpAlreadyEnabled, ReauthenticationRequired, AccountDisabled, MfaRequired]
    + [API, WRITE, ANY_SESSION]);
error_set!(TotpConfirmErrors: [
        InvalidCode,
        TotpNotEnabled,
        TotpAlreadyEnabled,
        TooManyAttempts,
        AccountDisabled,
        SessionLimitReached,
        MfaRequired,
    ]
    + [API, WRITE, JSON_BODY, ANY_SESSION]);
error_set!(TotpDisableErrors: [TotpNotEnabled, ReauthenticationRequired, AccountDisabled] + [API, WRITE, SESSION]);
error_set!(VerifyErrors: [InvalidCode, MfaNotPending, TooManyAttempts, AccountDisabled, SessionLimitReached]
    + [API, WRITE, JSON_BODY, ANY_SESSION]);
error_set!(CodesErrors: [TotpNotEnabled, ReauthenticationRequired, AccountDisabled] + [API, WRITE, SESSION]);
error_set!(ReauthErrors: [
        InvalidCode,
        WrongCurrentPassword,
        NoPassword,
        ReauthenticationRequired,
        TooManyAttempts,
        AccountDisabled,
    ]
    + [API, WRITE, JSON_BODY, SESSION]);

/// The data URL of an SVG image.
fn svg_data_url(svg: &str) -> String {
    format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg))
}

pub struct MfaApi;

#[OpenApi(tag = "Tag::Mfa")]
impl MfaApi {
    /// The account's second factors.
    #[oai(path = "/auth/mfa", method = "get")]
    async fn status(
        &self,
        state: Data<&AppState>,
        session: CurrentSession,
    ) -> Result<StatusResponse, Failure<StatusErrors>> {
        let factors = state
            .auth
            .factors(session.0.record.user_id)
            .await
            .map_err(ApiError::from)?;
        Ok(StatusResponse::Ok(Json(MfaStatus {
            totp: factors.any(),
            totp_enabled_at: factors.totp_enabled_at.map(datetime),
            totp_last_used_at: factors.totp_last_used_at.map(datetime),
            recovery_codes_left: factors.recovery_codes_left,
            required: state.auth.mfa_settings().required,
        })))
    }

    /// Start setting up an authenticator app.
    ///
    /// Returns a new seed as a QR code, an `otpauth://` URI and base32 text. Nothing changes
    /// for sign-in until the app's first code confirms it (`POST /auth/mfa/totp/confirm`).
    /// Needs a recent proof of identity (`reauthentication_required`); also open to a sign-in
    /// that must enrol a factor (`MFA_REQUIRED`).
    #[oai(path = "/auth/mfa/totp", method = "post")]
    async fn start_totp(
        &self,
        state: Data<&AppState>,
        session: SignInSession,
    ) -> Result<TotpStarted, Failure<TotpStartErrors>> {
        let record = &session.0.record;
        if record.stage == Stage::SecondFactor {
            return Err(ApiError::MfaRequired.into());
        }
        let setup = actions::start_totp(&state, record).await?;
        Ok(TotpStarted::Ok(Json(TotpSetupView {
            secret: setup.secret,
            otpauth_uri: setup.uri,
            qr_code: svg_data_url(&setup.qr_svg),
        })))
    }

    /// Confirm the authenticator app with its first code.
    ///
    /// Sign-in asks for its codes from now on. Returns ten recovery codes — shown this once —
    /// and replaces the session cookie.
    #[oai(path = "/auth/mfa/totp/confirm", method = "post")]
    async fn confirm_totp(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: SignInSession,
        body: Json<CodeRequest>,
    ) -> Result<TotpConfirmedResponse, Failure<TotpConfirmErrors>> {
        if session.0.record.stage == Stage::SecondFactor {
            return Err(ApiError::MfaRequired.into());
        }
        let (codes, started) = actions::confirm_totp(req, &state, &session.0, body.0.code.as_str()).await?;
        Ok(TotpConfirmedResponse::Ok(
            Json(TotpConfirmed {
                recovery_codes: codes,
                session: SessionView::from_record(&started.record, None, false),
            }),
            started.set_cookie,
        ))
    }

    /// Remove the authenticator app (and the recovery codes that stand in for it).
    ///
    /// Needs a recent proof of identity (`reauthentication_required`).
    #[oai(path = "/auth/mfa/totp", method = "delete")]
    async fn disable_totp(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: CurrentSession,
    ) -> Result<NoContent, Failure<TotpDisableErrors>> {
        actions::disable_totp(req, &state, &session.0.record).await?;
        Ok(NoContent::NoContent)
    }

    /// Finish signing in with a second factor.
    ///
    /// For a session whose sign-in answered 202 (`session.stage` `second_factor`): give a code
    /// from the authenticator app or a recovery code. The waiting session ends and a brand-new
    /// one is set, with `amr` naming both factors and `aal` 2. Five wrong codes end the sign-in
    /// (sign in again); ten per account in 15 minutes are refused (429).
    #[oai(path = "/auth/mfa/verify", method = "post")]
    async fn verify(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: SignInSession,
        body: Json<SecondFactorRequest>,
    ) -> Result<SignedIn, Failure<VerifyErrors>> {
        let factor = match body.0 {
            SecondFactorRequest::Code(a) => SecondFactor::Totp(a.code.0),
            SecondFactorRequest::RecoveryCode(a) => SecondFactor::RecoveryCode(a.recovery_code.0),
        };
        let started = actions::verify_second_factor(req, &state, &session.0.record, factor).await?;
        Ok(SignedIn::Ok(
            Json(Me::from_record(&started.record)),
            started.set_cookie,
        ))
    }

    /// Replace the recovery codes.
    ///
    /// Returns ten new codes — shown this once; every earlier one stops working. Needs a recent
    /// proof of identity (`reauthentication_required`).
    #[oai(path = "/auth/mfa/recovery-codes", method = "post")]
    async fn recovery_codes(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: CurrentSession,
    ) -> Result<CodesResponse, Failure<CodesErrors>> {
        let codes = actions::regenerate_recovery_codes(req, &state, &session.0.record).await?;
        Ok(CodesResponse::Ok(Json(RecoveryCodes {
            recovery_codes: codes,
        })))
    }

    /// Prove it is you again, for sensitive operations (step-up).
    ///
    /// Changing the password, setting up or removing an authenticator app, new recovery codes
    /// and signing out other sessions need a proof of identity at most
    /// `SESSION_PRIVILEGED_MAX_AGE` old (10 minutes by default) in the session that asks; this
    /// renews it for this session only. With the password — or, once the account has a second
    /// factor, a code from it or a recovery code. An account without a password or a factor
    /// (provider sign-in only) proves itself by signing in again.
    #[oai(path = "/auth/reauthenticate", method = "post")]
    async fn reauthenticate(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: CurrentSession,
        body: Json<ReauthenticateRequest>,
    ) -> Result<Reauthenticated, Failure<ReauthErrors>> {
        let proof = match body.0 {
            ReauthenticateRequest::Password(a) => {
                Reauthentication::Password(SecretString::from(a.password.0))
            }
            ReauthenticateRequest::Code(a) => Reauthentication::Factor(SecondFactor::Totp(a.code.0)),
            ReauthenticateRequest::RecoveryCode(a) => {
                Reauthentication::Factor(SecondFactor::RecoveryCode(a.recovery_code.0))
            }
        };
        let started = actions::reauthenticate(req, &state, &session.0, proof).await?;
        Ok(Reauthenticated::Ok(
            Json(Me::from_record(&started.record)),
            started.set_cookie,
        ))
    }
}
