//! The state crate's error type: each variant says what was being done and where, and maps to one
//! of wf's documented exit codes.

use std::path::PathBuf;

use crate::machine::Illegal;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{what} failed for {}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Another process has the journal open.
    #[error("the journal in {} is open in another wf process", .0.display())]
    Busy(PathBuf),
    /// The journal is damaged; it was left as it is.
    #[error("{0}")]
    Corrupt(String),
    /// Written by a newer wf; left as it is.
    #[error("{0}")]
    Newer(String),
    /// Something that is not a directory where the state directory should be; left as it is.
    #[error("{} is not a directory; move it away or pass --state-dir", .0.display())]
    NotADirectory(PathBuf),
    /// The state directory is a symbolic link whose target does not exist (an unmounted disk?).
    #[error("{} is a symbolic link to {}, which does not exist; create that directory (or mount its disk) or move the link away", path.display(), target.display())]
    DanglingLink { path: PathBuf, target: PathBuf },
    /// A directory that is not a wf state directory.
    #[error("{} is not a wf state directory (no schema key); point --state-dir elsewhere", .0.display())]
    Foreign(PathBuf),
    /// The state belongs to another workflow (the message names both); left as it is.
    #[error("{0}")]
    OtherWorkflow(String),
    /// A stored object whose content no longer matches its hash (it was never put in place).
    #[error("the stored object {hash} ({}) no longer matches its hash: the object store is damaged; run `wf state verify` to check the whole store", path.display())]
    Rotten { hash: String, path: PathBuf },
    /// The engine asked for a transition the state machine forbids: a bug in wf.
    #[error("refused an illegal state change ({0}); this is a bug in wf")]
    Illegal(#[from] Illegal),
}

impl StateError {
    /// True when the state on disk cannot be used as it is (exit code 5).
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            StateError::Corrupt(_)
                | StateError::Newer(_)
                | StateError::Foreign(_)
                | StateError::NotADirectory(_)
                | StateError::DanglingLink { .. }
                | StateError::Rotten { .. }
                | StateError::OtherWorkflow(_)
        )
    }
}

/// A record or index value that did not decode, as a user-facing error naming the state directory.
pub(crate) fn decode_err(
    root: &std::path::Path,
    what: &str,
    e: crate::codec::CodecError,
) -> StateError {
    match e {
        crate::codec::CodecError::Newer => StateError::Newer(format!(
            "{what} in {} was written by a newer version of wf; upgrade wf to read it (nothing was changed)",
            root.display()
        )),
        crate::codec::CodecError::Corrupt(why) => StateError::Corrupt(format!(
            "{what} in {} is damaged ({why}); restore the state directory from a backup or move it \
             away (nothing was changed)",
            root.display()
        )),
    }
}
