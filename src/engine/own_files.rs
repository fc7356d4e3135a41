//! A run is only ever continued on its own files (design §4): before `wf resume`, `wf approve` or
//! `wf run --resume` starts a task of an existing run, every file the run's done tasks
//! checkpointed must be the version they produced. Another version in the workspace (a newer
//! run's, or an edit) is replaced by the run's own from the object store, verified by hash and
//! journaled (`Restored`); when the run's own is gone from the store and the file holds another
//! run's version, wf refuses rather than run on another run's data.

use std::collections::HashMap;

use wf_state::objects::Objects;
use wf_state::{Entry, Reason, RunId, RunSnapshot, Store, TaskState};

use super::checkpoint::{self, Unrestorable, Verified};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::render::console::Tone;
use crate::workflow::Workflow;

/// A checkpoint as it is verified: attempt, path, hash.
type Recorded = (u32, String, String);

/// How many of the newest runs are searched for the one whose version a file holds.
const SEARCH_RUNS: usize = 200;

/// The checkpointed outputs of each done task's final attempt, from the run's records.
fn done_checkpoints(store: &Store, run: RunId) -> Result<HashMap<String, Vec<Recorded>>> {
    let mut map: HashMap<String, Vec<Recorded>> = HashMap::new();
    for rec in store.records(run)? {
        if let Entry::Checkpoint {
            task,
            attempt,
            path,
            hash,
            ..
        } = rec.entry
        {
            let v = map.entry(task).or_default();
            v.retain(|(a, _, _)| *a == attempt);
            v.push((attempt, path, hash));
        }
    }
    Ok(map)
}

/// Which run checkpointed a version of a file: (path, hash) → the newest other run that did,
/// over the newest [`SEARCH_RUNS`] runs; read once, when the first file is found changed.
#[derive(Default)]
struct Writers(Option<HashMap<(String, String), RunId>>);

impl Writers {
    fn of(&mut self, store: &Store, path: &str, hash: &str, not: RunId) -> Result<Option<RunId>> {
        if self.0.is_none() {
            let mut map = HashMap::new();
            let ids: Vec<RunId> = store
                .runs()
                .take(SEARCH_RUNS)
                .filter_map(|r| r.ok().map(|r| r.id))
                .filter(|id| *id != not)
                .collect();
            // Newest first: the first run seen with a version is the newest that made it.
            for id in ids {
                for c in store.checkpoints(id)? {
                    map.entry((c.row.path, c.row.hash)).or_insert(id);
                }
            }
            self.0 = Some(map);
        }
        Ok(self
            .0
            .as_ref()
            .and_then(|m| m.get(&(path.to_string(), hash.to_string())).copied()))
    }
}

