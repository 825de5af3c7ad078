//! Sign in with Google (or any OpenID provider configured through the `GOOGLE_*` variables).
//!
//! These two routes are browser navigations, not JSON calls: the start redirects to the
//! provider and the callback redirects back into the application. Both change state on GET
//! because OAuth requires it; the callback is protected by the single-use `state` bound to the
//! browser by the flow cookie.

use crate::session::record::Stage;
use poem::{web::Data, Request};
use poem_openapi::{param::Query, payload::Json, types::Example, ApiResponse, Object, OpenApi, Tags};

use super::{
    cookie::{
        clear_flow_cookie, first_cookie_value, flow_cookie_name, set_cookie, set_device_cookie,
        set_flow_cookie, CookieSlot,
    },
    session_auth::{client_info, presented_sessions},
};
use crate::{
    auth::{
        oidc::{safe_return_to, Callback, FLOW_TTL},
        throttle,
    },
    error::{ApiError, Failure},
    error_set,
    state::AppState,
};

#[derive(Tags)]
enum Tag {
    /// Sign in with an OpenID provider (Google).
    Google,
}

/// Where to send the browser.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct AuthorizationUrl {
    /// Open this URL in the same browser to sign in at the provider.
    authorization_url: String,
}

impl Example for AuthorizationUrl {
    fn example() -> Self {
        AuthorizationUrl {
            authorization_url: "https://accounts.google.com/o/oauth2/v2/auth?response_type=code&client_id=…&state=…&nonce=…&code_challenge=…&code_challenge_method=S256&redirect_uri=…&scope=openid+email+profile".into(),
        }
    }
}

