//! The scheduler: one loop on the main thread that journals, then acts. Each turn it picks the
//! tasks whose needs are done, journals their `running` transitions in one durable batch (group
//! commit), only then spawns them, and waits in `poll` for output, exits, timers and signals.
//! Finished attempts are hashed and journaled (`done` with its checkpoints in one batch).

pub mod cgroup;
pub mod checkpoint;
pub mod crash;
mod direct;
pub mod fingerprint;
pub mod process;
mod signals;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use chrono::Utc;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::Signal;
use wf_state::objects::Objects;
use wf_state::{Entry, Reason, RunId, RunSnapshot, RunState, Store, TaskState};

use crate::console::{self, Console, Tone};
use crate::error::{Error, Result};
use crate::workflow::Workflow;
use process::{Proc, Reaper};
use signals::Signals;

/// How long a task gets between SIGTERM and SIGKILL (timeouts, Ctrl-C).
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long wf waits for stray holders of an attempt's pipes after its shell exited.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// How a drive of a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Stopped at manual gates: these tasks wait for approval.
    Waiting(Vec<String>),
    /// These tasks failed (after their retries).
    Failed(Vec<String>),
    /// Stopped by this signal; the run is interrupted and can be resumed.
    Stopped(i32),
}

/// What scheduling needs to know of a task (a small copy, not the journal's whole view).
#[derive(Clone, Copy)]
struct Light {
    state: TaskState,
    attempts: u32,
    approved: bool,
    not_before_ms: Option<i64>,
}

struct Kill {
    reason: Reason,
    hard_at: Instant,
}

struct Attempt {
    task: String,
    number: u32,
    proc: Proc,
    started: Instant,
    deadline: Option<Instant>,
    kill: Option<Kill>,
    status: Option<ExitStatus>,
    exited_at: Option<Instant>,
    metrics: PathBuf,
    /// The cache key made as the attempt was decided (journaled with its `done` unless a file
    /// it was made of changed while the attempt ran).
    key: Option<fingerprint::Key>,
}

/// A ready task's cache decision.
enum Decision {
    /// Done from the cache: the entries that say so.
    Hit(Vec<Entry>),
    /// It must run: its key (if it has one) and why it is not a cache hit.
    Run(Prepared),
}

/// Of an earlier run's records, by (task, attempt): the hashes of its outputs that are not
/// checkpointed.
#[derive(Default)]
struct Earlier {
    outputs: HashMap<(String, u32), Vec<(String, String)>>,
}

/// A task decided to run, until it starts (it may wait for a free slot).
struct Prepared {
    key: Option<fingerprint::Key>,
    why: String,
    /// The key's parts to journal with the decision: none when they are the task's previous ones.
    parts: Vec<(String, String)>,
}

pub struct Engine<'a> {
    wf: &'a Workflow,
    store: &'a mut Store,
    run: RunId,
    root: PathBuf,
    jobs: usize,
    out: Console,
    running: Vec<Attempt>,
    reaper: Option<Reaper>,
    signals: Signals,
    /// The owner mark given to every task process (see `process::Reaper`).
    owner: String,
    /// Entries of attempts that ended, committed with the next turn's starts.
    ended: Vec<Entry>,
    objects: Objects,
    /// `--force`: None uses the cache; an empty list ignores it for every task, else for these.
    force: Option<Vec<String>>,
    /// The run's parameters: WF_PARAM_<NAME> for every task, and part of every cache key.
    params: Vec<(String, String)>,
    /// Content hashes of the files read for cache keys in this drive.
    files: fingerprint::Files,
    /// Tasks decided to run that wait for a free slot.
    prepared: HashMap<String, Prepared>,
    /// What cache decisions and cache hits need of earlier runs' records, read once per run.
    earlier: HashMap<RunId, Earlier>,
    /// Checkpoint rows of earlier runs that cache hits came from.
    run_rows: HashMap<RunId, Vec<wf_state::checkpoints::Located>>,
    /// The run's task names in plan order, and name → position.
    names: Vec<String>,
    index: HashMap<String, usize>,
}

/// The log file of an attempt.
pub fn log_path(root: &Path, run: RunId, task: &str, attempt: u32) -> PathBuf {
    root.join("logs")
        .join(run.to_string())
        .join(format!("{task}.{attempt}.log"))
}

