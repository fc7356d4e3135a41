//! The pure state machine: which task and run transitions are legal, and how a journal entry changes
//! the state of a run. Nothing here touches the disk, so `replay(journal) == state` can be tested.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::record::{Entry, Reason, Record, RunId, RunState, TaskPlan, TaskState};

/// Why an entry cannot be applied. Seeing one from the engine means a bug in the engine; seeing one
/// while replaying a journal means the journal is damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Illegal {
    #[error("run {0} already exists")]
    RunExists(RunId),
    #[error("run {0} has no start record")]
    NoRun(RunId),
    #[error("run {run} is {state}: {what} is not allowed")]
    Run {
        run: RunId,
        state: RunState,
        what: &'static str,
    },
    #[error("run {run} has no task `{task}`")]
    NoTask { run: RunId, task: String },
    #[error("task `{task}` cannot go from {from} to {to}{why}")]
    Task {
        task: String,
        from: TaskState,
        to: TaskState,
        why: &'static str,
    },
    #[error("task `{task}` is in attempt {current}, not {claimed}")]
    Attempt {
        task: String,
        current: u32,
        claimed: u32,
    },
}

/// Check one task transition against the rules of design §4:
/// `pending → running → done | failed`, `failed → pending`, `running → pending` (interrupted),
/// `pending → waiting → pending` (gate), `waiting → failed` (rejected), `pending → done` only as a
/// cache hit, and `done → pending` only when a resume finds its outputs gone.
pub fn check_task(from: TaskState, to: TaskState, reason: &Reason) -> Result<(), &'static str> {
    use TaskState::*;
    match (from, to) {
        (Pending, Running) | (Running, Done) | (Running, Failed) | (Failed, Pending) => Ok(()),
        (Running, Pending) => match reason {
            Reason::Interrupted(_) => Ok(()),
            _ => Err(" (only an interrupted attempt goes back to pending)"),
        },
        (Pending, Waiting) | (Waiting, Pending) | (Waiting, Failed) => Ok(()),
        (Pending, Done) => match reason {
            Reason::CacheHit => Ok(()),
            _ => Err(" (only a cache hit is done without running)"),
        },
        (Done, Pending) => match reason {
            Reason::OutputsChanged(_) => Ok(()),
            _ => Err(" (done is final unless its outputs are gone)"),
        },
        _ => Err(""),
    }
}

/// The current state of one task of a run: what `wf status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    pub name: String,
    pub state: TaskState,
    pub attempts: u32,
    /// Failed attempts retried under the task's `retries` budget since the budget was last reset.
    pub retries_used: u32,
    pub max_retries: u32,
    pub cached: bool,
    pub owner: Option<String>,
    pub idempotent: bool,
    pub manual: bool,
    pub approved: bool,
    #[serde(with = "crate::ts::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::ts::option")]
    pub ended_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub pid: Option<u32>,
    /// Start time of `pid` in clock ticks since boot (`/proc/PID/stat` field 22), so that a reused
    /// pid is never mistaken for the attempt's process.
    pub pid_start: Option<u64>,
    /// A retry is not started before this time (ms since the epoch).
    pub not_before_ms: Option<i64>,
    pub reason: Reason,
}

impl TaskView {
    fn new(plan: &TaskPlan) -> TaskView {
        TaskView {
            name: plan.name.clone(),
            state: TaskState::Pending,
            attempts: 0,
            retries_used: 0,
            max_retries: plan.retries,
            cached: false,
            owner: plan.owner.clone(),
            idempotent: plan.idempotent,
            manual: plan.manual,
            approved: false,
            started_at: None,
            ended_at: None,
            exit_code: None,
            pid: None,
            pid_start: None,
            not_before_ms: None,
            reason: Reason::Scheduled,
        }
    }
}

