//! Real reverse proxies — nginx and Caddy — in front of authauth and a tiny upstream that echoes
//! the request it receives, each run with the example configuration of `examples/forward-auth/`
//! exactly as a user copies it: only the addresses are replaced (and each replacement must hit,
//! so an edited example cannot silently stop being the one tested).
//!
//! Like the servers of `servers`, every proxy is a child of the run, tied to it
//! (`spawn_tied`), listening on a free loopback port, as the current user, with its pid file,
//! temporary files, logs and state in its own directory under the run's — never the system's
//! configuration, and never a port or file another test uses.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use super::servers::{
    free_port, lost_port_race, path_var, read_log, require_binary, run_dir, spawn_tied, stop_child,
    wait_until, Startup, PORT_ATTEMPTS, STARTUP,
};

/// The example configurations, as shipped.
pub const NGINX_EXAMPLE: &str = include_str!("../../../examples/forward-auth/nginx.conf");
pub const CADDY_EXAMPLE: &str = include_str!("../../../examples/forward-auth/Caddyfile");

/// The addresses the examples name, which the harness replaces.
const EXAMPLE_AUTHAUTH: &str = "127.0.0.1:3000";
const EXAMPLE_APP: &str = "127.0.0.1:8000";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    Nginx,
    Caddy,
}

/// A running proxy, stopped when dropped.
pub struct Proxy {
    pub kind: ProxyKind,
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// `text` with every `from` replaced, which must occur exactly `times` times.
fn replace_exactly(text: &str, from: &str, to: &str, times: usize, what: &str) -> String {
    let found = text.matches(from).count();
    assert_eq!(
        found, times,
        "the {what} example no longer names `{from}` {times} time(s) (found {found}): update the harness with it"
    );
    text.replace(from, to)
}

impl Proxy {
    /// Starts `kind` on a free port in front of authauth (`authauth_port`) and the application
    /// (`app_port`), with its example configuration.
    pub fn start(kind: ProxyKind, authauth_port: u16, app_port: u16) -> Proxy {
        let example = match kind {
            ProxyKind::Nginx => NGINX_EXAMPLE,
            ProxyKind::Caddy => CADDY_EXAMPLE,
        };
        Proxy::start_with(kind, example, authauth_port, app_port)
    }

    /// [`Proxy::start`] with another configuration, written like the example of `kind` (the
    /// same addresses to replace).
    pub fn start_with(kind: ProxyKind, config: &str, authauth_port: u16, app_port: u16) -> Proxy {
        let dir = run_dir(match kind {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Caddy => "caddy",
        });
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match Proxy::launch(kind, config, &dir, port, authauth_port, app_port) {
                Ok(child) => {
                    return Proxy {
                        kind,
                        port,
                        dir,
                        child: Some(child),
                    }
                }
                Err(None) => continue,
                Err(Some(message)) => panic!("{message}"),
            }
        }
        panic!("{kind:?} found no free port in {PORT_ATTEMPTS} attempts");
    }

