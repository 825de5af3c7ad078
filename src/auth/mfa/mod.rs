//! Second factors — an authenticator app (TOTP) and recovery codes — and step-up.
//!
//! - **Sign-in.** When the account has a confirmed authenticator app, a correct password (or a
//!   provider's answer) starts a session at [`Stage::SecondFactor`]: it lives a few minutes,
//!   counts toward no session limit and can do nothing but [`Auth::verify_second_factor`] (or
//!   sign out). A right code ends it and starts a brand-new session (new token, new public id)
//!   with `amr` `[pwd, otp]` and `aal` 2. Under `MFA_REQUIRED` an account without a factor
//!   starts at [`Stage::Enrolment`] instead, and confirming an app finishes the sign-in the same
//!   way.
//! - **Codes** are accepted once: the time step of the last accepted code is stored, and a code
//!   is taken only by the conditional `UPDATE` that moves it forward. Wrong codes are counted
//!   per sign-in (5, then the sign-in ends) and per account (10 per 15 minutes).
//! - **Step-up.** Sensitive operations need the session's last proof of identity to be at most
//!   `SESSION_PRIVILEGED_MAX_AGE` old ([`Auth::require_recent`]); `POST /auth/reauthenticate`
//!   renews it with the password — or, once the account has a second factor, with a code from
//!   it (a password alone would let a stolen cookie plus a stolen password remove the factor).
//! - **Storage.** The TOTP seed is sealed ([`sealed`]); recovery codes are SHA-256 digests.

pub mod codes;
pub mod passkeys;
pub mod sealed;

use sea_orm::{
    sea_query::{Condition, Expr},
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait,
};
use secrecy::SecretString;
use uuid::Uuid;

use super::{device, throttle, throttle::Attempt, Auth, AuthError};
use crate::{
    audit::{kind, Event},
    entities::{
        recovery_codes,
        totp_factors::{self, Model as TotpFactor},
        users::Model as User,
    },
    session::{
        record::{Amr, Millis, SessionRecord, Stage},
        service::{reason, ClientInfo, Issued, Proof},
        Validated,
    },
    users,
};

/// What the second-factor features need from the configuration.
#[derive(Debug, Clone)]
pub struct MfaConfig {
    pub settings: crate::config::MfaSettings,
    /// Seals TOTP seeds with keys derived from the session secrets.
    pub sealer: sealed::Sealer,
    /// The WebAuthn relying party; `None`: passkeys are off.
    pub passkeys: Option<passkeys::Relying>,
}

impl MfaConfig {
    /// `flows` keeps passkey ceremonies between their start and finish.
    pub fn new(
        settings: &crate::config::Settings,
        flows: std::sync::Arc<dyn crate::auth::flows::FlowStore>,
    ) -> Self {
        MfaConfig {
            settings: settings.mfa.clone(),
            sealer: sealed::Sealer::new(&settings.session.secrets),
            passkeys: settings
                .mfa
                .passkeys
                .as_ref()
                .and_then(|p| passkeys::Relying::new(p, &settings.mfa.totp_issuer, flows)),
        }
    }
}

/// An account's second factors, as its owner and operators see them (never a secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Factors {
    /// When the authenticator app was confirmed; `None`: the account has none.
    pub totp_enabled_at: Option<Millis>,
    /// When a code from it was last accepted.
    pub totp_last_used_at: Option<Millis>,
    /// Recovery codes not used yet.
    pub recovery_codes_left: u64,
    /// Registered passkeys.
    pub passkeys: u64,
}

impl Factors {
    /// Whether sign-in asks for a second factor.
    pub fn any(&self) -> bool {
        self.totp_enabled_at.is_some() || self.passkeys > 0
    }
}

/// An authenticator app being set up: what the person scans or types.
pub struct TotpSetup {
    /// The seed in base32, for typing into an app.
    pub secret: String,
    /// `otpauth://totp/…`, what the QR code holds.
    pub uri: String,
    /// The QR code of `uri`, an SVG document.
    pub qr_svg: String,
}

/// What a factor proved in a session (a confirmed app, a registered passkey, a passkey
/// answer) did to it.
pub enum Proved {
    /// The session was signed in: it now counts as re-authenticated with the factor (a new
    /// token).
    Elevated(Validated),
    /// A sign-in was finished (a second step, an enrolment, or a passkey with no password) in a
    /// new session; `device` is the device cookie it earned. (Boxed: it is the rarer and much
    /// the larger answer.)
    SignedIn { issued: Box<Issued>, device: String },
}

