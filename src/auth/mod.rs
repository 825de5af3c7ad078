//! Signing in: local accounts (email + password) and, later, OpenID providers. Every sign-in
//! ends in [`Sessions::create`]: a brand-new session, never one the client brought along.

pub mod device;
pub mod flows;
pub mod mfa;
pub mod oidc;
pub mod password;
pub mod recovery;
pub mod throttle;
pub mod tokens;

use std::sync::Arc;

use sea_orm::{DatabaseConnection, SqlErr, TransactionTrait};

use secrecy::{ExposeSecret, SecretString};

use crate::metrics::Metrics;
use crate::{
    audit::{kind, Event},
    entities::users::Model as User,
    session::{
        record::{Millis, SessionRecord, SignInMethod},
        service::{reason, ClientInfo, Issued, Sessions, Validated},
        StoreError,
    },
    users::{self, UserError},
};
use password::{Hasher, PasswordRule};
use throttle::{Attempt, AttemptStore};

/// The throttle's account for sign-ins with a string that is no e-mail address: no canonical
/// address is empty.
const NO_ACCOUNT: &str = "";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown e-mail or wrong password: deliberately indistinguishable.
    #[error("the e-mail address or password is incorrect")]
    InvalidCredentials,
    /// `what` was refused by a rate limit: "failed sign-in attempts", "sign-ups from this
    /// network", … — what the client is told there were too many of.
    #[error("too many {what}; try again in {retry_after} seconds")]
    Throttled { retry_after: u64, what: &'static str },
    #[error("this account is disabled")]
    Disabled,
    #[error(transparent)]
    WeakPassword(#[from] PasswordRule),
    #[error("the current password is incorrect")]
    WrongCurrentPassword,
    #[error("this account has no password (it signs in with an identity provider)")]
    NoPassword,
    #[error("the identity provider has not verified this e-mail address, so it cannot sign in to or create an account; verify it at the provider first")]
    EmailNotVerified,
    #[error("the identity provider did not share an e-mail address (scope `email`)")]
    EmailMissing,
    #[error("this e-mail address belongs to an account linked to another identity at this provider; sign in with that one")]
    IdentityConflict,
    #[error("too many sign-ins are being checked right now; try again in a moment")]
    Busy,
    #[error(
        "this link is not valid: it was already used, has expired, or was never issued; ask for a new one"
    )]
    InvalidToken,
    #[error("this e-mail address is already verified")]
    AlreadyVerified,
    #[error("this server sends no e-mail (SMTP_URL is not set), so e-mail verification and password reset are off; an operator can print a reset link with `authauth users reset-password --print`")]
    MailOff,
    #[error("confirm your e-mail address first: a confirmation link was sent to it")]
    EmailVerificationRequired,
    #[error("this account already has {max} sessions, the most allowed; sign out of one first")]
    SessionLimit { max: usize },
    #[error("the code is wrong, expired, or was already used")]
    InvalidCode,
    /// A sensitive operation in a session whose last proof of identity is older than
    /// `SESSION_PRIVILEGED_MAX_AGE`; `with` says what proves it again.
    #[error("this needs a recent sign-in: confirm it is you with {with} (POST /auth/reauthenticate), then try again")]
    ReauthenticationRequired { with: &'static str },
    #[error("this account already has an authenticator app; remove it before setting up another")]
    TotpAlreadyEnabled,
    #[error("this account has no authenticator app")]
    TotpNotEnabled,
    #[error("no authenticator app set-up is waiting for confirmation: start one with POST /auth/mfa/totp")]
    TotpNotStarted,
    #[error("this session's sign-in waits for no second factor")]
    MfaNotPending,
    /// The request's session ended, or ended while the request ran.
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    #[error("the passkey was not accepted: the ceremony expired or was already used, the authenticator is not registered here, or its answer failed verification")]
    PasskeyRefused,
    #[error("passkeys are not available on this server (its public address is not a domain name)")]
    PasskeysOff,
    #[error("this account has no passkey")]
    NoPasskey,
    #[error("no passkey of yours has this id")]
    PasskeyNotFound,
    #[error("this account already has {max} passkeys, the most allowed; remove one first")]
    TooManyPasskeys { max: u64 },
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for AuthError {
    fn from(e: sea_orm::DbErr) -> Self {
        AuthError::User(UserError::Db(e))
    }
}

impl From<crate::session::service::CreateError> for AuthError {
    fn from(e: crate::session::service::CreateError) -> Self {
        use crate::session::service::CreateError as E;
        match e {
            E::LimitReached { max } => AuthError::SessionLimit { max },
            E::Store(e) => AuthError::Store(e),
        }
    }
}

impl From<password::HashError> for AuthError {
    fn from(e: password::HashError) -> Self {
        match e {
            password::HashError::Busy => AuthError::Busy,
            e => AuthError::Internal(anyhow::Error::new(e)),
        }
    }
}

/// The sign-in service, shared by the API and the CLI.
#[derive(Clone)]
pub struct Auth {
    db: DatabaseConnection,
    sessions: Sessions,
    attempts: Arc<dyn AttemptStore>,
    hasher: Hasher,
    metrics: Metrics,
    mail: recovery::AccountMail,
    mfa: mfa::MfaConfig,
}

/// The `outcome` label of `authauth_sign_ins_total` for a sign-in's result.
/// [`sign_in_outcome`] for a first step: `second_step` when it succeeded but the sign-in waits
/// for a second factor (or an enrolment).
fn first_step_outcome<U, D>(result: &Result<(U, Issued, D), AuthError>) -> &'static str {
    match result {
        Ok((_, issued, _)) if !issued.record.stage.is_complete() => "second_step",
        other => sign_in_outcome(other),
    }
}

