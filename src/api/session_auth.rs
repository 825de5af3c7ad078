//! The cookie security scheme: `CurrentSession` as an operation parameter means "this
//! operation needs a valid session". Validation is the session engine's; this only moves the
//! cookie in and the outcome out. A store outage is a 503, never a 401: the user is not
//! logged out because Redis blinked.

use poem::{
    http::{header, HeaderName},
    Request, RequestBody,
};
use poem_openapi::{
    registry::{MetaSecurityScheme, Registry},
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
};

use super::cookie::{session_cookie_values, CookieAction, CookieSlot};
use crate::metrics::CheckOutcome;
use crate::{
    config::Settings,
    error::ApiError,
    session::{
        record::{Millis, Stage},
        ClientInfo, Delivery, Presented, SessionError, Validated,
    },
    state::AppState,
};

/// The name of the scheme in the OpenAPI document.
pub const SCHEME: &str = "sessionCookie";

/// The session of the request, validated (and possibly rotated). As an operation parameter: the
/// operation needs a session (401 without one).
pub struct CurrentSession(pub Validated);

/// The live sessions the request's cookies name, each once: none, one, or several when a sibling
/// site planted cookies next to the real one. As an operation parameter: the operation takes the
/// session cookie but also works without one (logout), and the spec says the cookie is optional.
pub struct PresentedSessions(pub Vec<crate::session::record::SessionRecord>);

/// The request header a backend sends when it checks a browser's session on the browser's behalf
/// (forwarding its `Cookie`): the answer never reaches the browser's cookie jar, so the session
/// is validated without being rotated — only its sliding expiry is refreshed — and the response
/// sets no cookie at all. Any value counts; send `1`. See docs/forward-auth.md, "Backends that
/// check a session themselves".
/// (A `HeaderName`, not text: a lookup by text parses the name on every call.)
pub const PASSIVE_HEADER: HeaderName = HeaderName::from_static("x-auth-passive");

/// How the answer to this request reaches the browser: [`Delivery::Passive`] when it carries
/// [`PASSIVE_HEADER`].
pub fn delivery(req: &Request) -> Delivery {
    if req.headers().contains_key(PASSIVE_HEADER) {
        Delivery::Passive
    } else {
        Delivery::Browser
    }
}

/// The most cookies with the session's name one request may carry. A browser sends more than
/// one only when another `Domain` or `Path` planted a sibling; each costs a store read.
pub const MAX_SESSION_COOKIES: usize = 4;

/// Why a request carrying session cookies is not authenticated, and whether that proves its
/// cookie dead.
enum Refusal {
    /// Every presented cookie is dead (forged, expired, revoked): the response may delete it.
    Dead(SessionError),
    /// Nothing is proven about the cookies (store down, ambiguity): leave them alone.
    Undecided(ApiError),
}

/// Validates the request's session cookie.
///
/// With the `__Host-` prefix off, a sibling subdomain can plant cookies with the session's name
/// next to the real one, and the browser sends them all, in an order the server cannot trust.
/// So (docs/sessions.md, "Several session cookies"):
/// - one cookie: validated as is — one store read;
/// - several (at most [`MAX_SESSION_COOKIES`], else 401 `ambiguous_session`): each is read
///   without side effects; exactly one live session → that one; two or more different live
///   sessions → 401 `ambiguous_session`, since acting as either could mean acting as the
///   attacker's; none live → the most telling refusal (revoked, then expired);
/// - the cookie is deleted only when every presented cookie was proven dead — never because of
///   a store failure or an ambiguity, so a planted cookie cannot get a live one deleted.
///
/// With [`PASSIVE_HEADER`] (a backend checking on the browser's behalf) nothing is rotated and
/// the response sets no cookie: it would never reach the browser.
///
/// Only a signed-in session passes: one whose sign-in still waits for a second factor is 403
/// `mfa_required`, one that must enrol a factor first 403 `mfa_enrolment_required` (see
/// [`authenticate_any`] for the routes that finish a sign-in).
pub async fn authenticate(req: &Request, state: &AppState) -> Result<Validated, ApiError> {
    let values = session_cookie_values(req, &state.settings.session.cookie_name);
    let presented = !values.is_empty();
    let result = authenticate_cookies(req, state, values).await.and_then(signed_in);
    count_check(state, presented, &result);
    result
}

