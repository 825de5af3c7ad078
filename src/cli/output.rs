//! How commands print: comfy-table tables (styled on a terminal, plain when piped, no colour
//! with `NO_COLOR`), relative times, and `--json`.

use std::io::{IsTerminal, Write};

use chrono::{DateTime, Utc};
use comfy_table::{presets, Attribute, Cell, ContentArrangement, Table};
use serde::Serialize;

/// True when stdout is a terminal a person reads.
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

fn colour() -> bool {
    stdout_is_tty() && std::env::var_os("NO_COLOR").is_none()
}

/// A table with these headers, styled for where it goes.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    if stdout_is_tty() {
        t.load_preset(presets::UTF8_HORIZONTAL_ONLY)
            .set_content_arrangement(ContentArrangement::Dynamic);
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
    t
}

/// Prints a value as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Streams a JSON array on stdout, one element at a time.
pub struct JsonArray {
    first: bool,
}

impl JsonArray {
    pub fn start() -> anyhow::Result<Self> {
        print!("[");
        Ok(JsonArray { first: true })
    }

    pub fn push<T: Serialize>(&mut self, value: &T) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(if self.first { b"\n  " } else { b",\n  " })?;
        serde_json::to_writer(&mut out, value)?;
        self.first = false;
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<()> {
        println!("{}]", if self.first { "" } else { "\n" });
        Ok(())
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
}
