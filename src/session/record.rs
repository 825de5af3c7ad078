//! What the store keeps under a token hash: an active session, a rotated token still in its
//! grace period, or a revocation tombstone.
//!
//! The encoding is `<state>|<json>`, with `state` one byte (`A`, `R`, `X`), so the Redis scripts
//! can check a key's state with a string comparison — no JSON parsing in Lua, and no way for a
//! write meant for an active session to land on a revoked one.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::token::{random_b64, slot_tag, TokenHash};

/// The first character of every public id issued now (see [`SessionRecord::new_public_id`]).
const PUBLIC_ID_PREFIX: char = 's';

/// The shape of a public session id, as the API documents it for `DELETE /auth/sessions/{id}`:
/// exactly what [`is_public_id`] accepts, ids issued before the prefix included (a test holds
/// the two together).
pub const PUBLIC_ID_PATTERN: &str = "^s?[A-Za-z0-9_-]{24}$";

/// True when `s` has the shape of a public session id ([`SessionRecord::new_public_id`]).
pub fn is_public_id(s: &str) -> bool {
    SessionRecord::slot_of_public_id(s).is_some()
}

/// Milliseconds since the Unix epoch: the store's clock unit.
pub type Millis = i64;

pub fn datetime(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How the person signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignInMethod {
    Password,
    Google,
    /// A passkey, with no password.
    Passkey,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Password => "password",
            SignInMethod::Google => "google",
            SignInMethod::Passkey => "passkey",
        }
    }
}

/// How far the sign-in that made a session got. Only a [`Stage::Complete`] session is signed in;
/// the others exist to finish their sign-in and are refused everywhere else (`mfa_required`,
/// `mfa_enrolment_required`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Signed in.
    #[default]
    Complete,
    /// The first factor (password, Google) is proven and the account has a second one, which
    /// `POST /auth/mfa/verify` takes. Lives a few minutes and never counts toward
    /// `MAX_SESSIONS_PER_USER`.
    SecondFactor,
    /// Signed in on a server that requires a second factor (`MFA_REQUIRED`) by an account that
    /// has none yet: it can only enrol one, which completes it.
    Enrolment,
}

impl Stage {
    pub fn is_complete(&self) -> bool {
        *self == Stage::Complete
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Complete => "complete",
            Stage::SecondFactor => "second_factor",
            Stage::Enrolment => "enrolment",
        }
    }
}

/// An authentication method a session's sign-in used (`amr`, after RFC 8176 where it has a
/// value for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Amr {
    /// A password.
    #[serde(rename = "pwd")]
    Password,
    /// An OpenID provider (Google or any other).
    #[serde(rename = "google")]
    Google,
    /// A TOTP code from an authenticator app.
    #[serde(rename = "otp")]
    Totp,
    /// A single-use recovery code.
    #[serde(rename = "recovery_code")]
    RecoveryCode,
    /// A passkey (a hardware-backed key, user verified).
    #[serde(rename = "hwk")]
    Passkey,
}

impl Amr {
    pub fn as_str(self) -> &'static str {
        match self {
            Amr::Password => "pwd",
            Amr::Google => "google",
            Amr::Totp => "otp",
            Amr::RecoveryCode => "recovery_code",
            Amr::Passkey => "hwk",
        }
    }

    /// Whether this method is a second factor (something other than a password or a provider).
    pub fn is_second_factor(self) -> bool {
        matches!(self, Amr::Totp | Amr::RecoveryCode | Amr::Passkey)
    }

    /// The method a sign-in of this kind starts with.
    pub fn of(method: SignInMethod) -> Amr {
        match method {
            SignInMethod::Password => Amr::Password,
            SignInMethod::Google => Amr::Google,
            SignInMethod::Passkey => Amr::Passkey,
        }
    }
}

/// What `/auth/me` needs about the user, carried in the session so a request costs no SQL
/// query. Anything that makes it unsafe to serve (disabling the user, a password change)
/// revokes the sessions instead of editing them; harmless changes (a verified address, the
/// provider's new name) are written into every live session (`SessionStore::update_user`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSnapshot {
    pub email: String,
    pub full_name: String,
    pub picture: Option<String>,
    /// Whether the owner confirmed the address. Absent in sessions created before verification
    /// existed: `false`.
    #[serde(default)]
    pub email_verified: bool,
}

/// The previous token of a session, still accepted until `grace_until` after a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predecessor {
    pub hash: String,
    pub grace_until: Millis,
}

/// One live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Non-secret name of the session in the API, the CLI and the logs. Starts with the user's
    /// slot tag, so it locates the session in a Redis Cluster.
    pub public_id: String,
    pub user_id: Uuid,
    pub user: UserSnapshot,
    pub method: SignInMethod,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    /// Sliding: moves forward with use, never past `absolute_expires_at`.
    pub idle_expires_at: Millis,
    /// Fixed at sign-in; never extended.
    pub absolute_expires_at: Millis,
    /// When the current token was issued (at sign-in or the last rotation).
    pub token_issued_at: Millis,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The token this one replaced, while it is still in grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Predecessor>,
    /// How far its sign-in got; absent means complete (every session made before second
    /// factors existed).
    #[serde(default, skip_serializing_if = "Stage::is_complete")]
    pub stage: Stage,
    /// The methods its sign-in (and any re-authentication) used, in order. Absent in sessions
    /// made before they were recorded: then [`SessionRecord::amr`] is the sign-in method alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<Amr>,
    /// When the person last proved who they are in this session: the sign-in, or a later
    /// `POST /auth/reauthenticate`. Absent: `created_at`. Sensitive operations need it recent
    /// (`SESSION_PRIVILEGED_MAX_AGE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_at: Option<Millis>,
}

