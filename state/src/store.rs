//! The typed journal: the engine proposes entries, the store checks them against the pure state
//! machine, appends them (with the run and task indexes they change) in one atomic durable batch,
//! and only then returns. Key layout (one sled tree, big-endian numbers so keys sort by number):
//!
//! | key                               | value                         |
//! |-----------------------------------|-------------------------------|
//! | `m:schema`                        | schema version (u32 LE)       |
//! | `m:seq`                           | last sequence number (u64 LE) |
//! | `m:last`                          | run and seq of the last record |
//! | `m:next_run`                      | next run id (u64 LE)          |
//! | `e` run(8) seq(8)                 | a `Record` (codec)            |
//! | `r` run(8)                        | the run's `RunView`           |
//! | `t` run(8) index(4)               | a `TaskView`, in plan order   |
//! | `a` run(8)                        | empty: the run is running or waiting |
//! | `c` run(8) seq(8)                 | a `CheckpointRow` (pruned or not) |
//! | `o` hash                          | unpruned checkpoints referencing the object (u64 LE) |
//! | `d` hash                          | empty: the object is referenced no more; delete it |
//! | `f` fingerprint                   | run(8) attempt(4) task: the latest done with it |
//! | `x` run(8) seq(8) channel         | empty: the alert at seq waits for delivery there |

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::checkpoints::{CacheEntry, CheckpointRow, Located};
use crate::codec::{self, CodecError};
use crate::durable::{exists, sync_dir};
use crate::error::StateError;
use crate::journal::{Kv, Write};
use crate::live::LiveLog;
use crate::machine::{self, RunSnapshot, RunState, RunView};
use crate::record::{Entry, Record, RunId};
use crate::wal::{read_from, RecordLog};

/// The on-disk schema this wf writes and the newest it reads.
pub const SCHEMA: u32 = 1;

const K_SCHEMA: &[u8] = b"m:schema";
/// A text file beside the journal naming its schema, readable without opening sled.
const VERSION_FILE: &str = "VERSION";
/// The record log: every record, the durable truth sled is built from (`wal`).
const LOG_FILE: &str = "journal.log";
const K_LOGPOS: &[u8] = b"m:logpos";
const K_SEQ: &[u8] = b"m:seq";
const K_LAST: &[u8] = b"m:last";
const K_NEXT_RUN: &[u8] = b"m:next_run";

fn key_rec(run: RunId, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'e');
    k.extend_from_slice(&run.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn key_rec_prefix(prefix: u8, run: RunId, seq: u64) -> Vec<u8> {
    let mut k = key_rec(run, seq);
    k[0] = prefix;
    k
}

fn key_outbox(run: RunId, seq: u64, channel: &str) -> Vec<u8> {
    let mut k = key_rec_prefix(b'x', run, seq);
    k.extend_from_slice(channel.as_bytes());
    k
}

fn key_hash(prefix: u8, hash: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + hash.len());
    k.push(prefix);
    k.extend_from_slice(hash.as_bytes());
    k
}

fn key_run(prefix: u8, run: RunId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(prefix);
    k.extend_from_slice(&run.to_be_bytes());
    k
}

fn key_task(run: RunId, index: usize) -> Vec<u8> {
    let mut k = key_run(b't', run);
    k.extend_from_slice(&(index as u32).to_be_bytes());
    k
}

fn u64_of(bytes: &[u8]) -> Option<u64> {
    let b: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

fn run_of_key(key: &[u8]) -> Option<RunId> {
    let b: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// How a command uses the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Create the state if it does not exist, and write.
    Write,
    /// Only read; a missing state directory is not created.
    Read,
}

pub struct Store {
    kv: Kv,
    root: PathBuf,
    /// The record log (writers only).
    log: Option<RecordLog>,
    /// Where a damaged index was set aside at open (and why), when it was rebuilt from the log.
    rebuilt: Option<(PathBuf, String)>,
    last_seq: u64,
    next_run: RunId,
    snaps: HashMap<RunId, RunSnapshot>,
    fsync: bool,
    live: Option<LiveLog>,
}

fn decode_err(root: &Path, what: &str, e: CodecError) -> StateError {
    match e {
        CodecError::Newer => StateError::Newer(format!(
            "{what} in {} was written by a newer version of wf; upgrade wf to read it (nothing was changed)",
            root.display()
        )),
        CodecError::Corrupt(why) => StateError::Corrupt(format!(
            "{what} in {} is damaged ({why}); restore the state directory from a backup or move it \
             away (nothing was changed)",
            root.display()
        )),
    }
}

fn read_version(root: &Path, path: &Path) -> Result<u32, StateError> {
    let bytes = std::fs::read(path).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        what: "reading the state version",
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let schema = text
        .trim()
        .strip_prefix("wf-state schema ")
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| {
            StateError::Corrupt(format!(
                "{} is damaged; restore the state directory from a backup or move it away \
                 (nothing was changed)",
                path.display()
            ))
        })?;
    if schema > SCHEMA {
        return Err(StateError::Newer(format!(
            "{} was written by a newer wf (state schema {schema}; this wf reads up to {SCHEMA}); \
             upgrade wf (nothing was changed)",
            root.display()
        )));
    }
    Ok(schema)
}