/// The run-level summary: what `wf history` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunView {
    pub id: RunId,
    pub workflow: String,
    pub state: RunState,
    #[serde(with = "crate::ts")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "crate::ts::option")]
    pub ended_at: Option<DateTime<Utc>>,
    pub user: String,
    pub host: String,
    /// The pid of the `wf` that last started or resumed the run.
    pub pid: u32,
    pub reason: String,
    /// Task counts by state, in the order of `TaskState::ALL`.
    pub counts: [u32; 5],
    pub owners: Vec<String>,
}

impl RunView {
    pub fn count(&self, s: TaskState) -> u32 {
        let i = TaskState::ALL.iter().position(|x| *x == s).unwrap_or(0);
        self.counts[i]
    }
}

/// Everything known about a run now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSnapshot {
    pub run: RunView,
    pub tasks: Vec<TaskView>,
}

impl RunSnapshot {
    pub fn task(&self, name: &str) -> Option<&TaskView> {
        self.tasks.iter().find(|t| t.name == name)
    }

    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.name == name)
    }

    fn recount(&mut self) {
        let mut counts = [0u32; 5];
        for t in &self.tasks {
            if let Some(i) = TaskState::ALL.iter().position(|x| *x == t.state) {
                counts[i] += 1;
            }
        }
        self.run.counts = counts;
    }

    fn task_mut(&mut self, name: &str) -> Result<&mut TaskView, Illegal> {
        let run = self.run.id;
        self.tasks
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| Illegal::NoTask {
                run,
                task: name.to_string(),
            })
    }
}

/// Apply one journal record to the state of its run. `state` is `None` before the run's first
/// record. On error nothing is changed (each kind of entry is checked in full before it is applied).
pub fn apply(state: &mut Option<RunSnapshot>, rec: &Record) -> Result<(), Illegal> {
    let at = rec.at;
    let snap = match (&rec.entry, state.as_mut()) {
        (
            Entry::RunStarted {
                workflow,
                user,
                host,
                pid,
                tasks,
                ..
            },
            None,
        ) => {
            let mut snap = RunSnapshot {
                run: RunView {
                    id: rec.run,
                    workflow: workflow.clone(),
                    state: RunState::Running,
                    started_at: at,
                    ended_at: None,
                    user: user.clone(),
                    host: host.clone(),
                    pid: *pid,
                    reason: String::new(),
                    counts: [0; 5],
                    owners: {
                        let mut o: Vec<String> =
                            tasks.iter().filter_map(|t| t.owner.clone()).collect();
                        o.sort();
                        o.dedup();
                        o
                    },
                },
                tasks: tasks.iter().map(TaskView::new).collect(),
            };
            snap.recount();
            *state = Some(snap);
            return Ok(());
        }
        (Entry::RunStarted { .. }, Some(_)) => return Err(Illegal::RunExists(rec.run)),
        (_, None) => return Err(Illegal::NoRun(rec.run)),
        (_, Some(s)) => s,
    };
    // Each arm of `apply_to` checks everything before it changes anything, so a refused entry
    // leaves the state as it was without a copy.
    apply_to(snap, rec, at)?;
    if matches!(rec.entry, Entry::Transition { .. }) {
        snap.recount();
    }
    Ok(())
}

