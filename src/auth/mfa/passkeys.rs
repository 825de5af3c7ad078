//! Passkeys (WebAuthn, with kanidm's `webauthn-rs`): register several per account, sign in with
//! one and no password (a discoverable credential, user verification required), use one as the
//! second factor after a password or provider sign-in, or to re-authenticate.
//!
//! A ceremony's state (its challenge) stays on the server, in the flow store for
//! [`CEREMONY_TTL`], under a random id the browser holds in an HttpOnly cookie; it is taken
//! once. Each passkey's signature counter is stored after every use: an assertion whose counter
//! does not move forward comes from a cloned authenticator, and is refused and recorded.

use std::{sync::Arc, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, SqlErr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse,
    Webauthn, WebauthnBuilder, WebauthnError,
};

use super::{Auth, AuthError, Proved};
use crate::{
    audit::{kind, Event},
    auth::{flows::FlowStore, throttle},
    config::PasskeySettings,
    entities::passkeys,
    session::{
        record::{Amr, Millis, SessionRecord, SignInMethod, Stage},
        service::{ClientInfo, Proof},
        token::{random_b64, SessionToken},
        Validated,
    },
};

/// How long a ceremony may take (the browser's own timeout is 5 minutes).
pub const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);
/// The most passkeys one account may have.
pub const MAX_PER_ACCOUNT: u64 = 20;

/// The relying party, built once from the configuration.
#[derive(Clone)]
pub struct Relying {
    webauthn: Arc<Webauthn>,
    flows: Arc<dyn FlowStore>,
}

impl std::fmt::Debug for Relying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relying(..)")
    }
}

impl Relying {
    /// `None` when the settings do not make a valid relying party (already reported by the
    /// configuration check).
    pub fn new(settings: &PasskeySettings, name: &str, flows: Arc<dyn FlowStore>) -> Option<Relying> {
        let webauthn = WebauthnBuilder::new(&settings.rp_id, &settings.origin)
            .ok()?
            .rp_name(name)
            .allow_any_port(settings.any_port)
            .timeout(CEREMONY_TTL)
            .build()
            .ok()?;
        Some(Relying {
            webauthn: Arc::new(webauthn),
            flows,
        })
    }
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
}

impl From<&passkeys::Model> for PasskeyInfo {
    fn from(m: &passkeys::Model) -> Self {
        PasskeyInfo {
            id: m.id,
            name: m.name.clone(),
            created_at: m.created_at,
            last_used_at: m.last_used_at,
        }
    }
}

/// What a ceremony keeps between its start and its finish.
#[derive(Serialize, Deserialize)]
enum Ceremony {
    Register {
        user_id: Uuid,
        session: String,
        name: String,
        state: PasskeyRegistration,
    },
    /// A sign-in that names no account: whoever's passkey answers.
    SignIn { state: DiscoverableAuthentication },
    /// The second factor of a sign-in, or a re-authentication: this account's passkeys only.
    Account {
        user_id: Uuid,
        session: String,
        state: PasskeyAuthentication,
    },
}

/// A ceremony started: the id the browser keeps (in a cookie), and the options for it.
pub struct Started<T> {
    pub ceremony: String,
    pub options: T,
}

/// A registered passkey, and what its registration did to the session.
pub struct Registered {
    pub passkey: PasskeyInfo,
    /// Recovery codes, issued with the account's first second factor (shown once).
    pub recovery_codes: Option<Vec<String>>,
    pub session: Proved,
}

fn ceremony_key(id: &str) -> String {
    // Stored under a digest of the id the browser holds, like a sign-in flow.
    format!("passkey:{}", SessionToken::from_raw(id).hash().to_b64())
}

fn refused(e: WebauthnError) -> AuthError {
    tracing::info!(error = ?e, "passkey ceremony refused");
    AuthError::PasskeyRefused
}

impl Auth {
    fn relying(&self) -> Result<&Relying, AuthError> {
        self.mfa.passkeys.as_ref().ok_or(AuthError::PasskeysOff)
    }

    async fn keep(&self, ceremony: &Ceremony, now: Millis) -> Result<String, AuthError> {
        let id = random_b64(32);
        let value = serde_json::to_string(ceremony)
            .map_err(|e| anyhow::anyhow!("cannot keep a passkey ceremony: {e}"))?;
        self.relying()?
            .flows
            .put(
                &ceremony_key(&id),
                &value,
                CEREMONY_TTL.as_millis() as Millis,
                now,
            )
            .await?;
        Ok(id)
    }

    async fn take(&self, id: Option<&str>, now: Millis) -> Result<Ceremony, AuthError> {
        let id = id.ok_or(AuthError::PasskeyRefused)?;
        let raw = self
            .relying()?
            .flows
            .take(&ceremony_key(id), now)
            .await?
            .ok_or(AuthError::PasskeyRefused)?;
        serde_json::from_str(&raw).map_err(|_| AuthError::PasskeyRefused)
    }

