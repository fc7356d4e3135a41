//! The one user-facing error: each variant prints as one sentence saying what is wrong and what to
//! do, and maps to a documented exit code. Only `main.rs` prints it and exits.

use wf_state::{RunId, StateError, TaskState};

use crate::workflow::Diagnostic;

/// Exit codes (documented in README, "Exit codes"; stable).
pub mod code {
    /// No task failed: the run is done, or stopped at a manual gate.
    pub const OK: i32 = 0;
    /// A task failed.
    pub const TASK_FAILED: i32 = 1;
    /// Bad usage or an invalid workflow.
    pub const USAGE: i32 = 2;
    /// The state directory is held by another live wf.
    pub const LOCKED: i32 = 3;
    /// wf itself could not do its work (an I/O error, or a bug).
    pub const INTERNAL: i32 = 4;
    /// The state database is unreadable, damaged, foreign or from a newer wf.
    pub const STATE: i32 = 5;
    /// Stopped by Ctrl-C or SIGTERM; the run can be resumed.
    pub const INTERRUPTED: i32 = 130;
}

/// What the user can do when a task of a run is no longer in the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneTask {
    /// `wf resume`: give the run up.
    Resume,
    /// `wf approve`: reject the gate.
    Approve,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A usage error no variant below describes (a malformed value, a bad combination).
    #[error("{0}")]
    Usage(String),
    #[error("there is no run {run}; `wf history` lists the runs")]
    NoRun { run: RunId },
    #[error("there is no run to resume; start one with `wf run`")]
    NoRunToResume,
    /// A task named on the command line that is not in the workflow.
    #[error("there is no task `{task}` in {file}; its tasks are: {}", tasks.join(", "))]
    UnknownTask {
        task: String,
        file: String,
        tasks: Vec<String>,
    },
    #[error("--force names `{task}`, which is not a task of {file}")]
    UnknownForcedTask { task: String, file: String },
    #[error("task `{task}` is not in {file}; `wf status` shows the tasks waiting for approval")]
    UnknownGateTask { task: String, file: String },
    #[error("run {run} has no task `{task}`")]
    NoTaskInRun { run: RunId, task: String },
    #[error("task `{task}` of run {run} is no longer in {file}; {}", match next {
        GoneTask::Resume => "restore it, or give the run up with `wf run --abandon`".to_string(),
        GoneTask::Approve => format!("restore it, or reject the run with `wf reject {run} {task} --note TEXT`"),
    })]
    TaskGone {
        run: RunId,
        task: String,
        file: String,
        next: GoneTask,
    },
    #[error("no run is waiting on task `{task}`; `wf status` shows what each task is doing")]
    NoneWaiting { task: String },
    #[error("task `{task}` of run {run} is {state}, not waiting for approval")]
    NotWaiting {
        run: RunId,
        task: String,
        state: TaskState,
    },
    /// A superseded run cannot continue; `by`: the newer run and the gate it reached.
    #[error("{}", match by {
        Some((by, task)) => format!("run {run} was superseded by run {by}, which reached `{task}` later; approve the newer one with `wf approve {by} {task}`"),
        None => format!("run {run} was superseded by a newer run; `wf status` shows which run is waiting"),
    })]
    Superseded {
        run: RunId,
        by: Option<(RunId, String)>,
    },
    #[error("run {run} was interrupted; continue it with `wf resume` or give it up with `wf run --abandon`")]
    Interrupted { run: RunId },
    #[error("run {run} was abandoned; start a new one with `wf run`")]
    Abandoned { run: RunId },
    #[error("task `{task}` is not idempotent and was interrupted during attempt {attempt}; check what it did, then continue with `wf resume {run} --force`")]
    NotIdempotent {
        run: RunId,
        task: String,
        attempt: u32,
    },
    #[error("--jobs must be at least 1")]
    NoJobs,
    #[error("`{given}` is not a run id; use `wf {verb} [RUN] TASK`")]
    NotARunId { verb: &'static str, given: String },
    #[error("use `wf {verb} [RUN] TASK`")]
    GateTarget { verb: &'static str },
    #[error("task `{task}` of run {run} has not run (it is {state})")]
    NotRun {
        run: RunId,
        task: String,
        state: TaskState,
    },
    #[error("task `{task}` of run {run} has attempts 1 to {attempts}, not {attempt}")]
    NoAttempt {
        run: RunId,
        task: String,
        attempts: u32,
        attempt: u32,
    },
    #[error("{}", match task {
        Some(t) => format!("task `{t}` has no checkpoints in run {run}"),
        None => format!("run {run} has no checkpoints"),
    })]
    NoCheckpoints { run: RunId, task: Option<String> },
    #[error("{path} is reached through the symbolic link {link}; wf restore never writes through a link — remove it first")]
    ThroughLink { path: String, link: String },
    #[error("`wf {verb}` has no JSON output; drop --json (JSON Lines come from `wf status`, `wf history`, `wf gc`, `wf check` and `wf state export`)")]
    NoJson { verb: &'static str },
    #[error("{}", format_diagnostics(.0))]
    Workflow(Vec<Diagnostic>),
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{what} failed for {path}: {source}")]
    Io {
        path: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
    /// The disk holding the state directory is full (ENOSPC, or a quota): wf failed, not a task.
    #[error(
        "the disk holding the state directory {state_dir} is full ({doing}); free {need} there, then {next}"
    )]
    DiskFull {
        state_dir: String,
        /// What wf was doing, e.g. `storing checkpoint out/a of task a`.
        doing: String,
        /// How much space to free, for people: `at least 1.0 MiB`, `a few MiB`.
        need: String,
        /// The command to type next.
        next: String,
    },
}

