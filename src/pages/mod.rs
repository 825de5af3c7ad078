//! The hosted pages: sign in (`/login`), create an account (`/signup`), and the account page
//! (`/account`: name and e-mail, your devices, change password) — server-rendered HTML from
//! askama templates (`templates/`), plain forms, no JavaScript, one small stylesheet.
//!
//! The pages are a second front door to the same house: every action calls the function the
//! JSON operation calls (`api::actions`), so throttling, lockout, error messages, cookies and
//! revocation are the API's own. The pages are not API operations and are not in the OpenAPI
//! spec. `UI_ENABLED=false` leaves them out.
//!
//! Every form posts to this server and is subject to the guard's cross-site rules (`Origin`,
//! `Sec-Fetch-Site`), which accept form bodies on these paths only ([`takes_forms`]) and, there,
//! require the browser to say where the form comes from (see `api::guard`). Pages carry their own
//! headers ([`secure`]): a CSP without any script, no framing, no caching, and
//! `Referrer-Policy: same-origin` — under `no-referrer` a browser sends `Origin: null` with a
//! form post, which the guard (rightly) refuses.

pub mod mfa;
mod recovery;
mod two_factor;

use std::sync::Arc;

use askama::Template;
use chrono::SecondsFormat;
use poem::{
    error::ResponseError,
    get, handler,
    http::{header, HeaderValue, Method, StatusCode},
    post,
    web::{Data, Form, Path, Query},
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
};
use secrecy::SecretString;
use serde::Deserialize;

use crate::{
    api::{
        actions,
        session_auth::{authenticate, client_info},
    },
    auth::oidc::safe_return_to,
    error::{ApiError, ErrorBody},
    session::{
        record::{datetime, SessionRecord},
        Validated,
    },
    state::AppState,
    user_agent,
};

/// The stylesheet every page links.
/// Under `/auth/`, which every forward-auth proxy already routes to authauth (an application's
/// own `/assets/` stays the application's).
pub const STYLESHEET: &str = "/auth/assets/pages.css";

/// The one script of the pages: passkeys, on the pages that offer them (`html_with_passkeys`).
pub const PASSKEY_SCRIPT: &str = "/auth/assets/passkeys.js";

/// Where a sign-in goes when it was not sent from anywhere.
pub const HOME: &str = "/account";

/// Every page path and the methods it answers (the `Allow` of a 405).
pub const ROUTES: &[(&str, &[Method])] = &[
    ("/login", &[Method::GET, Method::HEAD, Method::POST]),
    (mfa::PATH, &[Method::GET, Method::HEAD, Method::POST]),
    ("/signup", &[Method::GET, Method::HEAD, Method::POST]),
    ("/account", &[Method::GET, Method::HEAD]),
    ("/account/password", &[Method::POST]),
    ("/account/sessions/end-others", &[Method::POST]),
    ("/account/sessions/:id/end", &[Method::POST]),
    ("/logout", &[Method::POST]),
    ("/forgot-password", &[Method::GET, Method::HEAD, Method::POST]),
    ("/reset-password", &[Method::GET, Method::HEAD, Method::POST]),
    ("/verify-email", &[Method::GET, Method::HEAD, Method::POST]),
    ("/report-sign-in", &[Method::GET, Method::HEAD, Method::POST]),
    ("/account/verify-email/resend", &[Method::POST]),
    (two_factor::CONFIRM, &[Method::GET, Method::HEAD, Method::POST]),
    (two_factor::TWO_FACTOR, &[Method::GET, Method::HEAD]),
    ("/account/two-factor/setup", &[Method::POST]),
    ("/account/two-factor/confirm", &[Method::POST]),
    ("/account/two-factor/remove", &[Method::POST]),
    ("/account/two-factor/recovery-codes", &[Method::POST]),
    ("/account/passkeys/:id/remove", &[Method::POST]),
    (STYLESHEET, &[Method::GET, Method::HEAD]),
    (PASSKEY_SCRIPT, &[Method::GET, Method::HEAD]),
];

