//! The Gantt chart of a run, as geometry: where each tick, row, bar, wait, mark and flag goes,
//! and the tooltip text of each. Numbers are formatted here (one decimal, as SVG wants them);
//! the page's template only places them, escaping every text.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use wf_state::{Reason, RunSnapshot, RunState, TaskView};

use super::{run_class, state_class, Attempt, Mark, MarkKind, Outcome, Timeline, Wait, WaitKind};
use crate::render::fmt as f;

/// The chart's width in SVG units.
pub const W: f64 = 1200.0;
const LABEL_W: f64 = 250.0;
const X0: f64 = 266.0;
const X1: f64 = 1172.0;
const ROWS_Y: f64 = 68.0;
/// Baselines of the two rows of tick labels, and of the two rows of flag labels.
const TICK_Y: [f64; 2] = [15.0, 28.0];
const FLAG_Y: [f64; 2] = [45.0, 59.0];

/// Map times to chart x coordinates.
pub struct Scale {
    t0: DateTime<Utc>,
    span_ms: f64,
}

impl Scale {
    pub fn x(&self, at: DateTime<Utc>) -> f64 {
        let us = (at - self.t0).num_microseconds().unwrap_or(0) as f64;
        let f = (us / 1000.0 / self.span_ms).clamp(0.0, 1.0);
        X0 + f * (X1 - X0)
    }
}

/// A number as the SVG shows it.
fn n1(v: f64) -> String {
    format!("{v:.1}")
}

/// A text placed at a point.
#[derive(Debug, Clone)]
pub struct Label {
    pub x: String,
    pub y: String,
    pub anchor: &'static str,
    pub text: String,
}

/// A vertical grid line at a tick.
#[derive(Debug)]
pub struct Grid {
    pub class: &'static str,
    pub x: String,
}

/// One row of axis labels per tick: the time since the start and the UTC clock.
#[derive(Debug)]
pub struct Axis {
    pub y1: String,
    pub y2: String,
    /// Per tick, the labels that fit (a label that would touch the one before it is left out).
    pub ticks: Vec<Vec<TickLabel>>,
}

#[derive(Debug, Clone)]
pub struct TickLabel {
    pub class: &'static str,
    /// Which of the axis's two baselines.
    pub second: bool,
    pub x: String,
    pub anchor: &'static str,
    pub text: String,
}

#[derive(Debug)]
pub struct Chart {
    pub height: String,
    pub label_x: String,
    pub head_y: String,
    pub grid_top: String,
    pub rows_end: String,
    pub grid: Vec<Grid>,
    pub ticks: Vec<Vec<TickLabel>>,
    pub top: (String, String),
    pub bottom: Option<(String, String)>,
    pub sep_x: String,
    pub rows: Vec<Row>,
    pub flags: Vec<FlagView>,
}

#[derive(Debug)]
pub struct Row {
    pub index: usize,
    pub task: String,
    pub class: &'static str,
    pub y: String,
    pub height: String,
    pub tip: String,
    pub dot: &'static str,
    pub mid: String,
    pub name_y: String,
    pub name_px: String,
    pub name: String,
    pub owner: Option<Label>,
    pub waits: Vec<WaitBar>,
    pub attempts: Vec<AttemptBar>,
    pub marks: Vec<MarkView>,
}

#[derive(Debug)]
pub struct Rect {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
}

#[derive(Debug)]
pub struct AttemptBar {
    pub class: &'static str,
    pub title: String,
    pub bar: Rect,
    pub lost: Option<Rect>,
    /// The arrow head of a running attempt (an SVG path).
    pub tip: Option<String>,
    pub label: Option<Label>,
}

#[derive(Debug)]
pub struct WaitBar {
    pub class: &'static str,
    pub title: String,
    pub rect: Rect,
    pub label: Option<Label>,
}

#[derive(Debug)]
pub struct MarkView {
    pub class: &'static str,
    pub title: String,
    pub path: String,
}

#[derive(Debug)]
pub struct FlagView {
    pub class: String,
    pub title: String,
    pub x: String,
    pub top: String,
    pub label: Option<Label>,
}

/// A labelled vertical line across the chart.
struct Flag {
    at: DateTime<Utc>,
    class: String,
    label: String,
    title: String,
}

