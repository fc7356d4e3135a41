//! What opening a journal after a crash concludes. A run the journal shows `running` whose owner
//! is not alive is *interrupted*; an attempt the journal shows `running` in such a run was cut
//! short. Nothing here changes the journal: the engine decides, and journals, what to do.

use crate::lock::Holder;
use crate::machine::{RunSnapshot, RunView};
use crate::record::{RunState, TaskState};

/// The state of a run as shown to people: the journaled state, or `interrupted` for a running
/// run whose `wf` is gone.
pub fn shown_state(run: &RunView, holder: Option<&Holder>) -> &'static str {
    match run.state {
        RunState::Running if !owned_by(run, holder) => "interrupted",
        s => s.as_str(),
    }
}

/// Whether the live holder of the state directory is the `wf` driving this run.
pub fn owned_by(run: &RunView, holder: Option<&Holder>) -> bool {
    holder.is_some_and(|h| h.pid == run.pid && h.alive())
}

/// An attempt left `running` by a `wf` that is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutAttempt {
    pub task: String,
    pub attempt: u32,
    pub pid: Option<u32>,
    pub pid_start: Option<u64>,
    pub idempotent: bool,
}

/// The attempts of an interrupted run that were running when its `wf` died.
pub fn cut_attempts(snap: &RunSnapshot) -> Vec<CutAttempt> {
    snap.tasks
        .iter()
        .filter(|t| t.state == TaskState::Running)
        .map(|t| CutAttempt {
            task: t.name.clone(),
            attempt: t.attempts,
            pid: t.pid,
            pid_start: t.pid_start,
            idempotent: t.idempotent,
        })
        .collect()
}
