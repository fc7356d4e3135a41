//! Manual gates: finding the task a run waits on, approving it (and continuing its run), rejecting
//! it, and `approval_timeout`, which fails a gate left waiting too long. There is no daemon: every
//! `wf` that writes the state (run, resume, approve, reject) first fails the gates whose time ran
//! out ([`expire`], through `run::settle`), journaled with who (`wf`), when and why.

use chrono::Utc;
use wf_state::{Entry, Reason, RunId, RunSnapshot, RunState, Store, TaskState, TaskView};

use super::own_files;
use super::run::{self, Driven, RunOptions};
use crate::context::Ctx;
use crate::error::{Error, GoneTask, Result};
use crate::render::console::{Console, Tone};
use crate::workflow::Workflow;

/// The run (given, or the newest waiting on `task`) and the state of `task` in it, which must be
/// waiting at its gate.
pub fn waiting_task(
    store: &mut Store,
    run: Option<RunId>,
    task: &str,
) -> Result<(RunSnapshot, TaskView)> {
    let run = match run {
        Some(r) => r,
        None => newest_waiting_on(store, task)?.ok_or_else(|| Error::NoneWaiting {
            task: task.to_string(),
        })?,
    };
    let snap = store.snapshot(run)?.ok_or(Error::NoRun { run })?;
    if snap.run.state == RunState::Superseded {
        return Err(superseded(store, run)?);
    }
    let t = snap.task(task).cloned().ok_or_else(|| Error::NoTaskInRun {
        run,
        task: task.to_string(),
    })?;
    if t.state != TaskState::Waiting {
        return Err(Error::NotWaiting {
            run,
            task: task.to_string(),
            state: t.state,
        });
    }
    Ok((snap, t))
}

