//! The `authauth` command line: one clap `Subcommand` enum (doc comments are the help), one
//! file per command group, one dispatch `match`.
//!
//! Exit codes: 0 success, 1 operation failed, 2 usage or configuration error, 3 not found.
//! Commands write through [`outln!`]/[`out!`], never `println!`: a reader that goes away
//! (`authauth … | head -1`) is then a normal end (exit 0), where `println!` would panic.

/// `println!` for commands: evaluates to `Result<(), CliError>`; a closed stdout is
/// [`CliError::StdoutClosed`] (see [`output::write`]).
macro_rules! outln {
    () => {
        $crate::cli::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for commands, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!($($arg)*))
    };
}

mod config_check;
mod events;
mod migrate;
mod output;
mod serve;
mod sessions;
mod users;
mod watch;
mod webhooks;

use std::{io::Write, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, ProcessEnv, Settings};

/// authauth — session-based authentication server.
///
/// Sessions are created on sign-in (email + password or an OpenID provider such as Google),
/// stored server-side (Redis, or the SQL database by default), validated on every request from
/// an opaque HttpOnly cookie, rotated, and revoked — by the user or by an operator.
///
/// Configuration comes from the environment and from a `.env` file in the working directory
/// (see docs/configuration.md). With no configuration at all, `authauth serve` runs a
/// development server on http://127.0.0.1:3000 with an SQLite file in the working directory.
#[derive(Debug, Parser)]
#[command(name = "authauth", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (Swagger UI at /docs, OpenAPI spec at /openapi.json).
    ///
    /// Stops gracefully on SIGINT/SIGTERM: in-flight requests finish (up to
    /// SHUTDOWN_TIMEOUT). Refuses to start while migrations are pending on a configured
    /// database; the embedded SQLite default migrates itself.
    Serve,
    /// Apply, revert or inspect database migrations.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// Print the OpenAPI 3 spec (JSON) exactly as the server serves it at /openapi.json.
    Openapi,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(config_check::ConfigCommand),
    /// List, inspect, create, disable and enable accounts.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// List and inspect live sessions; revoke them.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
    /// Read the audit trail.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// The webhook outbox: pending, failed and delivered deliveries; send failed ones again.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
}

/// What the operator commands work with: the same database, session store and services as
/// `serve`, from the same configuration.
pub struct Context {
    pub settings: crate::config::Settings,
    pub db: sea_orm::DatabaseConnection,
    pub sessions: crate::session::Sessions,
    pub auth: crate::auth::Auth,
    pub clock: crate::clock::Clock,
    /// Where the operator's actions are recorded.
    pub audit: crate::audit::Audit,
    /// The operator running the command (the audit trail's actor).
    pub operator: crate::session::service::ClientInfo,
    /// The live event feed (`sessions watch`).
    pub feed: std::sync::Arc<dyn crate::audit::feed::EventFeed>,
}

impl Context {
    /// Opens the configured data. Only `users create` may bring the embedded database into
    /// being (`creates`); every other command works on what exists.
    pub async fn open(creates: bool) -> Result<Context, CliError> {
        use crate::startup::Opener;
        let mut settings = load_settings()?;
        crate::telemetry::init_cli(settings.log_format);
        let opener = if creates {
            Opener::WritingCommand
        } else {
            Opener::ReadingCommand
        };
        let (db, store) = crate::startup::open(&mut settings, opener).await?;
        let metrics = crate::metrics::Metrics::new()
            .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot define the metrics: {e}")))?;
        // Operator actions are webhook events too: they go to the outbox, and the running
        // servers deliver them.
        let sinks = crate::audit::Sinks {
            feed: store.feed.clone(),
            webhooks: crate::webhooks::Webhooks::from_settings(settings.webhooks.as_ref()),
        };
        let audit = crate::audit::Audit::start_waiting(db.clone(), sinks, metrics.clone());
        // Operator commands send their mail at once and say whether it went.
        let mailer = crate::mail::Mailer::from_settings(&settings.mail)
            .map_err(|e| CliError::Failed(e.context("cannot set up mail")))?;
        let postman = crate::mail::Postman::direct(mailer, metrics.clone());
        let listening = std::net::SocketAddr::new(settings.host, settings.port);
        let mail = crate::auth::recovery::AccountMail::new(postman, &settings, listening).map_err(|e| {
            CliError::Failed(anyhow::anyhow!("cannot build the address of e-mailed links: {e}"))
        })?;
        let (sessions, auth) = crate::state::services(&settings, &db, &store, &metrics, &audit, mail);
        Ok(Context {
            settings,
            db,
            sessions,
            auth,
            clock: crate::clock::Clock::system(),
            audit,
            operator: crate::session::service::ClientInfo::operator(os_login()),
            feed: store.feed.clone(),
        })
    }

