//! The one file that names sled: an ordered key-value store with atomic batches made durable
//! against power loss. sled 0.34's `flush` ends in `sync_file_range`, which is enough for kill -9
//! but not for a power cut, so every durable commit also fsyncs the database file and its
//! directory (design §4). Everything above this module sees bytes, not sled types.
//!
//! Every sled write here runs under the index watchdog (`watchdog`): sled 0.34.7 can deadlock
//! inside a write and never return, and a wf that hangs holds the state lock forever.
//!
//! sled is driven against that deadlock (issue #23, docs/performance.md): the loop forms when
//! the segment accountant, locked by a writer whose next segment is past a file truncation still
//! queued on sled's IO pool, waits for that truncation while every pool thread holds a sealed
//! buffer waiting for the accountant. Flushing every few batches keeps that queue shorter than
//! the pool, so the truncation always finds a thread.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use crate::durable::sync_dir;
use crate::error::StateError;
use crate::watchdog::{self, guard};

/// A key-value pair read from the store.
pub type Pair = (Vec<u8>, Vec<u8>);
/// A write in a batch: a key and its new value, or `None` to remove it.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// Set while sled opens a journal: sled may panic on a damaged file, and that panic is caught and
/// turned into an error, so the binary's panic hook stays quiet meanwhile.
pub static QUIET_PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub struct Kv {
    db: sled::Db,
    dir: Arc<Path>,
    /// The log file, kept open to fsync it after each flush.
    log: File,
    /// The directory's names (with their inode numbers) when it was last fsynced: it is synced
    /// again only when a name was created, renamed or removed since (sled's snapshots). A listing
    /// costs microseconds; a directory fsync, a journal commit of the filesystem.
    dir_synced: std::cell::RefCell<Option<Vec<(std::ffi::OsString, u64)>>>,
    /// Keys written since the last flush: a flush's deadline grows with them.
    unflushed: std::cell::Cell<usize>,
    /// Bytes (keys and values) written since the last flush: past `FLUSH_BYTES`, a commit
    /// flushes, so that sealed buffers never pile up in sled's IO queue.
    unflushed_bytes: std::cell::Cell<usize>,
    /// Batches applied since the last flush (each queues up to two writes on sled's IO pool).
    unflushed_batches: std::cell::Cell<usize>,
    tuning: Tuning,
}

/// sled's segment size (also the size of its IO buffers) for an index this wf creates: sled's
/// default, 512 KiB. Larger segments seal fewer buffers per byte and truncate the file less often
/// (both halves of the deadlock, issue #23), but measured at 8 MiB they made every open read and
/// hold far more (`wf status` at 20,000 runs: 0.03 → 0.09 s, 7.6 → 21 MB; docs/performance.md), so
/// the queue is bounded by flushing instead. An index created with another size keeps it (sled
/// refuses to open it with a different one).
const SEGMENT_SIZE: usize = 512 * 1024;

/// Bytes written without a flush after which a commit flushes: a flush waits until every
/// sealed buffer is written, so sled's IO queue never holds more than a few (sled's pool has 7
/// threads, and the deadlock needs a job queued behind more writes than that). 1 MiB of keys
/// and values fill about two to four 512 KiB segments.
const FLUSH_BYTES: usize = 1 << 20;
/// Batches applied without a flush after which a commit flushes: sled seals its IO buffer
/// before and after every batch (`PageCache::pin_log`), and each sealed buffer is a job on its
/// IO pool that writes and waits for `sync_file_range`. Two batches queue at most four.
const FLUSH_BATCHES: usize = 2;

/// The segment size recorded in an existing index's `conf` (sled's `key: value` lines).
fn recorded_segment_size(dir: &Path) -> Option<usize> {
    // (The file ends with a binary checksum: read it as lossy text.)
    let conf = std::fs::read(dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size: "))
        .and_then(|v| v.trim().parse().ok())
}

fn listing(dir: &Path) -> Option<Vec<(std::ffi::OsString, u64)>> {
    use std::os::unix::fs::DirEntryExt;
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.map(|e| (e.file_name(), e.ino())))
        .collect::<Result<_, _>>()
        .ok()?;
    v.sort();
    Some(v)
}

fn sled_err(dir: &Path, what: &'static str, e: sled::Error) -> StateError {
    match e {
        sled::Error::Io(io) => {
            if io.to_string().contains("could not acquire lock") {
                StateError::Busy(dir.to_path_buf())
            } else {
                StateError::Io {
                    path: dir.to_path_buf(),
                    what,
                    source: io,
                }
            }
        }
        sled::Error::Corruption { .. } => StateError::Corrupt(format!(
            "the journal index in {} is damaged; move that directory away and wf rebuilds it from \
             the record log (journal.log)",
            dir.display()
        )),
        sled::Error::Unsupported(msg) => StateError::Corrupt(format!(
            "the journal in {} cannot be read by this wf ({msg})",
            dir.display()
        )),
        other => StateError::Corrupt(format!(
            "the journal in {} could not be {what}: {other}",
            dir.display()
        )),
    }
}

