//! The JSON log line, written directly.
//!
//! tracing-subscriber's JSON formatter stores a span's fields as a JSON document when the span
//! is created and, for every event inside it, parses that document back into a tree to nest it
//! under `"span"` — for the access log, a parse per request. This formatter writes the same line
//! without the round trip: a span's fields are kept as a ready JSON fragment (`"k":v,…`) and
//! copied into each line; values are escaped by serde_json.
//!
//! The line: `{"timestamp":…,"level":…,<event fields>,"target":…,"span":{"name":…,<span
//! fields>}}` — the event's fields flattened; under `"span"` the request being served
//! (`{"name":"request","request_id":…,"method":…,"path":…}`, from [`super::request`]), else
//! the innermost span's fields, else nothing.

use std::fmt;

use tracing::{field::Field, Event, Subscriber};
use tracing_subscriber::{
    field::{MakeVisitor, VisitFmt, VisitOutput},
    fmt::{
        format::{FormatEvent, Writer},
        time::{FormatTime, SystemTime},
        FmtContext, FormattedFields,
    },
    registry::LookupSpan,
};

/// Writes `value` as a JSON string. Most values (field names, ids, paths, methods) need no
/// escaping and are copied as they are; anything with a quote, a backslash or a control
/// character is escaped by serde_json.
fn string<W: fmt::Write + ?Sized>(out: &mut W, value: &str) -> fmt::Result {
    // Every byte looked at, without stopping at the first that needs escaping: a loop with no
    // early exit is one the compiler turns into vector instructions.
    let plain = !value
        .bytes()
        .fold(false, |seen, b| seen | (b == b'"') | (b == b'\\') | (b < 0x20));
    if plain {
        out.write_char('"')?;
        out.write_str(value)?;
        return out.write_char('"');
    }
    match serde_json::to_string(value) {
        Ok(s) => out.write_str(&s),
        Err(_) => out.write_str("null"),
    }
}

/// Writes `at` as tracing-subscriber's `SystemTime` timer does (`2026-12-05T03:52:01.123456Z`),
/// but formats the date and time of day once per second per thread: only the microseconds
/// change from one line to the next.
fn timestamp(out: &mut impl fmt::Write, at: std::time::SystemTime) -> fmt::Result {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let Ok(since) = at.duration_since(std::time::UNIX_EPOCH) else {
        // Before 1970: not worth a cache.
        return SystemTime.format_time(&mut Writer::new(out));
    };
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let Ok(mut cached) = cell.try_borrow_mut() else {
            return SystemTime.format_time(&mut Writer::new(out));
        };
        if cached.0 != secs {
            // The calendar worked out once per second, not on every line.
            let Some(day) = i64::try_from(secs)
                .ok()
                .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0))
            else {
                return SystemTime.format_time(&mut Writer::new(out));
            };
            cached.1.clear();
            fmt::Write::write_fmt(&mut cached.1, format_args!("{}", day.format("%Y-%m-%dT%H:%M:%S")))?;
            cached.0 = secs;
        }
        out.write_str(&cached.1)?;
        let micros = since.subsec_micros();
        let mut digits = [b'0'; 6];
        let mut rest = micros;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.write_char('.')?;
        // Six ASCII digits.
        out.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)?;
        out.write_char('Z')
    })
}

/// Writes fields as `"name":value` pairs, each preceded by a comma: into the line (`String`),
/// or into a span's stored fragment (`Writer`, the visitor of [`JsonFragment`]).
pub struct Fields<W> {
    out: W,
    result: fmt::Result,
}

impl<W: fmt::Write> Fields<W> {
    fn name(&mut self, field: &Field) {
        if self.result.is_ok() {
            self.result = self
                .out
                .write_char(',')
                .and_then(|()| string(&mut self.out, field.name()))
                .and_then(|()| self.out.write_char(':'));
        }
    }

    fn raw(&mut self, field: &Field, json: &str) {
        self.name(field);
        if self.result.is_ok() {
            self.result = self.out.write_str(json);
        }
    }

    fn text(&mut self, field: &Field, value: &str) {
        self.name(field);
        if self.result.is_ok() {
            self.result = string(&mut self.out, value);
        }
    }
}

