//! A real SMTP server for the tests: `tests/smtp/server.mjs` (nodemailer's `smtp-server`) on a
//! loopback port, storing every message it accepts as an `.eml` file. Tests read what was
//! delivered — the link a person would click — never a mock.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::helpers::*;

fn smtp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp")
}

/// Installs the server's npm dependencies once (`npm ci`), if missing.
fn ensure_npm() {
    npm_ci_once("smtp", "smtp-server", "the SMTP server used by the tests");
}

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Delivered {
    /// The token of the first link in the message (`?token=…`).
    pub fn token(&self) -> String {
        let re = regex::Regex::new(r"[?&]token=([A-Za-z0-9_-]+)").unwrap();
        re.captures(&self.text)
            .unwrap_or_else(|| panic!("no link with a token in: {}", self.text))[1]
            .to_string()
    }

    /// The first link in the plain-text body.
    pub fn link(&self) -> String {
        let re = regex::Regex::new(r"https?://\S+").unwrap();
        re.find(&self.text)
            .unwrap_or_else(|| panic!("no link in: {}", self.text))
            .as_str()
            .to_string()
    }
}

/// A running SMTP server and the folder it delivers to.
pub struct Mailbox {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

impl Mailbox {
    pub fn start() -> Mailbox {
        let mut m = Mailbox {
            child: None,
            port: 0,
            dir: TempDir::new(),
        };
        m.launch();
        m
    }

    fn launch(&mut self) {
        ensure_npm();
        let mut cmd = Command::new("node");
        cmd.arg("server.mjs")
            .current_dir(smtp_dir())
            .env("SMTP_PORT", self.port.to_string())
            .env("SMTP_DIR", self.dir.0.join("mail"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // Tied to the test process: a killed run leaves no server behind.
        let mut child = spawn_tied(cmd, libc::SIGTERM).expect("node must be installed");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the SMTP server did not start");
        self.port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("the SMTP server said {line:?}"))
            .parse()
            .unwrap();
        self.child = Some(child);
    }

    /// `SMTP_URL` for an app that sends here.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server: connections to its port are refused until [`Mailbox::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port, delivering to the same folder.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Every message delivered so far, oldest first.
    pub fn all(&self) -> Vec<Delivered> {
        let dir = self.dir.0.join("mail");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files.iter().map(|p| parse(&std::fs::read(p).unwrap())).collect()
    }

    /// The messages delivered to `to`.
    pub fn to(&self, to: &str) -> Vec<Delivered> {
        self.all()
            .into_iter()
            .filter(|m| m.to.eq_ignore_ascii_case(to))
            .collect()
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse(raw: &[u8]) -> Delivered {
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a delivered message parses");
    let envelope_to = msg
        .header_raw("X-Test-Envelope-To")
        .unwrap_or_default()
        .trim()
        .to_string();
    Delivered {
        to: envelope_to,
        subject: msg.subject().unwrap_or_default().to_string(),
        text: msg.body_text(0).map(|t| t.to_string()).unwrap_or_default(),
        html: msg.body_html(0).map(|t| t.to_string()).unwrap_or_default(),
    }
}
