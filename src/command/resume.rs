//! `wf resume`: continue the same run exactly where it stopped (design §4). Attempts the journal
//! shows running get a new attempt once no process of theirs is alive; failed tasks get a new
//! attempt; done tasks are kept while their checkpointed outputs still verify by hash.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use wf_state::recover::{self, CutAttempt};
use wf_state::{Entry, Reason, RunId, RunState, Store, TaskState};

use crate::cli::ResumeArgs;
use crate::command::exec;
use crate::console::Tone;
use crate::context::{self, Ctx};
use crate::engine::{self, checkpoint, process};
use crate::error::{code, Error, Result};
use crate::workflow::Workflow;

pub fn resume(ctx: &Ctx, args: &ResumeArgs) -> Result<i32> {
    let wf = ctx.workflow()?;
    let jobs = exec::jobs(&args.exec, &wf)?;
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
    resume_run(ctx, &wf, &mut store, run, jobs, args.force)
}

/// Make sure no process of an interrupted attempt is alive: kill what is left and wait for it to
/// go. Its processes are found by the recorded pid and start time (so a reused pid is never
/// mistaken for it) and by the attempt's key in their environment (inherited by every child).
pub fn bury(root: &std::path::Path, run: RunId, cut: &CutAttempt) -> Result<Vec<u32>> {
    let marker = engine::attempt_marker(root, run, &cut.task, cut.attempt);
    let mut found = process::find_marked(&marker);
    if let (Some(pid), Some(start)) = (cut.pid, cut.pid_start) {
        if wf_state::process::alive(pid, Some(start)) {
            // The verified leader: its whole group goes too.
            process::signal_group(pid, Signal::KILL);
            found.push(pid);
        }
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

/// A checkpoint as resume verifies it: attempt, path, hash.
type Recorded = (u32, String, String);

/// The checkpointed outputs of each done task's final attempt, from the run's records.
fn done_checkpoints(store: &Store, run: RunId) -> Result<HashMap<String, Vec<Recorded>>> {
    let mut map: HashMap<String, Vec<Recorded>> = HashMap::new();
    for rec in store.records(run)? {
        if let Entry::Checkpoint {
            task,
            attempt,
            path,
            hash,
            ..
        } = rec.entry
        {
            let v = map.entry(task).or_default();
            v.retain(|(a, _, _)| *a == attempt);
            v.push((attempt, path, hash));
        }
    }
    Ok(map)
}

pub fn resume_run(
    ctx: &Ctx,
    wf: &Workflow,
    store: &mut Store,
    run: RunId,
    jobs: usize,
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
    let checkpoints = done_checkpoints(store, run)?;
    let objects = wf_state::objects::Objects::new(store.root());
    for t in &snap.tasks {
        match t.state {
            TaskState::Failed => entries.push(Entry::Transition {
                task: t.name.clone(),
                attempt: t.attempts,
                from: TaskState::Failed,
                to: TaskState::Pending,
                reason: Reason::Resume,
                exit_code: None,
            }),
            TaskState::Done => {
                // Kept when every recorded output still verifies by hash, or can be restored from
                // the checkpoint store; otherwise it runs again, with the reason journaled.
                let mut why = None;
                for (_, path, hash) in checkpoints.get(&t.name).into_iter().flatten() {
                    match checkpoint::hash_file(&wf.dir, path) {
                        Ok(h) if h.hash == *hash => continue,
                        Ok(_) | Err(_)
                            if objects.has(hash)
                                && checkpoint::linked_parent(&wf.dir, path).is_none() =>
                        {
                            match objects.copy_out(hash, &wf.dir, path) {
                                Ok(_) => {}
                                // Never materialised: the task runs again instead.
                                Err(wf_state::StateError::Rotten { .. }) => {
                                    why = Some(format!(
                                        "{path} changed and its stored copy ({hash}) is damaged"
                                    ));
                                    break;
                                }
                                Err(e) => return Err(e.into()),
                            }
                            ctx.out.event(
                                Tone::Dim,
                                "↺",
                                &format!("{}: restored {path} from the checkpoint store", t.name),
                            );
                        }
                        Ok(_) => why = Some(format!("{path} changed")),
                        Err(_) => why = Some(format!("{path} is missing")),
                    }
                    if why.is_some() {
                        break;
                    }
                }
                if let Some(why) = why {
                    ctx.out.event(
                        Tone::Warn,
                        "↻",
                        &format!("{}: {why}; running it again", t.name),
                    );
                    entries.push(Entry::Transition {
                        task: t.name.clone(),
                        attempt: t.attempts,
                        from: TaskState::Done,
                        to: TaskState::Pending,
                        reason: Reason::OutputsChanged(why),
                        exit_code: None,
                    });
                }
            }
            _ => {}
        }
    }
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
    exec::drive(ctx, wf, store, run, jobs, None)
}
