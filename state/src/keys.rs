//! How the main index (`journal/`) and the detail index (`journal/detail/`) name their keys, and
//! how numbers are read back from keys and values. Key layout of the main index (big-endian
//! numbers so keys sort by number; the detail index's keys are listed in `detail`):
//!
//! | key                               | value                         |
//! |-----------------------------------|-------------------------------|
//! | `m:schema`                        | state schema (u32 LE)         |
//! | `m:layout`                        | index layout (u32 LE); an older layout is rebuilt from the log |
//! | `m:seq`                           | last sequence number (u64 LE) |
//! | `m:last`                          | run and seq of the last record |
//! | `m:next_run`                      | next run id (u64 LE)          |
//! | `m:logpos`                        | how far into the record log this index has applied (u64 LE) |
//! | `m:tail`                          | the place of the last frame applied (checked at every open) |
//! | `r` run(8)                        | the run's `RunView`           |
//! | `t` run(8) chunk(4)               | 16 of the run's `TaskView`s, in plan order |
//! | `a` run(8)                        | empty: the run is running or waiting |
//! | `f` fingerprint[..4]              | a bucket of (fingerprint, run, attempt, task): the latest done with it |
//! | `k` task                          | run (u64 LE) and attempt (u32 LE) of the task's latest start |
//! | `p` task                          | the task's latest cache-key components journaled (run, attempt, parts) |
//! | `x` run(8) seq(8) channel         | empty: the alert at seq waits for delivery there |

use crate::record::RunId;

pub(crate) const K_SCHEMA: &[u8] = b"m:schema";

pub(crate) const K_LOGPOS: &[u8] = b"m:logpos";
/// The place (offset u64 LE, length u32 LE) of the last frame the index applied: checked at
/// every open, so a log that was replaced or overwritten is refused before anything is written.
pub(crate) const K_TAIL: &[u8] = b"m:tail";
pub(crate) const K_SEQ: &[u8] = b"m:seq";
pub(crate) const K_LAST: &[u8] = b"m:last";
pub(crate) const K_NEXT_RUN: &[u8] = b"m:next_run";

/// (Objects have no index: `wf gc` marks the objects of the checkpoints that stay and sweeps
/// the rest, so no reference count is rewritten on every commit.)
///
/// The layout of the index this wf writes. An index with an older layout is rebuilt from the
/// record log at open (the log's format did not change).
pub(crate) const LAYOUT: u32 = 4;
pub(crate) const K_LAYOUT: &[u8] = b"m:layout";

pub(crate) fn key_rec(run: RunId, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'e');
    k.extend_from_slice(&run.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn key_rec_prefix(prefix: u8, run: RunId, seq: u64) -> Vec<u8> {
    let mut k = key_rec(run, seq);
    k[0] = prefix;
    k
}

pub(crate) fn key_outbox(run: RunId, seq: u64, channel: &str) -> Vec<u8> {
    let mut k = key_rec_prefix(b'x', run, seq);
    k.extend_from_slice(channel.as_bytes());
    k
}

pub(crate) fn key_run(prefix: u8, run: RunId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(prefix);
    k.extend_from_slice(&run.to_be_bytes());
    k
}

pub(crate) fn key_chunk(prefix: u8, run: RunId, chunk: u32) -> Vec<u8> {
    let mut k = key_run(prefix, run);
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// A key about a task by name: `k` (its latest start) or `p` (its latest cache-key parts).
pub(crate) fn key_task(prefix: u8, task: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(task.len() + 1);
    k.push(prefix);
    k.extend_from_slice(task.as_bytes());
    k
}

/// The bucket key of a hash or fingerprint: its first four characters (hex: 65,536 buckets), so
/// the number of keys stays bounded however many objects there are.
pub(crate) fn key_bucket(prefix: u8, hash: &str) -> Vec<u8> {
    let b = hash.as_bytes();
    let mut k = Vec::with_capacity(5);
    k.push(prefix);
    k.extend_from_slice(&b[..b.len().min(4)]);
    k
}

pub(crate) fn u64_of(bytes: &[u8]) -> Option<u64> {
    let b: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

pub(crate) fn run_of_key(key: &[u8]) -> Option<RunId> {
    let b: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

pub(crate) fn seq_of_key(k: &[u8]) -> u64 {
    k.get(9..17)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}