/// Adds the pages to `route`.
pub fn mount(route: Route) -> Route {
    route
        .at(
            "/login",
            get(login_page).post(login_submit).around(html_with_passkeys),
        )
        .at(
            mfa::PATH,
            get(mfa::second_factor_page)
                .post(mfa::second_factor_submit)
                .around(html_with_passkeys),
        )
        .at("/signup", get(signup_page).post(signup_submit).around(html))
        .at("/account", get(account_page).around(html))
        .at("/account/password", post(password_submit).around(html))
        .at("/account/sessions/end-others", post(end_others).around(html))
        .at("/account/sessions/:id/end", post(end_one).around(html))
        .at("/logout", post(logout_submit).around(html))
        .at(
            "/forgot-password",
            get(recovery::forgot_page)
                .post(recovery::forgot_submit)
                .around(html),
        )
        .at(
            "/reset-password",
            get(recovery::reset_page)
                .post(recovery::reset_submit)
                .around(html),
        )
        .at(
            "/verify-email",
            get(recovery::verify_page)
                .post(recovery::verify_submit)
                .around(html),
        )
        .at(
            "/report-sign-in",
            get(recovery::report_page)
                .post(recovery::report_submit)
                .around(html),
        )
        .at("/account/verify-email/resend", post(resend_submit).around(html))
        .at(
            two_factor::CONFIRM,
            get(two_factor::confirm_page)
                .post(two_factor::confirm_submit)
                .around(html),
        )
        .at(
            two_factor::TWO_FACTOR,
            get(two_factor::two_factor_page).around(html_with_passkeys),
        )
        .at(
            "/account/two-factor/setup",
            post(two_factor::setup_submit).around(html),
        )
        .at(
            "/account/two-factor/confirm",
            post(two_factor::confirm_setup_submit).around(html),
        )
        .at(
            "/account/two-factor/remove",
            post(two_factor::remove_totp_submit).around(html),
        )
        .at(
            "/account/two-factor/recovery-codes",
            post(two_factor::recovery_codes_submit).around(html),
        )
        .at(
            "/account/passkeys/:id/remove",
            post(two_factor::remove_passkey_submit).around(html),
        )
        .at(STYLESHEET, get(stylesheet))
        .at(PASSKEY_SCRIPT, get(passkey_script))
}

/// True for the page paths (HTML answers, errors included).
pub fn is_page(path: &str) -> bool {
    matches!(
        path,
        "/login"
            | mfa::PATH
            | "/signup"
            | "/account"
            | "/logout"
            | "/forgot-password"
            | "/reset-password"
            | "/verify-email"
            | "/report-sign-in"
    ) || path.starts_with("/account/")
}

/// True for the paths whose `POST` takes an HTML form body (`application/x-www-form-urlencoded`).
pub fn takes_forms(path: &str) -> bool {
    is_page(path) && path != "/account"
}

/// The headers of every page: a policy that runs no script and loads nothing from elsewhere,
/// no framing, no caching (pages carry personal data and form errors), and a referrer policy
/// under which a same-origin form post carries its real `Origin`.
pub fn secure(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

async fn html<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let mut resp = ep.call(req).await?.into_response();
    secure(&mut resp);
    Ok(resp)
}

/// The policy of the pages that offer passkeys (`/login`, `/login/second-factor`,
/// `/account/two-factor`): as every page's, plus the one script from authauth itself
/// ([`PASSKEY_SCRIPT`]) and `fetch` to authauth's own API — still no inline script, no `eval`.
pub const PASSKEY_PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn html_with_passkeys<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let mut resp = ep.call(req).await?.into_response();
    secure(&mut resp);
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PASSKEY_PAGE_POLICY),
    );
    Ok(resp)
}

/// An error that reached a page path (from the guard, the router or a handler) as an HTML
/// page: the status and headers of the API's answer (`Retry-After`, `Allow`, …), its message.
pub async fn error_page(json: Response) -> Response {
    let (parts, body) = json.into_parts();
    let message = body
        .into_bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<ErrorBody>(&b).ok())
        .map(|b| b.message)
        .unwrap_or_else(|| "something went wrong".into());
    let heading = match parts.status {
        StatusCode::FORBIDDEN => "Refused",
        StatusCode::NOT_FOUND => "Not found",
        s if s.is_server_error() => "Try again shortly",
        _ => "Something went wrong",
    };
    let page = ErrorPage {
        heading,
        message: sentence(&message),
    };
    let mut resp = Response::from_parts(parts, render_body(&page).into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(&mut resp);
    resp
}

#[handler]
fn passkey_script() -> Response {
    Response::builder()
        .content_type("text/javascript; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .header("x-content-type-options", "nosniff")
        .body(include_str!("assets/passkeys.js"))
}

#[handler]
fn stylesheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .body(include_str!("assets/authauth.css"))
}

