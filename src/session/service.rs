//! The session lifecycle, as one service used by the HTTP API and the operator CLI alike:
//! create, validate (with sliding refresh and rotation), list, revoke.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    policy::{Due, Policy},
    record::{
        Amr, Millis, Predecessor, Rotated, SessionKey, SessionRecord, SignInMethod, Stage, Stored,
        UserSnapshot,
    },
    store::{Created, Limit, Revocation, SessionStore, StoreError, Which},
    token::{slot_tag, CookieSigner, SessionToken, TokenHash},
};
use crate::{
    audit::{kind, Actor, Audit, Event},
    metrics::Metrics,
};

/// Stable reasons a session ends (the `reason` of a `session_revoked` answer).
pub mod reason {
    /// The user signed out of this session.
    pub const LOGOUT: &str = "logout";
    /// The user signed out of every session.
    pub const LOGOUT_ALL: &str = "logout_all";
    /// The user ended this session from another one.
    pub const REVOKED_BY_USER: &str = "revoked_by_user";
    /// The password changed; every other session ended.
    pub const PASSWORD_CHANGED: &str = "password_changed";
    /// An operator disabled the account.
    pub const USER_DISABLED: &str = "user_disabled";
    /// An operator revoked the session (`authauth sessions revoke`).
    pub const OPERATOR: &str = "operator";
    /// A new sign-in in the same browser replaced it.
    pub const SUPERSEDED: &str = "superseded";
    /// A verified identity provider account was linked; earlier sessions could belong to
    /// whoever signed up with the address before its owner.
    pub const IDENTITY_LINKED: &str = "identity_linked";
    /// A new sign-in would have passed `MAX_SESSIONS_PER_USER`; this was the least recently
    /// used session.
    pub const SESSION_LIMIT: &str = "session_limit";
    /// The password was reset with an e-mailed link; every session ended.
    pub const PASSWORD_RESET: &str = "password_reset";
    /// The owner said "this wasn't me" from a new-device alert.
    pub const REPORTED_BY_USER: &str = "reported_by_user";
    /// A half-finished sign-in (second factor, enrolment) was finished: it goes on as a new
    /// session, under a new id.
    pub const SIGN_IN_COMPLETED: &str = "sign_in_completed";
    /// Too many wrong codes were given to finish this sign-in.
    pub const SECOND_FACTOR_FAILED: &str = "second_factor_failed";
    /// An operator removed the account's second factors (`authauth users mfa reset`).
    pub const MFA_RESET: &str = "mfa_reset";
    /// A sign-in that had to enrol a second factor (`MFA_REQUIRED`) tried to act after the
    /// account got one from another session: it proves too little now, and must start again.
    pub const SIGN_IN_OUTDATED: &str = "sign_in_outdated";
}

/// How long a sign-in waits for its second factor before it must start again.
pub const SECOND_FACTOR_LIFETIME: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// How long a sign-in that must enrol a second factor (`MFA_REQUIRED`) has to do it.
pub const ENROLMENT_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// What a sign-in proved, and how far that got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub stage: Stage,
    /// The methods used, in order.
    pub amr: Vec<Amr>,
}

