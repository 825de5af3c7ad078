//! Structured logging with `tracing`: readable lines in development, JSON in production.
//!
//! The level comes from `RUST_LOG` (default `info`). Nothing secret is ever a field: sessions
//! are logged by their public id, never by token.

pub mod json;
pub mod request;
pub mod text;
pub mod writer;

use std::{io::IsTerminal, time::Duration};

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

/// For `serve`: `RUST_LOG`, else `info` (one access-log line per request), written through a
/// buffer flushed every `flush_interval` (`writer`; zero: each line at once).
pub fn init(format: LogFormat, flush_interval: Duration) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,poem=warn"));
    install(filter, format, writer::install(flush_interval));
}

/// Writes out the log lines still buffered (the server calls it when it stops).
pub fn flush() {
    writer::flush();
}

/// For operator commands: warnings only (their output is for people), unless `RUST_LOG` asks
/// for more — `RUST_LOG=info` shows the same audit events `serve` logs.
pub fn init_cli(format: LogFormat) {
    // The development-secret notice is for the server's log, not every command.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,authauth::startup=error"));
    install(filter, format, std::io::stderr);
}

/// The JSON log layer: the event's fields flat, the request's (id, method, path: `request`)
/// under "span", written without tracing-subscriber's parse of the span per line (`json.rs`;
/// `cargo run --release --example log_format` measures both).
pub fn json_layer<S, W>(writer: W) -> fmt::Layer<S, json::JsonFragment, json::JsonLine, W>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + 'static,
{
    fmt::layer()
        .fmt_fields(json::JsonFragment)
        .event_format(json::JsonLine)
        .with_writer(writer)
}

/// The text log (`LOG_FORMAT=text`) as a layer writing to `writer`, coloured when `ansi`.
pub fn text_layer<S, W>(ansi: bool, writer: W) -> fmt::Layer<S, fmt::format::DefaultFields, text::TextLine, W>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + 'static,
{
    fmt::layer()
        .event_format(text::TextLine::new(ansi))
        .with_ansi(ansi)
        .with_writer(writer)
}

/// Installs the global subscriber, writing to `out` (standard error, buffered or not); later
/// calls are no-ops (tests start many apps).
fn install<W>(filter: EnvFilter, format: LogFormat, out: W)
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter);
    // Colour only for a person at a terminal, and never with NO_COLOR.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = match format {
        LogFormat::Json => registry.with(json_layer(out)).try_init(),
        LogFormat::Text => registry.with(text_layer(ansi, out)).try_init(),
    };
}

/// For the formatters' tests: a log output that keeps what is written to it.
#[cfg(test)]
pub(crate) mod captured {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    pub struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// Everything written so far.
        pub fn text(&self) -> String {
            let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
            String::from_utf8(bytes).unwrap()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }
}