/// Lay the chart of `tl` out.
pub fn chart(snap: &RunSnapshot, tl: &Timeline) -> Chart {
    let n = snap.tasks.len();
    let (row_h, name_px) = if n <= 40 {
        (28.0, 12.0)
    } else if n <= 100 {
        (22.0, 11.5)
    } else {
        (20.0, 11.0)
    };
    let bar_h: f64 = row_h - 10.0;
    let rows_h = n as f64 * row_h;
    let bottom_axis = n > 16;
    let height = ROWS_Y + rows_h.max(row_h) + if bottom_axis { 40.0 } else { 10.0 };

    let data_ms = f::ms_between(tl.t0, tl.t1).max(10);
    let step = tick_step(data_ms, 10);
    let axis_ms = ceil_div(data_ms, step) * step;
    let scale = Scale {
        t0: tl.t0,
        span_ms: axis_ms as f64,
    };
    let rows_end = ROWS_Y + rows_h;

    // Axis: relative time and UTC clock time at each tick; grid lines through the rows.
    let count = axis_ms / step;
    let mut grid = Vec::new();
    let mut ticks = Vec::new();
    let mut free = [f64::MIN; 2];
    for k in 0..=count {
        let ms = k * step;
        let at = tl.t0 + chrono::Duration::milliseconds(ms);
        let x = scale.x(at);
        let anchor = if k == 0 {
            "start"
        } else if k == count {
            "end"
        } else {
            "middle"
        };
        grid.push(Grid {
            class: if k == 0 { "grid0" } else { "grid" },
            x: n1(x),
        });
        let labels = [
            ("tick", tick_label(ms, step), 6.6),
            ("tclock", tick_clock(at, step, tl.multi_day), 5.9),
        ];
        let mut shown = Vec::new();
        for (i, (class, text, char_w)) in labels.into_iter().enumerate() {
            let width = text.chars().count() as f64 * char_w;
            let (left, right) = match anchor {
                "start" => (x, x + width),
                "end" => (x - width, x),
                _ => (x - width / 2.0, x + width / 2.0),
            };
            if left < free[i] {
                continue;
            }
            free[i] = right + 8.0;
            shown.push(TickLabel {
                class,
                second: i == 1,
                x: n1(x),
                anchor,
                text,
            });
        }
        ticks.push(shown);
    }

    let rows = snap
        .tasks
        .iter()
        .zip(&tl.lanes)
        .enumerate()
        .map(|(i, (t, lane))| {
            let y = ROWS_Y + i as f64 * row_h;
            let mid = y + row_h / 2.0;
            let by = mid - bar_h / 2.0;
            // Label: state dot, name (cut to fit, full in the tooltip), owner on the right.
            let owner = t.owner.as_deref().map(|o| f::truncate(o, 16).0);
            let owner_px = owner
                .as_ref()
                .map_or(0.0, |o| o.chars().count() as f64 * 6.0 + 10.0);
            let name_budget =
                ((LABEL_W - 22.0 - owner_px - 6.0) / (name_px * 0.56)).floor() as usize;
            let (name, _) = f::truncate(&t.name, name_budget.max(4));
            let mut tip = format!("{}\nstate: {}", t.name, t.state);
            if let Some(o) = &t.owner {
                let _ = write!(tip, "\nowner: {o}");
            }
            if t.manual {
                tip.push_str("\nmanual task (needs approval)");
            }
            Row {
                index: i,
                task: t.name.clone(),
                class: if i % 2 == 1 { "zebra" } else { "plain" },
                y: n1(y),
                height: row_h.to_string(),
                tip,
                dot: state_class(t.state),
                mid: n1(mid),
                name_y: n1(mid + name_px * 0.36),
                name_px: name_px.to_string(),
                name,
                owner: owner.map(|o| Label {
                    x: n1(LABEL_W - 4.0),
                    y: n1(mid + 3.8),
                    anchor: "end",
                    text: o,
                }),
                waits: lane
                    .waits
                    .iter()
                    .map(|wt| wait_bar(t, wt, tl, &scale, mid, bar_h))
                    .collect(),
                attempts: lane
                    .attempts
                    .iter()
                    .map(|a| attempt_bar(t, a, tl, &scale, by, bar_h))
                    .collect(),
                marks: lane
                    .marks
                    .iter()
                    .map(|m| mark(m, &scale, mid, bar_h))
                    .collect(),
            }
        })
        .collect();

    Chart {
        height: format!("{height:.0}"),
        label_x: (LABEL_W - 4.0).to_string(),
        head_y: FLAG_Y[1].to_string(),
        grid_top: n1(ROWS_Y - 4.0),
        rows_end: n1(rows_end),
        grid,
        ticks,
        top: (TICK_Y[0].to_string(), TICK_Y[1].to_string()),
        bottom: bottom_axis.then(|| (n1(rows_end + 16.0), n1(rows_end + 29.0))),
        sep_x: n1(LABEL_W + 4.0),
        rows,
        flags: flags(&run_flags(snap, tl), &scale),
    }
}