// ---------------------------------------------------------------------------------------------
// Templates

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    notice: Option<&'static str>,
    error: Option<String>,
    email: &'a str,
    return_to: &'a str,
    google_url: Option<String>,
    signup_url: String,
    /// Offer "forgot your password?" (mail is configured).
    forgot: bool,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage<'a> {
    notice: Option<&'static str>,
    error: Option<String>,
    /// The field the error is about, marked `aria-invalid`.
    invalid: &'static str,
    full_name: &'a str,
    email: &'a str,
    return_to: &'a str,
    login_url: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    notice: Option<&'static str>,
    error: Option<String>,
    name: String,
    email: String,
    devices: Vec<Device>,
    activity: Vec<Activity>,
    has_password: bool,
    /// Whether the address is verified; when not, the page offers a new link (`can_resend`).
    email_verified: bool,
    can_resend: bool,
    password_error: Option<String>,
    /// "Authenticator app", "2 passkeys", … — or `None` without a second factor.
    two_step: Option<String>,
}

/// One line of the account's recent security history (from the audit trail).
struct Activity {
    what: String,
    when: String,
    when_iso: String,
    from: String,
}

/// How many recent events the account page shows.
const RECENT_ACTIVITY: usize = 10;

/// A person's words for an audit event, or `None` for the ones that would only be noise here
/// (a session created beside its sign-in, a token rotated).
fn describe_event(row: &crate::audit::query::Row) -> Option<String> {
    let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap_or_default();
    let method = match detail.get("method").and_then(|m| m.as_str()) {
        Some("google") => "with Google",
        Some("passkey") => "with a passkey",
        Some("totp") => "with an authenticator app code (second step)",
        Some("recovery_code") => "with a recovery code (second step)",
        _ => "with a password",
    };
    let by_admin = row.actor == "operator";
    Some(match (row.event_type.as_str(), row.reason.as_deref()) {
        ("user.signed_up", _) | ("user.created", _) => "Account created".into(),
        ("sign_in.succeeded", _) if detail.get("stage").is_some() => {
            format!("Signed in {method}, waiting for the second step")
        }
        ("sign_in.succeeded", _) => format!("Signed in {method}"),
        ("sign_in.failed", _) if detail.get("method").and_then(|m| m.as_str()) == Some("password_change") => {
            "Password change refused: wrong current password".into()
        }
        ("sign_in.failed", _) => match detail.get("failure").and_then(|f| f.as_str()) {
            Some("bad_credentials") => "Sign-in failed: wrong password".into(),
            Some("disabled") => "Sign-in refused: the account is disabled".into(),
            _ => "Sign-in failed".into(),
        },
        ("sign_in.throttled", _) => "Sign-in blocked after too many attempts".into(),
        ("password.changed", _) => "Password changed".into(),
        ("password.reset", _) => "Password reset with an e-mailed link".into(),
        ("password.reset_requested", _) => "A password reset link was asked for".into(),
        ("email.verified", _) => "E-mail address confirmed".into(),
        ("sign_in.new_device", _) => "Signed in from a new device; an alert was e-mailed".into(),
        ("sign_in.reported", _) => "A sign-in was reported as not yours".into(),
        ("session.ended", Some("password_reset")) => "Signed out: the password was reset".into(),
        ("session.ended", Some("reported_by_user")) => "Signed out: reported as not you".into(),
        ("identity.linked", _) if detail.get("password_removed") == Some(&serde_json::Value::Bool(false)) => {
            "Google account linked".into()
        }
        ("identity.linked", _) => "Google account linked; the password was removed".into(),
        ("user.disabled", _) => "Account disabled by an administrator".into(),
        ("user.enabled", _) => "Account enabled by an administrator".into(),
        ("user.unlocked", _) => "Sign-in limits lifted by an administrator".into(),
        ("session.ended", Some("logout")) => "Signed out".into(),
        ("session.ended", Some("logout_all")) => "Signed out everywhere".into(),
        ("session.ended", Some("revoked_by_user")) => "A device was signed out from another one".into(),
        ("session.ended", Some("password_changed")) => "Signed out: the password changed".into(),
        ("session.ended", _) if by_admin => "Signed out by an administrator".into(),
        ("session.ended", Some("user_disabled")) => "Signed out: the account was disabled".into(),
        ("session.ended", Some("superseded")) => "Replaced by a newer sign-in on the same device".into(),
        ("session.ended", Some("session_limit")) => "Signed out: too many devices".into(),
        ("session.ended", Some("mfa_reset")) => {
            "Signed out: an administrator removed your second factors".into()
        }
        ("session.ended", Some("second_factor_failed")) => {
            "A sign-in was stopped after too many wrong codes".into()
        }
        // The first step of a two-step sign-in, replaced by the finished one: noise here.
        ("session.ended", Some("sign_in_completed")) => return None,
        ("session.ended", _) => "Signed out".into(),
        ("mfa.totp_enabled", _) => "Authenticator app set up".into(),
        ("mfa.totp_disabled", _) => "Authenticator app removed".into(),
        ("mfa.recovery_codes_issued", _) => "New recovery codes made; the old ones stopped working".into(),
        ("mfa.recovery_code_used", _) => "A recovery code was used".into(),
        ("mfa.failed", _) => "A wrong second-step code was given".into(),
        ("mfa.reset", _) => "Second factors removed by an administrator".into(),
        ("mfa.passkey_added", _) => "Passkey added".into(),
        ("mfa.passkey_removed", _) => "Passkey removed".into(),
        ("mfa.passkey_cloned", _) => "A copy of one of your passkeys was refused; remove that passkey".into(),
        _ => return None,
    })
}

