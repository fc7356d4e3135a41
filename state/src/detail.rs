//! The detail index, `journal/detail/`: a second index (the same files as `journal/`: a delta log
//! and sorted tables, `journal`) holding where each run's records are in the record log (`e`) and
//! its checkpoint rows (`c`). It is kept apart from the run summaries (`journal/`) because it is
//! the larger one and `wf gc` rewrites it, so a command's start-up does not pay for it: commands
//! that need only summaries (`wf history`, `wf status`) never open this one. (With sled, the index
//! before wf's own, a large sweep made every later open of one shared index three times slower.)
//!
//! A writer opens it for writing (its own `index.lock`); a reader opens it read-only, or rebuilds
//! in memory one it cannot use (missing, damaged, of an older layout, written by sled).
//!
//! It is derived from the record log alone, without the state machine, so it catches up on its
//! own (its own `m:logpos`) whenever it is opened, however far behind a crash left it.
//!
//! | key                 | value |
//! |---------------------|-------|
//! | `m:layout`          | this index's layout (u32 LE); another one is rebuilt from the log |
//! | `m:logpos`          | how far into the record log this index has applied (u64 LE) |
//! | `e` run(8) chunk(4) | where the run's records are: (offset u64 LE, bytes u32 LE) spans, 128 per chunk |
//! | `c` run(8) seq(8)   | up to 64 of the run's checkpoint rows, the first at seq |
//! | `q` run(8) seq(8) rec(8) | prunes of rows of that chunk journaled by record `rec` (and the records of the same batch before it): (row seq, when, policy) — a prune adds a list and does not rewrite the chunk; a chunk written again takes its lists in |

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::checkpoints::{CheckpointRow, Located, RowRef};
use crate::codec;
use crate::durable::sync_dir;
use crate::error::{decode_err, StateError};
use crate::journal::{Kv, Pair, Write};
use crate::keys::{key_chunk, key_rec_prefix, key_run, run_of_key, seq_of_key, u64_of};
use crate::machine;
use crate::record::{Entry, Record, RunId};
use crate::wal;

/// 2: prunes kept in `q` lists beside their chunks (1 rewrote the chunk).
const LAYOUT: u32 = 2;
const K_LAYOUT: &[u8] = b"m:layout";
const K_LOGPOS: &[u8] = b"m:logpos";
/// Spans per `e` chunk and rows per `c` chunk: small values to rewrite, few keys per run.
const SPANS_PER_CHUNK: usize = 128;
const SPAN: usize = 12;
const ROWS_PER_CHUNK: usize = 64;
/// Records applied per index batch when catching up with the log.
const REPLAY_BATCH: usize = 20_000;
/// ... or per this many bytes of the record log, whichever comes first: each batch is atomic and
/// records how far it got, so a catch-up cut short resumes from there, and a batch stays small.
const REPLAY_BYTES: u64 = 1 << 20;

/// Where a record's frame is in the log: (offset, length).
pub type Loc = (u64, u32);

pub fn spans_of(v: &[u8]) -> impl Iterator<Item = Loc> + '_ {
    v.chunks_exact(SPAN).map(|c| {
        let off = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        (off, u32::from_le_bytes([c[8], c[9], c[10], c[11]]))
    })
}

pub struct Detail {
    kv: Kv,
    /// The state directory (for messages) and the record log.
    root: PathBuf,
    log_path: PathBuf,
    reader: std::fs::File,
    /// The last `e` chunk of recently written runs: (chunk number, spans).
    spans: HashMap<RunId, (u32, Vec<u8>)>,
}

/// What a batch changes in the checkpoint chunks, gathered (and checked) before the records are
/// appended to the log.
#[derive(Default)]
pub struct Staged {
    /// Checkpoint chunks loaded or created: (run, first seq) → rows.
    chunks: HashMap<(RunId, u64), Vec<(u64, CheckpointRow)>>,
    /// Per run: the first seqs of its chunks in `chunks`.
    firsts: HashMap<RunId, Vec<u64>>,
    /// Per run: the first seq of its last chunk (None: it has none).
    last: HashMap<RunId, Option<u64>>,
    dirty: HashSet<(RunId, u64)>,
    /// Checkpoint chunks the batch only prunes rows of (not in `chunks`), as read.
    patched: HashMap<(RunId, u64), Patched>,
    /// The policies prunes name (`Patched::prunes` index them), each once.
    policies: Vec<String>,
    /// Prune lists taken into chunks held as rows (their prunes are in the rows now): removed
    /// when the batch is written.
    taken: Vec<Vec<u8>>,
}

