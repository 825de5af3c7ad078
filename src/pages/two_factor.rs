//! Two-step sign-in on the hosted pages: the account's second factors (set up or remove an
//! authenticator app with its QR code, new recovery codes, remove a passkey) and "confirm it is
//! you" for sensitive changes (step-up). Every handler calls the same `api::actions` and `Auth`
//! operations as the JSON API; the pages run no script (a passkey is added from an application,
//! through the passkey API).

use askama::Template;
use poem::error::ResponseError;
use poem::{
    handler,
    http::StatusCode,
    web::{Data, Form, Path, Query},
    Request, Response,
};
use secrecy::SecretString;
use serde::Deserialize;

use super::{
    error_page, failed, page, see_other, see_other_with_cookie, sentence, target, with_return_to, PageQuery,
};
use crate::{
    api::{
        actions,
        session_auth::{authenticate_any, client_info},
    },
    auth::mfa::{Reauthentication, SecondFactor},
    error::ApiError,
    session::{
        record::{datetime, Stage},
        Validated,
    },
    state::AppState,
};

pub const CONFIRM: &str = "/account/confirm";
pub const TWO_FACTOR: &str = "/account/two-factor";

#[derive(Template)]
#[template(path = "reauthenticate.html")]
struct ConfirmPage {
    notice: Option<&'static str>,
    error: Option<String>,
    return_to: String,
    email: String,
    has_factor: bool,
    has_password: bool,
    window: String,
}

#[derive(Template)]
#[template(path = "two-factor.html")]
struct TwoFactorPage {
    notice: Option<&'static str>,
    error: Option<String>,
    enrolling: bool,
    totp_since: Option<String>,
    passkeys: Vec<PasskeyRow>,
    any_factor: bool,
    codes_left: u64,
}

struct PasskeyRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "two-factor-setup.html")]
struct SetupPage {
    notice: Option<&'static str>,
    error: Option<String>,
    qr_svg: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "recovery-codes.html")]
struct CodesPage {
    notice: Option<&'static str>,
    error: Option<String>,
    codes: Vec<String>,
    next: String,
}

/// The session of a page that manages second factors: signed in, or a sign-in that must enrol
/// one (`MFA_REQUIRED`). Else where to send the browser.
async fn managing(req: &Request, state: &AppState) -> Result<Validated, Response> {
    match authenticate_any(req, state).await {
        Ok(v) if v.record.stage != Stage::SecondFactor => Ok(v),
        Ok(_) => Err(see_other(&super::mfa::second_factor_url(TWO_FACTOR))),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            Err(see_other(&with_return_to("/login", TWO_FACTOR)))
        }
        Err(e) => Err(error_page(e.as_response()).await),
    }
}

/// Where a refused change goes: to "confirm it is you" when it needs a recent sign-in, to sign
/// in when the session ended meanwhile (a sign-in that enrolled too late, say), else the
/// two-step page again with the error.
async fn refused(state: &AppState, current: &Validated, e: ApiError) -> Response {
    if matches!(e, ApiError::ReauthenticationRequired(_)) {
        return see_other(&with_return_to(CONFIRM, TWO_FACTOR));
    }
    if e.status() == StatusCode::UNAUTHORIZED {
        return see_other(&with_return_to("/login", TWO_FACTOR));
    }
    match overview(state, current, None, Some(&e)).await {
        Ok(p) => failed(&e, &p),
        Err(other) => error_page(other.as_response()).await,
    }
}

async fn overview(
    state: &AppState,
    current: &Validated,
    notice: Option<&'static str>,
    error: Option<&ApiError>,
) -> Result<TwoFactorPage, ApiError> {
    let factors = state.auth.factors(current.record.user_id).await?;
    let passkeys = state.auth.passkeys(current.record.user_id).await?;
    let when = |ms: i64| datetime(ms).format("%Y-%m-%d %H:%M UTC").to_string();
    Ok(TwoFactorPage {
        notice,
        error: error.map(|e| sentence(&e.to_string())),
        enrolling: current.record.stage == Stage::Enrolment,
        totp_since: factors.totp_enabled_at.map(when),
        passkeys: passkeys
            .iter()
            .map(|p| PasskeyRow {
                id: p.id.to_string(),
                name: p.name.clone(),
                created: when(p.created_at),
                last_used: p.last_used_at.map(when).unwrap_or_else(|| "never".into()),
            })
            .collect(),
        any_factor: factors.any(),
        codes_left: factors.recovery_codes_left,
    })
}

fn two_factor_notice(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "totp-removed" => "The authenticator app is removed.",
        "passkey-removed" => "The passkey is removed.",
        "passkey-added" => "The passkey is added.",
        "confirmed" => "Confirmed. You can make the change now.",
        _ => return None,
    })
}

