//! A run as a timeline: its attempts, retry delays, gate waits and marks per task, plus the
//! run's resumes, ends, checkpoints, metrics and decisions, derived from its journal records.
//! Plain data, no HTML: the page (`render::page`) and the chart geometry (`chart`) read it.

pub mod chart;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use wf_state::{Entry, Reason, Record, RunSnapshot, RunState, TaskState};

use crate::render::fmt as f;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
    Interrupted,
    Running,
}

impl Outcome {
    pub fn class(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "int",
            Outcome::Running => "running",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Running => "still running",
        }
    }
}

/// One attempt of a task: from its transition to running to the next transition out of it.
#[derive(Debug)]
pub struct Attempt {
    pub n: u32,
    pub start: DateTime<Utc>,
    /// `None` while it is still running.
    pub end: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub to: Option<TaskState>,
    pub exit_code: Option<i32>,
    pub reason: Option<Reason>,
    pub pid: Option<u32>,
    /// For an attempt found interrupted when `wf` came back: the last journal record before that,
    /// i.e. the last time `wf` is known to have been alive.
    pub lost_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    Gate,
    Retry,
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub approved: bool,
    pub user: String,
    pub note: Option<String>,
}

/// Time a task spent waiting: at its manual gate, or for its retry delay.
#[derive(Debug)]
pub struct Wait {
    pub kind: WaitKind,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    /// The attempt it follows (retry) or the attempts so far (gate).
    pub attempt: u32,
    /// Retry: n of max, and the earliest time the retry may start.
    pub retry: Option<(u32, u32, Option<DateTime<Utc>>)>,
    pub decision: Option<Decision>,
    /// What ended it, when not a decision ("started attempt 2", "the run ended").
    pub ended_by: Option<String>,
}

#[derive(Debug)]
pub enum MarkKind {
    CacheHit,
    OutputsChanged(String),
}

#[derive(Debug)]
pub struct Mark {
    pub at: DateTime<Utc>,
    pub kind: MarkKind,
}

#[derive(Debug, Default)]
pub struct Lane {
    pub attempts: Vec<Attempt>,
    pub waits: Vec<Wait>,
    pub marks: Vec<Mark>,
    pub open_attempt: Option<usize>,
    pub open_wait: Option<usize>,
}

impl Lane {
    pub fn close_wait(&mut self, at: DateTime<Utc>, why: &str) -> Option<usize> {
        let i = self.open_wait.take()?;
        if let Some(w) = self.waits.get_mut(i) {
            w.end = Some(at);
            if w.decision.is_none() && w.ended_by.is_none() {
                w.ended_by = Some(why.to_string());
            }
        }
        Some(i)
    }
}

#[derive(Debug)]
pub struct Ckpt {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub task: String,
    pub attempt: u32,
    pub path: String,
    pub hash: String,
    pub bytes: u64,
    pub expires_at: DateTime<Utc>,
    pub pruned: Option<(DateTime<Utc>, String)>,
}

#[derive(Debug)]
pub struct MetricRow {
    pub at: DateTime<Utc>,
    pub task: String,
    pub attempt: u32,
    pub key: String,
    pub value: String,
}

#[derive(Debug)]
pub struct DecisionRow {
    pub at: DateTime<Utc>,
    pub task: String,
    pub decision: Decision,
    pub waited_ms: Option<i64>,
}

#[derive(Debug)]
pub struct Resumed {
    pub at: DateTime<Utc>,
    pub user: String,
    pub pid: u32,
}

#[derive(Debug, Default)]
pub struct Started {
    pub user: String,
    pub host: String,
    pub file: String,
    pub args: Vec<String>,
    pub pid: u32,
    /// The run's parameters and options (its `RunOptions` record), as text.
    pub options: String,
}