/// A checkpoint chunk a batch only prunes rows of: kept as the bytes read (to check each prune
/// against), with the prunes, which are written as a new `q` list beside the chunk — the chunk
/// itself is not rewritten (a sweep prunes hundreds of thousands of rows in a few hundred
/// batches).
struct Patched {
    bytes: Vec<u8>,
    /// (seq of the row, when it was pruned, index into `Staged::policies`), in order.
    prunes: Vec<(u64, DateTime<Utc>, usize)>,
    /// The seq of the last record that pruned rows of it (the list's key).
    rec: u64,
}

/// The key of the prune list of chunk (run, first) journaled by record `rec`.
fn key_prunes(run: RunId, first: u64, rec: u64) -> Vec<u8> {
    let mut k = key_rec_prefix(b'q', run, first);
    k.extend_from_slice(&rec.to_be_bytes());
    k
}

/// The chunk (run, first) a `q` key belongs to.
fn chunk_of_prunes(k: &[u8]) -> (RunId, u64) {
    (run_of_key(k).unwrap_or(0), seq_of_key(k))
}

/// Open the detail index's database. Whoever opened `journal/` holds the state, so a lock on this
/// one can only be a previous handle of this process still being dropped, or
/// a process that is closing: wait for it a little.
fn open_kv(dir: &Path) -> Result<Kv, StateError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Kv::open(dir) {
            Err(StateError::Busy(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            other => return other,
        }
    }
}

fn fresh(parent: &Path, dir: &Path) -> Result<Kv, StateError> {
    crate::durable::create_private_dir(dir).map_err(|source| StateError::Io {
        path: dir.to_path_buf(),
        what: "creating the detail index",
        source,
    })?;
    sync_dir(parent)?;
    let mut kv = open_kv(dir)?;
    kv.sync_files()?;
    mark_layout(&mut kv)?;
    Ok(kv)
}

/// Mark an empty detail index as this wf's layout.
fn mark_layout(kv: &mut Kv) -> Result<(), StateError> {
    kv.commit(
        vec![(K_LAYOUT.to_vec(), Some(LAYOUT.to_le_bytes().to_vec()))],
        false,
        false,
    )
}

/// The layout of the detail index in `dir` when this wf reads it as it is (None: older, or a
/// creation cut short — derived data, rebuilt from the log); a newer one is refused. Layout 1
/// (prunes rewrote their chunks) is layout 2 without prune lists, so it is read as it is, and a
/// writer marks it 2 ([`upgrade`]) before it adds any.
fn current_layout(kv: &Kv, dir: &Path) -> Result<Option<u32>, StateError> {
    let layout = kv
        .get(K_LAYOUT)?
        .and_then(|v| v.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()))
        .map(u32::from_le_bytes);
    match layout {
        Some(n @ (1 | LAYOUT)) => Ok(Some(n)),
        Some(n) if n > LAYOUT => Err(StateError::Newer(format!(
            "the detail index in {} has layout {n}, newer than this wf reads ({LAYOUT}); upgrade \
             wf (nothing was changed)",
            dir.display()
        ))),
        _ => Ok(None),
    }
}

/// A writer's index of an earlier layout this wf reads as it is, marked as this layout before
/// anything of this layout is written to it (the mark comes first in the delta log, so whatever
/// a crash keeps of what follows, it keeps the mark too). A wf of the earlier layout then
/// refuses it as newer instead of misreading it.
fn upgrade(mut kv: Kv, layout: u32) -> Result<Kv, StateError> {
    if layout != LAYOUT {
        mark_layout(&mut kv)?;
    }
    Ok(kv)
}

