//! One connection type for the three ways to reach Redis (`REDIS_MODE`):
//!
//! - **standalone**: the redis crate's `ConnectionManager`, which reconnects to the one server.
//! - **cluster**: the crate's cluster client. It discovers the topology from any reachable seed,
//!   follows `MOVED`/`ASK`, refreshes the slot map after a failover and sends every command to
//!   the primary of its slot (replica reads are never enabled).
//! - **sentinel**: [`SentinelConnection`], a multiplexed connection to the primary the Sentinels
//!   name. The crate's Sentinel client finds the primary once; this type asks again whenever the
//!   connection dies or the server answers `READONLY` (it was demoted), or a Sentinel announces
//!   a failover (`+switch-master`), so a failover is followed without a restart. The address a
//!   failover announced wins over a Sentinel that has not heard of it yet.
//!
//! Connecting is lazy in every mode: nothing waits for Redis at startup, and a command that
//! cannot reach it fails quickly with an error the store reports as unavailable.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType},
    AsyncConnectionConfig, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Role, ServerErrorKind,
    TlsCertificates, TlsMode, Value,
};
use secrecy::ExposeSecret;

use crate::config::{RedisMode, RedisSettings};

/// How long connecting (TCP and handshake) may take before the command fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a command may wait for its reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long asking the Sentinels for the primary and connecting to it may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);
/// The most a command may take in Sentinel mode, rediscovery and one retry included. (The
/// cluster client bounds a command, retries included, by `RESPONSE_TIMEOUT`.)
const SENTINEL_OVERALL_TIMEOUT: Duration = Duration::from_secs(5);

fn overall_timeout() -> RedisError {
    RedisError::from((ErrorKind::Io, "no answer from the Redis primary in time"))
}

/// A connection in any mode. Cheap to clone: clones share the underlying connections.
#[derive(Clone)]
pub enum Connection {
    Standalone(ConnectionManager),
    Cluster(LazyCluster),
    Sentinel(SentinelConnection),
}

impl Connection {
    /// Prepares the connection for `settings` without touching the network.
    pub fn open(settings: &RedisSettings) -> RedisResult<Connection> {
        match settings.mode {
            RedisMode::Standalone => {
                let url = settings.urls.first().ok_or_else(|| invalid("no Redis URL"))?;
                let client = match certificates(settings) {
                    Some(certs) => redis::Client::build_with_tls(url.expose_secret(), certs)?,
                    None => redis::Client::open(url.expose_secret())?,
                };
                // Fail fast while Redis is down (requests answer 503 quickly); the manager
                // reconnects on later commands, so service recovers without a restart.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Ok(Connection::Standalone(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            RedisMode::Cluster => {
                let seeds: Vec<&str> = settings.urls.iter().map(|u| u.expose_secret()).collect();
                let mut builder = ClusterClient::builder(seeds)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(3)
                    .min_retry_wait(10)
                    .max_retry_wait(200);
                if let Some(certs) = certificates(settings) {
                    builder = builder.certs(certs);
                }
                let client = builder.build()?;
                Ok(Connection::Cluster(LazyCluster {
                    client: Arc::new(client),
                    current: Arc::new(tokio::sync::OnceCell::new()),
                }))
            }
            RedisMode::Sentinel => Ok(Connection::Sentinel(SentinelConnection::open(settings)?)),
        }
    }

    /// The cluster connection, connecting first if needed; `None` in the other modes.
    pub async fn cluster(&self) -> RedisResult<Option<ClusterConnection>> {
        match self {
            Connection::Cluster(lazy) => Ok(Some(lazy.get().await?)),
            _ => Ok(None),
        }
    }

    /// In Sentinel mode, what a `+switch-master` announcement does: the primary is now
    /// `host:port`; the connection in use is dropped and the next command goes there (while it
    /// answers as a primary), whatever a Sentinel that has not heard of the failover yet says.
    /// The listener calls it; public so the rule can be tested against real servers.
    pub fn announce_primary(&self, host: &str, port: u16) {
        if let Connection::Sentinel(s) = self {
            if let Ok(mut a) = s.announced.write() {
                *a = Some((host.to_string(), port));
            }
            SentinelConnection::switched(&s.current, &format!("{host}:{port}"));
        }
    }

