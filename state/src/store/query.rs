//! What commands read: run summaries and states, records, checkpoint rows, the cache, the outbox.

use crate::checkpoints::{CacheEntry, Located, RowRef};
use crate::codec::{self, CodecError};
use crate::error::{decode_err, StateError};
use crate::keys::{key_bucket, key_run, key_task, run_of_key, seq_of_key, u64_of};
use crate::machine::{RunSnapshot, RunView};
use crate::record::{Record, RunId};
use crate::wal;

use super::Store;

impl Store {
    /// Every record in the record log, in journal order (sequence order), without loading them
    /// all (`wf state export`).
    pub fn each_record(
        &self,
        mut each: impl FnMut(Record) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        wal::scan(&self.log_path, 0, |r, _, _| each(r))?;
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

    /// [`Store::checkpoints_page`] read in place: each row is given to `each` (newest first)
    /// without being copied out of the index; returns how many and the last one's place (the
    /// `before` of the next page). What `wf gc` walks a million rows with.
    pub fn checkpoints_visit<E: From<StateError>>(
        &self,
        before: Option<(RunId, u64)>,
        limit: usize,
        each: impl FnMut(RunId, u64, &RowRef<'_>) -> Result<(), E>,
    ) -> Result<(usize, Option<(RunId, u64)>), E> {
        self.detail()?.checkpoints_visit(before, limit, each)
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
    pub(super) fn load(&self, run: RunId) -> Result<Option<RunSnapshot>, StateError> {
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
    pub(super) fn cache(&mut self, run: RunId) -> Result<bool, StateError> {
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
