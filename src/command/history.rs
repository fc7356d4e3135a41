//! `wf history`: the list of past runs (newest first, filtered), or with RUN that run's full
//! timeline: transitions with reasons, processes, checkpoints, metrics and approvals.

use chrono::Utc;
use wf_state::recover;
use wf_state::{Entry, Record, RunView, TaskState};

use crate::cli::HistoryArgs;
use crate::command::status::tone;
use crate::context::{Ctx, Reader};
use crate::error::{Error, Result};
use crate::render::console::{Line, Tone};
use crate::render::entry::describe;
use crate::render::fmt::local;
use crate::render::json::{MetricPoint, RecordRow, RunRow};
use crate::render::table;

pub fn history(ctx: &Ctx, args: &HistoryArgs) -> Result<i32> {
    match (args.run, &args.metric) {
        (Some(run), _) => timeline(ctx, run, args),
        (None, Some(key)) => trend(ctx, args, key),
        (None, None) => list(ctx, args),
    }
}

/// `▁▂▃▄▅▆▇█` for the numeric values, oldest first; a gap (` `) where a value is not a number.
pub fn sparkline(values: &[Option<f64>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let nums: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = nums
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    values
        .iter()
        .map(|v| match v {
            Some(v) if v.is_finite() => {
                if hi > lo {
                    let i = ((v - lo) / (hi - lo) * 7.0).round() as usize;
                    BARS[i.min(7)]
                } else {
                    BARS[3]
                }
            }
            _ => ' ',
        })
        .collect()
}

/// The built-in per-attempt metrics, from what each attempt used (`Entry::Usage`).
pub const USAGE_METRICS: [(&str, &str); 3] = [
    (
        "max_rss",
        "peak resident memory of the attempt's processes, MiB",
    ),
    ("cpu_user", "CPU time in user mode, seconds"),
    ("cpu_sys", "CPU time in the kernel, seconds"),
];

/// The value of built-in metric `key` in a usage record, as text (like a reported metric).
fn usage_metric(e: &Entry, key: &str) -> Option<String> {
    let Entry::Usage {
        cpu_user_us,
        cpu_sys_us,
        max_rss_kib,
        source,
        ..
    } = e
    else {
        return None;
    };
    match key {
        // Only a peak known exactly or from below: an upper bound is no point of a trend.
        "max_rss" if source != "bound" => max_rss_kib.map(|k| format!("{:.1}", k as f64 / 1024.0)),
        "cpu_user" => Some(format!("{:.3}", *cpu_user_us as f64 / 1e6)),
        "cpu_sys" => Some(format!("{:.3}", *cpu_sys_us as f64 / 1e6)),
        _ => None,
    }
}

/// `wf history --task T --metric K`: a metric across the task's runs.
fn trend(ctx: &Ctx, args: &HistoryArgs, key: &str) -> Result<i32> {
    let task = args.task.as_deref().unwrap_or_default();
    let reader = ctx.read()?;
    let Reader::Store(store) = &reader else {
        if let Reader::Log { .. } = &reader {
            return Err(Error::disk_full(
                &ctx.state_dir,
                "opening the journal index for a trend".into(),
                None,
            ));
        }
        if let Reader::Live { holder, .. } = &reader {
            return Err(Error::Locked(format!(
                "the state is in use by `{}` (pid {}); show trends when it ends",
                holder.command, holder.pid
            )));
        }
        return Ok(0);
    };
    // Newest first: (run, when, value of the task's last report of the key in that run).
    let mut points = Vec::new();
    for r in store.runs() {
        let r = r?;
        if points.len() >= args.limit {
            break;
        }
        let mut value = None;
        let mut used = None;
        for rec in store.records(r.id)? {
            match &rec.entry {
                Entry::Metric {
                    task: t,
                    key: k,
                    value: v,
                    ..
                } if t == task && k == key => value = Some((rec.at, v.clone())),
                Entry::Usage { task: t, .. } if t == task => {
                    if let Some(v) = usage_metric(&rec.entry, key) {
                        used = Some((rec.at, v));
                    }
                }
                _ => {}
            }
        }
        // A metric the task reports itself wins over the built-in one of the same name.
        let value = value.or(used);
        if let Some((at, v)) = value {
            points.push((r.id, at, v));
        }
    }
    if ctx.json {
        for (run, at, v) in &points {
            ctx.out.json(&MetricPoint {
                run: *run,
                task,
                key,
                value: v,
                at: crate::render::json::time(Some(*at)),
            })?;
        }
        return Ok(0);
    }
    if points.is_empty() {
        ctx.out.event(
            Tone::Plain,
            "●",
            &format!("no run has a `{key}` metric for task `{task}`"),
        );
        return Ok(0);
    }
    let unit = USAGE_METRICS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, what)| format!(" ({what})"))
        .unwrap_or_default();
    ctx.out.line(Line::from(format!(
        "{task} · {key}{unit} over the last {} runs that reported it",
        points.len()
    )))?;
    ctx.out
        .line(Line::from(format!("{:>5}  {:19}  VALUE", "RUN", "AT")))?;
    for (run, at, v) in &points {
        ctx.out
            .line(Line::from(format!("{run:>5}  {:19}  {v}", local(*at))))?;
    }
    let values: Vec<Option<f64>> = points
        .iter()
        .rev()
        .map(|(_, _, v)| v.parse().ok())
        .collect();
    let nums: Vec<f64> = values.iter().flatten().copied().collect();
    if !nums.is_empty() {
        let lo = nums.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = nums.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        ctx.out.line(Line::from(format!(
            "trend (oldest → newest): {}  min {lo}, max {hi}",
            sparkline(&values)
        )))?;
    }
    Ok(0)
}

