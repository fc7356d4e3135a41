//! wf's index store: an ordered key-value map with atomic batches, in files wf writes itself.
//! Everything above this module sees bytes.
//!
//! An index directory (`journal/`, `journal/detail/`) holds one *generation*: a delta log
//! `index.G.log` (`delta`) whose header names the generation's sorted tables `index.N.tbl`
//! (`table`), oldest first, and whose frames are the batches committed since. A reader opens the
//! newest generation's log, reads its tables' indexes and replays its frames into memory — it
//! never writes, syncs, locks or creates anything, so it works on a read-only or full disk and
//! beside a running writer. A writer (one at a time: `index.lock`) appends a frame per batch and
//! folds the log into a new table once it grows (`flush`): the table is written to a temporary
//! name and synced, small tables are merged into larger ones (sizes fall geometrically, so a
//! key is rewritten O(log n) times), the next generation's log is written and renamed in, the
//! directory synced, and only then are the old files removed — every crash leaves one complete
//! generation, and a reader that finds a file of the generation it chose gone simply looks again.
//!
//! Durability: the record log is wf's durable truth, and the index records how far into it it has
//! applied (`m:logpos`), so the delta log is not synced per batch; whatever a crash or a power cut
//! takes from its end is replayed from the record log at the next open. Tables are synced before
//! any log names them. (Until issue #22 this was sled 0.34.7, which could deadlock inside a write,
//! issue #23, and wrote at every open, so readers could not run on a read-only disk.)
//!
//! Every write here still runs under the index watchdog (`watchdog`): a disk that stops answering
//! must not keep the state lock forever.

mod delta;
mod merge;
mod table;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use delta::{Manifest, TableRef};
use merge::{Merge, Source};
use table::{Table, TableIter, TableWriter};

use crate::error::StateError;
use crate::safe::{self, How, FILE_MODE};
use crate::watchdog::{self, guard};

/// A key-value pair read from the store.
pub type Pair = (Vec<u8>, Vec<u8>);
/// A write in a batch: a key and its new value, or `None` to remove it.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// A writer folds its delta log into a table once the log passes an eighth of its tables'
/// size, within these bounds (so a bulk writer over a large index — `wf gc` at a million
/// checkpoints — writes few, large tables: fewer merges, less rewriting)...
const FLUSH_BYTES: u64 = 8 << 20;
const FLUSH_BYTES_MAX: u64 = 64 << 20;
/// ... and when it closes, once the log passes this size, so that a reader's start-up (which
/// replays the log into memory) stays short.
const CLOSE_FLUSH_BYTES: u64 = 256 << 10;
/// Tables beyond this many are merged whatever their sizes.
const MAX_TABLES: usize = 8;
/// How many times a reader looks again when a writer replaced the generation it was opening.
const READ_RETRIES: usize = 20;

const LOCK: &str = "index.lock";

fn log_name(generation: u64) -> String {
    format!("index.{generation}.log")
}

fn table_name(id: u64) -> String {
    format!("index.{id}.tbl")
}