impl SessionRecord {
    /// A new public id for a session of `user_id`: `s`, the user's slot tag, 96 random bits
    /// (25 characters). The slot tag is base64url and starts with `-` for one user in 64; the
    /// fixed first letter keeps every id from looking like a command-line flag
    /// (`authauth sessions revoke <id>`).
    pub fn new_public_id(user_id: &Uuid) -> String {
        format!("{PUBLIC_ID_PREFIX}{}{}", slot_tag(user_id), random_b64(12))
    }

    /// The slot tag embedded in a public id, if it has one of the expected shapes: the current
    /// one (`s` + slot + 16 characters) or the one issued before the prefix (slot + 16
    /// characters), which live sessions may still carry.
    pub fn slot_of_public_id(public_id: &str) -> Option<&str> {
        let base64url = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let unprefixed = match public_id.len() {
            25 => public_id.strip_prefix(PUBLIC_ID_PREFIX)?,
            24 => public_id,
            _ => return None,
        };
        base64url(unprefixed).then(|| &unprefixed[..8])
    }

    /// The authentication methods of the session (see [`SessionRecord::amr`] field docs).
    pub fn amr(&self) -> Vec<Amr> {
        if self.amr.is_empty() {
            vec![Amr::of(self.method)]
        } else {
            self.amr.clone()
        }
    }

    /// The authenticator assurance level (NIST SP 800-63B): 2 when a second factor (or a
    /// passkey, which is one with user verification) was used, else 1.
    pub fn aal(&self) -> u8 {
        if self.amr.iter().any(|m| m.is_second_factor()) {
            2
        } else {
            1
        }
    }

    /// When the person last proved who they are in this session.
    pub fn authenticated_at(&self) -> Millis {
        self.authenticated_at.unwrap_or(self.created_at)
    }

    /// The moment the session ends unless used again.
    pub fn expires_at(&self) -> Millis {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    pub fn is_expired(&self, now: Millis) -> bool {
        now >= self.expires_at()
    }
}

/// Why a session ended, remembered by its tombstone for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Stable code: `logout`, `logout_all`, `revoked_by_user`, `password_changed`,
    /// `user_disabled`, `operator`.
    pub reason: String,
    /// Free text given by an operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub revoked_at: Millis,
    pub public_id: String,
}

/// A token replaced by rotation; accepted as the same session until `grace_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotated {
    pub record: SessionRecord,
    pub successor: String,
    pub grace_until: Millis,
}

/// Everything a token hash can point to.
///
/// An active record is shared: the Redis store keeps the last decoded record of each session
/// and hands the same one to every request while the stored bytes stay the same, and the
/// results derived from it (`/auth/me`'s body, a proxy's identity headers) recognise it by
/// pointer before comparing fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Active(Arc<SessionRecord>),
    /// Boxed: a token in its grace period is rare, and its record makes it the largest.
    Rotated(Box<Rotated>),
    Revoked(Tombstone),
}

#[derive(Debug, thiserror::Error)]
#[error("unreadable session entry: {0}")]
pub struct DecodeError(String);

impl Stored {
    pub fn state(&self) -> char {
        match self {
            Stored::Active(_) => 'A',
            Stored::Rotated(_) => 'R',
            Stored::Revoked(_) => 'X',
        }
    }

    pub fn encode(&self) -> String {
        match self {
            Stored::Active(r) => Stored::encode_active(r),
            Stored::Rotated(r) => Stored::encode_rotated(r),
            Stored::Revoked(t) => encoded('X', t),
        }
    }

    /// What [`Stored::Active`] with `record` encodes to, without building one.
    pub fn encode_active(record: &SessionRecord) -> String {
        encoded('A', record)
    }

    /// What [`Stored::Rotated`] with `rotated` encodes to, without building one.
    pub fn encode_rotated(rotated: &Rotated) -> String {
        encoded('R', rotated)
    }

    /// [`Stored::decode`] of bytes as a store returns them.
    pub fn decode_bytes(raw: &[u8]) -> Result<Stored, DecodeError> {
        Stored::decode(std::str::from_utf8(raw).map_err(|e| DecodeError(e.to_string()))?)
    }

    pub fn decode(raw: &str) -> Result<Stored, DecodeError> {
        let (state, json) = raw
            .split_once('|')
            .ok_or_else(|| DecodeError("no state marker".into()))?;
        let err = |e: serde_json::Error| DecodeError(e.to_string());
        match state {
            "A" => Ok(Stored::Active(Arc::new(serde_json::from_str(json).map_err(err)?))),
            "R" => Ok(Stored::Rotated(Box::new(
                serde_json::from_str(json).map_err(err)?,
            ))),
            "X" => Ok(Stored::Revoked(serde_json::from_str(json).map_err(err)?)),
            other => Err(DecodeError(format!("unknown state `{other}`"))),
        }
    }
}

