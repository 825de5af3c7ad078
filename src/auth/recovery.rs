//! Accounts people can recover: e-mail verification, password reset by e-mail, and new-device
//! alerts with a "this wasn't me" link. Every link carries a token from [`super::tokens`]: stored
//! as a digest, single use, expiring; opening a link (a GET, a mail scanner) consumes nothing —
//! only the POST that acts on it does.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{
    password, throttle,
    tokens::{self, Extra, Purpose},
    Auth, AuthError,
};
use crate::{
    audit::{kind, Event},
    config::MailSettings,
    entities::users::Model as User,
    mail::{messages, Mail, Postman},
    session::{
        record::{datetime, Millis, SessionRecord, SignInMethod},
        service::{reason, ClientInfo, Issued},
    },
    users,
};

/// How the account features reach people: the postman, the links' lifetimes and addresses.
#[derive(Clone)]
pub struct AccountMail {
    pub postman: Postman,
    pub settings: MailSettings,
    /// The origin the hosted pages are served on (`PUBLIC_URL`, or the listening address).
    pub base: Url,
}

/// Which page a link opens.
#[derive(Debug, Clone, Copy)]
pub enum Link {
    VerifyEmail,
    ResetPassword,
    ReportSignIn,
}

impl Link {
    /// The hosted page's path.
    pub fn path(self) -> &'static str {
        match self {
            Link::VerifyEmail => "/verify-email",
            Link::ResetPassword => "/reset-password",
            Link::ReportSignIn => "/report-sign-in",
        }
    }
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl AccountMail {
    /// The account mail a server or an operator command uses: links on `PUBLIC_URL`, or on
    /// `listening` (the address the server is bound to; the configured one for the CLI).
    pub fn new(
        postman: Postman,
        settings: &crate::config::Settings,
        listening: std::net::SocketAddr,
    ) -> Result<Self, url::ParseError> {
        let base = match &settings.public_url {
            Some(u) => u.clone(),
            None => Url::parse(&crate::config::local_origin(listening.ip(), listening.port()))?,
        };
        Ok(AccountMail {
            postman,
            settings: settings.mail.clone(),
            base,
        })
    }

    /// No mail at all (the seeder, tests of other things).
    pub fn off(settings: MailSettings, base: Url) -> Self {
        AccountMail {
            postman: Postman::off(),
            settings,
            base,
        }
    }

    /// The address of a link carrying `token`.
    pub fn link(&self, which: Link, token: &str) -> String {
        let configured = match which {
            Link::VerifyEmail => &self.settings.verify_url,
            Link::ResetPassword => &self.settings.reset_url,
            Link::ReportSignIn => &self.settings.report_url,
        };
        let mut url = configured.clone().unwrap_or_else(|| {
            let mut u = self.base.clone();
            u.set_path(which.path());
            u
        });
        url.query_pairs_mut().clear().append_pair("token", token);
        url.to_string()
    }
}

/// What a "this wasn't me" link is about, stored with its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportedSignIn {
    /// RFC 3339.
    pub at: String,
    /// A readable browser and system, from the `User-Agent`.
    pub device: String,
    pub ip: Option<String>,
    pub method: String,
}

/// What a used "this wasn't me" link did.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    /// The account, so the page can offer a password reset.
    pub user: User,
    /// Whether the session was still live and ended now (false: it had already ended).
    pub session_ended: bool,
}

impl Auth {
    /// Mails `user` a verification link. `by`: `signup` or `resend`.
    pub async fn send_verification(
        &self,
        user: &User,
        by: &'static str,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<(), AuthError> {
        let mail = &self.mail;
        if !mail.postman.enabled() {
            return Err(AuthError::MailOff);
        }
        let ttl = mail.settings.verification_ttl;
        let (token, _) = tokens::issue(
            &self.db,
            user,
            Purpose::VerifyEmail,
            millis(ttl),
            Extra::default(),
            now,
        )
        .await?;
        let link = mail.link(Link::VerifyEmail, &token);
        self.post(messages::verify_email(&user.email, &link, ttl)).await;
        self.audit(
            Event::new(kind::EMAIL_VERIFICATION_SENT, client, now)
                .user(user.id)
                .detail("by", by),
        )
        .await;
        Ok(())
    }

    async fn post(&self, mail: Mail) {
        let kind = mail.kind;
        if let Err(e) = self.mail.postman.post(mail).await {
            tracing::warn!(kind, error = %e, "a message could not be handed to the mailer");
        }
    }

