//! `wf approve [RUN] TASK`: release a manual task waiting at its gate, record who, when and why,
//! and continue its run at once (unless --later).

use wf_state::{Entry, Reason, RunId, RunSnapshot, RunState, Store, TaskState, TaskView};

use crate::cli::ApproveArgs;
use crate::command::exec::{self, RunOptions};
use crate::command::own_files;
use crate::console::Tone;
use crate::context::{self, Ctx};
use crate::error::{code, Error, Result};

/// Parse `[RUN] TASK` for `verb`.
fn parse_target(verb: &str, target: &[String]) -> Result<(Option<RunId>, String)> {
    match target {
        [task] => Ok((None, task.clone())),
        [run, task] => Ok((
            Some(run.parse::<u64>().map_err(|_| {
                Error::Usage(format!(
                    "`{run}` is not a run id; use `wf {verb} [RUN] TASK`"
                ))
            })?),
            task.clone(),
        )),
        _ => Err(Error::Usage(format!("use `wf {verb} [RUN] TASK`"))),
    }
}

/// The run (given, or the newest waiting on TASK) and the state of TASK in it, which must be
/// waiting at its gate.
pub fn waiting_task(
    store: &mut Store,
    verb: &str,
    target: &[String],
) -> Result<(RunSnapshot, TaskView)> {
    let (run, task) = parse_target(verb, target)?;
    let run = match run {
        Some(r) => r,
        None => {
            let mut found = None;
            let waits = |store: &mut Store, run: u64| -> Result<bool> {
                Ok(store
                    .view(run)?
                    .and_then(|s| s.task(&task).map(|t| t.state == TaskState::Waiting))
                    .unwrap_or(false))
            };
            for r in store.active_runs()?.iter().rev() {
                if waits(store, r.id)? {
                    found = Some(r.id);
                    break;
                }
            }
            // A gate can still wait in a run that ended failed (another task failed): the newest
            // run with a waiting task is looked at too.
            if found.is_none() {
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
                        found = Some(id);
                        break;
                    }
                }
            }
            found.ok_or_else(|| {
                Error::Usage(format!(
                    "no run is waiting on task `{task}`; `wf status` shows what each task is doing"
                ))
            })?
        }
    };
    let snap = store.snapshot(run)?.ok_or_else(|| {
        Error::Usage(format!(
            "there is no run {run}; `wf history` lists the runs"
        ))
    })?;
    if snap.run.state == RunState::Superseded {
        return Err(crate::command::resume::superseded(store, run)?);
    }
    let t = snap
        .task(&task)
        .cloned()
        .ok_or_else(|| Error::Usage(format!("run {run} has no task `{task}`")))?;
    if t.state != TaskState::Waiting {
        return Err(Error::Usage(format!(
            "task `{task}` of run {run} is {}, not waiting for approval",
            t.state
        )));
    }
    Ok((snap, t))
}

pub fn approve(ctx: &Ctx, args: &ApproveArgs) -> Result<i32> {
    approve_as(ctx, args, &context::user(), &mut |_| {})
}

/// `wf approve` as `user` (`wf serve` passes the reviewer's name); `recorded` is called with the
/// run once the approval is journaled, before the run continues.
pub fn approve_as(
    ctx: &Ctx,
    args: &ApproveArgs,
    user: &str,
    recorded: &mut dyn FnMut(RunId),
) -> Result<i32> {
    let wf = ctx.workflow()?;
    exec::jobs(&args.exec, &wf)?;
    // Only a task of this workflow can be approved (exit 2 before anything is opened).
    let (_, name) = parse_target("approve", &args.target)?;
    if wf.task(&name).is_none() {
        return Err(Error::Usage(format!(
            "task `{name}` is not in {}; `wf status` shows the tasks waiting for approval",
            ctx.file
                .as_ref()
                .map_or_else(|| "the workflow".into(), |f| f.display().to_string())
        )));
    }
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    exec::settle(ctx, &wf, &mut store)?;
    let (snap, t) = waiting_task(&mut store, "approve", &args.target)?;
    let run = snap.run.id;
    let task = t.name.clone();
    let user = user.to_string();
    let mut entries = Vec::new();
    if !args.later && snap.run.state != RunState::Running {
        entries.push(Entry::RunResumed {
            user: user.clone(),
            pid: std::process::id(),
            args: ctx.args.clone(),
        });
    }
    if !args.later {
        // The gated task (and whatever follows) runs on this run's files, not the newest run's.
        if wf.task(&task).is_none() {
            return Err(Error::Usage(format!(
                "task `{task}` of run {run} is no longer in {}; restore it, or reject the run with `wf reject {run} {task} --note TEXT`",
                wf.file.display()
            )));
        }
        entries.extend(own_files::put_back(
            ctx,
            &wf,
            &mut store,
            &snap,
            &format!("reject it with `wf reject {run} {task} --note TEXT` and start a new run with `wf run`"),
        )?);
    }
    entries.push(Entry::Approval {
        task: task.clone(),
        user: user.clone(),
        note: args.note.clone(),
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
    recorded(run);
    ctx.out.event(
        Tone::Good,
        "✓",
        &format!("{task} of run {run} approved by {user}"),
    );
    if args.later {
        ctx.out.event(
            Tone::Plain,
            "●",
            &format!("continue the run with `wf resume {run}`"),
        );
        return Ok(code::OK);
    }
    let options = RunOptions::of_run(&store, run)?;
    let jobs = options.jobs(&args.exec, &wf)?;
    exec::drive(ctx, &wf, &mut store, run, jobs, &options)
}
