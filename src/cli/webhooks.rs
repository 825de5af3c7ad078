//! `authauth webhooks list|retry`: the webhook outbox — what is pending, delivered or given up.

use anyhow::Context as _;
use chrono::Utc;
use clap::Subcommand;
use serde::Serialize;

use super::{output, CliError, Context};
use crate::{
    session::record::datetime,
    webhooks::outbox::{self, Delivery, State},
};

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List webhook deliveries, newest first: pending (with the next attempt and the last
    /// error), failed (given up after every retry) or delivered.
    List {
        /// Which deliveries.
        #[arg(long, value_enum, default_value_t = State::Pending)]
        state: State,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        limit: u64,
        /// Print JSON (an array).
        #[arg(long)]
        json: bool,
    },
    /// Send failed deliveries again (the given ids, or all of them with --failed): they are due
    /// at once and get every retry afresh. The running servers deliver them.
    Retry {
        /// Delivery ids (from `webhooks list --state failed`).
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        ids: Vec<i64>,
        /// Every failed delivery.
        #[arg(long)]
        failed: bool,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryJson {
    id: i64,
    webhook_id: String,
    url: String,
    #[serde(rename = "type")]
    kind: String,
    state: &'static str,
    attempts: i32,
    created_at: String,
    next_attempt_at: Option<String>,
    delivered_at: Option<String>,
    failed_at: Option<String>,
    last_status: Option<i32>,
    last_error: Option<String>,
}

fn state_name(d: &Delivery) -> &'static str {
    match d.state() {
        State::Delivered => "delivered",
        State::Failed => "failed",
        _ => "pending",
    }
}

fn rfc3339(ms: i64) -> String {
    datetime(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl From<&Delivery> for DeliveryJson {
    fn from(d: &Delivery) -> Self {
        let pending = d.state() == State::Pending;
        DeliveryJson {
            id: d.id,
            webhook_id: d.message_id.clone(),
            url: crate::config::redact_url(&d.url),
            kind: d.event_type.clone(),
            state: state_name(d),
            attempts: d.attempts,
            created_at: rfc3339(d.created_at),
            next_attempt_at: pending.then(|| rfc3339(d.next_attempt_at)),
            delivered_at: d.delivered_at.map(rfc3339),
            failed_at: d.failed_at.map(rfc3339),
            last_status: d.last_status,
            last_error: d.last_error.clone(),
        }
    }
}

pub async fn run(ctx: Context, cmd: WebhooksCommand) -> Result<(), CliError> {
    match cmd {
        WebhooksCommand::List { state, limit, json } => {
            let rows = outbox::list(&ctx.db, state, limit)
                .await
                .context("cannot read the webhook outbox")?;
            if json {
                let mut array = output::JsonArray::start()?;
                for d in &rows {
                    array.push(&DeliveryJson::from(d))?;
                }
                return array.finish();
            }
            if rows.is_empty() {
                return outln!(
                    "No {} deliveries.",
                    format!("{state:?}").to_lowercase().replace("all", "webhook")
                );
            }
            let now = Utc::now();
            let mut t = output::table(&[
                "Id",
                "Event",
                "Receiver",
                "State",
                "Attempts",
                "Next / done",
                "Last error",
            ]);
            for d in &rows {
                let when = match (d.delivered_at, d.failed_at) {
                    (Some(at), _) | (None, Some(at)) => output::relative(datetime(at), now),
                    (None, None) => output::relative(datetime(d.next_attempt_at), now),
                };
                t.add_row([
                    d.id.to_string(),
                    d.event_type.clone(),
                    output::escape(&crate::config::redact_url(&d.url)).into_owned(),
                    state_name(d).to_string(),
                    d.attempts.to_string(),
                    when,
                    output::escape(d.last_error.as_deref().unwrap_or("")).into_owned(),
                ]);
            }
            outln!("{t}")
        }
        WebhooksCommand::Retry { ids, failed: _ } => {
            let n = outbox::retry(&ctx.db, &ids, ctx.clock.now())
                .await
                .context("cannot update the webhook outbox")?;
            if n == 0 {
                return Err(CliError::NotFound("no failed delivery to retry".into()));
            }
            let mut event = crate::audit::Event::new(
                crate::audit::kind::WEBHOOKS_RETRIED,
                &ctx.operator,
                ctx.clock.now(),
            )
            .detail("count", n);
            if !ids.is_empty() {
                event = event.detail("ids", ids.clone());
            }
            ctx.audit.record(event).await;
            outln!("{n} deliver{} queued again.", if n == 1 { "y" } else { "ies" })
        }
    }
}