impl<W: fmt::Write> tracing::field::Visit for Fields<W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, if value { "true" } else { "false" });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json writes it (ryu; JSON has no NaN or infinity), without a `String`.
        if value.is_finite() {
            self.raw(field, ryu::Buffer::new().format_finite(value));
        } else {
            self.raw(field, "null");
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // A `%value` field: formatted into a buffer this thread keeps, not a new string per field.
        thread_local! {
            static BUFFER: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        BUFFER.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut buffer) => {
                buffer.clear();
                let _ = fmt::Write::write_fmt(&mut *buffer, format_args!("{value:?}"));
                self.text(field, &buffer);
                if buffer.capacity() > 4096 {
                    *buffer = String::new();
                }
            }
            // Formatting the value logged something itself: take the slow way.
            Err(_) => self.text(field, &format!("{value:?}")),
        });
    }
}

impl<W: fmt::Write> VisitOutput<fmt::Result> for Fields<W> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl<W: fmt::Write> VisitFmt for Fields<W> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.out
    }
}

/// Formats a span's fields as a JSON fragment: `,"name":value` for each (`FormatFields` comes
/// with `MakeVisitor`, from tracing-subscriber).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonFragment;

impl<'a> MakeVisitor<Writer<'a>> for JsonFragment {
    type Visitor = Fields<Writer<'a>>;

    fn make_visitor(&self, out: Writer<'a>) -> Fields<Writer<'a>> {
        Fields { out, result: Ok(()) }
    }
}

thread_local! {
    /// The buffer each logging thread writes its lines in; kept from line to line up to
    /// [`LINE_KEPT`] bytes.
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

const LINE_KEPT: usize = 16 * 1024;

/// One JSON object per event (see the module).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLine;

impl<S> FormatEvent<S, JsonFragment> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFragment>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The line is put together in a `String` of this thread's and handed over in one write:
        // written piece by piece through `Writer` (a `dyn fmt::Write`), each of its two dozen
        // pieces was a call through a vtable.
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                write_line(&mut line, ctx, event)?;
                let written = writer.write_str(&line);
                // One very long line (a long error chain) does not keep its memory for good.
                if line.capacity() > LINE_KEPT {
                    *line = String::new();
                }
                written
            }
            // Formatting a value logged something itself: a line of its own.
            Err(_) => {
                let mut line = String::new();
                write_line(&mut line, ctx, event)?;
                writer.write_str(&line)
            }
        })
    }
}

