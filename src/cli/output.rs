//! How commands print: comfy-table tables (styled on a terminal, plain when piped, no colour
//! with `NO_COLOR`), relative times, and `--json`.
//!
//! Tables show what users and their browsers wrote (names, e-mail addresses, user agents,
//! revocation reasons): every cell goes through [`escape`], so no stored string can move the
//! cursor, retitle the terminal, reorder what the operator reads or hide itself.

use std::{
    borrow::Cow,
    fmt,
    io::{self, IsTerminal, Write},
};

use chrono::{DateTime, Utc};
use comfy_table::{presets, Attribute, Cell, ContentArrangement};
use serde::Serialize;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::CliError;

/// Writes to standard output (through [`outln!`] and [`out!`]).
///
/// A reader that went away — `authauth sessions list | head -1` once `head` has its line — is
/// [`CliError::StdoutClosed`]: the command stops there and exits 0 without a word, as `cat` and
/// `ls` do. Rust ignores SIGPIPE, so `println!` would panic (exit 101) instead. Restoring
/// SIGPIPE's default action was the other way: but then the process dies of the signal (status
/// 141, a failure under `set -o pipefail`) and, being process-wide, it would also apply to
/// `serve` and every socket the runtime writes.
pub fn write(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    io::stdout().lock().write_fmt(args).map_err(stdout_error)
}

fn stdout_error(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CliError::StdoutClosed
    } else {
        CliError::Failed(anyhow::Error::new(e).context("cannot write to standard output"))
    }
}

fn json_error(e: serde_json::Error) -> CliError {
    match e.io_error_kind() {
        Some(kind) => stdout_error(io::Error::from(kind)),
        None => CliError::Failed(anyhow::Error::new(e).context("cannot write JSON")),
    }
}

/// True when stdout is a terminal a person reads.
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

fn colour() -> bool {
    stdout_is_tty() && std::env::var_os("NO_COLOR").is_none()
}

/// Whether a terminal would act on `c` or not show it: C0 and C1 controls (ESC, CSI, BEL, CR,
/// newlines…), format characters (bidi overrides and isolates, zero-width spaces, the BOM, the
/// soft hyphen), line and paragraph separators. The zero-width (non-)joiners stay: several
/// scripts and emoji sequences need them, and they reorder nothing.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || match c.general_category() {
            GeneralCategory::Format => !matches!(c, '\u{200c}' | '\u{200d}'),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => true,
            _ => false,
        }
}

/// `s` with every character a terminal would act on or hide written as `\u{…}`.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for a message of several lines: the line breaks stay.
pub fn escape_lines(s: &str) -> String {
    s.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// A comfy-table table whose cells are always [`escape`]d.
pub struct Table(comfy_table::Table);

impl Table {
    pub fn add_row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.0.add_row(
            cells
                .into_iter()
                .map(|c| escape(c.as_ref()).into_owned())
                .collect::<Vec<_>>(),
        );
        self
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Narrower than this, a terminal's reported width is taken for "unknown": serial consoles, a
/// `docker exec -t` before its first resize and some CI runners report 0×0, and a table fitted
/// into that collapses to one-character columns.
const MIN_TERMINAL_WIDTH: u16 = 20;
/// The width assumed when the terminal does not tell: the traditional one.
const FALLBACK_WIDTH: u16 = 80;

/// The width to fit a table into on a terminal that reported `reported` columns (`None`: it
/// could not be asked), when that report cannot be used: `COLUMNS` (`columns`) if it is
/// usable, else 80. `None` when the report is fine.
fn fallback_width(reported: Option<u16>, columns: Option<&str>) -> Option<u16> {
    if reported.is_some_and(|w| w >= MIN_TERMINAL_WIDTH) {
        return None;
    }
    let from_env = columns
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|w| *w >= MIN_TERMINAL_WIDTH);
    Some(from_env.unwrap_or(FALLBACK_WIDTH))
}

/// A table with these headers, styled for where it goes.
pub fn table(headers: &[&str]) -> Table {
    let mut t = comfy_table::Table::new();
    if stdout_is_tty() {
        t.load_preset(presets::UTF8_HORIZONTAL_ONLY)
            .set_content_arrangement(ContentArrangement::Dynamic);
        let columns = std::env::var("COLUMNS").ok();
        if let Some(width) = fallback_width(t.width(), columns.as_deref()) {
            t.set_width(width);
        }
    } else {
        // Piped: whitespace-separated columns, no borders, no wrapping.
        t.load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled);
    }
    let bold = colour();
    t.set_header(headers.iter().map(|h| {
        let c = Cell::new(h);
        if bold {
            c.add_attribute(Attribute::Bold)
        } else {
            c
        }
    }));
    Table(t)
}