impl Proof {
    /// A sign-in finished with one method.
    pub fn complete(method: SignInMethod) -> Proof {
        Proof {
            stage: Stage::Complete,
            amr: vec![Amr::of(method)],
        }
    }
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No cookie, or one this server did not issue (bad shape or signature).
    #[error("no valid session cookie")]
    NoSession,
    /// The session timed out (idle or absolute), or its token was replaced long ago.
    #[error("the session has expired")]
    Expired,
    /// The session was ended; `reason` is a stable code, `message` an operator's note.
    #[error("the session was revoked ({reason})")]
    Revoked { reason: String, message: Option<String> },
    /// The store did not answer: fail closed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The account has its maximum of live sessions and the limit refuses new ones.
    #[error("this account already has {max} sessions, the most allowed; sign out of one first")]
    LimitReached { max: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where an action comes from: recorded on the session it creates and in the audit trail.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// Set when an operator acts from the CLI: their OS login.
    pub operator: Option<String>,
}

impl ClientInfo {
    /// An operator at the CLI, by OS login.
    pub fn operator(login: String) -> ClientInfo {
        ClientInfo {
            operator: Some(login),
            ..ClientInfo::default()
        }
    }
}

/// Reasons authauth itself ends a session for, whoever's request caused it.
fn ended_by_system(reason: &str) -> bool {
    matches!(
        reason,
        reason::SUPERSEDED | reason::SESSION_LIMIT | reason::IDENTITY_LINKED
    )
}

/// A session just created: the cookie value to send and the record.
#[derive(Debug)]
pub struct Issued {
    pub cookie_value: String,
    pub record: SessionRecord,
}

/// A request's session after validation.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Shared with the store's cache of decoded records (see [`Stored`]).
    pub record: Arc<SessionRecord>,
    pub key: SessionKey,
    /// Set when this request rotated the token: the response must carry the new cookie.
    pub new_cookie: Option<String>,
}

/// Whether the answer to a validation reaches the browser's cookie jar, which decides whether
/// the session may be rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The browser itself asked (or a proxy that passes `Set-Cookie` on to it): refresh and
    /// rotate as due.
    Browser,
    /// A server checking the session on the browser's behalf: a new cookie would never reach
    /// the browser, so nothing is rotated; only the sliding expiry is refreshed (see
    /// [`Policy::due_passive`]).
    Passive,
}

/// A cookie the store says is live, read but not acted on yet (see [`Sessions::check`]).
#[derive(Debug)]
pub struct Presented {
    key: SessionKey,
    live: Live,
}

#[derive(Debug)]
enum Live {
    /// The current token of its session.
    Current(Arc<SessionRecord>),
    /// A rotated token within its grace: the same session, nothing to extend.
    InGrace(Arc<SessionRecord>),
}

impl Presented {
    /// The session this cookie belongs to.
    pub fn record(&self) -> &SessionRecord {
        match &self.live {
            Live::Current(r) | Live::InGrace(r) => r,
        }
    }

    /// True for the session's current token, false for a predecessor still in grace.
    pub fn is_current(&self) -> bool {
        matches!(self.live, Live::Current(_))
    }
}

/// The session service.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    signer: CookieSigner,
    policy: Policy,
    metrics: Metrics,
    audit: Audit,
}

impl Sessions {
    pub fn new(
        store: Arc<dyn SessionStore>,
        signer: CookieSigner,
        policy: Policy,
        metrics: Metrics,
        audit: Audit,
    ) -> Self {
        Sessions {
            store,
            signer,
            policy,
            metrics,
            audit,
        }
    }

    /// The audit trail sessions record to (shared with the sign-in service).
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Records that `ended` ended for `reason`, caused from `by`.
    async fn record_ended(
        &self,
        ended: &[SessionRecord],
        reason: &str,
        message: Option<&str>,
        by: &ClientInfo,
        now: Millis,
    ) {
        for r in ended {
            let mut event = Event::new(kind::SESSION_ENDED, by, now)
                .user(r.user_id)
                .session(&r.public_id)
                .reason(reason);
            if ended_by_system(reason) {
                event = event.by(Actor::System);
            }
            if let Some(note) = message {
                event = event.detail("message", note);
            }
            self.audit.record(event).await;
        }
    }