/// A second factor as given.
pub enum SecondFactor {
    Totp(String),
    RecoveryCode(String),
}

impl SecondFactor {
    fn amr(&self) -> Amr {
        match self {
            SecondFactor::Totp(_) => Amr::Totp,
            SecondFactor::RecoveryCode(_) => Amr::RecoveryCode,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            SecondFactor::Totp(_) => "totp",
            SecondFactor::RecoveryCode(_) => "recovery_code",
        }
    }
}

/// A proof of identity for step-up.
pub enum Reauthentication {
    Password(SecretString),
    Factor(SecondFactor),
}

impl Auth {
    /// The account's second factors.
    pub async fn factors(&self, user_id: Uuid) -> Result<Factors, AuthError> {
        let totp = totp_factors::Entity::find_by_id(user_id).one(&self.db).await?;
        let recovery_codes_left = recovery_codes::Entity::find()
            .filter(recovery_codes::Column::UserId.eq(user_id))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .count(&self.db)
            .await?;
        let confirmed = totp.filter(|t| t.confirmed_at.is_some());
        Ok(Factors {
            totp_enabled_at: confirmed.as_ref().and_then(|t| t.confirmed_at),
            totp_last_used_at: confirmed.as_ref().and_then(|t| t.last_used_at),
            recovery_codes_left,
            passkeys: self.passkey_count(user_id).await?,
        })
    }

    /// What a sign-in of `user` with `method` proves, given the account's factors: finished,
    /// waiting for a second factor, or (under `MFA_REQUIRED`) waiting for one to be enrolled.
    pub(super) async fn first_factor_proof(
        &self,
        user: &User,
        method: crate::session::record::SignInMethod,
    ) -> Result<Proof, AuthError> {
        let amr = vec![Amr::of(method)];
        let stage = if self.factors(user.id).await?.any() {
            Stage::SecondFactor
        } else if self.mfa.settings.required {
            Stage::Enrolment
        } else {
            Stage::Complete
        };
        Ok(Proof { stage, amr })
    }

    /// A sign-in that must enrol a factor ([`Stage::Enrolment`]: `MFA_REQUIRED`, and the account
    /// had none) may set up the account's first one and nothing else. Once the account has one —
    /// set up from another session meanwhile, by its owner say — the sign-in proves too little:
    /// it ends (reason `sign_in_outdated`, 401 `session_revoked`), and signing in again asks for
    /// that factor. Every factor operation open to such a sign-in checks this first.
    pub(super) async fn still_enrolling(&self, record: &SessionRecord, now: Millis) -> Result<(), AuthError> {
        if record.stage != Stage::Enrolment || !self.factors(record.user_id).await?.any() {
            return Ok(());
        }
        self.sessions
            .revoke_one(
                &record.user_id,
                &record.public_id,
                crate::session::service::reason::SIGN_IN_OUTDATED,
                None,
                &crate::session::ClientInfo::default(),
                now,
            )
            .await?;
        Err(AuthError::Session(crate::session::SessionError::Revoked {
            reason: crate::session::service::reason::SIGN_IN_OUTDATED.to_string(),
            message: None,
        }))
    }

    /// Refuses a sensitive operation in a session whose last proof of identity is older than
    /// `SESSION_PRIVILEGED_MAX_AGE` (403 `reauthentication_required`).
    pub async fn require_recent(&self, record: &SessionRecord, now: Millis) -> Result<(), AuthError> {
        let max_age = self.mfa.settings.privileged_max_age.as_millis() as Millis;
        if now.saturating_sub(record.authenticated_at()) <= max_age {
            return Ok(());
        }
        let factors = self.factors(record.user_id).await?;
        let with = if factors.totp_enabled_at.is_some() {
            "a code from your authenticator app, a passkey or a recovery code"
        } else if factors.passkeys > 0 {
            "a passkey or a recovery code"
        } else {
            match users::find_by_id(&self.db, record.user_id).await? {
                Some(u) if u.password_hash.is_some() => "your password",
                _ => "a new sign-in",
            }
        };
        Err(AuthError::ReauthenticationRequired { with })
    }

