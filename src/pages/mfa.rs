//! The second step of a sign-in, as a page: a code from the authenticator app, or a recovery
//! code. The JSON operation (`POST /auth/mfa/verify`) and this page call the same action.

use askama::Template;
use poem::{
    handler,
    http::StatusCode,
    web::{Data, Form, Query},
    Request, Response,
};
use serde::Deserialize;

use super::{failed, page, see_other, see_other_with_cookie, sentence, target, with_return_to, PageQuery};
use crate::{
    api::{actions, session_auth::authenticate_any},
    auth::mfa::SecondFactor,
    error::ApiError,
    session::record::Stage,
    state::AppState,
};

/// Where a sign-in waiting for its second factor goes, keeping where it was headed.
pub fn second_factor_url(target: &str) -> String {
    with_return_to(PATH, target)
}

pub const PATH: &str = "/login/second-factor";

#[derive(Template)]
#[template(path = "second-factor.html")]
struct SecondFactorPage<'a> {
    notice: Option<&'static str>,
    error: Option<String>,
    return_to: &'a str,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct SecondFactorForm {
    code: String,
    recovery_code: String,
    return_to: String,
}

/// The sign-in this browser is finishing, if it is one waiting for a second factor; else where
/// to send it (signed in: on; no sign-in: to the sign-in page).
async fn waiting(
    req: &Request,
    state: &AppState,
    target: &str,
) -> Result<crate::session::Validated, Response> {
    match authenticate_any(req, state).await {
        Ok(v) if v.record.stage == Stage::SecondFactor => Ok(v),
        Ok(v) if v.record.stage.is_complete() => Err(see_other(target)),
        _ => Err(see_other(&with_return_to("/login", target))),
    }
}

#[handler]
pub(super) async fn second_factor_page(
    req: &Request,
    state: Data<&AppState>,
    Query(q): Query<PageQuery>,
) -> Response {
    let target = target(q.return_to.as_deref());
    if let Err(elsewhere) = waiting(req, &state, &target).await {
        return elsewhere;
    }
    page(
        StatusCode::OK,
        &SecondFactorPage {
            notice: None,
            error: None,
            return_to: &target,
        },
    )
}

#[handler]
pub(super) async fn second_factor_submit(
    req: &Request,
    state: Data<&AppState>,
    Form(form): Form<SecondFactorForm>,
) -> Response {
    let target = target(Some(&form.return_to));
    let pending = match waiting(req, &state, &target).await {
        Ok(v) => v,
        Err(elsewhere) => return elsewhere,
    };
    let factor = match (form.code.trim(), form.recovery_code.trim()) {
        (code, "") if !code.is_empty() => Ok(SecondFactor::Totp(code.to_string())),
        ("", code) if !code.is_empty() => Ok(SecondFactor::RecoveryCode(code.to_string())),
        _ => Err(ApiError::InvalidRequest(
            "enter the code from your authenticator app, or a recovery code".into(),
        )),
    };
    let outcome = match factor {
        Ok(factor) => actions::verify_second_factor(req, &state, &pending.record, factor).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(started) => see_other_with_cookie(&target, started.set_cookie),
        // Too many wrong codes ended the sign-in: start again.
        Err(e @ ApiError::TooManyAttempts { .. }) => failed(
            &e,
            &SecondFactorPage {
                notice: None,
                error: Some(sentence(&format!("{e}; sign in again"))),
                return_to: &target,
            },
        ),
        Err(e) => failed(
            &e,
            &SecondFactorPage {
                notice: None,
                error: Some(sentence(&e.to_string())),
                return_to: &target,
            },
        ),
    }
}