pub struct Timeline {
    /// Left edge of the chart: the run's start.
    pub t0: DateTime<Utc>,
    /// Right edge of the data: the last record, or `edge` when something is still open.
    pub t1: DateTime<Utc>,
    /// Where open attempts and waits end: `now` (never before the last record).
    pub edge: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// Something (an attempt or a wait) is still open.
    pub open: bool,
    pub lanes: Vec<Lane>,
    pub resumes: Vec<Resumed>,
    /// Every `RunEnded`: when, in which state, why (a run that waits at a gate ends, then resumes).
    pub ended: Vec<(DateTime<Utc>, RunState, String)>,
    pub started: Started,
    pub checkpoints: Vec<Ckpt>,
    pub metrics: Vec<MetricRow>,
    pub decisions: Vec<DecisionRow>,
    /// The records span more than one UTC day, so times also show the date.
    pub multi_day: bool,
}

impl Timeline {
    pub fn build(snap: &RunSnapshot, records: &[Record], now: DateTime<Utc>) -> Timeline {
        let index: HashMap<&str, usize> = snap
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let mut lanes: Vec<Lane> = snap.tasks.iter().map(|_| Lane::default()).collect();
        let mut resumes = Vec::new();
        let mut ended = Vec::new();
        let mut started = Started::default();
        let mut checkpoints: Vec<Ckpt> = Vec::new();
        let mut metrics = Vec::new();
        let mut decisions = Vec::new();
        let first = records.first().map_or(snap.run.started_at, |r| r.at);
        let t0 = first.min(snap.run.started_at);
        let mut last = t0;

        // The store stamps all records of one commit with the same time. A commit that resumes or
        // ends the run and interrupts attempts noticed the interruption late: the attempt was lost
        // somewhere after the commit before it.
        let mut i = 0;
        while i < records.len() {
            let at = records[i].at;
            let mut j = i;
            while j < records.len() && records[j].at == at {
                j += 1;
            }
            let group = &records[i..j];
            let late = group
                .iter()
                .any(|r| matches!(r.entry, Entry::RunResumed { .. } | Entry::RunEnded { .. }));
            let before = if i > 0 { Some(records[i - 1].at) } else { None };
            for rec in group {
                last = last.max(rec.at);
                let lost_at = if late { before } else { None };
                apply(
                    rec,
                    lost_at,
                    &index,
                    &mut lanes,
                    &mut Sink {
                        resumes: &mut resumes,
                        ended: &mut ended,
                        started: &mut started,
                        checkpoints: &mut checkpoints,
                        metrics: &mut metrics,
                        decisions: &mut decisions,
                    },
                );
            }
            i = j;
        }
        if let Some(e) = snap.run.ended_at {
            last = last.max(e);
        }
        let edge = now.max(last);
        let open = lanes
            .iter()
            .any(|l| l.open_attempt.is_some() || l.open_wait.is_some());
        let t1 = if open { edge } else { last };
        let multi_day = t0.date_naive() != t1.date_naive();
        Timeline {
            t0,
            t1,
            edge,
            now,
            open,
            lanes,
            resumes,
            ended,
            started,
            checkpoints,
            metrics,
            decisions,
            multi_day,
        }
    }

    pub fn end_of(&self, end: Option<DateTime<Utc>>) -> DateTime<Utc> {
        end.unwrap_or(self.edge)
    }

    /// Who started the run (the run view names whoever last took it over).
    pub fn started_by(&self, snap: &RunSnapshot) -> String {
        if self.started.user.is_empty() {
            snap.run.user.clone()
        } else {
            self.started.user.clone()
        }
    }

    pub fn started_host<'a>(&'a self, snap: &'a RunSnapshot) -> &'a str {
        if self.started.host.is_empty() {
            &snap.run.host
        } else {
            &self.started.host
        }
    }
}

/// Where `apply` puts what is not per task.
struct Sink<'a> {
    resumes: &'a mut Vec<Resumed>,
    ended: &'a mut Vec<(DateTime<Utc>, RunState, String)>,
    started: &'a mut Started,
    checkpoints: &'a mut Vec<Ckpt>,
    metrics: &'a mut Vec<MetricRow>,
    decisions: &'a mut Vec<DecisionRow>,
}