fn metrics_path(root: &Path, run: RunId, task: &str, attempt: u32) -> PathBuf {
    root.join("logs")
        .join(run.to_string())
        .join(format!("{task}.{attempt}.metrics"))
}

/// What an attempt appended to `$WF_METRICS`: a regular file below the state directory, read
/// without following a link (a FIFO or a link planted there reads as nothing), at most 1 MiB.
fn read_metrics(root: &Path, path: &Path) -> String {
    use std::io::Read;
    let Ok(rel) = path.strip_prefix(root) else {
        return String::new();
    };
    let mut text = String::new();
    if let Ok(f) = wf_state::safe::open(root, rel, wf_state::safe::How::Read) {
        let _ = f.take(1024 * 1024).read_to_string(&mut text);
    }
    text
}

/// The environment marker of an attempt's processes, so resume can find them without a pid.
pub fn attempt_marker(root: &Path, run: RunId, task: &str, attempt: u32) -> String {
    format!("WF_ATTEMPT_KEY={}#{run}#{task}#{attempt}", root.display())
}

/// Whether a store error is about reading the task's output (the task's doing), not about wf's
/// store.
fn output_unreadable(e: &wf_state::StateError) -> bool {
    matches!(e, wf_state::StateError::Io { what, source, .. }
        if *what == "reading an output to checkpoint" && !crate::error::is_disk_full(source))
}

/// When a checkpoint made at `now` with this retention expires.
pub fn expiry(now: chrono::DateTime<Utc>, retention: Duration) -> chrono::DateTime<Utc> {
    chrono::Duration::from_std(retention)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC)
}

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

fn transition(task: &str, attempt: u32, from: TaskState, to: TaskState, reason: Reason) -> Entry {
    Entry::Transition {
        task: task.to_string(),
        attempt,
        from,
        to,
        reason,
        exit_code: None,
    }
}