/// How a session signed in, in words: "with a password and an authenticator app".
fn how_signed_in(r: &SessionRecord) -> String {
    use crate::session::record::Amr;
    let words: Vec<&str> = r
        .amr()
        .iter()
        .map(|m| match m {
            Amr::Password => "a password",
            Amr::Google => "Google",
            Amr::Totp => "an authenticator app",
            Amr::RecoveryCode => "a recovery code",
            Amr::Passkey => "a passkey",
        })
        .collect();
    format!("with {}", words.join(" and "))
}

/// One live session, as the account page shows it.
struct Device {
    id: String,
    description: String,
    ip: String,
    method: String,
    created: String,
    created_iso: String,
    last_seen: String,
    last_seen_iso: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    heading: &'static str,
    message: String,
}

fn render_body(t: &impl Template) -> String {
    t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a page template failed to render");
        "<!doctype html><title>authauth</title><p>This page cannot be shown.</p>".into()
    })
}

fn page(status: StatusCode, t: &impl Template) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(render_body(t))
}

/// The page of a failed form: the API's status and headers for this error, this page's body.
fn failed(e: &ApiError, t: &impl Template) -> Response {
    let mut resp = e.as_response();
    resp.set_body(render_body(t));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// An API message as a sentence: "the e-mail address or password is incorrect" → "The e-mail
/// address or password is incorrect."
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .finish()
}

fn see_other_with_cookie(location: &str, set_cookie: String) -> Response {
    let mut resp = see_other(location);
    if let Ok(v) = HeaderValue::from_str(&set_cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// What a query value encodes: everything but unreserved characters and `/`.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

fn with_return_to(path: &str, target: &str) -> String {
    if target == HOME {
        return path.to_string();
    }
    format!(
        "{path}?returnTo={}",
        percent_encoding::utf8_percent_encode(target, QUERY_VALUE)
    )
}

/// Where to go after signing in: the `returnTo` the page was opened with, through the
/// allow-list every redirect of authauth uses (a same-origin path, else `/`); the account page
/// when there was none.
fn target(return_to: Option<&str>) -> String {
    match return_to.map(str::trim).filter(|r| !r.is_empty()) {
        None => HOME.to_string(),
        Some(raw) => safe_return_to(Some(raw)),
    }
}

/// Fixed messages a redirect can ask a page to show (nothing from the URL is shown as text).
fn notice(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "signed-out" => "You are signed out.",
        "password-changed" => "Your password has changed. Every other device is signed out.",
        "password-reset" => "Your new password is set. Every device that was signed in is signed out.",
        "verification-sent" => "A new confirmation link is on its way to your address.",
        "device-ended" => "That device is signed out.",
        "others-ended" => "Every other device is signed out.",
        _ => return None,
    })
}

