//! Passkeys: register and manage them, sign in with one (no password), use one as a second
//! factor or to re-authenticate. The start operations answer the WebAuthn options exactly as
//! `navigator.credentials.create` / `get` take them once parsed with
//! `PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON` (base64url
//! binary fields); the finish operations take what `PublicKeyCredential.toJSON()` gives.

use chrono::{DateTime, Utc};
use poem::{web::Data, Request};
use poem_openapi::{
    param::Path,
    payload::Json,
    types::{Any, Example, ToJSON},
    ApiResponse, Object, OpenApi, Tags,
};
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse,
};

use super::{
    actions,
    cookie::{first_cookie_value, passkey_cookie_name, set_passkey_cookie, CookieSlot},
    fields::PasskeyName,
    session_auth::{client_info, presented_sessions, CurrentSession, OptionalSession, SignInSession},
    views::{Me, SessionView},
};
use crate::{
    auth::mfa::passkeys::{PasskeyInfo, CEREMONY_TTL},
    error::{ApiError, Failure},
    error_set,
    session::record::datetime,
    state::AppState,
};

#[derive(Tags)]
enum Tag {
    /// Passkeys (WebAuthn): sign in without a password, or as a second factor.
    Passkeys,
}

/// A registered passkey (its public key stays on the server; nothing here is secret).
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct PasskeyView {
    /// Pass to `DELETE /auth/passkeys/{id}`.
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    last_used_at: Option<DateTime<Utc>>,
}

impl From<PasskeyInfo> for PasskeyView {
    fn from(p: PasskeyInfo) -> Self {
        PasskeyView {
            id: p.id,
            name: p.name,
            created_at: datetime(p.created_at),
            last_used_at: p.last_used_at.map(datetime),
        }
    }
}

impl Example for PasskeyView {
    fn example() -> Self {
        PasskeyView {
            id: Uuid::from_u128(0x0195_9e7a_4c1e_7d3a_9b2f_6e8d_4a1c_3f60),
            name: "YubiKey 5".into(),
            created_at: datetime(1_773_480_413_000),
            last_used_at: None,
        }
    }
}

/// The account's passkeys, oldest first.
#[derive(Object)]
#[oai(example)]
struct PasskeyList {
    passkeys: Vec<PasskeyView>,
}

impl Example for PasskeyList {
    fn example() -> Self {
        PasskeyList {
            passkeys: vec![PasskeyView::example()],
        }
    }
}

/// What to call the new passkey.
#[derive(Object)]
#[oai(example)]
struct RegisterStart {
    /// 1 to 64 characters ("YubiKey 5", "Work laptop"), no control characters.
    name: PasskeyName,
}

impl Example for RegisterStart {
    fn example() -> Self {
        RegisterStart {
            name: PasskeyName("YubiKey 5".into()),
        }
    }
}

/// An authenticator's answer to `navigator.credentials.create`, as
/// `PublicKeyCredential.toJSON()` gives it (binary fields in base64url).
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct NewCredential {
    /// The credential id.
    #[oai(validator(pattern = "^[A-Za-z0-9_-]+={0,2}$", max_length = 1400))]
    id: String,
    #[oai(validator(pattern = "^[A-Za-z0-9_-]+={0,2}$", max_length = 1400))]
    raw_id: String,
    /// `public-key`.
    #[oai(rename = "type")]
    kind: String,
    response: AttestationResponse,
    /// `platform` or `cross-platform`.
    #[oai(skip_serializing_if_is_none)]
    authenticator_attachment: Option<String>,
    /// What `getClientExtensionResults()` gives (`credProps`, …).
    #[oai(skip_serializing_if_is_none)]
    client_extension_results: Option<serde_json::Value>,
}

/// The attestation of a new credential.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct AttestationResponse {
    #[oai(validator(pattern = "^[A-Za-z0-9_-]+={0,2}$", max_length = 8192))]
    attestation_object: String,
    #[oai(
        rename = "clientDataJSON",
        validator(pattern = "^[A-Za-z0-9_-]+={0,2}$", max_length = 4096)
    )]
    client_data_json: String,
    /// `internal`, `usb`, `nfc`, `ble`, `hybrid`.
    #[oai(skip_serializing_if_is_none)]
    transports: Option<Vec<String>>,
}

