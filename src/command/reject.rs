//! `wf reject [RUN] TASK --note TEXT`: fail a task waiting at its manual gate (engine::gate).

use crate::cli::RejectArgs;
use crate::command::approve::parse_target;
use crate::context::Ctx;
use crate::engine::gate;
use crate::error::{code, Result};

pub fn reject(ctx: &Ctx, args: &RejectArgs) -> Result<i32> {
    reject_as(ctx, args, &crate::context::user())
}

/// `wf reject` as `user` (journaled as the one who rejected); `wf serve` calls this.
pub fn reject_as(ctx: &Ctx, args: &RejectArgs, user: &str) -> Result<i32> {
    let (run, task) = parse_target("reject", &args.target)?;
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    let wf = ctx.workflow()?;
    gate::reject(ctx, &wf, &mut store, run, &task, &args.note, user)?;
    Ok(code::TASK_FAILED)
}
