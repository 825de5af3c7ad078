//! One conformance suite for every store port — sessions, sign-in flows, attempt counters — on
//! every backend: Redis, SQL on SQLite, SQL on PostgreSQL. Each check is one test per backend
//! (`stores::redis::…`, `stores::sqlite::…`, `stores::postgres::…`), so a failure names its
//! backend and never hides another's. Time is passed in, so expiry, grace and rotation are
//! tested without sleeping.

use std::{sync::Arc, time::Duration};

use authauth::{
    config::{LimitAction, RedisMode, RedisSettings, SentinelSettings},
    session::{
        policy::Policy,
        record::{
            Amr, Millis, Predecessor, Rotated, SessionKey, SessionRecord, SignInMethod, Stored, UserSnapshot,
        },
        service::SessionError,
        store::{Created, Limit, Revocation, SessionStore, Which},
        token::{slot_tag, CookieSigner, SessionToken, TokenHash},
        Sessions,
    },
    store::{redis::RedisBackend, Stores},
};
use sea_orm::Database;
use secrecy::SecretString;
use uuid::Uuid;

use crate::helpers::*;

const T0: Millis = 1_900_000_000_000;

/// The stores under test, and what must outlive them.
pub struct Fixture {
    stores: Stores,
    _db: Option<TestDb>,
    _dir: TempDir,
    /// Redis: the key prefix, and how to read keys behind the store's back.
    redis: Option<(String, RawRedis)>,
}

/// A way to the Redis data nodes under a store, for what a test checks directly.
#[derive(Clone)]
enum RawRedis {
    /// One server: standalone, or the primary a Sentinel names.
    Server(String),
    /// A cluster, through any of its nodes.
    Cluster(Vec<String>),
}

impl RawRedis {
    async fn query<T: ::redis::FromRedisValue>(&self, cmd: &::redis::Cmd) -> T {
        match self {
            RawRedis::Server(url) => {
                let client = ::redis::Client::open(url.as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                cmd.query_async(&mut conn).await.unwrap()
            }
            RawRedis::Cluster(urls) => {
                let client = ::redis::cluster::ClusterClient::new(urls.clone()).unwrap();
                let mut conn = client.get_async_connection().await.unwrap();
                cmd.query_async(&mut conn).await.unwrap()
            }
        }
    }
}

impl Fixture {
    fn sessions(&self) -> &dyn SessionStore {
        self.stores.sessions.as_ref()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The cluster and the Sentinel topology go away with the run; the standalone Redis
        // may be a long-lived one (TEST_REDIS_URL).
        if let Some((prefix, RawRedis::Server(url))) = self.redis.take() {
            if url != redis_url() {
                return;
            }
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(delete_redis_prefix(&prefix));
            })
            .join();
        }
    }
}

fn store_prefix() -> String {
    unique("authauth-store-test:")
        .chars()
        .take(36)
        .collect::<String>()
        + ":"
}

fn redis_fixture(settings: RedisSettings, raw: RawRedis) -> Fixture {
    let prefix = settings.key_prefix.clone();
    Fixture {
        stores: Stores::redis(RedisBackend::connect(&settings).unwrap()),
        _db: None,
        _dir: TempDir::new(),
        redis: Some((prefix, raw)),
    }
}

async fn redis() -> Fixture {
    redis_fixture(
        RedisSettings::standalone(redis_url(), store_prefix()),
        RawRedis::Server(redis_url()),
    )
}

async fn cluster() -> Fixture {
    let urls = tokio::task::spawn_blocking(|| shared_cluster().urls())
        .await
        .unwrap();
    let settings = RedisSettings {
        mode: RedisMode::Cluster,
        urls: urls.iter().map(|u| SecretString::from(u.clone())).collect(),
        ..RedisSettings::standalone("", store_prefix())
    };
    redis_fixture(settings, RawRedis::Cluster(urls))
}

async fn sentinel() -> Fixture {
    let (sentinels, primary) = tokio::task::spawn_blocking(|| {
        let t = shared_sentinel();
        (t.sentinel_urls(), t.primary.url())
    })
    .await
    .unwrap();
    let settings = RedisSettings {
        mode: RedisMode::Sentinel,
        urls: sentinels.into_iter().map(SecretString::from).collect(),
        sentinel: Some(SentinelSettings {
            master: RedisSentinel::MASTER_NAME.into(),
            username: None,
            password: None,
        }),
        ..RedisSettings::standalone("", store_prefix())
    };
    redis_fixture(settings, RawRedis::Server(primary))
}

async fn sqlite() -> Fixture {
    let dir = TempDir::new();
    let conn = Database::connect(dir.sqlite_url()).await.unwrap();
    authauth::db::migrate_up(&conn).await.unwrap();
    Fixture {
        stores: Stores::sql(conn),
        _db: None,
        _dir: dir,
        redis: None,
    }
}

async fn postgres() -> Fixture {
    let db = TestDb::migrated().await;
    let conn = Database::connect(&db.url).await.unwrap();
    Fixture {
        stores: Stores::sql(conn),
        _db: Some(db),
        _dir: TempDir::new(),
        redis: None,
    }
}

/// One `#[tokio::test]` per check and backend.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                super::$check(super::redis().await).await
            })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                super::$check(super::sqlite().await).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                super::$check(super::postgres().await).await
            })*
        }
        mod redis_cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                super::$check(super::cluster().await).await
            })*
        }
        mod redis_sentinel {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                super::$check(super::sentinel().await).await
            })*
        }
    };
}

