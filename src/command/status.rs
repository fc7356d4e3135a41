//! `wf status [RUN]`: the run's tasks now, what the run waits on, and the next command to type.

use chrono::Utc;

use crate::render::fmt::local;
use wf_state::recover;
use wf_state::{RunSnapshot, TaskState, TaskView};

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::render::console::{Line, Tone};
use crate::render::table;

fn took(t: &TaskView) -> String {
    match (t.started_at, t.ended_at) {
        (Some(s), Some(e)) => crate::render::fmt::duration((e - s).to_std().unwrap_or_default()),
        (Some(s), None) if t.state == TaskState::Running => {
            crate::render::fmt::duration((Utc::now() - s).to_std().unwrap_or_default()) + "…"
        }
        _ => String::new(),
    }
}

fn note(snap: &RunSnapshot, t: &TaskView) -> String {
    match t.state {
        TaskState::Waiting if snap.run.state == wf_state::RunState::Superseded => {
            "no longer waits: superseded".to_string()
        }
        TaskState::Waiting => "manual gate".to_string(),
        TaskState::Pending => {
            let blocked: Vec<&str> = snap
                .tasks
                .iter()
                .filter(|d| d.state == TaskState::Failed)
                .map(|d| d.name.as_str())
                .collect();
            if t.attempts > 0 || !blocked.is_empty() {
                t.reason.to_string()
            } else {
                String::new()
            }
        }
        TaskState::Done if t.cached => "cached".to_string(),
        TaskState::Done => String::new(),
        _ => t.reason.to_string(),
    }
}

pub fn status(ctx: &Ctx, run: Option<u64>) -> Result<i32> {
    let mut reader = ctx.read()?;
    let Some(snap) = reader.snapshot(run)? else {
        return match run {
            Some(r) => Err(Error::NoRun { run: r }),
            None => {
                if !ctx.json {
                    ctx.out
                        .event(Tone::Plain, "●", "no runs yet; start one with `wf run`");
                }
                Ok(0)
            }
        };
    };
    let holder = reader.holder(&ctx.state_dir);
    let shown = recover::shown_state(&snap.run, holder.as_ref());
    if ctx.json {
        for t in &snap.tasks {
            ctx.out
                .json(&crate::render::json::StatusRow::new(snap.run.id, shown, t))?;
        }
        return Ok(0);
    }
    let r = &snap.run;
    let elapsed = crate::render::fmt::duration(
        (r.ended_at.unwrap_or_else(Utc::now) - r.started_at)
            .to_std()
            .unwrap_or_default(),
    );
    ctx.out.line(
        Line::new()
            .text(format!("run {} of {}: ", r.id, r.workflow))
            .paint(tone(shown), shown)
            .text(format!(
                " (started {} by {}, {elapsed})",
                local(r.started_at),
                r.user
            )),
    )?;
    let w = table::column(snap.tasks.iter().map(|t| t.name.as_str()), 4);
    ctx.out.line(Line::from(format!(
        "  {:w$}  {:8}  {:>8}  {:10}  {:>9}  {:>4}  NOTE",
        "TASK", "STATE", "ATTEMPTS", "OWNER", "TOOK", "EXIT"
    )))?;
    for t in &snap.tasks {
        let state = format!("{:8}", t.state.as_str());
        ctx.out.line(
            Line::new()
                .text(format!("  {}  ", table::pad(&t.name, w)))
                .paint(tone(t.state.as_str()), state)
                .text(format!(
                    "  {:>8}  {}  {:>9}  {:>4}  {}",
                    t.attempts,
                    table::pad(t.owner.as_deref().unwrap_or("-"), 10),
                    took(t),
                    t.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                    note(&snap, t)
                )),
        )?;
    }
    let waiting: Vec<&TaskView> = snap
        .tasks
        .iter()
        .filter(|t| t.state == TaskState::Waiting)
        .collect();
    let next = match shown {
        "interrupted" => format!("wf resume {}", r.id),
        "failed" => format!("wf resume {} (after fixing the cause; see `wf logs`)", r.id),
        "waiting" => waiting
            .iter()
            .map(|t| {
                format!(
                    "wf approve {} {}{}",
                    r.id,
                    t.name,
                    t.owner
                        .as_deref()
                        .map(|o| format!(" (waits on {o})"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        // The run names the newer run in its reason; approving happens there.
        "superseded" => format!("nothing: this run was {}", r.reason),
        _ => String::new(),
    };
    if !next.is_empty() {
        ctx.out.line(Line::from(format!("next: {next}")))?;
    }
    Ok(0)
}

pub fn tone(state: &str) -> Tone {
    match state {
        "done" => Tone::Good,
        "failed" | "interrupted" => Tone::Bad,
        "waiting" | "running" => Tone::Warn,
        "superseded" => Tone::Dim,
        _ => Tone::Plain,
    }
}