    /// Runs `command` on this context, then writes its audit events.
    async fn run<F, Fut>(self, command: F) -> Result<(), CliError>
    where
        F: FnOnce(Context) -> Fut,
        Fut: std::future::Future<Output = Result<(), CliError>>,
    {
        let audit = self.audit.clone();
        let result = command(self).await;
        audit.close(AUDIT_FLUSH).await;
        result
    }
}

/// How long a command waits for its audit events to reach the database before it exits.
const AUDIT_FLUSH: std::time::Duration = std::time::Duration::from_secs(10);

/// The OS account running this process, as the audit trail names an operator: the login of
/// the process's user id (`sudo` adds who ran it), or the bare id when it has no name.
fn os_login() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let name = uid.and_then(|uid| {
        std::fs::read_to_string("/etc/passwd").ok().and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?.parse::<u32>().ok()?;
                (id == uid).then(|| name.to_string())
            })
        })
    });
    let login = match (name, uid) {
        (Some(name), _) => name,
        (None, Some(uid)) => format!("uid {uid}"),
        (None, None) => std::env::var("USER").unwrap_or_else(|_| "unknown".to_string()),
    };
    match std::env::var("SUDO_USER") {
        Ok(by) if !by.is_empty() && by != login => format!("{login} (sudo by {by})"),
        _ => login,
    }
}

/// A deployment that is not ready to be used (pending migrations, no database yet) is the
/// operator's to fix: exit 2; anything else failed: exit 1.
impl From<crate::startup::StartupError> for CliError {
    fn from(e: crate::startup::StartupError) -> Self {
        use crate::startup::StartupError as E;
        match e {
            E::PendingMigrations(_) | E::NoDatabase => CliError::Config(e.to_string()),
            E::Other(e) => CliError::Failed(e),
        }
    }
}

/// A command failure, with the exit code it maps to.
#[derive(Debug)]
pub enum CliError {
    /// Exit 2: invalid configuration or usage.
    Config(String),
    /// Exit 1: the operation failed.
    Failed(anyhow::Error),
    /// Exit 3: what was asked for does not exist.
    NotFound(String),
    /// Exit 0, silently: whoever read standard output stopped (`| head`). Like `cat` ended by
    /// SIGPIPE, the command has nobody left to tell anything to.
    StdoutClosed,
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::StdoutClosed => ExitCode::SUCCESS,
            CliError::Failed(_) => ExitCode::from(1),
            CliError::Config(_) => ExitCode::from(2),
            CliError::NotFound(_) => ExitCode::from(3),
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Config(e.to_string())
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Failed(e)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Config(m) | CliError::NotFound(m) => f.write_str(m),
            // `{:#}` prints the whole cause chain on one line.
            CliError::Failed(e) => write!(f, "{e:#}"),
            CliError::StdoutClosed => f.write_str("standard output was closed"),
        }
    }
}

/// Loads `./.env` (if present; never a parent directory's) and parses the configuration.
/// Variables already set in the environment win over the file.
pub fn load_settings() -> Result<Settings, CliError> {
    let env = load_dotenv()?;
    Ok(Settings::from_vars(&env)?)
}

