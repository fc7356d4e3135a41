//! The scheduler: one loop on the main thread that journals, then acts. Each turn it picks the
//! tasks whose needs are done, journals their `running` transitions in one durable batch (group
//! commit), only then spawns them, and waits in `poll` for output, exits, timers and signals.
//! Finished attempts are hashed and journaled (`done` with its checkpoints in one batch).

mod attempt;
mod cache;
pub mod cgroup;
pub mod checkpoint;
mod complete;
mod direct;
pub mod fingerprint;
pub mod gate;
pub mod output;
mod own_files;
pub mod process;
pub mod run;
mod schedule;
mod signals;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use chrono::Utc;
use rustix::process::Signal;
use wf_state::objects::Objects;
use wf_state::{Entry, Reason, RunId, RunSnapshot, RunState, Store, TaskState};

use crate::error::{Error, Result};
use crate::render::console::{Console, Tone};
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
    /// What the attempt used, known once it is reaped.
    usage: process::Usage,
    /// The OOM kills its cgroup had counted when it started (memory_limit by cgroup).
    oom_before: Option<u64>,
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

/// A run's last checkpoint of each (task, path) that is not pruned: (hash, bytes).
type Latest = HashMap<(String, String), (String, u64)>;

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
    /// The checkpoints of earlier runs, by (task, path): the last one's (hash, bytes), read once
    /// per run while this engine lives (earlier runs do not change under the state lock) — what
    /// a large output is guessed to hold again (`complete::last_checkpoint`).
    guesses: std::cell::RefCell<HashMap<RunId, Latest>>,
    /// The run's task names in plan order, and name → position.
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// A handle on the run's log directory (`logs/RUN`), opened (and made) at the first attempt
    /// and kept for the drive: each attempt's metrics name is cleared and read through it
    /// without walking the state directory again.
    run_dir: Option<std::os::fd::OwnedFd>,
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
        .join(metrics_name(task, attempt))
}

/// The name of an attempt's metrics file in the run's log directory.
fn metrics_name(task: &str, attempt: u32) -> PathBuf {
    PathBuf::from(format!("{task}.{attempt}.metrics"))
}

/// The environment marker of an attempt's processes, so resume can find them without a pid.
pub fn attempt_marker(root: &Path, run: RunId, task: &str, attempt: u32) -> String {
    format!("WF_ATTEMPT_KEY={}#{run}#{task}#{attempt}", root.display())
}

/// When a checkpoint made at `now` with this retention expires.
pub fn expiry(now: chrono::DateTime<Utc>, retention: Duration) -> chrono::DateTime<Utc> {
    chrono::Duration::from_std(retention)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC)
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
            guesses: Default::default(),
            run_dir: None,
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
                    &format!(
                        "[journal {}] {task} {}",
                        r.seq,
                        crate::render::entry::describe(r)
                    ),
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
            .map(|a| {
                format!(
                    "{} {}",
                    a.task,
                    crate::render::fmt::duration(a.started.elapsed())
                )
            })
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
                crate::procs::signal_group(a.proc.pid, Signal::TERM);
            }
        }
        let hard_at = Instant::now() + KILL_GRACE;
        let mut killed = false;
        loop {
            let mut all = true;
            for a in &mut self.running {
                if a.status.is_none() {
                    match a.proc.try_wait() {
                        Ok(Some((st, usage))) => {
                            a.status = Some(st);
                            a.usage = usage;
                        }
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
        for mut a in std::mem::take(&mut self.running) {
            a.proc.kill_all();
            entries.push(self.usage_entry(&mut a));
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

/// Why `task` cannot start while its declared `input` is missing, naming the task that should
/// produce it (or saying none does) and what to do.
pub(crate) fn missing_input(wf: &Workflow, task: &str, input: &str) -> String {
    let producer = wf
        .tasks
        .iter()
        .find(|t| t.name != task && t.outputs.iter().any(|o| o == input));
    match producer {
        None => format!(
            "its input {input} does not exist and no task produces it; create it (or declare the task that writes it)"
        ),
        Some(p) if wf.task(task).is_some_and(|t| t.needs.contains(&p.name)) => format!(
            "its input {input} does not exist although task {} produces it (was it removed after {} ran?)",
            p.name, p.name
        ),
        Some(p) => format!(
            "its input {input} does not exist; task {} produces it, but {task} does not need {} (add it to `needs`)",
            p.name, p.name
        ),
    }
}