/// The runs `wf history` lists for these filters, newest first (at most `args.limit`), from an
/// open reader, and the state's live holder (for the shown state). `wf serve` calls this too.
pub fn select(
    ctx: &Ctx,
    reader: &mut Reader,
    args: &HistoryArgs,
) -> Result<(Vec<RunView>, Option<wf_state::lock::Holder>)> {
    let since = match &args.since {
        Some(s) => Some(
            Utc::now()
                - chrono::Duration::from_std(humantime::parse_duration(s).map_err(|e| {
                    Error::Usage(format!(
                        "--since `{s}` is not a duration like 7d or 12h ({e})"
                    ))
                })?)
                .unwrap_or(chrono::Duration::MAX),
        ),
        None => None,
    };
    let wanted = crate::params::parse_args(&args.params)?;
    let holder = reader.holder(&ctx.state_dir);
    let mut rows: Vec<RunView> = Vec::new();
    let mut push = |r: RunView, snapshot_tasks: Option<Vec<String>>, params_ok: bool| -> bool {
        let shown = recover::shown_state(&r, holder.as_ref());
        let keep = params_ok
            && args.before.is_none_or(|b| r.id < b)
            && args.status.as_deref().is_none_or(|s| s == shown)
            && since.is_none_or(|t| r.started_at >= t)
            && args
                .owner
                .as_deref()
                .is_none_or(|o| r.owners.iter().any(|x| x == o))
            && args.task.as_deref().is_none_or(|t| {
                snapshot_tasks
                    .as_ref()
                    .is_some_and(|names| names.iter().any(|n| n == t))
            });
        if keep {
            rows.push(r);
        }
        rows.len() < args.limit
    };
    let logged = reader.logged_runs();
    match reader {
        Reader::Empty => {}
        Reader::Log { records } => {
            for r in logged {
                if since.is_some_and(|t| r.started_at < t) {
                    break;
                }
                let names = args.task.as_ref().map(|_| {
                    wf_state::machine::replay(records.iter().filter(|x| x.run == r.id))
                        .map(|s| s.tasks.into_iter().map(|t| t.name).collect())
                        .unwrap_or_default()
                });
                let ok = wanted.is_empty() || {
                    let mine: Vec<_> = records.iter().filter(|x| x.run == r.id).cloned().collect();
                    params_match(&mine, &wanted)
                };
                if !push(r, names, ok) {
                    break;
                }
            }
        }
        Reader::Live { .. } => {
            if let Some(snap) = reader.snapshot(None)? {
                let names = snap.tasks.iter().map(|t| t.name.clone()).collect();
                let ok = wanted.is_empty() || params_match(&reader.records(snap.run.id)?, &wanted);
                push(snap.run, Some(names), ok);
            }
            if !ctx.json {
                ctx.out.alert(
                    "wf: a run is in progress and holds the journal; only that run is listed until it ends",
                );
            }
        }
        Reader::Store(store) => {
            // Newest first, lazily: the default --limit 20 reads about 20 summaries.
            for r in store.runs() {
                let r = r?;
                if since.is_some_and(|t| r.started_at < t) {
                    break;
                }
                let names = match args.task {
                    Some(_) => Some(store.task_names(r.id)?),
                    None => None,
                };
                // Parameters are in the run's records: read only when filtering on them.
                let ok = wanted.is_empty() || params_match(&store.records(r.id)?, &wanted);
                if !push(r, names, ok) {
                    break;
                }
            }
        }
    }
    Ok((rows, holder))
}

