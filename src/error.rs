//! The one user-facing error: each variant prints as one sentence saying what is wrong and what to
//! do, and maps to a documented exit code. Only `main.rs` prints it and exits.

use wf_state::StateError;

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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
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

/// Whether a message (from sled, a panic, an error turned into text) reports a full disk.
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
    pub fn code(&self) -> i32 {
        match self {
            e if e.is_broken_pipe() => code::OK,
            Error::Usage(_) | Error::Workflow(_) => code::USAGE,
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
            Error::Usage(_) | Error::Workflow(_) | Error::Locked(_) => false,
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
