//! An attempt that ended: check its declared outputs, hash and checkpoint them, read its metrics,
//! and turn it into `done` — or `failed` plus a retry, and the alert that goes with a failure.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use chrono::Utc;
use wf_state::{Entry, Reason, RunId, TaskState};

use super::{checkpoint, expiry, output, process, transition, Attempt, Engine};
use crate::error::{Error, Result};
use crate::render::console::Tone;

/// What an attempt appended to `$WF_METRICS`: a regular file below the state directory, read
/// without following a link (a FIFO or a link planted there reads as nothing), at most 1 MiB.
/// Read through the run's log directory handle when the engine holds one (it always does once an
/// attempt started), else from the state directory down. A missing file (the task reported
/// nothing) is one failed `openat`.
fn read_metrics(root: &Path, dir: Option<&std::os::fd::OwnedFd>, path: &Path) -> String {
    use std::io::Read;
    use wf_state::safe::{open, open_at, How, FILE_MODE};
    let file = match (dir, path.file_name()) {
        (Some(d), Some(name)) => open_at(d, Path::new(name), How::Read, FILE_MODE, path),
        _ => match path.strip_prefix(root) {
            Ok(rel) => open(root, rel, How::Read),
            Err(_) => return String::new(),
        },
    };
    let mut text = String::new();
    if let Ok(f) = file {
        private(&f);
        let _ = f.take(1024 * 1024).read_to_string(&mut text);
    }
    text
}

/// The task made its metrics file with its own umask: made private (0600) like every file of the
/// state directory — unless it has another name too (a hard link the task made to a file of its
/// own, which is not wf's to change).
fn private(f: &std::fs::File) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if let Ok(m) = f.metadata() {
        if m.nlink() == 1 && m.mode() & 0o077 != 0 {
            let _ = f.set_permissions(std::fs::Permissions::from_mode(wf_state::safe::FILE_MODE));
        }
    }
}

/// How many runs before this one [`Engine::last_checkpoint`] looks through for a task's last
/// checkpoint of a path, when no done attempt had the same cache key (each read once per engine).
const RECENT_RUNS: u64 = 8;

/// Whether a store error is about reading the task's output (the task's doing), not about wf's
/// store.
fn output_unreadable(e: &wf_state::StateError) -> bool {
    matches!(e, wf_state::StateError::Io { what, source, .. }
        if *what == "reading an output to checkpoint" && !crate::error::is_disk_full(source))
}

