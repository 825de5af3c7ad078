//! Where the server's log lines go: standard error, through a buffer.
//!
//! Writing each access-log line with its own `write(2)` cost the server about a tenth of its CPU
//! time under load (a system call per request, on top of the response's). Lines are instead
//! appended to one buffer and written together: when it holds [`FLUSH_AT`] bytes, every
//! `LOG_FLUSH_INTERVAL` (a background thread), when the server stops, and when a thread
//! panics. A warning or an error is written at once, with every line before it, so what
//! explains a failure is never held back. Like nginx's `access_log … buffer= flush=`: the price
//! is that a process killed outright (`SIGKILL`, the OOM killer) loses the information lines of
//! its last interval. `LOG_FLUSH_INTERVAL=0` writes every line at once.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// A buffer this full is written at once, whatever the interval.
pub const FLUSH_AT: usize = 64 * 1024;

/// The lines waiting and where they go, behind one lock, so lines reach the output in the order
/// they were logged.
struct Pending<W> {
    lines: Vec<u8>,
    out: W,
}

/// The buffer, shared by every thread that logs.
struct Buffer<W>(Mutex<Pending<W>>);

impl<W: Write> Buffer<W> {
    /// Appends one line; writes everything out when `now` or when the buffer is full.
    fn push(&self, line: &[u8], now: bool) {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        pending.lines.extend_from_slice(line);
        if now || pending.lines.len() >= FLUSH_AT {
            pending.write_out();
        }
    }

    fn flush(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write_out();
    }
}

impl<W: Write> Pending<W> {
    fn write_out(&mut self) {
        if self.lines.is_empty() {
            return;
        }
        // Nowhere to report a failed log write: the lines are dropped, as with plain stderr.
        let _ = self.out.write_all(&self.lines).and_then(|()| self.out.flush());
        self.lines.clear();
        if self.lines.capacity() > 4 * FLUSH_AT {
            self.lines.shrink_to(FLUSH_AT);
        }
    }
}

/// The `MakeWriter` of the server's log layer.
pub struct BufferedLog<W = std::io::Stderr> {
    buffer: Arc<Buffer<W>>,
    /// Zero: every line is written at once.
    interval: Duration,
}

impl<W> Clone for BufferedLog<W> {
    fn clone(&self) -> Self {
        BufferedLog {
            buffer: self.buffer.clone(),
            interval: self.interval,
        }
    }
}

impl<W: Write + Send + 'static> BufferedLog<W> {
    /// Lines to `out`, flushed at least every `interval` by a background thread (zero: each
    /// line at once, no thread).
    pub fn new(out: W, interval: Duration) -> Self {
        let log = BufferedLog {
            buffer: Arc::new(Buffer(Mutex::new(Pending {
                lines: Vec::with_capacity(FLUSH_AT),
                out,
            }))),
            interval,
        };
        if !interval.is_zero() {
            // The thread holds the buffer only weakly: it ends when the log is gone.
            let buffer = Arc::downgrade(&log.buffer);
            let spawned = std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(move || loop {
                    std::thread::sleep(interval);
                    match buffer.upgrade() {
                        Some(buffer) => buffer.flush(),
                        None => return,
                    }
                });
            if spawned.is_err() {
                // Without the thread, lines would wait for the next full buffer: write each.
                return BufferedLog {
                    interval: Duration::ZERO,
                    ..log
                };
            }
        }
        log
    }

    /// Writes out whatever is buffered.
    pub fn flush(&self) {
        self.buffer.flush();
    }
}

/// One line's writer (tracing-subscriber formats a whole line, then writes it once).
pub struct Line<'a, W> {
    buffer: &'a Buffer<W>,
    now: bool,
}

impl<W: Write> Write for Line<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.push(buf, self.now);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for BufferedLog<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            buffer: &self.buffer,
            now: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line {
            buffer: &self.buffer,
            // Warnings and errors at once (`Level` orders ERROR < WARN < INFO).
            now: self.interval.is_zero() || *meta.level() <= Level::WARN,
        }
    }
}