fn apply_to(s: &mut RunSnapshot, rec: &Record, at: DateTime<Utc>) -> Result<(), Illegal> {
    let run = rec.run;
    let run_state = s.run.state;
    let refuse = |what: &'static str| Illegal::Run {
        run,
        state: run_state,
        what,
    };
    match &rec.entry {
        Entry::RunStarted { .. } => return Err(Illegal::RunExists(run)),
        Entry::RunResumed { pid, user, .. } => {
            if run_state.is_final() {
                return Err(refuse("resuming"));
            }
            s.run.state = RunState::Running;
            s.run.pid = *pid;
            s.run.user = user.clone();
            s.run.ended_at = None;
        }
        Entry::RunEnded { state, reason } => {
            let ok = match state {
                // A run is superseded only by `Superseded`, which names the newer run.
                RunState::Running | RunState::Superseded => false,
                RunState::Failed => !run_state.is_final(),
                _ => run_state == RunState::Running,
            };
            if !ok {
                return Err(refuse("ending"));
            }
            s.run.state = *state;
            s.run.reason = reason.clone();
            s.run.ended_at = Some(at);
        }
        Entry::Transition {
            task,
            attempt,
            from,
            to,
            reason,
            exit_code,
        } => {
            if run_state.is_final() {
                return Err(refuse("a task transition"));
            }
            let t = s.task_mut(task)?;
            if t.state != *from {
                return Err(Illegal::Task {
                    task: task.clone(),
                    from: t.state,
                    to: *to,
                    why: " (the journal says it is elsewhere)",
                });
            }
            check_task(*from, *to, reason).map_err(|why| Illegal::Task {
                task: task.clone(),
                from: *from,
                to: *to,
                why,
            })?;
            let expected = if *to == TaskState::Running {
                t.attempts + 1
            } else {
                t.attempts
            };
            if *attempt != expected {
                return Err(Illegal::Attempt {
                    task: task.clone(),
                    current: expected,
                    claimed: *attempt,
                });
            }
            match to {
                TaskState::Running => {
                    t.attempts += 1;
                    t.started_at = Some(at);
                    t.ended_at = None;
                    t.exit_code = None;
                    t.pid = None;
                    t.pid_start = None;
                    t.not_before_ms = None;
                    t.cached = false;
                }
                TaskState::Done => {
                    t.cached = matches!(reason, Reason::CacheHit);
                    t.ended_at = Some(at);
                    t.exit_code = *exit_code;
                }
                TaskState::Failed => {
                    t.ended_at = Some(at);
                    t.exit_code = *exit_code;
                }
                TaskState::Pending => {
                    t.pid = None;
                    t.pid_start = None;
                    match reason {
                        Reason::Retry { not_before_ms, .. } => {
                            t.retries_used += 1;
                            t.not_before_ms = Some(*not_before_ms);
                        }
                        Reason::Resume => {
                            t.retries_used = 0;
                            t.not_before_ms = None;
                        }
                        Reason::Approved => t.approved = true,
                        Reason::OutputsChanged(_) => t.cached = false,
                        _ => {}
                    }
                    if *from == TaskState::Running {
                        t.ended_at = Some(at);
                    }
                }
                TaskState::Waiting => {}
            }
            t.state = *to;
            t.reason = reason.clone();
        }
        Entry::Superseded { task, by } => {
            if run_state != RunState::Waiting {
                return Err(refuse("superseding"));
            }
            if *by <= run {
                return Err(refuse("superseding by a run that is not newer"));
            }
            let t = s.task_mut(task)?;
            if t.state != TaskState::Waiting {
                return Err(Illegal::Task {
                    task: task.clone(),
                    from: t.state,
                    to: TaskState::Waiting,
                    why: " (only a run waiting at this task can be superseded)",
                });
            }
            s.run.state = RunState::Superseded;
            s.run.reason = format!("superseded by run {by}, which reached {task}");
            s.run.ended_at = Some(at);
        }
        Entry::Spawned {
            task,
            attempt,
            pid,
            pid_start,
        } => {
            if run_state.is_final() {
                return Err(refuse("a process"));
            }
            let t = s.task_mut(task)?;
            if t.state != TaskState::Running || t.attempts != *attempt {
                return Err(Illegal::Task {
                    task: task.clone(),
                    from: t.state,
                    to: TaskState::Running,
                    why: " (a process was recorded for an attempt that is not running)",
                });
            }
            t.pid = Some(*pid);
            t.pid_start = *pid_start;
        }
        Entry::Restored { task, .. } => {
            if run_state.is_final() {
                return Err(refuse("restoring its files"));
            }
            s.task_mut(task)?;
        }
        Entry::RunOptions { .. } => {}
        Entry::Pruned { checkpoints, logs } => {
            for task in checkpoints
                .iter()
                .map(|c| &*c.task)
                .chain(logs.iter().map(|l| l.task.as_str()))
            {
                s.task_mut(task)?;
            }
        }
        Entry::Checkpoint { task, .. }
        | Entry::Metric { task, .. }
        | Entry::Fingerprint { task, .. }
        | Entry::Prune { task, .. }
        | Entry::Warning { task, .. }
        | Entry::CacheDecision { task, .. }
        | Entry::Outputs { task, .. }
        | Entry::Usage { task, .. } => {
            s.task_mut(task)?;
        }
        Entry::Alert {
            task: Some(task), ..
        } => {
            s.task_mut(task)?;
        }
        Entry::Alert { task: None, .. } | Entry::Delivery { .. } => {}
        Entry::Approval { task, .. } | Entry::Rejection { task, .. } => {
            if run_state.is_final() {
                return Err(refuse("an approval"));
            }
            let t = s.task_mut(task)?;
            if t.state != TaskState::Waiting {
                return Err(Illegal::Task {
                    task: task.clone(),
                    from: t.state,
                    to: TaskState::Pending,
                    why: " (only a waiting task can be approved or rejected)",
                });
            }
        }
    }
    Ok(())
}

