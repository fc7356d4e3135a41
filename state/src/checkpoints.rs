//! The checkpoint index: one row per journaled checkpoint (in chunks per run, `c` run seq), with
//! whether and how it was pruned, so `wf gc` streams over checkpoints without reading the whole
//! journal.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::record::RunId;

/// A checkpoint as `wf gc`, `wf restore` and the cache see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRow {
    pub task: String,
    pub attempt: u32,
    pub path: String,
    pub hash: String,
    pub bytes: u64,
    #[serde(with = "crate::ts")]
    pub created_at: DateTime<Utc>,
    /// The retention recorded when it was made.
    pub retention_secs: u64,
    /// When `wf gc` pruned it, and under which policy (e.g. `7d`).
    #[serde(with = "crate::ts::pruned")]
    pub pruned: Option<(DateTime<Utc>, String)>,
}

/// A checkpoint row read in place: its text borrowed from the index's bytes, so a sweep over a
/// million rows allocates nothing per row. Laid out exactly as [`CheckpointRow`] is encoded (the
/// codec's tests check that both readings of a chunk agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRef<'a> {
    pub task: &'a str,
    pub attempt: u32,
    pub path: &'a str,
    pub hash: &'a str,
    pub bytes: u64,
    #[serde(with = "crate::ts")]
    pub created_at: DateTime<Utc>,
    pub retention_secs: u64,
    /// When `wf gc` pruned it, and under which policy.
    #[serde(
        borrow,
        serialize_with = "crate::ts::pruned::serialize_ref",
        deserialize_with = "crate::ts::pruned::deserialize_ref"
    )]
    pub pruned: Option<(DateTime<Utc>, &'a str)>,
}

impl RowRef<'_> {
    /// The row as an owned value.
    pub fn to_row(&self) -> CheckpointRow {
        CheckpointRow {
            task: self.task.to_string(),
            attempt: self.attempt,
            path: self.path.to_string(),
            hash: self.hash.to_string(),
            bytes: self.bytes,
            created_at: self.created_at,
            retention_secs: self.retention_secs,
            pruned: self.pruned.map(|(t, why)| (t, why.to_string())),
        }
    }
}

/// A row with its place: the run and the sequence number of its `Checkpoint` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub run: RunId,
    pub seq: u64,
    pub row: CheckpointRow,
}

/// Where a cached result can be found: the run and attempt of a done task with a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub run: RunId,
    pub task: String,
    pub attempt: u32,
}
