//! `wf approve [RUN] TASK`: release a manual task waiting at its gate, record who, when and why,
//! and continue its run at once (unless --later); the engine's `gate::approve` does it.

use wf_state::RunId;

use crate::cli::ApproveArgs;
use crate::command::exec;
use crate::context::Ctx;
use crate::engine::{gate, run};
use crate::error::{Error, Result};

/// Parse `[RUN] TASK` for `verb`.
pub fn parse_target(verb: &'static str, target: &[String]) -> Result<(Option<RunId>, String)> {
    match target {
        [task] => Ok((None, task.clone())),
        [run, task] => Ok((
            Some(run.parse::<u64>().map_err(|_| Error::NotARunId {
                verb,
                given: run.clone(),
            })?),
            task.clone(),
        )),
        _ => Err(Error::GateTarget { verb }),
    }
}

pub fn approve(ctx: &Ctx, args: &ApproveArgs) -> Result<i32> {
    let wf = ctx.workflow()?;
    run::jobs(args.exec.jobs, &wf)?;
    // Only a task of this workflow can be approved (exit 2 before anything is opened).
    let (run, task) = parse_target("approve", &args.target)?;
    if wf.task(&task).is_none() {
        return Err(Error::UnknownGateTask {
            task,
            file: ctx
                .file
                .as_ref()
                .map_or_else(|| "the workflow".into(), |f| f.display().to_string()),
        });
    }
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    let driven = gate::approve(
        ctx,
        &wf,
        &mut store,
        gate::Approval {
            run,
            task: &task,
            note: args.note.clone(),
            later: args.later,
            jobs_given: args.exec.jobs,
        },
    )?;
    Ok(exec::ended(ctx, &store, driven))
}
