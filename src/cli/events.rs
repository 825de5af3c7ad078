//! `authauth events list`: the audit trail, newest first.

use anyhow::Context as _;
use chrono::Utc;
use clap::Subcommand;
use serde::Serialize;

use super::{output, sessions::find_user, CliError, Context};
use crate::{
    audit::{feed::FeedEvent, kind, query},
    session::record::datetime,
};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List audit events, newest first: sign-ups, sign-ins and their failures, sessions created,
    /// rotated and ended (with the reason), password changes, and every operator action.
    ///
    /// Example: authauth events list --user alice@example.com --since 24h
    List {
        /// Only this user's events (e-mail or user id).
        #[arg(long, value_name = "EMAIL|ID")]
        user: Option<String>,
        /// Only events of this type (e.g. `session.ended`, `sign_in.failed`).
        #[arg(long = "type", value_name = "TYPE", value_parser = event_type)]
        kind: Option<String>,
        /// Only events this recent (`30m`, `24h`, `7d`).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// At most this many events.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        limit: u64,
        /// Print JSON (an array, like the other list commands).
        #[arg(long)]
        json: bool,
    },
}

fn event_type(s: &str) -> Result<String, String> {
    if kind::ALL.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("not an event type; one of: {}", kind::ALL.join(", ")))
    }
}

/// One event, as `--json` prints it (a stable format, docs/observability.md): its id, then
/// the fields the live feed carries.
#[derive(Serialize)]
pub struct EventJson {
    pub id: i64,
    #[serde(flatten)]
    pub event: FeedEvent,
}

impl From<&query::Row> for EventJson {
    fn from(r: &query::Row) -> Self {
        EventJson {
            id: r.id,
            event: FeedEvent::from(r),
        }
    }
}

pub async fn run(ctx: Context, cmd: EventsCommand) -> Result<(), CliError> {
    let EventsCommand::List {
        user,
        kind,
        since,
        limit,
        json,
    } = cmd;
    let user = match user {
        Some(who) => Some(find_user(&ctx, &who).await?),
        None => None,
    };
    let now = ctx.clock.now();
    let filter = query::Filter {
        user_id: user.as_ref().map(|u| u.id),
        kind,
        since: since.map(|d| now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        before_id: None,
        limit,
    };
    let rows = query::list(&ctx.db, &filter)
        .await
        .context("cannot read the audit trail")?;
    if json {
        let mut array = output::JsonArray::start()?;
        for r in &rows {
            array.push(&EventJson::from(r))?;
        }
        return array.finish();
    }
    if rows.is_empty() {
        return outln!("No events.");
    }
    let mut t = output::table(&[
        "When",
        "Event",
        "User",
        "Session",
        "By",
        "From",
        "Reason / detail",
    ]);
    let today = Utc::now();
    for r in &rows {
        let by = match &r.actor_name {
            Some(name) => format!("{} {}", r.actor, output::escape(name)),
            None => r.actor.clone(),
        };
        let detail = describe_detail(&r.detail);
        let reason = match (&r.reason, detail.is_empty()) {
            (Some(reason), true) => reason.clone(),
            (Some(reason), false) => format!("{reason}; {detail}"),
            (None, _) => detail,
        };
        t.add_row([
            output::relative(datetime(r.at), today),
            r.event_type.clone(),
            r.user_id.map(|u| u.to_string()).unwrap_or_default(),
            r.session_id.clone().unwrap_or_default(),
            by,
            r.ip.clone().unwrap_or_default(),
            output::escape(&reason).into_owned(),
        ]);
    }
    outln!("{t}")
}

/// `{"method":"password","failure":"bad_credentials"}` → `method=password failure=bad_credentials`.
fn describe_detail(detail: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(detail) else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
