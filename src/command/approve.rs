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
    approve_as(ctx, args, &crate::context::user(), &mut |_| {})
}

/// `wf approve` as `user` (journaled as the approver); `recorded` is called once the approval is
/// journaled, before the run goes on. `wf serve` calls this from a thread of its own.
pub fn approve_as(
    ctx: &Ctx,
    args: &ApproveArgs,
    user: &str,
    recorded: &mut dyn FnMut(RunId),
) -> Result<i32> {
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
            user: user.to_string(),
            recorded,
        },
    )?;
    Ok(exec::ended(ctx, &store, driven))
}

#[cfg(test)]
mod tests {
    use super::parse_target;
    use crate::error::code;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("approve", &args(&["t"])).ok(),
            Some((None, "t".to_string()))
        );
        assert_eq!(
            parse_target("approve", &args(&["12", "t"])).ok(),
            Some((Some(12), "t".to_string()))
        );
        // Not a run id: too large, negative, empty, with a sign or spaces — a usage error naming it.
        for bad in ["99999999999999999999999", "-1", "", "+ 3", "1e3", "٣"] {
            let e = parse_target("reject", &args(&[bad, "t"])).err();
            let e = e.unwrap_or_else(|| panic!("`{bad}` parsed as a run id"));
            assert_eq!(e.code(), code::USAGE);
            assert_eq!(
                e.to_string(),
                format!("`{bad}` is not a run id; use `wf reject [RUN] TASK`")
            );
        }
        for n in [0, 3] {
            let given = vec!["x".to_string(); n];
            let e = parse_target("approve", &given).err();
            assert_eq!(
                e.map(|e| e.to_string()).as_deref(),
                Some("use `wf approve [RUN] TASK`")
            );
        }
    }
}