/// Whether an entry leaves the run's state as it was (it is only checked against it): a batch of
/// only these needs no new run summary.
pub fn leaves_state(entry: &Entry) -> bool {
    matches!(
        entry,
        Entry::Checkpoint { .. }
            | Entry::Metric { .. }
            | Entry::Fingerprint { .. }
            | Entry::Prune { .. }
            | Entry::Pruned { .. }
            | Entry::Warning { .. }
            | Entry::CacheDecision { .. }
            | Entry::Outputs { .. }
            | Entry::Usage { .. }
            | Entry::Alert { .. }
            | Entry::Delivery { .. }
            | Entry::RunOptions { .. }
            | Entry::Restored { .. }
    )
}

/// Replay a run's records, in order, into its state.
pub fn replay<'a>(records: impl IntoIterator<Item = &'a Record>) -> Result<RunSnapshot, Illegal> {
    let mut state = None;
    let mut run = 0;
    for rec in records {
        run = rec.run;
        apply(&mut state, rec)?;
    }
    state.ok_or(Illegal::NoRun(run))
}

/// The machine fuzz target's check (fuzz/fuzz_targets/machine.rs), also run on stable by
/// `cargo test` over the committed corpus: bytes drive a sequence of entries, legal or not, for a
/// run of three tasks. Panics (the fuzzer's finding) when the machine misbehaves.
pub fn fuzz_check(data: &[u8]) {
    use crate::record::{Entry, Reason, Record, TaskPlan};
    const STATES: [TaskState; 5] = TaskState::ALL;
    let names = ["a", "b", "c"];
    let at = chrono::DateTime::<Utc>::UNIX_EPOCH;
    let start = Record {
        seq: 1,
        run: 1,
        at,
        entry: Entry::RunStarted {
            workflow: "f".into(),
            file: "wf.toml".into(),
            user: "u".into(),
            host: "h".into(),
            pid: 1,
            args: vec![],
            tasks: names
                .iter()
                .map(|n| TaskPlan {
                    name: n.to_string(),
                    owner: None,
                    idempotent: true,
                    retries: 1,
                    manual: false,
                })
                .collect(),
        },
    };
    let mut state = None;
    let mut accepted = vec![start.clone()];
    if apply(&mut state, &start).is_err() {
        panic!("a run could not start");
    }
    for (i, chunk) in data.chunks(4).enumerate() {
        let b = |k: usize| chunk.get(k).copied().unwrap_or(0) as usize;
        let task = names[b(0) % 3].to_string();
        let entry = match b(0) / 3 % 7 {
            0 => Entry::RunEnded {
                state: [
                    RunState::Waiting,
                    RunState::Done,
                    RunState::Failed,
                    RunState::Superseded,
                ][b(1) % 4],
                reason: String::new(),
            },
            6 => Entry::Superseded {
                task,
                by: (b(1) % 3) as u64,
            },
            1 => Entry::RunResumed {
                user: "u".into(),
                pid: 2,
                args: vec![],
            },
            2 => Entry::Approval {
                task,
                user: "u".into(),
                note: None,
            },
            _ => Entry::Transition {
                task,
                attempt: (b(3) % 4) as u32,
                from: STATES[b(1) % 5],
                to: STATES[b(2) % 5],
                reason: match b(3) % 7 {
                    0 => Reason::Started,
                    1 => Reason::CacheHit,
                    2 => Reason::Interrupted("x".into()),
                    3 => Reason::OutputsChanged("x".into()),
                    4 => Reason::Retry {
                        n: 1,
                        of: 1,
                        not_before_ms: 0,
                    },
                    5 => Reason::Approved,
                    _ => Reason::Exit(1),
                },
                exit_code: None,
            },
        };
        let rec = Record {
            seq: i as u64 + 2,
            run: 1,
            at,
            entry,
        };
        let before = state.clone();
        match apply(&mut state, &rec) {
            Ok(()) => accepted.push(rec),
            Err(_) => assert_eq!(state, before, "a refused entry changed the state"),
        }
    }
    let replayed = replay(&accepted).ok();
    assert_eq!(
        replayed, state,
        "replay differs from the state built step by step"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    fn other() -> Reason {
        Reason::Other("x".into())
    }

    #[test]
    fn transition_table() {
        // (from, to, reason, legal)
        let cases: Vec<(TaskState, TaskState, Reason, bool)> = vec![
            (Pending, Running, Reason::Started, true),
            (Running, Done, Reason::Succeeded, true),
            (Running, Failed, Reason::Exit(1), true),
            (Failed, Pending, Reason::Resume, true),
            (
                Failed,
                Pending,
                Reason::Retry {
                    n: 1,
                    of: 2,
                    not_before_ms: 0,
                },
                true,
            ),
            (Running, Pending, Reason::Interrupted("crash".into()), true),
            (Running, Pending, other(), false),
            (Pending, Waiting, Reason::Gate, true),
            (Waiting, Pending, Reason::Approved, true),
            (Waiting, Failed, Reason::Rejected("no".into()), true),
            (Pending, Done, Reason::CacheHit, true),
            (Pending, Done, Reason::Succeeded, false),
            (Done, Pending, Reason::OutputsChanged("a".into()), true),
            (Done, Pending, Reason::Resume, false),
            (Done, Running, Reason::Started, false),
            (Done, Failed, other(), false),
            (Done, Waiting, other(), false),
            (Pending, Failed, other(), false),
            (Failed, Running, other(), false),
            (Failed, Done, other(), false),
            (Failed, Waiting, other(), false),
            (Waiting, Running, other(), false),
            (Waiting, Done, other(), false),
            (Running, Waiting, other(), false),
            (Running, Running, other(), false),
            (Pending, Pending, other(), false),
        ];
        for (from, to, reason, legal) in cases {
            assert_eq!(
                check_task(from, to, &reason).is_ok(),
                legal,
                "{from} -> {to} ({reason})"
            );
        }
        // Every pair not listed as legal above is illegal whatever the reason.
        let legal_pairs = [
            (Pending, Running),
            (Running, Done),
            (Running, Failed),
            (Failed, Pending),
            (Running, Pending),
            (Pending, Waiting),
            (Waiting, Pending),
            (Waiting, Failed),
            (Pending, Done),
            (Done, Pending),
        ];
        for from in TaskState::ALL {
            for to in TaskState::ALL {
                if !legal_pairs.contains(&(from, to)) {
                    for r in [
                        Reason::CacheHit,
                        Reason::Interrupted("x".into()),
                        Reason::OutputsChanged("x".into()),
                        other(),
                    ] {
                        assert!(check_task(from, to, &r).is_err(), "{from} -> {to}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod superseded_tests {
    use super::*;
    use crate::record::TaskPlan;

    fn rec(seq: u64, entry: Entry) -> Record {
        Record {
            seq,
            run: 1,
            at: DateTime::<Utc>::UNIX_EPOCH,
            entry,
        }
    }

    fn waiting_run() -> Option<RunSnapshot> {
        let mut s = None;
        let plan = |name: &str, manual| TaskPlan {
            name: name.into(),
            owner: None,
            idempotent: true,
            retries: 0,
            manual,
        };
        let entries = [
            Entry::RunStarted {
                workflow: "w".into(),
                file: "wf.toml".into(),
                user: "u".into(),
                host: "h".into(),
                pid: 1,
                args: vec![],
                tasks: vec![plan("make", false), plan("publish", true)],
            },
            Entry::Transition {
                task: "publish".into(),
                attempt: 0,
                from: TaskState::Pending,
                to: TaskState::Waiting,
                reason: Reason::Gate,
                exit_code: None,
            },
            Entry::RunEnded {
                state: RunState::Waiting,
                reason: "w".into(),
            },
        ];
        for (i, e) in entries.into_iter().enumerate() {
            assert_eq!(apply(&mut s, &rec(i as u64 + 1, e)), Ok(()));
        }
        s
    }

    #[test]
    fn a_waiting_run_is_superseded_by_a_newer_one_and_stays_so() {
        // Only a newer run supersedes, only at a task that waits.
        for bad in [
            Entry::Superseded {
                task: "publish".into(),
                by: 1,
            },
            Entry::Superseded {
                task: "make".into(),
                by: 2,
            },
            Entry::Superseded {
                task: "nope".into(),
                by: 2,
            },
        ] {
            let mut s = waiting_run();
            let before = s.clone();
            assert!(apply(&mut s, &rec(9, bad)).is_err());
            assert_eq!(s, before);
        }
        let mut s = waiting_run();
        let sup = Entry::Superseded {
            task: "publish".into(),
            by: 2,
        };
        assert_eq!(apply(&mut s, &rec(4, sup.clone())), Ok(()));
        let snap = s.clone().unwrap_or_else(|| unreachable!());
        assert_eq!(snap.run.state, RunState::Superseded);
        assert!(snap.run.reason.contains("run 2"));
        assert!(snap.run.ended_at.is_some());
        // Terminal: nothing continues it, nothing ends it again.
        for bad in [
            sup,
            Entry::RunResumed {
                user: "u".into(),
                pid: 2,
                args: vec![],
            },
            Entry::Approval {
                task: "publish".into(),
                user: "u".into(),
                note: None,
            },
            Entry::Transition {
                task: "publish".into(),
                attempt: 0,
                from: TaskState::Waiting,
                to: TaskState::Pending,
                reason: Reason::Approved,
                exit_code: None,
            },
            Entry::RunEnded {
                state: RunState::Failed,
                reason: "f".into(),
            },
            Entry::RunEnded {
                state: RunState::Superseded,
                reason: "s".into(),
            },
        ] {
            let before = s.clone();
            assert!(apply(&mut s, &rec(5, bad)).is_err());
            assert_eq!(s, before);
        }
    }

    #[test]
    fn a_running_run_is_not_superseded() {
        let mut s = waiting_run();
        let resumed = Entry::RunResumed {
            user: "u".into(),
            pid: 2,
            args: vec![],
        };
        assert_eq!(apply(&mut s, &rec(4, resumed)), Ok(()));
        let sup = Entry::Superseded {
            task: "publish".into(),
            by: 2,
        };
        assert!(apply(&mut s, &rec(5, sup)).is_err());
    }
}
