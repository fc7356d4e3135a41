//! How values are laid out on disk: a frame (format byte, CRC-32 of the payload) around bincode 1.3
//! encoding of an enum of versions that only grows. A damaged value fails its checksum; a value
//! whose checksum holds but whose version this `wf` does not know was written by a newer `wf`.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::checkpoints::{CheckpointRow, RowRef};
use crate::machine::{RunView, TaskView};
use crate::record::Record;

/// The frame format. A frame with a higher number comes from a newer `wf`.
const FRAME: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("a record is damaged ({0})")]
    Corrupt(&'static str),
    #[error("a record was written by a newer version of wf")]
    Newer,
}

/// Journal records by version. Append new versions; never change or remove an old one.
#[derive(Serialize, Deserialize)]
enum StoredRecord {
    V1(Record),
}

/// The run summary index by version (derived data, rebuilt from records if ever needed).
/// A run's summary, and (V2) its tasks when the run is not active.
#[derive(Serialize, Deserialize)]
enum StoredRun {
    V1(RunView),
    V2(RunView, Option<Vec<TaskView>>),
}

/// The same variants read only as far as the summary (bincode's `deserialize` allows trailing
/// bytes, and both variants start with the view), so listing runs decodes no tasks.
#[derive(Deserialize)]
enum StoredRunHead {
    V1(RunView),
    V2(RunView),
}

/// The task state index by version (derived data).
/// A chunk of one run's task views, in plan order.
#[derive(Serialize, Deserialize)]
enum StoredTasks {
    V1(Vec<TaskView>),
}

/// A chunk of one run's checkpoint rows: (seq of the `Checkpoint` record, row), by seq.
#[derive(Serialize, Deserialize)]
enum StoredCheckpoints {
    V1(Vec<(u64, CheckpointRow)>),
}

/// The same chunk read in place: its rows' text borrowed from the bytes (`wf gc`).
#[derive(Deserialize)]
enum StoredCheckpointsRef<'a> {
    #[serde(borrow)]
    V1(Vec<(u64, RowRef<'a>)>),
}

/// Prunes of rows of one checkpoint chunk, kept apart from the chunk (which a prune then does not
/// rewrite): (seq of the row's `Checkpoint` record, when it was pruned as (seconds, nanoseconds),
/// policy), in journal order.
#[derive(Deserialize)]
enum StoredPrunesRef<'a> {
    #[serde(borrow)]
    V1(Vec<PruneRef<'a>>),
}

/// One prune of a prune list, read in place: (row seq, (seconds, nanoseconds), policy).
pub type PruneRef<'a> = (u64, (i64, u32), &'a str);

/// A bucket of the result cache: (fingerprint, run, attempt, task) of the latest done attempt.
#[derive(Serialize, Deserialize)]
enum StoredCache {
    V1(Vec<(String, u64, u32, String)>),
}

/// The components of a task's latest cache key: (run, attempt of the decision that journaled
/// them, component name → short hash).
#[derive(Serialize, Deserialize)]
enum StoredParts {
    V1(u64, u32, Vec<(String, String)>),
}

/// Frame a whole `Stored…` value (the tests compare `frame_as` against it).
#[cfg(test)]
fn frame<T: Serialize>(value: &T) -> Vec<u8> {
    seal(bincode::serialize(value).unwrap_or_default())
}

/// Frame a value as variant `variant` of its `Stored…` enum without copying it into one: bincode
/// writes an enum variant as its index (u32 LE) followed by its fields in order, so these bytes are
/// exactly those of `frame(&Stored…::V(value…))` (a test checks it).
///
/// The frame is written in place, in one buffer of the right size: a sweep encodes hundreds of
/// thousands of rows and records, and growing a buffer, then copying the payload into a second
/// one, showed in its profile.
fn frame_as<T: Serialize + ?Sized>(variant: u32, fields: &T) -> Vec<u8> {
    let size = bincode::serialized_size(fields).unwrap_or(0);
    let mut out = Vec::with_capacity(9 + usize::try_from(size).unwrap_or(0));
    out.push(FRAME);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&variant.to_le_bytes());
    if bincode::serialize_into(&mut out, fields).is_err() {
        out.truncate(9);
    }
    let crc = crc32fast::hash(&out[5..]).to_le_bytes();
    out[1..5].copy_from_slice(&crc);
    out
}

#[cfg(test)]
fn seal(payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(FRAME);
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

fn unframe<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    unframe_ref(bytes)
}

