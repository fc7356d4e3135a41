//! `wf logs RUN TASK [--attempt N] [--raw]`: print an attempt's captured stdout and stderr, made
//! safe for the terminal (colours kept on a terminal, every other control shown escaped) unless
//! `--raw` asks for the exact bytes.

use std::io::{Read, Write};

use wf_state::{Entry, Record};

use crate::context::{Ctx, Reader};
use crate::engine;
use crate::error::{Error, Result};
use crate::render::console::{Line, Tone};
use crate::render::fmt;

/// The attempt (given, or the task's last) of `task` in `run`, checked against the run's state.
fn attempt_of(
    reader: &mut Reader,
    run: u64,
    task: &str,
    attempt: Option<u32>,
) -> Result<(wf_state::TaskView, u32)> {
    let snap = match reader {
        Reader::Store(s) => s.snapshot(run)?,
        Reader::Live { records, .. } | Reader::Log { records } => {
            if records.iter().any(|r| r.run == run) {
                wf_state::machine::replay(records.iter().filter(|r| r.run == run)).ok()
            } else {
                None
            }
        }
        Reader::Empty => None,
    };
    let snap = snap.ok_or(Error::NoRun { run })?;
    let t = snap.task(task).ok_or_else(|| Error::NoTaskInRun {
        run,
        task: task.to_string(),
    })?;
    if t.attempts == 0 {
        return Err(Error::NotRun {
            run,
            task: task.to_string(),
            state: t.state,
        });
    }
    let attempt = attempt.unwrap_or(t.attempts);
    if attempt == 0 || attempt > t.attempts {
        return Err(Error::NoAttempt {
            run,
            task: task.to_string(),
            attempts: t.attempts,
            attempt,
        });
    }
    Ok((t.clone(), attempt))
}

/// The log of an attempt of `task` in `run` (default: its last attempt), opened for reading
/// inside the state directory (never through a planted link): the attempt, and the file, or
/// `None` when the attempt printed nothing. `wf serve` calls this too.
pub fn open(
    ctx: &Ctx,
    run: u64,
    task: &str,
    attempt: Option<u32>,
) -> Result<(u32, Option<std::fs::File>)> {
    let mut reader = ctx.read()?;
    let (_, attempt) = attempt_of(&mut reader, run, task, attempt)?;
    let path = engine::log_path(&ctx.state_dir, run, task, attempt);
    let opened = path
        .strip_prefix(&ctx.state_dir)
        .map_err(std::io::Error::other)
        .and_then(|rel| wf_state::safe::open(&ctx.state_dir, rel, wf_state::safe::How::Read));
    match opened {
        Ok(f) => Ok((attempt, Some(f))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((attempt, None)),
        Err(e) => Err(wf_state::safe::state_err(&path, "reading the log")(e).into()),
    }
}

pub fn logs(ctx: &Ctx, run: u64, task: &str, attempt: Option<u32>, raw: bool) -> Result<i32> {
    let mut reader = ctx.read()?;
    let (t, attempt) = attempt_of(&mut reader, run, task, attempt)?;
    let records = records_of(&reader, run)?;
    let cut = records.iter().find_map(|r| match &r.entry {
        Entry::Usage {
            task: t,
            attempt: n,
            printed,
            head,
            dropped,
            ..
        } if t == task && *n == attempt => Some((*printed, *head, *dropped)),
        _ => None,
    });
    let path = engine::log_path(&ctx.state_dir, run, task, attempt);
    // Never through a link planted in the state directory (it would print a file from elsewhere).
    let opened = path
        .strip_prefix(&ctx.state_dir)
        .map_err(std::io::Error::other)
        .and_then(|rel| wf_state::safe::open(&ctx.state_dir, rel, wf_state::safe::How::Read));
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Pruned by `wf gc`: say when and under which policy.
            if let Some((at, policy)) = pruned(&records, task, attempt) {
                return Err(Error::Usage(format!(
                    "the log of attempt {attempt} of `{task}` in run {run} was pruned by `wf gc` on {} under its {policy} retention policy",
                    fmt::local(at)
                )));
            }
            // The log is created at an attempt's first output: none means it printed nothing
            // (or, for an attempt that could not start, never ran).
            let never_started = attempt == t.attempts
                && t.pid.is_none()
                && t.exit_code.is_none()
                && matches!(t.reason, wf_state::Reason::Error(_));
            match &t.reason {
                wf_state::Reason::Error(why) if never_started => ctx.out.alert(&format!(
                    "wf: attempt {attempt} of `{task}` in run {run} never started: {why}"
                )),
                _ => ctx.out.alert(&format!(
                    "wf: attempt {attempt} of `{task}` in run {run} printed nothing"
                )),
            }
            return Ok(0);
        }
        Err(e) => {
            return Err(wf_state::safe::state_err(&path, "reading the log")(e).into());
        }
    };
    let marker = match cut {
        Some((printed, head, dropped)) if dropped > 0 => {
            let note = format!(
                "[wf: {} of output dropped here: the log keeps the first {} and the last {} of the {} printed (log_limit)]",
                fmt::bytes(dropped),
                fmt::bytes(head),
                fmt::bytes(printed - head - dropped),
                fmt::bytes(printed)
            );
            if raw {
                // --raw is the stored bytes exactly: the note goes to stderr.
                ctx.out
                    .alert(&format!("wf: {note}; the cut is after byte {head}"));
                None
            } else {
                Some((head, note))
            }
        }
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    let failed = |e: std::io::Error| Error::io("writing the log", "stdout")(e);
    let mut shown = Shown {
        raw,
        colour: ctx.out.task_colour(),
        carry: Vec::new(),
        last: b'\n',
    };
    let mut buf = vec![0u8; CHUNK];
    let mut at: u64 = 0;
    loop {
        // Read up to the cut, then on.
        let want = match &marker {
            Some((head, _)) if at < *head => buf.len().min((*head - at) as usize),
            _ => buf.len(),
        };
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(wf_state::safe::state_err(&path, "reading the log")(e).into()),
        };
        shown.write(&mut out, &buf[..n]).map_err(&failed)?;
        at += n as u64;
        if let Some((head, note)) = &marker {
            if at == *head {
                shown.flush(&mut out).map_err(&failed)?;
                if shown.last != b'\n' {
                    out.write_all(b"\n").map_err(&failed)?;
                }
                out.flush().map_err(&failed)?;
                ctx.out.line(Line::new().paint(Tone::Warn, note.as_str()))?;
                shown.last = b'\n';
            }
        }
    }
    shown.flush(&mut out).map_err(&failed)?;
    out.flush().map_err(&failed)?;
    Ok(0)
}