impl<'a> Engine<'a> {
    pub fn new(
        wf: &'a Workflow,
        store: &'a mut Store,
        run: RunId,
        jobs: usize,
        out: Console,
    ) -> Result<Engine<'a>> {
        let signals = Signals::install().map_err(Error::io("installing signal handlers", "wf"))?;
        let root = store.root().to_path_buf();
        let store_root = root.clone();
        if out.verbose {
            out.event(
                Tone::Dim,
                "·",
                &format!("containment: {}", cgroup::containment()),
            );
        }
        let files = fingerprint::Files::load(&root);
        Ok(Engine {
            wf,
            store,
            run,
            root,
            jobs: jobs.max(1),
            out,
            running: Vec::new(),
            reaper: None,
            signals,
            owner: process::owner_mark(),
            ended: Vec::new(),
            objects: Objects::new(store_root.as_path()),
            force: None,
            params: Vec::new(),
            files,
            prepared: HashMap::new(),
            earlier: HashMap::new(),
            names: Vec::new(),
            index: HashMap::new(),
            run_rows: HashMap::new(),
        })
    }

    /// Journal entries of this run (durably); with -v, print each record as it is journaled.
    fn commit(&mut self, entries: Vec<Entry>) -> Result<()> {
        let records = self.store.commit(self.run, entries)?;
        self.show(&records);
        Ok(())
    }

    /// With -v, print each record as it is journaled.
    fn show(&self, records: &[wf_state::Record]) {
        if self.out.verbose {
            for r in records {
                let task = r.entry.task().unwrap_or("");
                self.out.event(
                    Tone::Dim,
                    "·",
                    &format!("[journal {}] {task} {}", r.seq, crate::report::describe(r)),
                );
            }
        }
    }

    /// A task's retry budget: (retries used, retries allowed).
    fn budget(&mut self, task: &str) -> Result<(u32, u32)> {
        Ok(self
            .store
            .view(self.run)?
            .and_then(|s| s.task(task))
            .map_or((0, 0), |t| (t.retries_used, t.max_retries)))
    }

    fn snapshot(&mut self) -> Result<RunSnapshot> {
        self.store.snapshot(self.run)?.ok_or_else(|| {
            Error::Internal(format!(
                "run {} vanished from the journal; this is a bug",
                self.run
            ))
        })
    }

    /// Ignore the cache: for every task (an empty list) or for these.
    pub fn force(mut self, force: Option<Vec<String>>) -> Self {
        self.force = force;
        self
    }

    /// The run's parameters (journaled with its start).
    pub fn params(mut self, params: Vec<(String, String)>) -> Self {
        self.params = params;
        self
    }

    /// Drive the run until nothing more can start.
    pub fn drive(&mut self) -> Result<Outcome> {
        self.store.attach_live(self.run)?;
        // The run's log directory, where attempts write their logs and metrics.
        let logs = Path::new("logs").join(self.run.to_string());
        wf_state::safe::dir(&self.root, &logs, true).map_err(wf_state::safe::state_err(
            &self.root.join(&logs),
            "creating the log directory",
        ))?;
        loop {
            if let Some(sig) = self.signals.stop_requested() {
                return self.stop(sig);
            }
            let ended = std::mem::take(&mut self.ended);
            let next_timer = self.schedule(ended)?;
            if self.running.is_empty() && next_timer.is_none() {
                break;
            }
            self.show_status();
            self.wait(next_timer)?;
            let ended = self.reap()?;
            self.ended.extend(ended);
        }
        self.out.clear_status();
        // The content hashes of this run's files, for the next run's cache checks.
        self.files.save(&self.root);
        self.finish()
    }

    /// The live status line (on a terminal): done/total, what runs and for how long, failures.
    fn show_status(&mut self) {
        if !self.out.live {
            return;
        }
        let (done, total, failed) = match self.store.view(self.run) {
            Ok(Some(s)) => (
                s.run.count(TaskState::Done),
                s.tasks.len(),
                s.run.count(TaskState::Failed),
            ),
            _ => return,
        };
        let running: Vec<String> = self
            .running
            .iter()
            .map(|a| format!("{} {}", a.task, console::duration(a.started.elapsed())))
            .collect();
        let mut text = format!("● {done}/{total} done");
        if !running.is_empty() {
            text.push_str(&format!(" · running: {}", running.join(", ")));
        }
        if failed > 0 {
            text.push_str(&format!(" · {failed} failed"));
        }
        self.out.status(&text);
    }

    /// Gate manual tasks and start ready ones, committing them in one durable batch together with
    /// `ended` (the entries of attempts that just ended): in a chain, a task's `done` and the next
    /// task's `running` share one fsync. Returns the earliest retry time still ahead.
    fn schedule(&mut self, ended: Vec<Entry>) -> Result<Option<Instant>> {
        // What scheduling needs of each task, read from the journal's view without copying it,
        // with the not-yet-committed entries of attempts that just ended applied on top.
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
        for e in &ended {
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
        let now = Utc::now();
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
        // Write-ahead: the `running` transitions are durable before any process exists, and
        // the outcome of ended attempts before anything downstream of them starts.
        if has_done {
            crash::point("before-done");
        }
        if !starts.is_empty() {
            crash::point("before-running");
        }
        let superseded = self.supersede(&gated)?;
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
                self.out
                    .event(Tone::Bad, "✗", &format!("{task} could not start: {why}"));
                let budget = self.budget(&task)?;
                entries.extend(self.failure(budget, &task, attempt, Reason::Error(why), None, &[]));
            }
            self.commit(entries)?;
        }
        Ok(next_timer)
    }

    /// Older runs waiting at a manual task this run reaches now stop waiting: each ends
    /// `superseded` by this run (journaled in the same batch as this run's gate).
    fn supersede(&mut self, gated: &[String]) -> Result<Vec<(RunId, Vec<Entry>)>> {
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

    /// Whether `--force` makes this task ignore the cache.
    fn forced(&self, task: &str) -> bool {
        match &self.force {
            None => false,
            Some(list) => list.is_empty() || list.iter().any(|t| t == task),
        }
    }

    /// The environment wf gives the task's process that its result may depend on: its declared
    /// `env` and the run's parameters as `WF_PARAM_<NAME>`. (Per-attempt bookkeeping — WF_RUN_ID, WF_ATTEMPT, WF_METRICS, WF_STATE_DIR — is
    /// added by `start` and is not in the cache key.) Everything returned here is both given to
    /// the process and part of the cache key: run parameters and variables passed through from
    /// wf's environment belong here.
    fn task_env(&self, def: &crate::workflow::Task) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = def
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &self.params {
            env.push((crate::params::env_name(k), v.clone()));
        }
        env
    }

    /// Everything a task's result may depend on: the components its cache key is made of
    /// (docs/retention.md has the table). A dependency added here is in the key, journaled with
    /// each decision, and named when a miss is explained.
    fn cache_inputs(
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
    fn decide(&mut self, def: &crate::workflow::Task, attempts: u32) -> Result<Decision> {
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
    fn earlier(&mut self, run: RunId) -> Result<&Earlier> {
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
    fn cache_hit(
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
                _ if self.objects.has(&c.row.hash)
                    && checkpoint::linked_parent(&self.wf.dir, &c.row.path).is_none() =>
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
            match self
                .objects
                .copy_out(&c.row.hash, &self.wf.dir, &c.row.path)
            {
                Ok(_) => {}
                // A rotten object is never materialised: the hit becomes a miss, the task runs.
                Err(wf_state::StateError::Rotten { hash, .. }) => {
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
                Err(e) => return Err(e.into()),
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

    /// Spawn one attempt whose `running` transition is already journaled.
    fn start(
        &mut self,
        task: &str,
        attempt: u32,
        key: Option<fingerprint::Key>,
    ) -> std::result::Result<Entry, String> {
        let def = self
            .wf
            .task(task)
            .ok_or_else(|| format!("task {task} is not in the workflow"))?;
        for input in &def.inputs {
            if !self.wf.dir.join(input).exists() {
                return Err(format!("its input {input} does not exist"));
            }
        }
        let log = log_path(&self.root, self.run, task, attempt);
        let metrics = metrics_path(&self.root, self.run, task, attempt);
        // The metrics file exists before the task appends to it: private, and a regular file of
        // wf's (a link planted at its name is refused, never written through).
        if let Ok(rel) = metrics.strip_prefix(&self.root) {
            wf_state::safe::create_fresh(&self.root, rel)
                .map_err(|e| format!("cannot create its metrics file: {e}"))?;
        }
        let mut env = self.task_env(def);
        env.push(("WF_RUN_ID".into(), self.run.to_string()));
        env.push(("WF_TASK".into(), task.to_string()));
        env.push(("WF_ATTEMPT".into(), attempt.to_string()));
        env.push(("WF_METRICS".into(), metrics.display().to_string()));
        env.push(("WF_WORKFLOW".into(), self.wf.name.clone()));
        env.push(("WF_STATE_DIR".into(), self.root.display().to_string()));
        env.push((process::OWNER_VAR.into(), self.owner.clone()));
        let marker = attempt_marker(&self.root, self.run, task, attempt);
        if let Some((k, v)) = marker.split_once('=') {
            env.push((k.to_string(), v.to_string()));
        }
        let spec = process::Spec {
            command: &def.run,
            dir: &self.wf.dir,
            env,
            log: &log,
            cgroup: cgroup::available().and_then(|c| match c.lease(&self.root) {
                Ok(l) => l,
                Err(e) => {
                    self.out.alert(&format!(
                        "wf: warning: {e}; tasks run without cgroups (process groups only)"
                    ));
                    tracing::warn!(event = "cgroup", error = %e, "attempts run without cgroups");
                    None
                }
            }),
        };
        // The reaper exists before the first task does.
        let reaper = self.reaper.get_or_insert_with(Reaper::start);
        if let Some(tree) = cgroup::available().and_then(|c| c.tree()) {
            reaper.contain(&tree);
        }
        let proc = process::spawn(spec).map_err(|e| format!("cannot run sh: {e}"))?;
        let pid = proc.pid;
        reaper.watch(pid);
        let retry = if attempt > 1 {
            format!(" (attempt {attempt})")
        } else {
            String::new()
        };
        self.out.event(Tone::Plain, "▶", &format!("{task}{retry}"));
        tracing::info!(event = "started", run = self.run, task, attempt, pid);
        let now = Instant::now();
        self.running.push(Attempt {
            task: task.to_string(),
            number: attempt,
            proc,
            started: now,
            deadline: def.timeout.map(|t| now + t),
            kill: None,
            status: None,
            exited_at: None,
            metrics,
            key,
        });
        Ok(Entry::Spawned {
            task: task.to_string(),
            attempt,
            pid,
            pid_start: wf_state::process::start_time(pid),
        })
    }

    /// Wait for output, an exit, a signal, a timeout or the next retry.
    fn wait(&mut self, next_timer: Option<Instant>) -> Result<()> {
        let now = Instant::now();
        // On a terminal, wake often enough to keep the elapsed times of the status line live.
        let tick = if self.out.live {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(1)
        };
        let mut until = now + tick;
        for a in &self.running {
            for t in [a.deadline, a.kill.as_ref().map(|k| k.hard_at)]
                .into_iter()
                .flatten()
            {
                until = until.min(t);
            }
            if let Some(e) = a.exited_at {
                until = until.min(e + PIPE_GRACE);
            }
        }
        if let Some(t) = next_timer {
            until = until.min(t);
        }
        let timeout = until.saturating_duration_since(now);
        let ready: Vec<(usize, usize)> = {
            let mut fds = vec![PollFd::from_borrowed_fd(self.signals.fd(), PollFlags::IN)];
            let mut map = Vec::new();
            for (i, a) in self.running.iter().enumerate() {
                for (stream, fd) in a.proc.open_streams() {
                    fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
                    map.push((i, stream));
                }
            }
            let ts = rustix::event::Timespec {
                tv_sec: timeout.as_secs() as i64,
                tv_nsec: timeout.subsec_nanos() as i64,
            };
            match poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::Internal(format!("poll failed: {e}"))),
            }
            fds[1..]
                .iter()
                .zip(map)
                .filter(|(fd, _)| !fd.revents().is_empty())
                .map(|(_, m)| m)
                .collect()
        };
        self.signals.drain();
        for (i, stream) in ready {
            self.pump(i, stream);
        }
        Ok(())
    }

    /// Move an attempt's output from its pipe to its log and the console.
    fn pump(&mut self, i: usize, stream: usize) {
        let Some(a) = self.running.get_mut(i) else {
            return;
        };
        let mut lines = Vec::new();
        let mut log_error = None;
        let drained = a.proc.drain(stream, &mut lines, &mut log_error);
        if let Some(e) = log_error {
            self.out.alert(&format!(
                "wf: cannot store the output of {} in its log ({e}); the task goes on, its output is shown but not kept",
                a.task
            ));
        }
        if let Err(e) = drained {
            self.out
                .alert(&format!("wf: cannot capture the output of {}: {e}", a.task));
            if stream == 0 {
                a.proc.out = None;
            } else {
                a.proc.err = None;
            }
        }
        let task = a.task.clone();
        for line in lines {
            self.out.task_output(&task, &line);
        }
    }

    /// Notice exits and timeouts; returns the journal entries of every attempt that ended (the
    /// next `schedule` commits them).
    fn reap(&mut self) -> Result<Vec<Entry>> {
        let now = Instant::now();
        for i in 0..self.running.len() {
            let a = &mut self.running[i];
            if a.status.is_none() {
                if let Ok(Some(st)) = a.proc.child.try_wait() {
                    a.status = Some(st);
                    a.exited_at = Some(now);
                    // Whatever the shell left behind (in its group or its cgroup) does not
                    // outlive the attempt.
                    a.proc.kill_all();
                }
            }
            if a.status.is_none() {
                if let Some(k) = &a.kill {
                    if now >= k.hard_at {
                        a.proc.kill_all();
                    }
                } else if a.deadline.is_some_and(|d| now >= d) {
                    let secs = a.started.elapsed().as_secs();
                    process::signal_group(a.proc.pid, Signal::TERM);
                    a.kill = Some(Kill {
                        reason: Reason::Timeout(secs),
                        hard_at: now + KILL_GRACE,
                    });
                    self.out.event(
                        Tone::Bad,
                        "⏱",
                        &format!("{} timed out after {secs}s; stopping it", a.task),
                    );
                }
            }
            for stream in 0..2 {
                self.pump(i, stream);
            }
            let a = &mut self.running[i];
            if a.exited_at.is_some_and(|e| now >= e + PIPE_GRACE) {
                a.proc.out = None;
                a.proc.err = None;
            }
        }
        let (finished, still): (Vec<Attempt>, Vec<Attempt>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|a| a.status.is_some() && a.proc.out.is_none() && a.proc.err.is_none());
        self.running = still;
        if finished.is_empty() {
            return Ok(Vec::new());
        }
        let mut entries = Vec::new();
        for a in finished {
            if let Some(r) = self.reaper.as_mut() {
                r.forget(a.proc.pid);
            }
            // Only the task's retry budget is needed, not a copy of the whole run's state.
            let budget = self.budget(&a.task)?;
            entries.extend(self.complete(budget, a)?);
        }
        Ok(entries)
    }

    /// The journal entries for a finished attempt (metrics, checkpoints, transitions). An error
    /// is wf's own (its store could not take a checkpoint): the attempt stays `running` in the
    /// journal, wf stops, and `wf resume` runs it again.
    fn complete(&mut self, budget: (u32, u32), a: Attempt) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        let metrics_text = read_metrics(&self.root, &a.metrics);
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
        let took = console::duration(a.started.elapsed());
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
        entries.extend(self.failure(budget, &a.task, a.number, reason, code, &a.proc.tail));
        Ok(entries)
    }

    /// The cache key of a successful attempt, once every file it was made of is checked again:
    /// Ok(None) when it has none; Err (why, naming the file) when one changed while it ran — the
    /// result is kept but not cached.
    fn recheck(&mut self, a: &Attempt) -> std::result::Result<Option<String>, String> {
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
    fn loose_outputs(&self, a: &Attempt) -> Option<Entry> {
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
    fn checkpoint(&self, a: &Attempt) -> Result<std::result::Result<Vec<Entry>, Reason>> {
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
            let stored = match self.objects.put(&src) {
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

    /// The error that stops wf when its store could not take a succeeded task's checkpoint.
    fn store_failed(&self, a: &Attempt, path: &str, src: &Path, e: wf_state::StateError) -> Error {
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
    fn failure(
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
                format!(" in {}", console::duration(delay))
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

    /// Ctrl-C or SIGTERM: stop every attempt (TERM, then KILL after the grace period), journal
    /// them as interrupted, and leave the run resumable.
    fn stop(&mut self, sig: i32) -> Result<Outcome> {
        self.signals.clear();
        self.out.clear_status();
        // Attempts that ended before the signal are journaled as they ended.
        let ended = std::mem::take(&mut self.ended);
        self.commit(ended)?;
        for a in &self.running {
            if a.status.is_none() {
                process::signal_group(a.proc.pid, Signal::TERM);
            }
        }
        let hard_at = Instant::now() + KILL_GRACE;
        let mut killed = false;
        loop {
            let mut all = true;
            for a in &mut self.running {
                if a.status.is_none() {
                    match a.proc.child.try_wait() {
                        Ok(Some(st)) => a.status = Some(st),
                        _ => all = false,
                    }
                }
            }
            if all {
                break;
            }
            if !killed && (Instant::now() >= hard_at || self.signals.stop_requested().is_some()) {
                for a in &self.running {
                    a.proc.kill_all();
                }
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut entries = Vec::new();
        for i in 0..self.running.len() {
            for stream in 0..2 {
                self.pump(i, stream);
            }
        }
        let why = format!("stopped by {}", signals::name(sig));
        for a in std::mem::take(&mut self.running) {
            a.proc.kill_all();
            if let Some(r) = self.reaper.as_mut() {
                r.forget(a.proc.pid);
            }
            entries.push(transition(
                &a.task,
                a.number,
                TaskState::Running,
                TaskState::Pending,
                Reason::Interrupted(why.clone()),
            ));
        }
        self.commit(entries)?;
        Ok(Outcome::Stopped(sig))
    }

    /// Journal how the run ended.
    fn finish(&mut self) -> Result<Outcome> {
        let snap = self.snapshot()?;
        let names = |s: TaskState| -> Vec<String> {
            snap.tasks
                .iter()
                .filter(|t| t.state == s)
                .map(|t| t.name.clone())
                .collect()
        };
        let failed = names(TaskState::Failed);
        let waiting = names(TaskState::Waiting);
        let pending = names(TaskState::Pending);
        let (state, reason, outcome) = if !failed.is_empty() {
            (
                RunState::Failed,
                format!("failed: {}", failed.join(", ")),
                Outcome::Failed(failed),
            )
        } else if !waiting.is_empty() {
            (
                RunState::Waiting,
                format!("waiting for approval: {}", waiting.join(", ")),
                Outcome::Waiting(waiting),
            )
        } else if !pending.is_empty() {
            (
                RunState::Failed,
                format!("could not run: {}", pending.join(", ")),
                Outcome::Failed(pending),
            )
        } else {
            (RunState::Done, "all tasks done".to_string(), Outcome::Done)
        };
        if snap.run.state == RunState::Running {
            tracing::info!(event = "run ended", run = self.run, state = %state, reason = %reason);
            self.store
                .commit(self.run, vec![Entry::RunEnded { state, reason }])?;
        }
        Ok(outcome)
    }
}
