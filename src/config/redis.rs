//! The Redis session store: `REDIS_URL` (or `REDIS_URI`), or the `REDIS_*` parts. Unset: sessions
//! live in the SQL database.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::{
    defaults,
    parser::{Parser, Vars},
    redact_url,
    urls::build_url,
};

#[derive(Clone)]
pub struct RedisSettings {
    pub url: SecretString,
    /// Every key authauth writes starts with this prefix.
    pub key_prefix: String,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(self.url.expose_secret()))
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

pub(super) fn parse<V: Vars + ?Sized>(p: &mut Parser<'_, V>, production: bool) -> Option<RedisSettings> {
    let redis = settings(p);
    if production && redis.is_none() && !p.problems.iter().any(|x| x.variable.starts_with("REDIS")) {
        p.problem(
            "REDIS_URL",
            "required in production (or REDIS_HOST/REDIS_PORT/REDIS_PASSWORD); sessions belong in Redis",
        );
    }
    redis
}

fn settings<V: Vars + ?Sized>(p: &mut Parser<'_, V>) -> Option<RedisSettings> {
    let key_prefix = p
        .get("REDIS_KEY_PREFIX")
        .unwrap_or_else(|| defaults::REDIS_KEY_PREFIX.to_string());
    if key_prefix.contains(['{', '}']) || key_prefix.chars().any(char::is_whitespace) {
        p.problem(
            "REDIS_KEY_PREFIX",
            "must not contain `{`, `}` or spaces (authauth adds its own cluster hash tags)",
        );
    }
    let password = p.get("REDIS_PASSWORD");
    let (key, raw) = match (p.get("REDIS_URL"), p.get("REDIS_URI")) {
        (Some(url), _) => ("REDIS_URL", url),
        (None, Some(uri)) => ("REDIS_URI", uri),
        (None, None) => {
            let host = p.get("REDIS_HOST")?;
            let port = match p.get("REDIS_PORT") {
                None => 6379,
                Some(raw) => match raw.parse::<u16>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        p.problem("REDIS_PORT", format!("`{raw}` is not a port number (1-65535)"));
                        return None;
                    }
                },
            };
            return match build_url("redis", &host, port, None, password.as_deref(), "") {
                Ok(url) => Some(RedisSettings {
                    url: SecretString::from(url),
                    key_prefix,
                }),
                Err(msg) => {
                    p.problem("REDIS_HOST", msg);
                    None
                }
            };
        }
    };
    let mut url = p.url(key, &raw, &["redis", "rediss", "redis+unix", "unix"])?;
    // The tutorial keeps the password apart; honour it when the URL carries none.
    if let Some(pw) = password {
        if url.password().is_none() && url.has_host() && url.set_password(Some(&pw)).is_err() {
            p.problem("REDIS_PASSWORD", "cannot be combined with this REDIS_URL");
        }
    }
    Some(RedisSettings {
        url: SecretString::from(url.to_string()),
        key_prefix,
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use crate::config::Settings;

    #[test]
    fn redis_uri_is_an_alias_and_password_is_applied() {
        let s = Settings::from_vars(&[("REDIS_URI", "redis://127.0.0.1:6379"), ("REDIS_PASSWORD", "pw")])
            .unwrap();
        assert_eq!(s.redis.unwrap().url.expose_secret(), "redis://:pw@127.0.0.1:6379");
    }
}
