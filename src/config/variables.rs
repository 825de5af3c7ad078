//! Every variable authauth reads, and what to say about a variable that looks meant for
//! authauth but is not one of them (`SESSION_IDLE_TIMOUT=5m` would otherwise leave the idle
//! timeout at its default without a word).
//!
//! These are warnings, never errors, in every mode: the environment is shared with every other
//! program, so an error would let an unrelated variable stop a deployment; and a variable that
//! matters is already an error when it is missing or invalid — where the near miss is named
//! with it (see [`annotate`]).

use strsim::damerau_levenshtein;

use super::parser::{Origin, Problem};

/// Every variable authauth reads (the parser refuses, in debug builds, to read one that is not
/// listed; a test checks that each is documented in docs/configuration.md).
pub const KNOWN: &[&str] = &[
    "APP_ENV",
    "NODE_ENV",
    "HOST",
    "PORT",
    "PUBLIC_URL",
    "METRICS_ADDR",
    "ALLOWED_HOSTS",
    "CORS_ORIGINS",
    "TRUST_X_FORWARDED_FOR",
    "SIGN_IN_PATH",
    "UI_ENABLED",
    "SHUTDOWN_TIMEOUT",
    "AUDIT_RETENTION",
    "WEBHOOK_URLS",
    "WEBHOOK_SECRET",
    "SMTP_URL",
    "MAIL_FROM",
    "MAIL_OUTBOX_DIR",
    "REQUIRE_VERIFIED_EMAIL",
    "MFA_REQUIRED",
    "SESSION_PRIVILEGED_MAX_AGE",
    "TOTP_ISSUER",
    "WEBAUTHN_RP_ID",
    "NEW_DEVICE_ALERTS",
    "EMAIL_VERIFICATION_TTL",
    "PASSWORD_RESET_TTL",
    "SIGN_IN_REPORT_TTL",
    "EMAIL_VERIFY_URL",
    "PASSWORD_RESET_URL",
    "SIGN_IN_REPORT_URL",
    "HTTP_HEADER_READ_TIMEOUT",
    "HTTP_BODY_READ_TIMEOUT",
    "PASSWORD_HASH_THREADS",
    "PASSWORD_HASH_MEMORY_KIB",
    "PASSWORD_HASH_ITERATIONS",
    "DATABASE_URL",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB_NAME",
    "REDIS_URL",
    "REDIS_URI",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_KEY_PREFIX",
    "REDIS_MODE",
    "REDIS_USERNAME",
    "REDIS_SENTINEL_MASTER",
    "REDIS_SENTINEL_USERNAME",
    "REDIS_SENTINEL_PASSWORD",
    "REDIS_WAIT_REPLICAS",
    "REDIS_WAIT_TIMEOUT",
    "REDIS_CA_FILE",
    "REDIS_CLIENT_CERT_FILE",
    "REDIS_CLIENT_KEY_FILE",
    "SESSION_SECRET",
    "SESSION_COOKIE_NAME",
    "SESSION_IDLE_TIMEOUT",
    "SESSION_ABSOLUTE_TIMEOUT",
    "SESSION_ROTATION_INTERVAL",
    "SESSION_ROTATION_GRACE",
    "MAX_SESSIONS_PER_USER",
    "SESSION_LIMIT_ACTION",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "GOOGLE_CALLBACK_URL",
    "GOOGLE_ISSUER_URL",
    "GOOGLE_HTTP_TIMEOUT",
    "LOG_FORMAT",
    "LOG_FLUSH_INTERVAL",
    // Read outside this module: the log filter (telemetry) and colour (telemetry, cli output).
    "RUST_LOG",
    "NO_COLOR",
];

/// Read by the test suite, not by authauth: never reported.
const TEST_VARIABLES: &[&str] = &["AUTHAUTH_TEST_BIN", "TEST_POSTGRES_URL", "TEST_REDIS_URL"];

/// Prefixes of our variables. In `./.env` — authauth's own file — any other variable starting
/// with one of them is reported; in the environment only `AUTHAUTH_`, which nothing else uses:
/// there, `SESSION_MANAGER` (desktop sessions), `HTTP_PROXY` or
/// `GOOGLE_APPLICATION_CREDENTIALS` belong to other programs.
const PREFIXES: &[&str] = &[
    "AUTHAUTH_",
    "SESSION_",
    "REDIS_",
    "GOOGLE_",
    "HTTP_",
    "DATABASE_",
    "POSTGRES_",
    "MAIL_",
    "SMTP_",
];

/// A variable that is set but not read, and the one it probably meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub name: String,
    pub origin: Origin,
    pub suggestion: Option<&'static str>,
}

