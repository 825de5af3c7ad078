//! A store that fails in the middle of an operation must leave nothing half-done. The services
//! run over the real stores of a real app, wrapped so that chosen calls fail the way an outage
//! would (`StoreError::Unavailable`); everything else reaches Redis and PostgreSQL.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use async_trait::async_trait;
use authauth::{
    auth::{password::Hasher, Auth, AuthError},
    session::{
        policy::Policy,
        record::{Millis, Rotated, SessionKey, SessionRecord, Stored},
        store::{Created, Limit, Page, Reached, Revocation, SessionStore, StoreError, Which},
        token::{CookieSigner, TokenHash},
        ClientInfo, Sessions,
    },
    users,
};
use secrecy::SecretString;
use uuid::Uuid;

use crate::helpers::*;

/// The real session store, except that `revoke` fails for calls number `fail_from` onwards
/// (counting from 1).
struct RevokeFailsFrom {
    inner: Arc<dyn SessionStore>,
    calls: AtomicUsize,
    fail_from: usize,
}

#[async_trait]
impl SessionStore for RevokeFailsFrom {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn load(&self, key: &SessionKey, now: Millis) -> Result<Option<Stored>, StoreError> {
        self.inner.load(key, now).await
    }
    async fn create(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        limit: &Limit,
        now: Millis,
    ) -> Result<Created, StoreError> {
        self.inner.create(hash, record, limit, now).await
    }
    async fn touch(&self, hash: &TokenHash, record: &SessionRecord, now: Millis) -> Result<bool, StoreError> {
        self.inner.touch(hash, record, now).await
    }
    async fn rotate(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        next: &SessionRecord,
        rotated: &Rotated,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.inner.rotate(old, new, next, rotated, now).await
    }
    async fn list_user(&self, user_id: &Uuid, now: Millis) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list_user(user_id, now).await
    }
    async fn find(&self, public_id: &str, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.find(public_id, now).await
    }
    async fn update_user(
        &self,
        user_id: &Uuid,
        user: &authauth::session::record::UserSnapshot,
        now: Millis,
    ) -> Result<usize, StoreError> {
        self.inner.update_user(user_id, user, now).await
    }
    async fn revoke(
        &self,
        user_id: &Uuid,
        which: Which<'_>,
        revocation: &Revocation,
        now: Millis,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 >= self.fail_from {
            return Err(StoreError::unavailable("injected: the store went away"));
        }
        self.inner.revoke(user_id, which, revocation, now).await
    }
    async fn list_page(&self, cursor: Option<String>, limit: usize, now: Millis) -> Result<Page, StoreError> {
        self.inner.list_page(cursor, limit, now).await
    }
    async fn ping(&self) -> Result<Reached, StoreError> {
        self.inner.ping().await
    }
}

/// The app's own services, over its session store with revocations failing from call
/// `fail_from` on.
fn services_with_failing_revocation(app: &TestApp, fail_from: usize) -> (Sessions, Auth) {
    let state = &app.state;
    let store = Arc::new(RevokeFailsFrom {
        inner: state.stores.sessions.clone(),
        calls: AtomicUsize::new(0),
        fail_from,
    });
    let sessions = Sessions::new(
        store,
        CookieSigner::new(state.settings.session.secrets.clone()),
        Policy::from_settings(&state.settings.session),
        state.metrics.clone(),
        state.audit.clone(),
    );
    let auth = Auth::new(
        state.db.clone(),
        sessions.clone(),
        state.stores.attempts.clone(),
        Hasher::new(1, Default::default(), state.metrics.clone()),
        state.metrics.clone(),
        state.auth.mail().clone(),
        authauth::auth::mfa::MfaConfig::new(&state.settings, state.stores.flows.clone()),
    );
    (sessions, auth)
}

fn client_info() -> ClientInfo {
    ClientInfo {
        ip: Some("192.0.2.1".into()),
        user_agent: Some("partial-failure-test".into()),
        ..ClientInfo::default()
    }
}

async fn live_sessions(app: &TestApp, user_id: &Uuid) -> Vec<String> {
    app.state
        .sessions
        .list_user(user_id, app.now())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.public_id)
        .collect()
}