/// Prints a value as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(json_error)?;
    writeln!(out).map_err(stdout_error)
}

/// Streams a JSON array on stdout, one element at a time.
pub struct JsonArray {
    first: bool,
}

impl JsonArray {
    pub fn start() -> Result<Self, CliError> {
        out!("[")?;
        Ok(JsonArray { first: true })
    }

    pub fn push<T: Serialize>(&mut self, value: &T) -> Result<(), CliError> {
        let mut out = io::stdout().lock();
        out.write_all(if self.first { b"\n  " } else { b",\n  " })
            .map_err(stdout_error)?;
        serde_json::to_writer(&mut out, value).map_err(json_error)?;
        self.first = false;
        Ok(())
    }

    pub fn finish(self) -> Result<(), CliError> {
        outln!("{}]", if self.first { "" } else { "\n" })
    }
}

/// `3m ago`, `2h ago`, `in 25m`.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let (n, future) = if secs >= 0 { (secs, false) } else { (-secs, true) };
    let span = match n {
        0..=59 => format!("{n}s"),
        60..=3599 => format!("{}m", n / 60),
        3600..=86_399 => format!("{}h", n / 3600),
        _ => format!("{}d", n / 86_400),
    };
    if n < 5 {
        "just now".into()
    } else if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// `2026-11-27 10:49` (UTC), for absolute times in tables.
pub fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// Shortens `s` to `max` characters with an ellipsis.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Asks `question` before a destructive step; without a terminal, refuses (naming `action`)
/// unless `--yes`. Never waits on a prompt nobody can answer.
pub fn confirm(yes: bool, question: &str, action: &str) -> Result<(), super::CliError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(super::CliError::Config(format!(
            "refusing to {action} without confirmation: there is no terminal to ask on; pass --yes to proceed"
        )));
    }
    let prompt = question;
    let ok = dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact()
        .map_err(|e| super::CliError::Failed(anyhow::anyhow!("cannot read the answer: {e}")))?;
    if ok {
        Ok(())
    } else {
        Err(super::CliError::Failed(anyhow::anyhow!(
            "cancelled; nothing was changed"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc::now();
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now - chrono::Duration::minutes(3), now), "3m ago");
        assert_eq!(relative(now + chrono::Duration::minutes(25), now), "in 25m");
        assert_eq!(relative(now - chrono::Duration::hours(30), now), "1d ago");
        assert_eq!(shorten("Mozilla/5.0 (X11; Linux x86_64)", 10), "Mozilla/5…");
    }

    #[test]
    fn a_terminal_that_reports_no_usable_width_gets_a_sane_one() {
        assert_eq!(fallback_width(Some(120), None), None);
        assert_eq!(
            fallback_width(Some(120), Some("60")),
            None,
            "the terminal's own report wins"
        );
        assert_eq!(fallback_width(Some(0), None), Some(80));
        assert_eq!(fallback_width(Some(1), None), Some(80));
        assert_eq!(fallback_width(None, None), Some(80));
        assert_eq!(fallback_width(Some(0), Some("132")), Some(132));
        assert_eq!(fallback_width(Some(0), Some("0")), Some(80));
        assert_eq!(fallback_width(Some(0), Some("wide")), Some(80));
    }

    #[test]
    fn escaping_shows_what_a_terminal_would_act_on_and_keeps_the_rest() {
        assert_eq!(
            escape("Zoë 李 👩\u{200d}💻 ab\u{200c}c"),
            "Zoë 李 👩\u{200d}💻 ab\u{200c}c"
        );
        assert_eq!(
            escape("a\u{1b}[2J\u{9b}31m\r\n\t\u{7f}"),
            "a\\u{1b}[2J\\u{9b}31m\\u{d}\\u{a}\\u{9}\\u{7f}"
        );
        assert_eq!(
            escape("\u{202e}x\u{2066}\u{200b}\u{feff}\u{ad}\u{2028}"),
            "\\u{202e}x\\u{2066}\\u{200b}\\u{feff}\\u{ad}\\u{2028}"
        );
        assert_eq!(escape_lines("one\u{1b}\ntwo"), "one\\u{1b}\ntwo");
        let mut t = table(&["A"]);
        t.add_row(["x\u{1b}y"]);
        assert!(!t.to_string().contains('\u{1b}'));
    }
}
