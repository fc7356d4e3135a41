//! `wf gc`'s second half: attempt logs (`.wf/logs/RUN/TASK.N.log`, with its `.metrics`) live
//! under their task's retention like checkpoints. A log expires at its attempt's last journaled
//! moment plus the task's retention (the workflow file's current policy; else the retention
//! recorded with the attempt's checkpoints; else the default class), and is pruned unless it is
//! one of its task's latest `keep_last` logs or its run is not finished.
//!
//! Only what is on disk is looked at: the run directories under `.wf/logs` (never through a
//! link), newest run first, and the records of the runs that still have logs. A log is pruned in
//! its run's `Pruned` record (journaled, durably, before it is unlinked); a log whose prune is
//! journaled but which is still there — a sweep killed between the two — is unlinked by the next
//! sweep without a second record, exactly as a pruned checkpoint's object is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use wf_state::record::PrunedLog;
use wf_state::{Entry, RunId, Store};

use crate::engine;
use crate::error::Result;
use crate::workflow::{Workflow, DEFAULT_RETENTION};

/// One expired log the sweep considered.
pub struct LogRow {
    pub run: RunId,
    pub task: String,
    pub attempt: u32,
    pub bytes: u64,
    pub expired_at: DateTime<Utc>,
    pub policy: String,
    /// Why it is kept; None: pruned.
    pub why: Option<&'static str>,
}

/// What the sweep does with logs: decided before anything is journaled.
#[derive(Default)]
pub struct LogPlan {
    /// Every expired log, kept or pruned, newest run first.
    pub rows: Vec<LogRow>,
    /// The prunes to journal, by run.
    pub pending: BTreeMap<RunId, Vec<PrunedLog>>,
    /// Logs whose prune is journaled already but which are still on disk.
    pub leftovers: Vec<(RunId, String, u32)>,
}

/// A log file's name, `TASK.N.log`, as (task, attempt); None for any other name (the attempt
/// number written as wf writes it, so one file has one reading). (An attempt's `.metrics` file
/// goes with its log; one without a log is not pruned — every attempt has one, often empty.)
pub fn parse_name(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix(".log")?;
    let (task, n) = stem.rsplit_once('.')?;
    let attempt: u32 = n.parse().ok()?;
    (!task.is_empty() && attempt > 0 && attempt.to_string() == n).then_some((task, attempt))
}

/// A run directory's name as a run id (written as wf writes it).
fn parse_run(name: &str) -> Option<RunId> {
    let run: RunId = name.parse().ok()?;
    (run.to_string() == name).then_some(run)
}

/// What the journal says of one attempt: its last moment, the retention recorded with its
/// checkpoints, and whether its log was pruned.
#[derive(Default)]
struct Attempt {
    last: Option<DateTime<Utc>>,
    recorded: Option<u64>,
    pruned: bool,
}

fn attempts(records: &[wf_state::Record]) -> HashMap<(String, u32), Attempt> {
    let mut out: HashMap<(String, u32), Attempt> = HashMap::new();
    for r in records {
        if let Entry::Pruned { logs, .. } = &r.entry {
            for l in logs {
                out.entry((l.task.clone(), l.attempt)).or_default().pruned = true;
            }
            continue;
        }
        // Sweeps do not make an attempt younger: only what the attempt itself journaled counts.
        if matches!(r.entry, Entry::Prune { .. }) {
            continue;
        }
        let (Some(task), Some(attempt)) = (r.entry.task(), r.entry.attempt()) else {
            continue;
        };
        let a = out.entry((task.to_string(), attempt)).or_default();
        a.last = Some(a.last.map_or(r.at, |t| t.max(r.at)));
        if let Entry::Checkpoint { retention_secs, .. } = &r.entry {
            a.recorded = Some(*retention_secs);
        }
    }
    out
}

/// The path of an attempt's log relative to the state directory, and its metrics file's.
pub fn files(run: RunId, task: &str, attempt: u32) -> [PathBuf; 2] {
    let log = engine::log_path(Path::new(""), run, task, attempt);
    [log.clone(), log.with_extension("metrics")]
}

