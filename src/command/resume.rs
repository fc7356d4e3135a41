//! `wf resume [RUN]`: continue the same run exactly where it stopped (design §4; the engine's
//! `run::resume` does it).

use crate::cli::ResumeArgs;
use crate::command::exec;
use crate::context::Ctx;
use crate::engine::run;
use crate::error::Result;

pub fn resume(ctx: &Ctx, args: &ResumeArgs) -> Result<i32> {
    let wf = ctx.workflow()?;
    // Checked now (e.g. --jobs 0), before the lock; the run's own --jobs applies when none is given.
    run::jobs(args.exec.jobs, &wf)?;
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    let driven = run::resume(ctx, &wf, &mut store, args.run, args.exec.jobs, args.force)?;
    Ok(exec::ended(ctx, &store, driven))
}