#[handler]
pub(super) async fn two_factor_page(
    req: &Request,
    state: Data<&AppState>,
    Query(q): Query<PageQuery>,
) -> Response {
    let current = match managing(req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match overview(&state, &current, two_factor_notice(q.notice.as_deref()), None).await {
        Ok(p) => page(StatusCode::OK, &p),
        Err(e) => error_page(e.as_response()).await,
    }
}

#[handler]
pub(super) async fn setup_submit(req: &Request, state: Data<&AppState>) -> Response {
    let current = match managing(req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match actions::start_totp(&state, &current.record).await {
        Ok(setup) => page(
            StatusCode::OK,
            &SetupPage {
                notice: None,
                error: None,
                // An SVG document of our own drawing (no text from the request): its XML
                // declaration is dropped, the rest is inline markup.
                qr_svg: setup
                    .qr_svg
                    .split_once("?>")
                    .map_or(setup.qr_svg.as_str(), |(_, svg)| svg)
                    .trim()
                    .to_string(),
                secret: setup.secret,
            },
        ),
        Err(e) => refused(&state, &current, e).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct CodeForm {
    code: String,
}

#[handler]
pub(super) async fn confirm_setup_submit(
    req: &Request,
    state: Data<&AppState>,
    Form(form): Form<CodeForm>,
) -> Response {
    let current = match managing(req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let enrolling = current.record.stage == Stage::Enrolment;
    match actions::confirm_totp(req, &state, &current, form.code.trim()).await {
        Ok((codes, started)) => {
            let mut resp = page(
                StatusCode::OK,
                &CodesPage {
                    notice: Some("The authenticator app is on: signing in now asks for a code from it."),
                    error: None,
                    codes,
                    next: if enrolling {
                        "/account".into()
                    } else {
                        TWO_FACTOR.into()
                    },
                },
            );
            if let Ok(v) = poem::http::HeaderValue::from_str(&started.set_cookie) {
                resp.headers_mut().append(poem::http::header::SET_COOKIE, v);
            }
            resp
        }
        // A wrong code: the set-up stays waiting; start it again for a new QR code.
        Err(e) => refused(&state, &current, e).await,
    }
}

#[handler]
pub(super) async fn remove_totp_submit(req: &Request, state: Data<&AppState>) -> Response {
    let current = match managing(req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match actions::disable_totp(req, &state, &current.record).await {
        Ok(()) => see_other(&format!("{TWO_FACTOR}?notice=totp-removed")),
        Err(e) => refused(&state, &current, e).await,
    }
}

#[handler]
pub(super) async fn recovery_codes_submit(req: &Request, state: Data<&AppState>) -> Response {
    let current = match managing(req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match actions::regenerate_recovery_codes(req, &state, &current.record).await {
        Ok(codes) => page(
            StatusCode::OK,
            &CodesPage {
                notice: None,
                error: None,
                codes,
                next: TWO_FACTOR.into(),
            },
        ),
        Err(e) => refused(&state, &current, e).await,
    }
}

#[handler]
pub(super) async fn remove_passkey_submit(
    req: &Request,
    state: Data<&AppState>,
    Path(id): Path<String>,
) -> Response {
    let current = match managing(req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Ok(id) = id.parse::<uuid::Uuid>() else {
        return refused(&state, &current, ApiError::PasskeyNotFound).await;
    };
    let client = client_info(req, &state.settings);
    match state
        .auth
        .delete_passkey(&current.record, id, &client, state.clock.now())
        .await
    {
        Ok(()) => see_other(&format!("{TWO_FACTOR}?notice=passkey-removed")),
        Err(e) => refused(&state, &current, e.into()).await,
    }
}

async fn confirm_page_for(
    state: &AppState,
    current: &Validated,
    return_to: &str,
    error: Option<&ApiError>,
) -> Result<ConfirmPage, ApiError> {
    let factors = state.auth.factors(current.record.user_id).await?;
    let user = crate::users::find_by_id(&state.db, current.record.user_id)
        .await
        .map_err(ApiError::internal)?;
    let minutes = state
        .auth
        .mfa_settings()
        .privileged_max_age
        .as_secs()
        .div_ceil(60);
    Ok(ConfirmPage {
        notice: None,
        error: error.map(|e| sentence(&e.to_string())),
        return_to: return_to.to_string(),
        email: current.record.user.email.clone(),
        has_factor: factors.any(),
        has_password: user.is_some_and(|u| u.password_hash.is_some()),
        window: format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" }),
    })
}

#[handler]
pub(super) async fn confirm_page(
    req: &Request,
    state: Data<&AppState>,
    Query(q): Query<PageQuery>,
) -> Response {
    let target = target(q.return_to.as_deref());
    let current = match super::signed_in(req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match confirm_page_for(&state, &current, &target, None).await {
        Ok(p) => page(StatusCode::OK, &p),
        Err(e) => error_page(e.as_response()).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct ConfirmForm {
    password: String,
    code: String,
    recovery_code: String,
    return_to: String,
}

#[handler]
pub(super) async fn confirm_submit(
    req: &Request,
    state: Data<&AppState>,
    Form(mut form): Form<ConfirmForm>,
) -> Response {
    let target = target(Some(&form.return_to));
    let current = match super::signed_in(req, &state).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let password = std::mem::take(&mut form.password);
    let proof = match (password.is_empty(), form.code.trim(), form.recovery_code.trim()) {
        (false, "", "") => Ok(Reauthentication::Password(SecretString::from(password))),
        (true, code, "") if !code.is_empty() => {
            Ok(Reauthentication::Factor(SecondFactor::Totp(code.to_string())))
        }
        (true, "", code) if !code.is_empty() => Ok(Reauthentication::Factor(SecondFactor::RecoveryCode(
            code.to_string(),
        ))),
        _ => Err(ApiError::InvalidRequest(
            "enter your password, a code from your authenticator app, or a recovery code".into(),
        )),
    };
    let outcome = match proof {
        Ok(proof) => actions::reauthenticate(req, &state, &current, proof).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(started) => {
            let location = if target == TWO_FACTOR {
                format!("{TWO_FACTOR}?notice=confirmed")
            } else {
                target
            };
            see_other_with_cookie(&location, started.set_cookie)
        }
        Err(e) => match confirm_page_for(&state, &current, &target, Some(&e)).await {
            Ok(p) => failed(&e, &p),
            Err(other) => error_page(other.as_response()).await,
        },
    }
}
