//! The live log: while a `wf` holds the state directory (its `lock`, and the indexes' locks), it
//! mirrors the records of the run it drives to `live.jsonl`, one JSON record per line, appended as
//! they are committed. Read-only commands replay it through the state machine instead of reading
//! the indexes and the record log the writer is changing.
//! It is derived data: it is rebuilt at each attach and never fsynced.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::StateError;
use crate::record::Record;

pub struct LiveLog {
    file: File,
}

pub fn path(root: &Path) -> PathBuf {
    root.join("live.jsonl")
}

fn lines(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        if serde_json::to_writer(&mut out, r).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

impl LiveLog {
    /// Replace the live log with `records` (written to a temporary name, then renamed).
    pub fn create(root: &Path, records: &[Record]) -> Result<LiveLog, StateError> {
        let target = path(root);
        let tmp = root.join("live.jsonl.tmp");
        let io = |what: &'static str, p: &Path| {
            let path = p.to_path_buf();
            move |source| StateError::Io { path, what, source }
        };
        let mut file =
            crate::safe::open(root, Path::new("live.jsonl.tmp"), crate::safe::How::Replace)
                .map_err(crate::safe::state_err(&tmp, "creating the live log"))?;
        file.write_all(&lines(records))
            .map_err(io("writing the live log", &tmp))?;
        std::fs::rename(&tmp, &target).map_err(io("renaming the live log", &target))?;
        let file = crate::safe::open(root, Path::new("live.jsonl"), crate::safe::How::Append)
            .map_err(crate::safe::state_err(&target, "opening the live log"))?;
        Ok(LiveLog { file })
    }

    pub fn append(&mut self, records: &[Record]) -> std::io::Result<()> {
        self.file.write_all(&lines(records))
    }
}

/// Read the live log; a torn last line (the writer was mid-append) is ignored. `None` when there
/// is no live log.
pub fn read(root: &Path) -> Result<Option<Vec<Record>>, StateError> {
    let p = path(root);
    let file = match crate::safe::open(root, Path::new("live.jsonl"), crate::safe::How::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: p,
                what: "opening the live log",
                source,
            })
        }
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Record>(&line) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    Ok(Some(out))
}
