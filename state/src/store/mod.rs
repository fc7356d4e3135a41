//! The typed journal: the engine proposes entries, the store checks them against the pure state
//! machine (and the detail index, `detail`, checks a prune's checkpoint), appends them to the
//! record log (the durable truth, `wal`), then updates the indexes (`journal`), and only then returns.
//!
//! The indexes are kept small on purpose, so a command's start-up cost stays small (a reader
//! reads each table's block index and replays the delta log). Records live only in the record
//! log. This
//! index, `journal/`, holds what `wf history` and `wf status` need — about two keys per run — and
//! `journal/detail/` the rest (where each run's records are, its checkpoint rows), opened only by
//! commands that need it. Its keys are laid out in `keys`.
//!
//! By job: `create` (creating, versioning and checking a state directory before the index opens),
//! this file (opening, catching up with the record log), `write` (the write path: check, append,
//! index), `query` (what commands read).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::detail::{spans_of, Detail};
use crate::durable::sync_dir;
use crate::error::StateError;
use crate::journal::{self, Kv};
use crate::keys::{u64_of, K_LAYOUT, K_LOGPOS, K_NEXT_RUN, K_SCHEMA, K_SEQ, K_TAIL, LAYOUT};
use crate::live::LiveLog;
use crate::machine::RunSnapshot;
use crate::record::{Entry, Record, RunId};
use crate::wal::{self, read_from, RecordLog};

mod create;
mod query;
#[cfg(test)]
mod tests;
mod write;

pub use create::precheck;
use create::{fresh_index, init_index, inspect, write_version, Inspected};
use write::Batch;

/// The on-disk schema this wf writes and the newest it reads.
pub const SCHEMA: u32 = 1;

/// A text file beside the journal naming its schema, readable without opening the index.
const VERSION_FILE: &str = "VERSION";
/// The record log: every record, the durable truth the index is built from (`wal`).
const LOG_FILE: &str = "journal.log";

/// Records applied per index batch when the index is rebuilt from the log.
const REPLAY_BATCH: usize = 20_000;
/// ... or per this many bytes of the record log, whichever comes first (each batch is atomic
/// and records how far it got).
const REPLAY_BYTES: u64 = 1 << 20;

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
    /// The detail index (records' places, checkpoint rows): opened when first needed, so that
    /// commands that read only run summaries never pay for it.
    detail: std::cell::OnceCell<Detail>,
    log_path: PathBuf,
    fsync: bool,
    live: Option<LiveLog>,
    /// Why an index write failed after its records were appended to the log: this handle then
    /// refuses to write (the log is ahead of the indexes; reopening replays it into them).
    poisoned: Option<String>,
    /// Told of every batch of records this handle journals, once it is durable
    /// ([`Store::watch`]).
    watcher: Option<Watcher>,
}

/// What [`Store::watch`] calls with each batch of records journaled (and the store, to read more
/// of a run's records).
pub type Watcher = Box<dyn FnMut(&Store, &[Record])>;

impl Store {
    /// Call `watcher` with every batch of records this handle commits from now on (new runs
    /// included; not imports), once the batch is durable: `wf --json run` streams its journal this
    /// way.
    pub fn watch(&mut self, watcher: Watcher) {
        self.watcher = Some(watcher);
    }

