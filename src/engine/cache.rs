//! Cache decisions: a ready task's key (its inputs, command, environment and parameters), whether
//! an earlier result with that key can be reused, and restoring that result's checkpoints.

use chrono::Utc;
use wf_state::{Entry, Reason, RunId, TaskState};

use super::checkpoint::Unrestorable;
use super::{checkpoint, expiry, fingerprint, Decision, Earlier, Engine, Prepared};
use crate::error::{Error, Result};
use crate::render::console::Tone;

/// Why no earlier result has this key: what changed since the components journaled last for a
/// task of this name (`last`: run, attempt, parts).
fn explain_miss(
    task: &str,
    last: Option<&wf_state::codec::Parts>,
    key: &fingerprint::Key,
) -> String {
    match last {
        None => format!("no earlier result of a task named {task}"),
        Some((run, _, old)) => match fingerprint::explain(old, &key.parts) {
            Some(why) => why,
            None => format!(
                "no earlier attempt with the same inputs left a result to reuse (the same inputs since run {run})"
            ),
        },
    }
}

impl Engine<'_> {
    /// Whether `--force` makes this task ignore the cache.
    pub(super) fn forced(&self, task: &str) -> bool {
        match &self.force {
            None => false,
            Some(list) => list.is_empty() || list.iter().any(|t| t == task),
        }
    }

    /// Everything a task's result may depend on: the components its cache key is made of
    /// (docs/retention.md has the table). A dependency added here is in the key, journaled with
    /// each decision, and named when a miss is explained.
    pub(super) fn cache_inputs(
        &self,
        def: &crate::workflow::Task,
    ) -> Result<Vec<(String, fingerprint::Source)>> {
        use fingerprint::Source;
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v.dedup();
            v.join("\n")
        };
        let mut parts = vec![
            ("workflow".to_string(), Source::Text(self.wf.name.clone())),
            ("task".to_string(), Source::Text(def.name.clone())),
            ("command".to_string(), Source::Text(def.run.clone())),
            ("outputs".to_string(), Source::Text(sorted(&def.outputs))),
            (
                "checkpoint".to_string(),
                Source::Text(sorted(&def.checkpoint)),
            ),
        ];
        for (k, v) in self.task_env(def) {
            parts.push((format!("env:{k}"), Source::Text(v)));
        }
        // Variables the task reads from wf's own environment, as it declares (`env_inputs`).
        for name in &def.env_inputs {
            parts.push((
                format!("env_input:{name}"),
                Source::Text(crate::params::env_input_value(name)),
            ));
        }
        for i in &def.inputs {
            parts.push((format!("input:{i}"), Source::Input(i.clone())));
        }
        // Each task it needs, as it is now whatever this run plans: the outputs in the
        // workspace; for a task without outputs, when it last ran (make's phony rule: it ran
        // since, so this runs).
        for n in &def.needs {
            let Some(up) = self.wf.task(n) else {
                continue;
            };
            if up.outputs.is_empty() {
                let last = self.store.last_start(n)?;
                parts.push((format!("upstream:{n}"), Source::Ran(last)));
            }
            for o in &up.outputs {
                parts.push((
                    format!("upstream:{n}:{o}"),
                    Source::Upstream {
                        task: n.clone(),
                        path: o.clone(),
                    },
                ));
            }
        }
        Ok(parts)
    }

    /// Decide a ready task: a cache hit (its entries), or why it must run (with its key).
    pub(super) fn decide(
        &mut self,
        def: &crate::workflow::Task,
        attempts: u32,
    ) -> Result<Decision> {
        if def.outputs.is_empty() {
            return Ok(Decision::Run(Prepared {
                key: None,
                why: "it has no outputs, so it always runs".into(),
                parts: Vec::new(),
            }));
        }
        let inputs = self.cache_inputs(def)?;
        let key = fingerprint::key(&self.wf.dir, &mut self.files, inputs);
        // The parts journaled last for a task of this name: what a miss is explained against,
        // and journaled again only when they changed.
        let last = self.store.last_parts(&def.name)?;
        let parts = match &last {
            Some((_, _, p)) if *p == key.parts => Vec::new(),
            _ => key.parts.clone(),
        };
        let why = if def.manual {
            "a manual task runs whenever it is approved".to_string()
        } else if self.forced(&def.name) {
            "forced by --force".to_string()
        } else if let Some(why) = &key.why_not {
            format!("not cacheable: {why}")
        } else if let Some(fp) = key.key.clone() {
            match self.store.cache_lookup(&fp)? {
                Some(hit) => match self.cache_hit(def, attempts, &hit, fp)? {
                    Ok(mut entries) => {
                        entries.push(Entry::CacheDecision {
                            task: def.name.clone(),
                            attempt: attempts,
                            hit: true,
                            why: format!(
                                "same inputs as run {} (attempt {})",
                                hit.run, hit.attempt
                            ),
                            parts,
                        });
                        return Ok(Decision::Hit(entries));
                    }
                    Err(why) => why,
                },
                None => explain_miss(&def.name, last.as_ref(), &key),
            }
        } else {
            "not cacheable".to_string()
        };
        Ok(Decision::Run(Prepared {
            key: Some(key),
            why,
            parts,
        }))
    }

    /// What the cache needs of a run's records (read once; the current run's are read again).
    pub(super) fn earlier(&mut self, run: RunId) -> Result<&Earlier> {
        if !self.earlier.contains_key(&run) || run == self.run {
            let mut e = Earlier::default();
            for r in self.store.records(run)? {
                if let Entry::Outputs {
                    task,
                    attempt,
                    files,
                } = r.entry
                {
                    e.outputs.insert((task, attempt), files);
                }
            }
            self.earlier.insert(run, e);
        }
        self.earlier
            .get(&run)
            .ok_or_else(|| Error::Internal("a run's records vanished; this is a bug".into()))
    }

    /// If an earlier done attempt (`hit`) had this task's key and its outputs are here (or can be
    /// restored from the object store), the entries that mark the task done from the cache; else
    /// why not.
    pub(super) fn cache_hit(
        &mut self,
        def: &crate::workflow::Task,
        attempts: u32,
        hit: &wf_state::checkpoints::CacheEntry,
        fp: String,
    ) -> Result<std::result::Result<Vec<Entry>, String>> {
        // The checkpoints of the run that holds the hit (read once per run, then reused).
        if !self.run_rows.contains_key(&hit.run) {
            let rows = self.store.checkpoints(hit.run)?;
            self.run_rows.insert(hit.run, rows);
        }
        let rows: Vec<_> = self
            .run_rows
            .get(&hit.run)
            .into_iter()
            .flatten()
            .filter(|c| c.row.task == hit.task && c.row.attempt == hit.attempt)
            .cloned()
            .collect();
        let mut paths: Vec<&str> = rows.iter().map(|c| c.row.path.as_str()).collect();
        paths.sort_unstable();
        paths.dedup();
        let mut want: Vec<&str> = def.checkpoint.iter().map(String::as_str).collect();
        want.sort_unstable();
        want.dedup();
        if paths != want {
            return Ok(Err(format!(
                "run {}'s result with the same inputs has other checkpoints",
                hit.run
            )));
        }
        if let Some(c) = rows.iter().find(|c| c.row.pruned.is_some()) {
            return Ok(Err(format!(
                "run {}'s result with the same inputs was pruned ({})",
                hit.run, c.row.path
            )));
        }
        // Every checkpoint must be here with the same content, or restorable.
        let mut restore = Vec::new();
        for c in &rows {
            // A file whose stamp is unchanged since it was last hashed is not read again
            // (fingerprint::Files::load); links are refused first, as for a checkpoint.
            let now = checkpoint::check_output(&self.wf.dir, &c.row.path)
                .ok()
                .map(|()| self.files.look(&self.wf.dir, &c.row.path));
            match now {
                Some(fingerprint::Look::File { hash, .. }) if hash == c.row.hash => {}
                // Restorable only where no symbolic link leads out of the workflow directory.
                _ if checkpoint::restorable(&self.objects, &self.wf.dir, &c.row.path, &c.row.hash)
                    .is_ok() =>
                {
                    restore.push(c)
                }
                _ => {
                    return Ok(Err(format!(
                        "run {}'s result with the same inputs cannot be restored ({} is gone from the store)",
                        hit.run, c.row.path
                    )))
                }
            }
        }
        // Outputs that are not checkpointed cannot be restored: they must be here, as they were.
        let loose: Vec<&String> = def
            .outputs
            .iter()
            .filter(|o| !def.checkpoint.contains(o))
            .collect();
        let mut kept = Vec::new();
        if !loose.is_empty() {
            let recorded = self
                .earlier(hit.run)?
                .outputs
                .get(&(hit.task.clone(), hit.attempt))
                .cloned()
                .unwrap_or_default();
            for out in loose {
                let was = recorded.iter().find(|(p, _)| p == out).map(|(_, h)| h);
                match (was, checkpoint::hash_file(&self.wf.dir, out)) {
                    (Some(was), Ok(now)) if now.hash == *was => {
                        kept.push((out.clone(), now.hash));
                    }
                    (None, _) => {
                        return Ok(Err(format!(
                            "run {} recorded no hash of output {out}, which is not checkpointed",
                            hit.run
                        )))
                    }
                    (Some(_), Ok(_)) => {
                        return Ok(Err(format!(
                            "output {out} changed since run {} and is not checkpointed, so it cannot be restored",
                            hit.run
                        )))
                    }
                    (Some(_), Err(_)) => {
                        return Ok(Err(format!(
                            "output {out} is gone and is not checkpointed, so it cannot be restored"
                        )))
                    }
                }
            }
        }
        for c in restore {
            match checkpoint::restore(&self.objects, &self.wf.dir, &c.row.path, &c.row.hash)? {
                Ok(_) => {}
                // A rotten object is never materialised: the hit becomes a miss, the task runs.
                Err(Unrestorable::Rotten { hash, .. }) => {
                    self.out.event(
                        Tone::Warn,
                        "!",
                        &format!(
                            "{}: the stored copy of {} ({hash}) is damaged; running the task instead of restoring it (`wf state verify` checks the whole store)",
                            def.name, c.row.path
                        ),
                    );
                    tracing::warn!(event = "rotten_object", task = %def.name, path = %c.row.path, hash = %hash);
                    return Ok(Err(format!(
                        "the stored copy of {} ({hash}) is damaged",
                        c.row.path
                    )));
                }
                // Gone or linked since it was checked: a miss, like any result that cannot be
                // restored.
                Err(_) => {
                    return Ok(Err(format!(
                        "run {}'s result with the same inputs cannot be restored ({} is gone from the store)",
                        hit.run, c.row.path
                    )))
                }
            }
            self.out.event(
                Tone::Dim,
                "↺",
                &format!(
                    "{}: restored {} from the checkpoint store",
                    def.name, c.row.path
                ),
            );
        }
        let now = Utc::now();
        let mut entries = vec![Entry::Transition {
            task: def.name.clone(),
            attempt: attempts,
            from: TaskState::Pending,
            to: TaskState::Done,
            reason: Reason::CacheHit,
            exit_code: None,
        }];
        for c in rows {
            entries.push(Entry::Checkpoint {
                task: def.name.clone(),
                attempt: attempts,
                path: c.row.path,
                hash: c.row.hash,
                bytes: c.row.bytes,
                retention_secs: def.retention.as_secs(),
                expires_at: expiry(now, def.retention),
            });
        }
        if !kept.is_empty() {
            entries.push(Entry::Outputs {
                task: def.name.clone(),
                attempt: attempts,
                files: kept,
            });
        }
        entries.push(Entry::Fingerprint {
            task: def.name.clone(),
            attempt: attempts,
            fingerprint: fp,
        });
        Ok(Ok(entries))
    }
}