    /// The account's passkeys, oldest first.
    pub async fn passkeys(&self, user_id: Uuid) -> Result<Vec<PasskeyInfo>, AuthError> {
        Ok(passkeys::Entity::find()
            .filter(passkeys::Column::UserId.eq(user_id))
            .order_by_asc(passkeys::Column::CreatedAt)
            .all(&self.db)
            .await?
            .iter()
            .map(PasskeyInfo::from)
            .collect())
    }

    pub(super) async fn passkey_count(&self, user_id: Uuid) -> Result<u64, AuthError> {
        Ok(passkeys::Entity::find()
            .filter(passkeys::Column::UserId.eq(user_id))
            .count(&self.db)
            .await?)
    }

    async fn stored_passkeys(&self, user_id: Uuid) -> Result<Vec<(passkeys::Model, Passkey)>, AuthError> {
        let rows = passkeys::Entity::find()
            .filter(passkeys::Column::UserId.eq(user_id))
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                let key: Passkey = serde_json::from_str(&row.credential)
                    .map_err(|e| anyhow::anyhow!("an unreadable passkey ({}): {e}", row.id))?;
                Ok((row, key))
            })
            .collect()
    }

    /// `POST /auth/passkeys/register/start`: the options for `navigator.credentials.create`.
    /// Needs a recent proof of identity (or a sign-in that must enrol a factor).
    pub async fn start_passkey_registration(
        &self,
        current: &SessionRecord,
        name: &str,
        now: Millis,
    ) -> Result<Started<CreationChallengeResponse>, AuthError> {
        if current.stage == Stage::SecondFactor {
            return Err(AuthError::MfaNotPending);
        }
        if current.stage.is_complete() {
            self.require_recent(current, now).await?;
        }
        self.still_enrolling(current, now).await?;
        let relying = self.relying()?;
        let user = self.signed_in_user(current.user_id).await?;
        let existing = self.stored_passkeys(user.id).await?;
        if existing.len() as u64 >= MAX_PER_ACCOUNT {
            return Err(AuthError::TooManyPasskeys { max: MAX_PER_ACCOUNT });
        }
        let exclude = existing.iter().map(|(_, k)| k.cred_id().clone()).collect();
        let (mut options, state) = relying
            .webauthn
            .start_passkey_registration(user.id, &user.email, &user.full_name, Some(exclude))
            .map_err(refused)?;
        // A passkey must be discoverable (resident) to sign in without naming the account;
        // webauthn-rs asks for "discouraged", and does not check it at the finish.
        let selection = options
            .public_key
            .authenticator_selection
            .get_or_insert_with(Default::default);
        selection.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
        let ceremony = self
            .keep(
                &Ceremony::Register {
                    user_id: user.id,
                    session: current.public_id.clone(),
                    name: name.to_string(),
                    state,
                },
                now,
            )
            .await?;
        Ok(Started { ceremony, options })
    }

    /// `POST /auth/passkeys/register/finish`: stores the new passkey. The account's first
    /// second factor comes with recovery codes; a sign-in enrolling one (`MFA_REQUIRED`) is
    /// finished in a new session; a signed-in session counts as re-authenticated with it.
    pub async fn finish_passkey_registration(
        &self,
        current: &Validated,
        ceremony: Option<&str>,
        credential: &RegisterPublicKeyCredential,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        now: Millis,
    ) -> Result<Registered, AuthError> {
        let record = &current.record;
        let Ceremony::Register {
            user_id,
            session,
            name,
            state,
        } = self.take(ceremony, now).await?
        else {
            return Err(AuthError::PasskeyRefused);
        };
        if user_id != record.user_id || session != record.public_id {
            return Err(AuthError::PasskeyRefused);
        }
        let user = self.signed_in_user(user_id).await?;
        let key = self
            .relying()?
            .webauthn
            .finish_passkey_registration(credential, &state)
            .map_err(refused)?;
        let had_factor = self.factors(user.id).await?.any();
        if had_factor {
            // A factor may have arrived between the ceremony's start and its end.
            self.still_enrolling(record, now).await?;
        }
        let row = passkeys::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(user.id),
            credential_id: Set(URL_SAFE_NO_PAD.encode(key.cred_id())),
            name: Set(name),
            credential: Set(
                serde_json::to_string(&key).map_err(|e| anyhow::anyhow!("cannot store a passkey: {e}"))?
            ),
            created_at: Set(now),
            last_used_at: Set(None),
        };
        let row = match row.insert(&self.db).await {
            Ok(row) => row,
            // The same authenticator registered again (on any account): refused.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(AuthError::PasskeyRefused)
            }
            Err(e) => return Err(e.into()),
        };
        self.audit(
            Event::new(kind::PASSKEY_ADDED, client, now)
                .user(user.id)
                .session(&record.public_id)
                .detail("passkey", row.id.to_string()),
        )
        .await;
        let recovery_codes = if had_factor {
            None
        } else {
            Some(self.replace_recovery_codes(&user, now).await?)
        };
        let session = match record.stage {
            Stage::Enrolment => {
                let (issued, device) = self
                    .finish_sign_in(&user, record, Amr::Passkey, client, device_cookie, now)
                    .await?;
                Proved::SignedIn {
                    issued: Box::new(issued),
                    device,
                }
            }
            _ => Proved::Elevated(self.sessions.reauthenticated(current, Amr::Passkey, now).await?),
        };
        Ok(Registered {
            passkey: PasskeyInfo::from(&row),
            recovery_codes,
            session,
        })
    }

    /// `POST /auth/passkeys/login/start`: the options for `navigator.credentials.get`. Without
    /// a session: any passkey of this site (a sign-in with no password). With a sign-in waiting
    /// for its second factor, or a signed-in session (step-up): the account's own passkeys.
    pub async fn start_passkey_sign_in(
        &self,
        current: Option<&SessionRecord>,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<Started<RequestChallengeResponse>, AuthError> {
        let relying = self.relying()?;
        let (ceremony, options) = match current {
            None
            | Some(SessionRecord {
                stage: Stage::Enrolment,
                ..
            }) => {
                // Each start keeps a ceremony: anonymous clients may not keep them unbounded.
                if let Some(retry_after) =
                    throttle::sign_in_start(self.attempts.as_ref(), client.ip.as_deref(), now).await?
                {
                    return Err(AuthError::Throttled {
                        retry_after,
                        what: "sign-ins started from this network",
                    });
                }
                let (options, state) = relying
                    .webauthn
                    .start_discoverable_authentication()
                    .map_err(refused)?;
                (Ceremony::SignIn { state }, options)
            }
            Some(record) => {
                let keys: Vec<Passkey> = self
                    .stored_passkeys(record.user_id)
                    .await?
                    .into_iter()
                    .map(|(_, k)| k)
                    .collect();
                if keys.is_empty() {
                    return Err(AuthError::NoPasskey);
                }
                let (options, state) = relying
                    .webauthn
                    .start_passkey_authentication(&keys)
                    .map_err(refused)?;
                (
                    Ceremony::Account {
                        user_id: record.user_id,
                        session: record.public_id.clone(),
                        state,
                    },
                    options,
                )
            }
        };
        let id = self.keep(&ceremony, now).await?;
        Ok(Started {
            ceremony: id,
            options,
        })
    }

    /// `POST /auth/passkeys/login/finish`: checks the assertion against the ceremony and the
    /// stored passkey, moves its counter forward, and signs in, finishes the sign-in, or
    /// re-authenticates — whichever the ceremony was started for.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_passkey_sign_in(
        &self,
        current: Option<&Validated>,
        ceremony: Option<&str>,
        credential: &PublicKeyCredential,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        replaces: &[SessionRecord],
        now: Millis,
    ) -> Result<Proved, AuthError> {
        let result = self
            .finish_passkey_sign_in_once(
                current,
                ceremony,
                credential,
                client,
                device_cookie,
                replaces,
                now,
            )
            .await;
        // Step-up is no sign-in: only sign-ins and second steps are counted.
        if !matches!(result, Ok(Proved::Elevated(_))) {
            self.metrics.sign_in(
                SignInMethod::Passkey.as_str(),
                crate::auth::sign_in_outcome(&result),
            );
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish_passkey_sign_in_once(
        &self,
        current: Option<&Validated>,
        ceremony: Option<&str>,
        credential: &PublicKeyCredential,
        client: &ClientInfo,
        device_cookie: Option<&str>,
        replaces: &[SessionRecord],
        now: Millis,
    ) -> Result<Proved, AuthError> {
        let relying = self.relying()?;
        let ceremony = self.take(ceremony, now).await?;
        let cred_id = URL_SAFE_NO_PAD.encode(credential.get_credential_id());
        let row = passkeys::Entity::find()
            .filter(passkeys::Column::CredentialId.eq(cred_id))
            .one(&self.db)
            .await?
            .ok_or(AuthError::PasskeyRefused)?;
        let mut key: Passkey = serde_json::from_str(&row.credential)
            .map_err(|e| anyhow::anyhow!("an unreadable passkey ({}): {e}", row.id))?;
        let (result, scope) = match ceremony {
            Ceremony::SignIn { state } => {
                let (handle, _) = relying
                    .webauthn
                    .identify_discoverable_authentication(credential)
                    .map_err(refused)?;
                // The user handle the authenticator returned must be the passkey's owner.
                if handle != row.user_id {
                    return Err(AuthError::PasskeyRefused);
                }
                let result = relying
                    .webauthn
                    .finish_discoverable_authentication_v2(credential, state, &key);
                (result, None)
            }
            Ceremony::Account {
                user_id,
                session,
                state,
            } => {
                let same =
                    current.is_some_and(|v| v.record.user_id == user_id && v.record.public_id == session);
                if !same || row.user_id != user_id {
                    return Err(AuthError::PasskeyRefused);
                }
                let result = relying.webauthn.finish_passkey_authentication(credential, &state);
                (result, current)
            }
            Ceremony::Register { .. } => return Err(AuthError::PasskeyRefused),
        };
        let result = match result {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                tracing::warn!(user = %row.user_id, passkey = %row.id, "passkey refused: its signature counter went backwards (a cloned authenticator?)");
                self.audit(
                    Event::new(kind::PASSKEY_CLONED, client, now)
                        .user(row.user_id)
                        .detail("passkey", row.id.to_string())
                        .detail("name", row.name.as_str()),
                )
                .await;
                return Err(AuthError::PasskeyRefused);
            }
            Err(e) => return Err(refused(e)),
        };
        if !result.user_verified() {
            return Err(AuthError::PasskeyRefused);
        }
        // Move the counter forward; only if nobody else used this passkey meanwhile.
        key.update_credential(&result);
        let stored =
            serde_json::to_string(&key).map_err(|e| anyhow::anyhow!("cannot store a passkey: {e}"))?;
        let updated = passkeys::Entity::update_many()
            .col_expr(passkeys::Column::Credential, Expr::value(stored))
            .col_expr(passkeys::Column::LastUsedAt, Expr::value(now))
            .filter(passkeys::Column::Id.eq(row.id))
            .filter(passkeys::Column::Credential.eq(row.credential.clone()))
            .exec(&self.db)
            .await?;
        if updated.rows_affected != 1 {
            return Err(AuthError::PasskeyRefused);
        }
        let user = self.signed_in_user(row.user_id).await?;
        match scope {
            // A sign-in with no password: a passkey with user verification is two factors.
            None => {
                let issued = self
                    .start_session_proved(
                        &user,
                        Proof {
                            stage: Stage::Complete,
                            amr: vec![Amr::Passkey],
                        },
                        SignInMethod::Passkey,
                        client,
                        replaces,
                        now,
                    )
                    .await?;
                self.still_valid(&issued, |_| true, client, now).await?;
                self.audit(
                    Event::new(kind::SIGN_IN_SUCCEEDED, client, now)
                        .user(user.id)
                        .session(&issued.record.public_id)
                        .detail("method", "passkey"),
                )
                .await;
                let device = self.after_sign_in(&user, &issued.record, client, device_cookie, now);
                Ok(Proved::SignedIn {
                    issued: Box::new(issued),
                    device,
                })
            }
            Some(current) if current.record.stage == Stage::SecondFactor => {
                let (issued, device) = self
                    .finish_sign_in(&user, &current.record, Amr::Passkey, client, device_cookie, now)
                    .await?;
                self.audit(
                    Event::new(kind::SIGN_IN_SUCCEEDED, client, now)
                        .user(user.id)
                        .session(&issued.record.public_id)
                        .detail("method", "passkey"),
                )
                .await;
                Ok(Proved::SignedIn {
                    issued: Box::new(issued),
                    device,
                })
            }
            Some(current) => {
                let elevated = self.sessions.reauthenticated(current, Amr::Passkey, now).await?;
                self.audit(
                    Event::new(kind::SESSION_REAUTHENTICATED, client, now)
                        .user(user.id)
                        .session(&current.record.public_id)
                        .detail("method", Amr::Passkey.as_str()),
                )
                .await;
                Ok(Proved::Elevated(elevated))
            }
        }
    }

    /// `DELETE /auth/passkeys/{id}` (step-up needed). Another account's id is "not found".
    pub async fn delete_passkey(
        &self,
        current: &SessionRecord,
        id: Uuid,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<(), AuthError> {
        self.require_recent(current, now).await?;
        self.still_enrolling(current, now).await?;
        let deleted = passkeys::Entity::delete_many()
            .filter(passkeys::Column::Id.eq(id))
            .filter(passkeys::Column::UserId.eq(current.user_id))
            .exec(&self.db)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(AuthError::PasskeyNotFound);
        }
        if !self.factors(current.user_id).await?.any() {
            // The last factor is gone: the recovery codes that stood in for it go too.
            self.forget_recovery_codes(current.user_id).await?;
        }
        self.audit(
            Event::new(kind::PASSKEY_REMOVED, client, now)
                .user(current.user_id)
                .session(&current.public_id)
                .detail("passkey", id.to_string()),
        )
        .await;
        Ok(())
    }
}
