//! Attempts while they run: spawn one (after its `running` transition is durable), wait in `poll`
//! for output, exits, timers and signals, copy output to the log and console, and reap what ended.

use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::Signal;
use wf_state::{Entry, Reason};

use super::process::Reaper;
use super::{
    attempt_marker, cgroup, fingerprint, log_path, metrics_name, metrics_path, process, Attempt,
    Engine, Kill, KILL_GRACE, PIPE_GRACE,
};
use crate::error::{Error, Result};
use crate::render::console::Tone;

impl Engine<'_> {
    /// The environment wf gives the task's process that its result may depend on: its declared
    /// `env` and the run's parameters as `WF_PARAM_<NAME>`. (Per-attempt bookkeeping — WF_RUN_ID, WF_ATTEMPT, WF_METRICS, WF_STATE_DIR — is
    /// added by `start` and is not in the cache key.) Everything returned here is both given to
    /// the process and part of the cache key: run parameters and variables passed through from
    /// wf's environment belong here.
    pub(super) fn task_env(&self, def: &crate::workflow::Task) -> Vec<(String, String)> {
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

    /// The run's log directory (made private when missing), opened once per drive.
    pub(super) fn run_dir(&mut self) -> std::io::Result<&std::os::fd::OwnedFd> {
        if self.run_dir.is_none() {
            let rel = std::path::Path::new("logs").join(self.run.to_string());
            self.run_dir = Some(wf_state::safe::dir(&self.root, &rel, true)?);
        }
        self.run_dir.as_ref().ok_or_else(|| {
            std::io::Error::other("the run's log directory is not open; this is a bug")
        })
    }

    /// Spawn one attempt whose `running` transition is already journaled.
    pub(super) fn start(
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
                return Err(super::missing_input(self.wf, task, input));
            }
        }
        let log = log_path(&self.root, self.run, task, attempt);
        let metrics = metrics_path(&self.root, self.run, task, attempt);
        // The metrics name is free before the task appends to it: whatever a stale attempt or a
        // plant left there (a file, a link, a hard link to a file elsewhere) is unlinked, so the
        // task's `>> $WF_METRICS` creates a file of its own inside the run's private log
        // directory and never writes through a link. Not created here: a new inode per attempt
        // is the dearest step of a short task's start on ext4, and most tasks report nothing.
        let dir = self
            .run_dir()
            .map_err(|e| format!("cannot prepare its metrics file: {e}"))?;
        wf_state::safe::clear_at(dir, &metrics_name(task, attempt), &metrics)
            .map_err(|e| format!("cannot prepare its metrics file: {e}"))?;
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
            root: &self.root,
            log: &log,
            log_limit: def.log_limit,
            memory_limit: def.memory_limit,
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
        let mut proc = process::spawn(spec).map_err(|e| format!("cannot run sh: {e}"))?;
        proc.echo = !self.out.quiet;
        let pid = proc.pid;
        let oom_before = proc.cgroup.as_ref().and_then(|l| l.oom_kills());
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
            usage: process::Usage::default(),
            oom_before,
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
    pub(super) fn wait(&mut self, next_timer: Option<Instant>) -> Result<()> {
        if let Some(r) = self.reaper.as_mut() {
            r.flush();
        }
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
    pub(super) fn pump(&mut self, i: usize, stream: usize) {
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
    pub(super) fn reap(&mut self) -> Result<Vec<Entry>> {
        let now = Instant::now();
        for i in 0..self.running.len() {
            let a = &mut self.running[i];
            if a.status.is_none() {
                if let Ok(Some((st, usage))) = a.proc.try_wait() {
                    a.status = Some(st);
                    a.usage = usage;
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
                    crate::procs::signal_group(a.proc.pid, Signal::TERM);
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
}
