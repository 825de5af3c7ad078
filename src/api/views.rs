//! JSON shapes shared by the endpoint groups (camelCase on the wire).

use chrono::{DateTime, Utc};
use std::marker::PhantomData;

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::{
    payload::Payload,
    registry::{MetaSchemaRef, Registry},
    types::{Example, Type},
    Object,
};
use serde::Serialize;
use uuid::Uuid;

use super::fields::EMAIL_EXAMPLE;
use crate::session::record::{datetime, SessionRecord};

/// The public session id the spec shows (the shape `GET /auth/sessions` lists).
pub const SESSION_ID_EXAMPLE: &str = "snC5x9fKq3VbT0aZ2LmR8wQeY";

/// [`SESSION_ID_EXAMPLE`], as the example of a path parameter.
pub fn session_id_example() -> String {
    SESSION_ID_EXAMPLE.to_string()
}

/// A moment for the spec's examples: `2026-03-14T09:26:53Z` plus `minutes`.
fn example_time(minutes: i64) -> DateTime<Utc> {
    datetime(1_773_480_413_000 + minutes * 60_000)
}

/// A JSON response body written straight from the value by serde: the same document
/// poem-openapi's `Json` writes — same schema, same content type — without first building a
/// `serde_json::Value` tree of it (a map and a string per field). For the bodies of the hot
/// paths (`GET /auth/me`); the value's serde attributes must then mirror its `oai` ones, which
/// the tests check field by field against `ToJSON`. The body is held written, so a body
/// written once can answer many requests ([`crate::session::derived`]).
pub struct JsonBody<T> {
    body: Bytes,
    shape: PhantomData<fn() -> T>,
}

impl<T: Serialize> JsonBody<T> {
    /// The body of `value`. Plain structs of strings, numbers and booleans always serialise;
    /// were one not to, the caller answers a 500 rather than a half-written document.
    pub fn write(value: &T) -> Result<Bytes, serde_json::Error> {
        serde_json::to_vec(value).map(Bytes::from)
    }

    /// A body [`JsonBody::write`] wrote for a value of `T`.
    pub fn from_written(body: Bytes) -> Self {
        JsonBody {
            body,
            shape: PhantomData,
        }
    }
}

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + Send> IntoResponse for JsonBody<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.body)
    }
}

/// A moment as poem-openapi writes it (`to_rfc3339`), for serde.
fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339())
}

/// The signed-in person.
#[derive(Object, Serialize, Debug, Clone)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub full_name: String,
    /// A picture of the person, when the identity provider shared one.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// Whether the owner of the address confirmed it (a link authauth mailed, a password reset
    /// by e-mail, or an identity provider vouching for it).
    pub email_verified: bool,
}

/// A session, named by its public id (never by its token).
#[derive(Object, Serialize, Debug, Clone)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// The public session id: safe to show, log and pass to `DELETE /auth/sessions/{id}`.
    pub id: String,
    /// `password` or `google`.
    pub method: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub last_seen_at: DateTime<Utc>,
    /// When the session ends unless used again (idle timeout), never after `absoluteExpiresAt`.
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// When the session ends however active it is.
    #[serde(serialize_with = "rfc3339")]
    pub absolute_expires_at: DateTime<Utc>,
    /// The address the session was created from.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The browser the session was created from.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// True for the session making this request.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
    /// The authentication methods its sign-in (and any re-authentication) used: `pwd`,
    /// `google`, `otp` (authenticator app), `recovery_code`, `hwk` (passkey).
    pub amr: Vec<String>,
    /// Authenticator assurance level: `2` once a second factor was given, else `1`.
    pub aal: u8,
    /// When its owner last proved who they are (sign-in or `POST /auth/reauthenticate`):
    /// sensitive operations need this within `SESSION_PRIVILEGED_MAX_AGE`.
    #[serde(serialize_with = "rfc3339")]
    pub authenticated_at: DateTime<Utc>,
    /// `complete` (signed in), `second_factor` (a sign-in waiting for its second factor) or
    /// `enrolment` (a sign-in that must set one up, `MFA_REQUIRED`).
    pub stage: String,
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
            amr: r.amr().iter().map(|m| m.as_str().to_string()).collect(),
            aal: r.aal(),
            authenticated_at: datetime(r.authenticated_at()),
            stage: r.stage.as_str().to_string(),
        }
    }
}

/// The signed-in user and the current session.
#[derive(Object, Serialize, Debug, Clone)]
#[oai(example)]
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
                email_verified: r.user.email_verified,
            },
            session: SessionView::from_record(r, None, false),
        }
    }
}

impl Example for UserView {
    fn example() -> Self {
        UserView {
            id: Uuid::from_u128(0x0195_9e7a_4c1e_7d3a_9b2f_6e8d_4a1c_3f5e),
            email: EMAIL_EXAMPLE.into(),
            full_name: "Ada Lovelace".into(),
            picture: None,
            email_verified: true,
        }
    }
}

impl Example for SessionView {
    fn example() -> Self {
        SessionView {
            id: SESSION_ID_EXAMPLE.into(),
            method: "password".into(),
            created_at: example_time(0),
            last_seen_at: example_time(95),
            expires_at: example_time(95 + 30),
            absolute_expires_at: example_time(12 * 60),
            ip: Some("203.0.113.7".into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into()),
            current: Some(true),
            amr: vec!["pwd".into(), "otp".into()],
            aal: 2,
            authenticated_at: example_time(0),
            stage: "complete".into(),
        }
    }
}

impl Example for Me {
    fn example() -> Self {
        Me {
            user: UserView::example(),
            session: SessionView {
                ip: None,
                user_agent: None,
                current: None,
                ..SessionView::example()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use poem::http::header;
    use poem_openapi::types::ToJSON;

    use super::*;

    /// serde (the `JsonBody` of the hot paths) and poem-openapi (`Json`, the spec) write the same
    /// document: every field, its name, its absence when `None`, the format of its moments.
    #[test]
    fn serde_and_poem_openapi_write_the_same_document() {
        let with_everything = Me {
            user: UserView {
                picture: Some("https://example.com/a \"quoted\" picture.png".into()),
                full_name: "Zoë \u{1F600} \\ tab\there".into(),
                ..UserView::example()
            },
            session: SessionView {
                // A moment with a fraction of a second.
                last_seen_at: datetime(1_773_480_413_123),
                ..SessionView::example()
            },
        };
        for me in [Me::example(), with_everything] {
            let by_serde = serde_json::to_value(&me).unwrap();
            let by_poem = me.to_json().unwrap();
            // The same document; only the order of the keys differs (declaration order here,
            // alphabetical in a `serde_json::Value`), which JSON leaves without meaning.
            assert_eq!(by_serde, by_poem);
        }
    }

    #[tokio::test]
    async fn a_json_body_answers_with_the_json_content_type() {
        let body = JsonBody::write(&Me::example()).unwrap();
        let resp = JsonBody::<Me>::from_written(body).into_response();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/json; charset=utf-8"
        );
        let body = resp.into_body().into_vec().await.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value, Me::example().to_json().unwrap());
    }
}