    /// Open the state directory `root` (usually `.wf`). With `Access::Read`, a missing state
    /// gives `Ok(None)`. A foreign or newer state, a damaged `VERSION` or record log, or a missing
    /// record log is refused before the index is opened, so those bytes are left as they were.
    /// Records the log holds and the index does not (its unsynced tail lost to a crash or a power
    /// cut, or a damaged frame of its delta log) are replayed into it (a reader's, in memory).
    pub fn open(root: &Path, access: Access) -> Result<Option<Store>, StateError> {
        let jdir = root.join("journal");
        let log_path = root.join(LOG_FILE);
        let version_path = root.join(VERSION_FILE);
        // Everything that can be checked without opening the index is checked first.
        let Inspected {
            has_journal,
            versioned,
            scanned,
        } = inspect(root)?;
        if !versioned {
            if access == Access::Read {
                return Ok(None);
            }
            // Create, in an order that any crash leaves openable: the record log (empty), then
            // VERSION, then the journal (the index, rebuilt from the log whenever it is missing).
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
        let write = access == Access::Write;
        if !has_journal {
            if !write && read_from(&log_path, 0)?.records.is_empty() {
                return Ok(None);
            }
            if write {
                crate::durable::create_private_dir(&jdir).map_err(|source| StateError::Io {
                    path: jdir.clone(),
                    what: "creating the journal",
                    source,
                })?;
                sync_dir(root)?;
            }
        }
        let mut rebuilt = None;
        let kv = if !write {
            // A reader writes nothing: an index it cannot use (missing, damaged, from an older
            // wf) is rebuilt in memory from the record log, and the next writer rebuilds it on
            // disk.
            if !has_journal || journal::holds_sled(&jdir) {
                Kv::memory(&jdir)
            } else {
                match Kv::open_read(&jdir) {
                    Ok(kv) => kv,
                    Err(StateError::Corrupt(_)) => Kv::memory(&jdir),
                    Err(e) => return Err(e),
                }
            }
        } else if journal::holds_sled(&jdir) {
            // An index sled wrote (wf before issue #22): derived data of an older layout,
            // rebuilt from the record log provided the log reads cleanly.
            wal::scan(&log_path, 0, |_, _, _| Ok(()))?;
            std::fs::remove_dir_all(&jdir).map_err(|source| StateError::Io {
                path: jdir.clone(),
                what: "removing an index of an older layout",
                source,
            })?;
            fresh_index(root, &jdir)?
        } else {
            match Kv::open(&jdir) {
                Ok(kv) => {
                    if !has_journal {
                        kv.sync_files()?;
                    }
                    kv
                }
                // The index's files are damaged. The record log holds every record: set the
                // index aside — its bytes kept — and rebuild it, provided the whole log reads
                // cleanly.
                Err(StateError::Corrupt(why)) => {
                    wal::scan(&log_path, 0, |_, _, _| Ok(()))?;
                    let aside = root.join(format!(
                        "journal.broken-{}",
                        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
                    ));
                    std::fs::rename(&jdir, &aside).map_err(|source| StateError::Io {
                        path: jdir.clone(),
                        what: "setting a damaged journal index aside",
                        source,
                    })?;
                    rebuilt = Some((aside, why));
                    fresh_index(root, &jdir)?
                }
                Err(e) => return Err(e),
            }
        };
        let kv = match kv.get(K_SCHEMA)? {
            None if kv.is_empty() => {
                let mut kv = kv;
                init_index(&mut kv)?;
                kv
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
                let layout = kv
                    .get(K_LAYOUT)?
                    .and_then(|v| v.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()))
                    .map_or(1, u32::from_le_bytes);
                if layout > LAYOUT {
                    return Err(StateError::Newer(format!(
                        "the journal index in {} has layout {layout}, newer than this wf reads \
                         ({LAYOUT}); upgrade wf (nothing was changed)",
                        root.display()
                    )));
                }
                if layout < LAYOUT && !write {
                    let mut kv = Kv::memory(&jdir);
                    init_index(&mut kv)?;
                    kv
                } else if layout < LAYOUT {
                    // An index an older wf built: derived data, so it is rebuilt from the record
                    // log, provided the log reads cleanly (nothing else changes).
                    wal::scan(&log_path, 0, |_, _, _| Ok(()))?;
                    drop(kv);
                    std::fs::remove_dir_all(&jdir).map_err(|source| StateError::Io {
                        path: jdir.clone(),
                        what: "removing an index of an older layout",
                        source,
                    })?;
                    let mut kv = fresh_index(root, &jdir)?;
                    init_index(&mut kv)?;
                    kv
                } else {
                    kv
                }
            }
        };
        let applied = kv.get(K_LOGPOS)?.and_then(|v| u64_of(&v)).unwrap_or(0);
        let last_seq = kv.get(K_SEQ)?.and_then(|v| u64_of(&v)).unwrap_or(0);
        let next_run = kv.get(K_NEXT_RUN)?.and_then(|v| u64_of(&v)).unwrap_or(1);
        let reader = std::fs::File::open(&log_path).map_err(|source| StateError::Io {
            path: log_path.clone(),
            what: "opening the record log",
            source,
        })?;
        // (A log shorter than what was applied is refused by the replay below, which says so.)
        let long_enough = reader.metadata().map_or(true, |m| m.len() >= applied);
        if let (Some(v), true) = (kv.get(K_TAIL)?, long_enough) {
            if let Some((off, len)) = spans_of(&v).next() {
                wal::read_span(&reader, &log_path, off, len)?;
            }
        }
        let mut store = Store {
            kv,
            root: root.to_path_buf(),
            log: None,
            detail: std::cell::OnceCell::new(),
            log_path: log_path.clone(),
            last_seq,
            next_run,
            snaps: HashMap::new(),
            fsync: true,
            live: None,
            rebuilt,
            poisoned: None,
            watcher: None,
        };
        let end = store.replay_tail(applied)?;
        if access == Access::Write {
            // A writer cuts a torn last write off before it appends, and keeps both indexes.
            store.log = Some(RecordLog::open(&log_path, end, false)?);
            store.detail()?;
        }
        // (A reader that checked the whole log does not note it: readers write nothing.)
        if scanned && write {
            wal::mark_verified(root, &log_path);
        }
        Ok(Some(store))
    }

