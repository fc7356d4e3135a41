//! `wf resume`: continue the same run exactly where it stopped (design §4). Attempts the journal
//! shows running get a new attempt once no process of theirs is alive; failed tasks get a new
//! attempt; done tasks are kept while their checkpointed outputs still verify by hash.

use std::time::{Duration, Instant};

use rustix::process::Signal;
use wf_state::recover::{self, CutAttempt};
use wf_state::{Entry, Reason, RunId, RunState, Store, TaskState};

use crate::command::exec::RunOptions;
use crate::command::own_files;

use crate::cli::ResumeArgs;
use crate::command::exec;
use crate::context::{self, Ctx};
use crate::engine::{self, cgroup, process};
use crate::error::{code, Error, Result};
use crate::render::console::Tone;
use crate::workflow::Workflow;

pub fn resume(ctx: &Ctx, args: &ResumeArgs) -> Result<i32> {
    let wf = ctx.workflow()?;
    // Checked now (e.g. --jobs 0); the run's own --jobs applies when none is given.
    exec::jobs(&args.exec, &wf)?;
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    exec::settle(ctx, &wf, &mut store)?;
    let run = match args.run {
        Some(r) => r,
        None => {
            let active = store.active_runs()?;
            match active
                .iter()
                .rev()
                .find(|r| r.state == RunState::Running)
                .or(active.last())
            {
                Some(r) => r.id,
                None => match store.latest_run()? {
                    Some(r) => r.id,
                    None => {
                        return Err(Error::Usage(
                            "there is no run to resume; start one with `wf run`".into(),
                        ))
                    }
                },
            }
        }
    };
    resume_run(ctx, &wf, &mut store, run, &args.exec, args.force)
}

/// Make sure no process of an interrupted attempt is alive: kill what is left and wait for it to
/// go. Its processes are found by the cgroups of the wf that died (where it ran attempts in
/// them: they hold everything the attempts started), by the recorded process group (the leader's pid and start time: a reused pid is
/// never mistaken for it), and by the attempt's key in their environment (inherited by every child
/// that did not clear it).
pub fn bury(root: &std::path::Path, run: RunId, cut: &CutAttempt) -> Result<Vec<u32>> {
    let marker = engine::attempt_marker(root, run, &cut.task, cut.attempt);
    let mut found = process::find_marked(&marker);
    // The cgroups of the wf that died (with its reaper): everything of its attempts.
    if let Some(c) = cgroup::available() {
        found.extend(c.bury_stale(root));
    }
    if let Some(pid) = cut.pid {
        found.extend(process::bury_group(pid, cut.pid_start));
    }
    found.sort_unstable();
    found.dedup();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<u32> = found
            .iter()
            .copied()
            .filter(|p| wf_state::process::alive(*p, None))
            .collect();
        if alive.is_empty() {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(Error::Internal(format!(
                "process {} of task {} (attempt {}) is still alive and would not die; stop it, then run `wf resume {run}`",
                alive[0], cut.task, cut.attempt
            )));
        }
        for p in alive.iter().filter(|p| **p > 1) {
            if let Some(pid) = rustix::process::Pid::from_raw(*p as i32) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn resume_run(
    ctx: &Ctx,
    wf: &Workflow,
    store: &mut Store,
    run: RunId,
    exec_args: &crate::cli::ExecArgs,
    force: bool,
) -> Result<i32> {
    let Some(snap) = store.snapshot(run)? else {
        return Err(Error::Usage(format!(
            "there is no run {run}; `wf history` lists the runs"
        )));
    };
    if snap.run.state == RunState::Done {
        ctx.out.event(
            Tone::Good,
            "●",
            &format!("run {run} is already done; nothing to resume"),
        );
        return Ok(code::OK);
    }
    if snap.run.state == RunState::Superseded {
        return Err(superseded(store, run)?);
    }
    if let Some(t) = snap.tasks.iter().find(|t| wf.task(&t.name).is_none()) {
        return Err(Error::Usage(format!(
            "task `{}` of run {run} is no longer in {}; restore it, or give the run up with `wf run --abandon`",
            t.name,
            wf.file.display()
        )));
    }
    if snap.run.state == RunState::Failed && snap.run.reason.starts_with("abandoned") {
        return Err(Error::Usage(format!(
            "run {run} was abandoned; start a new one with `wf run`"
        )));
    }
    let cut = recover::cut_attempts(&snap);
    if !force {
        if let Some(c) = cut.iter().find(|c| !c.idempotent) {
            return Err(Error::Usage(format!(
                "task `{}` is not idempotent and was interrupted during attempt {}; check what it did, then continue with `wf resume {run} --force`",
                c.task, c.attempt
            )));
        }
    }
    let mut entries = vec![Entry::RunResumed {
        user: context::user(),
        pid: std::process::id(),
        args: ctx.args.clone(),
    }];
    for c in &cut {
        let killed = bury(store.root(), run, c)?;
        let why = if killed.is_empty() {
            "wf stopped during the attempt".to_string()
        } else {
            format!(
                "wf stopped during the attempt; killed leftover process {}",
                killed
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        ctx.out.event(
            Tone::Warn,
            "↻",
            &format!(
                "{} was interrupted in attempt {}; running it again",
                c.task, c.attempt
            ),
        );
        entries.push(Entry::Transition {
            task: c.task.clone(),
            attempt: c.attempt,
            from: TaskState::Running,
            to: TaskState::Pending,
            reason: Reason::Interrupted(why),
            exit_code: None,
        });
    }
    for t in snap.tasks.iter().filter(|t| t.state == TaskState::Failed) {
        entries.push(Entry::Transition {
            task: t.name.clone(),
            attempt: t.attempts,
            from: TaskState::Failed,
            to: TaskState::Pending,
            reason: Reason::Resume,
            exit_code: None,
        });
    }
    // Done tasks are kept when their checkpointed outputs still verify by hash or are put back
    // from the store; the run never continues on another run's files.
    entries.extend(own_files::put_back(
        ctx,
        wf,
        store,
        &snap,
        "start a new run with `wf run`",
    )?);
    store.commit(run, entries)?;
    let done = store
        .snapshot(run)?
        .map_or(0, |s| s.run.count(TaskState::Done));
    ctx.out.event(
        Tone::Plain,
        "●",
        &format!(
            "run {run} of {} resumed: {done} of {} tasks already done",
            wf.name,
            snap.tasks.len()
        ),
    );
    // The run keeps the parameters and --force it was started with; --jobs given now wins.
    let options = RunOptions::of_run(store, run)?;
    let jobs = options.jobs(exec_args, wf)?;
    exec::drive(ctx, wf, store, run, jobs, &options)
}

/// The refusal for continuing a superseded run: it names the newer run to approve instead.
pub fn superseded(store: &Store, run: RunId) -> Result<Error> {
    for rec in store.records(run)?.into_iter().rev() {
        if let Entry::Superseded { task, by } = rec.entry {
            return Ok(Error::Usage(format!(
                "run {run} was superseded by run {by}, which reached `{task}` later; approve the newer one with `wf approve {by} {task}`"
            )));
        }
    }
    Ok(Error::Usage(format!(
        "run {run} was superseded by a newer run; `wf status` shows which run is waiting"
    )))
}