/// Whether an I/O error says the disk (or the user's quota) is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28 | 122))
}

/// Whether a message (from a library, a panic, an error turned into text) reports a full disk.
pub fn mentions_disk_full(s: &str) -> bool {
    [
        "os error 28)",
        "os error 122)",
        "code: 28,",
        "code: 122,",
        "StorageFull",
        "QuotaExceeded",
        "No space left on device",
        "Disk quota exceeded",
    ]
    .iter()
    .any(|m| s.contains(m))
}

fn format_diagnostics(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// Whether this is about the command or the workflow (exit 2), not about wf or its state.
    pub fn is_usage(&self) -> bool {
        self.code() == code::USAGE
    }

    pub fn code(&self) -> i32 {
        match self {
            e if e.is_broken_pipe() => code::OK,
            Error::Usage(_)
            | Error::Workflow(_)
            | Error::NoRun { .. }
            | Error::NoRunToResume
            | Error::UnknownTask { .. }
            | Error::UnknownForcedTask { .. }
            | Error::UnknownGateTask { .. }
            | Error::NoTaskInRun { .. }
            | Error::TaskGone { .. }
            | Error::NoneWaiting { .. }
            | Error::NotWaiting { .. }
            | Error::Superseded { .. }
            | Error::Interrupted { .. }
            | Error::Abandoned { .. }
            | Error::NotIdempotent { .. }
            | Error::NoJobs
            | Error::NotARunId { .. }
            | Error::GateTarget { .. }
            | Error::NotRun { .. }
            | Error::NoAttempt { .. }
            | Error::NoCheckpoints { .. }
            | Error::ThroughLink { .. }
            | Error::NoJson { .. } => code::USAGE,
            Error::Locked(_) => code::LOCKED,
            Error::State(e) if e.is_unreadable() => code::STATE,
            Error::State(StateError::Busy(_)) => code::LOCKED,
            Error::State(_) | Error::Io { .. } | Error::Internal(_) | Error::DiskFull { .. } => {
                code::INTERNAL
            }
        }
    }

    /// Whether this is stdout's reader going away (`wf history | head -1`): not a failure; wf
    /// exits 0 and says nothing.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Whether this error, anywhere in it, is a full disk.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } | Error::State(StateError::Io { source, .. }) => {
                is_disk_full(source) || mentions_disk_full(&source.to_string())
            }
            Error::DiskFull { .. } => true,
            // Usage, workflow and lock errors are about the command, whatever they quote.
            e if e.is_usage() => false,
            Error::Locked(_) => false,
            other => mentions_disk_full(&other.to_string()),
        }
    }

    /// A full disk anywhere becomes the one sentence of `DiskFull` (exit 4), naming the state
    /// directory; any other error is left as it is.
    pub fn on_full_disk(self, state_dir: &std::path::Path) -> Error {
        // stdout (`wf history > file`) is not the state directory's disk.
        let stdout = matches!(&self, Error::Io { path, .. } if path == "stdout");
        if stdout || matches!(self, Error::DiskFull { .. }) || !self.is_disk_full() {
            return self;
        }
        let doing = match &self {
            Error::Io { what, path, .. } => format!("{what} {path}"),
            Error::State(StateError::Io { what, path, .. }) => {
                format!("{what} {}", path.display())
            }
            _ => "writing its journal".to_string(),
        };
        Error::disk_full(state_dir, doing, None)
    }

    /// A full disk while doing `doing`; `need` bytes when known. The next step is to run the
    /// command again (a run cut short continues with `wf resume`).
    pub fn disk_full(state_dir: &std::path::Path, doing: String, need: Option<u64>) -> Error {
        Error::DiskFull {
            state_dir: state_dir.display().to_string(),
            doing: doing.replace("failed for ", ""),
            need: match need {
                Some(n) => format!("at least {}", crate::render::fmt::bytes(n)),
                None => "a few MiB".to_string(),
            },
            next: "run the command again (a run cut short continues with `wf resume`)".to_string(),
        }
    }

    pub fn io(
        what: &'static str,
        path: impl AsRef<std::path::Path>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.as_ref().display().to_string();
        move |source| Error::Io { path, what, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O error as a reason a user can read: its description without the OS error number.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_usage_errors_keep_their_sentences_and_exit_2() {
        let cases: Vec<(Error, &str)> = vec![
            (
                Error::NoRun { run: 7 },
                "there is no run 7; `wf history` lists the runs",
            ),
            (
                Error::UnknownTask {
                    task: "x".into(),
                    file: "/w/wf.toml".into(),
                    tasks: vec!["a".into(), "b".into()],
                },
                "there is no task `x` in /w/wf.toml; its tasks are: a, b",
            ),
            (
                Error::Superseded {
                    run: 3,
                    by: Some((5, "gate".into())),
                },
                "run 3 was superseded by run 5, which reached `gate` later; approve the newer one with `wf approve 5 gate`",
            ),
            (
                Error::Superseded { run: 3, by: None },
                "run 3 was superseded by a newer run; `wf status` shows which run is waiting",
            ),
            (
                Error::TaskGone {
                    run: 2,
                    task: "t".into(),
                    file: "wf.toml".into(),
                    next: GoneTask::Approve,
                },
                "task `t` of run 2 is no longer in wf.toml; restore it, or reject the run with `wf reject 2 t --note TEXT`",
            ),
            (
                Error::NoCheckpoints { run: 4, task: None },
                "run 4 has no checkpoints",
            ),
            (
                Error::NotWaiting {
                    run: 1,
                    task: "t".into(),
                    state: TaskState::Done,
                },
                "task `t` of run 1 is done, not waiting for approval",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
            assert_eq!(e.code(), code::USAGE, "{text}");
            assert!(!e.is_disk_full());
        }
    }

    #[test]
    fn only_wf_and_state_errors_are_not_usage() {
        assert!(!Error::Internal("x".into()).is_usage());
        assert!(!Error::Locked("x".into()).is_usage());
        assert!(Error::NoJobs.is_usage());
        assert_eq!(Error::NoJobs.to_string(), "--jobs must be at least 1");
    }
}