/// When and under which policy `wf gc` pruned the log of this attempt, if it did.
fn pruned(
    records: &[Record],
    task: &str,
    attempt: u32,
) -> Option<(chrono::DateTime<chrono::Utc>, String)> {
    records.iter().find_map(|r| match &r.entry {
        Entry::Pruned { logs, .. } => logs
            .iter()
            .find(|l| l.task == task && l.attempt == attempt)
            .map(|l| (r.at, l.policy.clone())),
        _ => None,
    })
}

/// How many bytes of the log are read (and shown) at a time.
const CHUNK: usize = 64 * 1024;

/// The log's bytes on their way to stdout, a chunk at a time: exact with --raw, else made safe
/// for the terminal line by line (a partial line waits for its end, up to a chunk).
struct Shown {
    raw: bool,
    colour: crate::safe::Colour,
    carry: Vec<u8>,
    last: u8,
}

impl Shown {
    fn write(&mut self, out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(b) = bytes.last() {
            self.last = *b;
        }
        if self.raw {
            return out.write_all(bytes);
        }
        self.carry.extend_from_slice(bytes);
        let end = match self.carry.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if self.carry.len() >= CHUNK => self.carry.len(),
            None => return Ok(()),
        };
        let text = crate::safe::task_output(&self.carry[..end], self.colour);
        self.carry.drain(..end);
        out.write_all(text.as_bytes())
    }

    fn flush(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.raw || self.carry.is_empty() {
            return Ok(());
        }
        let text = crate::safe::task_output(&self.carry, self.colour);
        self.carry.clear();
        out.write_all(text.as_bytes())
    }
}

/// The journal records of `run` (empty when there are none to read).
fn records_of(reader: &Reader, run: u64) -> Result<Vec<Record>> {
    Ok(match reader {
        Reader::Store(s) => s.records(run)?,
        Reader::Live { records, .. } | Reader::Log { records } => {
            records.iter().filter(|r| r.run == run).cloned().collect()
        }
        Reader::Empty => Vec::new(),
    })
}
