//! `wf logs RUN TASK [--attempt N] [--raw]`: print an attempt's captured stdout and stderr, made
//! safe for the terminal (colours kept on a terminal, every other control shown escaped) unless
//! `--raw` asks for the exact bytes.

use std::io::Write;

use crate::context::{Ctx, Reader};
use crate::engine;
use crate::error::{Error, Result};

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
    let path = engine::log_path(&ctx.state_dir, run, task, attempt);
    // Never through a link planted in the state directory (it would print a file from elsewhere).
    let read = path
        .strip_prefix(&ctx.state_dir)
        .map_err(std::io::Error::other)
        .and_then(|rel| wf_state::safe::open(&ctx.state_dir, rel, wf_state::safe::How::Read))
        .and_then(|mut f| {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut b).map(|_| b)
        });
    let bytes = match read {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Pruned by `wf gc`: say when and under which policy.
            if let Some((at, policy)) = pruned(&reader, run, task, attempt)? {
                return Err(Error::Usage(format!(
                    "the log of attempt {attempt} of `{task}` in run {run} was pruned by `wf gc` on {} under its {policy} retention policy",
                    crate::render::fmt::local(at)
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
            Vec::new()
        }
        Err(e) => {
            return Err(wf_state::safe::state_err(&path, "reading the log")(e).into());
        }
    };
    let shown;
    let bytes = if raw {
        &bytes[..]
    } else {
        shown = crate::safe::task_output(&bytes, ctx.out.task_colour());
        shown.as_bytes()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(Error::io("writing the log", "stdout"))?;
    Ok(0)
}

/// When and under which policy `wf gc` pruned the log of this attempt, if it did.
fn pruned(
    reader: &Reader,
    run: u64,
    task: &str,
    attempt: u32,
) -> Result<Option<(chrono::DateTime<chrono::Utc>, String)>> {
    let owned;
    let records: &[wf_state::Record] = match reader {
        Reader::Store(s) => {
            owned = s.records(run)?;
            &owned
        }
        Reader::Live { records, .. } | Reader::Log { records } => records,
        Reader::Empty => &[],
    };
    Ok(records
        .iter()
        .filter(|r| r.run == run)
        .find_map(|r| match &r.entry {
            wf_state::Entry::Pruned { logs, .. } => logs
                .iter()
                .find(|l| l.task == task && l.attempt == attempt)
                .map(|l| (r.at, l.policy.clone())),
            _ => None,
        }))
}
