//! `wf run`: start a new run (or, with --resume, continue the interrupted one): check the
//! arguments, then the engine's `run::start`.

use crate::cli::RunArgs;
use crate::command::exec;
use crate::context::Ctx;
use crate::engine::run::{self, Interrupted, NewRun, RunOptions};
use crate::error::{Error, Result};
use crate::params;
use crate::workflow::Workflow;

/// The tasks a run will include, in topological order.
fn plan(wf: &Workflow, args: &RunArgs) -> Result<Vec<usize>> {
    let check = |name: &str| {
        wf.index(name).ok_or_else(|| Error::UnknownTask {
            task: name.to_string(),
            file: wf.file.display().to_string(),
            tasks: wf.tasks.iter().map(|t| t.name.clone()).collect(),
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
            return Err(Error::UnknownForcedTask {
                task: t.clone(),
                file: wf.file.display().to_string(),
            });
        }
    }
    // Checked now (e.g. --jobs 0), before the lock.
    run::jobs(args.exec.jobs, &wf)?;
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    let interrupted = if args.resume {
        Interrupted::Resume {
            params_given: !given.is_empty(),
            force: args.force.is_some(),
        }
    } else if args.abandon {
        Interrupted::Abandon
    } else {
        Interrupted::Refuse
    };
    let new = NewRun {
        selection,
        options,
        jobs_given: args.exec.jobs,
        interrupted,
    };
    let driven = run::start(ctx, &wf, &mut store, new)?;
    Ok(exec::ended(ctx, &store, driven))
}
