//! What a browser can do with its account and sessions, once: the JSON operations (`auth.rs`,
//! `sessions.rs`) and the hosted pages (`crate::pages`) both call these, so a sign-in from a
//! form is throttled, answered and cookied exactly like one from `POST /auth/login`.
//!
//! Each takes the request (for the cookies it presents and the client it comes from) and plain
//! inputs; what the request's body looked like (JSON or a form) is the caller's business. The
//! session `Set-Cookie` is returned for the caller to put on its answer; other cookies (the
//! device cookie) go into the request's [`CookieSlot`], which the guard adds to any answer.

use std::sync::Arc;

use poem::Request;
use secrecy::SecretString;

use super::{
    cookie::{
        clear_cookie, device_cookie_name, first_cookie_value, set_cookie, set_device_cookie, CookieSlot,
    },
    fields,
    session_auth::{client_info, presented_sessions},
};
use crate::{
    auth::{
        mfa::{Proved, Reauthentication, SecondFactor, TotpSetup},
        password,
    },
    error::ApiError,
    session::{
        record::SessionRecord,
        service::{reason, ClientInfo},
        Validated,
    },
    state::AppState,
};

/// A session just started: its record, and the `Set-Cookie` that hands it to the browser.
pub struct Started {
    pub record: SessionRecord,
    pub set_cookie: String,
}

/// The limits `POST /auth/login` states in its schema, for callers whose input did not come
/// through it (the sign-in form): a value outside them is `invalid_request`, before any attempt
/// is counted.
pub fn check_login_input(email: &str, password: &str) -> Result<(), ApiError> {
    fields::check_email_input(email).map_err(|m| ApiError::InvalidRequest(format!("email: {m}")))?;
    fields::check_length(password, "a password", 1, password::MAX_CHARS)
        .map_err(|m| ApiError::InvalidRequest(format!("password: {m}")))
}

/// The limits of `POST /auth/signup`'s schema (see [`check_login_input`]).
pub fn check_signup_input(email: &str, password: &str, full_name: &str) -> Result<(), ApiError> {
    fields::check_email_input(email).map_err(|m| ApiError::InvalidRequest(format!("email: {m}")))?;
    fields::check_full_name(full_name).map_err(|m| ApiError::InvalidRequest(format!("fullName: {m}")))?;
    fields::check_length(password, "a password", password::MIN_CHARS, password::MAX_CHARS)
        .map_err(|m| ApiError::InvalidRequest(format!("password: {m}")))
}

/// The limits of `POST /auth/password`'s schema (see [`check_login_input`]).
pub fn check_password_change_input(current: &str, new: &str) -> Result<(), ApiError> {
    fields::check_length(current, "a password", 1, password::MAX_CHARS)
        .map_err(|m| ApiError::InvalidRequest(format!("currentPassword: {m}")))?;
    fields::check_length(new, "a password", password::MIN_CHARS, password::MAX_CHARS)
        .map_err(|m| ApiError::InvalidRequest(format!("newPassword: {m}")))
}

pub fn add_device_cookie(req: &Request, state: &AppState, device: &str) {
    if let Some(slot) = req.extensions().get::<CookieSlot>() {
        slot.add(set_device_cookie(&state.settings.session, device));
    }
}

/// What a sign-up did.
pub enum SignedUp {
    /// The account exists and this browser is signed in to it.
    Started(Box<Started>),
    /// The account exists; it signs in once its address is verified (`REQUIRE_VERIFIED_EMAIL`).
    VerifyFirst { email: String },
}