/// `wf history`: the runs, newest first, as a table or JSON rows.
fn list(ctx: &Ctx, args: &HistoryArgs) -> Result<i32> {
    let mut reader = ctx.read()?;
    let (rows, holder) = select(ctx, &mut reader, args)?;
    if ctx.json {
        for r in &rows {
            let state = recover::shown_state(r, holder.as_ref());
            ctx.out.json(&RunRow::new(r, state))?;
        }
        return Ok(0);
    }
    if rows.is_empty() {
        ctx.out
            .event(Tone::Plain, "●", "no runs match; start one with `wf run`");
        return Ok(0);
    }
    let w = table::column(rows.iter().map(|r| r.workflow.as_str()), 8);
    ctx.out.line(Line::from(format!(
        "{:>5}  {:w$}  {:11}  {:19}  {:>9}  TASKS",
        "RUN", "WORKFLOW", "STATE", "STARTED", "TOOK"
    )))?;
    for r in &rows {
        let shown = recover::shown_state(r, holder.as_ref());
        let took = r
            .ended_at
            .map(|e| crate::render::fmt::duration((e - r.started_at).to_std().unwrap_or_default()))
            .unwrap_or_default();
        let tasks: Vec<String> = TaskState::ALL
            .iter()
            .filter(|s| r.count(**s) > 0)
            .map(|s| format!("{} {}", r.count(*s), s))
            .collect();
        ctx.out.line(
            Line::new()
                .text(format!("{:>5}  {}  ", r.id, table::pad(&r.workflow, w)))
                .paint(tone(shown), format!("{shown:11}"))
                .text(format!(
                    "  {:19}  {:>9}  {}",
                    local(r.started_at),
                    took,
                    tasks.join(", ")
                )),
        )?;
    }
    Ok(0)
}

/// Whether the run whose records these are had every wanted parameter value.
fn params_match(records: &[Record], wanted: &[(String, String)]) -> bool {
    let params = records.iter().find_map(|r| match &r.entry {
        Entry::RunOptions { params, .. } => Some(params),
        _ => None,
    });
    params.is_some_and(|p| wanted.iter().all(|w| p.contains(w)))
}