/// An authenticator's answer to `navigator.credentials.get`, as `PublicKeyCredential.toJSON()`
/// gives it (binary fields in base64url).
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct Assertion {
    /// The credential id.
    #[oai(validator(pattern = "^[A-Za-z0-9_-]+={0,2}$", max_length = 1400))]
    id: String,
    #[oai(validator(pattern = "^[A-Za-z0-9_-]+={0,2}$", max_length = 1400))]
    raw_id: String,
    /// `public-key`.
    #[oai(rename = "type")]
    kind: String,
    response: AssertionResponse,
    #[oai(skip_serializing_if_is_none)]
    authenticator_attachment: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    client_extension_results: Option<serde_json::Value>,
}

/// The signature of an assertion.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct AssertionResponse {
    #[oai(validator(pattern = "^[A-Za-z0-9_-]+={0,2}$", max_length = 4096))]
    authenticator_data: String,
    #[oai(
        rename = "clientDataJSON",
        validator(pattern = "^[A-Za-z0-9_-]+={0,2}$", max_length = 4096)
    )]
    client_data_json: String,
    #[oai(validator(pattern = "^[A-Za-z0-9_-]+={0,2}$", max_length = 1024))]
    signature: String,
    /// The account the passkey belongs to (a sign-in that named none gets it from here).
    #[oai(
        skip_serializing_if_is_none,
        validator(pattern = "^[A-Za-z0-9_-]*={0,2}$", max_length = 128)
    )]
    user_handle: Option<String>,
}

const B64_EXAMPLE: &str = "AAECAwQFBgcICQoLDA0ODw";

impl Example for AttestationResponse {
    fn example() -> Self {
        AttestationResponse {
            attestation_object: B64_EXAMPLE.into(),
            client_data_json: B64_EXAMPLE.into(),
            transports: Some(vec!["internal".into()]),
        }
    }
}

impl Example for NewCredential {
    fn example() -> Self {
        NewCredential {
            id: B64_EXAMPLE.into(),
            raw_id: B64_EXAMPLE.into(),
            kind: "public-key".into(),
            response: AttestationResponse::example(),
            authenticator_attachment: Some("platform".into()),
            client_extension_results: Some(serde_json::json!({ "credProps": { "rk": true } })),
        }
    }
}

impl Example for AssertionResponse {
    fn example() -> Self {
        AssertionResponse {
            authenticator_data: B64_EXAMPLE.into(),
            client_data_json: B64_EXAMPLE.into(),
            signature: B64_EXAMPLE.into(),
            user_handle: Some("AZWeekweA9OpsvbY1KHD9g".into()),
        }
    }
}

impl Example for Assertion {
    fn example() -> Self {
        Assertion {
            id: B64_EXAMPLE.into(),
            raw_id: B64_EXAMPLE.into(),
            kind: "public-key".into(),
            response: AssertionResponse::example(),
            authenticator_attachment: Some("platform".into()),
            client_extension_results: Some(serde_json::json!({})),
        }
    }
}

/// The webauthn-rs form of a credential the schema accepted; a value it cannot read (a field
/// that is no valid base64url for its content) is a refused passkey, like a bad signature.
fn webauthn_form<T: serde::de::DeserializeOwned>(value: Option<serde_json::Value>) -> Result<T, ApiError> {
    value
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| ApiError::from(crate::auth::AuthError::PasskeyRefused))
}

/// A registered passkey, the recovery codes issued with the account's first second factor
/// (shown once), and the session this browser goes on with.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct Registered {
    passkey: PasskeyView,
    #[oai(skip_serializing_if_is_none)]
    recovery_codes: Option<Vec<String>>,
    session: SessionView,
}

impl Example for Registered {
    fn example() -> Self {
        let mut session = SessionView::example();
        session.ip = None;
        session.user_agent = None;
        session.current = None;
        session.amr = vec!["pwd".into(), "hwk".into()];
        Registered {
            passkey: PasskeyView::example(),
            recovery_codes: Some(vec!["7k2m-9q4r-x8vt-3h6p".into(), "b5nw-2c8d-q4zt-j7e9".into()]),
            session,
        }
    }
}

#[derive(ApiResponse)]
enum ListResponse {
    /// The account's passkeys.
    #[oai(status = 200)]
    Ok(Json<PasskeyList>),
}

#[derive(ApiResponse)]
enum CreationOptions {
    /// `{"publicKey": …}`: the options of `navigator.credentials.create` in their JSON form
    /// (pass `publicKey` to `PublicKeyCredential.parseCreationOptionsFromJSON`). A resident
    /// (discoverable) key and user verification are required. The ceremony cookie set here binds
    /// it to this browser for 5 minutes.
    #[oai(status = 200)]
    Ok(
        Json<Any<CreationChallengeResponse>>,
        #[oai(header = "Set-Cookie")] String,
    ),
}