impl Engine<'_> {
    /// The journal entries for a finished attempt (metrics, checkpoints, transitions). An error
    /// is wf's own (its store could not take a checkpoint): the attempt stays `running` in the
    /// journal, wf stops, and `wf resume` runs it again.
    pub(super) fn complete(&mut self, budget: (u32, u32), mut a: Attempt) -> Result<Vec<Entry>> {
        let mut entries = vec![self.usage_entry(&mut a)];
        let metrics_text = read_metrics(&self.root, self.run_dir.as_ref(), &a.metrics);
        let (metrics, warnings) = checkpoint::parse_metrics(&metrics_text);
        for w in warnings {
            self.out.alert(&format!("wf: {}: {w}", a.task));
        }
        for (key, value) in &metrics {
            entries.push(Entry::Metric {
                task: a.task.clone(),
                attempt: a.number,
                key: key.clone(),
                value: value.clone(),
            });
        }
        let took = crate::render::fmt::duration(a.started.elapsed());
        let status = a.status.unwrap_or_else(|| ExitStatus::from_raw(0));
        // A program exec'd without the shell (direct.rs) that dies by signal N ends as `sh -c`
        // would have: exit 128+N (unless wf itself stopped it).
        let code = status.code().or_else(|| {
            status
                .signal()
                .filter(|_| a.proc.direct && a.kill.is_none())
                .map(|s| 128 + s)
        });
        let signal = status.signal().filter(|_| code.is_none());
        let reason = match (&a.kill, code, signal) {
            (Some(k), _, _) => k.reason.clone(),
            (None, Some(0), _) => match self.checkpoint(&a)? {
                Ok(mut cps) => {
                    entries.append(&mut cps);
                    match self.recheck(&a) {
                        Ok(Some(fp)) => {
                            entries.extend(self.loose_outputs(&a));
                            entries.push(Entry::Fingerprint {
                                task: a.task.clone(),
                                attempt: a.number,
                                fingerprint: fp,
                            });
                        }
                        Ok(None) => {}
                        Err(message) => {
                            self.out
                                .alert(&format!("wf: warning: {}: {message}", a.task));
                            tracing::warn!(event = "not cached", run = self.run, task = %a.task, why = %message);
                            entries.push(Entry::Warning {
                                task: a.task.clone(),
                                attempt: a.number,
                                message,
                            });
                        }
                    }
                    entries.push(Entry::Transition {
                        task: a.task.clone(),
                        attempt: a.number,
                        from: TaskState::Running,
                        to: TaskState::Done,
                        reason: Reason::Succeeded,
                        exit_code: Some(0),
                    });
                    if let Some(def) = self.wf.task(&a.task) {
                        let missing: Vec<&str> = def
                            .log
                            .iter()
                            .filter(|k| !metrics.iter().any(|(m, _)| m == *k))
                            .map(String::as_str)
                            .collect();
                        if !missing.is_empty() {
                            let message = format!(
                                "did not report its promised metrics: {}",
                                missing.join(", ")
                            );
                            self.out
                                .alert(&format!("wf: warning: {} {message}", a.task));
                            // Journaled, so history shows it with the attempt.
                            entries.insert(
                                entries.len() - 1,
                                Entry::Warning {
                                    task: a.task.clone(),
                                    attempt: a.number,
                                    message,
                                },
                            );
                        }
                    }
                    self.out
                        .event(Tone::Good, "✓", &format!("{} done in {took}", a.task));
                    tracing::info!(
                        event = "done",
                        run = self.run,
                        task = %a.task,
                        attempt = a.number,
                        duration_ms = a.started.elapsed().as_millis() as u64,
                        metrics = %metrics
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        artifacts = %self
                            .wf
                            .task(&a.task)
                            .map(|d| d.checkpoint.join(" "))
                            .unwrap_or_default()
                    );
                    return Ok(entries);
                }
                Err(reason) => reason,
            },
            (None, Some(c), _) => Reason::Exit(c),
            (None, None, Some(s)) => Reason::Signal(s),
            (None, None, None) => Reason::Other("ended without a status".into()),
        };
        if let Some(message) = self.over_memory(&a, &reason) {
            self.out.alert(&format!("wf: {}", message));
            entries.push(Entry::Warning {
                task: a.task.clone(),
                attempt: a.number,
                message,
            });
        }
        let tail = a.proc.tail.lines(10);
        entries.extend(self.failure(budget, &a.task, a.number, reason, code, &tail));
        Ok(entries)
    }

    /// The journal entry of what an ended attempt used and printed (its log put in order first).
    pub(super) fn usage_entry(&mut self, a: &mut Attempt) -> Entry {
        let cut = match a.proc.finish_log() {
            Ok(cut) => cut,
            Err(e) => {
                self.out.alert(&format!(
                    "wf: cannot put the log of {} in order ({e}); its tail may read out of order",
                    a.task
                ));
                output::Cut::default()
            }
        };
        if cut.dropped > 0 {
            tracing::info!(
                event = "log cut",
                run = self.run,
                task = %a.task,
                attempt = a.number,
                printed = cut.printed,
                dropped = cut.dropped
            );
        }
        let u = a.usage;
        Entry::Usage {
            task: a.task.clone(),
            attempt: a.number,
            cpu_user_us: u.user_us,
            cpu_sys_us: u.sys_us,
            max_rss_kib: u.max_rss_kib,
            source: u.source.to_string(),
            printed: cut.printed,
            head: cut.head,
            dropped: cut.dropped,
        }
    }

    /// One sentence when a failed attempt ran into its `memory_limit`: killed by the cgroup's
    /// OOM killer, or (address-space limit) a failed allocation its output mentions.
    fn over_memory(&self, a: &Attempt, reason: &Reason) -> Option<String> {
        let (bytes, how) = a.proc.memory_limit?;
        let limit = crate::workflow::show_size(bytes);
        match how {
            process::MemoryLimit::Cgroup => {
                let now = a.proc.cgroup.as_ref().and_then(|l| l.oom_kills())?;
                (now > a.oom_before.unwrap_or(0)).then(|| {
                    format!(
                        "{} was killed for going over its memory_limit of {limit} ({reason})",
                        a.task
                    )
                })
            }
            process::MemoryLimit::AddressSpace => {
                // What a refused allocation usually looks like: a message about memory, or
                // the abort (6), kill (9) or segmentation fault (11) of a program that did not
                // check. A guess, said as one.
                let said = a.proc.tail.lines(10).iter().any(|l| {
                    let l = l.to_ascii_lowercase();
                    l.contains("memory") || l.contains("alloc")
                });
                let crashed = matches!(reason, Reason::Signal(6 | 9 | 11));
                (said || crashed).then(|| {
                    format!(
                        "{} failed ({reason}) under its memory_limit of {limit}, probably because an allocation beyond the limit was refused",
                        a.task
                    )
                })
            }
        }
    }

    /// The cache key of a successful attempt, once every file it was made of is checked again:
    /// Ok(None) when it has none; Err (why, naming the file) when one changed while it ran — the
    /// result is kept but not cached.
    pub(super) fn recheck(&mut self, a: &Attempt) -> std::result::Result<Option<String>, String> {
        let Some(key) = &a.key else {
            return Ok(None);
        };
        let own = self.wf.task(&a.task).map(|d| d.outputs.as_slice());
        for (label, path, look) in &key.files {
            // Its own outputs change by design (a task that rewrites an input is linted).
            if own.is_some_and(|o| o.contains(path)) {
                continue;
            }
            if let Some(how) = self.files.recheck(&self.wf.dir, path, look) {
                return Err(format!("{label} {how}; the result is kept but not cached"));
            }
        }
        Ok(key.key.clone())
    }

    /// The hashes of a successful attempt's outputs that are not checkpointed, so that a cache
    /// hit on it can tell they are unchanged (an output that cannot be hashed is left out: a hit
    /// then finds no hash for it and runs the task).
    pub(super) fn loose_outputs(&self, a: &Attempt) -> Option<Entry> {
        let def = self.wf.task(&a.task)?;
        let files: Vec<(String, String)> = def
            .outputs
            .iter()
            .filter(|o| !def.checkpoint.contains(o))
            .filter_map(|o| checkpoint::hash_file(&self.wf.dir, o).ok())
            .map(|h| (h.path, h.hash))
            .collect();
        (!files.is_empty()).then(|| Entry::Outputs {
            task: a.task.clone(),
            attempt: a.number,
            files,
        })
    }

    /// Verify declared outputs and hash the checkpoint ones. The inner error fails the attempt
    /// (a missing or unreadable output is the task's doing); the outer one is wf's (its store
    /// could not take the checkpoint: a full disk, an I/O error under `.wf`), and leaves the
    /// attempt `running` in the journal for `wf resume` to run again.
    pub(super) fn checkpoint(
        &self,
        a: &Attempt,
    ) -> Result<std::result::Result<Vec<Entry>, Reason>> {
        let Some(def) = self.wf.task(&a.task) else {
            return Ok(Ok(Vec::new()));
        };
        for out in &def.outputs {
            if let Err(e) = checkpoint::check_output(&self.wf.dir, out) {
                return Ok(Err(if e == *out {
                    Reason::MissingOutput(out.clone())
                } else {
                    Reason::Error(e)
                }));
            }
        }
        let mut entries = Vec::new();
        let now = Utc::now();
        for path in &def.checkpoint {
            // Hashed and stored (durably) before the `done` that references it is journaled.
            let src = self.wf.dir.join(path);
            let stored = match self
                .objects
                .put_like(&src, || self.last_checkpoint(a, path))
            {
                Ok(s) => s,
                Err(e) if output_unreadable(&e) => {
                    return Ok(Err(Reason::Error(format!("cannot checkpoint {path}: {e}"))))
                }
                Err(e) => return Err(self.store_failed(a, path, &src, e)),
            };
            entries.push(Entry::Checkpoint {
                task: a.task.clone(),
                attempt: a.number,
                path: path.clone(),
                hash: stored.hash,
                bytes: stored.bytes,
                retention_secs: def.retention.as_secs(),
                expires_at: expiry(now, def.retention),
            });
        }
        Ok(Ok(entries))
    }

    /// The hash and size of the checkpoint `path` that this attempt's output probably holds
    /// again: that of the latest done attempt with the same cache key (a task run again with
    /// `--force`, or as a retry, mostly makes the same output), else the latest of this task in
    /// the [`RECENT_RUNS`] runs before this one (a rerun whose inputs changed may still make the
    /// same output). A large output like it is hashed first and, when it is stored already, not
    /// copied (`Objects::put_like`). Only a guess: None when unknown. Each earlier run's rows are
    /// read once per engine.
    fn last_checkpoint(&self, a: &Attempt, path: &str) -> Option<(String, u64)> {
        let of = |run: RunId, task: &str, attempt: Option<u32>| -> Option<(String, u64)> {
            if attempt.is_some() {
                // The attempt that had this key: its own row, not the task's latest in that run.
                let rows = self.store.checkpoints(run).ok()?;
                return rows
                    .into_iter()
                    .rev()
                    .find(|c| {
                        c.row.task == task
                            && c.row.path == path
                            && c.row.pruned.is_none()
                            && attempt == Some(c.row.attempt)
                    })
                    .map(|c| (c.row.hash, c.row.bytes));
            }
            let mut guesses = self.guesses.borrow_mut();
            let latest = match guesses.entry(run) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let mut latest = HashMap::new();
                    for c in self.store.checkpoints(run).ok()? {
                        if c.row.pruned.is_none() {
                            latest.insert((c.row.task, c.row.path), (c.row.hash, c.row.bytes));
                        } else {
                            latest.remove(&(c.row.task, c.row.path));
                        }
                    }
                    e.insert(latest)
                }
            };
            latest.get(&(task.to_string(), path.to_string())).cloned()
        };
        let same_key = a
            .key
            .as_ref()
            .and_then(|k| k.key.as_deref())
            .and_then(|fp| {
                let hit = self.store.cache_lookup(fp).ok()??;
                of(hit.run, &hit.task, Some(hit.attempt))
            });
        same_key.or_else(|| {
            (1..=RECENT_RUNS)
                .map_while(|back| self.run.checked_sub(back).filter(|r| *r > 0))
                .find_map(|run| of(run, &a.task, None))
        })
    }

    /// The error that stops wf when its store could not take a succeeded task's checkpoint.
    pub(super) fn store_failed(
        &self,
        a: &Attempt,
        path: &str,
        src: &Path,
        e: wf_state::StateError,
    ) -> Error {
        let resume = format!(
            "`wf resume {}` (the task runs again: wf keeps no result it could not store)",
            self.run
        );
        let full = matches!(&e, wf_state::StateError::Io { source, .. } if crate::error::is_disk_full(source));
        if full {
            let need = std::fs::metadata(src).map(|m| m.len()).ok();
            let mut err = Error::disk_full(
                &self.root,
                format!(
                    "storing checkpoint {path} of task {}, which succeeded",
                    a.task
                ),
                need,
            );
            if let Error::DiskFull { next, .. } = &mut err {
                *next = resume;
            }
            err
        } else {
            Error::Internal(format!(
                "task {} succeeded but wf could not store its checkpoint {path} ({e}); fix that, then {resume}",
                a.task
            ))
        }
    }

    /// `running → failed`, plus `failed → pending` when a retry is left.
    pub(super) fn failure(
        &mut self,
        (used, max): (u32, u32),
        task: &str,
        attempt: u32,
        reason: Reason,
        exit_code: Option<i32>,
        tail: &[String],
    ) -> Vec<Entry> {
        let mut entries = vec![Entry::Transition {
            task: task.to_string(),
            attempt,
            from: TaskState::Running,
            to: TaskState::Failed,
            reason: reason.clone(),
            exit_code,
        }];
        if used < max {
            let delay = self
                .wf
                .task(task)
                .map(|d| d.retry_delay)
                .unwrap_or_default();
            let not_before =
                Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
            entries.push(transition(
                task,
                attempt,
                TaskState::Failed,
                TaskState::Pending,
                Reason::Retry {
                    n: used + 1,
                    of: max,
                    not_before_ms: not_before.timestamp_millis(),
                },
            ));
            let wait = if delay.is_zero() {
                String::new()
            } else {
                format!(" in {}", crate::render::fmt::duration(delay))
            };
            self.out.event(
                Tone::Warn,
                "↻",
                &format!("{task} failed: {reason}; retry {} of {max}{wait}", used + 1),
            );
            tracing::warn!(event = "retry", run = self.run, task, attempt, reason = %reason);
        } else {
            self.out
                .event(Tone::Bad, "✗", &format!("{task} failed: {reason}"));
            // The end of its output, where the cause usually is (even with -q).
            for line in tail.iter().rev().take(5).rev() {
                self.out.alert(&format!("  {task} | {line}"));
            }
            tracing::warn!(event = "failed", run = self.run, task, attempt, reason = %reason);
            // The alert is journaled in the same batch as the failure it announces.
            entries.push(crate::alert::raise(
                self.wf,
                Some(task),
                attempt,
                reason.to_string(),
                exit_code,
                tail,
            ));
        }
        entries
    }
}