    pub fn store(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    /// The cookie signer (also used for device cookies).
    pub fn signer(&self) -> &CookieSigner {
        &self.signer
    }

    /// Creates a brand-new session (new token, new public id) for a user who just proved who
    /// they are. Never reuses a token presented by the client.
    pub async fn create(
        &self,
        user_id: Uuid,
        user: UserSnapshot,
        method: SignInMethod,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<Issued, CreateError> {
        self.create_proved(user_id, user, method, Proof::complete(method), client, now)
            .await
    }

    /// [`Sessions::create`] for a sign-in that says what it proved: a session that is not
    /// [`Stage::Complete`] lives only [`SECOND_FACTOR_LIFETIME`] (or [`ENROLMENT_LIFETIME`]) and
    /// counts toward no limit.
    pub async fn create_proved(
        &self,
        user_id: Uuid,
        user: UserSnapshot,
        method: SignInMethod,
        proof: Proof,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<Issued, CreateError> {
        let (idle, absolute) = match proof.stage {
            Stage::Complete => self.policy.initial_expiry(now),
            Stage::SecondFactor | Stage::Enrolment => {
                let lifetime = match proof.stage {
                    Stage::SecondFactor => SECOND_FACTOR_LIFETIME,
                    _ => ENROLMENT_LIFETIME,
                };
                let (idle, absolute) = self.policy.initial_expiry(now);
                let end = now.saturating_add(lifetime.as_millis() as Millis);
                (idle.min(end), absolute.min(end))
            }
        };
        let stage = proof.stage;
        let record = SessionRecord {
            public_id: SessionRecord::new_public_id(&user_id),
            user_id,
            user,
            method,
            created_at: now,
            last_seen_at: now,
            idle_expires_at: idle,
            absolute_expires_at: absolute,
            token_issued_at: now,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            previous: None,
            stage: proof.stage,
            amr: proof.amr,
            authenticated_at: Some(now),
        };
        let token = SessionToken::generate();
        let limit = Limit {
            max: self.policy.max_per_user,
            action: self.policy.on_limit,
            revocation: self.revocation(reason::SESSION_LIMIT, None),
        };
        match self.store.create(&token.hash(), &record, &limit, now).await? {
            Created::Refused => {
                tracing::info!(user = %user_id, max = limit.max, "sign-in refused: session limit reached");
                return Err(CreateError::LimitReached { max: limit.max });
            }
            Created::Created { ended } => {
                for r in &ended {
                    tracing::info!(session = %r.public_id, user = %user_id, reason = reason::SESSION_LIMIT, "session revoked");
                }
                if !ended.is_empty() {
                    self.metrics.sessions_ended(reason::SESSION_LIMIT, ended.len());
                    self.record_ended(&ended, reason::SESSION_LIMIT, None, client, now)
                        .await;
                }
            }
        }
        let amr = record
            .amr()
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        tracing::info!(session = %record.public_id, user = %user_id, method = method.as_str(), amr, stage = stage.as_str(), "session created");
        let mut event = Event::new(kind::SESSION_CREATED, client, now)
            .user(user_id)
            .session(&record.public_id)
            .detail("method", method.as_str())
            .detail("amr", amr.as_str());
        if stage.is_complete() {
            self.metrics.session_created(method.as_str());
        } else {
            event = event.detail("stage", stage.as_str());
        }
        self.audit.record(event).await;
        Ok(Issued {
            cookie_value: self.signer.sign(&token, &slot_tag(&user_id)),
            record,
        })
    }

    /// Validates a cookie value: one store read in the common case; a sliding refresh or a
    /// rotation when due. Revocation always wins: nothing here can revive a revoked session.
    pub async fn validate(&self, cookie_value: &str, now: Millis) -> Result<Validated, SessionError> {
        self.validate_for(cookie_value, Delivery::Browser, now).await
    }

    /// [`Sessions::validate`] for a caller that says whether its answer reaches the browser: a
    /// [`Delivery::Passive`] check never rotates.
    pub async fn validate_for(
        &self,
        cookie_value: &str,
        delivery: Delivery,
        now: Millis,
    ) -> Result<Validated, SessionError> {
        let presented = self.check(cookie_value, now).await?;
        self.settle_for(presented, delivery, now).await
    }

    /// The read half of [`Sessions::validate`]: verifies the signature and reads the store once,
    /// writing nothing. Lets a caller holding several cookies learn which are live before it
    /// acts on any of them.
    pub async fn check(&self, cookie_value: &str, now: Millis) -> Result<Presented, SessionError> {
        let cookie = self.signer.verify(cookie_value).ok_or(SessionError::NoSession)?;
        let key = SessionKey {
            slot: cookie.slot.to_string(),
            hash: cookie.token_hash(),
        };
        match self.store.load(&key, now).await? {
            // Signed by us but unknown to the store: it timed out (or its tombstone did).
            None => Err(SessionError::Expired),
            Some(Stored::Revoked(t)) => Err(SessionError::Revoked {
                reason: t.reason,
                message: t.message,
            }),
            Some(Stored::Rotated(r)) => {
                // A parallel request or another tab still holds the previous token: accept it
                // as the same session until the grace period ends, without extending anything
                // — while the session lives (rare paths are boxed: see `settle_for`).
                if now >= r.grace_until || r.record.is_expired(now) {
                    Err(SessionError::Expired)
                } else {
                    let successor = SessionKey {
                        slot: key.slot.clone(),
                        hash: TokenHash::from_b64(&r.successor).ok_or(SessionError::Expired)?,
                    };
                    Box::pin(self.current_of(successor, now)).await?;
                    Ok(Presented {
                        key,
                        live: Live::InGrace(Arc::new(r.record)),
                    })
                }
            }
            Some(Stored::Active(record)) if record.is_expired(now) => Err(SessionError::Expired),
            Some(Stored::Active(record)) => Ok(Presented {
                key,
                live: Live::Current(record),
            }),
        }
    }

    /// The session's current token and record, from `key`: its own, or — `key` replaced by a
    /// rotation and still in its grace — the token that replaced it, followed through further
    /// rotations. A revocation ends a session's current token and the one before it (all a
    /// record names); a token further back — two rotations within one grace, as a step-up on
    /// the request that rotated makes — is only as good as the tokens after it, so it ends with
    /// them, with the same reason. Read only for tokens in grace and step-ups, never on the
    /// usual path.
    async fn current_of(
        &self,
        mut key: SessionKey,
        now: Millis,
    ) -> Result<(SessionKey, Arc<SessionRecord>), SessionError> {
        /// Rotations one grace period can hold, and then some.
        const FOLLOWED: usize = 5;
        for _ in 0..FOLLOWED {
            match self.store.load(&key, now).await? {
                Some(Stored::Active(record)) if !record.is_expired(now) => return Ok((key, record)),
                Some(Stored::Rotated(r)) if now < r.grace_until => {
                    key.hash = TokenHash::from_b64(&r.successor).ok_or(SessionError::Expired)?;
                }
                Some(Stored::Revoked(t)) => {
                    return Err(SessionError::Revoked {
                        reason: t.reason,
                        message: t.message,
                    })
                }
                _ => break,
            }
        }
        Err(SessionError::Expired)
    }

    /// The write half of [`Sessions::validate`]: the sliding refresh or rotation a live session
    /// is due, if any.
    pub async fn settle(&self, presented: Presented, now: Millis) -> Result<Validated, SessionError> {
        self.settle_for(presented, Delivery::Browser, now).await
    }

    /// [`Sessions::settle`], rotating only when the answer reaches the browser.
    pub async fn settle_for(
        &self,
        presented: Presented,
        delivery: Delivery,
        now: Millis,
    ) -> Result<Validated, SessionError> {
        let Presented { key, live } = presented;
        let record = match live {
            Live::InGrace(record) => {
                return Ok(Validated {
                    record,
                    key,
                    new_cookie: None,
                })
            }
            Live::Current(record) => record,
        };
        let due = match delivery {
            Delivery::Browser => self.policy.due(&record, now),
            Delivery::Passive => self.policy.due_passive(&record, now),
        };
        match due {
            Due::Nothing => Ok(Validated {
                record,
                key,
                new_cookie: None,
            }),
            Due::Touch => {
                let next = self.policy.touched(&record, now);
                // Rare paths are boxed, so the future of every request stays small
                // (it is moved through several boxed middleware layers).
                let record = if Box::pin(self.store.touch(&key.hash, &next, now)).await? {
                    Arc::new(next)
                } else {
                    record
                };
                Ok(Validated {
                    record,
                    key,
                    new_cookie: None,
                })
            }
            Due::Rotate => Box::pin(self.rotate(&record, key, now)).await,
        }
    }

    /// Replaces the token of an active session. Exactly one of several parallel requests
    /// wins; the others carry on with the old token, valid for the grace period.
    /// What replacing the token of `record` (under `key`) writes: the new token and its hash,
    /// the record under it (touched, issued now, the old token as its predecessor in grace), and
    /// what the old token becomes.
    fn successor(
        &self,
        record: &SessionRecord,
        key: &SessionKey,
        now: Millis,
    ) -> (SessionToken, TokenHash, SessionRecord, Rotated) {
        let token = SessionToken::generate();
        let new_hash = token.hash();
        let grace_until = now + self.policy.grace_ms();
        let mut next = self.policy.touched(record, now);
        next.token_issued_at = now;
        next.previous = Some(Predecessor {
            hash: key.hash.to_b64(),
            grace_until,
        });
        let rotated = Rotated {
            record: record.clone(),
            successor: new_hash.to_b64(),
            grace_until,
        };
        (token, new_hash, next, rotated)
    }

    async fn rotate(
        &self,
        record: &SessionRecord,
        key: SessionKey,
        now: Millis,
    ) -> Result<Validated, SessionError> {
        let (token, new_hash, next, rotated) = self.successor(record, &key, now);
        if self
            .store
            .rotate(&key.hash, &new_hash, &next, &rotated, now)
            .await?
        {
            tracing::info!(session = %next.public_id, "session token rotated");
            self.metrics.session_rotated();
            self.audit
                .record(
                    Event::new(kind::SESSION_ROTATED, &ClientInfo::default(), now)
                        .user(next.user_id)
                        .session(&next.public_id),
                )
                .await;
            Ok(Validated {
                new_cookie: Some(self.signer.sign(&token, &key.slot)),
                record: Arc::new(next),
                key: SessionKey {
                    slot: key.slot,
                    hash: new_hash,
                },
            })
        } else {
            // Someone else rotated (or revoked) first: re-read to learn which.
            match self.store.load(&key, now).await? {
                Some(Stored::Revoked(t)) => Err(SessionError::Revoked {
                    reason: t.reason,
                    message: t.message,
                }),
                Some(Stored::Rotated(r)) if now < r.grace_until => Ok(Validated {
                    record: Arc::new(r.record),
                    key,
                    new_cookie: None,
                }),
                Some(Stored::Active(record)) if !record.is_expired(now) => Ok(Validated {
                    record,
                    key,
                    new_cookie: None,
                }),
                _ => Err(SessionError::Expired),
            }
        }
    }

    /// Finishes a half-finished sign-in (`record`, a [`Stage::SecondFactor`] or
    /// [`Stage::Enrolment`] session): it ends (`sign_in_completed`) and a brand-new session —
    /// new token, new public id — carries on with `proof`. Ending first means a failure on the
    /// way leaves no second live session, only a sign-in to start again.
    pub async fn complete(
        &self,
        record: &SessionRecord,
        proof: Proof,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<Issued, CreateError> {
        let ended = self
            .store
            .revoke(
                &record.user_id,
                Which::One(&record.public_id),
                &self.revocation(reason::SIGN_IN_COMPLETED, None),
                now,
            )
            .await?;
        if ended.is_empty() {
            // Revoked or expired meanwhile: nothing to finish.
            return Err(CreateError::Store(StoreError::conflict(
                "the sign-in ended before it could be completed",
            )));
        }
        self.create_proved(
            record.user_id,
            record.user.clone(),
            record.method,
            proof,
            client,
            now,
        )
        .await
    }

    /// Marks the request's session as re-authenticated now with `method` (step-up): its
    /// `authenticated_at` moves to `now`, `method` joins its `amr`, and — a change of privilege —
    /// its token is replaced (the old one stays valid, unelevated, for the rotation grace).
    /// Returns the session with the new cookie to set.
    ///
    /// The proof is the session's, whichever of its tokens it came with: a token still in its
    /// grace (another tab rotated it), or one a parallel request rotated while this one was
    /// proving, leads to the session's current token, which is replaced instead. Callers have
    /// often done something that cannot be undone by now (a code used, recovery codes
    /// replaced), so only a session that ended meanwhile makes this fail — with why it ended,
    /// as a request would learn it.
    pub async fn reauthenticated(
        &self,
        current: &Validated,
        method: Amr,
        now: Millis,
    ) -> Result<Validated, SessionError> {
        /// Attempts at most: each one past the first follows a rotation that raced this one.
        const ATTEMPTS: usize = 5;
        let mut key = current.key.clone();
        for _ in 0..ATTEMPTS {
            let record;
            (key, record) = self.current_of(key, now).await?;
            if record.public_id != current.record.public_id {
                return Err(SessionError::Expired);
            }
            let (token, new_hash, mut next, rotated) = self.successor(&record, &key, now);
            next.authenticated_at = Some(now);
            next.amr = record.amr();
            if !next.amr.contains(&method) {
                next.amr.push(method);
            }
            if self
                .store
                .rotate(&key.hash, &new_hash, &next, &rotated, now)
                .await?
            {
                tracing::info!(session = %next.public_id, user = %next.user_id, method = method.as_str(), "session re-authenticated");
                return Ok(Validated {
                    new_cookie: Some(self.signer.sign(&token, &key.slot)),
                    record: Arc::new(next),
                    key: SessionKey {
                        slot: key.slot,
                        hash: new_hash,
                    },
                });
            }
            // A rotation or a revocation won: read again to learn which.
        }
        Err(SessionError::Store(StoreError::conflict(
            "the session kept changing while it was being re-authenticated",
        )))
    }

    fn revocation(&self, reason: &'static str, message: Option<String>) -> Revocation {
        Revocation { reason, message }
    }

    /// Revokes one session of a user. Returns false when the user has no such live session
    /// (which is also the answer for another user's session id).
    pub async fn revoke_one(
        &self,
        user_id: &Uuid,
        public_id: &str,
        reason: &'static str,
        message: Option<String>,
        by: &ClientInfo,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let revoked = self
            .store
            .revoke(
                user_id,
                Which::One(public_id),
                &self.revocation(reason, message.clone()),
                now,
            )
            .await?;
        for r in &revoked {
            tracing::info!(session = %r.public_id, user = %user_id, reason, "session revoked");
        }
        if !revoked.is_empty() {
            self.metrics.sessions_ended(reason, revoked.len());
            self.record_ended(&revoked, reason, message.as_deref(), by, now)
                .await;
        }
        Ok(!revoked.is_empty())
    }

    /// Revokes every session of a user, except `except` if given. Returns what was revoked.
    pub async fn revoke_user(
        &self,
        user_id: &Uuid,
        except: Option<&str>,
        reason: &'static str,
        message: Option<String>,
        by: &ClientInfo,
        now: Millis,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let revoked = self
            .store
            .revoke(
                user_id,
                Which::AllExcept(except),
                &self.revocation(reason, message.clone()),
                now,
            )
            .await?;
        tracing::info!(user = %user_id, count = revoked.len(), reason, "sessions revoked");
        if !revoked.is_empty() {
            self.metrics.sessions_ended(reason, revoked.len());
            self.record_ended(&revoked, reason, message.as_deref(), by, now)
                .await;
        }
        Ok(revoked)
    }

    /// A user's live sessions, newest first.
    pub async fn list_user(&self, user_id: &Uuid, now: Millis) -> Result<Vec<SessionRecord>, StoreError> {
        let mut sessions = self.store.list_user(user_id, now).await?;
        sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(sessions)
    }

    /// Puts the account's current snapshot into each of its live sessions (see
    /// [`SessionStore::update_user`]), so `/auth/me` shows the change at once everywhere.
    pub async fn update_user(
        &self,
        user_id: &Uuid,
        user: &super::record::UserSnapshot,
        now: Millis,
    ) -> Result<usize, StoreError> {
        self.store.update_user(user_id, user, now).await
    }

    /// A live session by public id.
    pub async fn find(&self, public_id: &str, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        self.store.find(public_id, now).await
    }
}
