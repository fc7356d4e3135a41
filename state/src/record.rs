//! The journal's records: what happened to a run, one entry at a time. These types are what is
//! persisted (through `codec`), so a variant's fields never change once released: a changed record
//! is a new variant, and new variants are only ever appended at the end of an enum.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Runs are numbered 1, 2, 3… within a state directory.
pub type RunId = u64;

/// One journaled fact, with its place in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Journal-wide sequence number, strictly increasing across all runs.
    pub seq: u64,
    pub run: RunId,
    pub at: DateTime<Utc>,
    pub entry: Entry,
}

/// A task as planned at the start of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPlan {
    pub name: String,
    pub owner: Option<String>,
    pub idempotent: bool,
    pub retries: u32,
    pub manual: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// A new run, with the tasks it will run in a topological order.
    RunStarted {
        workflow: String,
        file: String,
        user: String,
        host: String,
        pid: u32,
        args: Vec<String>,
        tasks: Vec<TaskPlan>,
    },
    /// A `wf` took the run over again (resume, approve).
    RunResumed {
        user: String,
        pid: u32,
        args: Vec<String>,
    },
    RunEnded {
        state: RunState,
        reason: String,
    },
    Transition {
        task: String,
        attempt: u32,
        from: TaskState,
        to: TaskState,
        reason: Reason,
        exit_code: Option<i32>,
    },
    /// The process of a running attempt exists: its pid (also its process group) and start time.
    Spawned {
        task: String,
        attempt: u32,
        pid: u32,
        pid_start: Option<u64>,
    },
    Checkpoint {
        task: String,
        attempt: u32,
        path: String,
        hash: String,
        bytes: u64,
        retention_secs: u64,
        expires_at: DateTime<Utc>,
    },
    Metric {
        task: String,
        attempt: u32,
        key: String,
        value: String,
    },
    Approval {
        task: String,
        user: String,
        note: Option<String>,
    },
    /// The cache key of a done attempt: command, declared env, input hashes and upstream
    /// checkpoint hashes. Journaled with its `done`.
    Fingerprint {
        task: String,
        attempt: u32,
        fingerprint: String,
    },
    /// `wf gc` pruned the checkpoint journaled at `checkpoint_seq` under `policy` (e.g. `7d`).
    Prune {
        task: String,
        attempt: u32,
        checkpoint_seq: u64,
        path: String,
        hash: String,
        bytes: u64,
        policy: String,
    },
    /// A manual task was rejected (by `wf reject`, or by its `approval_timeout`).
    Rejection {
        task: String,
        user: String,
        note: String,
    },
    /// A failure to tell people about, journaled in the same batch as the failure; it waits in
    /// the outbox until each of its `channels` took it.
    Alert {
        task: Option<String>,
        attempt: u32,
        owner: Option<String>,
        error: String,
        exit_code: Option<i32>,
        log_tail: Vec<String>,
        channels: Vec<String>,
    },
    /// One delivery attempt of the alert journaled at `alert_seq` through `channel`;
    /// `outcome` is `delivered`, `failed` (it stays in the outbox) or `dropped` (the channel is
    /// no longer configured).
    Delivery {
        alert_seq: u64,
        channel: String,
        outcome: String,
        detail: String,
    },
    /// Something about an attempt worth a look (e.g. a promised metric it did not report).
    Warning {
        task: String,
        attempt: u32,
        message: String,
    },
    /// What the run was started with (its parameters and options), journaled with its start so
    /// that `wf resume` continues it the same way.
    RunOptions {
        /// The resolved parameters, by name.
        params: Vec<(String, String)>,
        /// `--force`: None uses the cache; an empty list ignores it for every task, else for these.
        force: Option<Vec<String>>,
        /// `--only` tasks, as given.
        only: Vec<String>,
        /// `--from` task, as given.
        from: Option<String>,
        /// `--jobs`, as given.
        jobs: Option<u32>,
    },
    /// The run stopped waiting at manual task `task` because the newer run `by` reached the same
    /// task: it ends `superseded` (terminal; no alert).
    Superseded {
        task: String,
        by: RunId,
    },
    /// Before continuing the run, wf put a file back that `task` produced in this run (checkpoint
    /// `hash`), because the workspace held another version (`found`, produced by run `replaced`
    /// when known).
    Restored {
        task: String,
        attempt: u32,
        path: String,
        hash: String,
        found: Option<String>,
        replaced: Option<RunId>,
    },
    /// Whether a task was a cache hit, and why (or why not) — journaled when it is decided: with
    /// its cache hit, or with the `running` transition of the attempt it starts. `parts` is what
    /// its cache key was made of (component → short hash, e.g. `input:data/raw.json` →
    /// `3f2a…`), so a later miss can say which component changed; empty when they are the same
    /// as the task's previous ones (or it has no key).
    CacheDecision {
        task: String,
        attempt: u32,
        hit: bool,
        why: String,
        parts: Vec<(String, String)>,
    },
    /// The content hashes (path, BLAKE3) of a done attempt's outputs that are not checkpointed,
    /// journaled with its `done` (or its cache hit): they are not in the object store, so a
    /// cache hit reuses them only while they are still as they were.
    Outputs {
        task: String,
        attempt: u32,
        files: Vec<(String, String)>,
    },
    /// What one `wf gc` sweep pruned in this run, in one record (a sweep journals a record per
    /// run instead of one per checkpoint): checkpoints, each as a `Prune` would name it, and
    /// attempt logs. Journaled before anything is deleted.
    Pruned {
        checkpoints: Vec<PrunedCheckpoint>,
        logs: Vec<PrunedLog>,
    },
    /// What an ended attempt used and printed, journaled with its end: CPU time (microseconds)
    /// and peak resident memory (KiB; None when not known) of its process tree, and where the
    /// figures come from (`rusage`, `cgroup`); `printed` bytes of stdout and stderr, of which the
    /// log kept the first `head` and the last `printed - head - dropped` (`dropped` is 0 when
    /// the whole output is in the log).
    Usage {
        task: String,
        attempt: u32,
        cpu_user_us: u64,
        cpu_sys_us: u64,
        max_rss_kib: Option<u64>,
        source: String,
        printed: u64,
        head: u64,
        dropped: u64,
    },
}