/// A new local account, signed in (unless `REQUIRE_VERIFIED_EMAIL` holds it back until the
/// address is verified). The sessions this browser presented end (`superseded`).
pub async fn signup(
    req: &Request,
    state: &AppState,
    email: &str,
    password: SecretString,
    full_name: &str,
) -> Result<SignedUp, ApiError> {
    let now = state.clock.now();
    // As for login: the session this browser had (another account's) ends, not orphaned.
    let previous = presented_sessions(req, state, now).await?;
    let (user, issued) = state
        .auth
        .signup(
            email,
            password,
            full_name,
            &client_info(req, &state.settings),
            &previous,
            now,
        )
        .await?;
    let Some(issued) = issued else {
        return Ok(SignedUp::VerifyFirst { email: user.email });
    };
    let device = crate::auth::device::issue(state.sessions.signer(), &user.email_canonical);
    add_device_cookie(req, state, &device);
    let set_cookie = set_cookie(&state.settings.session, &issued.cookie_value, &issued.record, now);
    Ok(SignedUp::Started(Box::new(Started {
        record: issued.record,
        set_cookie,
    })))
}

/// Sign in with e-mail and password: a brand-new session, the sessions this browser presented
/// ended (`superseded`), throttled per account, client and device (the device cookie is read
/// here and renewed on success).
pub async fn login(
    req: &Request,
    state: &AppState,
    email: &str,
    password: SecretString,
) -> Result<Started, ApiError> {
    let now = state.clock.now();
    let device_cookie = device_cookie(req, state);
    let previous = presented_sessions(req, state, now).await?;
    let (_, issued, device) = state
        .auth
        .login(
            email,
            password,
            &client_info(req, &state.settings),
            device_cookie.as_deref(),
            &previous,
            now,
        )
        .await?;
    // A sign-in waiting for its second factor has not proved this browser yet: the device
    // cookie (and, for a new browser, the owner's alert) come when it is finished.
    if issued.record.stage.is_complete() {
        add_device_cookie(req, state, &device);
    }
    let set_cookie = set_cookie(&state.settings.session, &issued.cookie_value, &issued.record, now);
    Ok(Started {
        record: issued.record,
        set_cookie,
    })
}

/// Sign out of this browser: every live session it presented ends (`logout`). Returns the
/// `Set-Cookie` that clears the cookie.
pub async fn logout(
    state: &AppState,
    presented: &[SessionRecord],
    client: &ClientInfo,
) -> Result<String, ApiError> {
    let now = state.clock.now();
    for r in presented {
        state
            .sessions
            .revoke_one(&r.user_id, &r.public_id, reason::LOGOUT, None, client, now)
            .await?;
    }
    Ok(clear_cookie(&state.settings.session))
}

/// Sign out of every session of the account. Returns the `Set-Cookie` that clears the cookie.
pub async fn logout_all(
    state: &AppState,
    current: &SessionRecord,
    client: &ClientInfo,
) -> Result<String, ApiError> {
    state
        .sessions
        .revoke_user(
            &current.user_id,
            None,
            reason::LOGOUT_ALL,
            None,
            client,
            state.clock.now(),
        )
        .await?;
    Ok(clear_cookie(&state.settings.session))
}

/// Change the password: every session of the account ends (`password_changed`) and this
/// browser gets a brand-new one.
pub async fn change_password(
    req: &Request,
    state: &AppState,
    current: &Validated,
    current_password: SecretString,
    new_password: SecretString,
) -> Result<Started, ApiError> {
    let now = state.clock.now();
    state.auth.require_recent(&current.record, now).await?;
    let issued = state
        .auth
        .change_password(
            current,
            current_password,
            new_password,
            &client_info(req, &state.settings),
            now,
        )
        .await?;
    let set_cookie = set_cookie(&state.settings.session, &issued.cookie_value, &issued.record, now);
    Ok(Started {
        record: issued.record,
        set_cookie,
    })
}

/// The account's live sessions, newest first.
pub async fn list_sessions(
    state: &AppState,
    current: &SessionRecord,
) -> Result<Vec<SessionRecord>, ApiError> {
    Ok(state
        .sessions
        .list_user(&current.user_id, state.clock.now())
        .await?)
}

