//! `authauth sessions list|show|revoke`: live sessions, straight from the session store.

use std::io::IsTerminal;

use anyhow::Context as _;
use chrono::Utc;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{output, CliError, Context};
use crate::{
    entities::users::Model as User,
    session::{
        record::{datetime, SessionRecord, Stage},
        service::reason,
    },
    users,
};

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List live sessions: all of them, or one user's. Never shows a token.
    ///
    /// The whole store is read page by page, so very large stores list without being loaded
    /// into memory at once.
    List {
        /// Only this user's sessions (e-mail or user id).
        #[arg(long, value_name = "EMAIL|ID")]
        user: Option<String>,
        /// Print JSON (a stable format, documented in docs/operations.md).
        #[arg(long)]
        json: bool,
    },
    /// Show one session by its public id.
    Show {
        /// The public session id (from `sessions list` or `GET /auth/sessions`).
        #[arg(allow_hyphen_values = true, value_parser = session_id)]
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke sessions: their next request gets 401 `session_revoked`.
    ///
    /// Choose what to revoke with session ids, `--user` (all of that user's sessions),
    /// `--user … --all-but ID` (all but one), or `--all` (every session). With no choice on a
    /// terminal, pick sessions from a list. What will be revoked is shown first and must be
    /// confirmed, unless `--yes`; without a terminal `--yes` is required.
    ///
    /// Example: authauth sessions revoke --user alice@example.com --reason "laptop stolen"
    Revoke(RevokeArgs),
    /// Follow session events live, from every server: sessions created, rotated and ended (with
    /// the reason and who ended them), sign-ins and failed sign-ins. Runs until Ctrl-C.
    ///
    /// Example: authauth sessions watch --user alice@example.com --json
    Watch {
        /// Only this user's events (e-mail or user id).
        #[arg(long, value_name = "EMAIL|ID")]
        user: Option<String>,
        /// One JSON object per line (NDJSON), flushed as each event happens.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Public id of a session to revoke. An id issued before ids began with a letter may start
    /// with `-`: give it first, or after `--`.
    // Only this first id accepts a leading `-`: clap hands every later argument to a list that
    // accepts hyphens (`--yes` included), so `ids` must not, or it would swallow the flags.
    #[arg(
        value_name = "ID",
        conflicts_with = "all",
        allow_hyphen_values = true,
        value_parser = session_id
    )]
    id: Option<String>,
    /// More public ids.
    #[arg(value_name = "ID", conflicts_with = "all")]
    ids: Vec<String>,
    /// Revoke the sessions of this user (e-mail or user id).
    #[arg(long, value_name = "EMAIL|ID", conflicts_with_all = ["id", "ids", "all"])]
    user: Option<String>,
    /// With --user: keep this session, revoke the others.
    #[arg(
        long,
        value_name = "ID",
        requires = "user",
        allow_hyphen_values = true,
        value_parser = session_id
    )]
    all_but: Option<String>,
    /// Revoke every session of every user (page by page: memory stays bounded whatever the
    /// size of the store).
    #[arg(long, conflicts_with_all = ["id", "ids"])]
    all: bool,
    /// Why, in your words: kept in the tombstone, so the signed-out client's next request gets
    /// it (401 `session_revoked`, field `note`).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// A session id argument. Ids issued before public ids began with a letter may start with `-`,
/// so those arguments accept a leading hyphen; anything else that starts with one is a mistyped
/// flag, not an id, and gets a usage error instead of "not found".
fn session_id(value: &str) -> Result<String, String> {
    if value.starts_with('-') && SessionRecord::slot_of_public_id(value).is_none() {
        return Err("not a flag of this command, nor a session id".into());
    }
    Ok(value.to_string())
}

/// A session as the CLI prints it in JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionJson {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub method: &'static str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    pub absolute_expires_at: String,
    /// The methods its sign-in used (`pwd`, `google`, `otp`, `recovery_code`, `hwk`).
    pub amr: Vec<&'static str>,
    /// 2 once a second factor was given, else 1.
    pub aal: u8,
    /// `complete`, or a sign-in still waiting: `second_factor`, `enrolment`.
    pub stage: &'static str,
    /// When its owner last proved who they are (sign-in or re-authentication).
    pub authenticated_at: String,
}