    /// The address of the primary in use, in Sentinel mode once connected.
    pub fn sentinel_primary(&self) -> Option<String> {
        match self {
            Connection::Sentinel(s) => s.primary_address(),
            _ => None,
        }
    }
}

/// `REDIS_CA_FILE` and the client certificate, when any is configured.
fn certificates(settings: &RedisSettings) -> Option<TlsCertificates> {
    let tls = &settings.tls;
    (tls.ca.is_some() || tls.client.is_some()).then(|| TlsCertificates {
        client_tls: tls.client.as_ref().map(|(cert, key)| ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.expose_secret().as_bytes().to_vec(),
        }),
        root_cert: tls.ca.clone(),
    })
}

fn invalid(what: &'static str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, what))
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => Box::pin(async move { c.get().await?.req_packed_command(cmd).await }),
            Connection::Sentinel(c) => Box::pin(c.command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => {
                Box::pin(async move { c.get().await?.req_packed_commands(pipeline, offset, count).await })
            }
            Connection::Sentinel(c) => Box::pin(c.pipeline(pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(c) => c.get_db(),
            Connection::Cluster(_) | Connection::Sentinel(_) => 0,
        }
    }
}

/// The cluster connection, made on first use. Once made, the crate keeps it up to date: it
/// reconnects to nodes and refreshes the slot map by itself.
#[derive(Clone)]
pub struct LazyCluster {
    client: Arc<ClusterClient>,
    current: Arc<tokio::sync::OnceCell<ClusterConnection>>,
}

impl LazyCluster {
    async fn get(&self) -> RedisResult<ClusterConnection> {
        self.current
            .get_or_try_init(|| async {
                tokio::time::timeout(DISCOVERY_TIMEOUT, self.client.get_async_connection())
                    .await
                    .map_err(|_| RedisError::from((ErrorKind::Io, "no cluster seed node answered in time")))?
            })
            .await
            .cloned()
    }
}

/// The primary's connection, and which discovery produced it.
#[derive(Clone)]
struct Primary {
    conn: MultiplexedConnection,
    address: String,
    generation: u64,
}

/// A connection to whichever server the Sentinels currently name as primary.
#[derive(Clone)]
pub struct SentinelConnection {
    /// Asking the Sentinels is serialised: one discovery at a time, the others wait for it.
    sentinels: Arc<tokio::sync::Mutex<(SentinelClient, u64)>>,
    current: Arc<RwLock<Option<Primary>>>,
    /// The primary the last `+switch-master` named (host, port); cleared whenever the
    /// announcements may have been missed (a new subscription).
    announced: Arc<RwLock<Option<(String, u16)>>>,
}

impl SentinelConnection {
    fn open(settings: &RedisSettings) -> RedisResult<SentinelConnection> {
        let sentinel = settings
            .sentinel
            .as_ref()
            .ok_or_else(|| invalid("sentinel mode needs REDIS_SENTINEL_MASTER"))?;
        let mut addrs = Vec::new();
        let mut sentinel_auth = (None, None);
        for url in &settings.urls {
            let info = url.expose_secret().into_connection_info()?;
            let redis = info.redis_settings();
            sentinel_auth = (
                redis.username().map(str::to_owned),
                redis.password().map(str::to_owned),
            );
            addrs.push(info.addr().clone());
        }
        let tls =
            matches!(addrs.first(), Some(redis::ConnectionAddr::TcpTls { .. })).then_some(TlsMode::Secure);
        let mut builder = SentinelClientBuilder::new(addrs, &sentinel.master, SentinelServerType::Master)?;
        if let Some(user) = sentinel_auth.0 {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = sentinel_auth.1 {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if let Some(user) = &sentinel.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &sentinel.password {
            builder = builder.set_client_to_redis_password(password.expose_secret());
        }
        if let Some(mode) = tls {
            builder = builder
                .set_client_to_sentinel_tls_mode(mode)
                .set_client_to_redis_tls_mode(mode);
            if let Some(certs) = certificates(settings) {
                builder = builder
                    .set_client_to_sentinel_certificates(certs.clone())
                    .set_client_to_redis_certificates(certs);
            }
        }
        let connection = SentinelConnection {
            sentinels: Arc::new(tokio::sync::Mutex::new((builder.build()?, 0))),
            current: Arc::new(RwLock::new(None)),
            announced: Arc::new(RwLock::new(None)),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(watch_switches(
                connection.sentinels.clone(),
                Arc::downgrade(&connection.current),
                connection.announced.clone(),
                sentinel.master.clone(),
            ));
        }
        Ok(connection)
    }

    fn primary_address(&self) -> Option<String> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|p| p.address.clone()))
    }

    fn cached(&self) -> Option<Primary> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// The primary's connection: the one in use, or a new one to the server the Sentinels name
    /// now.
    async fn primary(&self) -> RedisResult<Primary> {
        if let Some(p) = self.cached() {
            return Ok(p);
        }
        let mut sentinels = self.sentinels.lock().await;
        // Another caller may have finished a discovery while we waited for the lock.
        if let Some(p) = self.cached() {
            return Ok(p);
        }
        let (client, generation) = &mut *sentinels;
        let announced = self.announced.read().ok().and_then(|a| a.clone());
        let found = tokio::time::timeout(DISCOVERY_TIMEOUT, async {
            // The crate asks the Sentinels (the first that answers), then checks with ROLE that
            // the server it names really is a primary.
            let primary = client.async_get_client().await?;
            let info = primary.get_connection_info().clone();
            let address = info.addr().to_string();
            // A Sentinel that has not heard of an announced failover yet names the old primary,
            // which answers as a primary until it is demoted (seconds after a planned
            // failover): writes there would be lost. The announced one wins while it really
            // is a primary.
            if let Some((host, port)) = announced {
                if address != format!("{host}:{port}") {
                    match connect_primary(redis::Client::open(at(&info, host, port))?).await {
                        Ok(found) => return Ok(found),
                        Err(e) => tracing::warn!(error = %e, "the primary a failover announced is not one; using the Sentinels' answer"),
                    }
                }
            }
            connect_primary(primary).await
        })
        .await
        .map_err(|_| {
            RedisError::from((
                ErrorKind::Io,
                "the Sentinels did not name a reachable primary in time",
            ))
        })??;
        *generation += 1;
        let primary = Primary {
            conn: found.0,
            address: found.1,
            generation: *generation,
        };
        tracing::info!(primary = %primary.address, "connected to the Redis primary named by the Sentinels");
        if let Ok(mut current) = self.current.write() {
            *current = Some(primary.clone());
        }
        Ok(primary)
    }

    /// Forgets the connection whatever its generation: the Sentinels moved the primary.
    fn switched(current: &RwLock<Option<Primary>>, to: &str) {
        if let Ok(mut current) = current.write() {
            if let Some(p) = current.take() {
                tracing::warn!(from = %p.address, to, "the Sentinels moved the Redis primary");
            }
        }
    }

    /// Forgets the connection of `generation` (not a newer one another caller made).
    fn forget(&self, generation: u64, why: &RedisError) {
        if let Ok(mut current) = self.current.write() {
            if current.as_ref().is_some_and(|p| p.generation == generation) {
                tracing::warn!(error = %why, "lost the Redis primary; asking the Sentinels again");
                *current = None;
            }
        }
    }

    /// What a failed command means for the connection: `READONLY` — the server was demoted and
    /// nothing was written — is retried once on the new primary; a dead or silent connection
    /// is dropped so the next command asks the Sentinels again.
    fn after_error(&self, p: &Primary, e: &RedisError) -> bool {
        let demoted = e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly);
        if demoted
            || e.kind() == ErrorKind::Server(ServerErrorKind::MasterDown)
            || e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
        {
            self.forget(p.generation, e);
        }
        demoted
    }

    async fn command(&self, cmd: &Cmd) -> RedisResult<Value> {
        tokio::time::timeout(SENTINEL_OVERALL_TIMEOUT, self.command_once_more(cmd))
            .await
            .map_err(|_| overall_timeout())?
    }

    async fn pipeline(&self, pipeline: &Pipeline, offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        tokio::time::timeout(
            SENTINEL_OVERALL_TIMEOUT,
            self.pipeline_once_more(pipeline, offset, count),
        )
        .await
        .map_err(|_| overall_timeout())?
    }

    async fn command_once_more(&self, cmd: &Cmd) -> RedisResult<Value> {
        let mut p = self.primary().await?;
        match p.conn.req_packed_command(cmd).await {
            Err(e) if self.after_error(&p, &e) => {
                let mut p = self.primary().await?;
                p.conn.req_packed_command(cmd).await
            }
            other => other,
        }
    }

    async fn pipeline_once_more(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let mut p = self.primary().await?;
        match p.conn.req_packed_commands(pipeline, offset, count).await {
            Err(e) if self.after_error(&p, &e) => {
                let mut p = self.primary().await?;
                p.conn.req_packed_commands(pipeline, offset, count).await
            }
            other => other,
        }
    }
}