impl Drop for Kv {
    /// sled flushes whatever is dirty when its last handle is dropped: do it here, under the
    /// watchdog, so that sled's own flush finds nothing left to write.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// How wf drives sled (`Tuning::default()` everywhere; the index soak's hammer compares it with
/// `Tuning::legacy()`, wf's settings before issue #23).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// sled's segment size for a new index.
    pub segment_size: usize,
    /// Flush after this many batches since the last flush (0: never on its own).
    pub flush_batches: usize,
    /// Flush after this many bytes written since the last flush (0: never on its own).
    pub flush_bytes: usize,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            segment_size: SEGMENT_SIZE,
            flush_batches: FLUSH_BATCHES,
            flush_bytes: FLUSH_BYTES,
        }
    }
}

impl Tuning {
    /// sled's default segment size and no flush of its own: wf before issue #23.
    pub fn legacy() -> Tuning {
        Tuning {
            segment_size: 512 * 1024,
            flush_batches: 0,
            flush_bytes: 0,
        }
    }
}

impl Kv {
    /// Open (or create) the store in `dir`. A store held by another process gives `Busy`.
    pub fn open(dir: &Path) -> Result<Kv, StateError> {
        Kv::open_tuned(dir, Tuning::default())
    }

    /// `open`, with other settings (benchmarks).
    pub fn open_tuned(dir: &Path, tuning: Tuning) -> Result<Kv, StateError> {
        let size = std::fs::metadata(dir.join("db")).map_or(0, |m| m.len());
        let shared: Arc<Path> = Arc::from(dir);
        let _armed = guard("opening", &shared, watchdog::limit_for_open(size));
        let config = sled::Config::new()
            .path(dir)
            .segment_size(recorded_segment_size(dir).unwrap_or(tuning.segment_size))
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(None)
            .mode(sled::Mode::LowSpace);
        // sled can panic on some damaged files instead of returning an error; a damaged journal
        // must be refused with a message, never reported as a crash.
        QUIET_PANICS.store(true, std::sync::atomic::Ordering::SeqCst);
        let opened = catch_unwind(AssertUnwindSafe(|| config.open()));
        QUIET_PANICS.store(false, std::sync::atomic::Ordering::SeqCst);
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(sled_err(dir, "opened", e)),
            Err(_) => {
                return Err(StateError::Corrupt(format!(
                    "the journal index in {} is damaged and could not be opened; move that \
                     directory away and wf rebuilds it from the record log (journal.log)",
                    dir.display()
                )))
            }
        };
        let log_path = dir.join("db");
        let log = File::open(&log_path).map_err(|source| StateError::Io {
            path: log_path,
            what: "opening the journal log",
            source,
        })?;
        Ok(Kv {
            db,
            dir: shared,
            log,
            dir_synced: std::cell::RefCell::new(None),
            unflushed: std::cell::Cell::new(0),
            unflushed_bytes: std::cell::Cell::new(0),
            unflushed_batches: std::cell::Cell::new(0),
            tuning,
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        // A read can split or merge a tree node (a write into sled's log): guarded like one.
        let _armed = self.read_guard();
        self.db
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| sled_err(&self.dir, "read", e))
    }

    pub fn is_empty(&self) -> bool {
        let _armed = self.read_guard();
        self.db.is_empty()
    }