/// [`unframe`] for a value that borrows from `bytes`.
fn unframe_ref<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let (&format, rest) = bytes.split_first().ok_or(CodecError::Corrupt("empty"))?;
    if rest.len() < 4 {
        return Err(CodecError::Corrupt("truncated"));
    }
    let (crc, payload) = rest.split_at(4);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(payload) != crc {
        return Err(CodecError::Corrupt("checksum mismatch"));
    }
    if format > FRAME {
        return Err(CodecError::Newer);
    }
    if format == 0 {
        return Err(CodecError::Corrupt("unknown frame"));
    }
    // The checksum holds, so a payload that does not decode uses a version we do not know.
    bincode::deserialize(payload).map_err(|_| CodecError::Newer)
}

pub fn encode_record(r: &Record) -> Vec<u8> {
    frame_as(0, r)
}

pub fn decode_record(bytes: &[u8]) -> Result<Record, CodecError> {
    match unframe(bytes)? {
        StoredRecord::V1(r) => Ok(r),
    }
}

pub fn encode_run(r: &RunView, tasks: Option<&[TaskView]>) -> Vec<u8> {
    frame_as(1, &(r, tasks))
}

pub fn decode_run(bytes: &[u8]) -> Result<(RunView, Option<Vec<TaskView>>), CodecError> {
    match unframe(bytes)? {
        StoredRun::V1(r) => Ok((r, None)),
        StoredRun::V2(r, tasks) => Ok((r, tasks)),
    }
}

pub fn decode_run_view(bytes: &[u8]) -> Result<RunView, CodecError> {
    match unframe(bytes)? {
        StoredRunHead::V1(r) | StoredRunHead::V2(r) => Ok(r),
    }
}

pub fn encode_tasks(tasks: &[TaskView]) -> Vec<u8> {
    frame_as(0, tasks)
}

pub fn decode_tasks(bytes: &[u8]) -> Result<Vec<TaskView>, CodecError> {
    match unframe(bytes)? {
        StoredTasks::V1(t) => Ok(t),
    }
}

pub fn encode_checkpoints(rows: &[(u64, CheckpointRow)]) -> Vec<u8> {
    frame_as(0, rows)
}

pub fn decode_checkpoints(bytes: &[u8]) -> Result<Vec<(u64, CheckpointRow)>, CodecError> {
    match unframe(bytes)? {
        StoredCheckpoints::V1(r) => Ok(r),
    }
}

/// A chunk of checkpoint rows read in place (see [`RowRef`]): the same checks and errors as
/// [`decode_checkpoints`], without an allocation per row.
pub fn decode_checkpoints_ref(bytes: &[u8]) -> Result<Vec<(u64, RowRef<'_>)>, CodecError> {
    match unframe_ref(bytes)? {
        StoredCheckpointsRef::V1(r) => Ok(r),
    }
}

