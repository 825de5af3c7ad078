//! Private servers for one test run: PostgreSQL, Redis, a Redis Cluster and a Sentinel
//! topology, started from the binaries on `PATH` when a test first needs them, shared by every
//! test of the run, and gone when the test process ends — however it ends.
//!
//! Why they cannot outlive the run:
//! - every process is forked from one thread that lives as long as the test process, with
//!   `PR_SET_PDEATHSIG`, so the kernel signals it when the process dies, even by SIGKILL (the
//!   signal follows the *thread* that forked; a test's thread ends with the test, which is why
//!   no test thread forks them itself);
//! - on a normal exit an `atexit` hook stops them, waits for them and removes their files
//!   (Rust never runs the destructors of statics);
//! - after any other exit a watchdog `sh`, in its own process group so Ctrl-C spares it, sees
//!   its stdin pipe close, waits for the servers to go and removes the run's directory.
//!
//! Everything a run writes lives under one directory, `$TMPDIR/authauth-tests-<pid>-<id>/`.

use std::{
    ffi::{CString, OsStr},
    io::Write,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{mpsc, Mutex, MutexGuard, OnceLock},
    time::{Duration, Instant},
};

/// How long a server may take to accept connections before the test fails.
pub(crate) const STARTUP: Duration = Duration::from_secs(30);
/// How many ports to try when another process takes the free one first.
pub(crate) const PORT_ATTEMPTS: usize = 5;

/// The Debian packages that ship the binaries the harness runs.
const POSTGRES_PACKAGE: &str = "postgresql";
const REDIS_PACKAGE: &str = "redis-server";
const REDIS_CLI_PACKAGE: &str = "redis-tools";

// --- The run: one directory, one spawning thread, a watchdog and an exit hook ----------------

