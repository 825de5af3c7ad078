//! What every section parses with: the variable sources ([`Vars`]) and the [`Parser`] that
//! collects every problem instead of stopping at the first.

use std::{collections::HashMap, fmt, time::Duration};

use url::Url;

use super::redact_url;

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: String,
    pub message: String,
}

/// Every problem found in the configuration, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// The variables that have a problem, in the order they were found.
    pub fn variables(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.variable.as_str()).collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {}: {}", p.variable, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A source of configuration variables. Empty values count as unset, as in most `.env` files.
pub trait Vars {
    fn get(&self, key: &str) -> Option<String>;

    /// Every variable set (to a non-empty value), and where it was written: checked against
    /// the variables authauth reads, to catch near misses.
    fn names(&self) -> Vec<(String, Origin)>;
}

/// Where a variable was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `./.env`: authauth's own file.
    DotEnv,
    /// The process environment, shared with every other program.
    Environment,
}

/// The process environment, after `./.env` was loaded into it.
#[derive(Debug, Default)]
pub struct ProcessEnv {
    /// The names written in `./.env`.
    pub dotenv: Vec<String>,
}

impl Vars for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }

    fn names(&self) -> Vec<(String, Origin)> {
        std::env::vars_os()
            .filter(|(_, v)| !v.to_string_lossy().trim().is_empty())
            // A name that is not UTF-8 cannot be one of ours, nor close to one.
            .filter_map(|(k, _)| k.into_string().ok())
            .map(|k| {
                let origin = if self.dotenv.contains(&k) {
                    Origin::DotEnv
                } else {
                    Origin::Environment
                };
                (k, origin)
            })
            .collect()
    }
}

impl Vars for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned().filter(|v| !v.trim().is_empty())
    }

    fn names(&self) -> Vec<(String, Origin)> {
        self.iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, _)| (k.clone(), Origin::Environment))
            .collect()
    }
}

impl<const N: usize> Vars for [(&str, &str); N] {
    fn get(&self, key: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.trim().is_empty())
    }

    fn names(&self) -> Vec<(String, Origin)> {
        self.iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, _)| (k.to_string(), Origin::Environment))
            .collect()
    }
}

/// Collects problems while parsing.
pub(super) struct Parser<'a, V: Vars + ?Sized> {
    pub vars: &'a V,
    pub problems: Vec<Problem>,
    /// Accepted but doubtful settings, logged at startup and printed by `config check`.
    pub warnings: Vec<String>,
}

impl<V: Vars + ?Sized> Parser<'_, V> {
    pub fn problem(&mut self, variable: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            variable: variable.to_string(),
            message: message.into(),
        });
    }

    pub fn get(&self, key: &str) -> Option<String> {
        // Reading a variable that is not listed would make `config check` call it unknown.
        debug_assert!(
            super::variables::KNOWN.contains(&key),
            "{key} is read but not listed in config::variables::KNOWN"
        );
        self.vars.get(key).map(|v| v.trim().to_string())
    }

    pub fn duration(&mut self, key: &str, default: Duration) -> Duration {
        let Some(raw) = self.get(key) else {
            return default;
        };
        match humantime::parse_duration(&raw) {
            Ok(d) if d >= Duration::from_secs(1) => d,
            Ok(_) => {
                self.problem(key, format!("`{raw}` is shorter than one second"));
                default
            }
            Err(e) => {
                self.problem(
                    key,
                    format!("`{raw}` is not a duration ({e}); use forms like `30s`, `15m`, `12h`, `7d`"),
                );
                default
            }
        }
    }

    pub fn url(&mut self, key: &str, raw: &str, schemes: &[&str]) -> Option<Url> {
        match Url::parse(raw) {
            Ok(u) if schemes.contains(&u.scheme()) => Some(u),
            Ok(u) => {
                self.problem(
                    key,
                    format!(
                        "scheme `{}` is not supported (expected {})",
                        u.scheme(),
                        schemes.join(" or ")
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(key, format!("`{}` is not a URL ({e})", redact_url(raw)));
                None
            }
        }
    }
}