    /// `POST /auth/email/verify/resend`: a new verification link for the signed-in account.
    pub async fn resend_verification(
        &self,
        current: &SessionRecord,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<(), AuthError> {
        let user = users::find_by_id(&self.db, current.user_id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if user.email_verified_at.is_some() {
            return Err(AuthError::AlreadyVerified);
        }
        if !self.mail.postman.enabled() {
            return Err(AuthError::MailOff);
        }
        if let Some(retry_after) =
            throttle::verification_resend(self.attempts.as_ref(), &user.id.to_string(), now).await?
        {
            return Err(AuthError::Throttled {
                retry_after,
                what: "confirmation links sent",
            });
        }
        self.send_verification(&user, "resend", client, now).await
    }

    /// A sign-in refused for an unverified address (`REQUIRE_VERIFIED_EMAIL`) sends a fresh link,
    /// within the resend limit; beyond it, silently none.
    pub(super) async fn resend_on_refusal(&self, user: &User, client: &ClientInfo, now: Millis) {
        match throttle::verification_resend(self.attempts.as_ref(), &user.id.to_string(), now).await {
            Ok(None) => {
                if let Err(e) = self.send_verification(user, "sign_in", client, now).await {
                    tracing::warn!(user = %user.id, error = %e, "cannot send the verification link");
                }
            }
            Ok(Some(_)) => {}
            Err(e) => {
                tracing::warn!(user = %user.id, error = %e.chain(), "cannot count a verification resend")
            }
        }
    }

    /// `POST /auth/email/verify`: the owner of the address confirms it with the link's token.
    pub async fn verify_email(
        &self,
        token: &str,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<User, AuthError> {
        let found = tokens::find_live(&self.db, Purpose::VerifyEmail, token, now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let user = users::find_by_id(&self.db, found.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        // The link proves the mailbox it was sent to, and only that one.
        if !found.email.eq_ignore_ascii_case(&user.email) {
            return Err(AuthError::InvalidToken);
        }
        if !tokens::consume(&self.db, &found, now).await? {
            return Err(AuthError::InvalidToken);
        }
        let user = users::mark_email_verified(&self.db, &user).await?;
        tokens::consume_all(&self.db, user.id, Purpose::VerifyEmail, now).await?;
        self.refresh_sessions(&user, now).await;
        self.audit(Event::new(kind::EMAIL_VERIFIED, client, now).user(user.id))
            .await;
        tracing::info!(user = %user.id, "e-mail address verified");
        Ok(user)
    }

    /// `POST /auth/password/forgot`: the same answer, after the same work, whether or not an
    /// account has the address. What differs — issuing a token and queueing the mail — happens
    /// after the answer, in a task of its own.
    pub async fn forgot_password(
        &self,
        email: &str,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<(), AuthError> {
        if !self.mail.postman.enabled() {
            return Err(AuthError::MailOff);
        }
        // Whether a string is an address says nothing about any account: refused as such
        // (400 `invalid_email`), like at sign-up.
        let email = users::parse_email(email)?;
        if let Some(retry_after) = throttle::mail_request(
            self.attempts.as_ref(),
            email.canonical(),
            client.ip.as_deref(),
            now,
        )
        .await?
        {
            return Err(AuthError::Throttled {
                retry_after,
                what: "requests for e-mail",
            });
        }
        let user = users::find_by_email(&self.db, &email).await?;
        let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
            return Ok(());
        };
        let auth = self.clone();
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = auth.mail_reset(&user, &client, now).await {
                tracing::warn!(user = %user.id, error = %e, "cannot send a password reset message");
            }
        });
        Ok(())
    }

    /// Issues a reset link for `user` and mails it — or, for an account without a password,
    /// mails how it signs in instead.
    async fn mail_reset(&self, user: &User, client: &ClientInfo, now: Millis) -> Result<(), AuthError> {
        let sent = if user.password_hash.is_some() {
            let link = self.reset_link(user, now).await?;
            self.post(messages::reset_password(
                &user.email,
                &link,
                self.mail.settings.reset_ttl,
            ))
            .await;
            "link"
        } else {
            let providers: Vec<String> = users::identities_of(&self.db, user.id)
                .await?
                .iter()
                .map(|i| provider_name(&i.issuer))
                .collect();
            self.post(messages::reset_without_password(&user.email, &providers))
                .await;
            "no_password"
        };
        self.audit(
            Event::new(kind::PASSWORD_RESET_REQUESTED, client, now)
                .user(user.id)
                .detail("sent", sent),
        )
        .await;
        Ok(())
    }

    /// A new reset link for `user` (also what `authauth users reset-password --print` shows).
    pub async fn reset_link(&self, user: &User, now: Millis) -> Result<String, AuthError> {
        let ttl = millis(self.mail.settings.reset_ttl);
        let (token, _) =
            tokens::issue(&self.db, user, Purpose::ResetPassword, ttl, Extra::default(), now).await?;
        Ok(self.mail.link(Link::ResetPassword, &token))
    }

    /// `authauth users reset-password`: mails `user` a reset link now (`print`: returns it
    /// instead, for a support desk to hand over). Returns the link when printed.
    pub async fn operator_reset(
        &self,
        user: &User,
        print: bool,
        by: &ClientInfo,
        now: Millis,
    ) -> Result<Option<String>, AuthError> {
        if user.password_hash.is_none() {
            return Err(AuthError::NoPassword);
        }
        if print {
            let link = self.reset_link(user, now).await?;
            self.audit(
                Event::new(kind::PASSWORD_RESET_REQUESTED, by, now)
                    .user(user.id)
                    .detail("sent", "printed"),
            )
            .await;
            return Ok(Some(link));
        }
        if !self.mail.postman.enabled() {
            return Err(AuthError::MailOff);
        }
        let link = self.reset_link(user, now).await?;
        let mail = messages::reset_password(&user.email, &link, self.mail.settings.reset_ttl);
        self.mail
            .postman
            .post(mail)
            .await
            .map_err(|e| AuthError::Internal(anyhow::Error::new(e)))?;
        self.audit(
            Event::new(kind::PASSWORD_RESET_REQUESTED, by, now)
                .user(user.id)
                .detail("sent", "link"),
        )
        .await;
        Ok(None)
    }

    /// Whether `token` is a live reset link (for the page a link opens: reads only).
    pub async fn reset_token_is_live(&self, token: &str, now: Millis) -> Result<bool, AuthError> {
        Ok(tokens::find_live(&self.db, Purpose::ResetPassword, token, now)
            .await?
            .is_some())
    }

    /// `POST /auth/password/reset`: a new password with the link's token.
    ///
    /// The new password is checked (length, breached list) and hashed *before* the token is
    /// touched, so a refused password leaves the link working. Every session of the account
    /// ends (`password_reset`). Then, in one transaction, the token is used (a conditional
    /// update: one winner), every other reset token of the user dies, the password changes and
    /// the address counts as verified (the link proved the mailbox) — the first proof of it
    /// removes the second factors set up before. Then the sessions end again (any sign-in that
    /// raced the change), the limits on the account's password failures are lifted, and the
    /// caller gets a brand-new session.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: SecretString,
        client: &ClientInfo,
        replaces: &[SessionRecord],
        now: Millis,
    ) -> Result<(User, Issued), AuthError> {
        use sea_orm::TransactionTrait;
        let found = tokens::find_live(&self.db, Purpose::ResetPassword, token, now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let user = users::find_by_id(&self.db, found.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if user.disabled_at.is_some() {
            return Err(AuthError::Disabled);
        }
        password::check_new(new_password.expose_secret(), &user.email)?;
        let hash = self.hasher.hash(new_password).await?;
        // Sessions end before anything changes, so a store that cannot revoke leaves the
        // password and the link as they were (503, try again) — never a new password beside
        // sessions that should have ended. They end again after the change, with any sign-in
        // that raced it (which also fails its own re-check, see `still_valid`).
        self.revoke_all_with_retry(&user.id, reason::PASSWORD_RESET, client, now)
            .await?;
        let txn = self.db.begin().await?;
        if !tokens::consume(&txn, &found, now).await? {
            return Err(AuthError::InvalidToken);
        }
        tokens::consume_all(&txn, user.id, Purpose::ResetPassword, now).await?;
        // The first proof of the mailbox (pre-hijacking defence, as when a provider links an
        // unverified account): second factors set up before it were set up by whoever signed
        // up with the address, who may not own it, and a passkey alone signs in. An account
        // whose owner proved the address before keeps its factors: a reset proves the mailbox,
        // never the second factor.
        let factors_removed = if user.email_verified_at.is_none() {
            super::mfa::delete_factors(&txn, user.id).await?
        } else {
            false
        };
        let user = users::set_password_hash(&txn, &user, hash).await?;
        let user = users::mark_email_verified(&txn, &user).await?;
        txn.commit().await?;
        self.audit(
            Event::new(kind::PASSWORD_RESET, client, now)
                .user(user.id)
                .detail("factors_removed", factors_removed),
        )
        .await;
        self.revoke_all_with_retry(&user.id, reason::PASSWORD_RESET, client, now)
            .await?;
        if let Err(e) = throttle::unlock_passwords(self.attempts.as_ref(), &user.email_canonical).await {
            tracing::warn!(user = %user.id, error = %e.chain(), "cannot lift the sign-in throttle after a reset");
        }
        tracing::info!(user = %user.id, "password reset by e-mail; all sessions revoked");
        let issued = self
            .start_session(&user, SignInMethod::Password, client, replaces, now)
            .await?;
        let hash = user.password_hash.clone();
        self.still_valid(&issued, |u| u.password_hash == hash, client, now)
            .await?;
        Ok((user, issued))
    }

    /// Mails the owner of `user` about a sign-in from a browser that never signed in to the
    /// account before, with a link that ends exactly that session. Runs in a task of its own:
    /// the sign-in never waits for it, and a failure is logged, never the sign-in's.
    pub fn alert_new_device(&self, user: &User, session: &SessionRecord, client: &ClientInfo, now: Millis) {
        if !self.mail.settings.new_device_alerts || !self.mail.postman.enabled() {
            return;
        }
        let auth = self.clone();
        let user = user.clone();
        let session = session.clone();
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = auth.mail_alert(&user, &session, &client, now).await {
                tracing::warn!(user = %user.id, error = %e, "cannot send a new-device alert");
            }
        });
    }

    async fn mail_alert(
        &self,
        user: &User,
        session: &SessionRecord,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<(), AuthError> {
        let sign_in = ReportedSignIn {
            at: datetime(session.created_at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            device: crate::user_agent::describe_known(session.user_agent.as_deref())
                .unwrap_or_else(|| "an unrecognised browser".into()),
            ip: session.ip.clone(),
            method: session.method.as_str().to_string(),
        };
        let ttl = self.mail.settings.report_ttl;
        let extra = Extra {
            session_id: Some(session.public_id.clone()),
            detail: serde_json::to_string(&sign_in).ok(),
        };
        let (token, _) =
            tokens::issue(&self.db, user, Purpose::ReportSignIn, millis(ttl), extra, now).await?;
        let link = self.mail.link(Link::ReportSignIn, &token);
        let when = datetime(session.created_at)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string();
        let details = messages::SignInDetails {
            when: &when,
            device: &sign_in.device,
            ip: sign_in.ip.as_deref().unwrap_or("unknown"),
            method: &sign_in.method,
        };
        self.post(messages::new_device(&user.email, &details, &link, ttl))
            .await;
        self.audit(
            Event::new(kind::SIGN_IN_NEW_DEVICE, client, now)
                .user(user.id)
                .session(&session.public_id)
                .detail("device", sign_in.device.as_str()),
        )
        .await;
        Ok(())
    }

    /// What a "this wasn't me" link is about, if it is live (for the page it opens: reads only).
    pub async fn peek_report(&self, token: &str, now: Millis) -> Result<Option<ReportedSignIn>, AuthError> {
        Ok(tokens::find_live(&self.db, Purpose::ReportSignIn, token, now)
            .await?
            .and_then(|t| t.detail)
            .and_then(|d| serde_json::from_str(&d).ok()))
    }

    /// `POST /auth/sign-in/report`: ends exactly the session the alert was about
    /// (`reported_by_user`). The link works once, without a session.
    pub async fn report_sign_in(
        &self,
        token: &str,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<ReportOutcome, AuthError> {
        let found = tokens::find_live(&self.db, Purpose::ReportSignIn, token, now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let user = users::find_by_id(&self.db, found.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if !tokens::consume(&self.db, &found, now).await? {
            return Err(AuthError::InvalidToken);
        }
        let session_ended = match &found.session_id {
            Some(id) => {
                self.sessions
                    .revoke_one(&user.id, id, reason::REPORTED_BY_USER, None, client, now)
                    .await?
            }
            None => false,
        };
        let mut event = Event::new(kind::SIGN_IN_REPORTED, client, now)
            .user(user.id)
            .detail("session_ended", session_ended);
        if let Some(id) = &found.session_id {
            event = event.session(id);
        }
        self.audit(event).await;
        tracing::info!(user = %user.id, session_ended, "a sign-in was reported by the account's owner");
        Ok(ReportOutcome { user, session_ended })
    }
}

/// A provider's name for a person: `Google` for Google's issuer, else the issuer's host.
fn provider_name(issuer: &str) -> String {
    match Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
    {
        Some(h) if h == "accounts.google.com" => "Google".into(),
        Some(h) => h,
        None => issuer.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_carry_the_token_in_the_query() {
        let settings = crate::config::Settings::from_vars(&[("APP_ENV", "development")])
            .unwrap()
            .mail;
        let mail = AccountMail::off(settings, Url::parse("http://127.0.0.1:3000").unwrap());
        assert_eq!(
            mail.link(Link::ResetPassword, "abc"),
            "http://127.0.0.1:3000/reset-password?token=abc"
        );
    }
}