impl Detail {
    /// Open (creating or rebuilding when needed) the detail index of the state in `root`, and
    /// bring it up to the end of the record log.
    /// A reader (`write` false) writes nothing: a detail index it cannot use is rebuilt in
    /// memory from the record log.
    pub fn open(root: &Path, log_path: &Path, write: bool) -> Result<Detail, StateError> {
        let parent = root.join("journal");
        let dir = parent.join("detail");
        let io = |what: &'static str, p: &Path| {
            let path = p.to_path_buf();
            move |source| StateError::Io { path, what, source }
        };
        if dir.exists() && !dir.is_dir() {
            return Err(StateError::Corrupt(format!(
                "{} is not a directory; move the journal directory away and wf rebuilds it from \
                 the record log (journal.log)",
                dir.display()
            )));
        }
        let kv = if !write {
            let in_memory = || {
                let mut kv = Kv::memory(&dir);
                mark_layout(&mut kv)?;
                Ok::<Kv, StateError>(kv)
            };
            if !dir.exists() || crate::journal::holds_sled(&dir) {
                in_memory()?
            } else {
                match Kv::open_read(&dir) {
                    Ok(kv) if current_layout(&kv, &dir)?.is_some() => kv,
                    Ok(_) => in_memory()?,
                    Err(StateError::Corrupt(_)) => in_memory()?,
                    Err(e) => return Err(e),
                }
            }
        } else if dir.exists() && crate::journal::holds_sled(&dir) {
            std::fs::remove_dir_all(&dir).map_err(io("removing an outdated detail index", &dir))?;
            fresh(&parent, &dir)?
        } else if dir.exists() {
            match open_kv(&dir) {
                Ok(kv) => match current_layout(&kv, &dir)? {
                    Some(layout) => upgrade(kv, layout)?,
                    // Older, or a creation cut short: derived data, rebuilt from the log.
                    None => {
                        drop(kv);
                        std::fs::remove_dir_all(&dir)
                            .map_err(io("removing an outdated detail index", &dir))?;
                        fresh(&parent, &dir)?
                    }
                },
                // Damaged: set aside (its bytes kept) and rebuilt from the log.
                Err(StateError::Corrupt(_)) => {
                    let aside = parent.join(format!(
                        "detail.broken-{}",
                        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
                    ));
                    std::fs::rename(&dir, &aside)
                        .map_err(io("setting a damaged detail index aside", &dir))?;
                    fresh(&parent, &dir)?
                }
                Err(e) => return Err(e),
            }
        } else {
            fresh(&parent, &dir)?
        };
        let reader =
            std::fs::File::open(log_path).map_err(io("opening the record log", log_path))?;
        let mut detail = Detail {
            kv,
            root: root.to_path_buf(),
            log_path: log_path.to_path_buf(),
            reader,
            spans: HashMap::new(),
        };
        let from = detail
            .kv
            .get(K_LOGPOS)?
            .and_then(|v| u64_of(&v))
            .unwrap_or(0);
        detail.catch_up(from)?;
        Ok(detail)
    }

    /// Apply what the log holds after `from`, a batch at a time (each atomic, each recording how
    /// far it got).
    fn catch_up(&mut self, from: u64) -> Result<(), StateError> {
        let path = self.log_path.clone();
        let mut pending: Vec<(Record, Loc)> = Vec::new();
        wal::scan(&path, from, |r, off, len| {
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
        Ok(())
    }

    fn apply_replayed(&mut self, records: Vec<(Record, Loc)>) -> Result<(), StateError> {
        let Some(&(_, (off, len))) = records.last() else {
            return Ok(());
        };
        let mut staged = Staged::default();
        let mut places: Vec<(RunId, Vec<Loc>)> = Vec::new();
        let mut at: HashMap<RunId, usize> = HashMap::new();
        for (r, loc) in &records {
            self.stage(r, &mut staged)?;
            let i = *at.entry(r.run).or_insert_with(|| {
                places.push((r.run, Vec::new()));
                places.len() - 1
            });
            places[i].1.push(*loc);
        }
        self.commit(staged, places, off + len as u64)
    }

    /// Check a record against the checkpoint rows and stage what it changes (before the record
    /// is appended: a prune of a checkpoint that does not exist is refused here).
    pub fn stage(&self, rec: &Record, st: &mut Staged) -> Result<(), StateError> {
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
                let row = CheckpointRow {
                    task: task.clone(),
                    attempt: *attempt,
                    path: path.clone(),
                    hash: hash.clone(),
                    bytes: *bytes,
                    created_at: rec.at,
                    retention_secs: *retention_secs,
                    pruned: None,
                };
                let first = match self.last_chunk(rec.run, st)? {
                    Some(f)
                        if st.chunks.get(&(rec.run, f)).map_or(0, Vec::len) < ROWS_PER_CHUNK =>
                    {
                        f
                    }
                    _ => {
                        st.chunks.insert((rec.run, rec.seq), Vec::new());
                        st.firsts.entry(rec.run).or_default().push(rec.seq);
                        st.last.insert(rec.run, Some(rec.seq));
                        rec.seq
                    }
                };
                if let Some(rows) = st.chunks.get_mut(&(rec.run, first)) {
                    rows.push((rec.seq, row));
                }
                st.dirty.insert((rec.run, first));
            }
            Entry::Prune {
                task,
                attempt,
                checkpoint_seq,
                policy,
                ..
            } => self.prune_rows(
                rec,
                std::iter::once((task.as_str(), *attempt, *checkpoint_seq, policy.as_str())),
                st,
            )?,
            Entry::Pruned { checkpoints, .. } => self.prune_rows(
                rec,
                checkpoints
                    .iter()
                    .map(|c| (&*c.task, c.attempt, c.checkpoint_seq, &*c.policy)),
                st,
            )?,
            _ => {}
        }
        Ok(())
    }

    /// Mark checkpoint rows of the record's run pruned by it — items (task, attempt, seq of the
    /// `Checkpoint` record, policy) — after checking each is the prune's: same task and attempt,
    /// the only check a prune gets, since it leaves the run's state as it was. A row of a chunk
    /// the batch holds as rows is changed there; the others are patched into their chunks as
    /// read, each chunk read and checked once for all the record's rows in it.
    fn prune_rows<'i>(
        &self,
        rec: &Record,
        items: impl Iterator<Item = (&'i str, u32, u64, &'i str)>,
        st: &mut Staged,
    ) -> Result<(), StateError> {
        let run = rec.run;
        let mut rest = Vec::new();
        for (task, attempt, cseq, policy) in items {
            let held = st.firsts.get(&run).is_some_and(|firsts| {
                firsts.iter().any(|f| {
                    st.chunks
                        .get(&(run, *f))
                        .is_some_and(|rows| rows.iter().any(|(s, _)| *s == cseq))
                })
            });
            if held {
                self.prune_row(rec, task, attempt, cseq, policy, st)?;
            } else {
                rest.push((task, attempt, cseq, policy));
            }
        }
        let Some(last) = rest.iter().map(|i| i.2).max() else {
            return Ok(());
        };
        // The run's chunks in order (few), up to the last that can hold a row named: a row is
        // in the last one starting at or before its seq.
        let mut chunks: Vec<(u64, Vec<u8>)> = Vec::new();
        for pair in self.kv.scan(&key_run(b'c', run), false) {
            let (k, v) = pair?;
            let first = seq_of_key(&k);
            if first > last {
                break;
            }
            chunks.push((first, v));
        }
        let refuse = |task: &str, attempt: u32, cseq: u64| {
            StateError::Illegal(machine::Illegal::NoTask {
                run,
                task: format!("{task} (no checkpoint {cseq} of attempt {attempt})"),
            })
        };
        while let Some(&(task, attempt, cseq, _)) = rest.first() {
            let Some(i) = chunks.iter().rposition(|(f, _)| *f <= cseq) else {
                return Err(refuse(task, attempt, cseq));
            };
            let first = chunks[i].0;
            // Every item of the record in this chunk, checked against one reading of it.
            let next = chunks.get(i + 1).map_or(u64::MAX, |(f, _)| *f);
            let mine: Vec<(&str, u32, u64, &str)> = rest
                .iter()
                .copied()
                .filter(|i| (first..next).contains(&i.2))
                .collect();
            rest.retain(|i| !(first..next).contains(&i.2));
            let bytes = std::mem::take(&mut chunks[i].1);
            let mut prunes = Vec::with_capacity(mine.len());
            {
                let rows = codec::decode_checkpoints_ref(&bytes)
                    .map_err(|e| decode_err(&self.root, "a checkpoint record", e))?;
                for (task, attempt, cseq, policy) in mine {
                    let ok = rows
                        .iter()
                        .find(|(s, _)| *s == cseq)
                        .is_some_and(|(_, row)| row.task == task && row.attempt == attempt);
                    if !ok {
                        return Err(refuse(task, attempt, cseq));
                    }
                    let p = match st.policies.iter().position(|p| p == policy) {
                        Some(p) => p,
                        None => {
                            st.policies.push(policy.to_string());
                            st.policies.len() - 1
                        }
                    };
                    prunes.push((cseq, rec.at, p));
                }
            }
            let p = st.patched.entry((run, first)).or_insert_with(|| Patched {
                bytes,
                prunes: Vec::new(),
                rec: rec.seq,
            });
            p.prunes.extend(prunes);
            p.rec = p.rec.max(rec.seq);
            st.dirty.insert((run, first));
        }
        Ok(())
    }

    /// The rows of a chunk the batch patched (its earlier prune lists and this batch's prunes
    /// applied, in that order), taken out of the patched ones to be held as rows.
    fn unpatch(
        &self,
        run: RunId,
        first: u64,
        st: &mut Staged,
    ) -> Result<Option<Vec<(u64, CheckpointRow)>>, StateError> {
        let Some(p) = st.patched.remove(&(run, first)) else {
            return Ok(None);
        };
        let mut rows = self.hold_rows(run, first, &p.bytes, st)?;
        for (seq, at, policy) in &p.prunes {
            let row = rows.iter_mut().find(|(s, _)| s == seq);
            if let (Some((_, row)), Some(policy)) = (row, st.policies.get(*policy)) {
                row.pruned.get_or_insert_with(|| (*at, policy.clone()));
            }
        }
        Ok(Some(rows))
    }

    /// Mark the checkpoint row at `cseq` of the record's run pruned (by `rec`, under `policy`),
    /// after checking it is the prune's: same task and attempt — the only check a prune gets,
    /// since it leaves the run's state as it was.
    fn prune_row(
        &self,
        rec: &Record,
        task: &str,
        attempt: u32,
        cseq: u64,
        policy: &str,
        st: &mut Staged,
    ) -> Result<(), StateError> {
        let first = self.chunk_of(rec.run, cseq, st)?;
        let row = first.and_then(|f| {
            st.chunks
                .get_mut(&(rec.run, f))
                .and_then(|rows| rows.iter_mut().find(|(s, _)| *s == cseq))
                .map(|(_, row)| (f, row))
        });
        let row = row.filter(|(_, row)| row.task == task && row.attempt == attempt);
        let Some((f, row)) = row else {
            return Err(StateError::Illegal(machine::Illegal::NoTask {
                run: rec.run,
                task: format!("{task} (no checkpoint {cseq} of attempt {attempt})"),
            }));
        };
        if row.pruned.is_none() {
            row.pruned = Some((rec.at, policy.to_string()));
        }
        st.dirty.insert((rec.run, f));
        Ok(())
    }

    /// Write a staged batch: the changed checkpoint chunks, where each run's records now are,
    /// and how far into the log this index has applied. On failure the span cache is dropped.
    pub fn commit(
        &mut self,
        st: Staged,
        places: Vec<(RunId, Vec<Loc>)>,
        logpos: u64,
    ) -> Result<(), StateError> {
        let result = self.commit_inner(st, places, logpos);
        if result.is_err() {
            self.spans.clear();
        }
        result
    }

    fn commit_inner(
        &mut self,
        st: Staged,
        places: Vec<(RunId, Vec<Loc>)>,
        logpos: u64,
    ) -> Result<(), StateError> {
        let mut writes: Vec<Write> = Vec::new();
        for key in &st.dirty {
            if let Some(rows) = st.chunks.get(key) {
                writes.push((
                    key_rec_prefix(b'c', key.0, key.1),
                    Some(codec::encode_checkpoints(rows)),
                ));
            } else if let Some(p) = st.patched.get(key) {
                let prunes: Vec<codec::PruneRef<'_>> = p
                    .prunes
                    .iter()
                    .filter_map(|(seq, at, policy)| {
                        let policy = st.policies.get(*policy)?;
                        Some((
                            *seq,
                            (at.timestamp(), at.timestamp_subsec_nanos()),
                            policy.as_str(),
                        ))
                    })
                    .collect();
                writes.push((
                    key_prunes(key.0, key.1, p.rec),
                    Some(codec::encode_prunes(&prunes)),
                ));
            }
        }
        for key in st.taken {
            writes.push((key, None));
        }
        for (run, locs) in places {
            self.add_spans(run, &locs, &mut writes)?;
        }
        writes.push((K_LOGPOS.to_vec(), Some(logpos.to_le_bytes().to_vec())));
        self.kv.commit(writes, false, false)?;
        // A bounded cache: a sweep over thousands of runs must not keep them all.
        if self.spans.len() > 64 {
            self.spans.clear();
        }
        Ok(())
    }

    /// Add the places of a run's new records to its `e` chunks: a record right after the run's
    /// last span extends it (a run that journals alone is one span), else it starts a new one.
    fn add_spans(
        &mut self,
        run: RunId,
        locs: &[Loc],
        writes: &mut Vec<Write>,
    ) -> Result<(), StateError> {
        if locs.is_empty() {
            return Ok(());
        }
        let (mut chunk, mut v) = match self.spans.remove(&run) {
            Some(c) => c,
            None => {
                // A run has few chunks: scan them forward and keep the last.
                let mut last = (0, Vec::new());
                for pair in self.kv.scan(&key_run(b'e', run), false) {
                    let (k, v) = pair?;
                    let chunk = k
                        .get(9..13)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map_or(0, u32::from_be_bytes);
                    last = (chunk, v);
                }
                last
            }
        };
        for &(off, len) in locs {
            if let Some((loff, llen)) = spans_of(&v).last() {
                let joined = llen as u64 + len as u64;
                if loff + llen as u64 == off && joined <= u32::MAX as u64 {
                    let at = v.len() - 4;
                    v[at..].copy_from_slice(&(joined as u32).to_le_bytes());
                    continue;
                }
            }
            if v.len() / SPAN >= SPANS_PER_CHUNK {
                writes.push((key_chunk(b'e', run, chunk), Some(std::mem::take(&mut v))));
                chunk += 1;
            }
            v.extend_from_slice(&off.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
        }
        writes.push((key_chunk(b'e', run, chunk), Some(v.clone())));
        self.spans.insert(run, (chunk, v));
        Ok(())
    }

    fn decode_rows(&self, v: &[u8]) -> Result<Vec<(u64, CheckpointRow)>, StateError> {
        codec::decode_checkpoints(v).map_err(|e| decode_err(&self.root, "a checkpoint record", e))
    }

    /// The prune lists of chunk (run, first): (key, value), in journal order.
    fn lists_of(&self, run: RunId, first: u64) -> Result<Vec<Pair>, StateError> {
        self.kv
            .scan(&key_rec_prefix(b'q', run, first), false)
            .collect()
    }

    /// Each prune of these lists (values of a chunk's `q` keys), in journal order.
    fn each_prune<'a>(
        &self,
        lists: impl IntoIterator<Item = &'a [u8]>,
        mut each: impl FnMut(u64, DateTime<Utc>, &'a str),
    ) -> Result<(), StateError> {
        for list in lists {
            let prunes = codec::decode_prunes_ref(list)
                .map_err(|e| decode_err(&self.root, "a checkpoint record", e))?;
            for (seq, at, policy) in prunes {
                each(seq, self.when(at)?, policy);
            }
        }
        Ok(())
    }

    /// Apply prune lists (values of a chunk's `q` keys, in journal order) to its rows read in
    /// place: a row keeps its first prune.
    fn apply_ref<'a>(
        &self,
        rows: &mut [(u64, RowRef<'a>)],
        lists: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), StateError> {
        self.each_prune(lists, |seq, at, policy| {
            if let Some((_, row)) = rows.iter_mut().find(|(s, _)| *s == seq) {
                row.pruned.get_or_insert((at, policy));
            }
        })
    }

    /// [`Detail::apply_ref`] for owned rows.
    fn apply_owned(
        &self,
        rows: &mut [(u64, CheckpointRow)],
        lists: &[Pair],
    ) -> Result<(), StateError> {
        self.each_prune(
            lists.iter().map(|(_, v)| v.as_slice()),
            |seq, at, policy| {
                if let Some((_, row)) = rows.iter_mut().find(|(s, _)| *s == seq) {
                    row.pruned.get_or_insert_with(|| (at, policy.to_string()));
                }
            },
        )
    }

    fn when(&self, (secs, nanos): (i64, u32)) -> Result<DateTime<Utc>, StateError> {
        use chrono::TimeZone;
        Utc.timestamp_opt(secs, nanos).single().ok_or_else(|| {
            decode_err(
                &self.root,
                "a checkpoint record",
                codec::CodecError::Corrupt("a timestamp out of range"),
            )
        })
    }

    /// A chunk read from the index as rows the batch holds: its prune lists taken in (and
    /// removed when the batch is written, since the rows carry them then).
    fn hold_rows(
        &self,
        run: RunId,
        first: u64,
        v: &[u8],
        st: &mut Staged,
    ) -> Result<Vec<(u64, CheckpointRow)>, StateError> {
        let mut rows = self.decode_rows(v)?;
        let lists = self.lists_of(run, first)?;
        if !lists.is_empty() {
            self.apply_owned(&mut rows, &lists)?;
            st.taken.extend(lists.into_iter().map(|(k, _)| k));
            // The lists go, so the rows that now carry their prunes must be written, whether or
            // not the batch changes anything else in this chunk (a run whose last chunk is full
            // gets its next checkpoint in a new one).
            st.dirty.insert((run, first));
        }
        Ok(rows)
    }

    /// Load a `c` chunk into the batch's working set.
    fn load_chunk(&self, run: RunId, first: u64, st: &mut Staged) -> Result<(), StateError> {
        if st.chunks.contains_key(&(run, first)) {
            return Ok(());
        }
        let rows = match self.unpatch(run, first, st)? {
            Some(rows) => rows,
            None => match self.kv.get(&key_rec_prefix(b'c', run, first))? {
                Some(v) => self.hold_rows(run, first, &v, st)?,
                None => Vec::new(),
            },
        };
        st.chunks.insert((run, first), rows);
        st.firsts.entry(run).or_default().push(first);
        Ok(())
    }

    /// The first seq of the run's last `c` chunk (loaded into the working set), if it has one.
    fn last_chunk(&self, run: RunId, st: &mut Staged) -> Result<Option<u64>, StateError> {
        if let Some(last) = st.last.get(&run) {
            return Ok(*last);
        }
        let mut last = None;
        for pair in self.kv.scan(&key_run(b'c', run), false) {
            last = Some(seq_of_key(&pair?.0));
        }
        if let Some(f) = last {
            self.load_chunk(run, f, st)?;
        }
        st.last.insert(run, last);
        Ok(last)
    }

    /// The first seq of the `c` chunk that holds the row of checkpoint `seq` (loaded).
    fn chunk_of(&self, run: RunId, seq: u64, st: &mut Staged) -> Result<Option<u64>, StateError> {
        // A chunk this batch already holds that has the row (a sweep prunes a run's checkpoints
        // together): no lookup.
        let holding = st.firsts.get(&run).and_then(|firsts| {
            firsts.iter().copied().find(|f| {
                st.chunks
                    .get(&(run, *f))
                    .is_some_and(|rows| rows.iter().any(|(s, _)| *s == seq))
            })
        });
        if holding.is_some() {
            return Ok(holding);
        }
        // The run's chunks in order (few): the last one starting at or before seq holds it.
        let mut on_disk = None;
        for pair in self.kv.scan(&key_run(b'c', run), false) {
            let (k, v) = pair?;
            let first = seq_of_key(&k);
            if first > seq {
                break;
            }
            on_disk = Some((first, v));
        }
        let on_disk = match on_disk {
            Some((first, v)) => {
                if !st.chunks.contains_key(&(run, first)) {
                    let rows = match self.unpatch(run, first, st)? {
                        Some(rows) => rows,
                        None => self.hold_rows(run, first, &v, st)?,
                    };
                    st.chunks.insert((run, first), rows);
                    st.firsts.entry(run).or_default().push(first);
                }
                Some(first)
            }
            None => None,
        };
        // (The chunk just loaded is among them: it starts at or before seq too.)
        let staged = st
            .firsts
            .get(&run)
            .and_then(|firsts| firsts.iter().copied().filter(|f| *f <= seq).max());
        let first = on_disk.max(staged);
        if let Some(f) = first {
            self.load_chunk(run, f, st)?;
        }
        Ok(first)
    }

    /// The checkpoints of a run, in journal order.
    pub fn checkpoints(&self, run: RunId) -> Result<Vec<Located>, StateError> {
        let mut out = Vec::new();
        for pair in self.kv.scan(&key_run(b'c', run), false) {
            let (k, v) = pair?;
            let mut rows = self.decode_rows(&v)?;
            self.apply_owned(&mut rows, &self.lists_of(run, seq_of_key(&k))?)?;
            for (seq, row) in rows {
                out.push(Located { run, seq, row });
            }
        }
        Ok(out)
    }

    /// At least `limit` checkpoints (whole chunks), newest first, journaled before `before`
    /// (run, seq: the last one a previous page gave) — or the newest, without it.
    pub fn checkpoints_page(
        &self,
        before: Option<(RunId, u64)>,
        limit: usize,
    ) -> Result<Vec<Located>, StateError> {
        let end = match before {
            Some((run, seq)) => key_rec_prefix(b'c', run, seq),
            None => b"d".to_vec(),
        };
        let mut out = Vec::new();
        for pair in self.kv.range_rev(b"c", &end) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = pair?;
            let run = run_of_key(&k).unwrap_or(0);
            let mut rows = self.decode_rows(&v)?;
            self.apply_owned(&mut rows, &self.lists_of(run, seq_of_key(&k))?)?;
            out.extend(
                rows.into_iter()
                    .rev()
                    .map(|(seq, row)| Located { run, seq, row }),
            );
        }
        Ok(out)
    }

    /// [`Detail::checkpoints_page`] without copying the rows out: each row of at least `limit`
    /// (whole chunks), newest first, journaled before `before`, is given to `each` read in place.
    /// Returns how many were given and the place of the last one (the `before` of the next page;
    /// None when there were none).
    pub fn checkpoints_visit<E: From<StateError>>(
        &self,
        before: Option<(RunId, u64)>,
        limit: usize,
        mut each: impl FnMut(RunId, u64, &RowRef<'_>) -> Result<(), E>,
    ) -> Result<(usize, Option<(RunId, u64)>), E> {
        let end = match before {
            Some((run, seq)) => key_rec_prefix(b'c', run, seq),
            None => b"d".to_vec(),
        };
        // The prune lists, walked backwards beside the chunks (both in (run, first) order).
        let qend = match before {
            Some((run, seq)) => key_rec_prefix(b'q', run, seq),
            None => b"r".to_vec(),
        };
        let mut lists = self.kv.range_rev(b"q", &qend);
        let mut ahead: Option<Pair> = None;
        let (mut n, mut last) = (0, None);
        for pair in self.kv.range_rev(b"c", &end) {
            if n >= limit {
                break;
            }
            let (k, v) = pair?;
            let run = run_of_key(&k).unwrap_or(0);
            let chunk = (run, seq_of_key(&k));
            // This chunk's lists (newest first as walked): those of later chunks are skipped
            // (a list of a chunk that is not there names no row).
            let mut mine: Vec<Vec<u8>> = Vec::new();
            loop {
                let next = match ahead.take() {
                    Some(p) => Some(p),
                    None => lists.next().transpose()?,
                };
                let Some((qk, qv)) = next else { break };
                let of = chunk_of_prunes(&qk);
                if of > chunk {
                    continue;
                }
                if of < chunk {
                    ahead = Some((qk, qv));
                    break;
                }
                mine.push(qv);
            }
            mine.reverse();
            let mut rows = codec::decode_checkpoints_ref(&v)
                .map_err(|e| decode_err(&self.root, "a checkpoint record", e))?;
            self.apply_ref(&mut rows, mine.iter().map(Vec::as_slice))?;
            for (seq, row) in rows.iter().rev() {
                each(run, *seq, row)?;
                n += 1;
                last = Some((run, *seq));
            }
        }
        Ok((n, last))
    }

    /// Every record of a run, in journal order, read from the record log where the index says
    /// they are.
    pub fn records(&self, run: RunId) -> Result<Vec<Record>, StateError> {
        let mut out = Vec::new();
        for pair in self.kv.scan(&key_run(b'e', run), false) {
            let (_, v) = pair?;
            for (off, len) in spans_of(&v) {
                let recs = wal::read_span(&self.reader, &self.log_path, off, len)?;
                if recs.iter().any(|r| r.run != run) {
                    return Err(StateError::Corrupt(format!(
                        "the journal index in {} points run {run} at another run's records; move \
                         the journal directory away and wf rebuilds it from the record log",
                        self.root.display()
                    )));
                }
                out.extend(recs);
            }
        }
        Ok(out)
    }

    /// Fold a grown delta log into a table before closing (see `journal`).
    pub fn close(&mut self) -> Result<(), StateError> {
        self.kv.close()
    }
}