    fn read_guard(&self) -> watchdog::Armed<'static> {
        guard("a read", &self.dir, watchdog::limit_for_writes(0))
    }

    /// Each step of an iterator, guarded (a step can split or merge a node too); the caller's
    /// work between steps is not.
    fn guarded<'a, I>(&'a self, iter: I) -> impl Iterator<Item = Result<Pair, StateError>> + 'a
    where
        I: Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'a,
    {
        let mut iter = iter;
        std::iter::from_fn(move || {
            let _armed = self.read_guard();
            iter.next()
        })
        .map(move |r| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| sled_err(&self.dir, "read", e))
        })
    }

    /// Every pair whose key starts with `prefix`, in key order (or reversed).
    pub fn scan(
        &self,
        prefix: &[u8],
        reverse: bool,
    ) -> impl Iterator<Item = Result<Pair, StateError>> + '_ {
        let iter = {
            let _armed = self.read_guard();
            self.db.scan_prefix(prefix)
        };
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        self.guarded(iter)
    }

    /// Every pair with `start <= key < end`, in reverse key order.
    pub fn range_rev(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> impl Iterator<Item = Result<Pair, StateError>> + '_ {
        self.guarded(self.db.range(start.to_vec()..end.to_vec()).rev())
    }

    /// Every pair with `start <= key < end`, in key order.
    pub fn range(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> impl Iterator<Item = Result<Pair, StateError>> + '_ {
        self.guarded(self.db.range(start.to_vec()..end.to_vec()))
    }

    /// Apply all writes (a value, or `None` to remove the key) atomically, then make them durable:
    /// sled's flush, then fsync of the log file and of the directory (sled renames snapshot files
    /// into it and never syncs it).
    /// fsync every file sled created in its directory, and the directory: used once, when the
    /// index is created, so that its `conf` never comes back empty after a power cut.
    pub fn sync_files(&self) -> Result<(), StateError> {
        self.flush()?;
        let _armed = guard("syncing", &self.dir, watchdog::limit_for_writes(0));
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    File::open(e.path())
                        .and_then(|f| f.sync_all())
                        .map_err(|source| StateError::Io {
                            path: e.path(),
                            what: "syncing the journal index",
                            source,
                        })?;
                }
            }
        }
        sync_dir(&self.dir)
    }

    /// Write what sled holds in memory to its log file.
    pub fn flush(&self) -> Result<(), StateError> {
        let _armed = guard(
            "a flush",
            &self.dir,
            watchdog::limit_for_writes(self.unflushed.get()),
        );
        self.db
            .flush()
            .map(|_| {
                self.unflushed.set(0);
                self.unflushed_bytes.set(0);
                self.unflushed_batches.set(0);
            })
            .map_err(|e| sled_err(&self.dir, "flushed", e))
    }

    /// Apply a batch atomically. `flush` writes it to sled's log file (sync_file_range); `fsync`
    /// also syncs that file and, when its names changed, the directory. The record log is wf's
    /// durable truth, so the hot path needs neither: sled's lost tail is replayed from it. (A
    /// commit also flushes once `FLUSH_BYTES` were written since the last flush.)
    pub fn commit(&self, writes: Vec<Write>, flush: bool, fsync: bool) -> Result<(), StateError> {
        let n = writes.len();
        let armed = guard("a commit", &self.dir, watchdog::limit_for_writes(n));
        #[cfg(feature = "failpoints")]
        watchdog::failpoint_commit();
        let mut batch = sled::Batch::default();
        let mut bytes = 0usize;
        for (k, v) in writes {
            bytes = bytes.saturating_add(k.len() + v.as_ref().map_or(0, Vec::len));
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.db
            .apply_batch(batch)
            .map_err(|e| sled_err(&self.dir, "written", e))?;
        self.unflushed.set(self.unflushed.get().saturating_add(n));
        self.unflushed_bytes
            .set(self.unflushed_bytes.get().saturating_add(bytes));
        self.unflushed_batches
            .set(self.unflushed_batches.get().saturating_add(1));
        drop(armed);
        if flush
            || fsync
            || (self.tuning.flush_bytes > 0
                && self.unflushed_bytes.get() >= self.tuning.flush_bytes)
            || (self.tuning.flush_batches > 0
                && self.unflushed_batches.get() >= self.tuning.flush_batches)
        {
            self.flush()?;
        }
        if fsync {
            let _armed = guard("syncing", &self.dir, watchdog::limit_for_writes(0));
            self.log.sync_all().map_err(|source| StateError::Io {
                path: self.dir.join("db"),
                what: "syncing the journal log",
                source,
            })?;
            let now = listing(&self.dir);
            if now.is_none() || now != *self.dir_synced.borrow() {
                sync_dir(&self.dir)?;
                *self.dir_synced.borrow_mut() = now;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_keeps_the_segment_size_it_was_created_with(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let fresh = dir.path().join("fresh");
        std::fs::create_dir(&fresh)?;
        drop(Kv::open(&fresh)?);
        assert_eq!(recorded_segment_size(&fresh), Some(SEGMENT_SIZE));
        // An index created with another segment size (a wf built with other settings) opens.
        let old = dir.path().join("old");
        {
            let db = sled::Config::new()
                .path(&old)
                .segment_size(1 << 20)
                .open()?;
            db.insert(b"k", b"v".to_vec())?;
            db.flush()?;
        }
        assert_eq!(recorded_segment_size(&old), Some(1 << 20));
        let kv = Kv::open(&old)?;
        assert_eq!(kv.get(b"k")?, Some(b"v".to_vec()));
        Ok(())
    }

    #[test]
    fn many_small_batches_flush_on_their_own() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let kv = Kv::open(dir.path())?;
        for i in 0u32..(FLUSH_BATCHES as u32 * 3 + 1) {
            kv.commit(
                vec![(i.to_be_bytes().to_vec(), Some(vec![0; 16]))],
                false,
                false,
            )?;
            assert!(kv.unflushed_batches.get() < FLUSH_BATCHES);
        }
        kv.commit(
            vec![(b"big".to_vec(), Some(vec![7; FLUSH_BYTES]))],
            false,
            false,
        )?;
        assert_eq!(kv.unflushed_bytes.get(), 0);
        Ok(())
    }
}