#[tokio::test]
async fn a_sign_in_that_cannot_end_the_browsers_old_session_creates_no_new_one() {
    let app = spawn_app().await;
    let (_c, _) = app.signed_up_client("orphan@example.com").await;
    let user = users::find_by_email(&app.state.db, &users::parse_email("orphan@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let before = live_sessions(&app, &user.id).await;
    assert_eq!(before.len(), 1);
    let previous = app
        .state
        .sessions
        .find(&before[0], app.now())
        .await
        .unwrap()
        .unwrap();

    let (_, auth) = services_with_failing_revocation(&app, 1);
    let r = auth
        .login(
            "orphan@example.com",
            SecretString::from(PASSWORD),
            &client_info(),
            None,
            std::slice::from_ref(&previous),
            app.now(),
        )
        .await;
    assert!(
        matches!(r, Err(AuthError::Store(StoreError::Unavailable(_)))),
        "{r:?}"
    );
    assert_eq!(
        live_sessions(&app, &user.id).await,
        before,
        "the failed sign-in left a session behind, or ended the old one"
    );
}

#[tokio::test]
async fn a_password_change_interrupted_after_the_new_password_is_set_keeps_it_and_ends_the_others() {
    let app = spawn_app().await;
    let (_owner, _) = app.signed_up_client("pwfail@example.com").await;
    let other = client();
    assert_eq!(
        app.login_with(&other, "pwfail@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    let user = users::find_by_email(&app.state.db, &users::parse_email("pwfail@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let ids = live_sessions(&app, &user.id).await;
    assert_eq!(ids.len(), 2);
    let current = app
        .state
        .sessions
        .find(&ids[0], app.now())
        .await
        .unwrap()
        .unwrap();
    let validated = authauth::session::Validated {
        key: SessionKey {
            slot: authauth::session::token::slot_tag(&user.id),
            hash: authauth::session::token::SessionToken::generate().hash(),
        },
        record: Arc::new(current.clone()),
        new_cookie: None,
    };

    // The first revocation (every other session) works; the ones after the password changed
    // fail.
    let (_, auth) = services_with_failing_revocation(&app, 2);
    let new_password = "an entirely new passphrase";
    let r = auth
        .change_password(
            &validated,
            SecretString::from(PASSWORD),
            SecretString::from(new_password),
            &client_info(),
            app.now(),
        )
        .await;
    assert!(matches!(r, Err(AuthError::Store(_))), "{r:?}");
    // Nothing was rolled back: the new password is the password, the old one is gone, and
    // the other session is over. Only the caller's own session remains.
    assert_eq!(
        app.login_with(&client(), "pwfail@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        live_sessions(&app, &user.id).await,
        vec![current.public_id.clone()],
        "another session outlived the password change"
    );
    assert_eq!(
        app.login_with(&client(), "pwfail@example.com", new_password)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn disabling_an_account_whose_sessions_cannot_be_ended_leaves_it_disabled_and_can_be_repeated() {
    let app = spawn_app().await;
    let (c, _) = app.signed_up_client("disfail@example.com").await;
    let user = users::find_by_email(&app.state.db, &users::parse_email("disfail@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();

    let (_, auth) = services_with_failing_revocation(&app, 1);
    let r = auth
        .set_user_disabled(&user, true, &client_info(), app.now())
        .await;
    assert!(matches!(r, Err(AuthError::Store(_))), "{r:?}");
    let after = users::find_by_id(&app.state.db, user.id).await.unwrap().unwrap();
    assert!(
        after.disabled_at.is_some(),
        "the account was re-enabled by an undo"
    );
    // Nobody signs in to it any more, and disabling it again ends the sessions.
    assert_eq!(
        app.login_with(&client(), "disfail@example.com", PASSWORD)
            .await
            .status(),
        403
    );
    let (_, revoked) = app
        .state
        .auth
        .set_user_disabled(&after, true, &client_info(), app.now())
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_reset_whose_sessions_cannot_be_ended_changes_nothing_and_the_link_still_works() {
    let app = spawn_app().await;
    let email = "resetfail@example.com";
    let (c, _) = app.signed_up_client(email).await;
    let user = users::find_by_email(&app.state.db, &users::parse_email(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    let link = app.state.auth.reset_link(&user, app.now()).await.unwrap();
    let token = link.split("token=").nth(1).unwrap().to_string();

    // The store refuses every revocation: the reset fails before it changes anything.
    let (_, auth) = services_with_failing_revocation(&app, 1);
    let r = auth
        .reset_password(
            &token,
            SecretString::from("a brand new reset passphrase".to_string()),
            &client_info(),
            &[],
            app.now(),
        )
        .await;
    assert!(matches!(r, Err(AuthError::Store(_))), "{r:?}");
    let after = users::find_by_id(&app.state.db, user.id).await.unwrap().unwrap();
    assert_eq!(
        after.password_hash, user.password_hash,
        "no new password beside live sessions"
    );
    assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 200);

    // The link was not used: with the store back, it works.
    let (_, issued) = app
        .state
        .auth
        .reset_password(
            &token,
            SecretString::from("a brand new reset passphrase".to_string()),
            &client_info(),
            &[],
            app.now(),
        )
        .await
        .unwrap();
    assert_eq!(live_sessions(&app, &user.id).await, [issued.record.public_id]);
    assert_eq!(c.get(app.url("/auth/me")).send().await.unwrap().status(), 401);
}
