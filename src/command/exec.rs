//! What `run`, `resume` and `approve` share: drive a run with the engine and end with one line
//! that says how it ended and what to type next.

use std::time::Instant;

use wf_state::{Entry, RunId, RunState, Store};

use crate::cli::ExecArgs;
use crate::context::Ctx;
use crate::engine::{Engine, Outcome};
use crate::error::{code, Error, Result};
use crate::render::console::Tone;
use crate::workflow::Workflow;

/// The number of tasks to run at once: --jobs, else the workflow's `jobs`, else the cores.
pub fn jobs(args: &ExecArgs, wf: &Workflow) -> Result<usize> {
    let n = args
        .jobs
        .or(wf.jobs)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if n == 0 {
        return Err(Error::Usage("--jobs must be at least 1".into()));
    }
    Ok(n)
}

/// What a run was started with (its `RunOptions` record) and every drive of it keeps: resume and
/// approve continue it with the same parameters and `--force`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    pub params: Vec<(String, String)>,
    pub force: Option<Vec<String>>,
    pub only: Vec<String>,
    pub from: Option<String>,
    pub jobs: Option<u32>,
}

impl RunOptions {
    /// The record journaled with the run's start.
    pub fn entry(&self) -> Entry {
        Entry::RunOptions {
            params: self.params.clone(),
            force: self.force.clone(),
            only: self.only.clone(),
            from: self.from.clone(),
            jobs: self.jobs,
        }
    }

    /// The options journaled with `run` (none for a run started before wf journaled them).
    pub fn of_run(store: &Store, run: RunId) -> Result<RunOptions> {
        // Journaled in the run's first batch: the first records suffice, but a run's records are
        // read in spans anyway.
        for rec in store.records(run)? {
            if let Entry::RunOptions {
                params,
                force,
                only,
                from,
                jobs,
            } = rec.entry
            {
                return Ok(RunOptions {
                    params,
                    force,
                    only,
                    from,
                    jobs,
                });
            }
        }
        Ok(RunOptions::default())
    }

    /// --jobs given now, else the run's own, else the workflow's default.
    pub fn jobs(&self, args: &ExecArgs, wf: &Workflow) -> Result<usize> {
        let journaled = ExecArgs {
            jobs: args.jobs.or(self.jobs.map(|j| j as usize)),
        };
        jobs(&journaled, wf)
    }
}

/// What every command that writes the state does first: clear interrupted copies into the object
/// store, fail the gates whose approval_timeout ran out, and deliver what waits in the outbox.
pub fn settle(ctx: &Ctx, wf: &Workflow, store: &mut Store) -> Result<()> {
    // A copy into the object store that a crash cut short leaves a temporary file: remove it.
    wf_state::objects::Objects::new(store.root()).clean_tmp()?;
    crate::command::gate::expire(ctx, wf, store)?;
    crate::alert::deliver(wf, store, &ctx.out)
}

/// Whether `run` is the newest run waiting at a gate (so `wf approve TASK` picks it).
fn newest_waiting(store: &Store, run: RunId) -> bool {
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

/// Drive `run` to its end and report; returns the exit code.
pub fn drive(
    ctx: &Ctx,
    wf: &Workflow,
    store: &mut Store,
    run: RunId,
    jobs: usize,
    options: &RunOptions,
) -> Result<i32> {
    let started = Instant::now();
    let outcome = Engine::new(wf, store, run, jobs, ctx.out)?
        .force(options.force.clone())
        .params(options.params.clone())
        .drive()?;
    let took = crate::render::fmt::duration(started.elapsed());
    // Alerts raised during the run go out now (they are journaled already).
    crate::alert::deliver(wf, store, &ctx.out)?;
    let out = &ctx.out;
    Ok(match outcome {
        Outcome::Done => {
            out.event(Tone::Good, "●", &format!("run {run} done in {took}"));
            code::OK
        }
        Outcome::Waiting(tasks) => {
            let which = if newest_waiting(store, run) {
                String::new()
            } else {
                format!("{run} ")
            };
            let cmds: Vec<String> = tasks
                .iter()
                .map(|t| format!("`wf approve {which}{t}`"))
                .collect();
            out.event(
                Tone::Warn,
                "●",
                &format!(
                    "run {run} is waiting at a manual gate: approve with {}",
                    cmds.join(" or ")
                ),
            );
            code::OK
        }
        Outcome::Failed(tasks) => {
            let first = tasks.first().map(String::as_str).unwrap_or("the task");
            out.alert_mark(
                Tone::Bad,
                "●",
                &format!(
                    "run {run} failed: {}; read `wf logs {run} {first}`, fix the cause, then `wf resume {run}`",
                    tasks.join(", ")
                ),
            );
            code::TASK_FAILED
        }
        Outcome::Stopped(sig) => {
            out.alert(&format!(
                "● run {run} stopped by {}; continue it with `wf resume {run}`",
                if sig == signal_hook::consts::SIGINT {
                    "Ctrl-C"
                } else {
                    "SIGTERM"
                }
            ));
            code::INTERRUPTED
        }
    })
}