/// [`authenticate`], accepting a session whose sign-in is not finished: for the operations that
/// finish it (`POST /auth/mfa/verify`, enrolment). The caller checks the stage it needs.
pub async fn authenticate_any(req: &Request, state: &AppState) -> Result<Validated, ApiError> {
    let values = session_cookie_values(req, &state.settings.session.cookie_name);
    let presented = !values.is_empty();
    let result = authenticate_cookies(req, state, values).await;
    count_check(state, presented, &result);
    result
}

/// A session that is signed in, or the error saying what its sign-in still needs.
pub fn signed_in(validated: Validated) -> Result<Validated, ApiError> {
    match validated.record.stage {
        Stage::Complete => Ok(validated),
        Stage::SecondFactor => Err(ApiError::MfaRequired),
        Stage::Enrolment => Err(ApiError::MfaEnrolmentRequired),
    }
}

fn count_check(state: &AppState, presented: bool, result: &Result<Validated, ApiError>) {
    state.metrics.session_check(match result {
        Ok(_) => CheckOutcome::Valid,
        Err(ApiError::MfaRequired | ApiError::MfaEnrolmentRequired) => CheckOutcome::Incomplete,
        // A cookie was sent, but not one this server signed.
        Err(ApiError::NoSession) if presented => CheckOutcome::Tampered,
        Err(ApiError::NoSession) => CheckOutcome::NoSession,
        Err(ApiError::SessionExpired) => CheckOutcome::Expired,
        Err(ApiError::SessionRevoked { .. }) => CheckOutcome::Revoked,
        Err(ApiError::AmbiguousSession) => CheckOutcome::Ambiguous,
        Err(ApiError::SessionStoreUnavailable(_) | ApiError::ServerBusy) => CheckOutcome::StoreUnavailable,
        Err(_) => CheckOutcome::Error,
    });
}

async fn authenticate_cookies(
    req: &Request,
    state: &AppState,
    values: Vec<&str>,
) -> Result<Validated, ApiError> {
    // A signed-out visitor: nothing to read, nothing to clear.
    if values.is_empty() {
        return Err(ApiError::NoSession);
    }
    let delivery = delivery(req);
    let slot = match delivery {
        Delivery::Browser => req.extensions().get::<CookieSlot>().cloned(),
        Delivery::Passive => None,
    };
    let now = state.clock.now();
    let outcome = match values.as_slice() {
        [] => Err(Refusal::Undecided(ApiError::NoSession)),
        [one] => state
            .sessions
            .validate_for(one, delivery, now)
            .await
            .map_err(refusal),
        many if many.len() > MAX_SESSION_COOKIES => {
            tracing::warn!(count = many.len(), "too many session cookies; refused");
            Err(Refusal::Undecided(ApiError::AmbiguousSession))
        }
        many => Box::pin(choose(state, many, delivery, now)).await,
    };
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
        Err(Refusal::Undecided(e)) => Err(e),
        Err(Refusal::Dead(e)) => {
            if let Some(slot) = &slot {
                slot.set(CookieAction::Clear);
            }
            Err(e.into())
        }
    }
}

fn refusal(e: SessionError) -> Refusal {
    match e {
        SessionError::Store(e) => Refusal::Undecided(e.into()),
        dead => Refusal::Dead(dead),
    }
}