/// A checkpoint pruned by a sweep (the fields of `Entry::Prune`). The task, path and policy are
/// shared text (encoded exactly as strings): a sweep names the same few of them hundreds of
/// thousands of times, and need not allocate and free each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedCheckpoint {
    pub task: Arc<str>,
    pub attempt: u32,
    /// The sequence number of its `Checkpoint` record.
    pub checkpoint_seq: u64,
    pub path: Arc<str>,
    pub hash: String,
    pub bytes: u64,
    /// The retention policy in force (e.g. `7d`).
    pub policy: Arc<str>,
}

/// An attempt's log (`logs/RUN/TASK.N.log`, and its `.metrics`) pruned by a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedLog {
    pub task: String,
    pub attempt: u32,
    /// Bytes of the files removed.
    pub bytes: u64,
    /// The retention policy in force (e.g. `7d`).
    pub policy: String,
}

impl Entry {
    /// The kind named in `wf history --json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::RunStarted { .. } | Entry::RunResumed { .. } | Entry::RunEnded { .. } => "run",
            Entry::Transition { .. } => "transition",
            Entry::Spawned { .. } => "spawn",
            Entry::Checkpoint { .. } => "checkpoint",
            Entry::Metric { .. } => "metric",
            Entry::Approval { .. } | Entry::Rejection { .. } => "approval",
            Entry::Fingerprint { .. } => "fingerprint",
            Entry::Alert { .. } | Entry::Delivery { .. } => "alert",
            Entry::Warning { .. } => "warning",
            Entry::Prune { .. } | Entry::Pruned { .. } => "prune",
            Entry::RunOptions { .. } | Entry::Superseded { .. } => "run",
            Entry::Restored { .. } => "restore",
            Entry::CacheDecision { .. } => "cache",
            Entry::Outputs { .. } => "outputs",
            Entry::Usage { .. } => "usage",
        }
    }

    /// The task the entry is about (a `Pruned` record: the task all its items are of, if one).
    pub fn task(&self) -> Option<&str> {
        match self {
            Entry::Pruned { checkpoints, logs } => {
                let mut tasks = checkpoints
                    .iter()
                    .map(|c| &*c.task)
                    .chain(logs.iter().map(|l| l.task.as_str()));
                let first = tasks.next()?;
                tasks.all(|t| t == first).then_some(first)
            }
            Entry::Transition { task, .. }
            | Entry::Spawned { task, .. }
            | Entry::Checkpoint { task, .. }
            | Entry::Metric { task, .. }
            | Entry::Approval { task, .. }
            | Entry::Fingerprint { task, .. }
            | Entry::Prune { task, .. }
            | Entry::Rejection { task, .. }
            | Entry::Superseded { task, .. }
            | Entry::Restored { task, .. }
            | Entry::Warning { task, .. }
            | Entry::CacheDecision { task, .. }
            | Entry::Outputs { task, .. }
            | Entry::Usage { task, .. } => Some(task),
            Entry::Alert { task, .. } => task.as_deref(),
            _ => None,
        }
    }

    /// The attempt the entry is about (a `Pruned` record: the one all its items are of, if one).
    pub fn attempt(&self) -> Option<u32> {
        match self {
            Entry::Pruned { checkpoints, logs } => {
                self.task()?;
                let mut attempts = checkpoints
                    .iter()
                    .map(|c| c.attempt)
                    .chain(logs.iter().map(|l| l.attempt));
                let first = attempts.next()?;
                attempts.all(|a| a == first).then_some(first)
            }
            Entry::Transition { attempt, .. }
            | Entry::Spawned { attempt, .. }
            | Entry::Checkpoint { attempt, .. }
            | Entry::Metric { attempt, .. }
            | Entry::Fingerprint { attempt, .. }
            | Entry::Prune { attempt, .. }
            | Entry::Restored { attempt, .. }
            | Entry::Warning { attempt, .. }
            | Entry::CacheDecision { attempt, .. }
            | Entry::Outputs { attempt, .. }
            | Entry::Usage { attempt, .. } => Some(*attempt),
            Entry::Alert {
                task: Some(_),
                attempt,
                ..
            } => Some(*attempt),
            _ => None,
        }
    }
}

