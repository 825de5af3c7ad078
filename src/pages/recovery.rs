//! The pages e-mailed links open, and "forgot your password?":
//!
//! - `/forgot-password` asks for a reset link;
//! - `/reset-password?token=…` sets a new password;
//! - `/verify-email?token=…` confirms an address;
//! - `/report-sign-in?token=…` ends a sign-in the owner did not make.
//!
//! Opening a link (a GET — which a mail scanner's prefetch is too) shows a page and changes
//! nothing; its button posts the token, and only that acts, through the same
//! `api::actions` as the JSON operations.

use askama::Template;
use poem::error::ResponseError;
use poem::{
    handler,
    http::StatusCode,
    web::{Data, Form, Query},
    Request, Response,
};
use secrecy::SecretString;
use serde::Deserialize;

use super::{failed, page, see_other_with_cookie, sentence};
use crate::{
    api::{actions, fields},
    auth::{password, tokens::MAX_TOKEN_CHARS},
    error::ApiError,
    state::AppState,
};

#[derive(Template)]
#[template(path = "outcome.html")]
struct Outcome<'a> {
    heading: &'a str,
    message: String,
    good: bool,
    offer_reset: Option<String>,
    next: Option<(&'a str, &'a str)>,
}

/// After a sign-up that must confirm its address before signing in.
#[derive(Template)]
#[template(path = "verify-first.html")]
pub(super) struct VerifyFirst<'a> {
    pub email: &'a str,
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage<'a> {
    notice: Option<&'static str>,
    error: Option<String>,
    email: &'a str,
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage<'a> {
    notice: Option<&'static str>,
    error: Option<String>,
    token: &'a str,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage<'a> {
    heading: &'a str,
    lines: Vec<String>,
    action: &'a str,
    token: &'a str,
    button: &'a str,
    danger: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenQuery {
    token: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct TokenForm {
    token: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ResetForm {
    token: String,
    new_password: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ForgotForm {
    email: String,
}

fn invalid_link(what: &str, next: (&'static str, &'static str)) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        &Outcome {
            heading: "This link does not work",
            message: format!("This {what} link was already used, has expired, or was never issued."),
            good: false,
            offer_reset: None,
            next: Some(next),
        },
    )
}

/// Whether `token` could be a link's token at all (the pages that look it up get this answer
/// from the lookup itself).
fn plausible(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_TOKEN_CHARS
}

// --- Forgot password -----------------------------------------------------------------------

#[handler]
pub(super) async fn forgot_page() -> Response {
    page(
        StatusCode::OK,
        &ForgotPage {
            notice: None,
            error: None,
            email: "",
        },
    )
}

#[handler]
pub(super) async fn forgot_submit(
    req: &Request,
    state: Data<&AppState>,
    Form(form): Form<ForgotForm>,
) -> Response {
    let outcome = match fields::check_email_input(&form.email) {
        Ok(()) => actions::forgot_password(req, &state, &form.email).await,
        Err(m) => Err(ApiError::InvalidRequest(format!("email: {m}"))),
    };
    match outcome {
        Ok(()) => page(
            StatusCode::OK,
            &Outcome {
                heading: "Check your inbox",
                message: "If an account has this address, a message is on its way to it with what to do next. The link in it works for a limited time."
                    .into(),
                good: true,
                offer_reset: None,
                next: Some(("/login", "Back to sign in")),
            },
        ),
        Err(e) => failed(
            &e,
            &ForgotPage {
                notice: None,
                error: Some(sentence(&e.to_string())),
                email: &form.email,
            },
        ),
    }
}

// --- Reset password ------------------------------------------------------------------------

#[handler]
pub(super) async fn reset_page(state: Data<&AppState>, Query(q): Query<TokenQuery>) -> Response {
    // A database that does not answer shows the form; the post will say what happened.
    let live = state
        .auth
        .reset_token_is_live(&q.token, state.clock.now())
        .await
        .unwrap_or(true);
    if !live {
        return invalid_link("password reset", ("/forgot-password", "Ask for a new link"));
    }
    page(
        StatusCode::OK,
        &ResetPage {
            notice: None,
            error: None,
            token: &q.token,
        },
    )
}

#[handler]
pub(super) async fn reset_submit(
    req: &Request,
    state: Data<&AppState>,
    Form(mut form): Form<ResetForm>,
) -> Response {
    let new_password = std::mem::take(&mut form.new_password);
    let checked = fields::check_length(
        &new_password,
        "a password",
        password::MIN_CHARS,
        password::MAX_CHARS,
    )
    .map_err(|m| ApiError::InvalidRequest(format!("newPassword: {m}")));
    let outcome = match checked {
        Ok(()) => actions::reset_password(req, &state, &form.token, SecretString::from(new_password)).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(started) => see_other_with_cookie("/account?notice=password-reset", started.set_cookie),
        Err(ApiError::InvalidToken(_)) => {
            invalid_link("password reset", ("/forgot-password", "Ask for a new link"))
        }
        Err(e) => failed(
            &e,
            &ResetPage {
                notice: None,
                error: Some(sentence(&e.to_string())),
                token: &form.token,
            },
        ),
    }
}

// --- Verify an address ---------------------------------------------------------------------

#[handler]
pub(super) async fn verify_page(Query(q): Query<TokenQuery>) -> Response {
    if !plausible(&q.token) {
        return invalid_link("confirmation", ("/account", "Your account"));
    }
    page(
        StatusCode::OK,
        &ConfirmPage {
            heading: "Confirm your e-mail address",
            lines: vec!["Press the button to confirm that this address is yours.".into()],
            action: "/verify-email",
            token: &q.token,
            button: "Confirm my address",
            danger: false,
        },
    )
}

#[handler]
pub(super) async fn verify_submit(
    req: &Request,
    state: Data<&AppState>,
    Form(form): Form<TokenForm>,
) -> Response {
    match actions::verify_email(req, &state, &form.token).await {
        Ok(email) => page(
            StatusCode::OK,
            &Outcome {
                heading: "Address confirmed",
                message: format!("{email} is confirmed. Thank you."),
                good: true,
                offer_reset: None,
                next: Some(("/account", "Continue to your account")),
            },
        ),
        Err(ApiError::InvalidToken(_)) => invalid_link("confirmation", ("/account", "Your account")),
        Err(e) => super::error_page(e.as_response()).await,
    }
}

// --- Report a sign-in ----------------------------------------------------------------------

#[handler]
pub(super) async fn report_page(state: Data<&AppState>, Query(q): Query<TokenQuery>) -> Response {
    let about = match state.auth.peek_report(&q.token, state.clock.now()).await {
        Ok(about) => about,
        Err(e) => return super::error_page(ApiError::from(e).as_response()).await,
    };
    let Some(about) = about else {
        return invalid_link("sign-in report", ("/account", "Your account"));
    };
    page(
        StatusCode::OK,
        &ConfirmPage {
            heading: "Was this you?",
            lines: vec![
                format!(
                    "A browser that had never signed in to your account did, at {}.",
                    about.at.replace('T', " ").replace('Z', " UTC")
                ),
                format!(
                    "Device: {}. Network address: {}. Signed in with: {}.",
                    about.device,
                    about.ip.as_deref().unwrap_or("unknown"),
                    about.method
                ),
                "If it was not you, end that session now. Nothing happens until you press the button.".into(),
            ],
            action: "/report-sign-in",
            token: &q.token,
            button: "This wasn't me — end that session",
            danger: true,
        },
    )
}

#[handler]
pub(super) async fn report_submit(
    req: &Request,
    state: Data<&AppState>,
    Form(form): Form<TokenForm>,
) -> Response {
    match actions::report_sign_in(req, &state, &form.token).await {
        Ok(outcome) => page(
            StatusCode::OK,
            &Outcome {
                heading: "Thank you for telling us",
                message: if outcome.session_ended {
                    "That session has ended.".into()
                } else {
                    "That session had already ended.".into()
                },
                good: true,
                offer_reset: Some(outcome.user.email.clone()),
                next: Some(("/login", "Sign in")),
            },
        ),
        Err(ApiError::InvalidToken(_)) => invalid_link("sign-in report", ("/account", "Your account")),
        Err(e) => super::error_page(e.as_response()).await,
    }
}