struct Run {
    root: PathBuf,
    /// Sends commands to the thread that forks every server (see the module comment).
    keeper: Mutex<mpsc::Sender<Spawn>>,
    /// Every process spawned through `spawn_tied`, with the signal that stops it.
    tied: Mutex<Vec<(libc::pid_t, libc::c_int)>>,
    /// Writing a pid line tells the watchdog to wait for that process before removing `root`.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

type Spawn = (Command, mpsc::Sender<std::io::Result<Child>>);

static RUN: OnceLock<Run> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a lock leaves nothing half-done here.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn run() -> &'static Run {
    RUN.get_or_init(|| {
        let root = run_parent().join(format!(
            "authauth-tests-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&root).expect("create the test run's directory");
        // PostgreSQL runs as another user when the tests run as root: it must reach its
        // directory, without being able to list the others.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))
            .expect("set the test run directory's mode");

        let (tx, rx) = mpsc::channel::<Spawn>();
        std::thread::Builder::new()
            .name("authauth-test-servers".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the thread that spawns test servers");

        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("authauth-tests-watchdog")
            .arg(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the watchdog that cleans up after the tests (sh)");
        let stdin = watchdog.stdin.take().expect("the watchdog's stdin is piped");

        // SAFETY: `atexit` only stores the function pointer; `stop_everything` never unwinds.
        unsafe { libc::atexit(stop_everything) };
        Run {
            root,
            keeper: Mutex::new(tx),
            tied: Mutex::new(Vec::new()),
            watchdog: Mutex::new(Some((watchdog, stdin))),
        }
    })
}

/// Where the run's directory goes: `TEST_RUN_DIR` when set, else memory (`/dev/shm`) where the
/// machine has it, else the system's temporary directory. The private PostgreSQL creates and
/// removes a few hundred files per test database; on a disk file system that bookkeeping alone
/// was a quarter of the suite's CPU time.
fn run_parent() -> PathBuf {
    if let Some(dir) = std::env::var_os("TEST_RUN_DIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let writable = std::fs::metadata(shm).is_ok_and(|m| m.is_dir())
        // SAFETY: a NUL-terminated path literal; access(2) only reads it.
        && unsafe { libc::access(c"/dev/shm".as_ptr(), libc::W_OK | libc::X_OK) } == 0;
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Reads pids until the test process is gone (EOF), gives those processes — which die with it
/// — up to ten seconds, then removes the run's directory. It never signals anything: a pid may
/// have been reused by then. `done` means the exit hook has cleaned up already.
const WATCHDOG: &str = r#"
root=$1
pids=
while read -r pid; do
  [ "$pid" = done ] && exit 0
  pids="$pids $pid"
done
n=0
while [ "$n" -lt 100 ]; do
  alive=
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ -z "$alive" ] && break
  sleep 0.1
  n=$((n + 1))
done
rm -rf -- "$root"
"#;

/// The `atexit` hook: stops every server still running, waits for it, removes the run's files.
extern "C" fn stop_everything() {
    let _ = std::panic::catch_unwind(|| {
        let Some(run) = RUN.get() else { return };
        let tied = std::mem::take(&mut *lock(&run.tied));
        let mut stopping = Vec::new();
        for (pid, signal) in tied {
            // Only children of ours not yet reaped: a reaped pid may belong to anyone by now.
            // SAFETY: plain syscalls on a pid; a null status pointer is allowed.
            if unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0 {
                unsafe { libc::kill(pid, signal) };
                stopping.push(pid);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for pid in stopping {
            // SAFETY: as above.
            while unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0 {
                if Instant::now() > deadline {
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, std::ptr::null_mut(), 0);
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = std::fs::remove_dir_all(&run.root);
        if let Some((mut watchdog, mut stdin)) = lock(&run.watchdog).take() {
            // Not EOF: the watchdog would wait for pids that may belong to others by now.
            let _ = writeln!(stdin, "done");
            drop(stdin);
            let _ = watchdog.wait();
        }
    });
}

/// A new, empty directory under the run's directory, removed with it at the latest.
pub fn run_dir(name: &str) -> PathBuf {
    let dir = run().root.join(format!(
        "{name}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    std::fs::create_dir_all(&dir).expect("create a directory for the tests");
    dir
}

/// Spawns `cmd` so that it gets `signal` when the test process ends, by any means, and is
/// stopped and waited for on a normal exit.
pub fn spawn_tied(mut cmd: Command, signal: libc::c_int) -> std::io::Result<Child> {
    let run = run();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the hook runs between fork and exec and only makes async-signal-safe syscalls;
    // it allocates nothing (a raw OS error does not allocate).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Had the test process died before prctl, no signal would ever come.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    };
    let (tx, rx) = mpsc::channel();
    lock(&run.keeper)
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("the thread that spawns test servers is gone"))?;
    let child = rx
        .recv()
        .map_err(|_| std::io::Error::other("the thread that spawns test servers is gone"))??;
    lock(&run.tied).push((child.id() as libc::pid_t, signal));
    if let Some((_, stdin)) = lock(&run.watchdog).as_mut() {
        let _ = writeln!(stdin, "{}", child.id());
    }
    Ok(child)
}

// --- Finding binaries --------------------------------------------------------------------

/// `name` in the directories of `search_path` (a `PATH`-style list), then in `extra`.
pub fn find_binary(name: &str, search_path: &OsStr, extra: &[PathBuf]) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .chain(extra.iter().cloned())
        .map(|dir| dir.join(name))
        .find(|path| {
            path.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `name` from `search_path`, or a message saying which package to install — or which
/// variable points the tests at a running server instead.
pub fn require_binary(
    name: &str,
    package: &str,
    instead: &str,
    search_path: &OsStr,
    extra: &[PathBuf],
) -> Result<PathBuf, String> {
    find_binary(name, search_path, extra).ok_or_else(|| {
        let also = if extra.is_empty() {
            String::new()
        } else {
            format!(
                " nor in {}",
                extra
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "the tests start their own servers and need `{name}`, which is not on PATH{also}: \
             install the Debian package `{package}` (apt-get install {package}){instead}"
        )
    })
}

pub(crate) fn path_var() -> std::ffi::OsString {
    std::env::var_os("PATH").unwrap_or_default()
}

/// Debian keeps PostgreSQL's server binaries off `PATH`, in one directory per major version:
/// the newest first.
fn postgres_version_dirs() -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn redis_server_binary() -> Result<PathBuf, String> {
    require_binary(
        "redis-server",
        REDIS_PACKAGE,
        ". (TEST_REDIS_URL points most tests at a running Redis instead; the outage, Cluster and \
         Sentinel tests always start their own.)",
        &path_var(),
        &[],
    )
}

// --- Waiting -------------------------------------------------------------------------------

/// A free loopback port, for a server about to be started on it. Another process may take it
/// before the server binds it: callers retry with a new one.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

pub(crate) enum Startup {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

/// Polls `ready` until it holds, the child exits, or `STARTUP` passes.
pub(crate) fn wait_until(child: &mut Child, mut ready: impl FnMut() -> bool) -> Startup {
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Startup::Exited(status);
        }
        if ready() {
            return Startup::Ready;
        }
        if Instant::now() > deadline {
            return Startup::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn read_log(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

pub(crate) fn lost_port_race(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("could not bind")
}

/// The first process's outcome, shared: a server that cannot start fails every test that
/// needs it at once, with the same message, instead of being retried by each.
fn shared<T>(
    cell: &'static OnceLock<Result<T, String>>,
    start: impl FnOnce() -> Result<T, String>,
) -> &'static T {
    match cell.get_or_init(start) {
        Ok(value) => value,
        Err(message) => panic!("{message}"),
    }
}

// --- PostgreSQL ----------------------------------------------------------------------------

/// A private PostgreSQL cluster: `initdb` into the run's directory, trust authentication for
/// the `postgres` superuser, durability off (the data lives as long as the run).
pub struct PrivatePostgres {
    pub port: u16,
    pub dir: PathBuf,
    _child: Child,
}

static POSTGRES: OnceLock<Result<PrivatePostgres, String>> = OnceLock::new();

/// The run's PostgreSQL, started by the first test that needs it.
pub fn private_postgres() -> &'static PrivatePostgres {
    shared(&POSTGRES, PrivatePostgres::start)
}

impl PrivatePostgres {
    /// An admin connection URL (the `postgres` superuser, database `postgres`).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start() -> Result<PrivatePostgres, String> {
        let initdb = require_binary(
            "initdb",
            POSTGRES_PACKAGE,
            ", or set TEST_POSTGRES_URL to a running PostgreSQL",
            &path_var(),
            &postgres_version_dirs(),
        )?;
        // The server must be the version initdb belongs to: take the one beside it.
        let bin_dir = std::fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        let postgres = require_binary(
            "postgres",
            POSTGRES_PACKAGE,
            ", or set TEST_POSTGRES_URL to a running PostgreSQL",
            &bin_dir.map(|d| d.into_os_string()).unwrap_or_else(path_var),
            &[],
        )?;
        let dir = run_dir("postgres");
        let data = dir.join("data");
        let account = unprivileged_account()?;
        if let Some((uid, gid)) = account {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {} for PostgreSQL: {e}", dir.display()))?;
        }

        let mut cmd = Command::new(&initdb);
        cmd.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .stdin(Stdio::null());
        if let Some((uid, gid)) = account {
            cmd.uid(uid).gid(gid);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let out = spawn_tied(cmd, libc::SIGTERM)
            .and_then(Child::wait_with_output)
            .map_err(|e| format!("run {}: {e}", initdb.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}):\n{}",
                initdb.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }

        let log_path = dir.join("postgres.log");
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log = std::fs::File::create(&log_path)
                .map_err(|e| format!("create {}: {e}", log_path.display()))?;
            let log2 = log.try_clone().map_err(|e| e.to_string())?;
            let mut cmd = Command::new(&postgres);
            cmd.arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(&dir)
                .args(["-p", &port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args([
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ])
                .args(["-c", "max_connections=300"])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            if let Some((uid, gid)) = account {
                cmd.uid(uid).gid(gid);
            }
            // SIGQUIT is PostgreSQL's immediate shutdown: it stops its backends and releases
            // its shared memory, which a SIGKILL would leave behind.
            let mut child =
                spawn_tied(cmd, libc::SIGQUIT).map_err(|e| format!("start {}: {e}", postgres.display()))?;
            let pid_file = data.join("postmaster.pid");
            let pid = child.id().to_string();
            // postmaster.pid: line 1 the pid, line 8 the state, "ready" once it accepts
            // connections (what `pg_ctl -w` waits for).
            let ready = || {
                std::fs::read_to_string(&pid_file).is_ok_and(|text| {
                    let lines: Vec<&str> = text.lines().collect();
                    lines.first() == Some(&pid.as_str()) && lines.get(7).map(|s| s.trim()) == Some("ready")
                })
            };
            match wait_until(&mut child, ready) {
                Startup::Ready => {
                    return Ok(PrivatePostgres {
                        port,
                        dir,
                        _child: child,
                    })
                }
                Startup::Exited(_) if lost_port_race(&read_log(&log_path)) => continue,
                Startup::Exited(status) => {
                    return Err(format!(
                        "the private PostgreSQL exited ({status}):\n{}",
                        read_log(&log_path)
                    ))
                }
                Startup::TimedOut => {
                    stop_child(&mut child);
                    return Err(format!(
                        "the private PostgreSQL did not accept connections within {STARTUP:?}:\n{}",
                        read_log(&log_path)
                    ));
                }
            }
        }
        Err(format!(
            "the private PostgreSQL found no free port in {PORT_ATTEMPTS} attempts"
        ))
    }
}

/// PostgreSQL refuses to run as root: when the tests do, it runs as `postgres` (the account
/// the Debian package creates) or else `nobody`.
fn unprivileged_account() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Some(ids) = account_ids(name) {
            return Ok(Some(ids));
        }
    }
    Err(
        "the tests run as root, which PostgreSQL refuses, and there is no `postgres` or `nobody` \
         account to run it as"
            .into(),
    )
}

fn account_ids(name: &str) -> Option<(u32, u32)> {
    let name = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r writes into `pwd` and `buf` only, and `result`
    // points to `pwd` or is null.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
    }
}

// --- Redis ---------------------------------------------------------------------------------

/// One `redis-server` process (a data node, a cluster node or a Sentinel) on a loopback port,
/// with its own directory. Stopped when dropped; shared ones live as long as the run.
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    /// A configuration file given before the options (Sentinel needs one it can rewrite).
    config: Option<PathBuf>,
    /// The ACL user and password clients (and the harness) authenticate with.
    pub auth: Option<(String, String)>,
    args: Vec<String>,
    child: Option<Child>,
}

static REDIS: OnceLock<Result<RedisServer, String>> = OnceLock::new();

/// The run's Redis, started by the first test that needs it.
pub fn private_redis() -> &'static RedisServer {
    shared(&REDIS, || RedisServer::try_start(&[]))
}

impl RedisServer {
    /// A new `redis-server` without persistence, with `args` appended to its command line
    /// (later options win, e.g. `["--appendonly", "yes"]`).
    pub fn start(args: &[&str]) -> RedisServer {
        RedisServer::try_start(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(args: &[&str]) -> Result<RedisServer, String> {
        RedisServer::try_start_as(args, None)
    }

    /// A data server that only `auth`'s ACL user may use (the default user is off).
    fn try_start_as(args: &[&str], auth: Option<Acl>) -> Result<RedisServer, String> {
        let mut all: Vec<String> = ["--save", "", "--appendonly", "no"].map(String::from).to_vec();
        if let Some(acl) = auth {
            all.extend(acl.server_args());
        }
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        RedisServer::launch_new("redis", None, &all, free_port, auth)
    }

    fn launch_new(
        name: &str,
        config: Option<&str>,
        args: &[&str],
        pick_port: fn() -> u16,
        auth: Option<Acl>,
    ) -> Result<RedisServer, String> {
        let dir = run_dir(name);
        let config = match config {
            Some(text) => {
                let path = dir.join("redis.conf");
                std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let mut server = RedisServer {
            port: 0,
            dir,
            config,
            auth: auth.map(|a| (a.user.to_string(), a.password.to_string())),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = pick_port();
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(Launch::LostPortRace) => continue,
                Err(Launch::Failed(message)) => return Err(message),
            }
        }
        Err(format!(
            "redis-server found no free port in {PORT_ATTEMPTS} attempts"
        ))
    }

    fn launch(&mut self) -> Result<(), Launch> {
        let binary = redis_server_binary().map_err(Launch::Failed)?;
        let log_path = self.dir.join("redis.log");
        let _ = std::fs::remove_file(&log_path);
        let mut cmd = Command::new(&binary);
        if let Some(config) = &self.config {
            cmd.arg(config);
        }
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log_path)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = spawn_tied(cmd, libc::SIGTERM)
            .map_err(|e| Launch::Failed(format!("start {}: {e}", binary.display())))?;
        let url = self.url();
        // Ours answers, not whoever took the port between `pick_port` and the bind: under
        // load another test's server sometimes did, and a cluster was then built on it. Our
        // own log says when our server listens (a Sentinel names itself once it does).
        let listening = || {
            std::fs::read_to_string(&log_path).is_ok_and(|log| {
                log.contains("Ready to accept connections") || log.contains("Sentinel ID is")
            })
        };
        match wait_until(&mut child, || listening() && ping(&url)) {
            Startup::Ready => {
                self.child = Some(child);
                Ok(())
            }
            Startup::Exited(_) if lost_port_race(&read_log(&log_path)) => Err(Launch::LostPortRace),
            Startup::Exited(status) => Err(Launch::Failed(format!(
                "redis-server on port {} exited ({status}):\n{}",
                self.port,
                read_log(&log_path)
            ))),
            Startup::TimedOut => {
                stop_child(&mut child);
                Err(Launch::Failed(format!(
                    "redis-server on port {} did not answer PING within {STARTUP:?}:\n{}",
                    self.port,
                    read_log(&log_path)
                )))
            }
        }
    }

    /// The server's URL, with the ACL user's credentials when it has one.
    pub fn url(&self) -> String {
        match &self.auth {
            Some((user, password)) => format!("redis://{user}:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The URL without credentials.
    pub fn bare_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server, like a crash; `resume` brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }

    /// Starts the server again on the same port, in the same directory (what an append-only
    /// file kept is still there).
    pub fn resume(&mut self) {
        self.stop();
        match self.launch() {
            Ok(()) => {}
            Err(Launch::LostPortRace) => panic!("port {} was taken while redis-server was down", self.port),
            Err(Launch::Failed(message)) => panic!("{message}"),
        }
    }

    /// A synchronous connection, for setting up and inspecting topologies.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("connect to redis-server on port {}: {e}", self.port))
    }

    pub fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .and_then(|mut conn| cmd.query(&mut conn))
            .map_err(|e| format!("redis-server on port {}: {e}", self.port))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Launch {
    LostPortRace,
    Failed(String),
}

/// An ACL user of a test topology.
#[derive(Clone, Copy, Debug)]
pub struct Acl {
    pub user: &'static str,
    pub password: &'static str,
}

impl Acl {
    /// The data nodes' user in the ACL tests.
    pub const DATA: Acl = Acl {
        user: "authauth-app",
        password: "data-secret-0123",
    };
    /// The Sentinels' own user, different from the data nodes'.
    pub const SENTINEL: Acl = Acl {
        user: "watcher",
        password: "sentinel-secret-0123",
    };

    /// Turns the default user off and defines this one with every right.
    fn server_args(self) -> Vec<String> {
        ["--user", "default", "off", "--user", self.user, "on"]
            .iter()
            .map(|a| a.to_string())
            .chain([
                format!(">{}", self.password),
                "~*".into(),
                "&*".into(),
                "+@all".into(),
            ])
            .collect()
    }

    /// How a replica authenticates to its primary.
    fn replica_args(self) -> Vec<String> {
        ["--masteruser", self.user, "--masterauth", self.password]
            .iter()
            .map(|a| a.to_string())
            .collect()
    }
}

fn ping(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn))
        .is_ok_and(|pong| pong == "PONG")
}

/// Polls `check` until it returns `Ok(true)`; the last error or state explains a timeout.
fn wait_for(what: &str, mut check: impl FnMut() -> Result<bool, String>) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = if last.is_empty() {
        last
    } else {
        format!(": {last}")
    };
    Err(format!("{what} within {STARTUP:?}{last}"))
}

// --- TLS -----------------------------------------------------------------------------------

/// A certificate authority made for the run, and a server certificate it signed for
/// `127.0.0.1` and `localhost`: what the `rediss://` tests serve and trust.
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

static CA: OnceLock<Result<TestCa, String>> = OnceLock::new();

pub fn test_ca() -> &'static TestCa {
    shared(&CA, TestCa::try_create)
}

impl TestCa {
    fn try_create() -> Result<TestCa, String> {
        let openssl = require_binary(
            "openssl",
            "openssl",
            " (it makes the test TLS certificates)",
            &path_var(),
            &[],
        )?;
        let dir = run_dir("tls");
        let ext = dir.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .map_err(|e| format!("write {}: {e}", ext.display()))?;
        let ca = TestCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let steps: Vec<Vec<String>> = vec![
            [
                &["req", "-x509"][..],
                &ec,
                &["-days", "2", "-subj", "/CN=authauth test CA"],
            ]
            .concat()
            .iter()
            .map(|a| a.to_string())
            .chain([
                "-addext".into(),
                "basicConstraints=critical,CA:TRUE".into(),
                "-addext".into(),
                "keyUsage=critical,keyCertSign,cRLSign".into(),
                "-keyout".into(),
                dir.join("ca.key").display().to_string(),
                "-out".into(),
                ca.ca.display().to_string(),
            ])
            .collect(),
            [&["req"][..], &ec, &["-subj", "/CN=127.0.0.1"]]
                .concat()
                .iter()
                .map(|a| a.to_string())
                .chain([
                    "-keyout".into(),
                    ca.key.display().to_string(),
                    "-out".into(),
                    dir.join("server.csr").display().to_string(),
                ])
                .collect(),
            ["x509", "-req", "-days", "2", "-CAcreateserial"]
                .iter()
                .map(|a| a.to_string())
                .chain([
                    "-in".into(),
                    dir.join("server.csr").display().to_string(),
                    "-CA".into(),
                    ca.ca.display().to_string(),
                    "-CAkey".into(),
                    dir.join("ca.key").display().to_string(),
                    "-extfile".into(),
                    ext.display().to_string(),
                    "-out".into(),
                    ca.cert.display().to_string(),
                ])
                .collect(),
        ];
        for args in steps {
            let out = Command::new(&openssl)
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("run openssl: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "openssl {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(ca)
    }

    /// Options that make a `redis-server` also listen with TLS on `tls_port`, not asking
    /// clients for certificates.
    pub fn server_args(&self, tls_port: u16) -> Vec<String> {
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            self.cert.display().to_string(),
            "--tls-key-file".into(),
            self.key.display().to_string(),
            "--tls-ca-cert-file".into(),
            self.ca.display().to_string(),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }
}

impl RedisServer {
    /// A data server that also listens with TLS on the returned port (certificate from
    /// [`test_ca`]); the plain port stays for the harness.
    pub fn start_tls() -> (RedisServer, u16) {
        let tls_port = free_port();
        let args = test_ca().server_args(tls_port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (RedisServer::start(&args), tls_port)
    }
}

// --- Redis Cluster -------------------------------------------------------------------------

/// A Redis Cluster of three primaries with one replica each, holding every slot.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

static CLUSTER: OnceLock<Result<RedisCluster, String>> = OnceLock::new();

/// The run's Redis Cluster, started by the first test that needs it. Tests share it, so each
/// keeps to its own keys; a test that reshapes the cluster starts its own with `RedisCluster::start`.
pub fn shared_cluster() -> &'static RedisCluster {
    // Five seconds before a silent node counts as failed: a loaded test machine never pauses
    // a server that long, so the shared cluster never fails over by itself.
    shared(&CLUSTER, || RedisCluster::try_start(5000))
}

/// A port whose cluster bus port (port + 10000, how every Redis version derives it) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= u16::MAX - 10_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    /// A private cluster whose nodes count as failed after `node_timeout_ms` of silence (what
    /// a failover test waits through).
    pub fn start(node_timeout_ms: u32) -> RedisCluster {
        RedisCluster::try_start(node_timeout_ms).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A private cluster whose nodes only `auth`'s ACL user may use.
    pub fn start_as(node_timeout_ms: u32, auth: Acl) -> RedisCluster {
        RedisCluster::try_start_as(node_timeout_ms, Some(auth)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(node_timeout_ms: u32) -> Result<RedisCluster, String> {
        RedisCluster::try_start_as(node_timeout_ms, None)
    }

    /// A private cluster whose nodes serve clients, each other and their replicas over TLS
    /// ([`test_ca`]), and announce their TLS ports; the plain ports stay for the harness.
    /// Returns the TLS seed URLs (`rediss://…`).
    pub fn start_tls() -> (RedisCluster, Vec<String>) {
        RedisCluster::try_start_with(5000, None, true).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_as(node_timeout_ms: u32, auth: Option<Acl>) -> Result<RedisCluster, String> {
        RedisCluster::try_start_with(node_timeout_ms, auth, false).map(|(c, _)| c)
    }

    fn try_start_with(
        node_timeout_ms: u32,
        auth: Option<Acl>,
        tls: bool,
    ) -> Result<(RedisCluster, Vec<String>), String> {
        let redis_cli = require_binary(
            "redis-cli",
            REDIS_CLI_PACKAGE,
            " (it creates the test Redis Cluster)",
            &path_var(),
            &[],
        )?;
        let timeout = node_timeout_ms.to_string();
        let mut args: Vec<String> = [
            "--save",
            "",
            "--appendonly",
            "no",
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            &timeout,
        ]
        .map(String::from)
        .to_vec();
        if let Some(acl) = auth {
            args.extend(acl.server_args());
            args.extend(acl.replica_args());
        }
        let mut tls_seeds = Vec::new();
        let nodes = (0..6)
            .map(|_| {
                let mut args = args.clone();
                if tls {
                    // The bus keeps port + 10000 (free_cluster_port checked it); clients,
                    // replicas and the bus itself speak TLS.
                    let tls_port = free_cluster_port();
                    tls_seeds.push(format!("rediss://127.0.0.1:{tls_port}"));
                    args.extend(test_ca().server_args(tls_port));
                    args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                RedisServer::launch_new("redis-cluster-node", None, &args, free_cluster_port, auth)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut create = Command::new(&redis_cli);
        if let Some(acl) = auth {
            create.args(["--user", acl.user, "--pass", acl.password, "--no-auth-warning"]);
        }
        let out = create
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", redis_cli.display()))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let cluster = RedisCluster { nodes };
        // redis-cli returns once the nodes agree on the slots; each still has to see the
        // others up before it reports the cluster ok, and each replica to sync its primary.
        for node in &cluster.nodes {
            wait_for(
                &format!("cluster node {} did not report cluster_state:ok", node.port),
                || {
                    node.query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                        .map(|info| {
                            info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6")
                        })
                },
            )?;
            wait_for(
                &format!("cluster node {} did not take its role", node.port),
                || {
                    node.query::<String>(redis::cmd("INFO").arg("replication"))
                        .map(|info| {
                            info.contains("role:master") && info.contains("connected_slaves:1")
                                || info.contains("role:slave") && info.contains("master_link_status:up")
                        })
                },
            )?;
        }
        Ok((cluster, tls_seeds))
    }

    /// Every node's URL: what a cluster client is given.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// `REDIS_URL` for cluster mode: every node, comma-separated.
    pub fn redis_url(&self) -> String {
        self.urls().join(",")
    }

    /// The nodes that are primaries now (a failover changes them).
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some())
            .filter(|&i| {
                self.nodes[i]
                    .query::<String>(redis::cmd("INFO").arg("replication"))
                    .is_ok_and(|info| info.contains("role:master"))
            })
            .collect()
    }

    /// The index in `nodes` of the replica of the primary at `nodes[primary]`.
    pub fn replica_of(&self, primary: usize) -> usize {
        let port = format!("master_port:{}\r", self.nodes[primary].port);
        self.nodes
            .iter()
            .position(|n| {
                n.child.is_some()
                    && n.query::<String>(redis::cmd("INFO").arg("replication"))
                        .is_ok_and(|info| info.contains("role:slave") && info.contains(&port))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no replica follows the primary on port {}",
                    self.nodes[primary].port
                )
            })
    }

    /// Waits until every slot is served again (after a failover).
    pub fn wait_healthy(&self) {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            wait_for(
                &format!("cluster node {} did not report cluster_state:ok", node.port),
                || {
                    node.query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                        .map(|info| info.contains("cluster_state:ok"))
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

// --- Redis Sentinel ------------------------------------------------------------------------

/// A primary, one replica and three Sentinels watching them under `MASTER_NAME` (quorum 2).
pub struct RedisSentinel {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
}

static SENTINEL: OnceLock<Result<RedisSentinel, String>> = OnceLock::new();

/// The run's Sentinel topology, started by the first test that needs it. A test that fails
/// over starts its own with `RedisSentinel::start`, so it never surprises the others.
pub fn shared_sentinel() -> &'static RedisSentinel {
    shared(&SENTINEL, RedisSentinel::try_start)
}

impl RedisSentinel {
    /// The name the Sentinels know the primary by.
    pub const MASTER_NAME: &'static str = "authauth";

    pub fn start() -> RedisSentinel {
        RedisSentinel::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A private topology where the data nodes accept only [`Acl::DATA`] and the Sentinels
    /// only [`Acl::SENTINEL`].
    pub fn start_with_acl() -> RedisSentinel {
        RedisSentinel::try_start_as(true).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start() -> Result<RedisSentinel, String> {
        RedisSentinel::try_start_as(false)
    }

    fn try_start_as(acl: bool) -> Result<RedisSentinel, String> {
        let data = acl.then_some(Acl::DATA);
        let primary = RedisServer::try_start_as(&[], data)?;
        let primary_port = primary.port.to_string();
        let mut replica_args = vec![
            "--replicaof".to_string(),
            "127.0.0.1".into(),
            primary_port.clone(),
        ];
        if let Some(acl) = data {
            replica_args.extend(acl.replica_args());
        }
        let replica_args: Vec<&str> = replica_args.iter().map(String::as_str).collect();
        let replica = RedisServer::try_start_as(&replica_args, data)?;
        // Five seconds before a silent primary counts as down: a loaded test machine never
        // pauses a server that long, so no failover happens unless a test causes one (and such
        // a test can lower it with SENTINEL SET).
        let mut config = format!(
            "sentinel monitor {name} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {name} 5000\n\
             sentinel failover-timeout {name} 10000\n",
            name = Self::MASTER_NAME
        );
        let sentinel_acl = acl.then_some(Acl::SENTINEL);
        if let (Some(data), Some(own)) = (data, sentinel_acl) {
            config.push_str(&format!(
                "sentinel auth-user {name} {}\n\
                 sentinel auth-pass {name} {}\n\
                 user default off\n\
                 user {} on >{} ~* &* +@all\n\
                 sentinel sentinel-user {}\n\
                 sentinel sentinel-pass {}\n",
                data.user,
                data.password,
                own.user,
                own.password,
                own.user,
                own.password,
                name = Self::MASTER_NAME
            ));
        }
        let sentinels = (0..3)
            .map(|_| {
                RedisServer::launch_new(
                    "redis-sentinel",
                    Some(&config),
                    &["--sentinel"],
                    free_port,
                    sentinel_acl,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let topology = RedisSentinel {
            primary,
            replica,
            sentinels,
        };
        wait_for("the replica did not sync with the primary", || {
            topology
                .replica
                .query::<String>(redis::cmd("INFO").arg("replication"))
                .map(|info| info.contains("master_link_status:up"))
        })?;
        // Sentinels find the replica through the primary and each other through hello
        // messages (every two seconds): only then can they agree on a failover.
        for sentinel in &topology.sentinels {
            wait_for(
                &format!(
                    "sentinel {} did not see the replica and the other sentinels",
                    sentinel.port
                ),
                || {
                    let others: Vec<redis::Value> =
                        sentinel.query(redis::cmd("SENTINEL").arg("SENTINELS").arg(Self::MASTER_NAME))?;
                    // The replica must also be one the Sentinel would promote (healthy, its
                    // link to the primary up, its INFO fresh), or a failover gets -NOGOODSLAVE.
                    let replicas: Vec<std::collections::HashMap<String, String>> =
                        sentinel.query(redis::cmd("SENTINEL").arg("REPLICAS").arg(Self::MASTER_NAME))?;
                    let promotable = |r: &std::collections::HashMap<String, String>| {
                        r.get("flags").map(String::as_str) == Some("slave")
                            && r.get("master-link-status").map(String::as_str) == Some("ok")
                            && r.get("info-refresh")
                                .and_then(|ms| ms.parse::<u64>().ok())
                                .is_some_and(|ms| ms < 5_000)
                    };
                    Ok(others.len() == 2 && replicas.len() == 1 && replicas.iter().all(promotable))
                },
            )?;
        }
        Ok(topology)
    }

    /// Every Sentinel's URL.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }
}