/// End one session of the account (`revoked_by_user`). Another user's id, or one that is not
/// live, is `session_not_found`. Returns the `Set-Cookie` that clears the cookie when the
/// session was this browser's own.
///
/// Ending *another* session is sensitive like ending all of them ([`revoke_others`]): it needs a
/// recent proof of identity, else a stolen cookie could sign its owner out of each device in
/// turn and keep the account to itself. Ending this browser's own session is signing out.
pub async fn revoke_one(
    state: &AppState,
    current: &SessionRecord,
    public_id: &str,
    client: &ClientInfo,
) -> Result<Option<String>, ApiError> {
    if public_id != current.public_id {
        state.auth.require_recent(current, state.clock.now()).await?;
    }
    let found = state
        .sessions
        .revoke_one(
            &current.user_id,
            public_id,
            reason::REVOKED_BY_USER,
            None,
            client,
            state.clock.now(),
        )
        .await?;
    if !found {
        return Err(ApiError::SessionNotFound);
    }
    Ok((public_id == current.public_id).then(|| clear_cookie(&state.settings.session)))
}

/// End every session of the account but this one (`revoked_by_user`). Returns how many ended.
/// A sensitive operation: it needs a recent proof of identity (else a stolen cookie could
/// sign its owner out everywhere else).
pub async fn revoke_others(
    state: &AppState,
    current: &SessionRecord,
    client: &ClientInfo,
) -> Result<usize, ApiError> {
    state.auth.require_recent(current, state.clock.now()).await?;
    Ok(state
        .sessions
        .revoke_user(
            &current.user_id,
            Some(&current.public_id),
            reason::REVOKED_BY_USER,
            None,
            client,
            state.clock.now(),
        )
        .await?
        .len())
}

/// Confirm the account's address with a verification link's token; every live session of
/// the account shows it at once. Returns the confirmed address.
pub async fn verify_email(req: &Request, state: &AppState, token: &str) -> Result<String, ApiError> {
    let client = client_info(req, &state.settings);
    let user = state.auth.verify_email(token, &client, state.clock.now()).await?;
    Ok(user.email)
}

/// A new verification link for the signed-in account (throttled).
pub async fn resend_verification(
    req: &Request,
    state: &AppState,
    current: &SessionRecord,
) -> Result<(), ApiError> {
    let client = client_info(req, &state.settings);
    Ok(state
        .auth
        .resend_verification(current, &client, state.clock.now())
        .await?)
}

/// Ask for a password reset link: the same answer whether or not an account has the address.
pub async fn forgot_password(req: &Request, state: &AppState, email: &str) -> Result<(), ApiError> {
    let client = client_info(req, &state.settings);
    Ok(state
        .auth
        .forgot_password(email, &client, state.clock.now())
        .await?)
}

/// Set a new password with a reset link's token: every session of the account ends
/// (`password_reset`) and this browser is signed in with a brand-new one.
pub async fn reset_password(
    req: &Request,
    state: &AppState,
    token: &str,
    new_password: SecretString,
) -> Result<Started, ApiError> {
    let now = state.clock.now();
    let previous = presented_sessions(req, state, now).await.unwrap_or_default();
    let (user, issued) = state
        .auth
        .reset_password(
            token,
            new_password,
            &client_info(req, &state.settings),
            &previous,
            now,
        )
        .await?;
    if issued.record.stage.is_complete() {
        let device = crate::auth::device::issue(state.sessions.signer(), &user.email_canonical);
        add_device_cookie(req, state, &device);
    }
    let set_cookie = set_cookie(&state.settings.session, &issued.cookie_value, &issued.record, now);
    Ok(Started {
        record: issued.record,
        set_cookie,
    })
}

/// "This wasn't me": end the session a new-device alert was about.
pub async fn report_sign_in(
    req: &Request,
    state: &AppState,
    token: &str,
) -> Result<crate::auth::recovery::ReportOutcome, ApiError> {
    let client = client_info(req, &state.settings);
    Ok(state
        .auth
        .report_sign_in(token, &client, state.clock.now())
        .await?)
}