/// A chunk of checkpoint rows read in place, encoded again: exactly the bytes
/// [`encode_checkpoints`] writes for the same rows.
pub fn encode_checkpoints_ref(rows: &[(u64, RowRef<'_>)]) -> Vec<u8> {
    frame_as(0, rows)
}

/// A prune list (see `StoredPrunesRef`).
pub fn encode_prunes(prunes: &[PruneRef<'_>]) -> Vec<u8> {
    frame_as(0, prunes)
}

/// A prune list read in place.
pub fn decode_prunes_ref(bytes: &[u8]) -> Result<Vec<PruneRef<'_>>, CodecError> {
    match unframe_ref(bytes)? {
        StoredPrunesRef::V1(p) => Ok(p),
    }
}

pub type CacheRow = (String, u64, u32, String);

pub fn encode_cache(rows: &[CacheRow]) -> Vec<u8> {
    frame_as(0, rows)
}

pub fn decode_cache(bytes: &[u8]) -> Result<Vec<CacheRow>, CodecError> {
    match unframe(bytes)? {
        StoredCache::V1(r) => Ok(r),
    }
}

/// A task's latest cache-key components: (run, attempt, parts).
pub type Parts = (u64, u32, Vec<(String, String)>);

pub fn encode_parts(run: u64, attempt: u32, parts: &[(String, String)]) -> Vec<u8> {
    frame_as(0, &(run, attempt, parts))
}

pub fn decode_parts(bytes: &[u8]) -> Result<Parts, CodecError> {
    match unframe(bytes)? {
        StoredParts::V1(run, attempt, parts) => Ok((run, attempt, parts)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TaskState;
    use crate::record::{Entry, Reason};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn record(seq: u64, task: String, code: i32, note: String) -> Record {
        Record {
            seq,
            run: seq / 3 + 1,
            at: Utc
                .timestamp_millis_opt(1_700_000_000_000 + seq as i64)
                .single()
                .unwrap_or_default(),
            entry: if code % 2 == 0 {
                Entry::Transition {
                    task,
                    attempt: 1,
                    from: TaskState::Running,
                    to: TaskState::Failed,
                    reason: Reason::Exit(code),
                    exit_code: Some(code),
                }
            } else {
                Entry::Approval {
                    task,
                    user: "ana".into(),
                    note: Some(note),
                }
            },
        }
    }

    #[test]
    fn an_appended_entry_kind_leaves_the_older_ones_as_they_were() {
        // bincode writes an enum variant as its index: `Outputs` keeps 18, `Pruned` (gc's
        // sweep record) 19 and `Usage` (issue #18) is 20, so every record written before
        // either existed decodes as it did.
        let index = |e: &Entry| bincode::serialize(e).map(|b| b[..4].to_vec()).ok();
        let outputs = Entry::Outputs {
            task: "t".into(),
            attempt: 1,
            files: vec![],
        };
        let usage = Entry::Usage {
            task: "t".into(),
            attempt: 1,
            cpu_user_us: 1_500_000,
            cpu_sys_us: 20,
            max_rss_kib: Some(2048),
            source: "rusage".into(),
            printed: 1 << 30,
            head: 8 << 20,
            dropped: (1 << 30) - (16 << 20),
        };
        let pruned = Entry::Pruned {
            checkpoints: vec![],
            logs: vec![],
        };
        assert_eq!(index(&outputs), Some(18u32.to_le_bytes().to_vec()));
        assert_eq!(index(&pruned), Some(19u32.to_le_bytes().to_vec()));
        assert_eq!(index(&usage), Some(20u32.to_le_bytes().to_vec()));
        let r = Record {
            seq: 7,
            run: 2,
            at: Utc
                .timestamp_millis_opt(1_700_000_000_000)
                .single()
                .unwrap_or_default(),
            entry: usage,
        };
        assert_eq!(decode_record(&encode_record(&r)).ok(), Some(r));
    }

    #[test]
    fn borrowed_frames_are_the_enum_frames() {
        let r = record(7, "clean".into(), 3, "n".into());
        assert_eq!(encode_record(&r), frame(&StoredRecord::V1(r.clone())));
        let row = CheckpointRow {
            task: "t".into(),
            attempt: 1,
            path: "p".into(),
            hash: "h".into(),
            bytes: 3,
            created_at: Utc::now(),
            retention_secs: 60,
            pruned: Some((Utc::now(), "7d".into())),
        };
        let rows = vec![(4u64, row)];
        assert_eq!(
            encode_checkpoints(&rows),
            frame(&StoredCheckpoints::V1(rows.clone()))
        );
        assert_eq!(decode_checkpoints(&encode_checkpoints(&rows)), Ok(rows));
        let plan = crate::record::TaskPlan {
            name: "a".into(),
            owner: Some("o".into()),
            idempotent: true,
            retries: 1,
            manual: false,
        };
        let Some(snap) = crate::machine::replay(&[Record {
            seq: 1,
            run: 1,
            at: Utc::now(),
            entry: Entry::RunStarted {
                workflow: "w".into(),
                file: "wf.toml".into(),
                user: "u".into(),
                host: "h".into(),
                pid: 1,
                args: vec![],
                tasks: vec![plan],
            },
        }])
        .ok() else {
            panic!("a run that does not replay");
        };
        assert_eq!(
            encode_run(&snap.run, Some(&snap.tasks)),
            frame(&StoredRun::V2(snap.run.clone(), Some(snap.tasks.clone())))
        );
        assert_eq!(
            encode_tasks(&snap.tasks),
            frame(&StoredTasks::V1(snap.tasks.clone()))
        );
        assert_eq!(decode_tasks(&encode_tasks(&snap.tasks)), Ok(snap.tasks));
        let parts = vec![("input:a".to_string(), "0123".to_string())];
        assert_eq!(
            encode_parts(3, 1, &parts),
            frame(&StoredParts::V1(3, 1, parts.clone()))
        );
        assert_eq!(decode_parts(&encode_parts(3, 1, &parts)), Ok((3, 1, parts)));
    }

    proptest! {
        #[test]
        fn round_trip(seq in 0u64..u64::MAX / 2, task in "[a-z_]{1,20}", code in any::<i32>(), note in ".*") {
            let r = record(seq, task, code, note);
            prop_assert_eq!(decode_record(&encode_record(&r)), Ok(r));
        }

        /// A sweep's record per run: any number of checkpoints and logs, any text.
        #[test]
        fn pruned_round_trip(
            seq in 0u64..u64::MAX / 2,
            checkpoints in prop::collection::vec(("\\PC{0,12}", any::<u32>(), any::<u64>(), "[0-9a-f]{0,64}", any::<u64>(), "[0-9]{1,3}[mhd]"), 0..20),
            logs in prop::collection::vec(("\\PC{0,12}", any::<u32>(), any::<u64>(), ".{0,5}"), 0..20),
        ) {
            use crate::record::{PrunedCheckpoint, PrunedLog};
            let r = Record {
                seq,
                run: seq / 5 + 1,
                at: Utc.timestamp_millis_opt(1_700_000_000_000).single().unwrap_or_default(),
                entry: Entry::Pruned {
                    checkpoints: checkpoints
                        .into_iter()
                        .map(|(task, attempt, checkpoint_seq, hash, bytes, policy)| PrunedCheckpoint {
                            path: format!("{task}/out").into(),
                            task: task.into(),
                            attempt,
                            checkpoint_seq,
                            hash,
                            bytes,
                            policy: policy.into(),
                        })
                        .collect(),
                    logs: logs
                        .into_iter()
                        .map(|(task, attempt, bytes, policy)| PrunedLog { task, attempt, bytes, policy })
                        .collect(),
                },
            };
            let bytes = encode_record(&r);
            prop_assert_eq!(decode_record(&bytes), Ok(r.clone()));
            // Damage anywhere is caught by the frame's checksum.
            let mut bad = bytes.clone();
            let i = (seq as usize) % bad.len();
            bad[i] ^= 0x40;
            prop_assert!(decode_record(&bad) != Ok(r));
        }

        /// A chunk of checkpoint rows read in place says exactly what the owned reading says,
        /// and refuses exactly what it refuses (damage, truncation).
        #[test]
        fn checkpoint_rows_read_in_place_are_the_owned_rows(
            rows in prop::collection::vec((any::<u64>(), "\\PC{0,12}", any::<u32>(), "\\PC{0,12}", "[0-9a-f]{0,64}", any::<u64>(), -(1i64 << 40)..(1i64 << 40), 0u32..1_000_000_000, any::<u64>(), prop::option::of((0i64..(1i64 << 35), "\\PC{0,4}"))), 0..70),
            flip in any::<usize>(),
            bit in 0u8..8,
            cut in any::<usize>(),
        ) {
            let rows: Vec<(u64, CheckpointRow)> = rows
                .into_iter()
                .map(|(seq, task, attempt, path, hash, bytes, secs, nanos, retention_secs, pruned)| {
                    let t = |s: i64, n: u32| Utc.timestamp_opt(s, n).single().unwrap_or_default();
                    (seq, CheckpointRow {
                        task,
                        attempt,
                        path,
                        hash,
                        bytes,
                        created_at: t(secs, nanos),
                        retention_secs,
                        pruned: pruned.map(|(s, why)| (t(s, 0), why)),
                    })
                })
                .collect();
            let bytes = encode_checkpoints(&rows);
            let borrowed: Vec<(u64, CheckpointRow)> = decode_checkpoints_ref(&bytes)
                .map(|r| r.iter().map(|(seq, row)| (*seq, row.to_row())).collect())
                .unwrap_or_default();
            prop_assert_eq!(&borrowed, &rows);
            let again = decode_checkpoints_ref(&bytes).map(|r| encode_checkpoints_ref(&r));
            prop_assert_eq!(again, Ok(bytes.clone()), "encoded again, the same bytes");
            let mut bad = bytes.clone();
            let i = flip % bad.len();
            bad[i] ^= 1 << bit;
            prop_assert_eq!(decode_checkpoints_ref(&bad).is_err(), decode_checkpoints(&bad).is_err());
            prop_assert!(decode_checkpoints_ref(&bad).is_err());
            let cut = cut % bytes.len();
            prop_assert!(decode_checkpoints_ref(&bytes[..cut]).is_err());
        }

        #[test]
        fn damage_is_detected(seq in 0u64..1000, flip in 0usize..64, bit in 0u8..8) {
            let r = record(seq, "clean".into(), 3, "n".into());
            let mut bytes = encode_record(&r);
            let i = flip % bytes.len();
            bytes[i] ^= 1 << bit;
            prop_assert!(decode_record(&bytes) != Ok(r));
        }

        #[test]
        fn truncation_is_detected(cut in 0usize..40) {
            let r = record(7, "clean".into(), 3, "n".into());
            let bytes = encode_record(&r);
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(decode_record(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn newer_frame_and_version_are_named() {
        let r = record(1, "a".into(), 2, String::new());
        let mut bytes = encode_record(&r);
        bytes[0] = FRAME + 1;
        assert_eq!(decode_record(&bytes), Err(CodecError::Newer));
        // A valid frame holding a version variant this wf does not know (index 7).
        let payload = 7u32.to_le_bytes().to_vec();
        let mut framed = vec![FRAME];
        framed.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        framed.extend_from_slice(&payload);
        assert_eq!(decode_record(&framed), Err(CodecError::Newer));
    }
}
