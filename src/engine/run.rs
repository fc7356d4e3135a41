//! A run from the outside: the one entry that starts a run ([`start`]) and the one that continues
//! an existing run ([`resume`], [`continue_run`]; `approve` continues through it too), around the
//! scheduler's [`Engine::drive`]. Commands parse arguments, call one of these, and render the
//! [`Driven`] they return; they never build transitions themselves.

use std::time::{Duration, Instant};

use rustix::process::Signal;
use wf_state::recover::{self, CutAttempt};
use wf_state::{Entry, Reason, RunId, RunState, Store, TaskPlan, TaskState};

use super::{attempt_marker, cgroup, gate, own_files, Engine, Outcome};
use crate::context::{self, Ctx};
use crate::error::{Error, GoneTask, Result};
use crate::procs;
use crate::render::console::Tone;
use crate::workflow::Workflow;

/// The number of tasks to run at once: `given` (--jobs), else the workflow's `jobs`, else the
/// cores.
pub fn jobs(given: Option<usize>, wf: &Workflow) -> Result<usize> {
    let n = given
        .or(wf.jobs)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if n == 0 {
        return Err(Error::NoJobs);
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
    pub fn jobs(&self, given: Option<usize>, wf: &Workflow) -> Result<usize> {
        jobs(given.or(self.jobs.map(|j| j as usize)), wf)
    }
}

/// What every command that writes the state does first: clear interrupted copies into the object
/// store, fail the gates whose approval_timeout ran out, and deliver what waits in the outbox.
pub fn settle(ctx: &Ctx, wf: &Workflow, store: &mut Store) -> Result<()> {
    // A copy into the object store that a crash cut short leaves a temporary file: remove it.
    wf_state::objects::Objects::new(store.root()).clean_tmp()?;
    gate::expire(wf, store, &ctx.out)?;
    crate::alert::deliver(wf, store, &ctx.out)
}

/// How one drive of a run ended, for the command to report.
#[derive(Debug)]
pub struct Driven {
    pub run: RunId,
    pub outcome: Outcome,
    pub took: Duration,
}

/// Drive `run` until nothing more can start, then deliver the alerts raised meanwhile (they are
/// journaled already).
pub fn drive(
    ctx: &Ctx,
    wf: &Workflow,
    store: &mut Store,
    run: RunId,
    jobs: usize,
    options: &RunOptions,
) -> Result<Driven> {
    let started = Instant::now();
    let outcome = Engine::new(wf, store, run, jobs, ctx.out)?
        .force(options.force.clone())
        .params(options.params.clone())
        .drive()?;
    let took = started.elapsed();
    crate::alert::deliver(wf, store, &ctx.out)?;
    Ok(Driven { run, outcome, took })
}

/// What `wf run` does with a run that was interrupted (the journal shows it running, and this wf
/// holds the lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// Refuse to start: the user continues it or gives it up first.
    Refuse,
    /// Continue it instead of starting a new run (`wf run --resume`); `params_given` says whether
    /// --param was given (they are not the interrupted run's, which keeps its own).
    Resume { params_given: bool, force: bool },
    /// Give it up (`--abandon`): its cut attempts end failed, the run failed.
    Abandon,
}

/// A new run as `wf run` asks for it.
#[derive(Debug)]
pub struct NewRun {
    /// The workflow's tasks in the run (indices, in topological order).
    pub selection: Vec<usize>,
    pub options: RunOptions,
    /// --jobs as given now, if given.
    pub jobs_given: Option<usize>,
    pub interrupted: Interrupted,
}

/// Start a run: settle the state, deal with an interrupted run, journal the run's start and
/// drive it. Returns `None` when the interrupted run it continued instead had nothing to do.
pub fn start(ctx: &Ctx, wf: &Workflow, store: &mut Store, new: NewRun) -> Result<Option<Driven>> {
    let jobs = jobs(new.jobs_given, wf)?;
    settle(ctx, wf, store)?;
    // We hold the lock, so a run the journal shows running has no live wf: it was interrupted.
    let interrupted: Vec<_> = store
        .active_runs()?
        .into_iter()
        .filter(|r| r.state == RunState::Running)
        .collect();
    if let Some(last) = interrupted.last() {
        match new.interrupted {
            Interrupted::Resume {
                params_given,
                force,
            } => {
                let own = RunOptions::of_run(store, last.id)?;
                if params_given && own.params != new.options.params {
                    ctx.out.alert(&format!(
                        "wf: run {} was interrupted; it continues with its own parameters ({}), not those given now — start the new run afterwards with the same command",
                        last.id,
                        crate::render::entry::options_text(&own.params, &None, &[], &None, None)
                    ));
                }
                return continue_run(ctx, wf, store, last.id, new.jobs_given, force);
            }
            Interrupted::Refuse => return Err(Error::Interrupted { run: last.id }),
            Interrupted::Abandon => {
                for r in &interrupted {
                    abandon(ctx, wf, store, r.id)?;
                }
            }
        }
    }
    let tasks = new
        .selection
        .iter()
        .filter_map(|&i| wf.tasks.get(i))
        .map(|t| TaskPlan {
            name: t.name.clone(),
            owner: t.owner.clone(),
            idempotent: t.idempotent,
            retries: t.retries,
            manual: t.manual,
        })
        .collect::<Vec<_>>();
    let count = tasks.len();
    let (run, _) = store.begin_run(vec![
        Entry::RunStarted {
            workflow: wf.name.clone(),
            file: wf.file.display().to_string(),
            user: context::user(),
            host: context::host(),
            pid: std::process::id(),
            args: ctx.args.clone(),
            tasks,
        },
        new.options.entry(),
    ])?;
    ctx.out.event(
        Tone::Plain,
        "●",
        &format!(
            "run {run} of {} started: {count} task{}, {jobs} at a time",
            wf.name,
            if count == 1 { "" } else { "s" }
        ),
    );
    let params = crate::render::entry::options_text(&new.options.params, &None, &[], &None, None);
    if !params.is_empty() {
        ctx.out
            .event(Tone::Dim, "●", &format!("parameters: {params}"));
    }
    drive(ctx, wf, store, run, jobs, &new.options).map(Some)
}