/// The generation of a delta log's name.
fn generation_of(name: &str) -> Option<u64> {
    name.strip_prefix("index.")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StateError {
    safe::state_err(path, what)
}

/// True when `dir` holds an index written by sled (wf before issue #22) and none of wf's own:
/// derived data of an older layout, rebuilt from the record log.
pub fn holds_sled(dir: &Path) -> bool {
    let Ok(fd) = safe::dir_in(dir, Path::new(""), None) else {
        return false;
    };
    let Ok(names) = safe::list(&fd) else {
        return false;
    };
    let ours = names
        .iter()
        .any(|(n, _)| n.to_str().and_then(generation_of).is_some());
    !ours && names.iter().any(|(n, _)| n == "db" || n == "conf")
}

/// The writer's side of an open index.
struct Writer {
    log: File,
    /// Where the next frame goes (the end of the log's sound frames).
    len: u64,
    /// The log's header length: a log holding nothing past it has nothing to fold.
    start: u64,
    _lock: File,
}

pub struct Kv {
    dir: Arc<Path>,
    fd: Option<OwnedFd>,
    manifest: Manifest,
    /// The generation's tables, oldest first.
    tables: Vec<Table>,
    /// The delta log's batches (and, for a reader or an index held in memory, its own), newest
    /// value per key; `None` removes the key.
    over: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Bytes of the delta log replayed or written (what a reader's open costs).
    log_bytes: u64,
    writer: Option<Writer>,
}

impl Drop for Kv {
    /// A writer folds a grown log into a table as it closes (best effort: a crash instead only
    /// leaves the log to replay).
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Kv {
    /// Open (or create) the index in `dir` for writing. A second writer gives `Busy`.
    pub fn open(dir: &Path) -> Result<Kv, StateError> {
        Kv::load(dir, true)
    }

    /// Open the index in `dir` for reading: nothing is written, created, locked or synced. A
    /// directory without an index reads as empty.
    pub fn open_read(dir: &Path) -> Result<Kv, StateError> {
        Kv::load(dir, false)
    }

    /// An empty index held only in memory (a reader rebuilding what it cannot open).
    pub fn memory(dir: &Path) -> Kv {
        Kv {
            dir: Arc::from(dir),
            fd: None,
            manifest: Manifest::default(),
            tables: Vec::new(),
            over: BTreeMap::new(),
            log_bytes: 0,
            writer: None,
        }
    }

    fn load(dir: &Path, write: bool) -> Result<Kv, StateError> {
        let shared: Arc<Path> = Arc::from(dir);
        let fd = safe::dir_in(dir, Path::new(""), None).map_err(io(dir, "opening the index"))?;
        let mut lock = if write {
            let f = safe::open_at(
                &fd,
                Path::new(LOCK),
                How::Update,
                FILE_MODE,
                &dir.join(LOCK),
            )
            .map_err(io(&dir.join(LOCK), "opening the index lock"))?;
            match f.try_lock() {
                Ok(()) => Some(f),
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StateError::Busy(dir.to_path_buf()))
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(io(&dir.join(LOCK), "locking the index")(e))
                }
            }
        } else {
            None
        };
        let mut last = None;
        for _ in 0..READ_RETRIES {
            match Kv::load_generation(&shared, &fd, &mut lock) {
                Ok(Some(kv)) => return Ok(kv),
                Ok(None) if write => {
                    let lock = lock.take().ok_or_else(bug)?;
                    return Kv::create(shared, fd, lock);
                }
                Ok(None) => {
                    let mut kv = Kv::memory(dir);
                    kv.fd = Some(fd);
                    return Ok(kv);
                }
                // A writer replaced the generation while this reader opened it: look again.
                Err(e @ StateError::Io { .. }) if !write && is_not_found(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        // A file the newest generation names stayed missing: damage (a reader rebuilds in memory).
        Err(match last {
            Some(e) => StateError::Corrupt(format!(
                "the index in {} names a file that is missing ({e}); move the journal directory \
                 away and wf rebuilds it from the record log (journal.log)",
                dir.display()
            )),
            None => StateError::Corrupt("the index could not be read".into()),
        })
    }

    /// Open the newest generation in `fd` (None: there is none).
    fn load_generation(
        dir: &Arc<Path>,
        fd: &OwnedFd,
        lock: &mut Option<File>,
    ) -> Result<Option<Kv>, StateError> {
        let write = lock.is_some();
        let names = safe::list(fd).map_err(io(dir, "listing the index"))?;
        let Some(generation) = names
            .iter()
            .filter_map(|(n, _)| n.to_str().and_then(generation_of))
            .max()
        else {
            return Ok(None);
        };
        let name = log_name(generation);
        let path = dir.join(&name);
        let how = if write { How::Update } else { How::Read };
        let log = safe::open_at(fd, Path::new(&name), how, FILE_MODE, &path)
            .map_err(io(&path, "opening the index log"))?;
        let bytes = read_all(&log, &path)?;
        let (manifest, start) = delta::read_header(&bytes, &path)?;
        if manifest.generation != generation {
            return Err(table::damaged(&path, "its header names another generation"));
        }
        let mut tables = Vec::with_capacity(manifest.tables.len());
        let mut checked = false;
        for r in &manifest.tables {
            let tname = table_name(r.id);
            let tpath = dir.join(&tname);
            let file = safe::open_at(fd, Path::new(&tname), How::Read, FILE_MODE, &tpath).map_err(
                |e| {
                    if write && e.kind() == std::io::ErrorKind::NotFound {
                        table::damaged(&tpath, "it is missing")
                    } else {
                        io(&tpath, "opening an index table")(e)
                    }
                },
            )?;
            let (t, whole) = Table::open(file, &tpath, r.len, Some(r.stamp))?;
            checked |= whole;
            tables.push(t);
        }
        let mut over = BTreeMap::new();
        let end = delta::frames(&bytes, start, |writes| {
            for (k, v) in writes {
                over.insert(k, v);
            }
        });
        let writer = if let Some(lock) = lock.take() {
            // Cut a torn or damaged tail off, then drop what an interrupted flush left behind.
            if (end as u64) < bytes.len() as u64 {
                log.set_len(end as u64)
                    .map_err(io(&path, "cutting the index log's torn tail"))?;
            }
            remove_stale(fd, &names, &manifest);
            Some(Writer {
                log,
                len: end as u64,
                start: start as u64,
                _lock: lock,
            })
        } else {
            None
        };
        let mut kv = Kv {
            dir: dir.clone(),
            fd: Some(fd.try_clone().map_err(io(dir, "opening the index"))?),
            manifest,
            tables,
            over,
            log_bytes: (end - start) as u64,
            writer,
        };
        if checked && kv.writer.is_some() {
            // Tables checked whole because they were not as recorded (a copy, a restore): the
            // next generation records them as they are now, so the check is not repeated.
            kv.fold()?;
        }
        Ok(Some(kv))
    }

    /// A new, empty index: generation 1 with no table.
    fn create(dir: Arc<Path>, fd: OwnedFd, lock: File) -> Result<Kv, StateError> {
        let manifest = Manifest {
            generation: 1,
            tables: Vec::new(),
        };
        let (log, start) = write_log(&dir, &fd, &manifest)?;
        safe::sync(&fd).map_err(io(&dir, "syncing the index directory"))?;
        Ok(Kv {
            dir,
            fd: Some(fd),
            manifest,
            tables: Vec::new(),
            over: BTreeMap::new(),
            log_bytes: 0,
            writer: Some(Writer {
                log,
                len: start,
                start,
                _lock: lock,
            }),
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(v) = self.over.get(key) {
            return Ok(v.clone());
        }
        for t in self.tables.iter().rev() {
            if let Some(v) = t.get(key)? {
                return Ok(v);
            }
        }
        Ok(None)
    }

    pub fn is_empty(&self) -> bool {
        !matches!(self.iter(b"", None, false).next(), Some(Ok(_)))
    }

    /// Every live pair with `lo <= key < hi`, merged from the delta and the tables.
    fn iter<'a>(
        &'a self,
        lo: &[u8],
        hi: Option<&[u8]>,
        rev: bool,
    ) -> impl Iterator<Item = Result<Pair, StateError>> + 'a {
        let mut sources: Vec<Source<'a>> = Vec::with_capacity(self.tables.len() + 1);
        // Newest first: the delta, then the tables from the newest.
        let upper = match hi {
            Some(h) => std::ops::Bound::Excluded(h.to_vec()),
            None => std::ops::Bound::Unbounded,
        };
        let range = self
            .over
            .range((std::ops::Bound::Included(lo.to_vec()), upper));
        let owned = |(k, v): (&Vec<u8>, &Option<Vec<u8>>)| Ok((k.clone(), v.clone()));
        let over: Source<'a> = if rev {
            Box::new(range.rev().map(owned))
        } else {
            Box::new(range.map(owned))
        };
        sources.push(over);
        for t in self.tables.iter().rev() {
            sources.push(Box::new(TableIter::new(t, lo, hi, rev)));
        }
        Merge::new(sources, rev).filter_map(|r| match r {
            Ok((k, Some(v))) => Some(Ok((k, v))),
            Ok((_, None)) => None,
            Err(e) => Some(Err(e)),
        })
    }

    /// Every pair whose key starts with `prefix`, in key order (or reversed).
    pub fn scan(
        &self,
        prefix: &[u8],
        reverse: bool,
    ) -> impl Iterator<Item = Result<Pair, StateError>> + '_ {
        let hi = successor(prefix);
        self.iter(prefix, hi.as_deref(), reverse)
    }

    /// Every pair with `start <= key < end`, in reverse key order.
    pub fn range_rev(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> impl Iterator<Item = Result<Pair, StateError>> + '_ {
        self.iter(start, Some(end), true)
    }

    /// Every pair with `start <= key < end`, in key order.
    pub fn range(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> impl Iterator<Item = Result<Pair, StateError>> + '_ {
        self.iter(start, Some(end), false)
    }

    /// Make the index's files durable (once, when it is created).
    pub fn sync_files(&self) -> Result<(), StateError> {
        let (Some(w), Some(fd)) = (&self.writer, &self.fd) else {
            return Ok(());
        };
        let _armed = guard("syncing", &self.dir, watchdog::limit_for_writes(0));
        w.log
            .sync_all()
            .map_err(io(&self.dir, "syncing the index log"))?;
        safe::sync(fd).map_err(io(&self.dir, "syncing the index directory"))
    }

    /// Nothing is buffered between commits (each batch is written as it commits); kept for the
    /// callers that mark where an index must be current.
    pub fn flush(&self) -> Result<(), StateError> {
        Ok(())
    }

    /// Apply a batch atomically: one frame appended to the delta log (a reader or an index in
    /// memory only applies it in memory). With `fsync`, the log is synced too.
    pub fn commit(
        &mut self,
        writes: Vec<Write>,
        _flush: bool,
        fsync: bool,
    ) -> Result<(), StateError> {
        if writes.is_empty() {
            return Ok(());
        }
        let n = writes.len();
        if let Some(w) = &mut self.writer {
            let armed = guard("a commit", &self.dir, watchdog::limit_for_writes(n));
            #[cfg(feature = "failpoints")]
            watchdog::failpoint_commit();
            let frame = delta::frame(&writes);
            w.log.write_all_at(&frame, w.len).map_err(io(
                &self.dir.join(log_name(self.manifest.generation)),
                "writing the index log",
            ))?;
            w.len += frame.len() as u64;
            self.log_bytes += frame.len() as u64;
            if fsync {
                w.log
                    .sync_data()
                    .map_err(io(&self.dir, "syncing the index log"))?;
            }
            drop(armed);
        }
        for (k, v) in writes {
            self.over.insert(k, v);
        }
        if self.writer.is_some() && self.log_bytes >= self.flush_at() {
            self.fold()?;
        }
        Ok(())
    }

    /// Fold the delta log into the tables now (a writer; tests and tools that want tables).
    pub fn compact(&mut self) -> Result<(), StateError> {
        if self.writer.is_some() {
            self.fold()?;
        }
        Ok(())
    }

    /// The delta log size at which a commit folds it (see `FLUSH_BYTES`).
    fn flush_at(&self) -> u64 {
        if let Some(n) = fold_bytes_override() {
            return n;
        }
        let tables: u64 = self.manifest.tables.iter().map(|t| t.len).sum();
        (tables / 8).clamp(FLUSH_BYTES, FLUSH_BYTES_MAX)
    }

    /// A writer about to close folds a log that grew past `CLOSE_FLUSH_BYTES`.
    pub fn close(&mut self) -> Result<(), StateError> {
        let at = fold_bytes_override().unwrap_or(CLOSE_FLUSH_BYTES);
        if self.writer.is_some() && self.log_bytes >= at {
            self.fold()?;
        }
        Ok(())
    }

    /// Fold the delta into a new table, merge tables whose sizes no longer fall geometrically,
    /// and start the next generation with an empty log.
    fn fold(&mut self) -> Result<(), StateError> {
        let Some(fd) = self.fd.as_ref() else {
            return Ok(());
        };
        // Everything a fold may rewrite: the delta and, at most, every table.
        let tables_bytes: u64 = self.manifest.tables.iter().map(|t| t.len).sum();
        let armed = guard(
            "a flush",
            &self.dir,
            watchdog::limit_for_open(
                self.log_bytes
                    .saturating_add(tables_bytes)
                    .saturating_mul(2),
            ),
        );
        let mut next = self.manifest.generation;
        // The next generation's tables, oldest first: one of this generation's (re-stamped as it
        // is now) or one this fold wrote. Nothing of `self` changes until the next generation is
        // in place, so a fold that fails leaves the index as it was (what it wrote is removed by
        // the next writer).
        let mut keep: Vec<(TableRef, Slot)> = Vec::new();
        for (i, (t, r)) in self.tables.iter().zip(&self.manifest.tables).enumerate() {
            keep.push((
                TableRef {
                    stamp: t.stamp()?,
                    ..*r
                },
                Slot::Old(i),
            ));
        }
        if !self.over.is_empty() {
            // The delta as a table of its own, tombstones kept (they hide older tables' values)
            // unless no table is older.
            next += 1;
            let entries = self.over.iter().map(|(k, v)| Ok((k.clone(), v.clone())));
            let (r, t) = write_table(&self.dir, fd, next, entries, keep.is_empty())?;
            keep.push((r, Slot::New(t)));
        }
        // Merge the newest two while the newer is at least as large as the older (or there are
        // too many): sizes then fall geometrically from the oldest table, and a key is rewritten
        // about log2(index / delta) times.
        while keep.len() >= 2 {
            let n = keep.len();
            let (newer, older) = (keep[n - 1].0.len, keep[n - 2].0.len);
            // Into the oldest table (usually most of the index) only once the newer is twice
            // its size: a bulk rewrite (`wf gc` pruning most of a million checkpoints) then
            // leaves two large tables instead of rewriting the whole index once more.
            let merge = if n == 2 {
                newer >= older.saturating_mul(2)
            } else {
                newer >= older
            };
            if !merge && n <= MAX_TABLES {
                break;
            }
            let b = keep.pop().ok_or_else(bug)?;
            let a = keep.pop().ok_or_else(bug)?;
            next += 1;
            let base = keep.is_empty();
            let merged = {
                let sources: Vec<Source<'_>> = vec![
                    Box::new(TableIter::new(
                        slot_table(&self.tables, &b.1)?,
                        b"",
                        None,
                        false,
                    )),
                    Box::new(TableIter::new(
                        slot_table(&self.tables, &a.1)?,
                        b"",
                        None,
                        false,
                    )),
                ];
                write_table(&self.dir, fd, next, Merge::new(sources, false), base)?
            };
            keep.push((merged.0, Slot::New(merged.1)));
        }
        next += 1;
        let manifest = Manifest {
            generation: next,
            tables: keep.iter().map(|(r, _)| *r).collect(),
        };
        let (log, start) = write_log(&self.dir, fd, &manifest)?;
        safe::sync(fd).map_err(io(&self.dir, "syncing the index directory"))?;
        drop(armed);
        // The new generation is complete and durable: the old files can go.
        let names = safe::list(fd).map_err(io(&self.dir, "listing the index"))?;
        remove_stale(fd, &names, &manifest);
        let mut old: Vec<Option<Table>> = std::mem::take(&mut self.tables)
            .into_iter()
            .map(Some)
            .collect();
        let mut tables = Vec::with_capacity(keep.len());
        for (_, slot) in keep {
            tables.push(match slot {
                Slot::Old(i) => old.get_mut(i).and_then(Option::take).ok_or_else(bug)?,
                Slot::New(t) => t,
            });
        }
        self.tables = tables;
        self.manifest = manifest;
        self.over.clear();
        self.log_bytes = 0;
        if let Some(w) = &mut self.writer {
            w.log = log;
            w.len = start;
            w.start = start;
        }
        Ok(())
    }
}

/// Fault injection for the crash and power-cut tests (`failpoints` builds only):
/// `WF_INDEX_FOLD_BYTES=N` folds the delta log whenever it passes N bytes (and at every close past
/// N), so that small test workflows fold and merge tables all the time and a kill or a power cut
/// can land inside a fold.
#[cfg(feature = "failpoints")]
fn fold_bytes_override() -> Option<u64> {
    static N: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("WF_INDEX_FOLD_BYTES")
            .ok()
            .and_then(|v| v.trim().parse().ok())
    })
}