    /// Apply the records the log holds after `from` and the index does not (its tail lost to a
    /// crash or a power cut, or the whole index when it is rebuilt), a batch at a time: each
    /// batch is atomic and records how far it got, so a crash midway resumes from there.
    /// Returns the end of the log's valid frames.
    fn replay_tail(&mut self, from: u64) -> Result<u64, StateError> {
        let path = self.log_path.clone();
        let mut pending: Vec<(Record, (u64, u32))> = Vec::new();
        let mut checked = false;
        let (end, _) = wal::scan(&path, from, |r, off, len| {
            if !checked {
                checked = true;
                if r.seq <= self.last_seq {
                    return Err(StateError::Corrupt(format!(
                        "the journal in {} and its record log disagree (record {} is in both); \
                         restore the state directory from a backup or move it away",
                        self.root.display(),
                        r.seq
                    )));
                }
            }
            pending.push((r, (off, len)));
            if pending.len() >= REPLAY_BATCH
                || pending
                    .first()
                    .is_some_and(|(_, (first, _))| off + len as u64 - first >= REPLAY_BYTES)
            {
                self.apply_replayed(std::mem::take(&mut pending))?;
            }
            Ok(())
        })?;
        if !pending.is_empty() {
            self.apply_replayed(pending)?;
        }
        Ok(end)
    }

    fn apply_replayed(&mut self, records: Vec<(Record, (u64, u32))>) -> Result<(), StateError> {
        let Some(&(_, (off, len))) = records.last() else {
            return Ok(());
        };
        let logpos = off + len as u64;
        let mut batches: Vec<Batch> = Vec::new();
        let mut at: HashMap<RunId, usize> = HashMap::new();
        for (r, loc) in records {
            let i = *at.entry(r.run).or_insert_with(|| {
                batches.push(Batch {
                    run: r.run,
                    new: matches!(r.entry, Entry::RunStarted { .. }),
                    records: Vec::new(),
                    locs: Vec::new(),
                });
                batches.len() - 1
            });
            batches[i].records.push(r);
            batches[i].locs.push(loc);
        }
        let next = batches
            .iter()
            .map(|b| b.run + 1)
            .max()
            .unwrap_or(self.next_run)
            .max(self.next_run);
        self.write_records(batches, Some(next), false, Some(logpos))?;
        Ok(())
    }

    /// When this open rebuilt a damaged index from the record log: where the old one was set
    /// aside, and why.
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

    /// The detail index, opened (and brought up to the end of the log) on first use.
    fn detail(&self) -> Result<&Detail, StateError> {
        if self.detail.get().is_none() {
            let d = Detail::open(&self.root, &self.log_path, self.log.is_some())?;
            let _ = self.detail.set(d);
        }
        self.detail.get().ok_or_else(|| {
            StateError::Corrupt("the detail index did not open; this is a bug".into())
        })
    }

    fn detail_mut(&mut self) -> Result<&mut Detail, StateError> {
        self.detail()?;
        self.detail.get_mut().ok_or_else(|| {
            StateError::Corrupt("the detail index did not open; this is a bug".into())
        })
    }
}

impl Drop for Store {
    /// Fold a grown delta log before closing, so the next open has nothing to replay from the record log
    /// (if this does not happen — a crash — the next open replays instead).
    fn drop(&mut self) {
        // The detail index is closed first: its lock must be free by the time `journal/`'s is,
        // since the next process opens them in that order.
        if let Some(mut d) = self.detail.take() {
            let _ = d.close();
            drop(d);
        }
        let _ = self.kv.close();
        // A writer verified the whole log at open (or found it as wf left it) and appended only
        // whole frames since: the log as it is now needs no full check at the next open.
        if self.log.is_some() && self.poisoned.is_none() {
            wal::mark_verified(&self.root, &self.log_path);
        }
    }
}