/// The state of one task within one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    Pending,
    Running,
    Done,
    Failed,
    Waiting,
}

impl TaskState {
    pub const ALL: [TaskState; 5] = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Done,
        TaskState::Failed,
        TaskState::Waiting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Waiting => "waiting",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The journaled state of a run. `interrupted` is not journaled: it is what a `Running` run is
/// called when no live `wf` owns it (see `recover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunState {
    Running,
    Waiting,
    Done,
    Failed,
    /// It waited at a manual task and a newer run reached the same task (terminal, no alert).
    /// Appended last: the index and records encode this enum by variant number.
    Superseded,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Waiting => "waiting",
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Superseded => "superseded",
        }
    }
}

impl RunState {
    /// Whether nothing more can happen to a run in this state (`failed` can still be resumed).
    pub fn is_final(self) -> bool {
        matches!(self, RunState::Done | RunState::Superseded)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// Planned at the start of the run.
    Scheduled,
    /// Its needs are done and a slot was free.
    Started,
    /// The process exited 0 and every declared output exists.
    Succeeded,
    /// The same inputs produced these outputs before.
    CacheHit,
    /// The process exited with this code.
    Exit(i32),
    /// The process was killed by this signal.
    Signal(i32),
    /// The attempt ran past its timeout and was killed.
    Timeout(u64),
    /// Exit 0, but a declared output is missing.
    MissingOutput(String),
    /// The command could not be started or its outputs could not be checkpointed.
    Error(String),
    /// The attempt was cut short (crash, Ctrl-C) before it ended.
    Interrupted(String),
    /// A failed attempt is retried.
    Retry {
        n: u32,
        of: u32,
        not_before_ms: i64,
    },
    /// A resumed run gives a failed task a new attempt.
    Resume,
    /// A manual task waits for `wf approve`.
    Gate,
    Approved,
    Rejected(String),
    /// A resumed run found a done task's outputs changed or missing.
    OutputsChanged(String),
    Other(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Scheduled => f.write_str("scheduled"),
            Reason::Started => f.write_str("started"),
            Reason::Succeeded => f.write_str("succeeded"),
            Reason::CacheHit => f.write_str("cache hit"),
            Reason::Exit(c) => write!(f, "exit code {c}"),
            Reason::Signal(s) => write!(f, "killed by signal {s}"),
            Reason::Timeout(secs) => write!(f, "timed out after {secs}s"),
            Reason::MissingOutput(p) => write!(f, "declared output {p} is missing"),
            Reason::Error(e) => f.write_str(e),
            Reason::Interrupted(why) => write!(f, "interrupted ({why})"),
            Reason::Retry { n, of, .. } => write!(f, "retry {n} of {of}"),
            Reason::Resume => f.write_str("resumed"),
            Reason::Gate => f.write_str("manual gate"),
            Reason::Approved => f.write_str("approved"),
            Reason::Rejected(note) => write!(f, "rejected: {note}"),
            Reason::OutputsChanged(why) => write!(f, "outputs changed: {why}"),
            Reason::Other(s) => f.write_str(s),
        }
    }
}
