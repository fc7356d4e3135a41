//! One writer per state directory. A writer takes an exclusive `flock` on `.wf/lock` without
//! waiting and writes who it is into the file; a second writer is refused at once with that
//! holder's pid, command and start. Readers never take the lock (so they cannot make a writer
//! fail): they read the holder file and check whether that process is still alive.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::process;

/// Who holds the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub pid_start: Option<u64>,
    pub command: String,
    pub since: DateTime<Utc>,
}

impl Holder {
    pub fn alive(&self) -> bool {
        process::alive(self.pid, self.pid_start)
    }
}

/// Held while this process writes the state directory; released on drop (or process death).
pub struct StateLock {
    file: File,
}

pub enum LockError {
    /// Another live process holds it (its description, when it could be read).
    Held(Option<Holder>),
    Io(StateError),
}

fn io_err(root: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StateError {
    let path = root.join("lock");
    move |source| StateError::Io { path, what, source }
}

impl StateLock {
    /// Take the writer lock of `root` (created if needed) without waiting.
    pub fn acquire(root: &Path, command: &str) -> Result<StateLock, LockError> {
        crate::durable::create_private_dir(root)
            .map_err(io_err(root, "creating the state directory"))
            .map_err(LockError::Io)?;
        // Never through a link, only a regular file, private; not truncated until it is held.
        let mut file = crate::safe::open(root, Path::new("lock"), crate::safe::How::Update)
            .map_err(crate::safe::state_err(
                &root.join("lock"),
                "opening the lock file",
            ))
            .map_err(LockError::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(LockError::Held(holder(root))),
            Err(TryLockError::Error(e)) => {
                return Err(LockError::Io(io_err(root, "locking the state directory")(
                    e,
                )))
            }
        }
        let me = std::process::id();
        let info = Holder {
            pid: me,
            pid_start: process::start_time(me),
            command: command.to_string(),
            since: Utc::now(),
        };
        let text = serde_json::to_vec(&info).unwrap_or_default();
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(&text))
            .map_err(io_err(root, "writing the lock file"))
            .map_err(LockError::Io)?;
        Ok(StateLock { file })
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// The process holding the writer lock of `root`, if it is alive.
pub fn holder(root: &Path) -> Option<Holder> {
    let mut text = String::new();
    crate::safe::open(root, Path::new("lock"), crate::safe::How::Read)
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    let h: Holder = serde_json::from_str(&text).ok()?;
    h.alive().then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_is_refused_with_the_holder() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join(".wf");
        let Ok(lock) = StateLock::acquire(&root, "wf run") else {
            return Err("first lock failed".into());
        };
        match StateLock::acquire(&root, "wf run") {
            Err(LockError::Held(Some(h))) => {
                assert_eq!(h.pid, std::process::id());
                assert_eq!(h.command, "wf run");
            }
            _ => return Err("second lock was not refused with its holder".into()),
        }
        assert!(holder(&root).is_some());
        drop(lock);
        assert!(holder(&root).is_none());
        assert!(StateLock::acquire(&root, "wf run").is_ok());
        Ok(())
    }
}
