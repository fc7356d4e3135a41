//! One turn of the scheduler: from the run's state, gate manual tasks, decide and start ready ones,
//! and commit the turn's transitions (with those of attempts that just ended) in one durable batch
//! before anything is spawned; older runs waiting at a gate this run reaches end superseded.

use std::time::Instant;

use chrono::Utc;
use wf_state::{Entry, Reason, RunId, RunState, TaskState};

use super::{transition, Decision, Engine, Light};
use crate::crash;
use crate::error::{Error, Result};
use crate::render::console::Tone;

/// A task that starts this turn: its name, attempt number and cache key.
type Start = (String, u32, Option<super::fingerprint::Key>);

/// What one pass over the ready tasks decided.
struct Turn {
    gated: Vec<String>,
    starts: Vec<Start>,
    next_timer: Option<Instant>,
}

impl Engine<'_> {
    /// Gate manual tasks and start ready ones, committing them in one durable batch together with
    /// `ended` (the entries of attempts that just ended): in a chain, a task's `done` and the next
    /// task's `running` share one fsync. Returns the earliest retry time still ahead.
    pub(super) fn schedule(&mut self, ended: Vec<Entry>) -> Result<Option<Instant>> {
        let mut light = self.light(&ended)?;
        let has_done = ended.iter().any(|e| {
            matches!(
                e,
                Entry::Transition {
                    to: TaskState::Done | TaskState::Failed,
                    ..
                }
            )
        });
        let retry = ended.iter().any(|e| {
            matches!(
                e,
                Entry::Transition {
                    reason: Reason::Retry { .. },
                    ..
                }
            )
        });
        let mut entries = ended;
        let turn = self.pick(&mut light, &mut entries)?;
        // Write-ahead: the `running` transitions are durable before any process exists, and
        // the outcome of ended attempts before anything downstream of them starts.
        if has_done {
            crash::point("before-done");
        }
        if !turn.starts.is_empty() {
            crash::point("before-running");
        }
        let superseded = self.supersede(&turn.gated)?;
        if superseded.is_empty() {
            self.commit(entries)?;
        } else {
            // The gate and the older runs it supersedes are one atomic batch.
            crash::point("before-supersede");
            let mut batches = vec![(self.run, entries)];
            batches.extend(superseded);
            let records = self.store.commit_many(batches)?;
            crash::point("after-supersede");
            self.show(&records);
        }
        if has_done {
            crash::point("after-done");
        }
        if retry {
            crash::point("retry-wait");
        }
        self.spawn(turn.starts)?;
        Ok(turn.next_timer)
    }

    /// What scheduling needs of each task, read from the journal's view without copying it,
    /// with the not-yet-committed entries of attempts that just ended applied on top.
    fn light(&mut self, ended: &[Entry]) -> Result<Vec<Light>> {
        let mut light: Vec<Light> = match self.store.view(self.run)? {
            Some(view) => view
                .tasks
                .iter()
                .map(|t| Light {
                    state: t.state,
                    attempts: t.attempts,
                    approved: t.approved,
                    not_before_ms: t.not_before_ms,
                })
                .collect(),
            None => return Err(Error::Internal("the run vanished; this is a bug".into())),
        };
        if self.names.len() != light.len() {
            self.names = match self.store.view(self.run)? {
                Some(view) => view.tasks.iter().map(|t| t.name.clone()).collect(),
                None => Vec::new(),
            };
            self.index = self
                .names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect();
        }
        for e in ended {
            if let Entry::Transition {
                task,
                attempt,
                to,
                reason,
                ..
            } = e
            {
                if let Some(l) = self.index.get(task).and_then(|&i| light.get_mut(i)) {
                    l.state = *to;
                    if *to == TaskState::Running {
                        l.attempts = *attempt;
                    }
                    match reason {
                        Reason::Retry { not_before_ms, .. } => {
                            l.not_before_ms = Some(*not_before_ms)
                        }
                        Reason::Approved => l.approved = true,
                        _ => {}
                    }
                }
            }
        }
        Ok(light)
    }

    /// This turn's decisions over the ready tasks, in plan order: the transitions go to `entries`
    /// (gates, cache hits, starts), and the turn says which tasks reached a gate, which start, and
    /// the earliest retry time still ahead.
    fn pick(&mut self, light: &mut [Light], entries: &mut Vec<Entry>) -> Result<Turn> {
        let now = Utc::now();
        let mut gated: Vec<String> = Vec::new();
        let mut starts = Vec::new();
        let mut next_timer: Option<Instant> = None;
        let busy: std::collections::HashSet<String> =
            self.running.iter().map(|a| a.task.clone()).collect();
        // The plan is in topological order: a task found up to date in this pass is seen done by
        // its dependents later in the same pass.
        for i in 0..light.len() {
            let t = light[i];
            let name = self.names[i].clone();
            if t.state != TaskState::Pending || busy.contains(&name) {
                continue;
            }
            let wf = self.wf;
            let Some(def) = wf.task(&name) else {
                continue;
            };
            // Needs outside the run's plan (`--only`, `--from`) count as done.
            let ready = def.needs.iter().all(|n| {
                self.index
                    .get(n)
                    .is_none_or(|&j| light[j].state == TaskState::Done)
            });
            if !ready {
                continue;
            }
            // A manual task waits for its approval before anything is decided.
            let at_gate = def.manual && !t.approved;
            let prepared = match self.prepared.remove(&name) {
                Some(p) => Some(p),
                None if at_gate => None,
                None => match self.decide(def, t.attempts)? {
                    Decision::Hit(hit) => {
                        entries.extend(hit);
                        light[i].state = TaskState::Done;
                        self.out
                            .event(Tone::Good, "≡", &format!("{name} is up to date (cached)"));
                        tracing::info!(event = "cached", run = self.run, task = %name);
                        continue;
                    }
                    Decision::Run(p) => Some(p),
                },
            };
            if at_gate {
                entries.push(transition(
                    &name,
                    t.attempts,
                    TaskState::Pending,
                    TaskState::Waiting,
                    Reason::Gate,
                ));
                gated.push(name.clone());
                let owner = def
                    .owner
                    .as_deref()
                    .map(|o| format!(" (owner {o})"))
                    .unwrap_or_default();
                self.out.event(
                    Tone::Warn,
                    "⏸",
                    &format!("{name} waits for approval{owner}"),
                );
                continue;
            }
            if let Some(nb) = t
                .not_before_ms
                .and_then(|ms| chrono::TimeZone::timestamp_millis_opt(&Utc, ms).single())
            {
                if nb > now {
                    let wait = (nb - now).to_std().unwrap_or_default();
                    let at = Instant::now() + wait;
                    next_timer = Some(next_timer.map_or(at, |n: Instant| n.min(at)));
                    if let Some(p) = prepared {
                        self.prepared.insert(name, p);
                    }
                    continue;
                }
            }
            let Some(prepared) = prepared else {
                continue;
            };
            if self.running.len() + starts.len() >= self.jobs {
                self.prepared.insert(name, prepared);
                continue;
            }
            let attempt = t.attempts + 1;
            entries.push(Entry::CacheDecision {
                task: name.clone(),
                attempt,
                hit: false,
                why: prepared.why,
                parts: prepared.parts,
            });
            entries.push(transition(
                &name,
                attempt,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            ));
            starts.push((name, attempt, prepared.key));
        }
        Ok(Turn {
            gated,
            starts,
            next_timer,
        })
    }

    /// Spawn the attempts whose `running` transitions are durable; one that cannot start fails
    /// (with a retry when its budget allows), journaled at once.
    fn spawn(&mut self, starts: Vec<Start>) -> Result<()> {
        let mut spawned = Vec::new();
        let mut failed = Vec::new();
        for (task, attempt, key) in starts {
            crash::point("before-spawn");
            match self.start(&task, attempt, key) {
                Ok(entry) => spawned.push(entry),
                Err(why) => failed.push((task, attempt, why)),
            }
            crash::point("after-spawn");
        }
        // Pids guard no side effect: they ride along with the next commit. (A crash before it
        // loses only the pid; resume still finds the attempt's processes by their marks.)
        self.ended.extend(spawned);
        if !failed.is_empty() {
            let mut entries = Vec::new();
            for (task, attempt, why) in failed {
                // The `failed` line that the commit shows says why, in one sentence.
                let budget = self.budget(&task)?;
                entries.extend(self.failure(budget, &task, attempt, Reason::Error(why), None, &[]));
            }
            self.commit(entries)?;
        }
        Ok(())
    }

    /// Older runs waiting at a manual task this run reaches now stop waiting: each ends
    /// `superseded` by this run (journaled in the same batch as this run's gate).
    pub(super) fn supersede(&mut self, gated: &[String]) -> Result<Vec<(RunId, Vec<Entry>)>> {
        if gated.is_empty() {
            return Ok(Vec::new());
        }
        let mut out: Vec<(RunId, Vec<Entry>)> = Vec::new();
        for older in self.store.active_runs()? {
            if older.id >= self.run || older.state != RunState::Waiting {
                continue;
            }
            let Some(view) = self.store.view(older.id)? else {
                continue;
            };
            let at = gated.iter().find(|task| {
                view.task(task)
                    .is_some_and(|t| t.state == TaskState::Waiting)
            });
            if let Some(task) = at {
                self.out.event(
                    Tone::Dim,
                    "⏭",
                    &format!(
                        "run {} no longer waits at {task}: superseded by run {}",
                        older.id, self.run
                    ),
                );
                tracing::info!(event = "superseded", run = older.id, by = self.run, task = %task);
                out.push((
                    older.id,
                    vec![Entry::Superseded {
                        task: task.clone(),
                        by: self.run,
                    }],
                ));
            }
        }
        Ok(out)
    }
}