/// Start, resumes, end or now, as labelled dashed lines over the rows.
fn run_flags(snap: &RunSnapshot, tl: &Timeline) -> Vec<Flag> {
    let mut flags: Vec<Flag> = Vec::new();
    flags.push(Flag {
        at: tl.t0,
        class: "f-start".into(),
        label: format!("▶ started by {}", tl.started_by(snap)),
        title: format!("run started at {} UTC", f::utc_ms(tl.t0)),
    });
    for r in &tl.resumes {
        flags.push(Flag {
            at: r.at,
            class: "f-resume".into(),
            label: format!("↻ resumed by {}", r.user),
            title: format!(
                "run resumed by {} (pid {}) at {} UTC",
                r.user,
                r.pid,
                f::utc_ms(r.at)
            ),
        });
    }
    for (at, state, reason) in &tl.ended {
        let waiting = *state == RunState::Waiting;
        flags.push(Flag {
            at: *at,
            class: format!("f-end-{}", run_class(*state)),
            label: if waiting {
                "‖ paused".to_string()
            } else {
                format!("■ ended: {state}")
            },
            title: format!(
                "run {} at {} UTC{}",
                if waiting {
                    "paused (waiting for approval)".to_string()
                } else {
                    format!("ended {state}")
                },
                f::utc_ms(*at),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            ),
        });
    }
    if tl.open {
        flags.push(Flag {
            at: tl.edge,
            class: "f-now".into(),
            label: "now".into(),
            title: format!("this page was generated at {} UTC", f::utc_ms(tl.now)),
        });
    }
    flags
}

fn flags(flags: &[Flag], scale: &Scale) -> Vec<FlagView> {
    let mut order: Vec<&Flag> = flags.iter().collect();
    order.sort_by_key(|f| f.at);
    // Two rows of labels; a label that fits in neither is left to the line's tooltip.
    let mut free_from = [f64::MIN; 2];
    order
        .into_iter()
        .map(|fl| {
            let x = scale.x(fl.at);
            let text_w = fl.label.chars().count() as f64 * 6.6;
            // Labels that would run off the right edge are right-aligned to their line.
            let (tx, anchor, left, right) = if x + 4.0 + text_w > W - 4.0 {
                (x - 4.0, "end", x - 4.0 - text_w, x)
            } else {
                (x + 4.0, "start", x, x + 4.0 + text_w)
            };
            let lane = (0..2).find(|&i| left >= free_from[i]);
            let top = match lane {
                Some(i) => FLAG_Y[i] - 11.0,
                None => ROWS_Y - 4.0,
            };
            let label = lane.map(|i| {
                free_from[i] = right + 8.0;
                Label {
                    x: n1(tx),
                    y: FLAG_Y[i].to_string(),
                    anchor,
                    text: fl.label.clone(),
                }
            });
            FlagView {
                class: fl.class.clone(),
                title: fl.title.clone(),
                x: n1(x),
                top: n1(top),
                label,
            }
        })
        .collect()
}

