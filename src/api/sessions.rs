//! The signed-in user's own sessions: list them, end one, end all others.

use poem::{web::Data, Request};
use poem_openapi::{param::Path, payload::Json, types::Example, ApiResponse, Object, OpenApi, Tags};

use super::{
    actions,
    auth::{ReadErrors, RevokeOthersErrors},
    session_auth::{client_info, CurrentSession},
    views::{session_id_example, SessionView},
};
use crate::{error::Failure, error_set, state::AppState};

#[derive(Tags)]
enum Tag {
    /// The signed-in user's sessions.
    Sessions,
}

/// Live sessions, newest first.
#[derive(Object)]
#[oai(example)]
struct SessionList {
    sessions: Vec<SessionView>,
}

impl Example for SessionList {
    fn example() -> Self {
        SessionList {
            sessions: vec![SessionView::example()],
        }
    }
}

/// How many sessions were ended.
#[derive(Object)]
#[oai(example)]
struct Revoked {
    revoked: u32,
}

impl Example for Revoked {
    fn example() -> Self {
        Revoked { revoked: 2 }
    }
}

#[derive(ApiResponse)]
enum ListResponse {
    /// The live sessions of the signed-in user, with `current` marking this one.
    #[oai(status = 200)]
    Ok(Json<SessionList>),
}

#[derive(ApiResponse)]
enum RevokeOneResponse {
    /// The session is revoked; its next request gets 401 `session_revoked`. When it was this
    /// session, the cookie is cleared too.
    #[oai(status = 204)]
    NoContent(#[oai(header = "Set-Cookie")] Option<String>),
}

#[derive(ApiResponse)]
enum RevokeOthersResponse {
    /// Every other session is revoked; this one goes on.
    #[oai(status = 200)]
    Ok(Json<Revoked>),
}

error_set!(RevokeOneErrors: [SessionNotFound, ReauthenticationRequired] + [API, WRITE, PARAMS, SESSION]);

pub struct SessionsApi;

#[OpenApi(tag = "Tag::Sessions")]
impl SessionsApi {
    /// List my live sessions (devices), by public id — never by token.
    #[oai(path = "/auth/sessions", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        session: CurrentSession,
    ) -> Result<ListResponse, Failure<ReadErrors>> {
        let current = &session.0.record;
        let sessions = actions::list_sessions(&state, current)
            .await?
            .iter()
            .map(|r| SessionView::from_record(r, Some(r.public_id == current.public_id), true))
            .collect();
        Ok(ListResponse::Ok(Json(SessionList { sessions })))
    }

    /// End one of my sessions (e.g. a lost phone).
    ///
    /// Ending another session than this one needs a recent proof of identity (403
    /// `reauthentication_required`: `POST /auth/reauthenticate`, then again), like ending all
    /// of them; ending this one signs this browser out.
    #[oai(path = "/auth/sessions/:id", method = "delete")]
    async fn revoke_one(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: CurrentSession,
        /// The public session id, as listed by `GET /auth/sessions`
        /// (`session::record::PUBLIC_ID_PATTERN`; tests/api/openapi.rs holds the two together).
        #[oai(validator(pattern = "^s?[A-Za-z0-9_-]{24}$"), example = "session_id_example")]
        id: Path<String>,
    ) -> Result<RevokeOneResponse, Failure<RevokeOneErrors>> {
        let client = client_info(req, &state.settings);
        let clear = actions::revoke_one(&state, &session.0.record, &id.0, &client).await?;
        Ok(RevokeOneResponse::NoContent(clear))
    }

    /// End every session of mine except this one.
    #[oai(path = "/auth/sessions", method = "delete")]
    async fn revoke_others(
        &self,
        req: &Request,
        state: Data<&AppState>,
        session: CurrentSession,
    ) -> Result<RevokeOthersResponse, Failure<RevokeOthersErrors>> {
        let client = client_info(req, &state.settings);
        let revoked = actions::revoke_others(&state, &session.0.record, &client).await?;
        Ok(RevokeOthersResponse::Ok(Json(Revoked {
            revoked: revoked as u32,
        })))
    }
}
