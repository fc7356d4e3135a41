//! The typed journal: the engine proposes entries, the store checks them against the pure state
//! machine (and the detail index, `detail`, checks a prune's checkpoint), appends them to the
//! record log (the durable truth, `wal`), then updates the indexes in sled, and only then returns.
//!
//! The indexes are kept small on purpose: sled's open time grows with its number of pages (and of
//! page updates not yet consolidated), and a leaf holds at most 16 keys, so a command's start-up
//! cost is proportional to the keys it must open. Records live only in the record log. This
//! index, `journal/`, holds what `wf history` and `wf status` need — about two keys per run — and
//! `journal/detail/` the rest (where each run's records are, its checkpoint rows), opened only by
//! commands that need it. Key layout (big-endian numbers so keys sort by number):
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::checkpoints::{CacheEntry, Located};
use crate::codec::{self, CodecError};
use crate::detail::{spans_of, Detail, Loc, Staged};
use crate::durable::{exists, sync_dir};
use crate::error::StateError;
use crate::journal::{Kv, Write};
use crate::live::LiveLog;
use crate::machine::{self, RunSnapshot, RunState, RunView};
use crate::record::{Entry, Record, RunId};
use crate::wal::{self, read_from, RecordLog};

/// The on-disk schema this wf writes and the newest it reads.
pub const SCHEMA: u32 = 1;

const K_SCHEMA: &[u8] = b"m:schema";
/// A text file beside the journal naming its schema, readable without opening sled.
const VERSION_FILE: &str = "VERSION";
/// The record log: every record, the durable truth sled is built from (`wal`).
const LOG_FILE: &str = "journal.log";
const K_LOGPOS: &[u8] = b"m:logpos";
/// The place (offset u64 LE, length u32 LE) of the last frame the index applied: checked at
/// every open, so a log that was replaced or overwritten is refused before anything is written.
const K_TAIL: &[u8] = b"m:tail";
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

pub(crate) fn key_rec_prefix(prefix: u8, run: RunId, seq: u64) -> Vec<u8> {
    let mut k = key_rec(run, seq);
    k[0] = prefix;
    k
}