fn timeline(ctx: &Ctx, run: u64, args: &HistoryArgs) -> Result<i32> {
    let mut reader = ctx.read()?;
    let records = reader.records(run)?;
    if records.is_empty() {
        return Err(Error::NoRun { run });
    }
    if let Some(path) = &args.html {
        let snap = reader.snapshot(Some(run))?.ok_or(Error::NoRun { run })?;
        let page = crate::render::page::run_page(&snap, &records, Utc::now())?;
        std::fs::write(path, page).map_err(Error::io("writing the HTML timeline", path))?;
        ctx.out.event(
            Tone::Good,
            "●",
            &format!("wrote the timeline of run {run} to {}", path.display()),
        );
        return Ok(0);
    }
    // A sweep's record per run reads as one `prune` per checkpoint and per log.
    let records: Vec<Record> = records
        .iter()
        .flat_map(crate::render::entry::expand)
        .collect();
    let keep = |r: &&Record| {
        args.task
            .as_deref()
            .is_none_or(|t| r.entry.task() == Some(t))
    };
    let took = crate::durations::of(&records, Utc::now());
    if ctx.json {
        for row in entry_rows(&records).filter(|row| keep(&row.0)) {
            ctx.out.json(&row.1)?;
        }
        return Ok(0);
    }
    let mut tasks = records.iter().filter_map(|r| r.entry.task()).peekable();
    let w = if tasks.peek().is_some() {
        table::column(tasks, 0)
    } else {
        4
    };
    for r in records.iter().filter(keep) {
        let task = r.entry.task().unwrap_or("");
        let line = describe(r).to_string();
        let tone = match &r.entry {
            Entry::Transition { to, .. } => tone(to.as_str()),
            _ => Tone::Plain,
        };
        ctx.out.line(
            Line::new()
                .paint(Tone::Dim, local(r.at))
                .text(format!("  {}  ", table::pad(task, w)))
                .paint(tone, line),
        )?;
    }
    if args.task.is_none() {
        let ms = |v: i64| {
            crate::render::fmt::duration(std::time::Duration::from_millis(v.max(0).unsigned_abs()))
        };
        let mut parts = vec![format!("{} running", ms(took.running_ms))];
        if took.waiting_ms > 0 {
            parts.push(format!("{} waiting at a manual gate", ms(took.waiting_ms)));
        }
        ctx.out.line(Line::new().paint(
            Tone::Dim,
            format!(
                "{:19}  {}  {} {} since it started: {}",
                "",
                table::pad("", w),
                if took.ended { "took" } else { "so far" },
                ms(took.wall_ms),
                parts.join(", ")
            ),
        ))?;
    }
    Ok(0)
}

/// A run's records (`expand`ed) as the rows of `wf --json history RUN`, the run's end carrying
/// what its time was spent on (docs/json.md). `wf serve`'s `/api/runs/RUN` gives the same.
pub fn entry_rows(records: &[Record]) -> impl Iterator<Item = (&Record, RecordRow<'_>)> {
    records.iter().enumerate().map(move |(i, r)| {
        let mut row = RecordRow::new(r);
        // Each end (also a stop at a gate) carries the durations as of that end: fixed once
        // journaled, whenever it is read.
        if matches!(r.entry, Entry::RunEnded { .. } | Entry::Superseded { .. }) {
            row.took = Some(crate::durations::of(&records[..=i], r.at).into());
        }
        (r, row)
    })
}

/// `wf --json history RUN` as values, for `wf serve`.
pub fn entries_json(records: &[Record]) -> Vec<serde_json::Value> {
    let records: Vec<Record> = records
        .iter()
        .flat_map(crate::render::entry::expand)
        .collect();
    entry_rows(&records)
        .filter_map(|(_, row)| serde_json::to_value(row).ok())
        .collect()
}

/// A `wf --json history` row as a value, for `wf serve`.
pub fn run_row(r: &RunView, holder: Option<&wf_state::lock::Holder>) -> serde_json::Value {
    let state = recover::shown_state(r, holder);
    serde_json::to_value(RunRow::new(r, state)).unwrap_or(serde_json::Value::Null)
}
