//! The run page (`wf history RUN --html FILE`): one self-contained HTML document (inline CSS and
//! SVG, no script, no network) showing a run as a Gantt chart of its attempts, retry delays and
//! gate waits, with its tasks, checkpoints, metrics, approvals and full journal.
//!
//! The page is rendered by askama templates in `src/render/templates/` (`base.html` is the
//! layout other pages extend, `run.html` this page, `page.css` their style). Every value is
//! escaped by [`Escape`], the only HTML escaper in wf; no Rust code writes markup. This module
//! turns the run into plain view structs for the template.

use std::fmt;

use askama::Template;
use chrono::{DateTime, Utc};
use wf_state::{Record, RunSnapshot, RunState, TaskState};

use crate::error::{Error, Result};
use crate::render::entry::{self, Span};
use crate::render::fmt as f;
use crate::render::timeline::chart::{self, Chart};
use crate::render::timeline::{run_class, state_class, Timeline};

/// Escapes text for HTML element content and (double- or single-quoted) attribute values.
/// Control characters that HTML does not allow become U+FFFD. Configured in `askama.toml` as
/// the escaper of every `.html` template.
#[derive(Debug, Clone, Copy, Default)]
pub struct Escape;

impl askama::filters::Escaper for Escape {
    fn write_escaped_str<W: fmt::Write>(&self, mut out: W, s: &str) -> fmt::Result {
        let mut from = 0;
        for (i, c) in s.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                '\n' | '\t' | '\r' => continue,
                c if c.is_control() => "\u{FFFD}",
                _ => continue,
            };
            out.write_str(&s[from..i])?;
            out.write_str(rep)?;
            from = i + c.len_utf8();
        }
        out.write_str(&s[from..])
    }
}

/// A span of a journal sentence, as the page marks it up.
#[derive(Debug)]
pub enum Part {
    Text(String),
    Bold(String),
    Code(String),
    /// Shortened text with the full text on hover.
    Hover {
        full: String,
        shown: String,
    },
    /// Text in a class (a task state's colour).
    Class {
        class: &'static str,
        text: String,
    },
    Badge {
        class: &'static str,
        text: String,
    },
}

fn parts(spans: &[Span]) -> Vec<Part> {
    spans
        .iter()
        .map(|s| match s {
            Span::Text(t) => Part::Text(t.clone()),
            Span::Name(t) => Part::Bold(t.clone()),
            Span::Code(t) => Part::Code(t.clone()),
            Span::Hash(h) => Part::Hover {
                full: h.clone(),
                shown: f::truncate(h, 13).0,
            },
            Span::Time(t) => Part::Text(format!("{} UTC", f::utc(*t))),
            Span::Task(s) => Part::Class {
                class: state_class(*s),
                text: s.to_string(),
            },
            Span::Run(s) => Part::Badge {
                class: run_class(*s),
                text: s.to_string(),
            },
        })
        .collect()
}

/// The end of the run in the header.
#[derive(Debug)]
pub enum End {
    Paused(String),
    Running,
    Ended(String),
    Unknown,
}

#[derive(Debug)]
pub struct Chip {
    pub class: &'static str,
    pub count: u32,
    pub state: String,
}

#[derive(Debug)]
pub struct TaskRow {
    pub index: usize,
    pub name: String,
    pub flags: String,
    pub owner: Option<String>,
    pub class: &'static str,
    pub state: &'static str,
    pub attempts: u32,
    pub retries: Option<(u32, u32)>,
    pub started: String,
    pub run_time: String,
    pub waited: String,
    pub exit: String,
    pub reason: String,
}

#[derive(Debug)]
pub struct CkptRow {
    pub task: String,
    pub attempt: u32,
    pub path: String,
    pub size: String,
    pub hash: String,
    pub short: String,
    pub recorded: String,
    pub expires: String,
    /// `None` when expired, else how long until it expires.
    pub expires_in: Option<String>,
    pub pruned: Option<(String, String)>,
}

#[derive(Debug)]
pub struct MetricGroup {
    pub task: String,
    pub attempts: String,
    pub rows: Vec<MetricLine>,
}

#[derive(Debug)]
pub struct MetricLine {
    pub attempt: u32,
    pub at: String,
    pub key: String,
    pub value: String,
}

#[derive(Debug)]
pub struct DecisionLine {
    pub task: String,
    pub approved: bool,
    pub user: String,
    pub when: String,
    pub waited: String,
    pub note: Option<String>,
}

#[derive(Debug)]
pub struct JournalRow {
    pub seq: u64,
    pub clock: String,
    pub since: String,
    pub task: Option<String>,
    pub kind: &'static str,
    /// `attempt N: ` before the sentence, for records of an attempt that do not name it.
    pub attempt: Option<u32>,
    pub what: Vec<Part>,
}

