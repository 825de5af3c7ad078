//! `authauth sessions watch`: a live line for every session event — created, rotated, ended
//! (with the reason and who ended it), failed and throttled sign-ins — from every server, as it
//! happens. It follows the live event feed (a Redis stream, or the audit table with the SQL
//! store), keeps going through a store outage, and stops cleanly on Ctrl-C.

use std::{io::Write, time::Duration};

use super::{output, sessions::find_user, CliError, Context};
use crate::audit::{feed::FeedEvent, kind};

/// The event types `sessions watch` shows.
const SHOWN: [&str; 6] = [
    kind::SESSION_CREATED,
    kind::SESSION_ROTATED,
    kind::SESSION_ENDED,
    kind::SIGN_IN_FAILED,
    kind::SIGN_IN_THROTTLED,
    kind::SIGN_IN_SUCCEEDED,
];

pub async fn run(ctx: &Context, user: Option<String>, json: bool) -> Result<(), CliError> {
    let user = match user {
        Some(who) => Some(find_user(ctx, &who).await?.id.to_string()),
        None => None,
    };
    let feed = ctx.feed.clone();
    let follow = async {
        let mut cursor: Option<String> = None;
        let mut lost = false;
        loop {
            let step = async {
                let at = match &cursor {
                    Some(c) => c.clone(),
                    None => feed.tail().await?,
                };
                feed.read_after(&at).await
            };
            match step.await {
                Ok((events, next)) => {
                    if lost {
                        eprintln!("authauth: the event feed answers again; watching");
                        lost = false;
                    } else if cursor.is_none() {
                        eprintln!("authauth: watching session events from every server (Ctrl-C to stop)");
                    }
                    cursor = Some(next);
                    for event in events.iter().filter(|e| SHOWN.contains(&e.kind.as_str())) {
                        if user.is_some() && event.user_id != user {
                            continue;
                        }
                        print(event, json)?;
                    }
                }
                Err(e) => {
                    if !lost {
                        eprintln!("authauth: lost the event feed ({}); retrying", e.chain());
                        lost = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    };
    tokio::select! {
        result = follow => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// One line, flushed at once (a pipe gets it as soon as a terminal would).
fn print(event: &FeedEvent, json: bool) -> Result<(), CliError> {
    if json {
        let line = serde_json::to_string(event)
            .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot write JSON: {e}")))?;
        outln!("{line}")?;
    } else {
        let mut line = format!("{}  {:<18}", event.at, event.kind);
        let mut field = |name: &str, value: Option<&str>| {
            if let Some(v) = value {
                line.push_str(&format!("  {name}={}", output::escape(v)));
            }
        };
        field("user", event.user_id.as_deref());
        field("session", event.session_id.as_deref());
        field("reason", event.reason.as_deref());
        let by = match &event.operator {
            Some(name) => format!("{} {name}", event.actor),
            None => event.actor.clone(),
        };
        field("by", Some(&by));
        field("ip", event.ip.as_deref());
        for key in ["method", "failure", "message"] {
            field(key, event.detail.get(key).and_then(|v| v.as_str()));
        }
        outln!("{line}")?;
    }
    std::io::stdout()
        .flush()
        .map_err(|e| CliError::Failed(anyhow::Error::new(e).context("cannot write to standard output")))
}