/// Give up an interrupted run: attempts cut short by the crash end failed, once no process of
/// theirs is left, and the run fails with an alert of its own.
fn abandon(ctx: &Ctx, wf: &Workflow, store: &mut Store, run: RunId) -> Result<()> {
    let mut entries = Vec::new();
    if let Some(snap) = store.snapshot(run)? {
        for c in recover::cut_attempts(&snap) {
            bury(store.root(), run, &c)?;
            entries.push(Entry::Transition {
                task: c.task.clone(),
                attempt: c.attempt,
                from: TaskState::Running,
                to: TaskState::Failed,
                reason: Reason::Interrupted("the run was abandoned".into()),
                exit_code: None,
            });
        }
    }
    let reason = format!("abandoned by {}", context::user());
    // The run failed without a task alert to say so: it gets its own.
    entries.push(crate::alert::raise(
        wf,
        None,
        0,
        format!("run {run} was interrupted and {reason}"),
        None,
        &[],
    ));
    entries.push(Entry::RunEnded {
        state: RunState::Failed,
        reason,
    });
    store.commit(run, entries)?;
    ctx.out
        .event(Tone::Warn, "●", &format!("run {run} abandoned"));
    Ok(())
}

/// `wf resume [RUN]`: settle the state, pick the run (given, else the interrupted one, else the
/// newest active, else the newest) and continue it.
pub fn resume(
    ctx: &Ctx,
    wf: &Workflow,
    store: &mut Store,
    run: Option<RunId>,
    jobs_given: Option<usize>,
    force: bool,
) -> Result<Option<Driven>> {
    // Checked now (e.g. --jobs 0); the run's own --jobs applies when none is given.
    jobs(jobs_given, wf)?;
    settle(ctx, wf, store)?;
    let run = match run {
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
                    None => return Err(Error::NoRunToResume),
                },
            }
        }
    };
    continue_run(ctx, wf, store, run, jobs_given, force)
}

/// Make sure no process of an interrupted attempt is alive: kill what is left and wait for it to
/// go. Its processes are found by the cgroups of the wf that died (where it ran attempts in
/// them: they hold everything the attempts started), by the recorded process group (the leader's
/// pid and start time: a reused pid is never mistaken for it), and by the attempt's key in their
/// environment (inherited by every child that did not clear it).
pub fn bury(root: &std::path::Path, run: RunId, cut: &CutAttempt) -> Result<Vec<u32>> {
    let marker = attempt_marker(root, run, &cut.task, cut.attempt);
    let mut found = procs::find_marked(&marker);
    // The cgroups of the wf that died (with its reaper): everything of its attempts.
    if let Some(c) = cgroup::available() {
        found.extend(c.bury_stale(root));
    }
    if let Some(pid) = cut.pid {
        found.extend(procs::bury_group(pid, cut.pid_start));
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

/// Continue `run` exactly where it stopped (design §4): attempts the journal shows running get a
/// new attempt once no process of theirs is alive; failed tasks get a new attempt; done tasks are
/// kept while their checkpointed outputs still verify by hash (or are put back). Returns `None`
/// when the run is already done.
pub fn continue_run(
    ctx: &Ctx,
    wf: &Workflow,
    store: &mut Store,
    run: RunId,
    jobs_given: Option<usize>,
    force: bool,
) -> Result<Option<Driven>> {
    let Some(snap) = store.snapshot(run)? else {
        return Err(Error::NoRun { run });
    };
    if snap.run.state == RunState::Done {
        ctx.out.event(
            Tone::Good,
            "●",
            &format!("run {run} is already done; nothing to resume"),
        );
        return Ok(None);
    }
    if snap.run.state == RunState::Superseded {
        return Err(gate::superseded(store, run)?);
    }
    if let Some(t) = snap.tasks.iter().find(|t| wf.task(&t.name).is_none()) {
        return Err(Error::TaskGone {
            run,
            task: t.name.clone(),
            file: wf.file.display().to_string(),
            next: GoneTask::Resume,
        });
    }
    if snap.run.state == RunState::Failed && snap.run.reason.starts_with("abandoned") {
        return Err(Error::Abandoned { run });
    }
    let cut = recover::cut_attempts(&snap);
    if !force {
        if let Some(c) = cut.iter().find(|c| !c.idempotent) {
            return Err(Error::NotIdempotent {
                run,
                task: c.task.clone(),
                attempt: c.attempt,
            });
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
    let jobs = options.jobs(jobs_given, wf)?;
    drive(ctx, wf, store, run, jobs, &options).map(Some)
}