/// Make the workspace hold the versions `snap`'s done tasks produced, before the run continues;
/// `then` says what the user can do instead when wf must refuse. Returns the entries to journal
/// with the continuation: `Restored` for each file put back, and `done → pending` for a done
/// task whose output is gone with no other run's version in its place (it runs again).
pub fn put_back(
    ctx: &Ctx,
    wf: &Workflow,
    store: &mut Store,
    snap: &RunSnapshot,
    then: &str,
) -> Result<Vec<Entry>> {
    let run = snap.run.id;
    let checkpoints = done_checkpoints(store, run)?;
    let objects = Objects::new(store.root());
    let mut entries = Vec::new();
    let mut writers = Writers::default();
    for t in snap.tasks.iter().filter(|t| t.state == TaskState::Done) {
        let mut rerun = None;
        for (attempt, path, hash) in checkpoints.get(&t.name).into_iter().flatten() {
            let (found, why) = match checkpoint::verify_or_restore(&objects, &wf.dir, path, hash)? {
                Verified::Holds => continue,
                Verified::Restored { found } => {
                    let replaced = match &found {
                        Some(f) => writers.of(store, path, f, run)?,
                        None => None,
                    };
                    let whose = match replaced {
                        Some(r) => format!("run {r}'s version"),
                        None if found.is_some() => "another version".to_string(),
                        None => "nothing".to_string(),
                    };
                    ctx.out.event(
                        Tone::Dim,
                        "↺",
                        &format!(
                            "{}: put back run {run}'s {path} from the checkpoint store (the workspace held {whose})",
                            t.name
                        ),
                    );
                    entries.push(Entry::Restored {
                        task: t.name.clone(),
                        attempt: *attempt,
                        path: path.clone(),
                        hash: hash.clone(),
                        found,
                        replaced,
                    });
                    continue;
                }
                Verified::Lost { found, why } => (found, why),
            };
            let replaced = match &found {
                Some(f) => writers.of(store, path, f, run)?,
                None => None,
            };
            if let Some(other) = replaced {
                return Err(Error::Usage(format!(
                    "{path}, which {} produced in run {run}, now holds run {other}'s version and run {run}'s is no longer in the checkpoint store, so run {run} cannot continue on its own data; {then}",
                    t.name
                )));
            }
            rerun = Some(match found {
                _ if matches!(why, Unrestorable::Rotten { .. }) => {
                    format!("{path} changed and its stored copy ({hash}) is damaged")
                }
                Some(_) => format!("{path} changed"),
                None => format!("{path} is missing"),
            });
            break;
        }
        if let Some(why) = rerun {
            ctx.out.event(
                Tone::Warn,
                "↻",
                &format!("{}: {why}; running it again", t.name),
            );
            entries.push(Entry::Transition {
                task: t.name.clone(),
                attempt: t.attempts,
                from: TaskState::Done,
                to: TaskState::Pending,
                reason: Reason::OutputsChanged(why),
                exit_code: None,
            });
        }
    }
    refuse_rewritten_unstored(wf, store, snap, then)?;
    Ok(entries)
}

/// Whether the paths are equal or one is a directory holding the other.
fn overlaps(a: &str, b: &str) -> bool {
    let under = |c: &str, d: &str| c.strip_prefix(d).is_some_and(|r| r.starts_with('/'));
    a == b || under(a, b) || under(b, a)
}

/// An output a done task declares but does not checkpoint has no journaled hash: wf cannot put
/// the run's version back. When a task still to run in this run reads it and another run has run
/// the producing task since, the workspace may hold that run's version: refuse.
fn refuse_rewritten_unstored(
    wf: &Workflow,
    store: &mut Store,
    snap: &RunSnapshot,
    then: &str,
) -> Result<()> {
    let run = snap.run.id;
    let mut at_risk = Vec::new();
    for t in snap.tasks.iter().filter(|t| t.state == TaskState::Done) {
        let Some(def) = wf.task(&t.name) else {
            continue;
        };
        for out in def.outputs.iter().filter(|o| !def.checkpoint.contains(o)) {
            let read_later = snap.tasks.iter().any(|u| {
                u.state != TaskState::Done
                    && wf
                        .task(&u.name)
                        .is_some_and(|d| d.inputs.iter().any(|i| overlaps(i, out)))
            });
            if read_later {
                at_risk.push((t.name.clone(), t.ended_at, out.clone()));
            }
        }
    }
    if at_risk.is_empty() {
        return Ok(());
    }
    let ids: Vec<RunId> = store
        .runs()
        .take(SEARCH_RUNS)
        .filter_map(|r| r.ok().map(|r| r.id))
        .filter(|id| *id != run)
        .collect();
    for id in ids {
        let Some(other) = store.view(id)? else {
            continue;
        };
        for (task, ended, out) in &at_risk {
            let rewrote = other
                .task(task)
                .and_then(|o| o.started_at)
                .is_some_and(|s| ended.is_none_or(|e| s > e));
            if rewrote {
                return Err(Error::Usage(format!(
                    "{out}, which {task} produced in run {run}, is not checkpointed and run {id} ran {task} since, so run {run}'s version cannot be put back; {then} (and checkpoint {out} so this cannot recur)"
                )));
            }
        }
    }
    Ok(())
}