#[cfg(not(feature = "failpoints"))]
fn fold_bytes_override() -> Option<u64> {
    None
}

/// A table of the next generation (`Kv::fold`): one of the current generation's, or a new one.
enum Slot {
    Old(usize),
    New(Table),
}

fn slot_table<'a>(old: &'a [Table], slot: &'a Slot) -> Result<&'a Table, StateError> {
    match slot {
        Slot::Old(i) => old.get(*i).ok_or_else(bug),
        Slot::New(t) => Ok(t),
    }
}

fn bug() -> StateError {
    StateError::Corrupt("the index's tables were miscounted; this is a bug".into())
}

fn is_not_found(e: &StateError) -> bool {
    matches!(e, StateError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// The smallest key greater than every key starting with `prefix` (None: there is none).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// The largest delta log wf reads: wf folds its logs at 64 MiB at most (a single batch is at most
/// a few MiB), so a larger one is not wf's, and is refused before it is read into memory.
const MAX_LOG: u64 = 1 << 30;

fn read_all(file: &File, path: &Path) -> Result<Vec<u8>, StateError> {
    let len = file
        .metadata()
        .map_err(io(path, "reading the index log"))?
        .len();
    if len > MAX_LOG {
        return Err(table::damaged(path, "larger than any index log wf writes"));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut &*file, &mut bytes)
        .map_err(io(path, "reading the index log"))?;
    Ok(bytes)
}

/// Remove every `index.*` name in `fd` but the files of generation `m` and the lock (the files
/// of older generations, and temporary files an interrupted fold left). Best effort: a name left
/// is removed next time.
fn remove_stale(fd: &OwnedFd, names: &[(std::ffi::OsString, rustix::fs::FileType)], m: &Manifest) {
    let keep: Vec<String> = std::iter::once(log_name(m.generation))
        .chain(m.tables.iter().map(|r| table_name(r.id)))
        .chain(std::iter::once(LOCK.to_string()))
        .collect();
    for (n, _) in names {
        let Some(s) = n.to_str() else { continue };
        if s.starts_with("index.") && !keep.iter().any(|k| k == s) {
            let _ = safe::remove_at(fd, Path::new(n));
        }
    }
}

/// Write a table of `entries` (in key order) as `index.{id}.tbl`, synced; tombstones are
/// dropped when it is the oldest table (`base`: nothing older for them to hide).
fn write_table<'a>(
    dir: &Path,
    fd: &OwnedFd,
    id: u64,
    entries: impl Iterator<Item = Result<table::Entry, StateError>> + 'a,
    base: bool,
) -> Result<(TableRef, Table), StateError> {
    let (file, tmp) = safe::create_temp(fd, "index.tmp.", FILE_MODE, dir)
        .map_err(io(dir, "creating an index table"))?;
    let tmp_path = dir.join(&tmp);
    let mut w = TableWriter::new(file, &tmp_path)?;
    for e in entries {
        let (k, v) = e?;
        if base && v.is_none() {
            continue;
        }
        w.add(&k, v.as_deref())?;
    }
    let (_, len) = w.finish()?;
    let name = table_name(id);
    safe::rename_at(fd, Path::new(&tmp), fd, Path::new(&name))
        .map_err(io(&dir.join(&name), "renaming an index table"))?;
    let path = dir.join(&name);
    let file = safe::open_at(fd, Path::new(&name), How::Read, FILE_MODE, &path)
        .map_err(io(&path, "opening an index table"))?;
    let stamp = table::stamp_of(
        &file
            .metadata()
            .map_err(io(&path, "opening an index table"))?,
    );
    let (t, _) = Table::open(file, &path, len, Some(stamp))?;
    Ok((TableRef { id, len, stamp }, t))
}

/// Write generation `m`'s delta log (header only) under a temporary name, synced, and rename it
/// into place; returns it open for appends and its header length.
fn write_log(dir: &Path, fd: &OwnedFd, m: &Manifest) -> Result<(File, u64), StateError> {
    let (file, tmp) = safe::create_temp(fd, "index.tmp.", FILE_MODE, dir)
        .map_err(io(dir, "creating the index log"))?;
    let head = delta::header(m);
    file.write_all_at(&head, 0)
        .and_then(|_| file.sync_all())
        .map_err(io(&dir.join(&tmp), "writing the index log"))?;
    drop(file);
    let name = log_name(m.generation);
    safe::rename_at(fd, Path::new(&tmp), fd, Path::new(&name))
        .map_err(io(&dir.join(&name), "renaming the index log"))?;
    let path: PathBuf = dir.join(&name);
    let log = safe::open_at(fd, Path::new(&name), How::Update, FILE_MODE, &path)
        .map_err(io(&path, "opening the index log"))?;
    Ok((log, head.len() as u64))
}

#[cfg(test)]
mod tests;
