//! `wf restore RUN [TASK]`: put a run's checkpointed outputs back into the workspace, byte for
//! byte, each replaced atomically; a pruned checkpoint is refused with when and why it was pruned.

use std::collections::BTreeMap;

use wf_state::checkpoints::CheckpointRow;
use wf_state::objects::Objects;
use wf_state::StateError;

use crate::context::Ctx;
use crate::engine::checkpoint::{self, Unrestorable};
use crate::error::{Error, Result};
use crate::render::console::Tone;
use crate::render::fmt::local;

pub fn restore(ctx: &Ctx, run: u64, task: Option<&str>) -> Result<i32> {
    let _lock = ctx.lock_for_outputs()?;
    let store = ctx.open_write()?;
    if store.run(run)?.is_none() {
        return Err(Error::NoRun { run });
    }
    // The last checkpoint of each (task, path) in the run: the task's final attempt.
    let mut latest = BTreeMap::new();
    for c in store.checkpoints(run)? {
        if task.is_none_or(|t| t == c.row.task) {
            latest.insert((c.row.task.clone(), c.row.path.clone()), c.row);
        }
    }
    if latest.is_empty() {
        return Err(Error::NoCheckpoints {
            run,
            task: task.map(str::to_string),
        });
    }
    let objects = Objects::new(&ctx.state_dir);
    for ((t, path), row) in &latest {
        let inside = std::path::Path::new(path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            return Err(Error::State(wf_state::StateError::Corrupt(format!(
                "the journal names `{path}` as an output of `{t}`, which is outside the workflow directory; refusing to write it"
            ))));
        }
        if let Some(link) = checkpoint::linked_parent(&ctx.dir, path) {
            return Err(unrestorable(
                Unrestorable::Linked(link),
                &objects,
                path,
                t,
                row,
                run,
            ));
        }
        if let Some((at, policy)) = &row.pruned {
            return Err(Error::Usage(format!(
                "checkpoint {path} of `{t}` in run {run} was pruned by `wf gc` on {} under its {policy} retention policy; it cannot be restored",
                local(*at)
            )));
        }
        if let Err(why) = checkpoint::restorable(&objects, &ctx.dir, path, &row.hash) {
            return Err(unrestorable(why, &objects, path, t, row, run));
        }
    }
    for ((t, path), row) in &latest {
        let n = checkpoint::restore(&objects, &ctx.dir, path, &row.hash)?
            .map_err(|why| unrestorable(why, &objects, path, t, row, run))?;
        ctx.out.event(
            Tone::Good,
            "↺",
            &format!("restored {path} ({n} bytes) from `{t}` in run {run}"),
        );
    }
    Ok(0)
}

/// The refusal for a checkpoint that cannot be put back.
fn unrestorable(
    why: Unrestorable,
    objects: &Objects,
    path: &str,
    task: &str,
    row: &CheckpointRow,
    run: u64,
) -> Error {
    match why {
        Unrestorable::Linked(link) => Error::ThroughLink {
            path: path.to_string(),
            link,
        },
        Unrestorable::Gone => Error::State(StateError::Corrupt(format!(
            "the stored copy of {path} ({}) is missing from {}; the object store was changed by hand",
            row.hash,
            objects.dir().display()
        ))),
        Unrestorable::Rotten { hash, object } => Error::State(StateError::Corrupt(format!(
            "the stored copy of {path} from `{task}` in run {run} (object {hash}, {}) no longer matches its hash, so it was not restored; run `wf state verify` to check the whole store",
            object.display()
        ))),
    }
}