impl Unknown {
    /// The warning `config check` prints and `serve` logs.
    pub fn warning(&self) -> String {
        let place = match self.origin {
            Origin::DotEnv => " (in .env)",
            Origin::Environment => "",
        };
        match self.suggestion {
            Some(s) => format!(
                "{}{place} is not a variable authauth reads, so it is ignored: did you mean {s}?",
                self.name
            ),
            None => format!(
                "{}{place} is not a variable authauth reads, so it is ignored (docs/configuration.md lists them)",
                self.name
            ),
        }
    }
}

/// The variables among `names` that look meant for authauth but are not read, sorted by name.
pub fn unknown(names: Vec<(String, Origin)>) -> Vec<Unknown> {
    let mut found: Vec<Unknown> = names
        .into_iter()
        .filter(|(name, _)| !KNOWN.contains(&name.as_str()) && !TEST_VARIABLES.contains(&name.as_str()))
        .filter_map(|(name, origin)| {
            if let Some(known) = near_miss(&name) {
                return Some(Unknown {
                    name,
                    origin,
                    suggestion: Some(known),
                });
            }
            let prefix = PREFIXES.iter().find(|p| name.starts_with(*p))?;
            if origin == Origin::Environment && *prefix != "AUTHAUTH_" {
                return None;
            }
            let suggestion = closest_with_prefix(&name, prefix);
            Some(Unknown {
                name,
                origin,
                suggestion,
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found.dedup_by(|a, b| a.name == b.name);
    found
}

/// A known variable `name` is a slip of: the same in another case, or within one edit (short
/// names) or two (longer ones) — typos, a letter swapped, `URI` for `URL`. Short names get one
/// edit only: `HOME` is two edits from `HOST`.
fn near_miss(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    KNOWN
        .iter()
        .map(|k| (damerau_levenshtein(&upper, k), *k))
        .filter(|(d, k)| *d <= reach(k))
        .min()
        .map(|(_, k)| k)
}

/// How many edits from a known name a slip may be.
fn reach(known: &str) -> usize {
    if known.len() <= 6 {
        1
    } else {
        2
    }
}

/// The known variable with `prefix` that `name` most probably meant, if any: the one sharing
/// the most words after the prefix (`POSTGRES_DB` → `POSTGRES_DB_NAME`, `REDIS_TLS_URL` →
/// `REDIS_URL`), then the fewest edits away; one sharing no word only when
/// at most a third of it differs.
fn closest_with_prefix(name: &str, prefix: &str) -> Option<&'static str> {
    let words = |s: &str| -> Vec<String> {
        s[prefix.len()..]
            .split('_')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mine = words(name);
    KNOWN
        .iter()
        .filter(|k| k.starts_with(prefix))
        .map(|k| {
            let shared = words(k).iter().filter(|w| mine.contains(w)).count();
            (std::cmp::Reverse(shared), damerau_levenshtein(name, k), *k)
        })
        .min()
        .filter(|(shared, d, k)| shared.0 > 0 || *d * 3 <= k.len().max(name.len()))
        .map(|(_, _, k)| k)
}

/// Names, in the problem about a variable, the set variable that probably meant it: a missing
/// `SESSION_SECRET` next to a set `SESION_SECRET` is one mistake, not two.
pub fn annotate(problems: &mut [Problem], unknown: &[Unknown]) {
    for problem in problems {
        let meant: Vec<&str> = unknown
            .iter()
            .filter(|u| u.suggestion == Some(problem.variable.as_str()))
            .map(|u| u.name.as_str())
            .collect();
        if !meant.is_empty() {
            problem.message.push_str(&format!(
                " ({} is set: a misspelling of {}?)",
                meant.join(", "),
                problem.variable
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppEnv, Settings};

    fn env(names: &[&str]) -> Vec<(String, Origin)> {
        names
            .iter()
            .map(|n| (n.to_string(), Origin::Environment))
            .collect()
    }

    #[test]
    fn near_misses_are_reported_with_what_they_meant() {
        let found = unknown(env(&[
            "SESSION_IDLE_TIMOUT",
            "SESION_SECRET",
            "REDIS_URI",
            "DATABASE_URI",
            "session_absolute_timeout",
            "PROT",
        ]));
        let pairs: Vec<(&str, Option<&str>)> =
            found.iter().map(|u| (u.name.as_str(), u.suggestion)).collect();
        assert_eq!(
            pairs,
            [
                ("DATABASE_URI", Some("DATABASE_URL")),
                ("PROT", Some("PORT")),
                ("SESION_SECRET", Some("SESSION_SECRET")),
                ("SESSION_IDLE_TIMOUT", Some("SESSION_IDLE_TIMEOUT")),
                ("session_absolute_timeout", Some("SESSION_ABSOLUTE_TIMEOUT")),
            ]
        );
        assert_eq!(
            found[3].warning(),
            "SESSION_IDLE_TIMOUT is not a variable authauth reads, so it is ignored: did you mean SESSION_IDLE_TIMEOUT?"
        );
    }

    #[test]
    fn the_environment_of_other_programs_is_left_alone() {
        let found = unknown(env(&[
            "HOME",
            "HOSTNAME",
            "PATH",
            "PWD",
            "USER",
            "TERM",
            "LANG",
            "SESSION_MANAGER",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "REDIS_SERVICE_HOST",
            "POSTGRES_DB",
            "DATABASE_HOST",
            "TEST_REDIS_URL",
            "AUTHAUTH_TEST_BIN",
        ]));
        assert_eq!(found, []);
    }

    #[test]
    fn in_dotenv_and_for_authauth_prefixes_anything_unread_is_reported() {
        let found = unknown(vec![
            ("SESSION_TIMEOUT".into(), Origin::DotEnv),
            ("POSTGRES_DB".into(), Origin::DotEnv),
            ("GOOGLE_SCOPES".into(), Origin::DotEnv),
            ("REDIS_TLS_URL".into(), Origin::DotEnv),
            ("COMPOSE_PROJECT_NAME".into(), Origin::DotEnv),
            ("AUTHAUTH_PORT".into(), Origin::Environment),
        ]);
        let pairs: Vec<(&str, Option<&str>)> =
            found.iter().map(|u| (u.name.as_str(), u.suggestion)).collect();
        assert_eq!(
            pairs,
            [
                ("AUTHAUTH_PORT", None),
                ("GOOGLE_SCOPES", None),
                ("POSTGRES_DB", Some("POSTGRES_DB_NAME")),
                ("REDIS_TLS_URL", Some("REDIS_URL")),
                ("SESSION_TIMEOUT", Some("SESSION_IDLE_TIMEOUT")),
            ]
        );
        assert!(found[1].warning().contains("GOOGLE_SCOPES (in .env)"));
    }

    #[test]
    fn unknown_variables_are_warnings_and_name_the_problem_they_cause() {
        let s = Settings::from_vars(&[("SESSION_IDLE_TIMOUT", "5m")]).unwrap();
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("did you mean SESSION_IDLE_TIMEOUT?"));
        // Production too: a warning, not a refusal…
        let secret = "s".repeat(48);
        let production = [
            ("APP_ENV", "production"),
            ("PUBLIC_URL", "https://auth.example.com"),
            ("DATABASE_URL", "postgres://localhost/authauth"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("SESSION_SECRET", secret.as_str()),
            ("SESSION_IDLE_TIMOUT", "5m"),
        ];
        let s = Settings::from_vars(&production).unwrap();
        assert_eq!(s.env, AppEnv::Production);
        assert_eq!(s.warnings.len(), 1);
        // …but a required variable that is missing says which set one probably meant it.
        let err = Settings::from_vars(&[("APP_ENV", "production"), ("SESION_SECRET", secret.as_str())])
            .unwrap_err();
        let problem = err
            .problems
            .iter()
            .find(|p| p.variable == "SESSION_SECRET")
            .unwrap();
        assert!(
            problem
                .message
                .ends_with("(SESION_SECRET is set: a misspelling of SESSION_SECRET?)"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn every_variable_authauth_reads_is_documented() {
        let docs = include_str!("../../docs/configuration.md");
        let missing: Vec<&str> = KNOWN
            .iter()
            .filter(|v| !docs.contains(&format!("`{v}`")))
            .copied()
            .collect();
        assert_eq!(missing, Vec::<&str>::new(), "not in docs/configuration.md");
    }

    #[test]
    fn every_variable_in_the_example_env_file_is_one_authauth_reads() {
        // Commented-out lines too: they are what a newcomer uncomments.
        let unread: Vec<&str> = include_str!("../../.env.example")
            .lines()
            .map(|l| l.trim_start_matches('#').trim())
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .filter(|k| !KNOWN.contains(k))
            .collect();
        assert_eq!(unread, Vec::<&str>::new());
    }

    #[test]
    fn known_variables_within_reach_of_each_other_are_a_deliberate_list() {
        // A known name is never reported, so two known names within reach of each other only
        // make the suggestion for a slip between them a guess; this lists them so that adding
        // another such pair is a choice.
        let mut close = Vec::new();
        for (i, a) in KNOWN.iter().enumerate() {
            for b in &KNOWN[i + 1..] {
                if damerau_levenshtein(a, b) <= reach(a).min(reach(b)) {
                    close.push((*a, *b));
                }
            }
        }
        assert_eq!(
            close,
            [
                ("PASSWORD_RESET_TTL", "PASSWORD_RESET_URL"),
                ("SIGN_IN_REPORT_TTL", "SIGN_IN_REPORT_URL"),
                ("POSTGRES_HOST", "POSTGRES_PORT"),
                ("REDIS_URL", "REDIS_URI"),
                ("REDIS_HOST", "REDIS_PORT")
            ]
        );
    }
}