impl From<&SessionRecord> for SessionJson {
    fn from(r: &SessionRecord) -> Self {
        SessionJson {
            id: r.public_id.clone(),
            user_id: r.user_id.to_string(),
            email: r.user.email.clone(),
            method: r.method.as_str(),
            ip: r.ip.clone(),
            user_agent: r.user_agent.clone(),
            created_at: datetime(r.created_at).to_rfc3339(),
            last_seen_at: datetime(r.last_seen_at).to_rfc3339(),
            expires_at: datetime(r.expires_at()).to_rfc3339(),
            absolute_expires_at: datetime(r.absolute_expires_at).to_rfc3339(),
            amr: r.amr().iter().map(|m| m.as_str()).collect(),
            aal: r.aal(),
            stage: r.stage.as_str(),
            authenticated_at: datetime(r.authenticated_at()).to_rfc3339(),
        }
    }
}

const SESSION_HEADERS: [&str; 7] = [
    "ID",
    "USER",
    "SIGN-IN",
    "IP",
    "USER AGENT",
    "CREATED",
    "LAST SEEN / EXPIRES",
];

/// How a session signed in, for a table: its methods and level (`pwd+otp aal2`), and what a
/// sign-in still waits for.
fn sign_in(r: &SessionRecord) -> String {
    let amr: Vec<&str> = r.amr().iter().map(|m| m.as_str()).collect();
    let mut out = format!("{} aal{}", amr.join("+"), r.aal());
    match r.stage {
        Stage::Complete => {}
        Stage::SecondFactor => out.push_str(" (waiting for a second factor)"),
        Stage::Enrolment => out.push_str(" (must enrol a second factor)"),
    }
    out
}

/// A table row for a session.
pub fn session_row(r: &SessionRecord) -> Vec<String> {
    let now = Utc::now();
    vec![
        r.public_id.clone(),
        r.user.email.clone(),
        sign_in(r),
        r.ip.clone().unwrap_or_else(|| "-".into()),
        output::shorten(r.user_agent.as_deref().unwrap_or("-"), 32),
        output::date(datetime(r.created_at)),
        format!(
            "{} / {}",
            output::relative(datetime(r.last_seen_at), now),
            output::relative(datetime(r.expires_at()), now)
        ),
    ]
}

/// Prints sessions as a table (or nothing but a note when there are none).
pub fn print_sessions(sessions: &[SessionRecord]) -> Result<(), CliError> {
    if sessions.is_empty() {
        return outln!("No live sessions.");
    }
    outln!("{}", sessions_table(sessions))
}

fn sessions_table(sessions: &[SessionRecord]) -> output::Table {
    let mut t = output::table(&SESSION_HEADERS);
    for r in sessions {
        t.add_row(session_row(r));
    }
    t
}

pub async fn find_user(ctx: &Context, who: &str) -> Result<User, CliError> {
    users::find_by_email_or_id(&ctx.db, who)
        .await
        .context("cannot read users")?
        .ok_or_else(|| CliError::NotFound(format!("no user `{who}`")))
}

const PAGE: usize = 1000;

pub async fn run(ctx: Context, cmd: SessionsCommand) -> Result<(), CliError> {
    match cmd {
        SessionsCommand::List {
            user: Some(who),
            json,
        } => {
            let user = find_user(&ctx, &who).await?;
            let sessions = ctx
                .sessions
                .list_user(&user.id, ctx.clock.now())
                .await
                .context("cannot read sessions")?;
            if json {
                output::json(&sessions.iter().map(SessionJson::from).collect::<Vec<_>>())?;
            } else {
                print_sessions(&sessions)?;
            }
            Ok(())
        }
        SessionsCommand::List { user: None, json } => list_all(&ctx, json).await,
        SessionsCommand::Show { id, json } => {
            let r = ctx
                .sessions
                .find(&id, ctx.clock.now())
                .await
                .context("cannot read sessions")?
                .ok_or_else(|| CliError::NotFound(format!("no live session `{id}`")))?;
            if json {
                output::json(&SessionJson::from(&r))?;
            } else {
                let now = Utc::now();
                let mut t = output::table(&["FIELD", "VALUE"]);
                for (k, v) in [
                    ("id", r.public_id.clone()),
                    ("user", format!("{} ({})", r.user.email, r.user_id)),
                    ("method", r.method.as_str().into()),
                    ("ip", r.ip.clone().unwrap_or_else(|| "-".into())),
                    ("user agent", r.user_agent.clone().unwrap_or_else(|| "-".into())),
                    ("created", datetime(r.created_at).to_rfc3339()),
                    (
                        "last seen",
                        format!(
                            "{} ({})",
                            datetime(r.last_seen_at).to_rfc3339(),
                            output::relative(datetime(r.last_seen_at), now)
                        ),
                    ),
                    (
                        "expires (idle)",
                        format!(
                            "{} ({})",
                            datetime(r.expires_at()).to_rfc3339(),
                            output::relative(datetime(r.expires_at()), now)
                        ),
                    ),
                    ("expires (absolute)", datetime(r.absolute_expires_at).to_rfc3339()),
                ] {
                    t.add_row(vec![k.to_string(), v]);
                }
                outln!("{t}")?;
            }
            Ok(())
        }
        SessionsCommand::Revoke(args) => revoke(&ctx, args).await,
        SessionsCommand::Watch { user, json } => super::watch::run(&ctx, user, json).await,
    }
}