/// Names wf itself creates in a state directory before (or besides) its journal.
const OWN_NAMES: [&str; 8] = [
    "lock",
    "logs",
    "objects",
    "live.jsonl",
    "live.jsonl.tmp",
    "journal.log",
    "VERSION.tmp",
    "journal",
];

/// Refuse to create a state in a directory holding anything that is not wf's.
fn foreign_check(root: &Path) -> Result<(), StateError> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let aside = name.to_string_lossy().starts_with("journal.broken-");
        if !aside && !OWN_NAMES.iter().any(|n| name == *n) {
            return Err(StateError::Foreign(root.to_path_buf()));
        }
    }
    Ok(())
}

fn write_version(root: &Path, path: &Path) -> Result<(), StateError> {
    let tmp = root.join("VERSION.tmp");
    let io = |what: &'static str| {
        let p = path.to_path_buf();
        move |source| StateError::Io {
            path: p,
            what,
            source,
        }
    };
    let mut f = std::fs::File::create(&tmp).map_err(io("creating the state version"))?;
    std::io::Write::write_all(&mut f, format!("wf-state schema {SCHEMA}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io("writing the state version"))?;
    std::fs::rename(&tmp, path).map_err(io("renaming the state version"))?;
    sync_dir(root)
}

impl Store {
    /// Open the state directory `root` (usually `.wf`). With `Access::Read`, a missing state
    /// gives `Ok(None)`. A foreign or newer state, a damaged `VERSION` or record log, or a missing
    /// record log is refused before sled opens anything, so those bytes are left as they were.
    /// Records the log holds and sled does not (sled's tail lost to a crash or a power cut, or to
    /// its recovery from a damaged message) are replayed into sled.
    pub fn open(root: &Path, access: Access) -> Result<Option<Store>, StateError> {
        let jdir = root.join("journal");
        let log_path = root.join(LOG_FILE);
        let version_path = root.join(VERSION_FILE);
        let has_journal = exists(&jdir)?;
        let has_log = exists(&log_path)?;
        let versioned = exists(&version_path)?;
        if has_journal && !jdir.is_dir() {
            return Err(StateError::Corrupt(format!(
                "{} is not a directory; this state directory is damaged — move it away (nothing was changed)",
                jdir.display()
            )));
        }
        // Everything that can be checked without opening sled is checked first.
        if versioned {
            read_version(root, &version_path)?;
            if !has_log {
                return Err(StateError::Corrupt(format!(
                    "{} is missing, and it holds every record of the journal; restore the state \
                     directory from a backup or move it away (nothing was changed)",
                    log_path.display()
                )));
            }
        } else {
            if has_journal {
                // wf writes VERSION before it creates the journal: this is not wf's, or damaged.
                return Err(StateError::Foreign(root.to_path_buf()));
            }
            if has_log && std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0) > 0 {
                // Only an empty log is a creation cut short: records without VERSION are damage.
                return Err(StateError::Corrupt(format!(
                    "{} holds records but {} is missing; restore it (`wf-state schema {SCHEMA}`) or \
                     the state directory from a backup (nothing was changed)",
                    log_path.display(),
                    version_path.display()
                )));
            }
            foreign_check(root)?;
            if access == Access::Read {
                return Ok(None);
            }
            // Create, in an order that any crash leaves openable: the record log (empty), then
            // VERSION, then the journal (sled, rebuilt from the log whenever it is missing).
            crate::durable::create_private_dir(root).map_err(|source| StateError::Io {
                path: root.to_path_buf(),
                what: "creating the state directory",
                source,
            })?;
            RecordLog::open(&log_path, 0, true)?;
            sync_dir(root)?;
            if let Some(parent) = root.parent() {
                if !parent.as_os_str().is_empty() {
                    sync_dir(parent)?;
                }
            }
            write_version(root, &version_path)?;
        }
        if !has_journal {
            if access == Access::Read && read_from(&log_path, 0)?.records.is_empty() {
                return Ok(None);
            }
            crate::durable::create_private_dir(&jdir).map_err(|source| StateError::Io {
                path: jdir.clone(),
                what: "creating the journal",
                source,
            })?;
            sync_dir(root)?;
        }
        let mut rebuilt = None;
        let kv = match Kv::open(&jdir) {
            Ok(kv) => {
                if !has_journal {
                    kv.sync_files()?;
                }
                kv
            }
            // sled cannot open its index (damaged files, or a `conf` a power cut left empty).
            // The record log holds every record: set the index aside — its bytes kept — and
            // rebuild it, provided the whole log reads cleanly.
            Err(StateError::Corrupt(why)) => {
                read_from(&log_path, 0)?;
                let aside = root.join(format!(
                    "journal.broken-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
                ));
                std::fs::rename(&jdir, &aside).map_err(|source| StateError::Io {
                    path: jdir.clone(),
                    what: "setting a damaged journal index aside",
                    source,
                })?;
                crate::durable::create_private_dir(&jdir).map_err(|source| StateError::Io {
                    path: jdir.clone(),
                    what: "creating the journal",
                    source,
                })?;
                sync_dir(root)?;
                let kv = Kv::open(&jdir)?;
                kv.sync_files()?;
                rebuilt = Some((aside, why));
                kv
            }
            Err(e) => return Err(e),
        };
        match kv.get(K_SCHEMA)? {
            None if kv.is_empty() => {
                kv.commit(
                    vec![(K_SCHEMA.to_vec(), Some(SCHEMA.to_le_bytes().to_vec()))],
                    true,
                    false,
                )?;
            }
            None => return Err(StateError::Foreign(root.to_path_buf())),
            Some(v) => {
                let b: [u8; 4] = v
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StateError::Corrupt("the schema key is damaged".into()))?;
                let schema = u32::from_le_bytes(b);
                if schema > SCHEMA {
                    return Err(StateError::Newer(format!(
                        "{} uses state schema {schema}, newer than this wf reads ({SCHEMA}); upgrade \
                         wf",
                        root.display()
                    )));
                }
            }
        }
        let applied = kv.get(K_LOGPOS)?.and_then(|v| u64_of(&v)).unwrap_or(0);
        let tail = read_from(&log_path, applied)?;
        let last_seq = kv.get(K_SEQ)?.and_then(|v| u64_of(&v)).unwrap_or(0);
        let next_run = kv.get(K_NEXT_RUN)?.and_then(|v| u64_of(&v)).unwrap_or(1);
        if let Some(first) = tail.records.first() {
            if first.seq <= last_seq {
                return Err(StateError::Corrupt(format!(
                    "the journal in {} and its record log disagree (record {} is in both); restore \
                     the state directory from a backup or move it away",
                    root.display(),
                    first.seq
                )));
            }
        }
        let log = match access {
            // A writer cuts a torn last write off before it appends.
            Access::Write => Some(RecordLog::open(&log_path, tail.end, false)?),
            Access::Read => None,
        };
        let mut store = Store {
            kv,
            root: root.to_path_buf(),
            log,
            last_seq,
            next_run,
            snaps: HashMap::new(),
            fsync: true,
            live: None,
            rebuilt,
        };
        if !tail.records.is_empty() {
            store.replay_into_sled(tail.records, tail.end)?;
        }
        Ok(Some(store))
    }

    /// Apply records that the log holds and sled does not, in one atomic batch (so a crash
    /// midway leaves sled as it was, and the next open replays them again).
    fn replay_into_sled(&mut self, records: Vec<Record>, end: u64) -> Result<(), StateError> {
        let mut by_run: Vec<(RunId, Vec<Record>, bool)> = Vec::new();
        for r in records {
            match by_run.iter_mut().find(|(run, _, _)| *run == r.run) {
                Some((_, v, _)) => v.push(r),
                None => {
                    let new = matches!(r.entry, Entry::RunStarted { .. });
                    by_run.push((r.run, vec![r], new));
                }
            }
        }
        let next = by_run
            .iter()
            .map(|(r, _, _)| r + 1)
            .max()
            .unwrap_or(self.next_run)
            .max(self.next_run);
        self.write_records(by_run, Some(next), false, Some(end))?;
        Ok(())
    }

    /// When this open rebuilt a damaged index from the record log: where the old one was set
    /// aside, and what sled said of it.
    pub fn rebuilt(&self) -> Option<&(PathBuf, String)> {
        self.rebuilt.as_ref()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sequence number of the last committed record.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Skip fsync (benchmarks only: a power cut may then lose acknowledged records).
    pub fn set_fsync(&mut self, on: bool) {
        self.fsync = on;
    }

    /// Mirror every record of `run` (those already committed and those to come) to the live log
    /// that read-only commands use while this process holds the state.
    pub fn attach_live(&mut self, run: RunId) -> Result<(), StateError> {
        let records = self.records(run)?;
        self.live = Some(LiveLog::create(&self.root, &records)?);
        Ok(())
    }

    /// Start a new run with its `RunStarted` entry (and any entries that follow it at once).
    pub fn begin_run(&mut self, entries: Vec<Entry>) -> Result<(RunId, Vec<Record>), StateError> {
        let run = self.next_run;
        let records = self.append(vec![(run, entries)], Some(run), self.fsync)?;
        Ok((run, records))
    }

    /// Append entries to a run atomically and durably. Nothing is written when any entry is
    /// illegal in the state machine.
    pub fn commit(&mut self, run: RunId, entries: Vec<Entry>) -> Result<Vec<Record>, StateError> {
        self.append(vec![(run, entries)], None, self.fsync)
    }

    /// Append entries to several runs in one atomic, durable batch (`wf gc` prunes this way).
    pub fn commit_many(
        &mut self,
        batches: Vec<(RunId, Vec<Entry>)>,
    ) -> Result<Vec<Record>, StateError> {
        self.append(batches, None, self.fsync)
    }

    fn append(
        &mut self,
        batches: Vec<(RunId, Vec<Entry>)>,
        new_run: Option<RunId>,
        durable: bool,
    ) -> Result<Vec<Record>, StateError> {
        let at = Utc::now();
        let mut seq = self.last_seq;
        let batches = batches
            .into_iter()
            .filter(|(_, e)| !e.is_empty())
            .map(|(run, entries)| {
                let records = entries
                    .into_iter()
                    .map(|entry| {
                        seq += 1;
                        Record {
                            seq,
                            run,
                            at,
                            entry,
                        }
                    })
                    .collect();
                (run, records, new_run == Some(run))
            })
            .collect();
        self.write_records(batches, new_run.map(|r| r + 1), durable, None)
    }

    /// Import the records of one run exactly as they were journaled (same sequence numbers and
    /// times), checked against the state machine and indexed like new ones (`wf state import`).
    /// The run must not exist yet, and its records must come after everything journaled so far.
    pub fn import_run(&mut self, records: Vec<Record>) -> Result<(), StateError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let run = first.run;
        if self.run(run)?.is_some() {
            return Err(StateError::Illegal(machine::Illegal::RunExists(run)));
        }
        let mut last = 0;
        for r in &records {
            if r.run != run || r.seq <= last {
                return Err(StateError::Corrupt(format!(
                    "the import's records of run {run} are out of order at seq {}",
                    r.seq
                )));
            }
            last = r.seq;
        }
        let next = (run + 1).max(self.next_run);
        self.write_records(vec![(run, records, true)], Some(next), true, None)?;
        Ok(())
    }

    /// Check records against the state machine, index them and write them in one batch.
    /// Records come either new (appended to the record log first — fdatasynced when `durable` —
    /// then to sled) or `replayed` from the log up to that offset (sled only).
    fn write_records(
        &mut self,
        batches: Vec<(RunId, Vec<Record>, bool)>,
        next_run: Option<RunId>,
        durable: bool,
        replayed: Option<u64>,
    ) -> Result<Vec<Record>, StateError> {
        if batches.iter().all(|(_, r, _)| r.is_empty()) {
            return Ok(Vec::new());
        }
        let mut seq = self.last_seq;
        let mut writes: Vec<Write> = Vec::new();
        let mut all = Vec::new();
        let mut done: Vec<(RunId, RunSnapshot)> = Vec::new();
        // Object reference count changes, and checkpoint rows changed in this batch.
        let mut refs: HashMap<String, i64> = HashMap::new();
        let mut rows: HashMap<(RunId, u64), CheckpointRow> = HashMap::new();
        let mut last = (0, 0);
        for (run, records, is_new) in batches {
            if records.is_empty() {
                continue;
            }
            // On a refused entry, the runs staged so far were taken out of the cache: they
            // reload from disk.
            let (snap, records) = self.stage(run, records, is_new, &mut writes)?;
            for rec in &records {
                self.index(rec, &mut writes, &mut refs, &mut rows)?;
                seq = seq.max(rec.seq);
                last = (run, rec.seq);
            }
            all.extend(records);
            done.push((run, snap));
        }
        for ((run, cseq), row) in rows {
            writes.push((
                key_rec_prefix(b'c', run, cseq),
                Some(codec::encode_checkpoint(&row)),
            ));
        }
        // Every object touched is settled, even with a net change of 0: a checkpoint and its
        // prune replayed together from the record log must still leave the object to delete.
        for (hash, delta) in refs {
            let key = key_hash(b'o', &hash);
            let now = self.kv.get(&key)?.and_then(|v| u64_of(&v)).unwrap_or(0) as i64 + delta;
            if now <= 0 {
                writes.push((key, None));
                writes.push((key_hash(b'd', &hash), Some(Vec::new())));
            } else {
                writes.push((key, Some((now as u64).to_le_bytes().to_vec())));
                writes.push((key_hash(b'd', &hash), None));
            }
        }
        writes.push((K_SEQ.to_vec(), Some(seq.to_le_bytes().to_vec())));
        let mut lastv = last.0.to_le_bytes().to_vec();
        lastv.extend_from_slice(&last.1.to_le_bytes());
        writes.push((K_LAST.to_vec(), Some(lastv)));
        if let Some(next) = next_run {
            writes.push((K_NEXT_RUN.to_vec(), Some(next.to_le_bytes().to_vec())));
        }
        // Write-ahead: the records are in the record log (and synced) before sled has them;
        // sled is neither flushed nor fsynced here — what it loses, the next open replays.
        let logpos = match replayed {
            Some(end) => end,
            None => match self.log.as_mut() {
                Some(log) => log.append(&all, durable)?,
                None => {
                    return Err(StateError::Corrupt(
                        "a reader tried to write the journal; this is a bug".into(),
                    ))
                }
            },
        };
        writes.push((K_LOGPOS.to_vec(), Some(logpos.to_le_bytes().to_vec())));
        self.kv.commit(writes, false, false)?;
        self.last_seq = seq;
        if let Some(next) = next_run {
            self.next_run = next;
        }
        // A bounded cache: a sweep over thousands of runs must not keep them all.
        if self.snaps.len() + done.len() > 64 {
            self.snaps.clear();
        }
        for (run, snap) in done {
            self.snaps.insert(run, snap);
        }
        if let Some(live) = self.live.as_mut() {
            // The live log only serves readers during the run; failing to write it must not stop
            // the run, and it is rebuilt at the next attach.
            let _ = live.append(&all);
        }
        Ok(all)
    }

    /// Check one run's entries against the state machine and add their writes (records, run
    /// summary, changed task views, active index) to the batch.
    fn stage(
        &mut self,
        run: RunId,
        records: Vec<Record>,
        new_run: bool,
        writes: &mut Vec<Write>,
    ) -> Result<(RunSnapshot, Vec<Record>), StateError> {
        // Work on the cached state in place; on a refused entry the cache is dropped (the index on
        // disk is unchanged) and reloaded at the next access.
        let mut next = if new_run {
            None
        } else {
            self.cache(run)?;
            self.snaps.remove(&run)
        };
        let was_active = next
            .as_ref()
            .is_some_and(|b| matches!(b.run.state, RunState::Running | RunState::Waiting));
        let mut touched: Vec<String> = Vec::new();
        for rec in &records {
            if let Some(t) = rec.entry.task() {
                if !touched.iter().any(|x| x == t) {
                    touched.push(t.to_string());
                }
            }
            machine::apply(&mut next, rec)?;
        }
        let next = next.ok_or(StateError::Illegal(machine::Illegal::NoRun(run)))?;
        for rec in &records {
            writes.push((key_rec(run, rec.seq), Some(codec::encode_record(rec))));
        }
        writes.push((key_run(b'r', run), Some(codec::encode_run(&next.run))));
        for (i, t) in next.tasks.iter().enumerate() {
            if new_run || touched.contains(&t.name) {
                writes.push((key_task(run, i), Some(codec::encode_task(t))));
            }
        }
        let active = matches!(next.run.state, RunState::Running | RunState::Waiting);
        if active != was_active {
            writes.push((key_run(b'a', run), active.then(Vec::new)));
        }
        Ok((next, records))
    }

    /// The derived indexes a record changes: checkpoint rows, object references, the cache.
    fn index(
        &self,
        rec: &Record,
        writes: &mut Vec<Write>,
        refs: &mut HashMap<String, i64>,
        rows: &mut HashMap<(RunId, u64), CheckpointRow>,
    ) -> Result<(), StateError> {
        match &rec.entry {
            Entry::Checkpoint {
                task,
                attempt,
                path,
                hash,
                bytes,
                retention_secs,
                ..
            } => {
                *refs.entry(hash.clone()).or_default() += 1;
                rows.insert(
                    (rec.run, rec.seq),
                    CheckpointRow {
                        task: task.clone(),
                        attempt: *attempt,
                        path: path.clone(),
                        hash: hash.clone(),
                        bytes: *bytes,
                        created_at: rec.at,
                        retention_secs: *retention_secs,
                        pruned: None,
                    },
                );
            }
            Entry::Prune {
                checkpoint_seq,
                policy,
                ..
            } => {
                let key = (rec.run, *checkpoint_seq);
                let row = match rows.remove(&key) {
                    Some(r) => Some(r),
                    None => self
                        .kv
                        .get(&key_rec_prefix(b'c', rec.run, *checkpoint_seq))?
                        .map(|v| {
                            codec::decode_checkpoint(&v)
                                .map_err(|e| decode_err(&self.root, "a checkpoint record", e))
                        })
                        .transpose()?,
                };
                let Some(mut row) = row else {
                    return Err(StateError::Illegal(machine::Illegal::NoTask {
                        run: rec.run,
                        task: format!("checkpoint {checkpoint_seq}"),
                    }));
                };
                if row.pruned.is_none() {
                    *refs.entry(row.hash.clone()).or_default() -= 1;
                    row.pruned = Some((rec.at, policy.clone()));
                }
                rows.insert(key, row);
            }
            Entry::Alert { channels, .. } => {
                for c in channels {
                    writes.push((key_outbox(rec.run, rec.seq, c), Some(Vec::new())));
                }
            }
            Entry::Delivery {
                alert_seq,
                channel,
                outcome,
                ..
            } if outcome != "failed" => {
                writes.push((key_outbox(rec.run, *alert_seq, channel), None));
            }
            Entry::Fingerprint {
                task,
                attempt,
                fingerprint,
            } => {
                let mut v = rec.run.to_be_bytes().to_vec();
                v.extend_from_slice(&attempt.to_be_bytes());
                v.extend_from_slice(task.as_bytes());
                writes.push((key_hash(b'f', fingerprint), Some(v)));
            }
            _ => {}
        }
        Ok(())
    }

    /// The checkpoints of a run, in journal order.
    pub fn checkpoints(&self, run: RunId) -> Result<Vec<Located>, StateError> {
        self.kv
            .scan(&key_run(b'c', run), false)
            .map(|pair| self.located(pair?))
            .collect()
    }

    /// Up to `limit` checkpoints, newest first, journaled before `before` (run, seq) — or the
    /// newest, without it. Paging keeps memory bounded and lets the caller write between pages.
    pub fn checkpoints_page(
        &self,
        before: Option<(RunId, u64)>,
        limit: usize,
    ) -> Result<Vec<Located>, StateError> {
        let end = match before {
            Some((run, seq)) => key_rec_prefix(b'c', run, seq),
            None => b"d".to_vec(),
        };
        self.kv
            .range_rev(b"c", &end)
            .take(limit)
            .map(|pair| self.located(pair?))
            .collect()
    }

    fn located(&self, (k, v): (Vec<u8>, Vec<u8>)) -> Result<Located, StateError> {
        let run = run_of_key(&k).unwrap_or(0);
        let seq = k
            .get(9..17)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let row = codec::decode_checkpoint(&v)
            .map_err(|e| decode_err(&self.root, "a checkpoint record", e))?;
        Ok(Located { run, seq, row })
    }

    /// The latest done attempt with this fingerprint.
    pub fn cache_lookup(&self, fingerprint: &str) -> Result<Option<CacheEntry>, StateError> {
        let Some(v) = self.kv.get(&key_hash(b'f', fingerprint))? else {
            return Ok(None);
        };
        let run = v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok());
        let attempt = v.get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok());
        let task = v.get(12..).map(|b| String::from_utf8_lossy(b).into_owned());
        Ok(match (run, attempt, task) {
            (Some(r), Some(a), Some(t)) => Some(CacheEntry {
                run: u64::from_be_bytes(r),
                attempt: u32::from_be_bytes(a),
                task: t,
            }),
            _ => None,
        })
    }

    /// Alerts waiting for delivery: (run, seq of the alert, channel), oldest first.
    pub fn outbox(&self) -> Result<Vec<(RunId, u64, String)>, StateError> {
        self.kv
            .scan(b"x", false)
            .map(|pair| {
                let (k, _) = pair?;
                let run = run_of_key(&k).unwrap_or(0);
                let seq = k
                    .get(9..17)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                let channel = String::from_utf8_lossy(k.get(17..).unwrap_or_default()).into_owned();
                Ok((run, seq, channel))
            })
            .collect()
    }

    /// One record of a run.
    pub fn record(&self, run: RunId, seq: u64) -> Result<Option<Record>, StateError> {
        match self.kv.get(&key_rec(run, seq))? {
            None => Ok(None),
            Some(v) => codec::decode_record(&v)
                .map(Some)
                .map_err(|e| decode_err(&self.root, "a journal record", e)),
        }
    }

    /// How many unpruned checkpoints reference an object.
    pub fn references(&self, hash: &str) -> Result<u64, StateError> {
        Ok(self
            .kv
            .get(&key_hash(b'o', hash))?
            .and_then(|v| u64_of(&v))
            .unwrap_or(0))
    }

    /// Objects no unpruned checkpoint references any more, waiting to be deleted.
    pub fn unreferenced(&self) -> Result<Vec<String>, StateError> {
        self.kv
            .scan(b"d", false)
            .map(|pair| {
                Ok(String::from_utf8_lossy(pair?.0.get(1..).unwrap_or_default()).into_owned())
            })
            .collect()
    }

    /// Forget objects that were deleted (or are referenced again).
    pub fn forget_unreferenced(&self, hashes: &[String]) -> Result<(), StateError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let writes = hashes.iter().map(|h| (key_hash(b'd', h), None)).collect();
        self.kv.commit(writes, false, false)
    }

    /// Load the run's state from the index into the cache; false when there is no such run.
    fn cache(&mut self, run: RunId) -> Result<bool, StateError> {
        if self.snaps.contains_key(&run) {
            return Ok(true);
        }
        let Some(view) = self.run(run)? else {
            return Ok(false);
        };
        let mut tasks = Vec::new();
        for pair in self.kv.scan(&key_run(b't', run), false) {
            let (_, v) = pair?;
            tasks.push(
                codec::decode_task(&v).map_err(|e| decode_err(&self.root, "a task record", e))?,
            );
        }
        self.snaps.insert(run, RunSnapshot { run: view, tasks });
        Ok(true)
    }

    /// The run's current state, from the index (borrowed).
    pub fn view(&mut self, run: RunId) -> Result<Option<&RunSnapshot>, StateError> {
        if !self.cache(run)? {
            return Ok(None);
        }
        Ok(self.snaps.get(&run))
    }

    /// The run's current state, from the index.
    pub fn snapshot(&mut self, run: RunId) -> Result<Option<RunSnapshot>, StateError> {
        Ok(self.view(run)?.cloned())
    }

    /// The names of a run's tasks, in plan order (read from the index, not cached).
    pub fn task_names(&self, run: RunId) -> Result<Vec<String>, StateError> {
        self.kv
            .scan(&key_run(b't', run), false)
            .map(|pair| {
                let (_, v) = pair?;
                codec::decode_task(&v)
                    .map(|t| t.name)
                    .map_err(|e| decode_err(&self.root, "a task record", e))
            })
            .collect()
    }

    /// A run's summary.
    pub fn run(&self, run: RunId) -> Result<Option<RunView>, StateError> {
        match self.kv.get(&key_run(b'r', run))? {
            None => Ok(None),
            Some(v) => codec::decode_run(&v)
                .map(Some)
                .map_err(|e| decode_err(&self.root, "a run record", e)),
        }
    }

    /// Run summaries, newest first.
    pub fn runs(&self) -> impl Iterator<Item = Result<RunView, StateError>> + '_ {
        self.kv.scan(b"r", true).map(move |pair| {
            let (_, v) = pair?;
            codec::decode_run(&v).map_err(|e| decode_err(&self.root, "a run record", e))
        })
    }

    /// Run summaries, oldest first.
    pub fn runs_oldest_first(&self) -> impl Iterator<Item = Result<RunView, StateError>> + '_ {
        self.kv.scan(b"r", false).map(move |pair| {
            let (_, v) = pair?;
            codec::decode_run(&v).map_err(|e| decode_err(&self.root, "a run record", e))
        })
    }

    /// The newest run, if any.
    pub fn latest_run(&self) -> Result<Option<RunView>, StateError> {
        self.runs().next().transpose()
    }

    /// Runs that are running (or interrupted) or waiting at a gate, oldest first.
    pub fn active_runs(&self) -> Result<Vec<RunView>, StateError> {
        let mut out = Vec::new();
        for pair in self.kv.scan(b"a", false) {
            let (k, _) = pair?;
            let Some(run) = run_of_key(&k) else { continue };
            if let Some(view) = self.run(run)? {
                out.push(view);
            }
        }
        Ok(out)
    }

    /// Every record of a run, in journal order.
    pub fn records(&self, run: RunId) -> Result<Vec<Record>, StateError> {
        let mut out = Vec::new();
        for pair in self.kv.scan(&key_run(b'e', run), false) {
            let (_, v) = pair?;
            out.push(
                codec::decode_record(&v)
                    .map_err(|e| decode_err(&self.root, "a journal record", e))?,
            );
        }
        Ok(out)
    }
}