pub(crate) fn sign_in_outcome<T>(result: &Result<T, AuthError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(AuthError::InvalidCredentials | AuthError::InvalidCode | AuthError::PasskeyRefused) => {
            "bad_credentials"
        }
        Err(AuthError::Throttled { .. }) => "throttled",
        Err(AuthError::Disabled) => "disabled",
        Err(AuthError::SessionLimit { .. }) => "session_limit",
        Err(AuthError::EmailNotVerified | AuthError::EmailMissing) => "email_not_verified",
        Err(AuthError::IdentityConflict) => "identity_conflict",
        Err(AuthError::Busy) => "busy",
        Err(AuthError::EmailVerificationRequired) => "email_verification_required",
        Err(AuthError::Store(_)) => "store_unavailable",
        Err(_) => "error",
    }
}

impl Auth {
    pub fn new(
        db: DatabaseConnection,
        sessions: Sessions,
        attempts: Arc<dyn AttemptStore>,
        hasher: Hasher,
        metrics: Metrics,
        mail: recovery::AccountMail,
        mfa: mfa::MfaConfig,
    ) -> Self {
        Auth {
            db,
            sessions,
            attempts,
            hasher,
            metrics,
            mail,
            mfa,
        }
    }

    /// The second-factor settings.
    pub fn mfa_settings(&self) -> &crate::config::MfaSettings {
        &self.mfa.settings
    }

    /// How the account features send mail.
    pub fn mail(&self) -> &recovery::AccountMail {
        &self.mail
    }