async fn list_all(ctx: &Context, json: bool) -> Result<(), CliError> {
    let now = ctx.clock.now();
    let mut cursor = None;
    let mut total = 0usize;
    let mut array = if json {
        Some(output::JsonArray::start()?)
    } else {
        None
    };
    loop {
        let page = ctx
            .sessions
            .store()
            .list_page(cursor, PAGE, now)
            .await
            .context("cannot read sessions")?;
        // Memory stays bounded by the page. (On Redis, SCAN may return a user twice while the
        // keyspace is being rehashed; duplicates are dropped within a page.)
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<&SessionRecord> = page
            .sessions
            .iter()
            .filter(|r| seen.insert(r.public_id.as_str()))
            .collect();
        total += fresh.len();
        match &mut array {
            Some(a) => {
                for r in &fresh {
                    a.push(&SessionJson::from(*r))?;
                }
            }
            None if !fresh.is_empty() => {
                let mut t = output::table(&SESSION_HEADERS);
                for r in &fresh {
                    t.add_row(session_row(r));
                }
                outln!("{t}")?;
            }
            None => {}
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    match array {
        Some(a) => a.finish()?,
        None => outln!("{total} live session{}", if total == 1 { "" } else { "s" })?,
    }
    Ok(())
}

/// What a revocation will touch: (user, sessions), grouped by user.
type Plan = Vec<(uuid::Uuid, Vec<SessionRecord>)>;

async fn plan(ctx: &Context, args: &RevokeArgs) -> Result<Plan, CliError> {
    let now = ctx.clock.now();
    let mut plan: Plan = Vec::new();
    let mut add = |r: SessionRecord| match plan.iter_mut().find(|(u, _)| *u == r.user_id) {
        Some((_, v)) => v.push(r),
        None => plan.push((r.user_id, vec![r])),
    };
    if let Some(who) = &args.user {
        let user = find_user(ctx, who).await?;
        let sessions = ctx
            .sessions
            .list_user(&user.id, now)
            .await
            .context("cannot read sessions")?;
        if let Some(keep) = &args.all_but {
            if !sessions.iter().any(|s| &s.public_id == keep) {
                return Err(CliError::NotFound(format!(
                    "`{}` has no live session `{keep}`",
                    user.email
                )));
            }
        }
        for s in sessions
            .into_iter()
            .filter(|s| Some(&s.public_id) != args.all_but.as_ref())
        {
            add(s);
        }
    } else {
        for id in &args.ids {
            let s = ctx
                .sessions
                .find(id, now)
                .await
                .context("cannot read sessions")?
                .ok_or_else(|| CliError::NotFound(format!("no live session `{id}`")))?;
            add(s);
        }
    }
    Ok(plan)
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// `sessions revoke --all`: every live session, page by page. Memory is bounded by a page and
/// time grows with the number of sessions: each page's users are revoked (one atomic
/// revocation per user) as the page is read, never collected store-wide first.
async fn revoke_everything(ctx: &Context, args: &RevokeArgs) -> Result<(), CliError> {
    let now = ctx.clock.now();
    let store = ctx.sessions.store();
    let mut count = 0usize;
    let mut cursor = None;
    loop {
        let page = store
            .list_page(cursor, PAGE, now)
            .await
            .context("cannot read sessions")?;
        count += page.sessions.len();
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    if count == 0 {
        return outln!("No live session matches; nothing was revoked.");
    }
    output::confirm(
        args.yes,
        &format!("Revoke every live session ({count}), of every user?"),
        &format!("revoke all {count} session(s)"),
    )?;
    let mut revoked = 0;
    let mut cursor = None;
    loop {
        let page = store
            .list_page(cursor, PAGE, now)
            .await
            .context("cannot read sessions")?;
        let users: std::collections::BTreeSet<uuid::Uuid> = page.sessions.iter().map(|s| s.user_id).collect();
        for user_id in users {
            revoked += ctx
                .sessions
                .revoke_user(
                    &user_id,
                    None,
                    reason::OPERATOR,
                    args.reason.clone(),
                    &ctx.operator,
                    now,
                )
                .await
                .context("revocation failed")?
                .len();
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    outln!(
        "Revoked {revoked} session{}.",
        if revoked == 1 { "" } else { "s" }
    )
}

/// On a terminal with nothing chosen: pick sessions from a list.
async fn pick(ctx: &Context) -> Result<Vec<String>, CliError> {
    let page = ctx
        .sessions
        .store()
        .list_page(None, PAGE, ctx.clock.now())
        .await
        .context("cannot read sessions")?;
    if page.sessions.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<String> = page
        .sessions
        .iter()
        .map(|r| output::escape(&session_row(r).join("  ")).into_owned())
        .collect();
    let chosen = dialoguer::MultiSelect::new()
        .with_prompt("Sessions to revoke (space selects, enter confirms)")
        .items(&items)
        .interact()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot read the selection: {e}")))?;
    Ok(chosen
        .into_iter()
        .map(|i| page.sessions[i].public_id.clone())
        .collect())
}

async fn revoke(ctx: &Context, mut args: RevokeArgs) -> Result<(), CliError> {
    if let Some(first) = args.id.take() {
        args.ids.insert(0, first);
    }
    if args.ids.is_empty() && args.user.is_none() && !args.all {
        if !interactive() {
            return Err(CliError::Config(
                "nothing to revoke: give session ids, --user EMAIL|ID or --all (see `authauth help sessions revoke`)".into(),
            ));
        }
        args.ids = pick(ctx).await?;
        if args.ids.is_empty() {
            outln!("Nothing selected; nothing was revoked.")?;
            return Ok(());
        }
    }
    if args.all {
        return revoke_everything(ctx, &args).await;
    }
    let plan = plan(ctx, &args).await?;
    let count: usize = plan.iter().map(|(_, s)| s.len()).sum();
    if count == 0 {
        outln!("No live session matches; nothing was revoked.")?;
        return Ok(());
    }
    let all: Vec<SessionRecord> = plan.iter().flat_map(|(_, s)| s.iter().cloned()).collect();
    if !args.yes {
        // With the question, on the terminal that answers it (stdout may be a file or a pipe).
        eprintln!(
            "These {count} session(s) will be revoked:\n{}",
            sessions_table(&all)
        );
    }
    output::confirm(
        args.yes,
        &format!("Revoke {count} session(s)?"),
        &format!("revoke {count} session(s)"),
    )?;
    let now = ctx.clock.now();
    let mut revoked = 0;
    for (user_id, sessions) in &plan {
        if args.user.is_some() {
            // One atomic revocation per user (all, or all but one).
            let except = args.all_but.as_deref();
            revoked += ctx
                .sessions
                .revoke_user(
                    user_id,
                    except,
                    reason::OPERATOR,
                    args.reason.clone(),
                    &ctx.operator,
                    now,
                )
                .await
                .context("revocation failed")?
                .len();
        } else {
            for s in sessions {
                if ctx
                    .sessions
                    .revoke_one(
                        user_id,
                        &s.public_id,
                        reason::OPERATOR,
                        args.reason.clone(),
                        &ctx.operator,
                        now,
                    )
                    .await
                    .context("revocation failed")?
                {
                    revoked += 1;
                }
            }
        }
    }
    outln!(
        "Revoked {revoked} session{}.",
        if revoked == 1 { "" } else { "s" }
    )?;
    Ok(())
}