#[derive(ApiResponse)]
enum RequestOptions {
    /// `{"publicKey": …}`: the options of `navigator.credentials.get` in their JSON form (pass
    /// `publicKey` to `PublicKeyCredential.parseRequestOptionsFromJSON`). Without a session
    /// `allowCredentials` is empty: the authenticator offers this site's passkeys. The ceremony
    /// cookie set here binds it to this browser for 5 minutes.
    #[oai(status = 200)]
    Ok(
        Json<Any<RequestChallengeResponse>>,
        #[oai(header = "Set-Cookie")] String,
    ),
}

#[derive(ApiResponse)]
enum RegisteredResponse {
    /// Registered: sign-in now asks for a second factor (this passkey, or another). The session
    /// cookie is replaced: this session counts as re-authenticated with the passkey, or —
    /// finishing an enrolment (`MFA_REQUIRED`) — the sign-in is finished in a new session.
    #[oai(status = 200)]
    Ok(Json<Registered>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum PasskeySignedIn {
    /// Signed in: without a session, a brand-new one (`amr` `["hwk"]`, `aal` 2); after a
    /// password or provider sign-in, the waiting session ended and a new one is set; in a
    /// signed-in session, it is re-authenticated (same id, new token). The cookie is set.
    #[oai(status = 200)]
    Ok(Json<Me>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum Removed {
    /// The passkey no longer signs in.
    #[oai(status = 204)]
    NoContent,
}

error_set!(ListErrors: [] + [API, SESSION]);
error_set!(RegisterStartErrors: [
        ReauthenticationRequired,
        PasskeysNotAvailable,
        TooManyPasskeys,
        AccountDisabled,
        MfaNotPending,
    ]
    + [API, WRITE, JSON_BODY, ANY_SESSION]);
error_set!(RegisterFinishErrors: [PasskeyRefused, PasskeysNotAvailable, AccountDisabled, SessionLimitReached]
    + [API, WRITE, JSON_BODY, ANY_SESSION]);
error_set!(LoginStartErrors: [PasskeysNotAvailable, NoPasskey, TooManyAttempts] + [API, WRITE]);
error_set!(LoginFinishErrors: [PasskeyRefused, PasskeysNotAvailable, AccountDisabled, SessionLimitReached]
    + [API, WRITE, JSON_BODY]);
error_set!(RemoveErrors: [PasskeyNotFound, ReauthenticationRequired] + [API, WRITE, PARAMS, SESSION]);

/// The ceremony cookie this browser holds, if any.
fn ceremony(req: &Request, state: &AppState) -> Option<String> {
    first_cookie_value(req, passkey_cookie_name(&state.settings.session)).map(str::to_string)
}

/// Deletes the ceremony cookie on whatever the answer is (a ceremony is used once).
fn forget_ceremony(req: &Request, state: &AppState) {
    if let Some(slot) = req.extensions().get::<CookieSlot>() {
        slot.add(set_passkey_cookie(
            &state.settings.session,
            "",
            std::time::Duration::ZERO,
        ));
    }
}

pub struct PasskeysApi;

#[OpenApi(tag = "Tag::Passkeys")]
impl PasskeysApi {
    /// My passkeys.
    #[oai(path = "/auth/passkeys", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        session: CurrentSession,
    ) -> Result<ListResponse, Failure<ListErrors>> {
        let passkeys = state
            .auth
            .passkeys(session.0.record.user_id)
            .await
            .map_err(ApiError::from)?;
        Ok(ListResponse::Ok(Json(PasskeyList {
            passkeys: passkeys.into_iter().map(PasskeyView::from).collect(),
        })))
    }

    /// Start registering a passkey.
    ///
    /// Needs a recent proof of identity (`reauthentication_required`); also open to a sign-in
    /// that must enrol a second factor (`MFA_REQUIRED`). Give the answer's `publicKey` to
    /// `navigator.credentials.create`, then send the result to
    /// `POST /auth/passkeys/register/finish`.
    #[oai(path = "/auth/passkeys/register/start", method = "post")]
    async fn register_start(
        &self,
        state: Data<&AppState>,
        session: SignInSession,
        body: Json<RegisterStart>,
    ) -> Result<CreationOptions, Failure<RegisterStartErrors>> {
        let name = body.0.name.as_str().trim();
        let started = state
            .auth
            .start_passkey_registration(&session.0.record, name, state.clock.now())
            .await
            .map_err(ApiError::from)?;
        Ok(CreationOptions::Ok(
            Json(Any(started.options)),
            set_passkey_cookie(&state.settings.session, &started.ceremony, CEREMONY_TTL),
        ))
    }

    /// Finish registering a passkey.
    ///
    /// The body is the new credential as `PublicKeyCredential.toJSON()` gives it. The account's
    /// first second factor comes with ten recovery codes, shown this once.
    #[oai(path = "/auth/passkeys/register/finish", method = "post")]
    async fn register_finish(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: SignInSession,
        body: Json<NewCredential>,
    ) -> Result<RegisteredResponse, Failure<RegisterFinishErrors>> {
        let now = state.clock.now();
        let credential: RegisterPublicKeyCredential = webauthn_form(body.0.to_json())?;
        let ceremony = ceremony(req, &state);
        forget_ceremony(req, &state);
        let registered = state
            .auth
            .finish_passkey_registration(
                &session.0,
                ceremony.as_deref(),
                &credential,
                &client_info(req, &state.settings),
                actions::device_cookie(req, &state).as_deref(),
                now,
            )
            .await
            .map_err(ApiError::from)?;
        let started = actions::handed_over(req, &state, registered.session, now);
        Ok(RegisteredResponse::Ok(
            Json(Registered {
                passkey: registered.passkey.into(),
                recovery_codes: registered.recovery_codes,
                session: SessionView::from_record(&started.record, None, false),
            }),
            started.set_cookie,
        ))
    }

    /// Start signing in with a passkey.
    ///
    /// Without a session: a sign-in with no password (any passkey of this site). After a
    /// password or provider sign-in that answered 202: its second factor. In a signed-in
    /// session: re-authentication (step-up). Give the answer's `publicKey` to
    /// `navigator.credentials.get`, then send the result to `POST /auth/passkeys/login/finish`.
    #[oai(path = "/auth/passkeys/login/start", method = "post")]
    async fn login_start(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: OptionalSession,
    ) -> Result<RequestOptions, Failure<LoginStartErrors>> {
        let started = state
            .auth
            .start_passkey_sign_in(
                session.0.as_ref().map(|v| &*v.record),
                &client_info(req, &state.settings),
                state.clock.now(),
            )
            .await
            .map_err(ApiError::from)?;
        Ok(RequestOptions::Ok(
            Json(Any(started.options)),
            set_passkey_cookie(&state.settings.session, &started.ceremony, CEREMONY_TTL),
        ))
    }

    /// Finish signing in with a passkey.
    ///
    /// The body is the assertion as `PublicKeyCredential.toJSON()` gives it. User verification
    /// is required; the passkey's signature counter must move forward (a cloned authenticator is
    /// refused and recorded as `mfa.passkey_cloned`).
    #[oai(path = "/auth/passkeys/login/finish", method = "post")]
    async fn login_finish(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: OptionalSession,
        body: Json<Assertion>,
    ) -> Result<PasskeySignedIn, Failure<LoginFinishErrors>> {
        let now = state.clock.now();
        let credential: PublicKeyCredential = webauthn_form(body.0.to_json())?;
        let ceremony = ceremony(req, &state);
        forget_ceremony(req, &state);
        // A sign-in with no password ends the sessions this browser held, as any sign-in does
        // (used only when the ceremony was one).
        let replaces = presented_sessions(req, &state, now).await?;
        let outcome = state
            .auth
            .finish_passkey_sign_in(
                session.0.as_ref(),
                ceremony.as_deref(),
                &credential,
                &client_info(req, &state.settings),
                actions::device_cookie(req, &state).as_deref(),
                &replaces,
                now,
            )
            .await
            .map_err(ApiError::from)?;
        let started = actions::handed_over(req, &state, outcome, now);
        Ok(PasskeySignedIn::Ok(
            Json(Me::from_record(&started.record)),
            started.set_cookie,
        ))
    }

    /// Remove one of my passkeys.
    ///
    /// Needs a recent proof of identity (`reauthentication_required`).
    #[oai(path = "/auth/passkeys/:id", method = "delete")]
    async fn remove(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: CurrentSession,
        /// The passkey's id, from `GET /auth/passkeys`.
        id: Path<Uuid>,
    ) -> Result<Removed, Failure<RemoveErrors>> {
        state
            .auth
            .delete_passkey(
                &session.0.record,
                id.0,
                &client_info(req, &state.settings),
                state.clock.now(),
            )
            .await
            .map_err(ApiError::from)?;
        Ok(Removed::NoContent)
    }
}