conformance!(
    created_sessions_load_list_and_find,
    touch_slides_the_session_but_never_revives_a_revoked_one,
    parallel_rotations_produce_exactly_one_successor,
    revoking_a_rotated_session_also_kills_its_predecessor_in_grace,
    tombstones_live_an_hour_at_most_and_never_past_the_session,
    revoke_one_all_and_all_but_one_touch_only_the_chosen_sessions,
    a_revocation_racing_rotations_never_leaves_a_live_successor,
    listing_every_session_pages_through_the_whole_store,
    the_service_enforces_idle_and_absolute_timeouts,
    the_service_rotates_on_schedule_and_honours_the_grace_period,
    no_token_of_a_revoked_session_survives_two_rotations_within_one_grace,
    a_revocation_dated_after_the_grace_still_ends_the_predecessor,
    a_step_up_proved_with_a_token_in_grace_elevates_the_session,
    a_listing_never_leaves_out_a_session_caught_mid_rotation,
    a_flow_is_taken_exactly_once_and_never_after_it_expires,
    concurrent_attempts_are_all_counted_without_errors,
    attempt_windows_restart_after_they_end_and_give_back_and_reset,
    resetting_a_prefix_clears_every_window_under_it_wherever_it_lives,
    a_sign_in_over_the_limit_ends_the_least_recently_used_session,
    sign_ins_waiting_for_a_second_factor_are_capped_and_end_only_each_other,
    concurrent_sign_ins_never_pass_the_limit,
    with_refuse_a_sign_in_over_the_limit_writes_nothing,
    updating_the_account_snapshot_changes_every_live_session_of_that_user_only,
);

fn policy() -> Policy {
    Policy::new(
        Duration::from_secs(30 * 60),
        Duration::from_secs(12 * 3600),
        Duration::from_secs(15 * 60),
        Duration::from_secs(60),
    )
}

fn record(user_id: Uuid, now: Millis) -> SessionRecord {
    let (idle, absolute) = policy().initial_expiry(now);
    SessionRecord {
        public_id: SessionRecord::new_public_id(&user_id),
        user_id,
        user: UserSnapshot {
            email: "store@example.com".into(),
            full_name: "Store Test".into(),
            picture: None,
            email_verified: false,
        },
        method: SignInMethod::Password,
        created_at: now,
        last_seen_at: now,
        idle_expires_at: idle,
        absolute_expires_at: absolute,
        token_issued_at: now,
        ip: Some("127.0.0.1".into()),
        user_agent: Some("conformance".into()),
        previous: None,
        stage: Default::default(),
        amr: Vec::new(),
        authenticated_at: None,
    }
}

fn key(user_id: &Uuid, hash: TokenHash) -> SessionKey {
    SessionKey {
        slot: slot_tag(user_id),
        hash,
    }
}

/// A limit no test reaches by accident.
fn no_limit() -> Limit {
    limit(1000, LimitAction::EndLeastRecentlyUsed)
}

fn limit(max: usize, action: LimitAction) -> Limit {
    Limit {
        max,
        action,
        revocation: revocation("session_limit"),
    }
}

fn revocation(reason: &'static str) -> Revocation {
    Revocation {
        reason,
        message: Some("conformance".into()),
    }
}

async fn new_session(store: &dyn SessionStore, user_id: Uuid, now: Millis) -> (SessionToken, SessionRecord) {
    let token = SessionToken::generate();
    let r = record(user_id, now);
    assert!(matches!(
        store.create(&token.hash(), &r, &no_limit(), now).await.unwrap(),
        Created::Created { .. }
    ));
    (token, r)
}

async fn created_sessions_load_list_and_find(f: Fixture) {
    let name = f.stores.kind();
    let s = f.sessions();
    let user = Uuid::new_v4();
    let (t1, r1) = new_session(s, user, T0).await;
    let (_t2, r2) = new_session(s, user, T0 + 1).await;
    let (_t3, _other) = new_session(s, Uuid::new_v4(), T0).await;
    assert_eq!(
        s.load(&key(&user, t1.hash()), T0).await.unwrap(),
        Some(Stored::Active(Arc::new(r1.clone()))),
        "{name}"
    );
    let unknown = SessionToken::generate();
    assert_eq!(
        s.load(&key(&user, unknown.hash()), T0).await.unwrap(),
        None,
        "{name}"
    );
    let mut listed: Vec<String> = s
        .list_user(&user, T0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.public_id)
        .collect();
    listed.sort();
    let mut expected = vec![r1.public_id.clone(), r2.public_id.clone()];
    expected.sort();
    assert_eq!(listed, expected, "{name}: only this user's sessions");
    assert_eq!(
        s.find(&r2.public_id, T0).await.unwrap(),
        Some(r2.clone()),
        "{name}"
    );
    assert_eq!(
        s.find("AAAAAAAAnothing-here-xyz", T0).await.unwrap(),
        None,
        "{name}"
    );
    // Past the idle timeout nothing is listed any more.
    let later = r1.expires_at() + 1;
    assert!(s.list_user(&user, later + 10).await.unwrap().is_empty(), "{name}");
    assert_eq!(s.find(&r2.public_id, later + 10).await.unwrap(), None, "{name}");
}

async fn touch_slides_the_session_but_never_revives_a_revoked_one(f: Fixture) {
    let name = f.stores.kind();
    let s = f.sessions();
    let user = Uuid::new_v4();
    let (t, r) = new_session(s, user, T0).await;
    let touched = policy().touched(&r, T0 + 120_000);
    assert!(
        s.touch(&t.hash(), &touched, T0 + 120_000).await.unwrap(),
        "{name}"
    );
    assert_eq!(
        s.load(&key(&user, t.hash()), T0 + 120_000).await.unwrap(),
        Some(Stored::Active(Arc::new(touched.clone()))),
        "{name}"
    );
    let revoked = s
        .revoke(
            &user,
            Which::One(&r.public_id),
            &revocation("logout"),
            T0 + 130_000,
        )
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1, "{name}");
    let again = policy().touched(&touched, T0 + 200_000);
    assert!(
        !s.touch(&t.hash(), &again, T0 + 200_000).await.unwrap(),
        "{name}: touch after revoke"
    );
    match s.load(&key(&user, t.hash()), T0 + 200_000).await.unwrap() {
        Some(Stored::Revoked(tomb)) => {
            assert_eq!(tomb.reason, "logout", "{name}");
            assert_eq!(tomb.message.as_deref(), Some("conformance"), "{name}");
        }
        other => panic!("{name}: expected a tombstone, got {other:?}"),
    }
    assert!(
        s.list_user(&user, T0 + 200_000).await.unwrap().is_empty(),
        "{name}"
    );
}