#[derive(ApiResponse)]
enum StartResponse {
    /// A browser navigation: go to the provider. The flow cookie binds the attempt to this
    /// browser.
    #[oai(status = 303)]
    Redirect(
        #[oai(header = "Location")] String,
        #[oai(header = "Set-Cookie")] String,
    ),
    /// A `fetch()` call (e.g. Swagger UI's "Try it out"): the provider URL to open in this
    /// browser.
    #[oai(status = 200)]
    Url(Json<AuthorizationUrl>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum CallbackResponse {
    /// Signed in with a brand-new session; back to the `returnTo` path given at the start.
    #[oai(status = 303)]
    SignedIn(
        #[oai(header = "Location")] String,
        #[oai(header = "Set-Cookie")] String,
    ),
}

error_set!(StartErrors: [ProviderNotConfigured, TooManyAttempts, ProviderUnavailable] + [API, PARAMS]);

error_set!(CallbackErrors: [
        SignInStateInvalid,
        IssuerMismatch,
        ProviderRefused,
        EmailMissing,
        IdTokenInvalid,
        EmailNotVerified,
        AccountDisabled,
        ProviderNotConfigured,
        IdentityConflict,
        ProviderUnavailable,
        InvalidEmail,
        SessionLimitReached,
    ] + [API, PARAMS]);

/// True for `fetch()`/XHR callers, which cannot follow a redirect to another origin.
fn wants_json(req: &Request) -> bool {
    let mode = req
        .headers()
        .get(super::header_names::SEC_FETCH_MODE)
        .and_then(|v| v.to_str().ok());
    if let Some(mode) = mode {
        return mode != "navigate";
    }
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

pub struct OidcApi;

#[OpenApi(tag = "Tag::Google")]
impl OidcApi {
    /// Start signing in with Google.
    ///
    /// Navigate the browser here (a link or `window.location`): it is redirected to the
    /// provider with a fresh `state`, `nonce` and PKCE challenge. Called with `fetch()` (as
    /// Swagger UI does) it answers 200 with the URL to open instead. After sign-in the browser
    /// lands on `returnTo` — a path on this site; anything else becomes `/`.
    #[oai(path = "/auth/google", method = "get")]
    async fn start(
        &self,
        req: &Request,
        state: Data<&AppState>,
        /// Where to go after signing in: a path on this site, such as `/account`.
        #[oai(name = "returnTo")]
        return_to: Query<Option<String>>,
    ) -> Result<StartResponse, Failure<StartErrors>> {
        let provider = state.google.as_ref().ok_or(ApiError::ProviderNotConfigured)?;
        let now = state.clock.now();
        let client = client_info(req, &state.settings);
        if let Some(retry_after) =
            throttle::sign_in_start(state.stores.attempts.as_ref(), client.ip.as_deref(), now)
                .await
                .map_err(ApiError::from)?
        {
            return Err(ApiError::TooManyAttempts {
                retry_after,
                what: "sign-ins started from this network",
            }
            .into());
        }
        let return_to = safe_return_to(return_to.0.as_deref());
        let started = provider
            .start(state.stores.flows.as_ref(), &return_to, now)
            .await
            .map_err(ApiError::from)?;
        let cookie = set_flow_cookie(&state.settings.session, &started.flow_id, FLOW_TTL);
        Ok(if wants_json(req) {
            StartResponse::Url(
                Json(AuthorizationUrl {
                    authorization_url: started.authorization_url,
                }),
                cookie,
            )
        } else {
            StartResponse::Redirect(started.authorization_url, cookie)
        })
    }

    /// The provider sends the browser back here (the registered redirect URI).
    ///
    /// Checks the `state` (single use, from this browser), the `iss` parameter, exchanges the
    /// code with the PKCE verifier, verifies the ID token, finds or links the account by
    /// `(issuer, subject)`, and starts a brand-new session.
    #[oai(path = "/auth/google/callback", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn callback(
        &self,
        req: &Request,
        state: Data<&AppState>,
        code: Query<Option<String>>,
        #[oai(name = "state")] flow_state: Query<Option<String>>,
        iss: Query<Option<String>>,
        error: Query<Option<String>>,
        error_description: Query<Option<String>>,
    ) -> Result<CallbackResponse, Failure<CallbackErrors>> {
        // Whatever happens, the flow cookie is spent.
        if let Some(slot) = req.extensions().get::<CookieSlot>() {
            slot.add(clear_flow_cookie(&state.settings.session));
        }
        let provider = state.google.as_ref().ok_or(ApiError::ProviderNotConfigured)?;
        let now = state.clock.now();
        let flow_id = first_cookie_value(req, flow_cookie_name(&state.settings.session));
        let callback = Callback {
            code: code.0,
            state: flow_state.0,
            iss: iss.0,
            error: error.0,
            error_description: error_description.0,
        };
        let (identity, return_to) = provider
            .finish(state.stores.flows.as_ref(), flow_id, callback, now)
            .await
            .map_err(ApiError::from)?;
        let previous = presented_sessions(req, &state, now).await?;
        let device_cookie = super::actions::device_cookie(req, &state);
        let (user, issued, device) = state
            .auth
            .sign_in_with_identity(
                &identity,
                &client_info(req, &state.settings),
                device_cookie.as_deref(),
                &previous,
                now,
            )
            .await
            .map_err(ApiError::from)?;
        // Not for a sign-in still waiting for its second factor (see `actions::login`).
        if let (Some(slot), true) = (
            req.extensions().get::<CookieSlot>(),
            issued.record.stage.is_complete(),
        ) {
            slot.add(set_device_cookie(&state.settings.session, &device));
        }
        tracing::info!(user = %user.id, provider = provider.name, "signed in with a provider");
        let cookie = set_cookie(&state.settings.session, &issued.cookie_value, &issued.record, now);
        // A sign-in waiting for its second factor goes to the page that asks for it (with the
        // pages off, the client sees `mfa_required` and finishes with `POST /auth/mfa/verify`).
        let location = if issued.record.stage == Stage::SecondFactor && state.settings.ui_enabled {
            crate::pages::mfa::second_factor_url(&return_to)
        } else {
            return_to
        };
        Ok(CallbackResponse::SignedIn(location, cookie))
    }
}
