//! Human output: task output prefixed by task name, and one line per event. Colour only on a
//! terminal and never with NO_COLOR; `-q` silences all but errors. On a terminal, a run also keeps
//! a live status line at the bottom (running tasks with elapsed time, done/total, failures); piped,
//! the output is plain lines, one per event, for CI logs.
//!
//! This is the only place that writes human output. Every piece of text it is given is made safe
//! for the terminal here ([`crate::safe`]); the only escape sequences that reach the terminal are
//! the colours of a [`Tone`], which no caller can spell itself (there is no public `paint`), and a
//! task's own colours (SGR only). `clippy::print_stdout`/`print_stderr` are denied elsewhere in the
//! crate so that no command prints around it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::safe::{self, safe};

/// The live status line currently shown at the bottom of the terminal (empty: none).
static STATUS: Mutex<String> = Mutex::new(String::new());

#[derive(Debug, Clone, Copy)]
pub struct Console {
    pub quiet: bool,
    pub verbose: bool,
    pub color: bool,
    /// A terminal that can show a live status line.
    pub live: bool,
}

/// Write a line, keeping the live status line (if any) below it.
fn emit(mut out: impl Write, line: &str) -> std::io::Result<()> {
    let status = STATUS.lock().map(|s| s.clone()).unwrap_or_default();
    if status.is_empty() {
        writeln!(out, "{line}")?;
    } else {
        write!(out, "\r\x1b[2K{line}\n{status}")?;
    }
    out.flush()
}

/// What the command was asked for could not be written to stdout. A reader that went away
/// (`wf history | head -1`) is a broken pipe: the command stops and wf exits 0 without a word
/// (`Error::is_broken_pipe`), as ripgrep does; any other failure (a full disk behind `>`) is an
/// error.
pub fn stdout_failed(e: std::io::Error) -> Error {
    Error::io("writing the output", "stdout")(e)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Bad,
    Warn,
    Dim,
}

impl Console {
    pub fn new(quiet: bool, verbose: bool) -> Console {
        let tty = std::io::stdout().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none();
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Console {
            quiet,
            verbose,
            color,
            live: tty && !quiet && !dumb,
        }
    }

    /// Show (or replace) the live status line; nothing unless on a terminal.
    pub fn status(&self, text: &str) {
        if !self.live {
            return;
        }
        let width = terminal_width().saturating_sub(1);
        let text: String = safe(text).chars().take(width).collect();
        if let Ok(mut s) = STATUS.lock() {
            *s = self.paint(Tone::Dim, &text);
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K{}", *s);
            let _ = out.flush();
        }
    }