/// The tooltip of an attempt's bar.
pub fn attempt_title(t: &TaskView, a: &Attempt, tl: &Timeline) -> String {
    let end = tl.end_of(a.end);
    let mut s = format!("{} — attempt {}", t.name, a.n);
    match (&a.reason, a.outcome) {
        (Some(r @ Reason::Interrupted(_)), _) => {
            let _ = write!(s, "\n{r}");
        }
        (Some(r), o) => {
            let _ = write!(s, "\n{}: {r}", o.label());
        }
        (None, o) => {
            let _ = write!(s, "\n{}", o.label());
        }
    }
    if let (Some(to), Outcome::Interrupted) = (a.to, a.outcome) {
        let _ = write!(s, " → {to}");
    }
    let _ = write!(s, "\nstart: {} UTC", f::utc_ms(a.start));
    match a.end {
        Some(e) => {
            let _ = write!(s, "\nend: {} UTC", f::utc_ms(e));
        }
        None => {
            let _ = write!(s, "\nend: — (still running at {} UTC)", f::utc_ms(tl.now));
        }
    }
    let _ = write!(
        s,
        "\nduration: {}{}",
        f::span_ms(f::ms_between(a.start, end)),
        if a.end.is_none() { " so far" } else { "" }
    );
    if let Some(lost) = a.lost_at {
        let _ = write!(
            s,
            "\nwf stopped during this attempt: its last journal record before that was at {} \
             UTC; the interruption was recorded when wf came back",
            f::utc_ms(lost)
        );
    }
    match a.exit_code {
        Some(c) => {
            let _ = write!(s, "\nexit code: {c}");
        }
        None if a.end.is_some() => s.push_str("\nexit code: —"),
        None => {}
    }
    if let Some(pid) = a.pid {
        let _ = write!(s, "\npid: {pid}");
    }
    s
}

fn attempt_bar(
    t: &TaskView,
    a: &Attempt,
    tl: &Timeline,
    scale: &Scale,
    by: f64,
    bar_h: f64,
) -> AttemptBar {
    let x = scale.x(a.start);
    let end = tl.end_of(a.end);
    let xe = scale.x(end);
    // The solid part ends where the attempt was last known alive (interrupted ones).
    let solid_end = a.lost_at.map_or(xe, |l| scale.x(l));
    let w = (solid_end - x).max(2.0);
    let lost = (a.lost_at.is_some() && xe - solid_end > 1.0).then(|| Rect {
        x: n1(solid_end),
        y: n1(by + 1.0),
        w: n1(xe - solid_end),
        h: n1((bar_h - 2.0).max(1.0)),
    });
    let tip = (a.outcome == Outcome::Running).then(|| {
        format!(
            "M{:.1} {by:.1} l{:.1} {:.1} l{:.1} {:.1} z",
            x + w,
            bar_h * 0.45,
            bar_h / 2.0,
            -bar_h * 0.45,
            bar_h / 2.0
        )
    });
    // Attempt number, and duration when there is room.
    let dur = f::span_ms(f::ms_between(a.start, end));
    let long = format!("#{} · {}", a.n, dur);
    let short = format!("#{}", a.n);
    let text = if long.chars().count() as f64 * 6.1 + 10.0 <= w {
        Some(long)
    } else if short.chars().count() as f64 * 6.1 + 8.0 <= w {
        Some(short)
    } else {
        None
    };
    AttemptBar {
        class: a.outcome.class(),
        title: attempt_title(t, a, tl),
        bar: Rect {
            x: n1(x),
            y: n1(by),
            w: n1(w),
            h: n1(bar_h),
        },
        lost,
        tip,
        label: text.map(|text| Label {
            x: n1(x + 5.0),
            y: n1(by + bar_h / 2.0 + 3.8),
            anchor: "start",
            text,
        }),
    }
}