    /// Creates a local account (the same rules for `POST /auth/signup` and
    /// `authauth users create`). Returns the new user.
    ///
    /// Audited as `user.created` when an operator (`client.operator`) creates it, else as
    /// `user.signed_up`.
    pub async fn create_local_user(
        &self,
        email: &str,
        password: SecretString,
        full_name: &str,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<User, AuthError> {
        let email = users::parse_email(email)?;
        let full_name = users::normalize_name(full_name)?;
        password::check_new(password.expose_secret(), email.display())?;
        // Hash before looking at the e-mail, so "taken" costs the same time as "created".
        let hash = self.hasher.hash(password).await?;
        let user = users::create(&self.db, &email, &full_name, None, Some(hash), false).await?;
        let kind = match client.operator {
            Some(_) => kind::USER_CREATED,
            None => kind::USER_SIGNED_UP,
        };
        self.audit(
            Event::new(kind, client, now)
                .user(user.id)
                .detail("method", "password"),
        )
        .await;
        Ok(user)
    }

    async fn audit(&self, event: Event) {
        self.sessions.audit().record(event).await;
    }

    /// Shows what changed about the account (a verified address, the provider's new name) in
    /// every live session at once. The change itself is already made: a store that cannot do
    /// this leaves the sessions with the old snapshot until their next sign-in, and is logged.
    async fn refresh_sessions(&self, user: &User, now: Millis) {
        if let Err(e) = self
            .sessions
            .update_user(&user.id, &users::snapshot(user), now)
            .await
        {
            tracing::warn!(user = %user.id, error = %e.chain(), "cannot refresh the account in its sessions");
        }
    }

    /// Records how a sign-in ended. `user` is the account when the attempt got as far as
    /// finding one (a throttled attempt does not look).
    async fn audit_sign_in(
        &self,
        method: SignInMethod,
        result: &Result<(User, Issued, String), AuthError>,
        user: Option<uuid::Uuid>,
        session: Option<&str>,
        client: &ClientInfo,
        now: Millis,
    ) {
        let outcome = sign_in_outcome(result);
        let kind = match result {
            Ok(_) => kind::SIGN_IN_SUCCEEDED,
            Err(AuthError::Throttled { .. }) => kind::SIGN_IN_THROTTLED,
            Err(_) => kind::SIGN_IN_FAILED,
        };
        let mut event = Event::new(kind, client, now).detail("method", method.as_str());
        if result.is_err() {
            event = event.detail("failure", outcome);
        }
        // A first factor that was right, for a sign-in still waiting for its second step.
        if let Ok((_, issued, _)) = result {
            if !issued.record.stage.is_complete() {
                event = event.detail("stage", issued.record.stage.as_str());
            }
        }
        if let Some(user) = user {
            event = event.user(user);
        }
        if let Some(session) = session {
            event = event.session(session);
        }
        self.audit(event).await;
    }

    /// `POST /auth/signup`: a new local account and its first session.
    ///
    /// `replaces` are the sessions this browser already holds: they end (`superseded`) once
    /// the account exists, before the new session is created.
    ///
    /// Mails a verification link. Under `REQUIRE_VERIFIED_EMAIL` no session starts: the account
    /// signs in once its address is verified (`Ok((user, None))`).
    pub async fn signup(
        &self,
        email: &str,
        password: SecretString,
        full_name: &str,
        client: &ClientInfo,
        replaces: &[SessionRecord],
        now: Millis,
    ) -> Result<(User, Option<Issued>), AuthError> {
        if let Some(retry_after) = throttle::signup(self.attempts.as_ref(), client.ip.as_deref(), now).await?
        {
            self.audit(Event::new(kind::SIGN_UP_THROTTLED, client, now)).await;
            return Err(AuthError::Throttled {
                retry_after,
                what: "accounts created from this network",
            });
        }
        let user = self
            .create_local_user(email, password, full_name, client, now)
            .await?;
        tracing::info!(user = %user.id, "account created");
        match self.send_verification(&user, "signup", client, now).await {
            Ok(()) | Err(AuthError::MailOff) => {}
            // The account exists; a lost link is asked for again (resend).
            Err(e) => tracing::warn!(user = %user.id, error = %e, "cannot send the verification link"),
        }
        if self.mail.settings.require_verified_email {
            return Ok((user, None));
        }
        let issued = self
            .start_session(&user, SignInMethod::Password, client, replaces, now)
            .await?;
        Ok((user, Some(issued)))
    }

    /// `POST /auth/login`: same status, body and cost for an unknown e-mail and a wrong
    /// password; throttled per account, per client and per account-and-client.
    ///
    /// `device` is the browser's device cookie, if any; a successful sign-in returns a new one.
    /// `replaces` are the sessions this browser already holds, ended as for [`Auth::signup`].
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        replaces: &[SessionRecord],
        now: Millis,
    ) -> Result<(User, Issued, String), AuthError> {
        let mut account = None;
        let result = self
            .login_counted(
                email,
                password,
                client,
                device_cookie,
                replaces,
                &mut account,
                now,
            )
            .await;
        self.metrics.sign_in("password", first_step_outcome(&result));
        let session = result
            .as_ref()
            .ok()
            .map(|(_, issued, _)| issued.record.public_id.as_str());
        self.audit_sign_in(SignInMethod::Password, &result, account, session, client, now)
            .await;
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn login_counted(
        &self,
        email: &str,
        password: SecretString,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        replaces: &[SessionRecord],
        found: &mut Option<uuid::Uuid>,
        now: Millis,
    ) -> Result<(User, Issued, String), AuthError> {
        let store = self.attempts.as_ref();
        let signer = self.sessions.signer();
        // Every spelling of an address is counted, recognised and looked up as its canonical
        // form. A string that is no address (a NUL byte, a look-alike such as `tİm@…`) is simply
        // an unknown account; all such strings share one bucket, so inventing spellings buys
        // no guesses — and none of them reaches an account anyway.
        let email = users::parse_email(email).ok();
        let account = email.as_ref().map_or(NO_ACCOUNT, |e| e.canonical());
        let device = email
            .as_ref()
            .and(device_cookie)
            .and_then(|d| device::device_id(signer, account, d));
        let known_device = device.is_some();
        let attempt = Attempt::new(account, client.ip.as_deref(), device);
        if let Some(retry_after) = attempt.reserve(store, now).await? {
            return Err(AuthError::Throttled {
                retry_after,
                what: throttle::SIGN_IN_ATTEMPTS,
            });
        }
        let user = match &email {
            Some(email) => users::find_by_email(&self.db, email).await?,
            None => None,
        };
        *found = user.as_ref().map(|u| u.id);
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let verified = self.hasher.verify_and_upgrade(password, hash.clone()).await?;
        let user = match (verified.ok, user) {
            (true, Some(user)) => user,
            // The reservation made above stays: this was a failure.
            _ => return Err(AuthError::InvalidCredentials),
        };
        if user.disabled_at.is_some() {
            return Err(AuthError::Disabled);
        }
        attempt.succeeded(store, now).await?;
        if self.mail.settings.require_verified_email && user.email_verified_at.is_none() {
            // The password was right: this is the owner, who may have lost the first link.
            self.resend_on_refusal(&user, client, now).await;
            return Err(AuthError::EmailVerificationRequired);
        }
        let issued = self
            .start_session(&user, SignInMethod::Password, client, replaces, now)
            .await?;
        self.still_valid(&issued, |u| u.password_hash == hash, client, now)
            .await?;
        if let (Some(new), Some(old)) = (verified.rehashed, hash.as_deref()) {
            // The hash predates the configured cost: store the password at the current one.
            // A failure here costs nothing but the upgrade, which the next sign-in tries again.
            match users::upgrade_password_hash(&self.db, user.id, old, new).await {
                Ok(true) => {
                    tracing::info!(user_id = %user.id, "password hash upgraded to the configured cost")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(user_id = %user.id, error = %e, "could not upgrade the password hash")
                }
            }
        }
        // A sign-in waiting for its second factor is told to the owner once it is finished.
        if !known_device && issued.record.stage.is_complete() {
            self.alert_new_device(&user, &issued.record, client, now);
        }
        let device = device::issue(signer, &user.email_canonical);
        Ok((user, issued, device))
    }

    /// Creates the session a successful sign-in earned. The sessions the browser held before
    /// (`replaces`) end first, so a failure on the way leaves either everything as it was or
    /// the old ones ended and no new one — never a new session nobody holds a cookie for beside
    /// an old one that should have ended.
    async fn start_session(
        &self,
        user: &User,
        method: SignInMethod,
        client: &ClientInfo,
        replaces: &[SessionRecord],
        now: Millis,
    ) -> Result<Issued, AuthError> {
        let proof = self.first_factor_proof(user, method).await?;
        self.start_session_proved(user, proof, method, client, replaces, now)
            .await
    }

    /// [`Auth::start_session`] for a sign-in that already knows what it proved.
    async fn start_session_proved(
        &self,
        user: &User,
        proof: crate::session::service::Proof,
        method: SignInMethod,
        client: &ClientInfo,
        replaces: &[SessionRecord],
        now: Millis,
    ) -> Result<Issued, AuthError> {
        for previous in replaces {
            self.sessions
                .revoke_one(
                    &previous.user_id,
                    &previous.public_id,
                    reason::SUPERSEDED,
                    None,
                    client,
                    now,
                )
                .await?;
        }
        Ok(self
            .sessions
            .create_proved(user.id, users::snapshot(user), method, proof, client, now)
            .await?)
    }

    /// Closes the race between a sign-in and a concurrent password change or disabling: the
    /// account is read again *after* the session exists. If what was checked no longer holds,
    /// the new session is revoked. (Those operations change the account before revoking
    /// sessions, so either their revocation sees this session, or this re-read sees them.)
    async fn still_valid(
        &self,
        issued: &Issued,
        unchanged: impl FnOnce(&User) -> bool,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<(), AuthError> {
        let current = users::find_by_id(&self.db, issued.record.user_id).await?;
        let (why, err) = match &current {
            Some(u) if u.disabled_at.is_some() => (reason::USER_DISABLED, AuthError::Disabled),
            Some(u) if unchanged(u) => return Ok(()),
            _ => (reason::PASSWORD_CHANGED, AuthError::InvalidCredentials),
        };
        self.sessions
            .revoke_one(
                &issued.record.user_id,
                &issued.record.public_id,
                why,
                None,
                client,
                now,
            )
            .await?;
        Err(err)
    }

    /// Signs in with an identity an OpenID provider vouched for. The account is found by
    /// `(issuer, subject)` — never by e-mail. A new identity is linked to an existing account
    /// with the same e-mail, or creates an account, only when the provider says the e-mail is
    /// verified. Name and picture follow the provider.
    ///
    /// `device_cookie` is the browser's device cookie, if any: a sign-in to an existing account
    /// from a browser it does not prove mails the owner (new-device alert). A successful
    /// sign-in returns the device cookie to set.
    pub async fn sign_in_with_identity(
        &self,
        identity: &oidc::VerifiedIdentity,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        replaces: &[SessionRecord],
        now: Millis,
    ) -> Result<(User, Issued, String), AuthError> {
        let mut account = None;
        let result = self
            .identity_sign_in(identity, client, device_cookie, replaces, &mut account, now)
            .await;
        self.metrics
            .sign_in(SignInMethod::Google.as_str(), first_step_outcome(&result));
        let session = result
            .as_ref()
            .ok()
            .map(|(_, issued, _)| issued.record.public_id.as_str());
        self.audit_sign_in(SignInMethod::Google, &result, account, session, client, now)
            .await;
        result
    }

    async fn identity_sign_in(
        &self,
        identity: &oidc::VerifiedIdentity,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        replaces: &[SessionRecord],
        found: &mut Option<uuid::Uuid>,
        now: Millis,
    ) -> Result<(User, Issued, String), AuthError> {
        let (user, created) = match self.find_or_link(identity, client, now).await {
            // Two first sign-ins of the same person raced: the other one created or linked the
            // account; use it.
            Err(AuthError::User(UserError::EmailTaken)) => self.find_or_link(identity, client, now).await?,
            Err(AuthError::User(UserError::Db(e)))
                if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
            {
                self.find_or_link(identity, client, now).await?
            }
            other => other?,
        };
        *found = Some(user.id);
        if user.disabled_at.is_some() {
            return Err(AuthError::Disabled);
        }
        let issued = self
            .start_session(&user, SignInMethod::Google, client, replaces, now)
            .await?;
        self.still_valid(&issued, |_| true, client, now).await?;
        let signer = self.sessions.signer();
        let known_device =
            device_cookie.is_some_and(|d| device::recognizes(signer, &user.email_canonical, d));
        if !created && !known_device && issued.record.stage.is_complete() {
            self.alert_new_device(&user, &issued.record, client, now);
        }
        let device = device::issue(signer, &user.email_canonical);
        Ok((user, issued, device))
    }

    /// The account the identity signs in to, and whether it was created just now.
    async fn find_or_link(
        &self,
        identity: &oidc::VerifiedIdentity,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<(User, bool), AuthError> {
        if let Some(existing) = users::find_identity(&self.db, &identity.issuer, &identity.subject).await? {
            let user = users::find_by_id(&self.db, existing.user_id)
                .await?
                .ok_or(AuthError::InvalidCredentials)?;
            let updated = users::update_profile(
                &self.db,
                &user,
                identity.name.as_deref(),
                identity.picture.as_deref(),
            )
            .await?;
            if users::snapshot(&updated) != users::snapshot(&user) {
                self.refresh_sessions(&updated, now).await;
            }
            return Ok((updated, false));
        }
        let email = identity.email.as_deref().ok_or(AuthError::EmailMissing)?;
        // The provider vouches for exactly the mailbox it names. An address authauth would not
        // accept at signup — a look-alike such as `tİm@…` that some foldings merge with `tim@…` —
        // links to nothing and creates nothing.
        let email = users::parse_email(email)?;
        if !identity.email_verified {
            return Err(AuthError::EmailNotVerified);
        }
        let Some(user) = users::find_by_email(&self.db, &email).await? else {
            let name = identity
                .name
                .as_deref()
                .and_then(|n| users::normalize_name(n).ok())
                .unwrap_or_else(|| email.display().split('@').next().unwrap_or("user").to_string());
            let txn = self.db.begin().await?;
            let user = users::create(&txn, &email, &name, identity.picture.clone(), None, true).await?;
            users::link_identity(
                &txn,
                &user,
                &identity.issuer,
                &identity.subject,
                Some(email.display()),
            )
            .await?;
            txn.commit().await?;
            self.audit(
                Event::new(kind::USER_SIGNED_UP, client, now)
                    .user(user.id)
                    .detail("method", SignInMethod::Google.as_str())
                    .detail("issuer", identity.issuer.as_str()),
            )
            .await;
            return Ok((user, true));
        };
        // The account is keyed by (issuer, subject), never by e-mail: if this provider already
        // vouches for another subject on this account, an e-mail match (a recycled address,
        // say) must not open it.
        if users::identities_of(&self.db, user.id)
            .await?
            .iter()
            .any(|i| i.issuer == identity.issuer)
        {
            return Err(AuthError::IdentityConflict);
        }
        // A local account whose address its owner verified (a link authauth mailed): the
        // password and the sessions were set up by that owner, whom the provider now vouches
        // for again. Linking keeps both.
        if user.email_verified_at.is_some() {
            tracing::info!(user = %user.id, issuer = %identity.issuer, "linking a verified provider identity to an account with a verified address");
            users::link_identity(
                &self.db,
                &user,
                &identity.issuer,
                &identity.subject,
                Some(email.display()),
            )
            .await?;
            let user = users::update_profile(&self.db, &user, None, identity.picture.as_deref()).await?;
            self.audit(
                Event::new(kind::IDENTITY_LINKED, client, now)
                    .user(user.id)
                    .detail("issuer", identity.issuer.as_str())
                    .detail("password_removed", false),
            )
            .await;
            return Ok((user, false));
        }
        // Pre-hijacking defence: nobody verified the address of this password account, so
        // whoever signed up with it may not be its owner. The provider just proved ownership:
        // linking ends every session of the account and removes its password and its second
        // factors (an app, passkeys — a passkey alone signs in — recovery codes), so nothing
        // the earlier signer set up survives. Sessions are revoked before and after the change
        // (a password sign-in in between is caught by its own re-check, see `still_valid`).
        tracing::info!(user = %user.id, issuer = %identity.issuer, "linking a verified provider identity to an existing account");
        self.sessions
            .revoke_user(&user.id, None, reason::IDENTITY_LINKED, None, client, now)
            .await?;
        let txn = self.db.begin().await?;
        let user = users::clear_password(&txn, &user).await?;
        let factors_removed = mfa::delete_factors(&txn, user.id).await?;
        let user = users::update_profile(&txn, &user, None, identity.picture.as_deref()).await?;
        let user = users::mark_email_verified(&txn, &user).await?;
        users::link_identity(
            &txn,
            &user,
            &identity.issuer,
            &identity.subject,
            Some(email.display()),
        )
        .await?;
        txn.commit().await?;
        self.audit(
            Event::new(kind::IDENTITY_LINKED, client, now)
                .user(user.id)
                .detail("issuer", identity.issuer.as_str())
                .detail("password_removed", true)
                .detail("factors_removed", factors_removed),
        )
        .await;
        self.sessions
            .revoke_user(&user.id, None, reason::IDENTITY_LINKED, None, client, now)
            .await?;
        Ok((user, false))
    }

    /// Disables (or re-enables) an account. Disabling blocks every kind of sign-in and revokes
    /// every session of the user (reason `user_disabled`). Returns the user and how many
    /// sessions ended.
    ///
    /// The account is marked first, then its sessions end: a sign-in racing with this either
    /// sees the mark in its own re-check or has its session revoked here. If the sessions
    /// cannot be revoked, the account stays disabled (nothing is undone, so nothing can fail
    /// half-way back) and the error says so; disabling again is safe and revokes them — it
    /// does, even for an account that is already disabled.
    pub async fn set_user_disabled(
        &self,
        user: &User,
        disabled: bool,
        by: &ClientInfo,
        now: Millis,
    ) -> Result<(User, usize), AuthError> {
        let updated = if user.disabled_at.is_some() == disabled {
            user.clone()
        } else {
            let updated = users::set_disabled(&self.db, user, disabled).await?;
            let kind = if disabled {
                kind::USER_DISABLED
            } else {
                kind::USER_ENABLED
            };
            self.audit(Event::new(kind, by, now).user(user.id)).await;
            updated
        };
        if !disabled {
            tracing::info!(user = %user.id, "account enabled");
            return Ok((updated, 0));
        }
        let revoked = self
            .revoke_all_with_retry(&user.id, reason::USER_DISABLED, by, now)
            .await?;
        tracing::info!(user = %user.id, revoked, "account disabled; sessions revoked");
        Ok((updated, revoked))
    }

    /// Lifts the sign-in throttle on an account (`authauth users unlock`): clears its failure
    /// counters from every network and device. Returns how many there were.
    pub async fn unlock(&self, user: &User, by: &ClientInfo, now: Millis) -> Result<u64, AuthError> {
        let cleared = throttle::unlock(self.attempts.as_ref(), &user.email_canonical).await?;
        tracing::info!(user = %user.id, cleared, "sign-in limits lifted by an operator");
        self.audit(
            Event::new(kind::USER_UNLOCKED, by, now)
                .user(user.id)
                .detail("counters_cleared", cleared),
        )
        .await;
        Ok(cleared)
    }

    async fn revoke_all_with_retry(
        &self,
        user_id: &uuid::Uuid,
        why: &'static str,
        by: &ClientInfo,
        now: Millis,
    ) -> Result<usize, StoreError> {
        let mut last = None;
        for _ in 0..3 {
            match self.sessions.revoke_user(user_id, None, why, None, by, now).await {
                Ok(r) => return Ok(r.len()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::unavailable("revocation failed")))
    }

    /// `POST /auth/password`: needs the current password; every session of the user ends
    /// (reason `password_changed`) and the caller gets a brand-new one.
    ///
    /// The writes are ordered so that stopping after any of them leaves a coherent account,
    /// with nothing to undo: (1) every *other* session ends; (2) the password changes; (3) the
    /// caller's session ends too, with any sign-in that raced step 2 (those also fail their own
    /// re-check); (4) a new session is issued. A failure at (1) changes nothing; at (2) only
    /// ends sessions the user was about to lose anyway; at (3) leaves the new password with
    /// the caller's session as the only one; at (4) leaves the new password and no session.
    pub async fn change_password(
        &self,
        current: &Validated,
        current_password: SecretString,
        new_password: SecretString,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<Issued, AuthError> {
        let user = users::find_by_id(&self.db, current.record.user_id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if user.disabled_at.is_some() {
            return Err(AuthError::Disabled);
        }
        let Some(hash) = user.password_hash.clone() else {
            return Err(AuthError::NoPassword);
        };
        password::check_new(new_password.expose_secret(), &user.email)?;
        let store = self.attempts.as_ref();
        let attempt = Attempt::new(&user.email_canonical, client.ip.as_deref(), None);
        // A wrong current password is a failed proof of identity, like a failed sign-in, and
        // is recorded as one (`method`: `password_change`).
        let failed = |kind: &'static str, failure: Option<&'static str>| {
            let mut event = Event::new(kind, client, now)
                .user(user.id)
                .session(&current.record.public_id)
                .detail("method", "password_change");
            if let Some(failure) = failure {
                event = event.detail("failure", failure);
            }
            event
        };
        if let Some(retry_after) = attempt.reserve(store, now).await? {
            self.audit(failed(kind::SIGN_IN_THROTTLED, None)).await;
            return Err(AuthError::Throttled {
                retry_after,
                what: throttle::SIGN_IN_ATTEMPTS,
            });
        }
        if !self.hasher.verify(current_password, Some(hash)).await? {
            self.audit(failed(kind::SIGN_IN_FAILED, Some("bad_credentials")))
                .await;
            return Err(AuthError::WrongCurrentPassword);
        }
        attempt.succeeded(store, now).await?;
        let new_hash = self.hasher.hash(new_password).await?;
        self.sessions
            .revoke_user(
                &user.id,
                Some(&current.record.public_id),
                reason::PASSWORD_CHANGED,
                None,
                client,
                now,
            )
            .await?;
        // A reset link mailed before the change would set a password of its own over it, and
        // end this browser's new session with it: the change ends every link still waiting.
        let txn = self.db.begin().await?;
        let changed = users::set_password_hash(&txn, &user, new_hash).await?;
        tokens::consume_all(&txn, user.id, tokens::Purpose::ResetPassword, now).await?;
        txn.commit().await?;
        self.audit(
            Event::new(kind::PASSWORD_CHANGED, client, now)
                .user(user.id)
                .session(&current.record.public_id),
        )
        .await;
        self.revoke_all_with_retry(&user.id, reason::PASSWORD_CHANGED, client, now)
            .await?;
        tracing::info!(user = %user.id, "password changed; all sessions revoked");
        // The browser that changed it proved the password just now, on top of whatever its
        // session had proved (a second factor): the new session keeps both.
        let mut amr = current.record.amr();
        if !amr.contains(&crate::session::record::Amr::Password) {
            amr.push(crate::session::record::Amr::Password);
        }
        let issued = self
            .sessions
            .create_proved(
                changed.id,
                users::snapshot(&changed),
                current.record.method,
                crate::session::service::Proof {
                    stage: crate::session::record::Stage::Complete,
                    amr,
                },
                client,
                now,
            )
            .await?;
        Ok(issued)
    }
}