    pub(super) async fn signed_in_user(&self, user_id: Uuid) -> Result<User, AuthError> {
        let user = users::find_by_id(&self.db, user_id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if user.disabled_at.is_some() {
            return Err(AuthError::Disabled);
        }
        Ok(user)
    }

    /// Starts setting up an authenticator app: a new seed, kept sealed until a first code
    /// confirms it. Starting again replaces a set-up that was never confirmed.
    pub async fn start_totp(&self, current: &SessionRecord, now: Millis) -> Result<TotpSetup, AuthError> {
        if current.stage.is_complete() {
            self.require_recent(current, now).await?;
        }
        self.still_enrolling(current, now).await?;
        let user = self.signed_in_user(current.user_id).await?;
        let existing = totp_factors::Entity::find_by_id(user.id).one(&self.db).await?;
        if existing.as_ref().is_some_and(|t| t.confirmed_at.is_some()) {
            return Err(AuthError::TotpAlreadyEnabled);
        }
        let secret = codes::new_secret();
        let totp = codes::totp(&secret, &self.mfa.settings.totp_issuer, &user.email)
            .ok_or_else(|| anyhow::anyhow!("cannot build a TOTP for this account"))?;
        let uri = totp
            .to_url()
            .map_err(|e| anyhow::anyhow!("cannot write the otpauth URI: {e:?}"))?;
        let sealed = self
            .mfa
            .sealer
            .seal(&secret, user.id.as_bytes())
            .ok_or_else(|| anyhow::anyhow!("no session secret to seal the TOTP seed with"))?;
        let row = totp_factors::ActiveModel {
            user_id: Set(user.id),
            sealed_secret: Set(sealed.clone()),
            created_at: Set(now),
            confirmed_at: Set(None),
            last_used_step: Set(None),
            last_used_at: Set(None),
        };
        match existing {
            Some(_) => {
                // Only an unconfirmed one is replaced: a confirmation racing with this loses.
                let replaced = totp_factors::Entity::update_many()
                    .col_expr(totp_factors::Column::SealedSecret, Expr::value(sealed.clone()))
                    .col_expr(totp_factors::Column::CreatedAt, Expr::value(now))
                    .filter(totp_factors::Column::UserId.eq(user.id))
                    .filter(totp_factors::Column::ConfirmedAt.is_null())
                    .exec(&self.db)
                    .await?;
                if replaced.rows_affected == 0 {
                    return Err(AuthError::TotpAlreadyEnabled);
                }
            }
            None => {
                row.insert(&self.db).await?;
            }
        }
        let qr_svg = qr_svg(&uri)?;
        Ok(TotpSetup {
            secret: codes::secret_base32(&secret),
            uri,
            qr_svg,
        })
    }

    /// Takes `code` for the account's authenticator app if it is right for now and its time
    /// step is later than the last accepted one; `confirming` takes it only for a set-up not yet
    /// confirmed, and confirms it.
    async fn take_totp(
        &self,
        user: &User,
        factor: &TotpFactor,
        code: &str,
        confirming: bool,
        now: Millis,
    ) -> Result<bool, AuthError> {
        let Some(code) = codes::normalize_totp(code) else {
            return Ok(false);
        };
        let Some(opened) = self.mfa.sealer.open(&factor.sealed_secret, user.id.as_bytes()) else {
            return Err(AuthError::Internal(anyhow::anyhow!(
                "the account's TOTP seed does not open: sealed under a SESSION_SECRET no longer listed? (`authauth users mfa reset` lets the owner set it up again)"
            )));
        };
        let totp = codes::totp(&opened.plain, &self.mfa.settings.totp_issuer, &user.email)
            .ok_or_else(|| anyhow::anyhow!("cannot build the account's TOTP"))?;
        let Some(step) = codes::matching_step(&totp, &code, (now.max(0) / 1000) as u64) else {
            return Ok(false);
        };
        let step = step as i64;
        let mut update = totp_factors::Entity::update_many()
            .col_expr(totp_factors::Column::LastUsedStep, Expr::value(step))
            .col_expr(totp_factors::Column::LastUsedAt, Expr::value(now))
            .filter(totp_factors::Column::UserId.eq(user.id))
            .filter(totp_factors::Column::SealedSecret.eq(factor.sealed_secret.clone()))
            .filter(
                Condition::any()
                    .add(totp_factors::Column::LastUsedStep.is_null())
                    .add(totp_factors::Column::LastUsedStep.lt(step)),
            );
        if confirming {
            update = update
                .col_expr(totp_factors::Column::ConfirmedAt, Expr::value(now))
                .filter(totp_factors::Column::ConfirmedAt.is_null());
        } else {
            update = update.filter(totp_factors::Column::ConfirmedAt.is_not_null());
        }
        if opened.stale {
            if let Some(resealed) = self.mfa.sealer.seal(&opened.plain, user.id.as_bytes()) {
                update = update.col_expr(totp_factors::Column::SealedSecret, Expr::value(resealed));
            }
        }
        Ok(update.exec(&self.db).await?.rows_affected == 1)
    }

    /// Takes one unused recovery code of the account; returns how many are left, or `None`
    /// when the code is not one of them.
    async fn take_recovery_code(
        &self,
        user: &User,
        code: &str,
        now: Millis,
    ) -> Result<Option<u64>, AuthError> {
        let Some(normalized) = codes::normalize_recovery_code(code) else {
            return Ok(None);
        };
        let used = recovery_codes::Entity::update_many()
            .col_expr(recovery_codes::Column::UsedAt, Expr::value(now))
            .filter(recovery_codes::Column::UserId.eq(user.id))
            .filter(recovery_codes::Column::CodeHash.eq(codes::recovery_digest(&normalized)))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .exec(&self.db)
            .await?;
        if used.rows_affected != 1 {
            return Ok(None);
        }
        Ok(Some(self.factors(user.id).await?.recovery_codes_left))
    }

    /// Checks a second factor given in `scope` (a sign-in's or a session's public id), counting
    /// wrong ones. `Ok(false)`: wrong; `Err(Throttled)`: too many wrong ones.
    async fn check_factor(
        &self,
        user: &User,
        factor: &SecondFactor,
        scope: &SessionRecord,
        during: &'static str,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<bool, AuthError> {
        let store = self.attempts.as_ref();
        let attempt = Attempt::code(&user.email_canonical, &scope.public_id);
        if let Some(retry_after) = attempt.reserve(store, now).await? {
            return Err(AuthError::Throttled {
                retry_after,
                what: throttle::CODE_ATTEMPTS,
            });
        }
        let ok = match factor {
            SecondFactor::Totp(code) => {
                match totp_factors::Entity::find_by_id(user.id).one(&self.db).await? {
                    Some(f) if f.confirmed_at.is_some() => self.take_totp(user, &f, code, false, now).await?,
                    _ => false,
                }
            }
            SecondFactor::RecoveryCode(code) => match self.take_recovery_code(user, code, now).await? {
                Some(left) => {
                    self.audit(
                        Event::new(kind::MFA_RECOVERY_CODE_USED, client, now)
                            .user(user.id)
                            .session(&scope.public_id)
                            .detail("left", left),
                    )
                    .await;
                    true
                }
                None => false,
            },
        };
        if ok {
            attempt.succeeded(store, now).await?;
        } else {
            self.audit(
                Event::new(kind::MFA_FAILED, client, now)
                    .user(user.id)
                    .session(&scope.public_id)
                    .detail("factor", factor.name())
                    .detail("during", during),
            )
            .await;
        }
        Ok(ok)
    }

    /// `POST /auth/mfa/verify`: finishes a sign-in waiting for its second factor. The waiting
    /// session ends and a new one starts; a browser that never signed in to the account before
    /// (no device cookie for it) has the owner mailed, as for any sign-in. Five wrong codes end
    /// the sign-in.
    pub async fn verify_second_factor(
        &self,
        pending: &SessionRecord,
        factor: SecondFactor,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        now: Millis,
    ) -> Result<(Issued, String), AuthError> {
        let name = factor.name();
        let result = self
            .verify_second_factor_once(pending, factor, client, device_cookie, now)
            .await;
        self.metrics.sign_in(name, super::sign_in_outcome(&result));
        result
    }

    async fn verify_second_factor_once(
        &self,
        pending: &SessionRecord,
        factor: SecondFactor,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        now: Millis,
    ) -> Result<(Issued, String), AuthError> {
        if pending.stage != Stage::SecondFactor {
            return Err(AuthError::MfaNotPending);
        }
        let user = self.signed_in_user(pending.user_id).await?;
        let ok = match self
            .check_factor(&user, &factor, pending, "sign_in", client, now)
            .await
        {
            Err(AuthError::Throttled { retry_after, what }) => {
                self.end_failed_sign_in(&user, pending, client, now).await;
                return Err(AuthError::Throttled { retry_after, what });
            }
            other => other?,
        };
        if !ok {
            let attempt = Attempt::code(&user.email_canonical, &pending.public_id);
            if attempt.scope_exhausted(self.attempts.as_ref(), now).await? {
                self.end_failed_sign_in(&user, pending, client, now).await;
            }
            return Err(AuthError::InvalidCode);
        }
        let (issued, device) = self
            .finish_sign_in(&user, pending, factor.amr(), client, device_cookie, now)
            .await?;
        self.audit(
            Event::new(kind::SIGN_IN_SUCCEEDED, client, now)
                .user(user.id)
                .session(&issued.record.public_id)
                .detail("method", factor.name()),
        )
        .await;
        Ok((issued, device))
    }

    /// Ends a half-finished sign-in (`record`) in a new, complete session with `method` added;
    /// the new-device alert and the device cookie come with it.
    pub(super) async fn finish_sign_in(
        &self,
        user: &User,
        record: &SessionRecord,
        method: Amr,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        now: Millis,
    ) -> Result<(Issued, String), AuthError> {
        let mut amr = record.amr();
        amr.push(method);
        let issued = self
            .sessions
            .complete(
                record,
                Proof {
                    stage: Stage::Complete,
                    amr,
                },
                client,
                now,
            )
            .await?;
        // As for a password or provider sign-in: an account disabled (or its password changed)
        // while this sign-in was being finished takes the new session back.
        self.still_valid(&issued, |u| u.password_hash == user.password_hash, client, now)
            .await?;
        let device = self.after_sign_in(user, &issued.record, client, device_cookie, now);
        Ok((issued, device))
    }

    /// The new-device alert (a browser without this account's device cookie) and the device
    /// cookie to set, after a finished sign-in.
    pub(super) fn after_sign_in(
        &self,
        user: &User,
        session: &SessionRecord,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        now: Millis,
    ) -> String {
        let signer = self.sessions.signer();
        if !device_cookie.is_some_and(|d| device::recognizes(signer, &user.email_canonical, d)) {
            self.alert_new_device(user, session, client, now);
        }
        device::issue(signer, &user.email_canonical)
    }

    async fn end_failed_sign_in(
        &self,
        user: &User,
        pending: &SessionRecord,
        client: &ClientInfo,
        now: Millis,
    ) {
        if let Err(e) = self
            .sessions
            .revoke_one(
                &user.id,
                &pending.public_id,
                reason::SECOND_FACTOR_FAILED,
                None,
                client,
                now,
            )
            .await
        {
            tracing::warn!(user = %user.id, error = %e.chain(), "cannot end a sign-in after too many wrong codes");
        }
    }

    /// `POST /auth/mfa/totp/confirm`: the first code from the app confirms it; the account gets
    /// ten new recovery codes (returned, shown once).
    pub async fn confirm_totp(
        &self,
        current: &Validated,
        code: &str,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        now: Millis,
    ) -> Result<(Vec<String>, Proved), AuthError> {
        let record = &current.record;
        if record.stage == Stage::SecondFactor {
            return Err(AuthError::MfaNotPending);
        }
        self.still_enrolling(record, now).await?;
        let user = self.signed_in_user(record.user_id).await?;
        let factor = totp_factors::Entity::find_by_id(user.id)
            .one(&self.db)
            .await?
            .ok_or(AuthError::TotpNotStarted)?;
        if factor.confirmed_at.is_some() {
            return Err(AuthError::TotpAlreadyEnabled);
        }
        let store = self.attempts.as_ref();
        let attempt = Attempt::code(&user.email_canonical, &record.public_id);
        if let Some(retry_after) = attempt.reserve(store, now).await? {
            return Err(AuthError::Throttled {
                retry_after,
                what: throttle::CODE_ATTEMPTS,
            });
        }
        if !self.take_totp(&user, &factor, code, true, now).await? {
            self.audit(
                Event::new(kind::MFA_FAILED, client, now)
                    .user(user.id)
                    .session(&record.public_id)
                    .detail("factor", "totp")
                    .detail("during", "confirmation"),
            )
            .await;
            return Err(AuthError::InvalidCode);
        }
        attempt.succeeded(store, now).await?;
        let codes = self.replace_recovery_codes(&user, now).await?;
        self.audit(
            Event::new(kind::MFA_TOTP_ENABLED, client, now)
                .user(user.id)
                .session(&record.public_id),
        )
        .await;
        let outcome = match record.stage {
            Stage::Enrolment => {
                let (issued, device) = self
                    .finish_sign_in(&user, record, Amr::Totp, client, device_cookie, now)
                    .await?;
                Proved::SignedIn {
                    issued: Box::new(issued),
                    device,
                }
            }
            _ => Proved::Elevated(self.sessions.reauthenticated(current, Amr::Totp, now).await?),
        };
        Ok((codes, outcome))
    }

    /// Ten new recovery codes for `user`; the earlier ones stop working in the same transaction.
    pub(super) async fn replace_recovery_codes(
        &self,
        user: &User,
        now: Millis,
    ) -> Result<Vec<String>, AuthError> {
        let codes: Vec<String> = (0..codes::RECOVERY_CODES)
            .map(|_| codes::new_recovery_code())
            .collect();
        let txn = self.db.begin().await?;
        recovery_codes::Entity::delete_many()
            .filter(recovery_codes::Column::UserId.eq(user.id))
            .exec(&txn)
            .await?;
        for code in &codes {
            let normalized = codes::normalize_recovery_code(code)
                .ok_or_else(|| anyhow::anyhow!("a generated recovery code does not read back"))?;
            recovery_codes::ActiveModel {
                id: Set(Uuid::new_v4()),
                user_id: Set(user.id),
                code_hash: Set(codes::recovery_digest(&normalized)),
                created_at: Set(now),
                used_at: Set(None),
            }
            .insert(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(codes)
    }

    /// `POST /auth/mfa/recovery-codes`: ten new codes (step-up needed); the old ones die.
    pub async fn regenerate_recovery_codes(
        &self,
        current: &SessionRecord,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<Vec<String>, AuthError> {
        self.require_recent(current, now).await?;
        self.still_enrolling(current, now).await?;
        let user = self.signed_in_user(current.user_id).await?;
        if !self.factors(user.id).await?.any() {
            return Err(AuthError::TotpNotEnabled);
        }
        let codes = self.replace_recovery_codes(&user, now).await?;
        self.audit(
            Event::new(kind::MFA_RECOVERY_CODES_ISSUED, client, now)
                .user(user.id)
                .session(&current.public_id),
        )
        .await;
        Ok(codes)
    }

    /// `DELETE /auth/mfa/totp`: the owner removes the app (step-up needed); recovery codes go
    /// with it, as they stand in for it.
    pub async fn disable_totp(
        &self,
        current: &SessionRecord,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<(), AuthError> {
        self.require_recent(current, now).await?;
        self.still_enrolling(current, now).await?;
        let user = self.signed_in_user(current.user_id).await?;
        if self.mfa.settings.required {
            // Removing the only factor would leave an account the server says must have one.
            tracing::info!(user = %user.id, "authenticator app removed under MFA_REQUIRED: the next sign-in enrols one again");
        }
        if !self.remove_totp(user.id).await? {
            return Err(AuthError::TotpNotEnabled);
        }
        self.audit(
            Event::new(kind::MFA_TOTP_DISABLED, client, now)
                .user(user.id)
                .session(&current.public_id),
        )
        .await;
        Ok(())
    }

    /// Deletes the account's app — and its recovery codes when no passkey remains for them to
    /// stand in for — in one transaction; whether it had an app.
    async fn remove_totp(&self, user_id: Uuid) -> Result<bool, AuthError> {
        let txn = self.db.begin().await?;
        let removed = totp_factors::Entity::delete_many()
            .filter(totp_factors::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        let passkeys_left = crate::entities::passkeys::Entity::find()
            .filter(crate::entities::passkeys::Column::UserId.eq(user_id))
            .count(&txn)
            .await?;
        if passkeys_left == 0 {
            recovery_codes::Entity::delete_many()
                .filter(recovery_codes::Column::UserId.eq(user_id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(removed.rows_affected > 0)
    }

    /// Deletes the account's recovery codes.
    pub(super) async fn forget_recovery_codes(&self, user_id: Uuid) -> Result<(), AuthError> {
        recovery_codes::Entity::delete_many()
            .filter(recovery_codes::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Deletes every second factor of the account (app, passkeys, recovery codes) in one
    /// transaction; whether it had any.
    async fn remove_factors(&self, user_id: Uuid) -> Result<bool, AuthError> {
        let txn = self.db.begin().await?;
        let had = delete_factors(&txn, user_id).await?;
        txn.commit().await?;
        Ok(had)
    }

    /// `POST /auth/reauthenticate`: proves the owner again in this session, which may then do
    /// sensitive operations for `SESSION_PRIVILEGED_MAX_AGE`. Only this session is elevated.
    pub async fn reauthenticate(
        &self,
        current: &Validated,
        proof: Reauthentication,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<Validated, AuthError> {
        let record = &current.record;
        let user = self.signed_in_user(record.user_id).await?;
        let has_factor = self.factors(user.id).await?.any();
        let method = match proof {
            Reauthentication::Password(_) if has_factor => {
                return Err(AuthError::ReauthenticationRequired {
                    with: "your second factor — a code from your authenticator app, a passkey or a recovery code (this account has one, so a password alone is not enough)",
                })
            }
            Reauthentication::Password(password) => {
                let Some(hash) = user.password_hash.clone() else {
                    return Err(AuthError::NoPassword);
                };
                let store = self.attempts.as_ref();
                let attempt = Attempt::new(&user.email_canonical, client.ip.as_deref(), None);
                if let Some(retry_after) = attempt.reserve(store, now).await? {
                    return Err(AuthError::Throttled {
                        retry_after,
                        what: throttle::SIGN_IN_ATTEMPTS,
                    });
                }
                if !self.hasher.verify(password, Some(hash)).await? {
                    self.audit(
                        Event::new(kind::SIGN_IN_FAILED, client, now)
                            .user(user.id)
                            .session(&record.public_id)
                            .detail("method", "reauthentication")
                            .detail("failure", "bad_credentials"),
                    )
                    .await;
                    return Err(AuthError::WrongCurrentPassword);
                }
                attempt.succeeded(store, now).await?;
                Amr::Password
            }
            Reauthentication::Factor(factor) => {
                if !self
                    .check_factor(&user, &factor, record, "reauthentication", client, now)
                    .await?
                {
                    return Err(AuthError::InvalidCode);
                }
                factor.amr()
            }
        };
        let elevated = self.sessions.reauthenticated(current, method, now).await?;
        self.audit(
            Event::new(kind::SESSION_REAUTHENTICATED, client, now)
                .user(user.id)
                .session(&record.public_id)
                .detail("method", method.as_str()),
        )
        .await;
        Ok(elevated)
    }

    /// `authauth users mfa reset`: removes every second factor of the account and ends every
    /// session (`mfa_reset`), for an owner who lost theirs. Returns whether there was one and
    /// how many sessions ended.
    pub async fn operator_reset_mfa(
        &self,
        user: &User,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<(bool, usize), AuthError> {
        let had = self.remove_factors(user.id).await?;
        let ended = self
            .sessions
            .revoke_user(&user.id, None, reason::MFA_RESET, None, client, now)
            .await?;
        self.audit(
            Event::new(kind::MFA_RESET, client, now)
                .user(user.id)
                .detail("had_factors", had)
                .detail("sessions_ended", ended.len() as u64),
        )
        .await;
        Ok((had, ended.len()))
    }
}

/// The QR code of `text` as an SVG document.
fn qr_svg(text: &str) -> Result<String, AuthError> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M)
        .map_err(|e| anyhow::anyhow!("cannot draw the QR code: {e}"))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// Deletes every second factor of the account — the app, the passkeys, the recovery codes —
/// as part of the caller's transaction; whether it had an app or a passkey.
pub(crate) async fn delete_factors(txn: &impl ConnectionTrait, user_id: Uuid) -> Result<bool, DbErr> {
    let totp = totp_factors::Entity::delete_many()
        .filter(totp_factors::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    let keys = crate::entities::passkeys::Entity::delete_many()
        .filter(crate::entities::passkeys::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    recovery_codes::Entity::delete_many()
        .filter(recovery_codes::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    Ok(totp.rows_affected + keys.rows_affected > 0)
}
