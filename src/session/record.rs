//! What the store keeps under a token hash: an active session, a rotated token still in its
//! grace period, or a revocation tombstone.
//!
//! The encoding is `<state>|<json>`, with `state` one byte (`A`, `R`, `X`), so the Redis scripts
//! can check a key's state with a string comparison — no JSON parsing in Lua, and no way for a
//! write meant for an active session to land on a revoked one.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::token::{random_b64, slot_tag, TokenHash};

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
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Password => "password",
            SignInMethod::Google => "google",
        }
    }
}

/// What `/auth/me` needs about the user, carried in the session so a request costs no SQL
/// query. Anything that makes it unsafe to serve (disabling the user, a password change)
/// revokes the sessions instead of editing them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSnapshot {
    pub email: String,
    pub full_name: String,
    pub picture: Option<String>,
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
}

impl SessionRecord {
    /// A new public id for a session of `user_id`.
    pub fn new_public_id(user_id: &Uuid) -> String {
        format!("{}{}", slot_tag(user_id), random_b64(12))
    }

    /// The slot tag embedded in a public id, if it has the expected shape.
    pub fn slot_of_public_id(public_id: &str) -> Option<&str> {
        if public_id.len() == 24
            && public_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Some(&public_id[..8])
        } else {
            None
        }
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Active(SessionRecord),
    Rotated(Rotated),
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
        // Serialising these plain structs cannot fail.
        let json = match self {
            Stored::Active(r) => serde_json::to_string(r),
            Stored::Rotated(r) => serde_json::to_string(r),
            Stored::Revoked(t) => serde_json::to_string(t),
        }
        .unwrap_or_default();
        format!("{}|{json}", self.state())
    }

    pub fn decode(raw: &str) -> Result<Stored, DecodeError> {
        let (state, json) = raw
            .split_once('|')
            .ok_or_else(|| DecodeError("no state marker".into()))?;
        let err = |e: serde_json::Error| DecodeError(e.to_string());
        match state {
            "A" => Ok(Stored::Active(serde_json::from_str(json).map_err(err)?)),
            "R" => Ok(Stored::Rotated(serde_json::from_str(json).map_err(err)?)),
            "X" => Ok(Stored::Revoked(serde_json::from_str(json).map_err(err)?)),
            other => Err(DecodeError(format!("unknown state `{other}`"))),
        }
    }
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
    fn encoding_round_trips_and_marks_the_state() {
        let user_id = Uuid::new_v4();
        let record = SessionRecord {
            public_id: SessionRecord::new_public_id(&user_id),
            user_id,
            user: UserSnapshot {
                email: "a@example.com".into(),
                full_name: "A".into(),
                picture: None,
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
        };
        let active = Stored::Active(record.clone());
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
        assert!(Stored::decode("garbage").is_err());
        assert_eq!(
            SessionRecord::slot_of_public_id(&record.public_id),
            Some(&slot_tag(&user_id)[..])
        );
    }
}