/// Loads `./.env` into the environment (without overriding what is set), remembering the names
/// it holds: the file is authauth's own, so a name in it that authauth does not read is worth a
/// warning even when the environment's would not be.
pub(crate) fn load_dotenv() -> Result<ProcessEnv, CliError> {
    let unreadable = |e: dotenvy::Error| CliError::Config(format!("cannot read .env: {}", dotenv_error(&e)));
    let items = match dotenvy::from_path_iter(".env") {
        Ok(items) => items,
        Err(e) if e.not_found() => return Ok(ProcessEnv::default()),
        Err(e) => return Err(unreadable(e)),
    };
    let mut dotenv = Vec::new();
    for item in items {
        let (key, _) = item.map_err(unreadable)?;
        dotenv.push(key);
    }
    dotenvy::from_path(".env").map_err(unreadable)?;
    Ok(ProcessEnv { dotenv })
}

/// What went wrong reading `.env`, without its contents. dotenvy's own message quotes what does
/// not parse — a password, say — and after an unclosed quote every line after it too, secrets
/// included: name the line's number and its variable, both read from the file, instead.
fn dotenv_error(e: &dotenvy::Error) -> String {
    let dotenvy::Error::LineParse(text, _) = e else {
        return e.to_string();
    };
    let file = std::fs::read_to_string(".env").unwrap_or_default();
    let at = match dotenv_line_of(&file, text.trim()) {
        Some((line, Some(key))) => format!("line {line} ({key})"),
        Some((line, None)) => format!("line {line}"),
        None => "a line".to_string(),
    };
    format!(
        "{at} does not parse — an unclosed quote, or a character that needs quoting \
         (quote the value with single quotes); its value is not shown"
    )
}

/// Where in `file` the text dotenvy could not parse begins — a whole line, or the value after
/// `KEY=` — as its line number and that key: only when exactly one line, not a comment, begins
/// so (else nothing, rather than a wrong line or a fragment of another value as its name).
fn dotenv_line_of(file: &str, text: &str) -> Option<(usize, Option<String>)> {
    if text.is_empty() {
        return None;
    }
    let is_key = |k: &str| {
        k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut found = Vec::new();
    let mut start = 0;
    for (number, line) in file.split('\n').enumerate() {
        let rest = file[start..].trim_start_matches([' ', '\t']);
        start += line.len() + 1;
        if rest.starts_with('#') {
            continue;
        }
        // `KEY=value` on this line (a "key" reaching past the line's end is none).
        let assignment = rest
            .split_once('=')
            .map(|(k, v)| (k.trim().trim_start_matches("export ").trim(), v))
            .filter(|(k, _)| is_key(k));
        let value = assignment.is_some_and(|(_, v)| v.trim_start_matches([' ', '\t']).starts_with(text));
        if rest.starts_with(text) || value {
            found.push((number + 1, assignment.map(|(k, _)| k.to_string())));
        }
    }
    match found.len() {
        1 => found.pop(),
        _ => None,
    }
}

/// Entry point of the binary: parse, dispatch, map the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) | Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(e) => {
            // Messages can quote stored values (a database error names the row, say). A closed
            // stderr leaves nobody to tell: the exit code still says it.
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                output::escape_lines(&e.to_string())
            );
            e.exit_code()
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve => serve::run().await,
        Command::Migrate(cmd) => migrate::run(cmd).await,
        Command::Openapi => outln!("{}", crate::api::spec_json()),
        Command::Config(cmd) => config_check::run(cmd).await,
        Command::Users(cmd) => {
            let creates = matches!(cmd, users::UsersCommand::Create { .. });
            Context::open(creates)
                .await?
                .run(|ctx| users::run(ctx, cmd))
                .await
        }
        Command::Sessions(cmd) => {
            Context::open(false)
                .await?
                .run(|ctx| sessions::run(ctx, cmd))
                .await
        }
        Command::Events(cmd) => Context::open(false).await?.run(|ctx| events::run(ctx, cmd)).await,
        Command::Webhooks(cmd) => {
            Context::open(false)
                .await?
                .run(|ctx| webhooks::run(ctx, cmd))
                .await
        }
    }
}
