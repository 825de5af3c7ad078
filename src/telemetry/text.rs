//! The text line (development): tracing-subscriber's compact format, with the request being
//! served ([`super::request`]) at the end of the line, where the compact format writes a span's
//! fields — `… INFO authauth::api::edge: request status=200 latency_ms=0.4 request_id=… method=GET
//! path=/auth/me`.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::{
    fmt::{
        format::{Compact, Format, FormatEvent, FormatFields, Writer},
        FmtContext,
    },
    registry::LookupSpan,
};

pub struct TextLine {
    compact: Format<Compact>,
    ansi: bool,
}

impl TextLine {
    /// `ansi`: colours (for a person at a terminal).
    pub fn new(ansi: bool) -> Self {
        TextLine {
            compact: tracing_subscriber::fmt::format().compact().with_ansi(ansi),
            ansi,
        }
    }
}

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The id is a checked incoming id or a UUID, the method a token and the path a parsed
        // URI path: none can hold a control character.
        let Some(request) = super::request::with_current(|r| {
            format!(" request_id={} method={} path={}", r.id(), r.method, r.path())
        }) else {
            return self.compact.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.compact.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(line.strip_suffix('\n').unwrap_or(&line))?;
        if self.ansi {
            // Dimmed, as the compact format writes span fields.
            write!(writer, "\x1b[2m{request}\x1b[0m")?;
        } else {
            writer.write_str(&request)?;
        }
        writer.write_char('\n')
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::prelude::*;

    use crate::telemetry::{captured::Captured, request, text_layer};

    #[tokio::test]
    async fn a_line_logged_while_a_request_is_served_ends_with_the_request() {
        let buffer = Captured::default();
        let subscriber = tracing_subscriber::registry().with(text_layer(false, buffer.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        let request = request::Request {
            id: poem::http::HeaderValue::from_static("r-1"),
            method: poem::http::Method::POST,
            uri: "/auth/login?next=secret".parse().unwrap(),
        };
        request::scope(request, async {
            tracing::info!(message = "request", status = 200u16);
        })
        .await;
        tracing::info!("after");
        let text = buffer.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(" INFO authauth::telemetry::text::tests: request status=200 request_id=r-1 method=POST path=/auth/login"),
            "{text}"
        );
        assert!(
            lines[1].ends_with(" INFO authauth::telemetry::text::tests: after"),
            "{text}"
        );
    }
}
