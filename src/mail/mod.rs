//! Sending e-mail: an SMTP server (lettre, `SMTP_URL`) or, in development, `.eml` files in an
//! outbox folder. The server never waits for mail: [`Postman::post`] puts the message on an
//! in-memory queue, and one task sends it, retrying with backoff while the SMTP server is down.
//!
//! The queue is in memory on purpose. A message carries a live token (a reset link); written to
//! the database it would sit there readable until sent, and the database holds tokens only as
//! digests. The cost: a restart loses what was still queued — the person asks again (resend,
//! "forgot password"), which issues a new link.

pub mod messages;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use lettre::{
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use crate::{
    config::{MailSettings, MailTransport},
    metrics::Metrics,
};

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages waiting to be sent; beyond it, new ones are dropped (and counted).
const QUEUE: usize = 1000;
/// The first wait after a failed send, doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a message is retried before it is given up: its link would be close to useless.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30 * 60);

/// One message to one person.
#[derive(Debug, Clone)]
pub struct Mail {
    /// `verify_email`, `reset_password`, `reset_password_no_password`, `new_device` — the
    /// `kind` label of `authauth_mail_total`.
    pub kind: &'static str,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The link the message carries; logged only when it goes to the development outbox.
    pub link: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("this server sends no e-mail (SMTP_URL is not set)")]
    Off,
    #[error("the mail queue is full")]
    QueueFull,
    #[error("the message cannot be built: {0}")]
    Build(String),
    #[error("the mail server refused or could not be reached: {0}")]
    Send(String),
}

/// Delivers a message: over SMTP or into the outbox folder.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

impl Mailer {
    /// The mailer the settings describe; `None` when mail is off.
    pub fn from_settings(settings: &MailSettings) -> anyhow::Result<Option<Mailer>> {
        let from: Mailbox = settings.from.parse().context("MAIL_FROM is not a mailbox")?;
        let transport = match &settings.transport {
            MailTransport::Off => return Ok(None),
            MailTransport::Smtp(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .context("SMTP_URL is not a usable SMTP URL")?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
            MailTransport::Outbox(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the mail outbox {}", dir.display()))?;
                Transport::Outbox(AsyncFileTransport::new(dir), dir.clone())
            }
        };
        Ok(Some(Mailer { transport, from }))
    }

    /// Where messages go, for logs: `smtp` or the outbox folder.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "smtp".into(),
            Transport::Outbox(_, dir) => format!("outbox {}", dir.display()),
        }
    }

    /// Sends `mail` now.
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| MailError::Build(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(mail.text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(mail.html.clone()),
                    ),
            )
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message)
                    .await
                    .map_err(|e| MailError::Send(e.to_string()))?;
            }
            Transport::Outbox(files, dir) => {
                let id = files
                    .send(message)
                    .await
                    .map_err(|e| MailError::Send(e.to_string()))?;
                // Development only: the outbox is how a person without a mail server finishes
                // the flow, so the link is worth a log line here (never with SMTP).
                tracing::info!(
                    kind = mail.kind,
                    file = %dir.join(format!("{id}.eml")).display(),
                    link = mail.link.as_deref().unwrap_or(""),
                    "mail written to the outbox"
                );
            }
        }
        Ok(())
    }
}

/// Hands messages to the mailer: queued (the server), at once (operator commands, which report
/// the outcome), or nowhere (mail is off).
#[derive(Clone)]
pub struct Postman(Route);

#[derive(Clone)]
enum Route {
    Queue(mpsc::Sender<Mail>, Metrics),
    Direct(Arc<Mailer>, Metrics),
    Off,
}

impl Postman {
    /// No mail.
    pub fn off() -> Postman {
        Postman(Route::Off)
    }

    /// Sends each message at once; [`Postman::post`] returns its outcome.
    pub fn direct(mailer: Option<Mailer>, metrics: Metrics) -> Postman {
        match mailer {
            Some(m) => Postman(Route::Direct(Arc::new(m), metrics)),
            None => Postman::off(),
        }
    }

    /// Queues messages for a task that sends them, retrying while the mail server is down.
    pub fn queued(mailer: Option<Mailer>, metrics: Metrics) -> Postman {
        let Some(mailer) = mailer else {
            return Postman::off();
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(mailer, rx, metrics.clone()));
        Postman(Route::Queue(tx, metrics))
    }

    /// Whether messages go anywhere.
    pub fn enabled(&self) -> bool {
        !matches!(self.0, Route::Off)
    }

    /// Queues (or sends) `mail`. Never waits on the mail server when queued.
    pub async fn post(&self, mail: Mail) -> Result<(), MailError> {
        match &self.0 {
            Route::Off => Err(MailError::Off),
            Route::Queue(tx, metrics) => {
                let kind = mail.kind;
                tx.try_send(mail).map_err(|_| {
                    metrics.mail(kind, "dropped");
                    tracing::warn!(kind, "the mail queue is full; a message was dropped");
                    MailError::QueueFull
                })
            }
            Route::Direct(mailer, metrics) => {
                let sent = mailer.send(&mail).await;
                metrics.mail(mail.kind, if sent.is_ok() { "sent" } else { "given_up" });
                sent
            }
        }
    }
}

/// The sending task: one message at a time (they all go to the same server), each retried with
/// backoff until it is sent or [`GIVE_UP_AFTER`] passes.
async fn deliver(mailer: Mailer, mut rx: mpsc::Receiver<Mail>, metrics: Metrics) {
    tracing::debug!(to = %mailer.describe(), "mail delivery started");
    while let Some(mail) = rx.recv().await {
        let started = tokio::time::Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            match mailer.send(&mail).await {
                Ok(()) => {
                    metrics.mail(mail.kind, "sent");
                    tracing::debug!(kind = mail.kind, "mail sent");
                    break;
                }
                Err(e) if matches!(e, MailError::Build(_)) || started.elapsed() >= GIVE_UP_AFTER => {
                    metrics.mail(mail.kind, "given_up");
                    tracing::error!(kind = mail.kind, error = %e, "a message could not be sent and was given up");
                    break;
                }
                Err(e) => {
                    metrics.mail(mail.kind, "retry");
                    tracing::warn!(kind = mail.kind, error = %e, retry_in_ms = backoff.as_millis() as u64, "mail could not be sent; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