/// Everything the run page shows, computed; the template only lays it out.
#[derive(Template)]
#[template(path = "run.html")]
pub struct RunPage {
    pub workflow: String,
    pub run: u64,
    pub state: &'static str,
    pub state_class: &'static str,
    pub started: String,
    pub end: End,
    pub duration: String,
    pub so_far: bool,
    /// What the wall time was spent on (`crate::durations`): running and waiting at a gate.
    pub running: String,
    pub waiting: Option<String>,
    pub started_by: String,
    pub resumed_by: Vec<String>,
    pub options: String,
    pub tasks_count: usize,
    pub attempts: usize,
    pub retries: u32,
    pub owners: Vec<String>,
    pub chips: Vec<Chip>,
    pub reason: String,
    pub args: String,
    pub file: String,
    pub pid: u32,
    pub t0: String,
    pub open: bool,
    pub now: String,
    pub chart: Chart,
    pub width: f64,
    pub tasks: Vec<TaskRow>,
    pub checkpoints_total: String,
    pub checkpoints: Vec<CkptRow>,
    pub metrics_count: usize,
    pub metrics: Vec<MetricGroup>,
    pub decisions: Vec<DecisionLine>,
    pub journal: Vec<JournalRow>,
}

/// The run's page. `records` are all journal records of the run in order (first is
/// `Entry::RunStarted`); `snap` is its current state; `now` is where attempts still running end.
pub fn run_page(snap: &RunSnapshot, records: &[Record], now: DateTime<Utc>) -> Result<String> {
    let page = RunPage::new(snap, records, now);
    // Rendering into a String fails only if a value's Display fails, which none of ours does.
    let mut html = page.render().map_err(|e| {
        Error::Internal(format!(
            "the page of run {} could not be rendered ({e}); this is a bug in wf, please report it",
            snap.run.id
        ))
    })?;
    if !html.ends_with('\n') {
        html.push('\n');
    }
    Ok(html)
}

impl RunPage {
    pub fn new(snap: &RunSnapshot, records: &[Record], now: DateTime<Utc>) -> RunPage {
        let tl = Timeline::build(snap, records, now);
        let run = &snap.run;
        let state = run.state;
        let end = match (state, run.ended_at) {
            (RunState::Waiting, Some(e)) => End::Paused(f::utc(e)),
            (RunState::Running, _) => End::Running,
            (_, Some(e)) => End::Ended(f::utc(e)),
            (_, None) => End::Unknown,
        };
        let (duration, so_far) = match (state, run.ended_at) {
            (RunState::Done | RunState::Failed | RunState::Superseded, Some(e)) => {
                (f::span_ms(f::ms_between(run.started_at, e)), false)
            }
            _ => (f::span_ms(f::ms_between(run.started_at, tl.edge)), true),
        };
        let took = crate::durations::of(records, now);
        let running = f::span_ms(took.running_ms);
        let waiting = (took.waiting_ms > 0).then(|| f::span_ms(took.waiting_ms));
        let mut resumed_by: Vec<String> = Vec::new();
        for r in &tl.resumes {
            if !resumed_by.contains(&r.user) {
                resumed_by.push(r.user.clone());
            }
        }
        let chips = TaskState::ALL
            .into_iter()
            .filter_map(|s| {
                let count = run.count(s);
                (count > 0).then(|| Chip {
                    class: state_class(s),
                    count,
                    state: s.to_string(),
                })
            })
            .collect();
        RunPage {
            workflow: run.workflow.clone(),
            run: run.id,
            state: state.as_str(),
            state_class: run_class(state),
            started: f::utc(run.started_at),
            end,
            duration,
            so_far,
            running,
            waiting,
            started_by: format!("{}@{}", tl.started_by(snap), tl.started_host(snap)),
            resumed_by,
            options: tl.started.options.clone(),
            tasks_count: snap.tasks.len(),
            attempts: tl.lanes.iter().map(|l| l.attempts.len()).sum(),
            retries: snap.tasks.iter().map(|t| t.retries_used).sum(),
            owners: run.owners.clone(),
            chips,
            reason: run.reason.clone(),
            args: tl.started.args.join(" "),
            file: tl.started.file.clone(),
            pid: tl.started.pid,
            t0: f::utc_ms(tl.t0),
            open: tl.open,
            now: f::utc(tl.now),
            chart: chart::chart(snap, &tl),
            width: chart::W,
            tasks: task_rows(snap, &tl),
            checkpoints_total: f::bytes(tl.checkpoints.iter().map(|c| c.bytes).sum()),
            checkpoints: checkpoint_rows(&tl),
            metrics_count: tl.metrics.len(),
            metrics: metric_groups(snap, &tl),
            decisions: tl
                .decisions
                .iter()
                .map(|d| DecisionLine {
                    task: d.task.clone(),
                    approved: d.decision.approved,
                    user: d.decision.user.clone(),
                    when: f::utc(d.at),
                    waited: d.waited_ms.map_or_else(|| "—".to_string(), f::span_ms),
                    note: d.decision.note.clone(),
                })
                .collect(),
            journal: records
                .iter()
                .map(|r| JournalRow {
                    seq: r.seq,
                    clock: f::clock(r.at, tl.multi_day),
                    since: f::span_ms(f::ms_between(tl.t0, r.at)),
                    task: r.entry.task().map(str::to_string),
                    kind: r.entry.kind(),
                    attempt: r.entry.attempt().filter(|n| {
                        *n > 0
                            && !matches!(
                                r.entry,
                                wf_state::Entry::Transition { .. }
                                    | wf_state::Entry::Spawned { .. }
                            )
                    }),
                    what: parts(entry::describe(r).spans()),
                })
                .collect(),
        }
    }
}