/// The newest run in which `task` waits at its gate.
fn newest_waiting_on(store: &mut Store, task: &str) -> Result<Option<RunId>> {
    let waits = |store: &mut Store, run: u64| -> Result<bool> {
        Ok(store
            .view(run)?
            .and_then(|s| s.task(task).map(|t| t.state == TaskState::Waiting))
            .unwrap_or(false))
    };
    for r in store.active_runs()?.iter().rev() {
        if waits(store, r.id)? {
            return Ok(Some(r.id));
        }
    }
    // A gate can still wait in a run that ended failed (another task failed): the newest run with
    // a waiting task is looked at too.
    let slot = TaskState::ALL
        .iter()
        .position(|s| *s == TaskState::Waiting)
        .unwrap_or(usize::MAX);
    let mut candidates: Vec<u64> = Vec::new();
    for r in store.runs() {
        let r = r?;
        if r.counts.get(slot).is_some_and(|n| *n > 0) {
            candidates.push(r.id);
        }
    }
    for id in candidates {
        if waits(store, id)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Whether `run` is the newest run waiting at a gate (so `wf approve TASK` picks it).
pub fn newest_waiting(store: &Store, run: RunId) -> bool {
    store
        .active_runs()
        .map(|runs| {
            runs.iter()
                .filter(|r| r.state == RunState::Waiting)
                .map(|r| r.id)
                .max()
                == Some(run)
        })
        .unwrap_or(false)
}

/// The refusal for continuing a superseded run: it names the newer run to approve instead.
pub fn superseded(store: &Store, run: RunId) -> Result<Error> {
    let by = store
        .records(run)?
        .into_iter()
        .rev()
        .find_map(|rec| match rec.entry {
            Entry::Superseded { task, by } => Some((by, task)),
            _ => None,
        });
    Ok(Error::Superseded { run, by })
}

/// An approval as `wf approve` (or `wf serve`) gives it.
pub struct Approval<'a> {
    pub run: Option<RunId>,
    pub task: &'a str,
    pub note: Option<String>,
    /// Record the approval only; the run continues with a later `wf resume`.
    pub later: bool,
    pub jobs_given: Option<usize>,
    /// Who approves (journaled); `wf approve` gives the user it runs as.
    pub user: String,
    /// Called once the approval is journaled, before the run goes on (`wf serve` answers then).
    pub recorded: &'a mut dyn FnMut(RunId),
}

/// Approve a task waiting at its gate, journaled with who, when and why, and continue its run at
/// once (unless `later`). Returns how the drive ended, or `None` when the run was not driven.
pub fn approve(
    ctx: &Ctx,
    wf: &Workflow,
    store: &mut Store,
    a: Approval<'_>,
) -> Result<Option<Driven>> {
    run::settle(ctx, wf, store)?;
    let (snap, t) = waiting_task(store, a.run, a.task)?;
    let run = snap.run.id;
    let task = t.name.clone();
    let user = a.user.clone();
    let mut entries = Vec::new();
    if !a.later && snap.run.state != RunState::Running {
        entries.push(Entry::RunResumed {
            user: user.clone(),
            pid: std::process::id(),
            args: ctx.args.clone(),
        });
    }
    if !a.later {
        // The gated task (and whatever follows) runs on this run's files, not the newest run's.
        if wf.task(&task).is_none() {
            return Err(Error::TaskGone {
                run,
                task,
                file: wf.file.display().to_string(),
                next: GoneTask::Approve,
            });
        }
        entries.extend(own_files::put_back(
            ctx,
            wf,
            store,
            &snap,
            &format!("reject it with `wf reject {run} {task} --note TEXT` and start a new run with `wf run`"),
        )?);
    }
    entries.push(Entry::Approval {
        task: task.clone(),
        user: user.clone(),
        note: a.note,
    });
    entries.push(Entry::Transition {
        task: task.clone(),
        attempt: t.attempts,
        from: TaskState::Waiting,
        to: TaskState::Pending,
        reason: Reason::Approved,
        exit_code: None,
    });
    store.commit(run, entries)?;
    (a.recorded)(run);
    ctx.out.event(
        Tone::Good,
        "✓",
        &format!("{task} of run {run} approved by {user}"),
    );
    if a.later {
        ctx.out.event(
            Tone::Plain,
            "●",
            &format!("continue the run with `wf resume {run}`"),
        );
        return Ok(None);
    }
    let options = RunOptions::of_run(store, run)?;
    let jobs = options.jobs(a.jobs_given, wf)?;
    run::drive(ctx, wf, store, run, jobs, &options).map(Some)
}

/// Reject a task waiting at its gate: it fails (and its run, when nothing else waits in it), with
/// who and why journaled and an alert raised and delivered.
pub fn reject(
    ctx: &Ctx,
    wf: &Workflow,
    store: &mut Store,
    run: Option<RunId>,
    task: &str,
    note: &str,
    user: &str,
) -> Result<()> {
    run::settle(ctx, wf, store)?;
    let (snap, t) = waiting_task(store, run, task)?;
    let mut entries = rejection(store, snap.run.id, &t.name, user, note)?;
    entries.push(crate::alert::raise(
        wf,
        Some(&t.name),
        t.attempts,
        format!("rejected by {user}: {note}"),
        None,
        &[],
    ));
    store.commit(snap.run.id, entries)?;
    crate::alert::deliver(wf, store, &ctx.out)?;
    ctx.out.event(
        Tone::Bad,
        "✗",
        &format!(
            "{} of run {} rejected by {user}: {note}",
            t.name, snap.run.id
        ),
    );
    Ok(())
}

/// The entries that fail a waiting task, and end its run when nothing else waits in it.
fn rejection(
    store: &mut Store,
    run: RunId,
    task: &str,
    user: &str,
    note: &str,
) -> Result<Vec<Entry>> {
    let Some(snap) = store.view(run)? else {
        return Ok(Vec::new());
    };
    let attempts = snap.task(task).map_or(0, |t| t.attempts);
    let others_wait = snap
        .tasks
        .iter()
        .any(|t| t.name != task && t.state == TaskState::Waiting);
    let mut entries = vec![
        Entry::Rejection {
            task: task.to_string(),
            user: user.to_string(),
            note: note.to_string(),
        },
        Entry::Transition {
            task: task.to_string(),
            attempt: attempts,
            from: TaskState::Waiting,
            to: TaskState::Failed,
            reason: Reason::Rejected(note.to_string()),
            exit_code: None,
        },
    ];
    if !others_wait && snap.run.state != RunState::Failed {
        entries.push(Entry::RunEnded {
            state: RunState::Failed,
            reason: format!("{task} rejected by {user}: {note}"),
        });
    }
    Ok(entries)
}

/// Fail every gate that has waited longer than its task's `approval_timeout`.
pub fn expire(wf: &Workflow, store: &mut Store, out: &Console) -> Result<usize> {
    if !wf.tasks.iter().any(|t| t.approval_timeout.is_some()) {
        return Ok(0);
    }
    let now = Utc::now();
    let mut failed = 0;
    for run in store.active_runs()? {
        if run.state != RunState::Waiting {
            continue;
        }
        // When each task started waiting: its last `→ waiting` transition.
        let mut since = std::collections::HashMap::new();
        for r in store.records(run.id)? {
            if let Entry::Transition {
                task,
                to: TaskState::Waiting,
                ..
            } = &r.entry
            {
                since.insert(task.clone(), r.at);
            }
        }
        let waiting: Vec<String> = store
            .view(run.id)?
            .map(|s| {
                s.tasks
                    .iter()
                    .filter(|t| t.state == TaskState::Waiting)
                    .map(|t| t.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        for task in waiting {
            let Some(limit) = wf.task(&task).and_then(|t| t.approval_timeout) else {
                continue;
            };
            let Some(at) = since.get(&task) else { continue };
            let expired = chrono::Duration::from_std(limit)
                .ok()
                .and_then(|d| at.checked_add_signed(d))
                .is_some_and(|deadline| deadline <= now);
            if !expired {
                continue;
            }
            let note = format!(
                "no approval within its approval_timeout of {}",
                crate::render::fmt::policy(limit)
            );
            let mut entries = rejection(store, run.id, &task, "wf", &note)?;
            let attempts = store
                .view(run.id)?
                .and_then(|s| s.task(&task).map(|t| t.attempts))
                .unwrap_or(0);
            entries.push(crate::alert::raise(
                wf,
                Some(&task),
                attempts,
                note.clone(),
                None,
                &[],
            ));
            store.commit(run.id, entries)?;
            out.alert(&format!("wf: {task} of run {} failed: {note}", run.id));
            failed += 1;
        }
    }
    Ok(failed)
}
