//! `wf logs RUN TASK [--attempt N] [--raw]`: print an attempt's captured stdout and stderr, made
//! safe for the terminal (colours kept on a terminal, every other control shown escaped) unless
//! `--raw` asks for the exact bytes.

use std::io::Write;

use crate::context::{Ctx, Reader};
use crate::engine;
use crate::error::{Error, Result};

pub fn logs(ctx: &Ctx, run: u64, task: &str, attempt: Option<u32>, raw: bool) -> Result<i32> {
    let (attempt, file) = open(ctx, run, task, attempt)?;
    let read = file.map(|mut f| {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut b).map(|_| b)
    });
    let bytes = match read {
        Some(Ok(b)) => b,
        // The log is created at an attempt's first output: none means it printed nothing.
        None => {
            ctx.out.alert(&format!(
                "wf: attempt {attempt} of `{task}` in run {run} printed nothing"
            ));
            Vec::new()
        }
        Some(Err(e)) => {
            let path = engine::log_path(&ctx.state_dir, run, task, attempt);
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

/// The log of an attempt of `task` in `run` (default: its last attempt), opened for reading
/// inside the state directory (never through a planted link): the attempt, and the file, or
/// `None` when the attempt printed nothing. `wf serve` calls this too.
pub fn open(
    ctx: &Ctx,
    run: u64,
    task: &str,
    attempt: Option<u32>,
) -> Result<(u32, Option<std::fs::File>)> {
    let snap = match ctx.read()? {
        Reader::Store(mut s) => s.snapshot(run)?,
        Reader::Live { records, .. } | Reader::Log { records } => {
            if records.iter().any(|r| r.run == run) {
                wf_state::machine::replay(records.iter().filter(|r| r.run == run)).ok()
            } else {
                None
            }
        }
        Reader::Empty => None,
    };
    let snap = snap.ok_or_else(|| {
        Error::Usage(format!(
            "there is no run {run}; `wf history` lists the runs"
        ))
    })?;
    let t = snap
        .task(task)
        .ok_or_else(|| Error::Usage(format!("run {run} has no task `{task}`")))?;
    if t.attempts == 0 {
        return Err(Error::Usage(format!(
            "task `{task}` of run {run} has not run (it is {})",
            t.state
        )));
    }
    let attempt = attempt.unwrap_or(t.attempts);
    if attempt == 0 || attempt > t.attempts {
        return Err(Error::Usage(format!(
            "task `{task}` of run {run} has attempts 1 to {}, not {attempt}",
            t.attempts
        )));
    }
    let path = engine::log_path(&ctx.state_dir, run, task, attempt);
    // Never through a link planted in the state directory (it would print a file from elsewhere).
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