fn task_rows(snap: &RunSnapshot, tl: &Timeline) -> Vec<TaskRow> {
    snap.tasks
        .iter()
        .zip(&tl.lanes)
        .enumerate()
        .map(|(i, (t, lane))| {
            let run_ms: i64 = lane
                .attempts
                .iter()
                .map(|a| f::ms_between(a.start, tl.end_of(a.end)))
                .sum();
            let wait_ms: i64 = lane
                .waits
                .iter()
                .map(|w| f::ms_between(w.start, tl.end_of(w.end)))
                .sum();
            let mut flags = Vec::new();
            if t.cached {
                flags.push("cached");
            }
            if t.manual {
                flags.push(if t.approved {
                    "manual, approved"
                } else {
                    "manual"
                });
            }
            if !t.idempotent {
                flags.push("not idempotent");
            }
            let first_start = lane.attempts.first().map(|a| a.start).or(t.started_at);
            TaskRow {
                index: i,
                name: t.name.clone(),
                flags: flags.join(" · "),
                owner: t.owner.clone(),
                class: state_class(t.state),
                state: t.state.as_str(),
                attempts: t.attempts,
                retries: (t.max_retries > 0).then_some((t.retries_used, t.max_retries)),
                started: first_start.map_or_else(|| "—".to_string(), |s| f::clock(s, tl.multi_day)),
                run_time: if lane.attempts.is_empty() {
                    "—".to_string()
                } else {
                    f::span_ms(run_ms)
                },
                waited: if lane.waits.is_empty() {
                    "—".to_string()
                } else {
                    f::span_ms(wait_ms)
                },
                exit: t
                    .exit_code
                    .map_or_else(|| "—".to_string(), |c| c.to_string()),
                reason: t.reason.to_string(),
            }
        })
        .collect()
}

fn checkpoint_rows(tl: &Timeline) -> Vec<CkptRow> {
    tl.checkpoints
        .iter()
        .map(|c| CkptRow {
            task: c.task.clone(),
            attempt: c.attempt,
            path: c.path.clone(),
            size: f::bytes(c.bytes),
            hash: c.hash.clone(),
            short: f::truncate(&c.hash, 13).0,
            recorded: f::clock(c.at, tl.multi_day),
            expires: f::utc(c.expires_at),
            expires_in: (c.expires_at > tl.now)
                .then(|| f::span_ms(f::ms_between(tl.now, c.expires_at))),
            pruned: c
                .pruned
                .as_ref()
                .map(|(at, policy)| (f::utc(*at), policy.clone())),
        })
        .collect()
}

/// Metrics by task: tasks in plan order, then any the plan does not name, in order of appearance.
fn metric_groups(snap: &RunSnapshot, tl: &Timeline) -> Vec<MetricGroup> {
    let mut names: Vec<&str> = Vec::new();
    for t in &snap.tasks {
        if tl.metrics.iter().any(|m| m.task == t.name) {
            names.push(&t.name);
        }
    }
    for m in &tl.metrics {
        if !names.contains(&m.task.as_str()) {
            names.push(&m.task);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let rows: Vec<MetricLine> = tl
                .metrics
                .iter()
                .filter(|m| m.task == name)
                .map(|m| MetricLine {
                    attempt: m.attempt,
                    at: f::utc_ms(m.at),
                    key: m.key.clone(),
                    value: m.value.clone(),
                })
                .collect();
            let mut attempts: Vec<u32> = rows.iter().map(|m| m.attempt).collect();
            attempts.dedup();
            MetricGroup {
                task: name.to_string(),
                attempts: attempts
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                rows,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