fn key_outbox(run: RunId, seq: u64, channel: &str) -> Vec<u8> {
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
fn key_task(prefix: u8, task: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(task.len() + 1);
    k.push(prefix);
    k.extend_from_slice(task.as_bytes());
    k
}

/// The bucket key of a hash or fingerprint: its first four characters (hex: 65,536 buckets), so
/// the number of keys stays bounded however many objects there are.
fn key_bucket(prefix: u8, hash: &str) -> Vec<u8> {
    let b = hash.as_bytes();
    let mut k = Vec::with_capacity(5);
    k.push(prefix);
    k.extend_from_slice(&b[..b.len().min(4)]);
    k
}

/// (Objects have no index: `wf gc` marks the objects of the checkpoints that stay and sweeps
/// the rest, so no reference count is rewritten on every commit.)
///
/// The layout of the index this wf writes. An index with an older layout is rebuilt from the
/// record log at open (the log's format did not change).
const LAYOUT: u32 = 4;
const K_LAYOUT: &[u8] = b"m:layout";
/// Task views per `t` chunk: a commit rewrites only the chunks of the tasks it touched.
const TASKS_PER_CHUNK: usize = 16;
/// Records applied per sled batch when the index is rebuilt from the log.
const REPLAY_BATCH: usize = 20_000;
/// ... or per this many bytes of the record log, whichever comes first: a bounded sled batch
/// seals a bounded number of sled's IO buffers (see `journal`, issue #23).
const REPLAY_BYTES: u64 = 1 << 20;

pub(crate) fn u64_of(bytes: &[u8]) -> Option<u64> {
    let b: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

pub(crate) fn run_of_key(key: &[u8]) -> Option<RunId> {
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
    /// The detail index (records' places, checkpoint rows): opened when first needed, so that
    /// commands that read only run summaries never pay for it.
    detail: std::cell::OnceCell<Detail>,
    log_path: PathBuf,
    fsync: bool,
    live: Option<LiveLog>,
    /// Why an index write failed after its records were appended to the log: this handle then
    /// refuses to write (the log is ahead of the indexes; reopening replays it into them).
    poisoned: Option<String>,
}

pub(crate) fn decode_err(root: &Path, what: &str, e: CodecError) -> StateError {
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
const OWN_NAMES: [&str; 9] = [
    "WORKFLOW",
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
        let n = name.to_string_lossy();
        let aside = n.starts_with("journal.broken-") || n.starts_with("WORKFLOW.tmp.");
        if !aside && !OWN_NAMES.iter().any(|n| name == *n) {
            return Err(StateError::Foreign(root.to_path_buf()));
        }
    }
    Ok(())
}

/// What `inspect` found.
struct Inspected {
    has_journal: bool,
    versioned: bool,
    /// Every frame of the record log was checked (it had changed since wf last verified it).
    scanned: bool,
}

/// The names wf keeps in a state directory and what each must be: a directory or a regular file.
const EXPECTED: [(&str, bool); 10] = [
    ("WORKFLOW", false),
    ("journal", true),
    ("logs", true),
    ("objects", true),
    ("journal.log", false),
    ("VERSION", false),
    ("VERSION.tmp", false),
    ("lock", false),
    ("live.jsonl", false),
    ("live.jsonl.tmp", false),
];

/// Refuse a state directory holding a symbolic link (or another kind of file) where wf keeps
/// its own files and directories: at the top, in the index directories and among the object
/// store's fan-out directories. (Deeper names — a run's log directory, an attempt's log — are
/// checked where they are used: every access below the state directory is made without
/// following a link, `safe`.)
fn planted_check(root: &Path) -> Result<(), StateError> {
    use rustix::fs::FileType;
    let d = match crate::safe::dir(root, Path::new(""), false) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A link to nothing (a disk not mounted) is not "no state yet": refuse it rather than
            // report no runs or create anything behind it.
            return match std::fs::read_link(root) {
                Ok(target) => Err(StateError::DanglingLink {
                    path: root.to_path_buf(),
                    target,
                }),
                Err(_) => Ok(()),
            };
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
            return Err(StateError::NotADirectory(root.to_path_buf()))
        }
        Err(e) => {
            return Err(crate::safe::state_err(root, "opening the state directory")(
                e,
            ))
        }
    };
    let io = |p: &Path| crate::safe::state_err(p, "looking at the state directory");
    for (name, is_dir) in EXPECTED {
        let kind = crate::safe::kind_at(&d, Path::new(name)).map_err(io(&root.join(name)))?;
        let ok = match kind {
            None => true,
            Some(k) if is_dir => {
                k == FileType::Directory || (name == "journal" && k == FileType::RegularFile)
            }
            Some(k) => k == FileType::RegularFile,
        };
        if !ok {
            return Err(crate::safe::refusal(&root.join(name)));
        }
    }
    for sub in ["journal", "journal/detail", "objects"] {
        let fd = match crate::safe::dir(root, Path::new(sub), false) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // `journal` as a regular file is reported as damage by the open.
            Err(_) if sub == "journal/detail" || root.join("journal").is_file() => continue,
            Err(e) => return Err(io(&root.join(sub))(e)),
        };
        for (name, kind) in crate::safe::list(&fd).map_err(io(&root.join(sub)))? {
            // In the object store, `tmp` and the fan-out directories (two hex digits) must be
            // directories.
            let n = name.to_string_lossy();
            let fan_out = sub == "objects"
                && (n == "tmp" || (n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit())));
            if kind == FileType::Symlink || (fan_out && kind != FileType::Directory) {
                return Err(crate::safe::refusal(&root.join(sub).join(name)));
            }
        }
    }
    Ok(())
}

/// Everything about a state directory that can be decided without writing a byte or opening
/// sled: links planted where wf keeps its own names, `VERSION` (damaged, newer), a directory
/// that is not wf's, a missing or damaged record log (every frame is checked unless the log is
/// exactly as wf last verified it). Ok for a directory that does not exist.
fn inspect(root: &Path) -> Result<Inspected, StateError> {
    let jdir = root.join("journal");
    let log_path = root.join(LOG_FILE);
    let version_path = root.join(VERSION_FILE);
    planted_check(root)?;
    let has_journal = exists(&jdir)?;
    let has_log = exists(&log_path)?;
    let versioned = exists(&version_path)?;
    if has_journal && !jdir.is_dir() {
        return Err(StateError::Corrupt(format!(
            "{} is not a directory; this state directory is damaged — move it away (nothing was changed)",
            jdir.display()
        )));
    }
    let mut scanned = false;
    if versioned {
        read_version(root, &version_path)?;
        if !has_log {
            return Err(StateError::Corrupt(format!(
                "{} is missing, and it holds every record of the journal; restore the state \
                 directory from a backup or move it away (nothing was changed)",
                log_path.display()
            )));
        }
        scanned = wal::check_verified(root, &log_path)?;
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
    }
    Ok(Inspected {
        has_journal,
        versioned,
        scanned,
    })
}