/// The browser's device cookie, if it sent one.
pub fn device_cookie(req: &Request, state: &AppState) -> Option<String> {
    first_cookie_value(req, device_cookie_name(&state.settings.session)).map(str::to_string)
}

/// Finish a sign-in waiting for its second factor: a new session replaces the waiting one.
pub async fn verify_second_factor(
    req: &Request,
    state: &AppState,
    pending: &SessionRecord,
    factor: SecondFactor,
) -> Result<Started, ApiError> {
    let now = state.clock.now();
    let (issued, device) = state
        .auth
        .verify_second_factor(
            pending,
            factor,
            &client_info(req, &state.settings),
            device_cookie(req, state).as_deref(),
            now,
        )
        .await?;
    add_device_cookie(req, state, &device);
    let set_cookie = set_cookie(&state.settings.session, &issued.cookie_value, &issued.record, now);
    Ok(Started {
        record: issued.record,
        set_cookie,
    })
}

/// Start setting up an authenticator app.
pub async fn start_totp(state: &AppState, current: &SessionRecord) -> Result<TotpSetup, ApiError> {
    Ok(state.auth.start_totp(current, state.clock.now()).await?)
}

/// Confirm an authenticator app with its first code: the recovery codes, and the session the
/// browser goes on with (this one elevated, or — finishing an enrolment — a new one).
pub async fn confirm_totp(
    req: &Request,
    state: &AppState,
    current: &Validated,
    code: &str,
) -> Result<(Vec<String>, Started), ApiError> {
    let now = state.clock.now();
    let (codes, outcome) = state
        .auth
        .confirm_totp(
            current,
            code,
            &client_info(req, &state.settings),
            device_cookie(req, state).as_deref(),
            now,
        )
        .await?;
    Ok((codes, handed_over(req, state, outcome, now)))
}

/// The session a proof left this browser with, and its `Set-Cookie` (the device cookie, for a
/// finished sign-in, goes into the request's slot).
pub fn handed_over(
    req: &Request,
    state: &AppState,
    proved: Proved,
    now: crate::session::record::Millis,
) -> Started {
    let (record, cookie_value) = match proved {
        Proved::Elevated(v) => {
            let value = v.new_cookie.clone().unwrap_or_default();
            // Made by this request: not shared, so not copied.
            (Arc::unwrap_or_clone(v.record), value)
        }
        Proved::SignedIn { issued, device } => {
            add_device_cookie(req, state, &device);
            (issued.record, issued.cookie_value)
        }
    };
    let set_cookie = set_cookie(&state.settings.session, &cookie_value, &record, now);
    Started { record, set_cookie }
}

/// Remove the account's authenticator app (and its recovery codes).
pub async fn disable_totp(req: &Request, state: &AppState, current: &SessionRecord) -> Result<(), ApiError> {
    let client = client_info(req, &state.settings);
    Ok(state
        .auth
        .disable_totp(current, &client, state.clock.now())
        .await?)
}

/// Ten new recovery codes; the old ones stop working.
pub async fn regenerate_recovery_codes(
    req: &Request,
    state: &AppState,
    current: &SessionRecord,
) -> Result<Vec<String>, ApiError> {
    let client = client_info(req, &state.settings);
    Ok(state
        .auth
        .regenerate_recovery_codes(current, &client, state.clock.now())
        .await?)
}

/// Prove the owner again in this session (step-up): the session, with its new cookie.
pub async fn reauthenticate(
    req: &Request,
    state: &AppState,
    current: &Validated,
    proof: Reauthentication,
) -> Result<Started, ApiError> {
    let now = state.clock.now();
    let elevated = state
        .auth
        .reauthenticate(current, proof, &client_info(req, &state.settings), now)
        .await?;
    let value = elevated.new_cookie.clone().unwrap_or_default();
    let set_cookie = set_cookie(&state.settings.session, &value, &elevated.record, now);
    Ok(Started {
        record: Arc::unwrap_or_clone(elevated.record),
        set_cookie,
    })
}
