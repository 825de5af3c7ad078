//! How log lines are written (`LOG_FORMAT`, `LOG_FLUSH_INTERVAL`; the level is `RUST_LOG`,
//! read by `telemetry`).

use std::time::Duration;

use super::parser::{Parser, Vars};

/// How long the server's information lines may wait in the log buffer (`telemetry::writer`).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// The longest `LOG_FLUSH_INTERVAL` accepted.
const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the development default).
    Text,
    /// One JSON object per line (the production default).
    Json,
}

pub(super) fn parse<V: Vars + ?Sized>(p: &mut Parser<'_, V>, production: bool) -> LogFormat {
    match p.get("LOG_FORMAT").map(|v| v.to_ascii_lowercase()) {
        None if production => LogFormat::Json,
        None => LogFormat::Text,
        Some(v) if v == "json" => LogFormat::Json,
        Some(v) if v == "text" => LogFormat::Text,
        Some(v) => {
            p.problem("LOG_FORMAT", format!("`{v}` is not one of `text`, `json`"));
            LogFormat::Text
        }
    }
}

/// `LOG_FLUSH_INTERVAL`: how long an information line may wait before it is written (`0`: each
/// line at once). Warnings and errors never wait.
pub(super) fn flush_interval<V: Vars + ?Sized>(p: &mut Parser<'_, V>) -> Duration {
    let Some(raw) = p.get("LOG_FLUSH_INTERVAL") else {
        return DEFAULT_FLUSH_INTERVAL;
    };
    if raw == "0" {
        return Duration::ZERO;
    }
    match humantime::parse_duration(&raw) {
        Ok(d) if d <= MAX_FLUSH_INTERVAL => d,
        Ok(_) => {
            p.problem(
                "LOG_FLUSH_INTERVAL",
                format!(
                    "`{raw}` is longer than {}",
                    humantime::format_duration(MAX_FLUSH_INTERVAL)
                ),
            );
            DEFAULT_FLUSH_INTERVAL
        }
        Err(e) => {
            p.problem(
                "LOG_FLUSH_INTERVAL",
                format!("`{raw}` is not a duration ({e}); use forms like `250ms`, `1s`, or `0` to write each line at once"),
            );
            DEFAULT_FLUSH_INTERVAL
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Settings;

    fn interval(value: &str) -> Result<Duration, String> {
        Settings::from_vars(&[("LOG_FLUSH_INTERVAL", value)])
            .map(|s| s.log_flush_interval)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_log_flush_interval_is_a_short_duration_or_zero() {
        assert_eq!(
            Settings::from_vars(&[("APP_ENV", "development")])
                .unwrap()
                .log_flush_interval,
            super::DEFAULT_FLUSH_INTERVAL
        );
        assert_eq!(interval("0"), Ok(Duration::ZERO));
        assert_eq!(interval("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(interval("10s"), Ok(Duration::from_secs(10)));
        let too_long = interval("11s").unwrap_err();
        assert!(
            too_long.contains("LOG_FLUSH_INTERVAL") && too_long.contains("longer than 10s"),
            "{too_long}"
        );
        let junk = interval("soon").unwrap_err();
        assert!(
            junk.contains("LOG_FLUSH_INTERVAL") && junk.contains("not a duration"),
            "{junk}"
        );
    }
}