    /// Remove the live status line.
    pub fn clear_status(&self) {
        if !self.live {
            return;
        }
        if let Ok(mut s) = STATUS.lock() {
            if !s.is_empty() {
                s.clear();
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\r\x1b[2K");
                let _ = out.flush();
            }
        }
    }

    /// `s` in the tone's colour (on a terminal with colour). `s` must already be safe: callers go
    /// through [`Line`], `event` or `alert`, which escape first.
    fn paint(&self, tone: Tone, s: &str) -> String {
        if !self.color {
            return s.to_string();
        }
        use anstyle::{AnsiColor, Style};
        let style = match tone {
            Tone::Plain => return s.to_string(),
            Tone::Good => Style::new().fg_color(Some(AnsiColor::Green.into())),
            Tone::Bad => Style::new().fg_color(Some(AnsiColor::Red.into())),
            Tone::Warn => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
            Tone::Dim => Style::new().dimmed(),
        };
        format!("{style}{s}{style:#}")
    }

    /// An event line on stdout (not with -q).
    pub fn event(&self, tone: Tone, mark: &str, msg: &str) {
        if self.quiet {
            return;
        }
        let line = format!("{} {}", self.paint(tone, mark), safe(msg));
        // Events narrate a run, which goes on whether or not anyone still reads them.
        let _ = emit(std::io::stdout().lock(), &line);
    }

    /// Many event lines at once, written through one buffer (a sweep's report can be a
    /// million lines; a write per line would cost more than the sweep).
    pub fn events<'a, S: AsRef<str>>(&self, lines: impl IntoIterator<Item = (Tone, &'a str, S)>) {
        if self.quiet {
            return;
        }
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        for (tone, mark, msg) in lines {
            if writeln!(out, "{} {}", self.paint(tone, mark), safe(msg.as_ref())).is_err() {
                return;
            }
        }
        let _ = out.flush();
    }

    /// A line of task output, prefixed by the task name (not with -q). The task's colours stay
    /// on a terminal with colour; every other control is shown escaped (`safe::task_output`).
    pub fn task_output(&self, task: &str, line: &str) {
        if self.quiet {
            return;
        }
        let prefix = self.paint(Tone::Dim, &format!("[{}]", safe(task)));
        let line = safe::task_output(line.as_bytes(), self.task_colour());
        let _ = emit(std::io::stdout().lock(), &format!("{prefix} {line}"));
    }

    /// What to do with a task's own colours on this output.
    pub fn task_colour(&self) -> safe::Colour {
        if self.color {
            safe::Colour::Keep
        } else {
            safe::Colour::Strip
        }
    }

    /// A line of a table or report on stdout (also with -q: it is what the command was asked
    /// for). Each part is escaped, then painted.
    /// A closed stdout ends the command (see [`stdout_failed`]).
    pub fn line(&self, line: Line) -> Result<()> {
        let mut s = String::new();
        for (tone, text) in &line.0 {
            s.push_str(&self.paint(*tone, &safe(text)));
        }
        emit(std::io::stdout().lock(), &s).map_err(stdout_failed)
    }

    /// One JSON Lines object on stdout (JSON escapes control characters by its own rules), its
    /// keys in name order as wf always wrote them (through `serde_json::Value`, whose objects are
    /// sorted), whatever the order of the row's fields. A closed stdout ends the command (see
    /// [`stdout_failed`]).
    pub fn json(&self, row: &impl serde::Serialize) -> Result<()> {
        let text = serde_json::to_value(row)
            .map(|v| v.to_string())
            .map_err(|e| Error::Internal(format!("a JSON row could not be written ({e})")))?;
        emit(std::io::stdout().lock(), &safe::json(&text)).map_err(stdout_failed)
    }

    /// An alert line with a coloured mark, like `event` but on stderr and also with -q.
    pub fn alert_mark(&self, tone: Tone, mark: &str, msg: &str) {
        self.alert_raw(&format!("{} {}", self.paint(tone, mark), safe(msg)));
    }

    /// A line that must be seen even with -q (failures, warnings) goes to stderr.
    pub fn alert(&self, msg: &str) {
        self.alert_raw(&safe(msg));
    }

    fn alert_raw(&self, msg: &str) {
        if self.live {
            // Keep the status line on stdout coherent: clear it, write, redraw.
            let status = STATUS.lock().map(|s| s.clone()).unwrap_or_default();
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
            let _ = writeln!(std::io::stderr().lock(), "{msg}");
            let _ = write!(out, "{status}");
            let _ = out.flush();
        } else {
            let _ = writeln!(std::io::stderr().lock(), "{msg}");
        }
    }
}

/// A line for `Console::line`, built from parts: plain text and text in a tone. Every part is
/// escaped when printed, so a task name, an owner or a note can be put in as it is.
#[derive(Debug, Default)]
pub struct Line(Vec<(Tone, String)>);

impl Line {
    pub fn new() -> Line {
        Line::default()
    }

    /// Plain text.
    pub fn text(mut self, s: impl Into<String>) -> Line {
        self.0.push((Tone::Plain, s.into()));
        self
    }

    /// Text in a tone's colour (on a terminal with colour).
    pub fn paint(mut self, tone: Tone, s: impl Into<String>) -> Line {
        self.0.push((tone, s.into()));
        self
    }
}

impl From<String> for Line {
    fn from(s: String) -> Line {
        Line::new().text(s)
    }
}

/// Print an error for people on stderr, made safe for the terminal (used by `main_with_args`,
/// which may have no `Console` yet).
pub fn error_line(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", safe(msg));
}

/// The terminal's width in columns (80 when it cannot be told).
fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stdout())
        .map(|w| w.ws_col as usize)
        .ok()
        .filter(|w| *w > 0)
        .unwrap_or(80)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(color: bool) -> Console {
        Console {
            quiet: false,
            verbose: false,
            color,
            live: false,
        }
    }

    #[test]
    fn tones_are_the_terminal_colours_and_nothing_without_colour() {
        let c = console(true);
        assert_eq!(c.paint(Tone::Good, "ok"), "\x1b[32mok\x1b[0m");
        assert_eq!(c.paint(Tone::Bad, "x"), "\x1b[31mx\x1b[0m");
        assert_eq!(c.paint(Tone::Warn, "w"), "\x1b[33mw\x1b[0m");
        assert_eq!(c.paint(Tone::Dim, "d"), "\x1b[2md\x1b[0m");
        assert_eq!(c.paint(Tone::Plain, "p"), "p");
        assert_eq!(console(false).paint(Tone::Bad, "x"), "x");
    }

    #[test]
    fn a_broken_pipe_is_told_apart_from_other_write_failures() {
        let closed = stdout_failed(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(closed.is_broken_pipe());
        assert_eq!(closed.code(), crate::error::code::OK);
        let full = stdout_failed(std::io::Error::from_raw_os_error(28));
        assert!(!full.is_broken_pipe());
        assert_eq!(full.code(), crate::error::code::INTERNAL);
        // stdout's disk is not the state directory's.
        let dir = std::path::Path::new("/state");
        assert!(!matches!(full.on_full_disk(dir), Error::DiskFull { .. }));
    }
}
