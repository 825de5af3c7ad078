//! `authauth users list|show|create|disable|enable`.

use std::io::{IsTerminal, Read};

use anyhow::Context as _;
use chrono::Utc;
use clap::Subcommand;
use secrecy::SecretString;
use serde::Serialize;

use super::{
    output,
    sessions::{find_user, print_sessions, SessionJson},
    CliError, Context,
};
use crate::{auth::AuthError, entities::users::Model as User, error::ApiError, users};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List accounts: e-mail, name, sign-in methods, created, live sessions, status (disabled,
    /// or whether the address is verified).
    List {
        /// Only accounts whose e-mail or name contains this text (any case).
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// Print JSON (a stable format, documented in docs/operations.md).
        #[arg(long)]
        json: bool,
    },
    /// Show one account: details, linked identities, live sessions.
    Show {
        /// E-mail or user id.
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Create a local account (same rules as signup).
    ///
    /// The password is asked twice on the terminal (hidden), or read from standard input with
    /// `--password-stdin` (for scripts: `printf '%s' "$PW" | authauth users create …`).
    Create {
        #[arg(long)]
        email: String,
        /// Full name.
        #[arg(long)]
        name: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: sign-in is refused and every session ends now (reason
    /// `user_disabled`).
    Disable {
        /// E-mail or user id.
        user: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Enable a disabled account again.
    Enable {
        /// E-mail or user id.
        user: String,
    },
    /// Lift the sign-in throttle on an account: its failure counters from every network and
    /// device are cleared, so the next correct password signs in (limits on client networks,
    /// which concern every account there, stay). For an owner locked out after an attack has
    /// been dealt with; see docs/security.md for the throttle rules.
    Unlock {
        /// E-mail or user id.
        user: String,
    },
    /// Send an account a password reset link by e-mail (valid for PASSWORD_RESET_TTL, once).
    /// With --print the link is printed instead, for a support desk to hand over after it has
    /// checked who is asking; nothing is sent. Using the link ends every session of the account.
    ResetPassword {
        /// E-mail or user id.
        user: String,
        /// Print the link instead of sending it.
        #[arg(long)]
        print: bool,
    },
    /// Second factors of an account.
    Mfa {
        #[command(subcommand)]
        command: MfaCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Remove every second factor of an account (authenticator app, recovery codes) for an
    /// owner who lost them, after checking who is asking: every session ends (reason
    /// `mfa_reset`); the next sign-in needs only the password (or, under MFA_REQUIRED, sets a
    /// new factor up).
    Reset {
        /// E-mail or user id.
        user: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// An account's second factors as the CLI prints them in JSON (never a secret).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MfaJson {
    totp: bool,
    totp_enabled_at: Option<String>,
    totp_last_used_at: Option<String>,
    recovery_codes_left: u64,
    passkeys: Vec<PasskeyJson>,
}

/// A passkey as the CLI prints it (its public key is not printed).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PasskeyJson {
    id: String,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
}

/// An account as the CLI prints it in JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserJson {
    id: String,
    email: String,
    full_name: String,
    picture: Option<String>,
    methods: Vec<&'static str>,
    created_at: String,
    updated_at: String,
    disabled: bool,
    disabled_at: Option<String>,
    /// Whether the owner confirmed the address (a mailed link, a reset, or a provider).
    email_verified: bool,
    live_sessions: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdentityJson {
    issuer: String,
    subject: String,
    email: Option<String>,
    created_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserDetailJson {
    #[serde(flatten)]
    user: UserJson,
    identities: Vec<IdentityJson>,
    mfa: MfaJson,
    sessions: Vec<SessionJson>,
}

async fn describe(ctx: &Context, user: &User) -> Result<(UserJson, Vec<IdentityJson>), CliError> {
    let identities = users::identities_of(&ctx.db, user.id)
        .await
        .context("cannot read identities")?;
    let live = ctx
        .sessions
        .list_user(&user.id, ctx.clock.now())
        .await
        .context("cannot read sessions")?;
    Ok(summarise(user, identities, live.len()))
}

/// How many users' sessions `users list` counts at once.
const COUNTING_AT_ONCE: usize = 32;

/// A page of `users list`: one query for every identity of the page, and the live sessions
/// counted [`COUNTING_AT_ONCE`] users at a time — not two round trips per user in turn.
async fn describe_page(ctx: &Context, page: &[User]) -> Result<Vec<UserJson>, CliError> {
    use futures_util::{StreamExt, TryStreamExt};
    let ids: Vec<uuid::Uuid> = page.iter().map(|u| u.id).collect();
    let mut identities = users::identities_of_many(&ctx.db, &ids)
        .await
        .context("cannot read identities")?;
    let now = ctx.clock.now();
    let counts: Vec<usize> = futures_util::stream::iter(page.iter())
        .map(|user| async move { ctx.sessions.list_user(&user.id, now).await.map(|l| l.len()) })
        .buffered(COUNTING_AT_ONCE)
        .try_collect()
        .await
        .context("cannot read sessions")?;
    Ok(page
        .iter()
        .zip(counts)
        .map(|(user, live)| summarise(user, identities.remove(&user.id).unwrap_or_default(), live).0)
        .collect())
}

fn summarise(
    user: &User,
    identities: Vec<crate::entities::identities::Model>,
    live_sessions: usize,
) -> (UserJson, Vec<IdentityJson>) {
    let mut methods = Vec::new();
    if user.password_hash.is_some() {
        methods.push("password");
    }
    if !identities.is_empty() {
        methods.push("google");
    }
    let u = UserJson {
        id: user.id.to_string(),
        email: user.email.clone(),
        full_name: user.full_name.clone(),
        picture: user.picture.clone(),
        methods,
        created_at: user.created_at.to_rfc3339(),
        updated_at: user.updated_at.to_rfc3339(),
        disabled: user.disabled_at.is_some(),
        disabled_at: user.disabled_at.map(|d| d.to_rfc3339()),
        email_verified: user.email_verified_at.is_some(),
        live_sessions,
    };
    let ids = identities
        .into_iter()
        .map(|i| IdentityJson {
            issuer: i.issuer,
            subject: i.subject,
            email: i.email,
            created_at: i.created_at.to_rfc3339(),
        })
        .collect();
    (u, ids)
}

fn read_password(from_stdin: bool) -> Result<SecretString, CliError> {
    if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the password from standard input")?;
        // One trailing newline (from `echo`) is not part of the password.
        let s = s
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&s);
        return Ok(SecretString::from(s.to_string()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Config(
            "no terminal to ask for the password on: use --password-stdin".into(),
        ));
    }
    let pw = dialoguer::Password::new()
        .with_prompt("Password")
        .with_confirmation("Repeat the password", "The passwords do not match")
        .interact()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot read the password: {e}")))?;
    Ok(SecretString::from(pw))
}

pub async fn run(ctx: Context, cmd: UsersCommand) -> Result<(), CliError> {
    match cmd {
        UsersCommand::List { search, json } => {
            let mut array = if json {
                Some(output::JsonArray::start()?)
            } else {
                None
            };
            let mut table = output::table(&["EMAIL", "NAME", "METHODS", "CREATED", "SESSIONS", "STATUS"]);
            let mut after: Option<String> = None;
            let mut total = 0;
            loop {
                let page = users::list_page(&ctx.db, search.as_deref(), after.as_deref(), 500)
                    .await
                    .context("cannot read users")?;
                for (user, u) in page.iter().zip(describe_page(&ctx, &page).await?) {
                    total += 1;
                    match &mut array {
                        Some(a) => a.push(&u)?,
                        None => {
                            // Disabled (since when: `users show`), else whether the owner
                            // confirmed the address.
                            let status = match (u.disabled, u.email_verified) {
                                (true, _) => "disabled",
                                (false, true) => "verified",
                                (false, false) => "unverified",
                            };
                            table.add_row(vec![
                                u.email.clone(),
                                u.full_name.clone(),
                                u.methods.join(", "),
                                output::date(user.created_at),
                                u.live_sessions.to_string(),
                                status.to_string(),
                            ]);
                        }
                    }
                }
                match page.last() {
                    Some(last) if page.len() == 500 => after = Some(last.email.clone()),
                    _ => break,
                }
            }
            match array {
                Some(a) => a.finish()?,
                None if total == 0 => outln!("No users.")?,
                None => outln!("{table}\n{total} user{}", if total == 1 { "" } else { "s" })?,
            }
            Ok(())
        }
        UsersCommand::Show { user, json } => {
            let user = find_user(&ctx, &user).await?;
            let (u, identities) = describe(&ctx, &user).await?;
            let sessions = ctx
                .sessions
                .list_user(&user.id, ctx.clock.now())
                .await
                .context("cannot read sessions")?;
            let factors = ctx.auth.factors(user.id).await.map_err(user_error)?;
            let at = |ms: Option<i64>| ms.map(|ms| output::date(crate::session::record::datetime(ms)));
            let passkeys = ctx.auth.passkeys(user.id).await.map_err(user_error)?;
            let mfa = MfaJson {
                totp: factors.totp_enabled_at.is_some(),
                totp_enabled_at: at(factors.totp_enabled_at),
                totp_last_used_at: at(factors.totp_last_used_at),
                recovery_codes_left: factors.recovery_codes_left,
                passkeys: passkeys
                    .iter()
                    .map(|p| PasskeyJson {
                        id: p.id.to_string(),
                        name: p.name.clone(),
                        created_at: output::date(crate::session::record::datetime(p.created_at)),
                        last_used_at: at(p.last_used_at),
                    })
                    .collect(),
            };
            if json {
                output::json(&UserDetailJson {
                    user: u,
                    identities,
                    mfa,
                    sessions: sessions.iter().map(SessionJson::from).collect(),
                })?;
                return Ok(());
            }
            let mut factor_list: Vec<String> = Vec::new();
            if let Some(since) = &mfa.totp_enabled_at {
                factor_list.push(format!("authenticator app (since {since})"));
            }
            for p in &mfa.passkeys {
                factor_list.push(format!(
                    "passkey \"{}\" (since {})",
                    output::escape(&p.name),
                    p.created_at
                ));
            }
            let second_factor = if factor_list.is_empty() {
                "none".to_string()
            } else {
                format!(
                    "{}; {} recovery code(s) left",
                    factor_list.join(", "),
                    mfa.recovery_codes_left
                )
            };
            let mut t = output::table(&["FIELD", "VALUE"]);
            for (k, v) in [
                ("id", u.id.clone()),
                ("email", u.email.clone()),
                (
                    "email verified",
                    if u.email_verified { "yes" } else { "no" }.to_string(),
                ),
                ("name", u.full_name.clone()),
                ("methods", u.methods.join(", ")),
                ("second factor", second_factor),
                ("created", u.created_at.clone()),
                ("disabled", u.disabled_at.clone().unwrap_or_else(|| "no".into())),
            ] {
                t.add_row(vec![k.to_string(), v]);
            }
            outln!("{t}")?;
            if !identities.is_empty() {
                let mut t = output::table(&["ISSUER", "SUBJECT", "EMAIL", "LINKED"]);
                for i in &identities {
                    t.add_row(vec![
                        i.issuer.clone(),
                        i.subject.clone(),
                        i.email.clone().unwrap_or_default(),
                        i.created_at.clone(),
                    ]);
                }
                outln!("\nIdentities\n{t}")?;
            }
            outln!("\nLive sessions")?;
            print_sessions(&sessions)?;
            Ok(())
        }
        UsersCommand::Create {
            email,
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let user = ctx
                .auth
                .create_local_user(&email, password, &name, &ctx.operator, ctx.clock.now())
                .await
                .map_err(user_error)?;
            outln!("Created {} ({}).", user.email, user.id)?;
            Ok(())
        }
        UsersCommand::Disable { user, yes } => {
            let user = find_user(&ctx, &user).await?;
            let live = ctx
                .sessions
                .list_user(&user.id, ctx.clock.now())
                .await
                .context("cannot read sessions")?;
            output::confirm(
                yes,
                &format!(
                    "Disable {} and end their {} live session(s)?",
                    user.email,
                    live.len()
                ),
                &format!("disable {}", user.email),
            )?;
            let (user, revoked) = ctx
                .auth
                .set_user_disabled(&user, true, &ctx.operator, ctx.clock.now())
                .await
                .map_err(user_error)?;
            outln!(
                "Disabled {}; revoked {revoked} session{}.",
                user.email,
                if revoked == 1 { "" } else { "s" }
            )?;
            Ok(())
        }
        UsersCommand::Enable { user } => {
            let user = find_user(&ctx, &user).await?;
            let (user, _) = ctx
                .auth
                .set_user_disabled(&user, false, &ctx.operator, ctx.clock.now())
                .await
                .map_err(user_error)?;
            outln!("Enabled {} (at {}).", user.email, output::date(Utc::now()))?;
            Ok(())
        }
        UsersCommand::Unlock { user } => {
            let user = find_user(&ctx, &user).await?;
            let cleared = ctx
                .auth
                .unlock(&user, &ctx.operator, ctx.clock.now())
                .await
                .map_err(user_error)?;
            outln!(
                "Sign-in limits lifted for {} ({cleared} counter(s) cleared).",
                output::escape(&user.email)
            )
        }
        UsersCommand::Mfa {
            command: MfaCommand::Reset { user, yes },
        } => {
            let user = find_user(&ctx, &user).await?;
            output::confirm(
                yes,
                &format!(
                    "Remove every second factor of {} and end all their sessions?",
                    output::escape(&user.email)
                ),
                &format!("reset the second factors of {}", user.email),
            )?;
            let (had, ended) = ctx
                .auth
                .operator_reset_mfa(&user, &ctx.operator, ctx.clock.now())
                .await
                .map_err(user_error)?;
            outln!(
                "{} {}; ended {ended} session{}.",
                if had {
                    "Removed the second factors of"
                } else {
                    "No second factor to remove for"
                },
                output::escape(&user.email),
                if ended == 1 { "" } else { "s" }
            )
        }
        UsersCommand::ResetPassword { user, print } => {
            let user = find_user(&ctx, &user).await?;
            let link = ctx
                .auth
                .operator_reset(&user, print, &ctx.operator, ctx.clock.now())
                .await
                .map_err(user_error)?;
            let valid = crate::mail::messages::lifetime(ctx.settings.mail.reset_ttl);
            match link {
                Some(link) => outln!(
                    "{link}
(valid once, for {valid}; hand it only to the account's owner)"
                ),
                None => outln!(
                    "Sent a password reset link to {} (valid once, for {valid}).",
                    output::escape(&user.email)
                ),
            }
        }
    }
}

/// Input the account rules refuse (a weak password, an address or name that is not valid) is
/// a usage error (exit 2); anything else — an address already taken, a disabled account, a
/// store that failed — is an operation that could not be done (exit 1). Both carry the API's
/// message and stable code.
fn user_error(e: AuthError) -> CliError {
    use crate::users::UserError as U;
    match e {
        AuthError::Store(e) => CliError::Failed(anyhow::Error::new(e)),
        AuthError::Internal(e) => CliError::Failed(e),
        AuthError::User(U::Db(e)) => CliError::Failed(anyhow::Error::new(e)),
        e @ (AuthError::WeakPassword(_) | AuthError::User(U::InvalidEmail(_) | U::InvalidName(_))) => {
            let api = ApiError::from(e);
            CliError::Config(format!("{} ({})", api, api.code()))
        }
        other => {
            let api = ApiError::from(other);
            CliError::Failed(anyhow::anyhow!("{} ({})", api, api.code()))
        }
    }
}
