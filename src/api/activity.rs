//! `GET /auth/activity`: the signed-in user's own security events, from the audit trail.

use poem::web::Data;
use poem_openapi::{param::Query, payload::Json, types::Example, ApiResponse, Object, OpenApi, Tags};

use super::session_auth::CurrentSession;
use crate::{
    audit::query,
    error::{ApiError, Failure},
    error_set,
    session::record::datetime,
    state::AppState,
};

error_set!(ActivityErrors: [] + [API, PARAMS, SESSION]);

#[derive(Tags)]
enum Tag {
    /// The signed-in user's security history.
    Activity,
}

/// One security event of the account.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct ActivityEvent {
    /// Increases with time; pass the last one seen as `before` for the next page.
    id: i64,
    /// When it happened (RFC 3339, UTC).
    at: String,
    /// What happened: `sign_in.succeeded`, `sign_in.failed`, `sign_in.throttled`,
    /// `session.created`, `session.rotated`, `session.ended`, `password.changed`,
    /// `identity.linked`, `user.signed_up`, `user.created`, `user.disabled`, `user.enabled`,
    /// `user.unlocked`.
    #[oai(rename = "type")]
    kind: String,
    /// The public id of the session concerned.
    #[oai(skip_serializing_if_is_none)]
    session_id: Option<String>,
    /// Who caused it: `user` (you, or whoever held your session or password), `operator` (an
    /// administrator) or `system` (authauth itself: a newer sign-in in the same browser, the
    /// session limit, a linked identity).
    actor: String,
    /// The address the request came from.
    #[oai(skip_serializing_if_is_none)]
    ip: Option<String>,
    /// The browser or client that sent it.
    #[oai(skip_serializing_if_is_none)]
    user_agent: Option<String>,
    /// Why a session ended (`logout`, `password_changed`, `operator`, …).
    #[oai(skip_serializing_if_is_none)]
    reason: Option<String>,
    /// How: the sign-in method (`password`, `google`) or why a sign-in failed
    /// (`bad_credentials`, `disabled`, …).
    #[oai(skip_serializing_if_is_none)]
    method: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    failure: Option<String>,
}

impl Example for ActivityEvent {
    fn example() -> Self {
        ActivityEvent {
            id: 1042,
            at: "2026-11-28T09:14:03.120Z".into(),
            kind: "session.ended".into(),
            session_id: Some(super::views::session_id_example()),
            actor: "user".into(),
            ip: Some("203.0.113.7".into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0".into()),
            reason: Some("logout".into()),
            method: None,
            failure: None,
        }
    }
}

/// A page of events, newest first.
#[derive(Object)]
#[oai(rename_all = "camelCase", example)]
struct Activity {
    events: Vec<ActivityEvent>,
    /// Pass as `before` to read older events; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_before: Option<i64>,
}

impl Example for Activity {
    fn example() -> Self {
        Activity {
            events: vec![ActivityEvent::example()],
            next_before: None,
        }
    }
}

#[derive(ApiResponse)]
enum ActivityResponse {
    /// The account's events, newest first.
    #[oai(status = 200)]
    Ok(Json<Activity>),
}

fn detail_field(detail: &serde_json::Value, key: &str) -> Option<String> {
    detail.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

impl From<query::Row> for ActivityEvent {
    fn from(r: query::Row) -> Self {
        let detail: serde_json::Value = serde_json::from_str(&r.detail).unwrap_or_default();
        ActivityEvent {
            id: r.id,
            at: datetime(r.at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            kind: r.event_type,
            session_id: r.session_id,
            // The operator's login stays with the operators.
            actor: r.actor,
            ip: r.ip,
            user_agent: r.user_agent,
            reason: r.reason,
            method: detail_field(&detail, "method"),
            failure: detail_field(&detail, "failure"),
        }
    }
}

pub struct ActivityApi;

#[OpenApi(tag = "Tag::Activity")]
impl ActivityApi {
    /// My account's recent security events: sign-ins (and failed ones) with the address and
    /// browser they came from, sessions started and ended (and by whom), password changes.
    #[oai(path = "/auth/activity", method = "get")]
    async fn activity(
        &self,
        state: Data<&AppState>,
        session: CurrentSession,
        /// How many events (1–100).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// Only events older than this id (`nextBefore` of the previous page).
        #[oai(validator(minimum(value = "1")))]
        before: Query<Option<i64>>,
    ) -> Result<ActivityResponse, Failure<ActivityErrors>> {
        let limit = u64::from(limit.0);
        let rows = query::list(
            &state.db,
            &query::Filter {
                user_id: Some(session.0.record.user_id),
                before_id: before.0,
                // One more tells whether there is a next page.
                limit: limit + 1,
                ..query::Filter::default()
            },
        )
        .await
        .map_err(ApiError::internal)?;
        let more = rows.len() as u64 > limit;
        let events: Vec<ActivityEvent> = rows
            .into_iter()
            .take(limit as usize)
            .map(ActivityEvent::from)
            .collect();
        let next_before = if more { events.last().map(|e| e.id) } else { None };
        Ok(ActivityResponse::Ok(Json(Activity { events, next_before })))
    }
}

fn default_limit() -> u32 {
    20
}
