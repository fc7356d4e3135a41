//! The one user-facing error: each variant prints as one sentence saying what is wrong and what to
//! do, and maps to a documented exit code. Only `main.rs` prints it and exits.

use wf_state::StateError;

use crate::workflow::Diagnostic;

/// Exit codes (documented in README and docs/cli.md; stable).
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
            Error::Usage(_) | Error::Workflow(_) => code::USAGE,
            Error::Locked(_) => code::LOCKED,
            Error::State(e) if e.is_unreadable() => code::STATE,
            Error::State(StateError::Busy(_)) => code::LOCKED,
            Error::State(_) | Error::Io { .. } | Error::Internal(_) => code::INTERNAL,
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