/// Several session cookies: the one live session among them, if there is exactly one.
async fn choose(
    state: &AppState,
    values: &[&str],
    delivery: Delivery,
    now: Millis,
) -> Result<Validated, Refusal> {
    let mut live: Vec<Presented> = Vec::new();
    let mut dead: Option<SessionError> = None;
    for (i, value) in values.iter().enumerate() {
        if values[..i].contains(value) {
            continue;
        }
        match state.sessions.check(value, now).await {
            Ok(p) => match live
                .iter_mut()
                .find(|l| l.record().public_id == p.record().public_id)
            {
                // Two tokens of one session (the current one and its predecessor in grace):
                // one session, represented by its current token.
                Some(same) => {
                    if p.is_current() {
                        *same = p;
                    }
                }
                None => live.push(p),
            },
            // The store did not answer for this one: it might be live, so nothing is decided.
            Err(SessionError::Store(e)) => return Err(Refusal::Undecided(e.into())),
            Err(e) => dead = Some(more_telling(dead, e)),
        }
    }
    match live.len() {
        0 => Err(Refusal::Dead(dead.unwrap_or(SessionError::NoSession))),
        1 => {
            let Some(one) = live.pop() else {
                return Err(Refusal::Dead(SessionError::NoSession));
            };
            state
                .sessions
                .settle_for(one, delivery, now)
                .await
                .map_err(refusal)
        }
        n => {
            tracing::warn!(live = n, "several live sessions in one request; refused");
            Err(Refusal::Undecided(ApiError::AmbiguousSession))
        }
    }
}

/// Of two reasons a cookie is dead, the one worth telling the client: revoked (with its
/// reason), then expired, then "not a session of ours".
fn more_telling(kept: Option<SessionError>, new: SessionError) -> SessionError {
    let rank = |e: &SessionError| match e {
        SessionError::Revoked { .. } => 2,
        SessionError::Expired => 1,
        _ => 0,
    };
    match kept {
        Some(k) if rank(&k) >= rank(&new) => k,
        _ => new,
    }
}

/// The live sessions this browser presented (each distinct session once): a sign-in ends them
/// all (`superseded`) before creating its own, so a second account signed in on the same
/// browser never leaves the first one's session behind, and a planted session cannot stand
/// next to the new one (which would make every later request ambiguous). Presenting a cookie
/// proves holding it, which is all it takes to sign it out. Dead cookies are skipped; a store
/// that cannot answer is an error (the sign-in could not complete anyway).
pub async fn presented_sessions(
    req: &Request,
    state: &AppState,
    now: Millis,
) -> Result<Vec<crate::session::record::SessionRecord>, ApiError> {
    let values = session_cookie_values(req, &state.settings.session.cookie_name);
    let mut live: Vec<crate::session::record::SessionRecord> = Vec::new();
    for (i, value) in values.iter().enumerate().take(MAX_SESSION_COOKIES) {
        if values[..i].contains(value) {
            continue;
        }
        match state.sessions.check(value, now).await {
            Ok(p) => {
                let r = p.record();
                if !live.iter().any(|l| l.public_id == r.public_id) {
                    live.push(r.clone());
                }
            }
            Err(SessionError::Store(e)) => return Err(e.into()),
            Err(_) => continue,
        }
    }
    Ok(live)
}