    /// `Err(None)`: another process took the port first.
    fn launch(
        kind: ProxyKind,
        config: &str,
        dir: &Path,
        port: u16,
        authauth_port: u16,
        app_port: u16,
    ) -> Result<Child, Option<String>> {
        let authauth = format!("127.0.0.1:{authauth_port}");
        let app = format!("127.0.0.1:{app_port}");
        let log_path = dir.join("error.log");
        let _ = std::fs::remove_file(&log_path);
        let mut cmd = match kind {
            ProxyKind::Nginx => {
                let nginx = require_binary("nginx", "nginx", "", &path_var(), &[PathBuf::from("/usr/sbin")])
                    .map_err(Some)?;
                let site = replace_exactly(config, EXAMPLE_AUTHAUTH, &authauth, 1, "nginx");
                let site = replace_exactly(&site, EXAMPLE_APP, &app, 1, "nginx");
                let site = replace_exactly(
                    &site,
                    "listen 80;",
                    &format!("listen 127.0.0.1:{port};"),
                    1,
                    "nginx",
                );
                let d = dir.display();
                std::fs::write(dir.join("site.conf"), site).map_err(|e| Some(e.to_string()))?;
                // The main configuration a package would provide, reduced to what a test needs:
                // one process in the foreground, every file in this directory.
                let main = format!(
                    "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                     events {{ worker_connections 256; }}\n\
                     http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  \
                     proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
                     scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
                );
                std::fs::write(dir.join("nginx.conf"), main).map_err(|e| Some(e.to_string()))?;
                let mut cmd = Command::new(nginx);
                cmd.arg("-p")
                    .arg(dir)
                    .arg("-c")
                    .arg(dir.join("nginx.conf"))
                    .arg("-e")
                    .arg(&log_path)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                cmd
            }
            ProxyKind::Caddy => {
                let caddy = require_binary("caddy", "caddy", "", &path_var(), &[]).map_err(Some)?;
                let site = replace_exactly(config, EXAMPLE_AUTHAUTH, &authauth, 2, "Caddy");
                let site = replace_exactly(&site, EXAMPLE_APP, &app, 1, "Caddy");
                let site = replace_exactly(
                    &site,
                    "\napp.example.com {",
                    &format!("\nhttp://127.0.0.1:{port} {{"),
                    1,
                    "Caddy",
                );
                // Global options first, as a Caddyfile wants them: no admin endpoint (every
                // instance would want port 2019), no certificates, state in this directory.
                let global = format!(
                    "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {}\n}}\n\n",
                    dir.join("data").display()
                );
                let config = dir.join("Caddyfile");
                std::fs::write(&config, global + &site).map_err(|e| Some(e.to_string()))?;
                let log = std::fs::File::create(&log_path).map_err(|e| Some(e.to_string()))?;
                let mut cmd = Command::new(caddy);
                cmd.arg("run")
                    .arg("--config")
                    .arg(&config)
                    .arg("--adapter")
                    .arg("caddyfile")
                    .env("HOME", dir)
                    .env("XDG_DATA_HOME", dir.join("data"))
                    .env("XDG_CONFIG_HOME", dir.join("config"))
                    .stdout(Stdio::null())
                    .stderr(log);
                cmd
            }
        };
        cmd.current_dir(dir).stdin(Stdio::null());
        let mut child = spawn_tied(cmd, libc::SIGTERM).map_err(|e| Some(format!("start {kind:?}: {e}")))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let ready =
            || std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).is_ok();
        match wait_until(&mut child, ready) {
            Startup::Ready => Ok(child),
            Startup::Exited(_) if port_taken(&read_log(&log_path)) => Err(None),
            Startup::Exited(status) => Err(Some(format!(
                "{kind:?} exited ({status}):\n{}",
                read_log(&log_path)
            ))),
            Startup::TimedOut => {
                stop_child(&mut child);
                Err(Some(format!(
                    "{kind:?} did not accept connections within {STARTUP:?}:\n{}",
                    read_log(&log_path)
                )))
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The origin a browser on this proxy's pages sends.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The end of the proxy's log, for failure messages.
    pub fn log(&self) -> String {
        read_log(&self.dir.join("error.log"))
    }
}

fn port_taken(log: &str) -> bool {
    lost_port_race(log) || log.contains("address already in use")
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }
}

/// The application behind the proxy: answers every request with what it received, as JSON
/// (`method`, `uri`, `headers`: name → every value), and `Set-Cookie: app=1` of its own.
pub struct Upstream {
    pub port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

#[poem::handler]
fn echo(req: &poem::Request) -> poem::Response {
    let mut headers = serde_json::Map::new();
    for name in req.headers().keys() {
        let values: Vec<serde_json::Value> = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
            .collect();
        headers.insert(name.as_str().to_string(), values.into());
    }
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "headers": headers,
    });
    poem::Response::builder()
        .content_type("application/json")
        .header("set-cookie", "app=1; Path=/")
        .body(body.to_string())
}

impl Upstream {
    pub async fn start() -> Upstream {
        use poem::listener::{Acceptor, Listener};
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind the echo upstream");
        let port = acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a TCP address")
            .port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                echo,
                async {
                    let _ = rx.await;
                },
                None,
            ),
        );
        Upstream {
            port,
            shutdown: Some(tx),
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
