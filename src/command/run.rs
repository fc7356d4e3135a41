//! `wf run`: start a new run (or, with --resume, continue the interrupted one).

use wf_state::recover;
use wf_state::{Entry, Reason, RunState, TaskPlan, TaskState};

use crate::cli::RunArgs;
use crate::command::exec::{self, RunOptions};
use crate::command::resume;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::params;
use crate::workflow::Workflow;

/// The tasks a run will include, in topological order.
fn plan(wf: &Workflow, args: &RunArgs) -> Result<Vec<usize>> {
    let check = |name: &str| {
        wf.index(name).ok_or_else(|| {
            let names: Vec<&str> = wf.tasks.iter().map(|t| t.name.as_str()).collect();
            Error::Usage(format!(
                "there is no task `{name}` in {}; its tasks are: {}",
                wf.file.display(),
                names.join(", ")
            ))
        })
    };
    if let Some(from) = &args.from {
        let i = check(from)?;
        let mut down = wf.downstream(i);
        down.sort_unstable();
        return Ok(down);
    }
    if !args.only.is_empty() {
        let mut sel = Vec::new();
        for name in &args.only {
            sel.push(check(name)?);
        }
        sel.sort_unstable();
        sel.dedup();
        return Ok(sel);
    }
    Ok((0..wf.tasks.len()).collect())
}

pub fn run(ctx: &Ctx, args: &RunArgs) -> Result<i32> {
    let wf = ctx.workflow()?;
    let selection = plan(&wf, args)?;
    let given = params::parse_args(&args.params)?;
    let options = RunOptions {
        params: params::resolve(&wf, &given, chrono::Utc::now().date_naive())?,
        force: args.force.clone(),
        only: args.only.clone(),
        from: args.from.clone(),
        jobs: args.exec.jobs.and_then(|j| u32::try_from(j).ok()),
    };
    for t in args.force.iter().flatten() {
        if wf.index(t).is_none() {
            return Err(Error::Usage(format!(
                "--force names `{t}`, which is not a task of {}",
                wf.file.display()
            )));
        }
    }
    let jobs = exec::jobs(&args.exec, &wf)?;
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    exec::settle(ctx, &wf, &mut store)?;
    // We hold the lock, so a run the journal shows running has no live wf: it was interrupted.
    let interrupted: Vec<_> = store
        .active_runs()?
        .into_iter()
        .filter(|r| r.state == RunState::Running)
        .collect();
    if let Some(last) = interrupted.last() {
        if args.resume {
            let own = RunOptions::of_run(&store, last.id)?;
            if !given.is_empty() && own.params != options.params {
                ctx.out.alert(&format!(
                    "wf: run {} was interrupted; it continues with its own parameters ({}), not those given now — start the new run afterwards with the same command",
                    last.id,
                    crate::render::entry::options_text(&own.params, &None, &[], &None, None)
                ));
            }
            return resume::resume_run(
                ctx,
                &wf,
                &mut store,
                last.id,
                &args.exec,
                args.force.is_some(),
            );
        }
        if !args.abandon {
            return Err(Error::Usage(format!(
                "run {} was interrupted; continue it with `wf resume` or give it up with `wf run --abandon`",
                last.id
            )));
        }
        for r in &interrupted {
            // Attempts cut short by the crash end failed, once no process of theirs is left.
            let mut entries = Vec::new();
            if let Some(snap) = store.snapshot(r.id)? {
                for c in recover::cut_attempts(&snap) {
                    resume::bury(store.root(), r.id, &c)?;
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
                &wf,
                None,
                0,
                format!("run {} was interrupted and {reason}", r.id),
                None,
                &[],
            ));
            entries.push(Entry::RunEnded {
                state: RunState::Failed,
                reason,
            });
            store.commit(r.id, entries)?;
            ctx.out.event(
                crate::render::console::Tone::Warn,
                "●",
                &format!("run {} abandoned", r.id),
            );
        }
    }
    let tasks = selection
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
        options.entry(),
    ])?;
    ctx.out.event(
        crate::render::console::Tone::Plain,
        "●",
        &format!(
            "run {run} of {} started: {count} task{}, {jobs} at a time",
            wf.name,
            if count == 1 { "" } else { "s" }
        ),
    );
    let params = crate::render::entry::options_text(&options.params, &None, &[], &None, None);
    if !params.is_empty() {
        ctx.out.event(
            crate::render::console::Tone::Dim,
            "●",
            &format!("parameters: {params}"),
        );
    }
    exec::drive(ctx, &wf, &mut store, run, jobs, &options)
}