fn wait_bar(
    t: &TaskView,
    wt: &Wait,
    tl: &Timeline,
    scale: &Scale,
    mid: f64,
    bar_h: f64,
) -> WaitBar {
    let end = tl.end_of(wt.end);
    let x = scale.x(wt.start);
    let w = (scale.x(end) - x).max(2.0);
    let took = f::span_ms(f::ms_between(wt.start, end));
    let so_far = if wt.end.is_none() { " so far" } else { "" };
    let mut title = String::new();
    let (class, h, label) = match wt.kind {
        WaitKind::Gate => {
            let _ = write!(
                title,
                "{} — waiting at its manual gate\nfrom: {} UTC",
                t.name,
                f::utc_ms(wt.start)
            );
            let label = match &wt.decision {
                Some(d) => format!(
                    "{} by {}",
                    if d.approved { "approved" } else { "rejected" },
                    d.user
                ),
                None if wt.end.is_none() => "awaiting approval".to_string(),
                None => "gate".to_string(),
            };
            ("gate", bar_h, label)
        }
        WaitKind::Retry => {
            let _ = write!(
                title,
                "{} — retry delay after attempt {}\nfrom: {} UTC",
                t.name,
                wt.attempt,
                f::utc_ms(wt.start)
            );
            if let Some((n, of, nb)) = wt.retry {
                let _ = write!(title, "\nretry {n} of {of}");
                if let Some(nb) = nb {
                    let _ = write!(title, ", not before {} UTC", f::utc_ms(nb));
                }
            }
            ("retry", (bar_h * 0.55).max(4.0), "retry delay".to_string())
        }
    };
    match wt.end {
        Some(e) => {
            let _ = write!(title, "\nuntil: {} UTC", f::utc_ms(e));
        }
        None => {
            let _ = write!(
                title,
                "\nuntil: — (still waiting at {} UTC)",
                f::utc_ms(tl.now)
            );
        }
    }
    let _ = write!(title, "\nwaited: {took}{so_far}");
    if let Some(d) = &wt.decision {
        let _ = write!(
            title,
            "\n{} by {}",
            if d.approved { "approved" } else { "rejected" },
            d.user
        );
        if let Some(n) = &d.note {
            let _ = write!(title, ": {n}");
        }
    } else if let Some(why) = &wt.ended_by {
        let _ = write!(title, "\nended: {why}");
    }
    // A label above the hatching is hard to read; only gates get one, beside short waits.
    let label =
        (wt.kind == WaitKind::Gate && label.chars().count() as f64 * 5.8 + 10.0 <= w).then(|| {
            Label {
                x: n1(x + 5.0),
                y: n1(mid + 3.5),
                anchor: "start",
                text: label,
            }
        });
    WaitBar {
        class,
        title,
        rect: Rect {
            x: n1(x),
            y: n1(mid - h / 2.0),
            w: n1(w),
            h: n1(h),
        },
        label,
    }
}

fn mark(m: &Mark, scale: &Scale, mid: f64, bar_h: f64) -> MarkView {
    let x = scale.x(m.at);
    let r = (bar_h * 0.5).clamp(4.0, 7.0);
    let (class, title) = match &m.kind {
        MarkKind::CacheHit => (
            "cache",
            format!(
                "cache hit at {} UTC: the same inputs produced these outputs before, so the task \
                 was not run",
                f::utc_ms(m.at)
            ),
        ),
        MarkKind::OutputsChanged(why) => (
            "changed",
            format!(
                "outputs changed at {} UTC ({why}): the task runs again",
                f::utc_ms(m.at)
            ),
        ),
    };
    // Keep the diamond inside the plot at its edges.
    let x = x.clamp(X0 + r, X1 - r + 6.0);
    MarkView {
        class,
        title,
        path: format!(
            "M{x:.1} {:.1} L{:.1} {mid:.1} L{x:.1} {:.1} L{:.1} {mid:.1} Z",
            mid - r,
            x + r,
            mid + r,
            x - r
        ),
    }
}

/// Tick spacing: the smallest "nice" step giving at most `max_ticks` intervals over `span_ms`.
pub fn tick_step(span_ms: i64, max_ticks: i64) -> i64 {
    const STEPS: [i64; 30] = [
        1,
        2,
        5,
        10,
        20,
        50,
        100,
        200,
        500,
        1_000,
        2_000,
        5_000,
        10_000,
        15_000,
        30_000,
        60_000,
        120_000,
        300_000,
        600_000,
        900_000,
        1_800_000,
        3_600_000,
        7_200_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        172_800_000,
        604_800_000,
        2_592_000_000,
    ];
    let max_ticks = max_ticks.max(1);
    let span = span_ms.max(1);
    for s in STEPS {
        if ceil_div(span, s) <= max_ticks {
            return s;
        }
    }
    let month = 2_592_000_000;
    ceil_div(ceil_div(span, max_ticks), month) * month
}

/// `a / b` rounded up, for positive `b` (`i64::div_ceil` is not stable).
pub fn ceil_div(a: i64, b: i64) -> i64 {
    let b = b.max(1);
    a / b + i64::from(a % b > 0)
}