impl Drop for Store {
    /// Leave sled's files current, so the next open has nothing to replay from the record log
    /// (if this does not happen — a crash — the next open replays instead).
    fn drop(&mut self) {
        let _ = self.kv.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::TaskState;
    use crate::record::{Reason, TaskPlan};

    fn started(tasks: &[&str]) -> Entry {
        Entry::RunStarted {
            workflow: "w".into(),
            file: "wf.toml".into(),
            user: "u".into(),
            host: "h".into(),
            pid: 1,
            args: vec![],
            tasks: tasks
                .iter()
                .map(|n| TaskPlan {
                    name: n.to_string(),
                    owner: None,
                    idempotent: true,
                    retries: 0,
                    manual: false,
                })
                .collect(),
        }
    }

    fn tr(task: &str, attempt: u32, from: TaskState, to: TaskState, reason: Reason) -> Entry {
        Entry::Transition {
            task: task.into(),
            attempt,
            from,
            to,
            reason,
            exit_code: None,
        }
    }

    #[test]
    fn commit_reopen_and_replay() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join(".wf");
        let run;
        {
            let mut s = Store::open(&root, Access::Write)?.ok_or("no store")?;
            let (r, _) = s.begin_run(vec![started(&["a", "b"])])?;
            run = r;
            s.commit(
                run,
                vec![tr(
                    "a",
                    1,
                    TaskState::Pending,
                    TaskState::Running,
                    Reason::Started,
                )],
            )?;
            // An illegal entry is refused and nothing of its batch is written.
            let bad = s.commit(
                run,
                vec![
                    tr(
                        "a",
                        1,
                        TaskState::Running,
                        TaskState::Done,
                        Reason::Succeeded,
                    ),
                    tr(
                        "b",
                        1,
                        TaskState::Running,
                        TaskState::Done,
                        Reason::Succeeded,
                    ),
                ],
            );
            assert!(bad.is_err());
            assert_eq!(
                s.snapshot(run)?.ok_or("run")?.tasks[0].state,
                TaskState::Running
            );
        }
        let mut s = Store::open(&root, Access::Write)?.ok_or("no store")?;
        let snap = s.snapshot(run)?.ok_or("run")?;
        assert_eq!(snap.tasks[0].state, TaskState::Running);
        assert_eq!(snap.tasks[0].attempts, 1);
        assert_eq!(machine::replay(&s.records(run)?)?, snap);
        assert_eq!(s.active_runs()?.len(), 1);
        assert_eq!(s.last_seq(), 2);
        Ok(())
    }