/// Who is calling: the client address and the `User-Agent`, recorded on new sessions and used
/// for sign-in throttling. The address is the TCP peer, or — with `TRUST_X_FORWARDED_FOR`, behind
/// one reverse proxy — the last `X-Forwarded-For` entry, the one that proxy appended (earlier
/// entries are client-supplied and can be forged).
pub fn client_info(req: &Request, settings: &Settings) -> ClientInfo {
    warn_if_behind_an_undeclared_proxy(req, settings);
    // Only the very last entry was written by our proxy; anything before it came from the
    // client. An entry we cannot read (`ip:port`, `unknown`) means "use the peer", never
    // "use the one before it".
    let forwarded = settings
        .trust_forwarded_for
        .then(|| {
            let last = req
                .headers()
                .get_all(super::header_names::X_FORWARDED_FOR)
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
        // The id the edge gave the request (a well-formed incoming one, else a new one), as
        // its log lines and its response carry it.
        request_id: crate::telemetry::request::with_current(|r| r.id().to_string()),
        operator: None,
    }
}

/// Says once per process when requests carry forwarding headers while
/// `TRUST_X_FORWARDED_FOR` is off: every client then counts as the proxy's address, so one
/// client's failures throttle everybody behind it (only known browsers still get in).
fn warn_if_behind_an_undeclared_proxy(req: &Request, settings: &Settings) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if settings.trust_forwarded_for || WARNED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let headers = req.headers();
    if (headers.contains_key(super::header_names::X_FORWARDED_FOR) || headers.contains_key(header::FORWARDED))
        && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        tracing::warn!(
            peer = %peer,
            "requests arrive through a proxy (X-Forwarded-For), but TRUST_X_FORWARDED_FOR is off: every client counts as the proxy's address for sign-in throttling, so one client's failures can throttle all of them; set TRUST_X_FORWARDED_FOR=true when authauth runs behind exactly one reverse proxy"
        );
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

/// The session cookie as the spec's one security scheme, shared by every extractor that reads it.
fn register_scheme(registry: &mut Registry) {
    registry.create_security_scheme(
        SCHEME,
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some(
                "The opaque, HttpOnly session cookie set by signup and login. Browsers send it \
                     by themselves (Swagger UI included); its name is `authauth_session` in \
                     development and `__Host-authauth_session` in production (`SESSION_COOKIE_NAME`). \
                     A backend that forwards a browser's cookie to check its session sends \
                     `X-Auth-Passive: 1` as well: the session is then never rotated by that \
                     request (its new cookie could not reach the browser) and the answer sets no \
                     cookie.",
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

impl<'a> ApiExtractor<'a> for CurrentSession {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_scheme(registry);
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

impl<'a> ApiExtractor<'a> for PresentedSessions {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_scheme(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME]
    }

    /// Documents the cookie as optional: an empty security requirement beside it.
    fn has_security_fallback() -> bool {
        true
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = req
            .data::<AppState>()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
        let now = state.clock.now();
        Ok(PresentedSessions(
            Box::pin(presented_sessions(req, state, now)).await?,
        ))
    }
}

/// The outcome of authenticating the request, success or refusal, for an operation that answers
/// a refusal itself (`GET /auth/verify` turns one into a sign-in redirect). As an operation
/// parameter it needs the session like [`CurrentSession`] — the spec says so, with its 401s —
/// but hands the refusal to the handler instead of answering it.
pub struct SessionCheck(pub Result<Validated, ApiError>);

impl<'a> ApiExtractor<'a> for SessionCheck {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_scheme(registry);
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
        Ok(SessionCheck(Box::pin(authenticate(req, state)).await))
    }
}

/// The request's session whatever its stage — signed in, waiting for a second factor, or
/// waiting for one to be enrolled — for the operations that finish a sign-in. As an operation
/// parameter it needs a session like [`CurrentSession`]; the handler checks the stage.
pub struct SignInSession(pub Validated);

impl<'a> ApiExtractor<'a> for SignInSession {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_scheme(registry);
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
        Ok(SignInSession(Box::pin(authenticate_any(req, state)).await?))
    }
}

/// The request's session if it has a live one, whatever its stage; `None` without one (no
/// cookie, or a dead one). As an operation parameter: the operation works with or without a
/// session (the spec says the cookie is optional) and acts on the one it finds.
pub struct OptionalSession(pub Option<Validated>);

impl<'a> ApiExtractor<'a> for OptionalSession {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_scheme(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME]
    }

    fn has_security_fallback() -> bool {
        true
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = req
            .data::<AppState>()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
        match Box::pin(authenticate_any(req, state)).await {
            Ok(v) => Ok(OptionalSession(Some(v))),
            Err(
                ApiError::NoSession
                | ApiError::SessionExpired
                | ApiError::SessionRevoked { .. }
                | ApiError::AmbiguousSession,
            ) => Ok(OptionalSession(None)),
            Err(e) => Err(e.into()),
        }
    }
}
