//! The cookie security scheme: `CurrentSession` as an operation parameter means "this
//! operation needs a valid session". Validation is the session engine's; this only moves the
//! cookie in and the outcome out. A store outage is a 503, never a 401: the user is not
//! logged out because Redis blinked.

use poem::{Request, RequestBody};
use poem_openapi::{
    registry::{MetaSecurityScheme, Registry},
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
};

use super::cookie::{session_cookie_values, CookieAction, CookieSlot};
use crate::{
    config::Settings,
    error::ApiError,
    session::{ClientInfo, SessionError, Validated},
    state::AppState,
};

/// The name of the scheme in the OpenAPI document.
pub const SCHEME: &str = "sessionCookie";

/// The session of the request, validated (and possibly rotated).
pub struct CurrentSession(pub Validated);

/// Validates the request's session cookie. Several cookies with the session's name (a sibling
/// domain may plant one when the `__Host-` prefix is off) are tried in order; only one this
/// server signed can succeed.
pub async fn authenticate(req: &Request, state: &AppState) -> Result<Validated, ApiError> {
    let values = session_cookie_values(req, &state.settings.session.cookie_name);
    let slot = req.extensions().get::<CookieSlot>().cloned();
    let now = state.clock.now();
    let mut outcome = Err(SessionError::NoSession);
    for value in &values {
        outcome = state.sessions.validate(value, now).await;
        if !matches!(outcome, Err(SessionError::NoSession)) {
            break;
        }
    }
    match outcome {
        Ok(validated) => {
            if let (Some(slot), Some(value)) = (&slot, &validated.new_cookie) {
                slot.set(CookieAction::Set(super::cookie::set_cookie(
                    &state.settings.session,
                    value,
                    &validated.record,
                    now,
                )));
            }
            Ok(validated)
        }
        Err(SessionError::Store(e)) => Err(e.into()),
        Err(e) => {
            if let (Some(slot), false) = (&slot, values.is_empty()) {
                slot.set(CookieAction::Clear);
            }
            Err(e.into())
        }
    }
}

/// The live session this browser already holds, if any: a sign-in ends it (`superseded`)
/// before creating the new one, so a browser never holds two accounts' sessions and an old
/// session is never orphaned. An unreadable or dead cookie, or a store that cannot answer,
/// counts as none (the sign-in itself will hit the store and report an outage).
pub async fn presented_session(
    req: &Request,
    state: &AppState,
) -> Option<crate::session::record::SessionRecord> {
    if session_cookie_values(req, &state.settings.session.cookie_name).is_empty() {
        return None;
    }
    authenticate(req, state).await.ok().map(|v| v.record)
}

/// Who is calling: the client address and the `User-Agent`, recorded on new sessions and used
/// for sign-in throttling. The address is the TCP peer, or — with `TRUST_X_FORWARDED_FOR`, behind
/// one reverse proxy — the last `X-Forwarded-For` entry, the one that proxy appended (earlier
/// entries are client-supplied and can be forged).
pub fn client_info(req: &Request, settings: &Settings) -> ClientInfo {
    // Only the very last entry was written by our proxy; anything before it came from the
    // client. An entry we cannot read (`ip:port`, `unknown`) means "use the peer", never
    // "use the one before it".
    let forwarded = settings
        .trust_forwarded_for
        .then(|| {
            let last = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()?
                .trim();
            parse_forwarded_address(last)
        })
        .flatten();
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
    ClientInfo {
        ip: forwarded.or(peer).map(|ip| ip.to_canonical().to_string()),
        user_agent: req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    }
}

/// `198.51.100.7`, `198.51.100.7:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_forwarded_address(entry: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(sock) = entry.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

impl<'a> ApiExtractor<'a> for CurrentSession {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            SCHEME,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some(
                    "The opaque, HttpOnly session cookie set by signup and login. Browsers send it \
                     by themselves (Swagger UI included); its name is `authauth_session` in \
                     development and `__Host-authauth_session` in production (`SESSION_COOKIE_NAME`).",
                ),
                name: Some("authauth_session"),
                key_in: Some("cookie"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = req
            .data::<AppState>()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
        // Boxed: this future would otherwise be copied, inline, into every layer above it.
        Ok(CurrentSession(Box::pin(authenticate(req, state)).await?))
    }
}