    #[test]
    fn a_lost_or_damaged_sled_is_rebuilt_from_the_record_log(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join(".wf");
        let run;
        {
            let mut s = reopen(&root, Access::Write)?;
            let (r, _) = s.begin_run(vec![started(&["a", "b"])])?;
            run = r;
            s.commit(
                run,
                vec![tr(
                    "a",
                    1,
                    TaskState::Pending,
                    TaskState::Running,
                    Reason::Started,
                )],
            )?;
        }
        let before = reopen(&root, Access::Read)?.records(run)?;
        // sled's files are gone (or were zeroed by its recovery): the log replays everything.
        std::fs::remove_dir_all(root.join("journal"))?;
        let mut s = reopen(&root, Access::Read)?;
        assert_eq!(s.records(run)?, before);
        assert_eq!(
            s.snapshot(run)?.ok_or("run")?.tasks[0].state,
            TaskState::Running
        );
        // A journal without VERSION is not wf's: refused before sled opens it.
        drop(s);
        std::fs::remove_file(root.join(VERSION_FILE))?;
        match reopen(&root, Access::Read) {
            Err(StateError::Foreign(_)) => Ok(()),
            other => Err(format!("expected Foreign, got {:?}", other.err()).into()),
        }
    }

    /// Open again, waiting for sled's threads in this process to release the previous handle.
    fn reopen(root: &Path, access: Access) -> Result<Store, StateError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open(root, access) {
                Ok(Some(s)) => return Ok(s),
                Ok(None) => return Err(StateError::Corrupt("no store".into())),
                Err(StateError::Busy(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => return Err(e),
            }
        }
    }

    #[test]
    fn refuses_a_record_log_shorter_than_what_sled_applied(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join(".wf");
        {
            let mut s = reopen(&root, Access::Write)?;
            s.begin_run(vec![started(&["a"])])?;
        }
        let log = root.join(LOG_FILE);
        let len = std::fs::metadata(&log)?.len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)?
            .set_len(len / 2)?;
        let err = reopen(&root, Access::Read).err().ok_or("opened")?;
        assert!(err.is_unreadable(), "{err}");
        assert!(err.to_string().contains("shorter"), "{err}");
        // A newer VERSION is refused before anything is opened.
        std::fs::write(root.join(VERSION_FILE), "wf-state schema 99\n")?;
        let err = reopen(&root, Access::Read).err().ok_or("opened")?;
        assert!(matches!(err, StateError::Newer(_)), "{err}");
        Ok(())
    }
}
