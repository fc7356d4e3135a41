//! The write path: entries are checked against the state machine (and a prune against its
//! checkpoint row), appended to the record log, then indexed in both indexes (`journal/`,
//! `journal/detail/`).

use std::collections::HashMap;

use chrono::Utc;

use crate::codec;
use crate::detail::{Loc, Staged};
use crate::error::{decode_err, StateError};
use crate::journal::Write;
use crate::keys::{
    key_bucket, key_chunk, key_outbox, key_run, key_task, K_LAST, K_LOGPOS, K_NEXT_RUN, K_SEQ,
    K_TAIL,
};
use crate::live::LiveLog;
use crate::machine::{self, RunSnapshot};
use crate::record::RunState;
use crate::record::{Entry, Record, RunId};

use super::Store;

/// Task views per `t` chunk: a commit rewrites only the chunks of the tasks it touched.
const TASKS_PER_CHUNK: usize = 16;

impl Store {
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
        let records = self.write_records(batches, new_run.map(|r| r + 1), durable, None)?;
        // Told once the records are durable (and indexed), in journal order.
        if let Some(mut watch) = self.watcher.take() {
            watch(self, &records);
            self.watcher = Some(watch);
        }
        Ok(records)
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

    /// Check records against the state machine, index them and write them in one batch.
    /// Records come either new (appended to the record log first — fdatasynced when `durable` —
    /// then indexed) or `replayed` from the log up to that offset (with their places in it).
    pub(super) fn write_records(
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
                && b.records.iter().all(|r| match &r.entry {
                    Entry::Prune { .. } => true,
                    // Pruned logs are checked against the run's tasks by the state machine.
                    Entry::Pruned { logs, .. } => logs.is_empty(),
                    _ => false,
                });
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
}

/// One run's records in a batch: new (places filled in after the append) or replayed from the
/// log (with their places).
pub(super) struct Batch {
    pub(super) run: RunId,
    pub(super) records: Vec<Record>,
    pub(super) new: bool,
    pub(super) locs: Vec<(u64, u32)>,
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