fn write_line<S>(out: &mut String, ctx: &FmtContext<'_, S, JsonFragment>, event: &Event<'_>) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use fmt::Write;
    let meta = event.metadata();
    out.push_str("{\"timestamp\":\"");
    timestamp(out, std::time::SystemTime::now())?;
    out.push_str("\",\"level\":\"");
    out.push_str(meta.level().as_str());
    out.push('"');
    let mut fields = Fields {
        out: &mut *out,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    out.push_str(",\"target\":");
    string(out, meta.target())?;
    let request = super::request::with_current(|request| -> fmt::Result {
        out.push_str(",\"span\":{\"name\":\"request\",\"request_id\":");
        string(out, request.id())?;
        out.push_str(",\"method\":");
        string(out, request.method.as_str())?;
        out.push_str(",\"path\":");
        string(out, request.path())?;
        out.write_char('}')
    });
    if let Some(written) = request {
        written?;
    } else if let Some(span) = ctx.lookup_current() {
        out.push_str(",\"span\":{\"name\":");
        string(out, span.name())?;
        if let Some(stored) = span.extensions().get::<FormattedFields<JsonFragment>>() {
            out.push_str(stored);
        }
        out.push('}');
    }
    out.push_str("}\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::prelude::*;

    use super::*;
    use crate::telemetry::captured::Captured;

    /// The request's id, method and path under `"span"` — written exactly as the per-request
    /// span wrote them before they moved to a task-local — and a span opened inside a request
    /// does not hide them.
    #[tokio::test]
    async fn a_line_logged_while_a_request_is_served_names_the_request_as_its_span_did() {
        let buffer = Captured::default();
        let subscriber = tracing_subscriber::registry().with(crate::telemetry::json_layer(buffer.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        let path = "/a\"b\\c/d%20e";
        let span = tracing::info_span!("request", request_id = "r-1", method = "GET", path = path);
        span.in_scope(|| tracing::info!(message = "request", status = 200u16));
        let request = crate::telemetry::request::Request {
            id: poem::http::HeaderValue::from_static("r-1"),
            method: poem::http::Method::GET,
            uri: "/a\"b\\c/d%20e?code=secret".parse().unwrap(),
        };
        crate::telemetry::request::scope(request, async {
            tracing::info!(message = "request", status = 200u16);
            tracing::info_span!("library", detail = "x").in_scope(|| tracing::info!("inner"));
        })
        .await;
        tracing::info!("after");
        let text = buffer.text();
        let raw: Vec<&str> = text.lines().collect();
        assert_eq!(raw.len(), 4, "{text}");
        let strip_time = |l: &str| l.split_once(",\"level\"").map(|(_, rest)| rest.to_string());
        assert_eq!(
            strip_time(raw[1]),
            strip_time(raw[0]),
            "the same line as the span's"
        );
        assert!(!text.contains("secret"), "never the query string: {text}");
        let inner: serde_json::Value = serde_json::from_str(raw[2]).unwrap();
        assert_eq!(inner["span"]["request_id"], "r-1");
        assert_eq!(inner["span"]["path"], "/a\"b\\c/d%20e");
        let after: serde_json::Value = serde_json::from_str(raw[3]).unwrap();
        assert!(after.get("span").is_none(), "the request is over: {}", raw[3]);
    }

    /// The line buffer stays between lines (no allocation per line), but not after a line
    /// longer than 16 KiB.
    #[test]
    fn the_line_buffer_is_kept_for_ordinary_lines_and_dropped_after_a_huge_one() {
        let subscriber = tracing_subscriber::registry().with(crate::telemetry::json_layer(std::io::sink));
        let capacity = || LINE.with(|l| l.borrow().capacity());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(detail = "x".repeat(5_000).as_str(), "a long line");
            assert!(capacity() >= 5_000, "kept: {}", capacity());
            tracing::info!(detail = "x".repeat(20_000).as_str(), "a huge line");
            assert_eq!(capacity(), 0, "dropped");
        });
    }

    /// The shortcut for strings that need no escaping writes exactly what serde_json writes —
    /// also for strings with several characters to escape, or nothing else.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for value in [
            "",
            "plain",
            "/auth/me",
            "a\"b\"c",
            "\"\"",
            "\\\\",
            "\n",
            "\u{1}\u{2}",
            "tab\there",
            "caf\u{e9} \u{7f}",
            "\u{1b}[31mred\"",
        ] {
            let mut ours = String::new();
            string(&mut ours, value).unwrap();
            assert_eq!(ours, serde_json::to_string(value).unwrap(), "{value:?}");
        }
    }

    #[test]
    fn timestamps_are_written_as_the_tracing_timer_writes_them() {
        use std::time::{Duration, UNIX_EPOCH};
        for (secs, micros) in [
            (0, 0),
            (1_764_906_721, 0),
            (1_764_906_721, 7),
            (1_764_906_721, 999_999),
            (1_764_906_722, 123_456),
            (4_102_444_799, 500_000),
        ] {
            let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            let mut ours = String::new();
            timestamp(&mut ours, at).unwrap();
            let expected = chrono::DateTime::<chrono::Utc>::from(at)
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            assert_eq!(ours, expected);
        }
    }

    #[test]
    fn each_line_is_one_json_object_with_the_event_flat_and_the_span_nested() {
        let buffer = Captured::default();
        let subscriber = tracing_subscriber::registry().with(crate::telemetry::json_layer(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("request", request_id = %"r-1", method = %"GET", path = %"/a\"b\\c\n");
            span.in_scope(|| {
                tracing::info!(
                    status = 200u16,
                    latency_ms = 1.25,
                    ok = true,
                    delta = -3i64,
                    "request"
                );
            });
            tracing::warn!(error = %"\u{1b}[31mred", "outside");
            // The access log's form: `message` as a text field writes the same line.
            span.in_scope(|| {
                tracing::info!(
                    message = "request",
                    status = 200u16,
                    latency_ms = 1.25,
                    ok = true,
                    delta = -3i64
                )
            });
        });
        let text = buffer.text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        let strip_time = |l: &str| l.split_once(",\"level\"").map(|(_, rest)| rest.to_string());
        let raw: Vec<&str> = text.lines().collect();
        assert_eq!(
            strip_time(raw[2]),
            strip_time(raw[0]),
            "same line but for the time"
        );
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "request");
        assert_eq!(first["status"], 200);
        assert_eq!(first["latency_ms"], 1.25);
        assert_eq!(first["ok"], true);
        assert_eq!(first["delta"], -3);
        assert_eq!(first["target"], module_path!());
        assert_eq!(first["span"]["name"], "request");
        assert_eq!(first["span"]["request_id"], "r-1");
        assert_eq!(
            first["span"]["path"], "/a\"b\\c\n",
            "escaped, and read back exactly"
        );
        assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
        let second = &lines[1];
        assert_eq!(second["error"], "\u{1b}[31mred");
        assert!(second.get("span").is_none());
    }
}