/// A multiplexed connection to `client`, if the server says it is a primary.
async fn connect_primary(client: redis::Client) -> RedisResult<(MultiplexedConnection, String)> {
    let address = client.get_connection_info().addr().to_string();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    match redis::cmd("ROLE").query_async::<Role>(&mut conn).await? {
        Role::Primary { .. } => Ok((conn, address)),
        _ => Err(RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "not a primary",
        ))),
    }
}

/// `info` (credentials, TLS) for another server.
fn at(info: &ConnectionInfo, host: String, port: u16) -> ConnectionInfo {
    let addr = match info.addr().clone() {
        ConnectionAddr::TcpTls {
            insecure, tls_params, ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            tls_params,
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    info.clone().set_addr(addr)
}

/// Listens on a Sentinel for `+switch-master` and drops the primary's connection as soon as a
/// failover of `master` is announced, so no command goes to the old primary after that — not
/// even while it is still up and has not been demoted yet (a planned `SENTINEL FAILOVER`). A
/// dead Sentinel is replaced by the next one that answers; after every (re)subscription the
/// primary is asked for again, in case a switch was missed meanwhile. Ends with the connection.
async fn watch_switches(
    sentinels: Arc<tokio::sync::Mutex<(SentinelClient, u64)>>,
    current: std::sync::Weak<RwLock<Option<Primary>>>,
    announced: Arc<RwLock<Option<(String, u16)>>>,
    master: String,
) {
    use futures_util::StreamExt;
    loop {
        let client = {
            let mut guard = sentinels.lock().await;
            tokio::time::timeout(DISCOVERY_TIMEOUT, guard.0.async_get_sentinel_client()).await
        };
        let subscribed = match client {
            Ok(Ok(client)) => {
                match tokio::time::timeout(DISCOVERY_TIMEOUT, client.get_async_pubsub()).await {
                    Ok(Ok(mut pubsub)) => pubsub.subscribe("+switch-master").await.map(|()| pubsub),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(RedisError::from((ErrorKind::Io, "no Sentinel answered in time"))),
                }
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RedisError::from((ErrorKind::Io, "no Sentinel answered in time"))),
        };
        match subscribed {
            Ok(pubsub) => {
                let Some(state) = current.upgrade() else { return };
                if let Ok(mut a) = announced.write() {
                    *a = None;
                }
                SentinelConnection::switched(&state, "(asked again after subscribing)");
                drop(state);
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    // `<master name> <old ip> <old port> <new ip> <new port>`
                    let payload: String = message.get_payload().unwrap_or_default();
                    let mut words = payload.split(' ');
                    if words.next() != Some(master.as_str()) {
                        continue;
                    }
                    let Some(state) = current.upgrade() else { return };
                    let to: Vec<&str> = words.skip(2).collect();
                    if let (Some(host), Some(Ok(port))) = (to.first(), to.get(1).map(|p| p.parse())) {
                        if let Ok(mut a) = announced.write() {
                            *a = Some(((*host).to_string(), port));
                        }
                    }
                    SentinelConnection::switched(&state, &to.join(":"));
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot subscribe to the Sentinels' switch announcements"),
        }
        if current.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