/// The server's log, once installed: flushed when the server stops and when a thread panics.
static INSTALLED: OnceLock<BufferedLog> = OnceLock::new();

/// The log writer for `serve`, installed once per process (later calls return the first).
pub(super) fn install(interval: Duration) -> BufferedLog {
    INSTALLED
        .get_or_init(|| {
            let log = BufferedLog::new(std::io::stderr(), interval);
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                flush();
                previous(info);
            }));
            log
        })
        .clone()
}

/// Writes out the server's buffered log lines, if it has any.
pub fn flush() {
    if let Some(log) = INSTALLED.get() {
        log.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that records each write it gets.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Writes {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().concat()).unwrap()
        }
        fn count(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    fn meta(level: Level) -> &'static Metadata<'static> {
        match level {
            Level::INFO => tracing::info_span!("info").metadata(),
            Level::WARN => tracing::warn_span!("warn").metadata(),
            _ => tracing::error_span!("error").metadata(),
        }
        .expect("a span has metadata")
    }

    #[test]
    fn information_lines_wait_for_the_interval_and_leave_in_one_write() {
        let out = Writes::default();
        // An interval no test waits for: only an explicit flush writes.
        let log = BufferedLog::new(out.clone(), Duration::from_secs(3600));
        for i in 0..3 {
            log.make_writer_for(meta(Level::INFO))
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert_eq!(out.count(), 0, "nothing written yet");
        log.flush();
        assert_eq!(out.count(), 1, "one write for the three lines");
        assert_eq!(out.text(), "line 0\nline 1\nline 2\n");
    }

    #[test]
    fn a_warning_is_written_at_once_after_the_lines_before_it() {
        let out = Writes::default();
        let log = BufferedLog::new(out.clone(), Duration::from_secs(3600));
        log.make_writer_for(meta(Level::INFO))
            .write_all(b"request\n")
            .unwrap();
        log.make_writer_for(meta(Level::WARN))
            .write_all(b"trouble\n")
            .unwrap();
        assert_eq!(out.text(), "request\ntrouble\n");
        log.make_writer_for(meta(Level::ERROR))
            .write_all(b"failure\n")
            .unwrap();
        assert_eq!(out.text(), "request\ntrouble\nfailure\n");
    }

    #[test]
    fn a_full_buffer_is_written_without_waiting() {
        let out = Writes::default();
        let log = BufferedLog::new(out.clone(), Duration::from_secs(3600));
        let line = vec![b'x'; 1000];
        let mut sent = 0;
        while out.count() == 0 {
            log.make_writer_for(meta(Level::INFO)).write_all(&line).unwrap();
            sent += line.len();
            assert!(sent <= FLUSH_AT + line.len(), "still buffered after {sent} bytes");
        }
        assert!(sent >= FLUSH_AT);
        assert_eq!(out.text().len(), sent);
    }

    #[test]
    fn the_background_thread_writes_what_waits() {
        let out = Writes::default();
        let log = BufferedLog::new(out.clone(), Duration::from_millis(10));
        log.make_writer_for(meta(Level::INFO))
            .write_all(b"soon\n")
            .unwrap();
        // Bounded: the flush thread runs every 10 ms; this waits for it, never for a fixed time.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while out.count() == 0 {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(out.text(), "soon\n");
    }

    #[test]
    fn with_a_zero_interval_every_line_is_written_at_once() {
        let out = Writes::default();
        let log = BufferedLog::new(out.clone(), Duration::ZERO);
        log.make_writer_for(meta(Level::INFO)).write_all(b"a\n").unwrap();
        log.make_writer_for(meta(Level::INFO)).write_all(b"b\n").unwrap();
        assert_eq!(out.count(), 2);
    }
}
