//! How log lines are written (`LOG_FORMAT`; the level is `RUST_LOG`, read by `telemetry`).

use super::parser::{Parser, Vars};

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