async fn updating_the_account_snapshot_changes_every_live_session_of_that_user_only(f: Fixture) {
    let name = f.stores.kind();
    let s = f.sessions();
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (t1, _) = new_session(s, user, T0).await;
    let (t2, _) = new_session(s, user, T0).await;
    let (t3, r3) = new_session(s, user, T0).await;
    let (t4, r4) = new_session(s, other, T0).await;
    s.revoke(&user, Which::One(&r3.public_id), &revocation("logout"), T0 + 1)
        .await
        .unwrap();
    let mut verified = r4.user.clone();
    verified.email_verified = true;
    verified.full_name = "Renamed".into();
    assert_eq!(
        s.update_user(&user, &verified, T0 + 2).await.unwrap(),
        2,
        "{name}"
    );
    for t in [&t1, &t2] {
        match s.load(&key(&user, t.hash()), T0 + 2).await.unwrap() {
            Some(Stored::Active(r)) => {
                assert_eq!(r.user, verified, "{name}");
                assert_eq!(r.expires_at(), r4.expires_at(), "{name}: the expiry is kept");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // The ended session stays ended; another user's session is untouched.
    assert!(
        matches!(
            s.load(&key(&user, t3.hash()), T0 + 2).await.unwrap(),
            Some(Stored::Revoked(_))
        ),
        "{name}"
    );
    assert_eq!(
        s.load(&key(&other, t4.hash()), T0 + 2).await.unwrap(),
        Some(Stored::Active(Arc::new(r4.clone()))),
        "{name}"
    );
    // Nothing left to change.
    assert_eq!(
        s.update_user(&user, &verified, T0 + 3).await.unwrap(),
        0,
        "{name}"
    );
}

fn rotation(r: &SessionRecord, old: &SessionToken, new: &TokenHash, now: Millis) -> (SessionRecord, Rotated) {
    let mut next = policy().touched(r, now);
    next.token_issued_at = now;
    next.previous = Some(Predecessor {
        hash: old.hash().to_b64(),
        grace_until: now + 60_000,
    });
    let rotated = Rotated {
        record: r.clone(),
        successor: new.to_b64(),
        grace_until: now + 60_000,
    };
    (next, rotated)
}

async fn parallel_rotations_produce_exactly_one_successor(f: Fixture) {
    let name = f.stores.kind();
    let s = f.stores.sessions.clone();
    let user = Uuid::new_v4();
    let (old, r) = new_session(s.as_ref(), user, T0).await;
    let now = T0 + 16 * 60_000;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (s, r, old) = (s.clone(), r.clone(), old.clone());
        tasks.push(tokio::spawn(async move {
            let new = SessionToken::generate();
            let (next, rotated) = rotation(&r, &old, &new.hash(), now);
            let won = s
                .rotate(&old.hash(), &new.hash(), &next, &rotated, now)
                .await
                .unwrap();
            (won, new)
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for t in tasks {
        let (won, new) = t.await.unwrap();
        if won {
            winners.push(new);
        } else {
            losers.push(new);
        }
    }
    assert_eq!(winners.len(), 1, "{name}: exactly one successor");
    let winner = &winners[0];
    assert!(
        matches!(
            s.load(&key(&user, winner.hash()), now).await.unwrap(),
            Some(Stored::Active(_))
        ),
        "{name}"
    );
    match s.load(&key(&user, old.hash()), now).await.unwrap() {
        Some(Stored::Rotated(rot)) => assert_eq!(rot.successor, winner.hash().to_b64(), "{name}"),
        other => panic!("{name}: the old token should be in grace, got {other:?}"),
    }
    for l in &losers {
        assert_eq!(
            s.load(&key(&user, l.hash()), now).await.unwrap(),
            None,
            "{name}: a loser left a session"
        );
    }
    assert_eq!(
        s.list_user(&user, now).await.unwrap().len(),
        1,
        "{name}: one logical session"
    );
}

/// A session of `user` created at `T0` and rotated once, at the time returned: its first token
/// (now in grace), its second, and the record under each.
async fn rotated_once(
    s: &dyn SessionStore,
    user: Uuid,
) -> (SessionToken, SessionToken, SessionRecord, SessionRecord, Millis) {
    let (old, r) = new_session(s, user, T0).await;
    let new = SessionToken::generate();
    let now = T0 + 16 * 60_000;
    let (next, rotated) = rotation(&r, &old, &new.hash(), now);
    assert!(s
        .rotate(&old.hash(), &new.hash(), &next, &rotated, now)
        .await
        .unwrap());
    (old, new, r, next, now)
}

async fn revoking_a_rotated_session_also_kills_its_predecessor_in_grace(f: Fixture) {
    let name = f.stores.kind();
    let s = f.sessions();
    let user = Uuid::new_v4();
    let (old, new, _, next, now) = rotated_once(s, user).await;
    let revoked = s
        .revoke(&user, Which::AllExcept(None), &revocation("operator"), now + 1000)
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1, "{name}");
    for t in [&old, &new] {
        match s.load(&key(&user, t.hash()), now + 2000).await.unwrap() {
            Some(Stored::Revoked(tomb)) => assert_eq!(tomb.reason, "operator", "{name}"),
            other => panic!("{name}: expected a tombstone, got {other:?}"),
        }
    }
    // Nothing brings it back: no rotation from the old token, no refresh of the new one.
    let newer = SessionToken::generate();
    let (n2, rot2) = rotation(&next, &new, &newer.hash(), now + 3000);
    assert!(
        !s.rotate(&new.hash(), &newer.hash(), &n2, &rot2, now + 3000)
            .await
            .unwrap(),
        "{name}"
    );
    assert!(!s.touch(&new.hash(), &n2, now + 3000).await.unwrap(), "{name}");
    assert!(s.list_user(&user, now + 3000).await.unwrap().is_empty(), "{name}");
}

async fn revoke_one_all_and_all_but_one_touch_only_the_chosen_sessions(f: Fixture) {
    let name = f.stores.kind();
    let s = f.sessions();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let (a1, r1) = new_session(s, alice, T0).await;
    let (a2, r2) = new_session(s, alice, T0).await;
    let (a3, r3) = new_session(s, alice, T0).await;
    let (b1, _) = new_session(s, bob, T0).await;
    let now = T0 + 1000;
    // Another user's id is not found.
    assert!(
        s.revoke(&bob, Which::One(&r1.public_id), &revocation("x"), now)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
    assert_eq!(
        s.revoke(&alice, Which::One(&r1.public_id), &revocation("one"), now)
            .await
            .unwrap()
            .len(),
        1
    );
    let rest = s
        .revoke(
            &alice,
            Which::AllExcept(Some(&r3.public_id)),
            &revocation("others"),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|r| r.public_id.clone()).collect::<Vec<_>>(),
        vec![r2.public_id.clone()],
        "{name}"
    );
    let live = |t: &SessionToken, u: &Uuid| {
        let k = key(u, t.hash());
        async move { matches!(s.load(&k, now).await.unwrap(), Some(Stored::Active(_))) }
    };
    assert!(!live(&a1, &alice).await && !live(&a2, &alice).await, "{name}");
    assert!(live(&a3, &alice).await, "{name}: the kept session");
    assert!(live(&b1, &bob).await, "{name}: another user's session");
}

async fn a_revocation_racing_rotations_never_leaves_a_live_successor(f: Fixture) {
    let name = f.stores.kind();
    for round in 0..10 {
        let s = f.stores.sessions.clone();
        let user = Uuid::new_v4();
        let (old, r) = new_session(s.as_ref(), user, T0).await;
        let now = T0 + 16 * 60_000;
        let mut rotations = Vec::new();
        for _ in 0..4 {
            let (s, r, old) = (s.clone(), r.clone(), old.clone());
            rotations.push(tokio::spawn(async move {
                let new = SessionToken::generate();
                let (next, rotated) = rotation(&r, &old, &new.hash(), now);
                let _ = s
                    .rotate(&old.hash(), &new.hash(), &next, &rotated, now)
                    .await
                    .unwrap();
                new
            }));
        }
        let revoker = {
            let s = s.clone();
            tokio::spawn(async move {
                s.revoke(&user, Which::AllExcept(None), &revocation("race"), now)
                    .await
            })
        };
        let mut tokens = vec![old];
        for t in rotations {
            tokens.push(t.await.unwrap());
        }
        revoker.await.unwrap().unwrap();
        // Whatever the interleaving, once the revocation returned nothing of this session is
        // usable: a rotation either ran before it (and its successor was revoked) or finds
        // its token gone.
        assert!(
            s.list_user(&user, now).await.unwrap().is_empty(),
            "{name} round {round}"
        );
        let mut active = 0;
        for t in &tokens {
            if let Some(Stored::Active(_)) = s.load(&key(&user, t.hash()), now).await.unwrap() {
                active += 1;
            }
        }
        assert_eq!(
            active, 0,
            "{name} round {round}: a session survived its revocation"
        );
    }
}

async fn listing_every_session_pages_through_the_whole_store(f: Fixture) {
    let name = f.stores.kind();
    let s = f.sessions();
    let mut expected = Vec::new();
    for _ in 0..7 {
        let user = Uuid::new_v4();
        for _ in 0..4 {
            expected.push(new_session(s, user, T0).await.1.public_id);
        }
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = s.list_page(cursor, 5, T0).await.unwrap();
        seen.extend(page.sessions.into_iter().map(|r| r.public_id));
        pages += 1;
        assert!(pages < 1000, "{name}: paging does not end");
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(
        pages >= 2,
        "{name}: 28 sessions in pages of 5 came back in {pages} page(s)"
    );
    seen.sort();
    let listed = seen.len();
    seen.dedup();
    if name == "sql" {
        assert_eq!(listed, seen.len(), "{name}: a session was listed twice");
    }
    expected.sort();
    assert_eq!(seen, expected, "{name}");
}

async fn tombstones_live_an_hour_at_most_and_never_past_the_session(f: Fixture) {
    let s = f.sessions();
    let user = Uuid::new_v4();
    // One session ten minutes from its absolute expiry, one twelve hours from it.
    let short_token = SessionToken::generate();
    let mut short = record(user, T0);
    short.absolute_expires_at = T0 + 600_000;
    short.idle_expires_at = T0 + 600_000;
    s.create(&short_token.hash(), &short, &no_limit(), T0)
        .await
        .unwrap();
    let (long_token, _) = new_session(s, user, T0).await;
    let now = T0 + 1000;
    s.revoke(&user, Which::AllExcept(None), &revocation("logout"), now)
        .await
        .unwrap();
    for (token, ttl) in [(&short_token, 599_000), (&long_token, 3_600_000)] {
        match &f.redis {
            // Redis expires keys on its own clock: read the TTL it was given.
            Some((prefix, raw)) => {
                let key = format!("{prefix}{{{}}}:t:{}", slot_tag(&user), token.hash().to_b64());
                let pttl: i64 = raw.query(::redis::cmd("PTTL").arg(&key)).await;
                assert!(
                    pttl <= ttl && pttl > ttl - 10_000,
                    "redis: tombstone TTL {pttl} ms, expected about {ttl}"
                );
            }
            // SQL keeps the expiry in the row: the tombstone answers until then, not after.
            None => {
                let k = key(&user, token.hash());
                assert!(
                    matches!(s.load(&k, now + ttl - 1).await.unwrap(), Some(Stored::Revoked(_))),
                    "sql: the tombstone is gone before {ttl} ms"
                );
                assert_eq!(
                    s.load(&k, now + ttl).await.unwrap(),
                    None,
                    "sql: kept past {ttl} ms"
                );
            }
        }
    }
}

async fn a_flow_is_taken_exactly_once_and_never_after_it_expires(f: Fixture) {
    let name = f.stores.kind();
    let key = unique("flow-");
    f.stores
        .flows
        .put(&key, "state-and-nonce", 600_000, T0)
        .await
        .unwrap();
    let mut takers = Vec::new();
    for _ in 0..8 {
        let (flows, key) = (f.stores.flows.clone(), key.clone());
        takers.push(tokio::spawn(
            async move { flows.take(&key, T0 + 1).await.unwrap() },
        ));
    }
    let mut got = Vec::new();
    for t in takers {
        got.extend(t.await.unwrap());
    }
    assert_eq!(
        got,
        vec!["state-and-nonce".to_string()],
        "{name}: exactly one taker"
    );
    assert_eq!(
        f.stores.flows.take(&key, T0 + 2).await.unwrap(),
        None,
        "{name}: replay"
    );

    let expiring = unique("flow-");
    f.stores.flows.put(&expiring, "late", 1000, T0).await.unwrap();
    assert_eq!(
        f.stores.flows.take(&expiring, T0 + 1000).await.unwrap(),
        None,
        "{name}: taken after its expiry"
    );
    assert_eq!(
        f.stores.flows.take("never-put", T0).await.unwrap(),
        None,
        "{name}"
    );
}

async fn concurrent_attempts_are_all_counted_without_errors(f: Fixture) {
    // Many sign-ins to one account at once all reach the same counter: none may fail because
    // the counter is contended, and none may be lost.
    let name = f.stores.kind();
    let key = unique("attempts-");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (attempts, key) = (f.stores.attempts.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0..40 {
                if let Err(e) = attempts.hit(&key, 60_000, T0 + i).await {
                    errors.push(e.chain());
                }
            }
            errors
        }));
    }
    for t in tasks {
        let errors: Vec<String> = t.await.unwrap();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    let w = f.stores.attempts.hit(&key, 60_000, T0 + 100).await.unwrap();
    assert_eq!(w.count, 8 * 40 + 1, "{name}: every hit counted once");
    assert_eq!(
        w.reset_in,
        60_000 - 100,
        "{name}: the window started with the first hit"
    );
}

async fn attempt_windows_restart_after_they_end_and_give_back_and_reset(f: Fixture) {
    let name = f.stores.kind();
    let a = &f.stores.attempts;
    let key = unique("attempts-");
    assert_eq!(a.hit(&key, 10_000, T0).await.unwrap().count, 1, "{name}");
    assert_eq!(a.hit(&key, 10_000, T0 + 1).await.unwrap().count, 2, "{name}");
    a.unhit(&key, T0 + 2).await.unwrap();
    let w = a.hit(&key, 10_000, T0 + 3).await.unwrap();
    assert_eq!((w.count, w.reset_in), (2, 9_997), "{name}: one given back");
    // The window ends on the caller's clock: the next hit starts a new one.
    let w = a.hit(&key, 10_000, T0 + 10_000).await.unwrap();
    assert_eq!((w.count, w.reset_in), (1, 10_000), "{name}: a new window");
    // Giving back never goes below zero, and nothing is given back to an ended window.
    a.unhit(&key, T0 + 10_001).await.unwrap();
    a.unhit(&key, T0 + 10_002).await.unwrap();
    assert_eq!(a.hit(&key, 10_000, T0 + 10_003).await.unwrap().count, 1, "{name}");
    a.reset(&key).await.unwrap();
    assert_eq!(
        a.hit(&key, 10_000, T0 + 10_004).await.unwrap().count,
        1,
        "{name}: reset"
    );
    a.unhit(&key, T0 + 30_000).await.unwrap();
    assert_eq!(a.hit(&key, 10_000, T0 + 30_001).await.unwrap().count, 1, "{name}");
}

async fn resetting_a_prefix_clears_every_window_under_it_wherever_it_lives(f: Fixture) {
    let name = f.stores.kind();
    let a = &f.stores.attempts;
    // Counter keys are digests and `:` (the SQL store refuses anything else as a prefix).
    let prefix = unique("unlock").replace('-', "");
    // Forty counters under the prefix (spread over every primary of a cluster), two beside it.
    for i in 0..40 {
        a.hit(&format!("{prefix}:{i}"), 60_000, T0).await.unwrap();
    }
    let beside = format!("{prefix}0");
    a.hit(&beside, 60_000, T0).await.unwrap();
    a.hit(&beside, 60_000, T0).await.unwrap();
    assert_eq!(a.reset_prefix(&format!("{prefix}:")).await.unwrap(), 40, "{name}");
    for i in 0..40 {
        let w = a.hit(&format!("{prefix}:{i}"), 60_000, T0 + 1).await.unwrap();
        assert_eq!(w.count, 1, "{name}: counter {i} survived the reset");
    }
    assert_eq!(
        a.hit(&beside, 60_000, T0 + 1).await.unwrap().count,
        3,
        "{name}: a key beside the prefix"
    );
}

fn sessions(f: &Fixture, idle: u64, absolute: u64, rotation: u64, grace: u64) -> Sessions {
    let signer = CookieSigner::new(vec![SecretString::from("k".repeat(40))]);
    let policy = Policy::new(
        Duration::from_secs(idle),
        Duration::from_secs(absolute),
        Duration::from_secs(rotation),
        Duration::from_secs(grace),
    );
    Sessions::new(
        f.stores.sessions.clone(),
        signer,
        policy,
        authauth::metrics::Metrics::new().unwrap(),
        // The session service on its own, over stores without the audit table.
        authauth::audit::Audit::off(),
    )
}

/// A password sign-in of `user` at `T0`, through the service.
async fn sign_in(svc: &Sessions, user: Uuid) -> authauth::session::service::Issued {
    svc.create(user, snapshot(), SignInMethod::Password, &Default::default(), T0)
        .await
        .unwrap()
}

/// [`sign_in`], then a request with its cookie (A) once the rotation (15 minutes with
/// [`sessions`]`(…, 900, 60)`) is due: the sign-in, A (now in grace), its successor B, and when.
async fn signed_in_and_rotated(
    svc: &Sessions,
    user: Uuid,
) -> (authauth::session::service::Issued, String, String, Millis) {
    let issued = sign_in(svc, user).await;
    let a = issued.cookie_value.clone();
    let at = T0 + 900_000;
    let b = svc
        .validate(&a, at)
        .await
        .unwrap()
        .new_cookie
        .expect("rotation is due");
    (issued, a, b, at)
}

fn snapshot() -> UserSnapshot {
    UserSnapshot {
        email: "svc@example.com".into(),
        full_name: "Svc".into(),
        picture: None,
        email_verified: false,
    }
}

async fn the_service_enforces_idle_and_absolute_timeouts(f: Fixture) {
    let name = f.stores.kind();
    let svc = sessions(&f, 2, 6, 3600, 60);
    let user = Uuid::new_v4();
    let issued = svc
        .create(user, snapshot(), SignInMethod::Password, &Default::default(), T0)
        .await
        .unwrap();
    let c = &issued.cookie_value;
    // Unused for 3 s: past the 2 s idle timeout.
    assert!(
        matches!(svc.validate(c, T0 + 3000).await, Err(SessionError::Expired)),
        "{name}"
    );
    // Used every second: idle slides, but the absolute limit holds at 6 s.
    let issued = svc
        .create(user, snapshot(), SignInMethod::Password, &Default::default(), T0)
        .await
        .unwrap();
    let c = &issued.cookie_value;
    for s in 1..6 {
        assert!(svc.validate(c, T0 + s * 1000).await.is_ok(), "{name}: at {s} s");
    }
    assert!(
        matches!(svc.validate(c, T0 + 6000).await, Err(SessionError::Expired)),
        "{name}"
    );
    // Cookies this server did not sign never reach the store.
    assert!(
        matches!(svc.validate("forged", T0).await, Err(SessionError::NoSession)),
        "{name}"
    );
}

async fn the_service_rotates_on_schedule_and_honours_the_grace_period(f: Fixture) {
    let name = f.stores.kind();
    let svc = sessions(&f, 1800, 43200, 900, 60);
    let user = Uuid::new_v4();
    let issued = svc
        .create(user, snapshot(), SignInMethod::Password, &Default::default(), T0)
        .await
        .unwrap();
    let old = issued.cookie_value.clone();
    let v = svc.validate(&old, T0 + 1000).await.unwrap();
    assert!(v.new_cookie.is_none(), "{name}: no rotation before the interval");
    let at = T0 + 900_000;
    let v = svc.validate(&old, at).await.unwrap();
    let new = v.new_cookie.clone().expect("rotation is due");
    assert_ne!(new, old);
    assert_eq!(
        v.record.public_id, issued.record.public_id,
        "{name}: same logical session"
    );
    // The previous token works during the grace period, as the same session, without
    // producing another successor.
    let again = svc.validate(&old, at + 30_000).await.unwrap();
    assert!(again.new_cookie.is_none(), "{name}");
    assert_eq!(again.record.public_id, issued.record.public_id);
    assert!(svc.validate(&new, at + 30_000).await.is_ok(), "{name}");
    // After the grace period only the successor works.
    assert!(
        matches!(svc.validate(&old, at + 61_000).await, Err(SessionError::Expired)),
        "{name}"
    );
    assert!(svc.validate(&new, at + 61_000).await.is_ok(), "{name}");
    // Revoking a session in its grace period (by its public id) ends both tokens, with
    // the reason.
    let issued = svc
        .create(user, snapshot(), SignInMethod::Password, &Default::default(), T0)
        .await
        .unwrap();
    let old = issued.cookie_value.clone();
    let new = svc
        .validate(&old, at)
        .await
        .unwrap()
        .new_cookie
        .expect("rotation is due");
    svc.revoke_one(
        &user,
        &issued.record.public_id,
        "operator",
        Some("stolen laptop".into()),
        &Default::default(),
        at + 1000,
    )
    .await
    .unwrap();
    match svc.validate(&old, at + 2000).await {
        Err(SessionError::Revoked { reason, message }) => {
            assert_eq!(reason, "operator");
            assert_eq!(message.as_deref(), Some("stolen laptop"));
        }
        other => panic!("{name}: {other:?}"),
    }
    assert!(
        matches!(
            svc.validate(&new, at + 2000).await,
            Err(SessionError::Revoked { .. })
        ),
        "{name}"
    );
}

/// A step-up right after a rotation replaces the token twice within one grace period (A → B on
/// the request, B → C for the step-up). Revoking the session must end all three.
async fn no_token_of_a_revoked_session_survives_two_rotations_within_one_grace(f: Fixture) {
    let name = f.stores.kind();
    let svc = sessions(&f, 1800, 43200, 900, 60);
    let user = Uuid::new_v4();
    let a = sign_in(&svc, user).await.cookie_value;
    let at = T0 + 900_000;
    let on_b = svc.validate(&a, at).await.unwrap();
    let b = on_b.new_cookie.clone().expect("rotation is due");
    let on_c = svc
        .reauthenticated(&on_b, Amr::Password, at + 1000)
        .await
        .unwrap();
    let c = on_c.new_cookie.clone().expect("a step-up replaces the token");
    // Until then, each of them works: a parallel request still carrying A is not signed out.
    for (which, cookie) in [("A", &a), ("B", &b), ("C", &c)] {
        let before = svc.validate(cookie, at + 1500).await;
        assert!(
            before.is_ok(),
            "{name}: token {which} refused in its grace: {before:?}"
        );
    }
    svc.revoke_user(&user, None, "operator", None, &Default::default(), at + 2000)
        .await
        .unwrap();
    for (which, cookie) in [("A", &a), ("B", &b), ("C", &c)] {
        let after = svc.validate(cookie, at + 3000).await;
        assert!(after.is_err(), "{name}: token {which} still works: {after:?}");
    }
}

/// Another tab rotated the token while this one was proving who it is (a code typed, a
/// recovery code used): the proof arrives with the token in grace, and elevates the session —
/// never a 503 after the code was spent.
async fn a_step_up_proved_with_a_token_in_grace_elevates_the_session(f: Fixture) {
    let name = f.stores.kind();
    let svc = sessions(&f, 1800, 43200, 900, 60);
    let user = Uuid::new_v4();
    let (issued, a, b, at) = signed_in_and_rotated(&svc, user).await;
    let in_grace = svc.validate(&a, at + 1000).await.unwrap();
    assert!(in_grace.new_cookie.is_none(), "{name}: A is in its grace");
    let stepped = svc
        .reauthenticated(&in_grace, Amr::Password, at + 2000)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let c = stepped.new_cookie.clone().expect("a new token");
    let now = svc.validate(&c, at + 3000).await.unwrap();
    assert_eq!(now.record.public_id, issued.record.public_id, "{name}");
    assert_eq!(now.record.authenticated_at, Some(at + 2000), "{name}: elevated");
    // B, which the step-up replaced, is in its own grace now.
    assert!(svc.validate(&b, at + 3000).await.is_ok(), "{name}");
    // A session that ended meanwhile says why, as a request would learn it (never "busy,
    // try again").
    svc.revoke_user(&user, None, "operator", None, &Default::default(), at + 4000)
        .await
        .unwrap();
    match svc.reauthenticated(&in_grace, Amr::Password, at + 5000).await {
        Err(SessionError::Revoked { reason, .. }) => assert_eq!(reason, "operator", "{name}"),
        other => panic!("{name}: {other:?}"),
    }
}

/// A listing reads the user's index, then the sessions it names. A rotation between the two
/// reads leaves the index naming a token that is now only a predecessor in grace: the session
/// must not drop out of the listing (an operator's `sessions revoke` is planned from it). On
/// Redis the moment is held still by pointing the index back at the old token.
async fn a_listing_never_leaves_out_a_session_caught_mid_rotation(f: Fixture) {
    let name = f.stores.kind();
    let s = f.sessions();
    let user = Uuid::new_v4();
    let (old, _, r, _, now) = rotated_once(s, user).await;
    if let Some((prefix, raw)) = &f.redis {
        let index = format!("{prefix}{{{}}}:u:{user}", slot_tag(&user));
        let _: i64 = raw
            .query(
                ::redis::cmd("HSET")
                    .arg(&index)
                    .arg(&r.public_id)
                    .arg(old.hash().to_b64()),
            )
            .await;
    }
    match s.list_user(&user, now + 1000).await {
        Ok(listed) => assert_eq!(listed.len(), 1, "{name}: the session dropped out"),
        // Never settling: an error the operator sees, not a silent gap.
        Err(e) => assert!(f.redis.is_some(), "{name}: {e}"),
    }
}

/// The revocation is dated by the machine that asks for it (an operator's, whose clock may run
/// ahead): a predecessor its clock believes out of grace is still held by the store, and is
/// ended too.
async fn a_revocation_dated_after_the_grace_still_ends_the_predecessor(f: Fixture) {
    let name = f.stores.kind();
    let svc = sessions(&f, 1800, 43200, 900, 60);
    let user = Uuid::new_v4();
    let (_, a, b, at) = signed_in_and_rotated(&svc, user).await;
    svc.revoke_user(&user, None, "operator", None, &Default::default(), at + 61_000)
        .await
        .unwrap();
    for (which, cookie) in [("A", &a), ("B", &b)] {
        let after = svc.validate(cookie, at + 1000).await;
        assert!(after.is_err(), "{name}: token {which} still works: {after:?}");
    }
}

async fn create_with(
    s: &dyn SessionStore,
    user: Uuid,
    now: Millis,
    limit: &Limit,
) -> (SessionToken, SessionRecord, Created) {
    let token = SessionToken::generate();
    let r = record(user, now);
    let created = s.create(&token.hash(), &r, limit, now).await.unwrap();
    (token, r, created)
}

async fn a_sign_in_over_the_limit_ends_the_least_recently_used_session(f: Fixture) {
    let name = f.stores.kind();
    let s = f.sessions();
    let user = Uuid::new_v4();
    let three = limit(3, LimitAction::EndLeastRecentlyUsed);
    let (t1, r1, _) = create_with(s, user, T0, &three).await;
    let (_t2, r2, _) = create_with(s, user, T0 + 1, &three).await;
    let (_t3, r3, _) = create_with(s, user, T0 + 2, &three).await;
    // The oldest session is the most recently used one.
    let used = policy().touched(&r1, T0 + 10);
    assert!(s.touch(&t1.hash(), &used, T0 + 10).await.unwrap());
    let (_t4, r4, created) = create_with(s, user, T0 + 20, &three).await;
    match created {
        Created::Created { ended } => {
            assert_eq!(ended.len(), 1, "{name}");
            assert_eq!(
                ended[0].public_id, r2.public_id,
                "{name}: not the least recently used"
            );
        }
        Created::Refused => panic!("{name}: refused"),
    }
    let mut listed: Vec<String> = s
        .list_user(&user, T0 + 20)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.public_id)
        .collect();
    listed.sort();
    let mut expected = vec![r1.public_id, r3.public_id, r4.public_id];
    expected.sort();
    assert_eq!(listed, expected, "{name}");
}

/// Whoever knows the password can start sign-in after sign-in without the second factor: each
/// waits a few minutes in the account's index. They never count toward the limit nor end a
/// signed-in session, and past `MAX_PENDING_SIGN_INS` from one address a new one ends the
/// oldest waiting from there, so the index (read by every sign-in and listing of the owner)
/// stays bounded — and the owner's own sign-in, from elsewhere, is never ended by the flood.
async fn sign_ins_waiting_for_a_second_factor_are_capped_and_end_only_each_other(f: Fixture) {
    use authauth::session::{
        record::Stage,
        store::{MAX_PENDING_SIGN_INS, MAX_PENDING_SIGN_INS_IN_ALL},
    };
    let name = f.stores.kind();
    let s = f.sessions();
    let user = Uuid::new_v4();
    let one = limit(1, LimitAction::EndLeastRecentlyUsed);
    let (_, owner, _) = create_with(s, user, T0, &one).await;
    // The owner's sign-in, waiting for the code, from their own address.
    let mut owners = record(user, T0);
    owners.stage = Stage::SecondFactor;
    owners.ip = Some("198.51.100.1".into());
    s.create(&SessionToken::generate().hash(), &owners, &one, T0)
        .await
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..MAX_PENDING_SIGN_INS as i64 + 3 {
        let mut r = record(user, T0 + 1 + i);
        r.stage = Stage::SecondFactor;
        r.ip = Some("203.0.113.9".into());
        let created = s
            .create(&SessionToken::generate().hash(), &r, &one, T0 + 1 + i)
            .await
            .unwrap();
        assert!(matches!(created, Created::Created { .. }), "{name}");
        pending.push(r.public_id);
    }
    let listed: Vec<String> = s
        .list_user(&user, T0 + 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.public_id)
        .collect();
    assert!(
        listed.contains(&owner.public_id),
        "{name}: the signed-in session stays"
    );
    assert!(
        listed.contains(&owners.public_id),
        "{name}: the owner's sign-in stays"
    );
    assert_eq!(listed.len(), 2 + MAX_PENDING_SIGN_INS, "{name}: {listed:?}");
    for (i, id) in pending.iter().enumerate() {
        assert_eq!(listed.contains(id), i >= 3, "{name}: waiting sign-in {i}");
    }
    // From many networks at once: bounded in all, the network holding the most losing first.
    for i in 0..MAX_PENDING_SIGN_INS_IN_ALL as i64 + 5 {
        let mut r = record(user, T0 + 50 + i);
        r.stage = Stage::SecondFactor;
        r.ip = Some(format!("192.0.2.{}", i + 1));
        s.create(&SessionToken::generate().hash(), &r, &one, T0 + 50 + i)
            .await
            .unwrap();
    }
    let waiting = s
        .list_user(&user, T0 + 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| !r.stage.is_complete())
        .count();
    assert_eq!(waiting, MAX_PENDING_SIGN_INS_IN_ALL, "{name}");
}

async fn concurrent_sign_ins_never_pass_the_limit(f: Fixture) {
    let name = f.stores.kind();
    let user = Uuid::new_v4();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = f.stores.sessions.clone();
        tasks.push(tokio::spawn(async move {
            let five = limit(5, LimitAction::EndLeastRecentlyUsed);
            create_with(s.as_ref(), user, T0 + i, &five).await.2
        }));
    }
    let mut ended = 0;
    for t in tasks {
        match t.await.unwrap() {
            Created::Created { ended: e } => ended += e.len(),
            Created::Refused => panic!("{name}: refused"),
        }
    }
    let live = f.sessions().list_user(&user, T0 + 100).await.unwrap();
    assert_eq!(live.len(), 5, "{name}: {} live sessions", live.len());
    assert_eq!(ended, 11, "{name}: every sign-in beyond five ended one session");
}

async fn with_refuse_a_sign_in_over_the_limit_writes_nothing(f: Fixture) {
    let name = f.stores.kind();
    let user = Uuid::new_v4();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = f.stores.sessions.clone();
        tasks.push(tokio::spawn(async move {
            let two = limit(2, LimitAction::Refuse);
            let (token, _, created) = create_with(s.as_ref(), user, T0 + i, &two).await;
            (token, created)
        }));
    }
    let mut refused = Vec::new();
    for t in tasks {
        let (token, created) = t.await.unwrap();
        if created == Created::Refused {
            refused.push(token);
        }
    }
    assert_eq!(refused.len(), 6, "{name}: exactly two sign-ins fit");
    assert_eq!(
        f.sessions().list_user(&user, T0 + 100).await.unwrap().len(),
        2,
        "{name}"
    );
    for token in &refused {
        assert_eq!(
            f.sessions()
                .load(&key(&user, token.hash()), T0 + 100)
                .await
                .unwrap(),
            None,
            "{name}: a refused sign-in left a session"
        );
    }
}