/// `<state>|<json>`.
fn encoded(state: char, value: &impl Serialize) -> String {
    // Serialising these plain structs cannot fail.
    format!("{state}|{}", serde_json::to_string(value).unwrap_or_default())
}

/// Where a session lives: its user's slot tag and its token hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub slot: String,
    pub hash: TokenHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_id_pattern_is_the_id_shape() {
        let pattern = regex::Regex::new(PUBLIC_ID_PATTERN).unwrap();
        for _ in 0..1000 {
            let id = SessionRecord::new_public_id(&Uuid::new_v4());
            assert!(pattern.is_match(&id) && is_public_id(&id), "{id}");
        }
        for id in [
            "",
            "x",
            "AAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAAAA",
            "sAAAAAAAAAAAAAAAAAAAAAAAA",
            "ssAAAAAAAAAAAAAAAAAAAAAAA",
            "sAAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAA!",
            "AAAAAAAAAAAAAAAAAAAAAAA=",
            "AAAAAAAAAAAAAAAAAAAAAAAé",
            "-_-_-_-_-_-_-_-_-_-_-_-_",
        ] {
            assert_eq!(pattern.is_match(id), is_public_id(id), "{id:?}");
        }
    }

    #[test]
    fn encoding_round_trips_and_marks_the_state() {
        let user_id = Uuid::new_v4();
        let record = SessionRecord {
            public_id: SessionRecord::new_public_id(&user_id),
            user_id,
            user: UserSnapshot {
                email: "a@example.com".into(),
                full_name: "A".into(),
                picture: None,
                email_verified: false,
            },
            method: SignInMethod::Password,
            created_at: 1,
            last_seen_at: 2,
            idle_expires_at: 3,
            absolute_expires_at: 4,
            token_issued_at: 1,
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            previous: None,
            stage: Stage::Complete,
            amr: Vec::new(),
            authenticated_at: None,
        };
        let active = Stored::Active(Arc::new(record.clone()));
        assert_eq!(Stored::encode_active(&record), active.encode());
        assert!(active.encode().starts_with("A|{"));
        assert_eq!(Stored::decode(&active.encode()).unwrap(), active);
        let tomb = Stored::Revoked(Tombstone {
            reason: "operator".into(),
            message: Some("stolen laptop".into()),
            revoked_at: 5,
            public_id: record.public_id.clone(),
        });
        assert!(tomb.encode().starts_with("X|"));
        assert_eq!(Stored::decode(&tomb.encode()).unwrap(), tomb);
        let rotated = Rotated {
            record: record.clone(),
            successor: "successor-hash".into(),
            grace_until: 6,
        };
        assert_eq!(
            Stored::decode(&Stored::encode_rotated(&rotated)).unwrap(),
            Stored::Rotated(Box::new(rotated))
        );
        assert!(Stored::decode("garbage").is_err());
        assert_eq!(Stored::decode_bytes(active.encode().as_bytes()).unwrap(), active);
        // Bytes that are not UTF-8 are refused, not guessed at: the record with one byte of its
        // address replaced by 0xFF.
        let mut broken = active.encode().into_bytes();
        let at = broken.windows(13).position(|w| w == b"a@example.com").unwrap();
        broken[at] = 0xFF;
        assert!(Stored::decode_bytes(&broken).is_err());
        assert_eq!(
            SessionRecord::slot_of_public_id(&record.public_id),
            Some(&slot_tag(&user_id)[..])
        );
    }

    /// A user whose slot tag starts with `-`: one in 64 users has one.
    fn user_with_hyphen_slot() -> Uuid {
        (0u128..)
            .map(Uuid::from_u128)
            .find(|u| slot_tag(u).starts_with('-'))
            .unwrap()
    }

    #[test]
    fn public_ids_never_start_with_a_hyphen_and_still_locate_their_slot() {
        let hyphen_user = user_with_hyphen_slot();
        let users = std::iter::once(hyphen_user).chain((0..10_000).map(|_| Uuid::new_v4()));
        for user_id in users {
            let id = SessionRecord::new_public_id(&user_id);
            assert!(!id.starts_with('-'), "{id} would be read as a command-line flag");
            assert_eq!(
                SessionRecord::slot_of_public_id(&id),
                Some(&slot_tag(&user_id)[..]),
                "{id}"
            );
        }
    }

    #[test]
    fn ids_issued_before_the_prefix_still_locate_their_slot() {
        let user_id = user_with_hyphen_slot();
        let legacy = format!("{}{}", slot_tag(&user_id), random_b64(12));
        assert_eq!(legacy.len(), 24);
        assert_eq!(
            SessionRecord::slot_of_public_id(&legacy),
            Some(&slot_tag(&user_id)[..])
        );
        assert_eq!(SessionRecord::slot_of_public_id("-abc"), None);
    }
}