fn size(state_dir: &Path, run: RunId, task: &str, attempt: u32) -> u64 {
    files(run, task, attempt)
        .iter()
        .filter_map(|rel| std::fs::symlink_metadata(state_dir.join(rel)).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Decide every log on disk (without writing anything).
pub fn plan(
    store: &Store,
    state_dir: &Path,
    wf: Option<&Workflow>,
    now: DateTime<Utc>,
    active: &HashSet<RunId>,
    keep_last: u32,
) -> Result<LogPlan> {
    let mut plan = LogPlan::default();
    let list = |rel: &Path| -> Result<Vec<(String, rustix::fs::FileType)>> {
        match wf_state::safe::dir(state_dir, rel, false) {
            Ok(fd) => Ok(wf_state::safe::list(&fd)
                .map_err(wf_state::safe::state_err(
                    &state_dir.join(rel),
                    "listing logs",
                ))?
                .into_iter()
                .map(|(n, k)| (n.to_string_lossy().into_owned(), k))
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => {
                Err(wf_state::safe::state_err(&state_dir.join(rel), "listing logs")(e).into())
            }
        }
    };
    let mut runs: Vec<RunId> = list(Path::new("logs"))?
        .into_iter()
        .filter(|(_, k)| *k == rustix::fs::FileType::Directory)
        .filter_map(|(n, _)| parse_run(&n))
        .collect();
    runs.sort_unstable_by(|a, b| b.cmp(a));
    // Logs of each task seen so far, newest first.
    let mut seen: HashMap<String, u32> = HashMap::new();
    for run in runs {
        let rel = PathBuf::from("logs").join(run.to_string());
        let mut logs: Vec<(String, u32)> = list(&rel)?
            .into_iter()
            .filter(|(_, k)| *k == rustix::fs::FileType::RegularFile)
            .filter_map(|(n, _)| parse_name(&n).map(|(t, a)| (t.to_string(), a)))
            .collect();
        if logs.is_empty() {
            continue;
        }
        // An attempt's log and metrics file are one item.
        logs.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        logs.dedup();
        let journal = attempts(&store.records(run)?);
        for (task, attempt) in logs {
            // A log of an attempt the journal does not know is not wf's to judge: left alone.
            let Some(a) = journal.get(&(task.clone(), attempt)) else {
                continue;
            };
            let Some(last) = a.last else { continue };
            if a.pruned {
                plan.leftovers.push((run, task, attempt));
                continue;
            }
            let n = {
                let n = seen.entry(task.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let policy = wf
                .and_then(|w| w.task(&task))
                .map(|t| t.retention)
                .or(a.recorded.map(Duration::from_secs))
                .unwrap_or(DEFAULT_RETENTION);
            let expires = engine::expiry(last, policy);
            if expires > now {
                continue;
            }
            let why = if active.contains(&run) {
                Some("its run is not finished")
            } else if n <= keep_last {
                Some("latest log of its task (keep_last)")
            } else {
                None
            };
            let bytes = size(state_dir, run, &task, attempt);
            let policy = crate::render::fmt::policy(policy);
            if why.is_none() {
                plan.pending.entry(run).or_default().push(PrunedLog {
                    task: task.clone(),
                    attempt,
                    bytes,
                    policy: policy.clone(),
                });
            }
            plan.rows.push(LogRow {
                run,
                task,
                attempt,
                bytes,
                expired_at: expires,
                policy,
                why,
            });
        }
    }
    Ok(plan)
}

/// Unlink an attempt's log and metrics file (only regular files below the state directory, never
/// through a link); the bytes removed.
pub fn remove(state_dir: &Path, run: RunId, task: &str, attempt: u32) -> u64 {
    files(run, task, attempt)
        .iter()
        .filter_map(|rel| wf_state::safe::remove(state_dir, rel).ok().flatten())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_have_one_reading() {
        assert_eq!(parse_name("ingest.1.log"), Some(("ingest", 1)));
        assert_eq!(parse_name("a.b.12.log"), Some(("a.b", 12)));
        for bad in [
            "ingest.log",
            "ingest.0.log",
            "ingest.01.log",
            "ingest.+1.log",
            ".1.log",
            "ingest.1.metrics",
            "ingest.1.log.tmp",
            "wf.jsonl",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        assert_eq!(parse_run("12"), Some(12));
        assert_eq!(parse_run("012"), None);
        assert_eq!(parse_run("+1"), None);
    }
}