/// A tick label: the time since the run started, in the unit the step calls for.
pub fn tick_label(ms: i64, step: i64) -> String {
    if ms == 0 {
        return "0".to_string();
    }
    if step < 1000 {
        if ms < 1000 {
            return format!("{ms}ms");
        }
        let decimals = if step % 100 == 0 {
            1
        } else if step % 10 == 0 {
            2
        } else {
            3
        };
        return format!("{:.*}s", decimals, ms as f64 / 1000.0);
    }
    if step < 60_000 {
        let s = ms / 1000;
        return match (s / 60, s % 60) {
            (0, s) => format!("{s}s"),
            (m, 0) => format!("{m}m"),
            (m, s) => format!("{m}m{s:02}s"),
        };
    }
    if step < 3_600_000 {
        let m = ms / 60_000;
        return match (m / 60, m % 60) {
            (0, m) => format!("{m}m"),
            (h, 0) => format!("{h}h"),
            (h, m) => format!("{h}h{m:02}m"),
        };
    }
    let h = ms / 3_600_000;
    match (h / 24, h % 24) {
        (0, h) => format!("{h}h"),
        (d, 0) => format!("{d}d"),
        (d, h) => format!("{d}d{h}h"),
    }
}

pub fn tick_clock(at: DateTime<Utc>, step: i64, multi_day: bool) -> String {
    if multi_day && step >= 60_000 {
        at.format("%m-%d %H:%M").to_string()
    } else if step < 1000 {
        at.format("%H:%M:%S%.3f").to_string()
    } else if step < 60_000 {
        at.format("%H:%M:%S").to_string()
    } else {
        at.format("%H:%M").to_string()
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_labelled_in_the_step_unit() {
        assert_eq!(tick_step(10, 10), 1);
        assert_eq!(tick_step(3_600, 10), 500);
        assert_eq!(tick_step(95 * 60_000, 10), 600_000);
        assert_eq!(tick_step(105 * 60_000, 10), 900_000);
        assert_eq!(tick_step(400 * 86_400_000, 10), 2_592_000_000 * 2);
        assert_eq!(tick_step(0, 0), 1);
        assert_eq!(tick_label(0, 500), "0");
        assert_eq!(tick_label(500, 500), "500ms");
        assert_eq!(tick_label(1_500, 500), "1.5s");
        assert_eq!(tick_label(90_000, 30_000), "1m30s");
        assert_eq!(tick_label(5_400_000, 900_000), "1h30m");
        assert_eq!(tick_label(86_400_000 * 2, 43_200_000), "2d");
    }

    #[test]
    fn the_scale_keeps_every_time_inside_the_plot() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let s = Scale {
            t0,
            span_ms: 1000.0,
        };
        assert_eq!(s.x(t0), X0);
        assert_eq!(s.x(t0 + chrono::Duration::milliseconds(1000)), X1);
        assert_eq!(
            s.x(t0 + chrono::Duration::milliseconds(500)),
            (X0 + X1) / 2.0
        );
        assert_eq!(s.x(t0 - chrono::Duration::days(1)), X0);
        assert_eq!(s.x(t0 + chrono::Duration::days(365 * 300)), X1);
    }

    #[test]
    fn flag_labels_take_two_rows_then_give_up() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let scale = Scale {
            t0,
            span_ms: 1000.0,
        };
        let at = |ms| t0 + chrono::Duration::milliseconds(ms);
        let flag = |ms, label: &str| Flag {
            at: at(ms),
            class: "f-resume".into(),
            label: label.into(),
            title: String::new(),
        };
        // Three flags at nearly the same time: two labelled rows, the third only a line.
        let views = flags(
            &[
                flag(0, "a long label"),
                flag(1, "another"),
                flag(2, "third"),
            ],
            &scale,
        );
        assert_eq!(views.len(), 3);
        assert_eq!(views[0].label.as_ref().map(|l| l.y.as_str()), Some("45"));
        assert_eq!(views[1].label.as_ref().map(|l| l.y.as_str()), Some("59"));
        assert!(views[2].label.is_none());
        assert_eq!(views[2].top, n1(ROWS_Y - 4.0));
        // A flag at the right edge is labelled to the left of its line.
        let right = flags(&[flag(1000, "■ ended: done")], &scale);
        assert_eq!(right[0].label.as_ref().map(|l| l.anchor), Some("end"));
    }
}