/// Decide, without writing anything (no lock, no sled), whether the state directory `root` may
/// be used: a writer calls this before it takes the lock, so a state that is refused — foreign,
/// newer, damaged, or holding planted links — is left exactly as it was, `lock` included.
pub fn precheck(root: &Path) -> Result<(), StateError> {
    inspect(root).map(|_| ())
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
    let mut f = crate::safe::open(root, Path::new("VERSION.tmp"), crate::safe::How::Replace)
        .map_err(crate::safe::state_err(&tmp, "creating the state version"))?;
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
        // Everything that can be checked without opening sled is checked first.
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
        };
        let kv = match kv.get(K_SCHEMA)? {
            None if kv.is_empty() => {
                init_index(&kv)?;
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
                if layout < LAYOUT {
                    // An index an older wf built: derived data, so it is rebuilt from the record
                    // log, provided the log reads cleanly (nothing else changes).
                    wal::scan(&log_path, 0, |_, _, _| Ok(()))?;
                    drop(kv);
                    std::fs::remove_dir_all(&jdir).map_err(|source| StateError::Io {
                        path: jdir.clone(),
                        what: "removing an index of an older layout",
                        source,
                    })?;
                    let kv = fresh_index(root, &jdir)?;
                    init_index(&kv)?;
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
        };
        let end = store.replay_tail(applied)?;
        if access == Access::Write {
            // A writer cuts a torn last write off before it appends, and keeps both indexes.
            store.log = Some(RecordLog::open(&log_path, end, false)?);
            store.detail()?;
        }
        if scanned {
            wal::mark_verified(root, &log_path);
        }
        Ok(Some(store))
    }

    /// Apply the records the log holds after `from` and sled does not (sled's tail lost to a
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
        // One group per run (entries of a run named twice are kept together, in order): each run
        // is staged once against its current state.
        let mut merged: Vec<(RunId, Vec<Entry>)> = Vec::new();
        let mut at_run: HashMap<RunId, usize> = HashMap::new();
        for (run, entries) in batches {
            let i = *at_run.entry(run).or_insert_with(|| {
                merged.push((run, Vec::new()));
                merged.len() - 1
            });
            merged[i].1.extend(entries);
        }
        let batches = merged
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
                Batch {
                    run,
                    records,
                    new: new_run == Some(run),
                    locs: Vec::new(),
                }
            })
            .collect();
        self.write_records(batches, new_run.map(|r| r + 1), durable, None)
    }

    /// Import consecutive records of one run exactly as they were journaled (same sequence
    /// numbers and times), checked against the state machine and indexed like new ones (`wf state
    /// import`, which feeds an export in journal order). A batch starting with `RunStarted` starts
    /// the run; any other continues it. Every record must come after everything journaled so far,
    /// so the record log stays in sequence order.
    pub fn import_run(&mut self, records: Vec<Record>) -> Result<(), StateError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let run = first.run;
        let new = matches!(first.entry, Entry::RunStarted { .. });
        let mut last = self.last_seq;
        for r in &records {
            if r.run != run || r.seq <= last {
                return Err(StateError::Corrupt(format!(
                    "the import's record {} (run {}) comes after record {last}; an import must be \
                     in journal order (as `wf state export` writes it)",
                    r.seq, r.run
                )));
            }
            last = r.seq;
        }
        let next = (run + 1).max(self.next_run);
        let batch = Batch {
            run,
            records,
            new,
            locs: Vec::new(),
        };
        self.write_records(vec![batch], Some(next), true, None)?;
        Ok(())
    }

    /// Every record in the record log, in journal order (sequence order), without loading them
    /// all (`wf state export`).
    pub fn each_record(
        &self,
        mut each: impl FnMut(Record) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        wal::scan(&self.log_path, 0, |r, _, _| each(r))?;
        Ok(())
    }

    /// Check records against the state machine, index them and write them in one batch.
    /// Records come either new (appended to the record log first — fdatasynced when `durable` —
    /// then indexed) or `replayed` from the log up to that offset (with their places in it).
    fn write_records(
        &mut self,
        batches: Vec<Batch>,
        next_run: Option<RunId>,
        durable: bool,
        replayed: Option<u64>,
    ) -> Result<Vec<Record>, StateError> {
        if batches.iter().all(|b| b.records.is_empty()) {
            return Ok(Vec::new());
        }
        if let Some(why) = &self.poisoned {
            return Err(StateError::Corrupt(format!(
                "an earlier update of the journal index in {} failed ({why}); the record log has \
                 every record — run the command again and the index is brought up to date",
                self.root.display()
            )));
        }
        let result = self.write_records_inner(batches, next_run, durable, replayed);
        if result.is_err() {
            // The caches may be ahead of the index: reload from disk at the next access.
            self.snaps.clear();
        }
        result
    }

    fn write_records_inner(
        &mut self,
        batches: Vec<Batch>,
        next_run: Option<RunId>,
        durable: bool,
        replayed: Option<u64>,
    ) -> Result<Vec<Record>, StateError> {
        let mut seq = self.last_seq;
        let mut writes: Vec<Write> = Vec::new();
        let mut all = Vec::new();
        let mut done: Vec<(RunId, RunSnapshot)> = Vec::new();
        // Per run: how many of `all` are its records, and their places in the log if replayed.
        let mut counts: Vec<(RunId, usize, Vec<Loc>)> = Vec::new();
        let mut cache: HashMap<String, (u64, codec::CacheRow)> = HashMap::new();
        let mut by_task: HashMap<Vec<u8>, (u64, Vec<u8>)> = HashMap::new();
        let mut last = (0, 0);
        for b in batches {
            if b.records.is_empty() {
                continue;
            }
            let run = b.run;
            // A sweep's prunes change nothing of a run's state, and the detail index checks each
            // against its checkpoint row (which names the run, task and attempt): no need to
            // load the run.
            let prunes_only = !b.new
                && b.records
                    .iter()
                    .all(|r| matches!(r.entry, Entry::Prune { .. }));
            if prunes_only {
                for rec in &b.records {
                    seq = seq.max(rec.seq);
                    last = (run, rec.seq);
                }
                counts.push((run, b.records.len(), b.locs));
                all.extend(b.records);
                continue;
            }
            let (snap, records) = self.stage(run, b.records, b.new, &mut writes)?;
            for rec in &records {
                index_main(rec, &mut writes, &mut cache, &mut by_task);
                seq = seq.max(rec.seq);
                last = (run, rec.seq);
            }
            counts.push((run, records.len(), b.locs));
            all.extend(records);
            done.push((run, snap));
        }
        self.settle_cache(cache, &mut writes)?;
        writes.extend(by_task.into_iter().map(|(k, (_, v))| (k, Some(v))));
        writes.push((K_SEQ.to_vec(), Some(seq.to_le_bytes().to_vec())));
        let mut lastv = last.0.to_le_bytes().to_vec();
        lastv.extend_from_slice(&last.1.to_le_bytes());
        writes.push((K_LAST.to_vec(), Some(lastv)));
        if let Some(next) = next_run {
            writes.push((K_NEXT_RUN.to_vec(), Some(next.to_le_bytes().to_vec())));
        }
        let (logpos, tail) = match replayed {
            // A replay into this index only (the detail index catches up by itself).
            Some(end) => {
                let tail = counts
                    .iter()
                    .filter_map(|(_, _, locs)| locs.last().copied())
                    .max_by_key(|(off, _)| *off);
                (end, tail)
            }
            None => {
                // The detail index checks what it must (a prune's checkpoint row) before the
                // append, like the state machine above.
                let mut staged = Staged::default();
                {
                    let detail = self.detail()?;
                    for rec in &all {
                        detail.stage(rec, &mut staged)?;
                    }
                }
                // Write-ahead: the records are in the record log (and synced) before either
                // index has them; neither is flushed nor fsynced here — what they lose, the
                // next open replays.
                let Some(log) = self.log.as_mut() else {
                    return Err(StateError::Corrupt(
                        "a reader tried to write the journal; this is a bug".into(),
                    ));
                };
                let locs = log.append(&all, durable)?;
                let logpos = log.end();
                // Journaled: these sequence numbers are taken, whatever happens to the indexes.
                self.last_seq = seq;
                if let Some(next) = next_run {
                    self.next_run = next;
                }
                let tail = locs.last().copied();
                let mut it = locs.into_iter();
                let places = counts
                    .iter()
                    .map(|(run, n, _)| (*run, it.by_ref().take(*n).collect()))
                    .collect();
                if let Err(e) = self
                    .detail_mut()
                    .and_then(|d| d.commit(staged, places, logpos))
                {
                    self.poisoned = Some(e.to_string());
                    return Err(e);
                }
                (logpos, tail)
            }
        };
        if let Some((off, len)) = tail {
            let mut v = off.to_le_bytes().to_vec();
            v.extend_from_slice(&len.to_le_bytes());
            writes.push((K_TAIL.to_vec(), Some(v)));
        }
        writes.push((K_LOGPOS.to_vec(), Some(logpos.to_le_bytes().to_vec())));
        if let Err(e) = self.kv.commit(writes, false, false) {
            if replayed.is_none() {
                self.poisoned = Some(e.to_string());
            }
            return Err(e);
        }
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

    /// The detail index, opened (and brought up to the end of the log) on first use.
    fn detail(&self) -> Result<&Detail, StateError> {
        if self.detail.get().is_none() {
            let d = Detail::open(&self.root, &self.log_path)?;
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

    /// Check one run's entries against the state machine and add their writes (the run summary,
    /// the chunks of task views they changed, the active index) to the batch.
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
        for rec in &records {
            machine::apply(&mut next, rec)?;
        }
        let next = next.ok_or(StateError::Illegal(machine::Illegal::NoRun(run)))?;
        let active = matches!(next.run.state, RunState::Running | RunState::Waiting);
        if !new_run && records.iter().all(|r| machine::leaves_state(&r.entry)) {
            // Nothing of the run's state changed (a sweep's prunes, metrics, checkpoints).
            return Ok((next, records));
        }
        writes.push((key_run(b'r', run), Some(codec::encode_run(&next.run, None))));
        // The task views, in chunks: only those of the tasks these records touched (all of them
        // for a new run or a run-level entry).
        let n = next.tasks.len().div_ceil(TASKS_PER_CHUNK);
        let mut chunks: Vec<usize> = if new_run || records.iter().any(|r| r.entry.task().is_none())
        {
            (0..n).collect()
        } else {
            records
                .iter()
                .filter_map(|r| r.entry.task().and_then(|t| next.task_index(t)))
                .map(|i| i / TASKS_PER_CHUNK)
                .collect()
        };
        chunks.sort_unstable();
        chunks.dedup();
        for c in chunks {
            let end = ((c + 1) * TASKS_PER_CHUNK).min(next.tasks.len());
            if let Some(tasks) = next.tasks.get(c * TASKS_PER_CHUNK..end) {
                writes.push((
                    key_chunk(b't', run, c as u32),
                    Some(codec::encode_tasks(tasks)),
                ));
            }
        }
        if active != was_active {
            writes.push((key_run(b'a', run), active.then(Vec::new)));
        }
        Ok((next, records))
    }

    /// Write the cache keys a batch journaled into their buckets.
    fn settle_cache(
        &self,
        cache: HashMap<String, (u64, codec::CacheRow)>,
        writes: &mut Vec<Write>,
    ) -> Result<(), StateError> {
        let mut buckets: HashMap<Vec<u8>, Vec<codec::CacheRow>> = HashMap::new();
        for (fp, (_, row)) in cache {
            buckets.entry(key_bucket(b'f', &fp)).or_default().push(row);
        }
        for (key, rows) in buckets {
            let mut all = match self.kv.get(&key)? {
                Some(v) => codec::decode_cache(&v)
                    .map_err(|e| decode_err(&self.root, "a cache record", e))?,
                None => Vec::new(),
            };
            for row in rows {
                match all.iter_mut().find(|r| r.0 == row.0) {
                    Some(r) => *r = row,
                    None => all.push(row),
                }
            }
            writes.push((key, Some(codec::encode_cache(&all))));
        }
        Ok(())
    }

    /// The checkpoints of a run, in journal order.
    pub fn checkpoints(&self, run: RunId) -> Result<Vec<Located>, StateError> {
        self.detail()?.checkpoints(run)
    }

    /// At least `limit` checkpoints (whole chunks), newest first, journaled before `before`
    /// (run, seq: the last one a previous page gave) — or the newest, without it. Paging keeps
    /// memory bounded and lets the caller write between pages.
    pub fn checkpoints_page(
        &self,
        before: Option<(RunId, u64)>,
        limit: usize,
    ) -> Result<Vec<Located>, StateError> {
        self.detail()?.checkpoints_page(before, limit)
    }

    /// The latest done attempt with this fingerprint.
    pub fn cache_lookup(&self, fingerprint: &str) -> Result<Option<CacheEntry>, StateError> {
        let Some(v) = self.kv.get(&key_bucket(b'f', fingerprint))? else {
            return Ok(None);
        };
        let rows =
            codec::decode_cache(&v).map_err(|e| decode_err(&self.root, "a cache record", e))?;
        Ok(rows
            .into_iter()
            .find(|r| r.0 == fingerprint)
            .map(|(_, run, attempt, task)| CacheEntry { run, attempt, task }))
    }

    /// The run and attempt of the latest start of a task of this name (in any run), from its
    /// cache decisions: when a task without outputs last ran.
    pub fn last_start(&self, task: &str) -> Result<Option<(RunId, u32)>, StateError> {
        let Some(v) = self.kv.get(&key_task(b'k', task))? else {
            return Ok(None);
        };
        let attempt = v
            .get(8..12)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes);
        match (u64_of(&v), attempt) {
            (Some(run), Some(attempt)) => Ok(Some((run, attempt))),
            _ => Err(decode_err(
                &self.root,
                "a task's last start",
                CodecError::Corrupt("truncated"),
            )),
        }
    }

    /// The latest cache-key components journaled for a task of this name (in any run), and the
    /// run and attempt whose decision journaled them: what a cache miss is explained against.
    pub fn last_parts(&self, task: &str) -> Result<Option<codec::Parts>, StateError> {
        match self.kv.get(&key_task(b'p', task))? {
            Some(v) => codec::decode_parts(&v)
                .map(Some)
                .map_err(|e| decode_err(&self.root, "a task's cache-key components", e)),
            None => Ok(None),
        }
    }

    /// Alerts waiting for delivery: (run, seq of the alert, channel), oldest first.
    pub fn outbox(&self) -> Result<Vec<(RunId, u64, String)>, StateError> {
        self.kv
            .scan(b"x", false)
            .map(|pair| {
                let (k, _) = pair?;
                let run = run_of_key(&k).unwrap_or(0);
                let channel = String::from_utf8_lossy(k.get(17..).unwrap_or_default()).into_owned();
                Ok((run, seq_of_key(&k), channel))
            })
            .collect()
    }

    /// One record of a run.
    pub fn record(&self, run: RunId, seq: u64) -> Result<Option<Record>, StateError> {
        Ok(self.records(run)?.into_iter().find(|r| r.seq == seq))
    }

    /// The run's state, read from the index: its summary and its chunks of task views.
    fn load(&self, run: RunId) -> Result<Option<RunSnapshot>, StateError> {
        let Some(v) = self.kv.get(&key_run(b'r', run))? else {
            return Ok(None);
        };
        let view =
            codec::decode_run_view(&v).map_err(|e| decode_err(&self.root, "a run record", e))?;
        let mut tasks = Vec::new();
        for pair in self.kv.scan(&key_run(b't', run), false) {
            let (_, v) = pair?;
            tasks.extend(
                codec::decode_tasks(&v).map_err(|e| decode_err(&self.root, "a task record", e))?,
            );
        }
        Ok(Some(RunSnapshot { run: view, tasks }))
    }

    /// Load the run's state into the cache; false when there is no such run.
    fn cache(&mut self, run: RunId) -> Result<bool, StateError> {
        if self.snaps.contains_key(&run) {
            return Ok(true);
        }
        let Some(snap) = self.load(run)? else {
            return Ok(false);
        };
        self.snaps.insert(run, snap);
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
        Ok(self
            .load(run)?
            .map(|s| s.tasks.into_iter().map(|t| t.name).collect())
            .unwrap_or_default())
    }

    /// A run's summary.
    pub fn run(&self, run: RunId) -> Result<Option<RunView>, StateError> {
        match self.kv.get(&key_run(b'r', run))? {
            None => Ok(None),
            Some(v) => codec::decode_run_view(&v)
                .map(Some)
                .map_err(|e| decode_err(&self.root, "a run record", e)),
        }
    }

    /// Run summaries, newest first.
    pub fn runs(&self) -> impl Iterator<Item = Result<RunView, StateError>> + '_ {
        self.kv.scan(b"r", true).map(move |pair| {
            let (_, v) = pair?;
            codec::decode_run_view(&v).map_err(|e| decode_err(&self.root, "a run record", e))
        })
    }

    /// Run summaries, oldest first.
    pub fn runs_oldest_first(&self) -> impl Iterator<Item = Result<RunView, StateError>> + '_ {
        self.kv.scan(b"r", false).map(move |pair| {
            let (_, v) = pair?;
            codec::decode_run_view(&v).map_err(|e| decode_err(&self.root, "a run record", e))
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

    /// Every record of a run, in journal order, read from the record log where the index says
    /// they are.
    pub fn records(&self, run: RunId) -> Result<Vec<Record>, StateError> {
        self.detail()?.records(run)
    }
}

/// One run's records in a batch: new (places filled in after the append) or replayed from the
/// log (with their places).
struct Batch {
    run: RunId,
    records: Vec<Record>,
    new: bool,
    locs: Vec<(u64, u32)>,
}

/// What a record changes in this index besides the run's state: the alert outbox, the cache,
/// and (`by_task`: key → the latest seq and value) a task's latest start and cache-key parts.
fn index_main(
    rec: &Record,
    writes: &mut Vec<Write>,
    cache: &mut HashMap<String, (u64, codec::CacheRow)>,
    by_task: &mut HashMap<Vec<u8>, (u64, Vec<u8>)>,
) {
    // The latest in journal order wins (a replay applies a batch run by run).
    let mut latest = |key: Vec<u8>, value: Vec<u8>| {
        if by_task.get(&key).is_none_or(|(seq, _)| *seq < rec.seq) {
            by_task.insert(key, (rec.seq, value));
        }
    };
    match &rec.entry {
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
        Entry::CacheDecision {
            task,
            attempt,
            hit,
            parts,
            ..
        } => {
            if !hit {
                let mut v = rec.run.to_le_bytes().to_vec();
                v.extend_from_slice(&attempt.to_le_bytes());
                latest(key_task(b'k', task), v);
            }
            // No parts: the same as the task's previous ones.
            if !parts.is_empty() {
                latest(
                    key_task(b'p', task),
                    codec::encode_parts(rec.run, *attempt, parts),
                );
            }
        }
        // The latest in journal order wins (a replay applies a batch run by run).
        Entry::Fingerprint {
            task,
            attempt,
            fingerprint,
        } if cache.get(fingerprint).is_none_or(|(seq, _)| *seq < rec.seq) => {
            cache.insert(
                fingerprint.clone(),
                (
                    rec.seq,
                    (fingerprint.clone(), rec.run, *attempt, task.clone()),
                ),
            );
        }
        _ => {}
    }
}

/// A fresh, empty index directory (its files synced, so a power cut cannot leave them empty).
fn fresh_index(root: &Path, jdir: &Path) -> Result<Kv, StateError> {
    crate::durable::create_private_dir(jdir).map_err(|source| StateError::Io {
        path: jdir.to_path_buf(),
        what: "creating the journal",
        source,
    })?;
    sync_dir(root)?;
    let kv = Kv::open(jdir)?;
    kv.sync_files()?;
    Ok(kv)
}

/// Mark an empty index as this schema and layout.
fn init_index(kv: &Kv) -> Result<(), StateError> {
    kv.commit(
        vec![
            (K_SCHEMA.to_vec(), Some(SCHEMA.to_le_bytes().to_vec())),
            (K_LAYOUT.to_vec(), Some(LAYOUT.to_le_bytes().to_vec())),
        ],
        true,
        false,
    )
}

pub(crate) fn seq_of_key(k: &[u8]) -> u64 {
    k.get(9..17)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

impl Drop for Store {
    /// Leave sled's files current, so the next open has nothing to replay from the record log
    /// (if this does not happen — a crash — the next open replays instead).
    fn drop(&mut self) {
        // The detail index is closed first: its lock must be free by the time `journal/`'s is,
        // since the next process opens them in that order.
        if let Some(d) = self.detail.take() {
            let _ = d.flush();
            drop(d);
        }
        let _ = self.kv.flush();
        // A writer verified the whole log at open (or found it as wf left it) and appended only
        // whole frames since: the log as it is now needs no full check at the next open.
        if self.log.is_some() && self.poisoned.is_none() {
            wal::mark_verified(&self.root, &self.log_path);
        }
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

    #[test]
    fn a_prune_must_name_its_checkpoint_task_and_attempt() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join(".wf");
        let mut s = reopen(&root, Access::Write)?;
        let (run, _) = s.begin_run(vec![started(&["a"])])?;
        let recs = s.commit(
            run,
            vec![
                tr(
                    "a",
                    1,
                    TaskState::Pending,
                    TaskState::Running,
                    Reason::Started,
                ),
                Entry::Checkpoint {
                    task: "a".into(),
                    attempt: 1,
                    path: "out".into(),
                    hash: "00".repeat(32),
                    bytes: 1,
                    retention_secs: 60,
                    expires_at: Utc::now(),
                },
                tr(
                    "a",
                    1,
                    TaskState::Running,
                    TaskState::Done,
                    Reason::Succeeded,
                ),
            ],
        )?;
        let cseq = recs[1].seq;
        let prune = |task: &str, attempt: u32, checkpoint_seq: u64| Entry::Prune {
            task: task.into(),
            attempt,
            checkpoint_seq,
            path: "out".into(),
            hash: "00".repeat(32),
            bytes: 1,
            policy: "1m".into(),
        };
        let before = std::fs::metadata(root.join(LOG_FILE))?.len();
        for bad in [
            prune("b", 1, cseq),
            prune("a", 2, cseq),
            prune("a", 1, cseq + 7),
        ] {
            assert!(s.commit_many(vec![(run, vec![bad])]).is_err());
        }
        assert_eq!(
            std::fs::metadata(root.join(LOG_FILE))?.len(),
            before,
            "nothing journaled"
        );
        s.commit_many(vec![(run, vec![prune("a", 1, cseq)])])?;
        assert!(s.checkpoints(run)?[0].row.pruned.is_some());
        Ok(())
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

    /// Everything the precheck refuses, it refuses without writing a byte: no `lock`, no
    /// journal, nothing created or changed in the directory.
    #[test]
    fn precheck_refuses_without_writing() -> Result<(), Box<dyn std::error::Error>> {
        fn listing(root: &Path) -> Vec<(String, u64)> {
            let mut v: Vec<_> = walk(root);
            v.sort();
            v
        }
        fn walk(d: &Path) -> Vec<(String, u64)> {
            let mut out = Vec::new();
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let m = std::fs::symlink_metadata(e.path())
                    .map(|m| m.len())
                    .unwrap_or(0);
                out.push((e.path().display().to_string(), m));
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.extend(walk(&e.path()));
                }
            }
            out
        }
        let d = tempfile::tempdir()?;
        let root = d.path().join(".wf");
        {
            let mut s = Store::open(&root, Access::Write)?.ok_or("no store")?;
            s.begin_run(vec![started(&["a"])])?;
        }
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside)?;
        std::fs::create_dir_all(root.join("objects"))?;
        std::os::unix::fs::symlink(&outside, root.join("objects/tmp"))?;
        let before = listing(&root);
        let err = precheck(&root).err().ok_or("accepted")?;
        assert!(
            err.is_unreadable() && err.to_string().contains("objects/tmp"),
            "{err}"
        );
        assert_eq!(listing(&root), before);
        std::fs::remove_file(root.join("objects/tmp"))?;
        // Damage in the middle of the log, the index intact.
        let log = root.join(LOG_FILE);
        let mut bytes = std::fs::read(&log)?;
        bytes[20] ^= 0x10;
        std::fs::write(&log, &bytes)?;
        let before = listing(&root);
        let err = precheck(&root).err().ok_or("accepted")?;
        assert!(err.to_string().contains("damaged at byte"), "{err}");
        assert!(Store::open(&root, Access::Read).is_err());
        assert_eq!(listing(&root), before);
        bytes[20] ^= 0x10;
        std::fs::write(&log, &bytes)?;
        assert!(precheck(&root).is_ok());
        // A directory of someone else's files.
        let foreign = d.path().join("foreign");
        std::fs::create_dir(&foreign)?;
        std::fs::write(foreign.join("notes.txt"), b"mine")?;
        assert!(matches!(precheck(&foreign), Err(StateError::Foreign(_))));
        assert!(!foreign.join("lock").exists());
        Ok(())
    }
}