fn apply(
    rec: &Record,
    lost_at: Option<DateTime<Utc>>,
    index: &HashMap<&str, usize>,
    lanes: &mut [Lane],
    sink: &mut Sink<'_>,
) {
    let at = rec.at;
    let lane_of = |task: &str| index.get(task).copied();
    match &rec.entry {
        Entry::RunStarted {
            user,
            host,
            file,
            args,
            pid,
            ..
        } => {
            *sink.started = Started {
                user: user.clone(),
                host: host.clone(),
                file: file.clone(),
                args: args.clone(),
                pid: *pid,
                options: std::mem::take(&mut sink.started.options),
            };
        }
        Entry::RunOptions {
            params,
            force,
            only,
            from,
            jobs,
        } => {
            sink.started.options =
                crate::render::entry::options_text(params, force, only, from, *jobs);
        }
        Entry::Superseded { by, task } => {
            sink.ended.push((
                at,
                RunState::Superseded,
                format!("run {by} reached {task} later"),
            ));
            for lane in lanes.iter_mut() {
                lane.close_wait(at, "the run was superseded");
            }
        }
        Entry::RunResumed { user, pid, .. } => sink.resumes.push(Resumed {
            at,
            user: user.clone(),
            pid: *pid,
        }),
        Entry::RunEnded { state, reason } => {
            sink.ended.push((at, *state, reason.clone()));
            if matches!(state, RunState::Done | RunState::Failed) {
                for lane in lanes.iter_mut() {
                    lane.close_wait(at, "the run ended");
                }
            }
        }
        Entry::Transition {
            task,
            attempt,
            from,
            to,
            reason,
            exit_code,
        } => {
            let Some(lane) = lane_of(task).and_then(|i| lanes.get_mut(i)) else {
                return;
            };
            if *from == TaskState::Running || *to == TaskState::Running {
                if let Some(a) = lane
                    .open_attempt
                    .take()
                    .and_then(|i| lane.attempts.get_mut(i))
                {
                    a.end = Some(at);
                    a.to = Some(*to);
                    a.exit_code = *exit_code;
                    a.reason = Some(reason.clone());
                    let interrupted = matches!(reason, Reason::Interrupted(_));
                    a.outcome = match to {
                        _ if interrupted => Outcome::Interrupted,
                        TaskState::Done => Outcome::Done,
                        TaskState::Failed => Outcome::Failed,
                        _ => Outcome::Interrupted,
                    };
                    if interrupted {
                        a.lost_at = lost_at.filter(|l| *l > a.start && *l < at);
                    }
                }
            }
            if *from == TaskState::Waiting {
                lane.close_wait(at, &format!("{reason}"));
            }
            match (to, reason) {
                (TaskState::Running, _) => {
                    lane.close_wait(at, &format!("attempt {attempt} started"));
                    lane.open_attempt = Some(lane.attempts.len());
                    lane.attempts.push(Attempt {
                        n: *attempt,
                        start: at,
                        end: None,
                        outcome: Outcome::Running,
                        to: None,
                        exit_code: None,
                        reason: None,
                        pid: None,
                        lost_at: None,
                    });
                }
                (TaskState::Waiting, _) => {
                    lane.close_wait(at, "waiting at the gate");
                    lane.open_wait = Some(lane.waits.len());
                    lane.waits.push(Wait {
                        kind: WaitKind::Gate,
                        start: at,
                        end: None,
                        attempt: *attempt,
                        retry: None,
                        decision: None,
                        ended_by: None,
                    });
                }
                (
                    TaskState::Pending,
                    Reason::Retry {
                        n,
                        of,
                        not_before_ms,
                    },
                ) => {
                    lane.close_wait(at, "retried");
                    lane.open_wait = Some(lane.waits.len());
                    lane.waits.push(Wait {
                        kind: WaitKind::Retry,
                        start: at,
                        end: None,
                        attempt: *attempt,
                        retry: Some((*n, *of, DateTime::from_timestamp_millis(*not_before_ms))),
                        decision: None,
                        ended_by: None,
                    });
                }
                (TaskState::Done, Reason::CacheHit) => lane.marks.push(Mark {
                    at,
                    kind: MarkKind::CacheHit,
                }),
                (TaskState::Pending, Reason::OutputsChanged(why)) => lane.marks.push(Mark {
                    at,
                    kind: MarkKind::OutputsChanged(why.clone()),
                }),
                (TaskState::Done | TaskState::Failed, _) => {
                    lane.close_wait(at, &format!("{to}: {reason}"));
                }
                _ => {}
            }
        }
        Entry::Spawned {
            task, attempt, pid, ..
        } => {
            if let Some(a) = lane_of(task)
                .and_then(|i| lanes.get_mut(i))
                .and_then(|l| l.attempts.iter_mut().rev().find(|a| a.n == *attempt))
            {
                a.pid = Some(*pid);
            }
        }
        Entry::Checkpoint {
            task,
            attempt,
            path,
            hash,
            bytes,
            expires_at,
            ..
        } => sink.checkpoints.push(Ckpt {
            seq: rec.seq,
            at,
            task: task.clone(),
            attempt: *attempt,
            path: path.clone(),
            hash: hash.clone(),
            bytes: *bytes,
            expires_at: *expires_at,
            pruned: None,
        }),
        Entry::Metric {
            task,
            attempt,
            key,
            value,
        } => sink.metrics.push(MetricRow {
            at,
            task: task.clone(),
            attempt: *attempt,
            key: key.clone(),
            value: value.clone(),
        }),
        Entry::Approval { task, user, note } => decide(
            rec,
            lane_of(task).and_then(|i| lanes.get_mut(i)),
            task,
            Decision {
                approved: true,
                user: user.clone(),
                note: note.clone(),
            },
            sink,
        ),
        Entry::Rejection { task, user, note } => decide(
            rec,
            lane_of(task).and_then(|i| lanes.get_mut(i)),
            task,
            Decision {
                approved: false,
                user: user.clone(),
                note: Some(note.clone()),
            },
            sink,
        ),
        Entry::Prune {
            task,
            checkpoint_seq,
            path,
            hash,
            policy,
            ..
        } => {
            let found = sink
                .checkpoints
                .iter()
                .position(|c| c.seq == *checkpoint_seq)
                .or_else(|| {
                    sink.checkpoints
                        .iter()
                        .position(|c| c.task == *task && c.path == *path && c.hash == *hash)
                })
                .and_then(|i| sink.checkpoints.get_mut(i));
            if let Some(c) = found {
                c.pruned = Some((at, policy.clone()));
            }
        }
        Entry::Pruned { checkpoints, .. } => {
            for p in checkpoints {
                if let Some(c) = sink
                    .checkpoints
                    .iter_mut()
                    .find(|c| c.seq == p.checkpoint_seq)
                {
                    c.pruned = Some((at, p.policy.to_string()));
                }
            }
        }
        // Fingerprints, and any kind of entry newer than this page, appear in the journal list.
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

fn decide(
    rec: &Record,
    lane: Option<&mut Lane>,
    task: &str,
    decision: Decision,
    sink: &mut Sink<'_>,
) {
    let mut waited_ms = None;
    if let Some(lane) = lane {
        if let Some(w) = lane.open_wait.and_then(|i| lane.waits.get_mut(i)) {
            if w.kind == WaitKind::Gate {
                w.decision = Some(decision.clone());
                waited_ms = Some(f::ms_between(w.start, rec.at));
                lane.close_wait(rec.at, "");
            }
        }
    }
    sink.decisions.push(DecisionRow {
        at: rec.at,
        task: task.to_string(),
        decision,
        waited_ms,
    });
}

// ---------------------------------------------------------------------------------------------

/// The CSS class of a task state on the page.
pub fn state_class(s: TaskState) -> &'static str {
    match s {
        TaskState::Pending => "pending",
        TaskState::Running => "running",
        TaskState::Done => "done",
        TaskState::Failed => "failed",
        TaskState::Waiting => "waiting",
    }
}

/// The CSS class of a run state on the page.
pub fn run_class(s: RunState) -> &'static str {
    match s {
        RunState::Running => "running",
        RunState::Waiting => "waiting",
        RunState::Done => "done",
        RunState::Failed => "failed",
        RunState::Superseded => "superseded",
    }
}
