//! JSON shapes shared by the endpoint groups (camelCase on the wire).

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use uuid::Uuid;

use crate::session::record::{datetime, SessionRecord};

/// The signed-in person.
#[derive(Object, Debug, Clone)]
#[oai(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub full_name: String,
    pub picture: Option<String>,
}

/// A session, named by its public id (never by its token).
#[derive(Object, Debug, Clone)]
#[oai(rename_all = "camelCase")]
pub struct SessionView {
    /// The public session id: safe to show, log and pass to `DELETE /auth/sessions/{id}`.
    pub id: String,
    /// `password` or `google`.
    pub method: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// When the session ends unless used again (idle timeout), never after `absoluteExpiresAt`.
    pub expires_at: DateTime<Utc>,
    /// When the session ends however active it is.
    pub absolute_expires_at: DateTime<Utc>,
    /// The address the session was created from.
    #[oai(skip_serializing_if_is_none)]
    pub ip: Option<String>,
    /// The browser the session was created from.
    #[oai(skip_serializing_if_is_none)]
    pub user_agent: Option<String>,
    /// True for the session making this request.
    #[oai(skip_serializing_if_is_none)]
    pub current: Option<bool>,
}

impl SessionView {
    /// The view of a session; `current` is `Some` when listing a user's sessions.
    pub fn from_record(r: &SessionRecord, current: Option<bool>, client_details: bool) -> Self {
        SessionView {
            id: r.public_id.clone(),
            method: r.method.as_str().to_string(),
            created_at: datetime(r.created_at),
            last_seen_at: datetime(r.last_seen_at),
            expires_at: datetime(r.expires_at()),
            absolute_expires_at: datetime(r.absolute_expires_at),
            ip: if client_details { r.ip.clone() } else { None },
            user_agent: if client_details {
                r.user_agent.clone()
            } else {
                None
            },
            current,
        }
    }
}

/// The signed-in user and the current session.
#[derive(Object, Debug, Clone)]
pub struct Me {
    pub user: UserView,
    pub session: SessionView,
}

impl Me {
    pub fn from_record(r: &SessionRecord) -> Self {
        Me {
            user: UserView {
                id: r.user_id,
                email: r.user.email.clone(),
                full_name: r.user.full_name.clone(),
                picture: r.user.picture.clone(),
            },
            session: SessionView::from_record(r, None, false),
        }
    }
}