fn google_url(state: &AppState, target: &str) -> Option<String> {
    state.google.as_ref()?;
    Some(format!(
        "/auth/google?returnTo={}",
        percent_encoding::utf8_percent_encode(target, QUERY_VALUE)
    ))
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PageQuery {
    return_to: Option<String>,
    notice: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Sign in

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct LoginForm {
    email: String,
    password: String,
    return_to: String,
}

#[handler]
async fn login_page(req: &Request, state: Data<&AppState>, Query(q): Query<PageQuery>) -> Response {
    let target = target(q.return_to.as_deref());
    // Already signed in: straight on.
    if authenticate(req, &state).await.is_ok() {
        return see_other(&target);
    }
    page(
        StatusCode::OK,
        &LoginPage {
            notice: notice(q.notice.as_deref()),
            error: None,
            email: "",
            return_to: &target,
            google_url: google_url(&state, &target),
            signup_url: with_return_to("/signup", &target),
            forgot: state.auth.mail().postman.enabled(),
        },
    )
}

#[handler]
async fn login_submit(req: &Request, state: Data<&AppState>, Form(mut form): Form<LoginForm>) -> Response {
    let target = target(Some(&form.return_to));
    let password = std::mem::take(&mut form.password);
    let outcome = match actions::check_login_input(&form.email, &password) {
        Ok(()) => actions::login(req, &state, &form.email, SecretString::from(password)).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(started) if started.record.stage == crate::session::record::Stage::SecondFactor => {
            see_other_with_cookie(&mfa::second_factor_url(&target), started.set_cookie)
        }
        Ok(started) if started.record.stage == crate::session::record::Stage::Enrolment => {
            see_other_with_cookie(two_factor::TWO_FACTOR, started.set_cookie)
        }
        Ok(started) => see_other_with_cookie(&target, started.set_cookie),
        Err(e) => failed(
            &e,
            &LoginPage {
                notice: None,
                error: Some(sentence(&e.to_string())),
                email: &form.email,
                return_to: &target,
                google_url: google_url(&state, &target),
                signup_url: with_return_to("/signup", &target),
                forgot: state.auth.mail().postman.enabled(),
            },
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Create an account

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SignupForm {
    full_name: String,
    email: String,
    password: String,
    return_to: String,
}

#[handler]
async fn signup_page(req: &Request, state: Data<&AppState>, Query(q): Query<PageQuery>) -> Response {
    let target = target(q.return_to.as_deref());
    if authenticate(req, &state).await.is_ok() {
        return see_other(&target);
    }
    page(
        StatusCode::OK,
        &SignupPage {
            notice: None,
            error: None,
            invalid: "",
            full_name: "",
            email: "",
            return_to: &target,
            login_url: with_return_to("/login", &target),
        },
    )
}

#[handler]
async fn signup_submit(req: &Request, state: Data<&AppState>, Form(mut form): Form<SignupForm>) -> Response {
    let target = target(Some(&form.return_to));
    let password = std::mem::take(&mut form.password);
    let outcome = match actions::check_signup_input(&form.email, &password, &form.full_name) {
        Ok(()) => {
            actions::signup(
                req,
                &state,
                &form.email,
                SecretString::from(password),
                &form.full_name,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(actions::SignedUp::Started(started)) => see_other_with_cookie(&target, started.set_cookie),
        Ok(actions::SignedUp::VerifyFirst { email }) => {
            page(StatusCode::ACCEPTED, &recovery::VerifyFirst { email: &email })
        }
        Err(e) => failed(
            &e,
            &SignupPage {
                notice: None,
                error: Some(sentence(&e.to_string())),
                invalid: invalid_field(&e),
                full_name: &form.full_name,
                email: &form.email,
                return_to: &target,
                login_url: with_return_to("/login", &target),
            },
        ),
    }
}

/// The form field an error is about.
fn invalid_field(e: &ApiError) -> &'static str {
    match e {
        ApiError::InvalidEmail(_) | ApiError::EmailTaken => "email",
        ApiError::InvalidName(_) => "fullName",
        ApiError::WeakPassword(_) => "password",
        ApiError::InvalidRequest(m) if m.starts_with("email") => "email",
        ApiError::InvalidRequest(m) if m.starts_with("fullName") => "fullName",
        ApiError::InvalidRequest(m) if m.starts_with("password") => "password",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// The account page and its actions

/// The request's session, or the answer that replaces the page: to sign in (and back here)
/// when there is no live session, the error page when the store does not answer.
async fn signed_in(req: &Request, state: &AppState) -> Result<Validated, Response> {
    match authenticate(req, state).await {
        Ok(v) => Ok(v),
        // A sign-in that is not finished goes where it is finished.
        Err(ApiError::MfaRequired) => Err(see_other(&mfa::second_factor_url(HOME))),
        Err(ApiError::MfaEnrolmentRequired) => Err(see_other(two_factor::TWO_FACTOR)),
        // Signing in comes back here (the default target).
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => Err(see_other("/login")),
        Err(e) => Err(error_page(e.as_response()).await),
    }
}

async fn account(
    state: &AppState,
    current: &SessionRecord,
    notice: Option<&'static str>,
    error: Option<&ApiError>,
    password_error: Option<&ApiError>,
) -> Result<AccountPage, ApiError> {
    let sessions = actions::list_sessions(state, current).await?;
    let user = crate::users::find_by_id(&state.db, current.user_id)
        .await
        .map_err(ApiError::internal)?;
    let has_password = user.as_ref().is_some_and(|u| u.password_hash.is_some());
    let email_verified = user.as_ref().is_none_or(|u| u.email_verified_at.is_some());
    let mut devices: Vec<Device> = sessions
        .iter()
        .map(|r| {
            let created = datetime(r.created_at);
            let seen = datetime(r.last_seen_at);
            Device {
                id: r.public_id.clone(),
                description: user_agent::describe(r.user_agent.as_deref()),
                ip: r.ip.clone().unwrap_or_else(|| "unknown".into()),
                method: how_signed_in(r),
                created: created.format("%Y-%m-%d %H:%M UTC").to_string(),
                created_iso: created.to_rfc3339_opts(SecondsFormat::Secs, true),
                last_seen: seen.format("%Y-%m-%d %H:%M UTC").to_string(),
                last_seen_iso: seen.to_rfc3339_opts(SecondsFormat::Secs, true),
                current: r.public_id == current.public_id,
            }
        })
        .collect();
    // This device first, then the others, newest first.
    devices.sort_by_key(|d| !d.current);
    let rows = crate::audit::query::list(
        &state.db,
        &crate::audit::query::Filter {
            user_id: Some(current.user_id),
            limit: 50,
            ..Default::default()
        },
    )
    .await
    .map_err(ApiError::internal)?;
    let activity = rows
        .iter()
        .filter_map(|r| {
            let what = describe_event(r)?;
            let at = datetime(r.at);
            Some(Activity {
                what,
                when: at.format("%Y-%m-%d %H:%M UTC").to_string(),
                when_iso: at.to_rfc3339_opts(SecondsFormat::Secs, true),
                from: match (&r.ip, &r.user_agent) {
                    (Some(ip), ua) => format!("{}, {ip}", user_agent::describe(ua.as_deref())),
                    (None, Some(ua)) => user_agent::describe(Some(ua)),
                    (None, None) => String::new(),
                },
            })
        })
        .take(RECENT_ACTIVITY)
        .collect();
    Ok(AccountPage {
        notice,
        error: error.map(|e| sentence(&e.to_string())),
        name: current.user.full_name.clone(),
        email: current.user.email.clone(),
        devices,
        activity,
        has_password,
        email_verified,
        can_resend: state.auth.mail().postman.enabled(),
        password_error: password_error.map(|e| sentence(&e.to_string())),
        two_step: two_step(state, current).await?,
    })
}

/// The account's second factors in words, for the account page.
async fn two_step(state: &AppState, current: &SessionRecord) -> Result<Option<String>, ApiError> {
    let factors = state.auth.factors(current.user_id).await?;
    let mut parts = Vec::new();
    if factors.totp_enabled_at.is_some() {
        parts.push("an authenticator app".to_string());
    }
    match factors.passkeys {
        0 => {}
        1 => parts.push("a passkey".into()),
        n => parts.push(format!("{n} passkeys")),
    }
    Ok((!parts.is_empty()).then(|| format!("On: {}", parts.join(" and "))))
}

#[handler]
async fn resend_submit(req: &Request, state: Data<&AppState>) -> Response {
    let session = match signed_in(req, &state).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    match actions::resend_verification(req, &state, &session.record).await {
        Ok(()) => see_other("/account?notice=verification-sent"),
        Err(e) => account_failed(&state, &session.record, e, false).await,
    }
}

#[handler]
async fn account_page(req: &Request, state: Data<&AppState>, Query(q): Query<PageQuery>) -> Response {
    let session = match signed_in(req, &state).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    match account(&state, &session.record, notice(q.notice.as_deref()), None, None).await {
        Ok(p) => page(StatusCode::OK, &p),
        Err(e) => error_page(e.as_response()).await,
    }
}

/// The account page again, with `e` shown (as the form's error when `for_password`), answered
/// with `e`'s status.
async fn account_failed(
    state: &AppState,
    current: &SessionRecord,
    e: ApiError,
    for_password: bool,
) -> Response {
    // A change that needs a recent sign-in: confirm it is you, then come back.
    if matches!(e, ApiError::ReauthenticationRequired(_)) {
        return see_other(&with_return_to(two_factor::CONFIRM, "/account"));
    }
    let (general, password) = if for_password {
        (None, Some(&e))
    } else {
        (Some(&e), None)
    };
    match account(state, current, None, general, password).await {
        Ok(p) => failed(&e, &p),
        Err(other) => error_page(other.as_response()).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PasswordForm {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

#[handler]
async fn password_submit(
    req: &Request,
    state: Data<&AppState>,
    Form(mut form): Form<PasswordForm>,
) -> Response {
    let session = match signed_in(req, &state).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let current = std::mem::take(&mut form.current_password);
    let new = std::mem::take(&mut form.new_password);
    if new != form.confirm_password {
        let e = ApiError::InvalidRequest("the new password and its repetition differ".into());
        return account_failed(&state, &session.record, e, true).await;
    }
    let outcome = match actions::check_password_change_input(&current, &new) {
        Ok(()) => {
            actions::change_password(
                req,
                &state,
                &session,
                SecretString::from(current),
                SecretString::from(new),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(started) => see_other_with_cookie("/account?notice=password-changed", started.set_cookie),
        Err(e) => account_failed(&state, &session.record, e, true).await,
    }
}

#[handler]
async fn end_one(req: &Request, state: Data<&AppState>, Path(id): Path<String>) -> Response {
    let session = match signed_in(req, &state).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let client = client_info(req, &state.settings);
    match actions::revoke_one(&state, &session.record, &id, &client).await {
        // This very device: signed out.
        Ok(Some(clear)) => see_other_with_cookie("/login?notice=signed-out", clear),
        Ok(None) => see_other("/account?notice=device-ended"),
        Err(e) => account_failed(&state, &session.record, e, false).await,
    }
}

#[handler]
async fn end_others(req: &Request, state: Data<&AppState>) -> Response {
    let session = match signed_in(req, &state).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let client = client_info(req, &state.settings);
    match actions::revoke_others(&state, &session.record, &client).await {
        Ok(_) => see_other("/account?notice=others-ended"),
        Err(e) => account_failed(&state, &session.record, e, false).await,
    }
}

#[handler]
async fn logout_submit(req: &Request, state: Data<&AppState>) -> Response {
    let now = state.clock.now();
    let presented = match crate::api::session_auth::presented_sessions(req, &state, now).await {
        Ok(p) => p,
        Err(e) => return error_page(e.as_response()).await,
    };
    let client = client_info(req, &state.settings);
    match actions::logout(&state, &presented, &client).await {
        Ok(clear) => see_other_with_cookie("/login?notice=signed-out", clear),
        Err(e) => error_page(e.as_response()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_sentences() {
        assert_eq!(
            sentence("the e-mail address or password is incorrect"),
            "The e-mail address or password is incorrect."
        );
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn the_target_is_the_allow_listed_return_to_or_the_account() {
        assert_eq!(target(None), HOME);
        assert_eq!(target(Some(" ")), HOME);
        assert_eq!(target(Some("/app/x?y=1")), "/app/x?y=1");
        assert_eq!(target(Some("/")), "/");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
        ] {
            assert_eq!(target(Some(bad)), "/", "{bad}");
        }
    }

    #[test]
    fn page_paths_are_known() {
        for (path, _) in ROUTES {
            let concrete = path.replace(":id", "s0123456789abcdefghijklmn");
            assert!(
                is_page(&concrete) || concrete == STYLESHEET || concrete == PASSKEY_SCRIPT,
                "{path}"
            );
        }
        assert!(!is_page("/auth/login"));
        assert!(!is_page("/accounts"));
        assert!(takes_forms("/login") && !takes_forms("/account"));
    }
}
