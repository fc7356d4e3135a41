//! What `run`, `resume` and `approve` share: the one line that says how a drive of a run ended and
//! what to type next, and its exit code.

use wf_state::{RunId, Store};

use crate::context::Ctx;
use crate::engine::gate::newest_waiting;
use crate::engine::run::Driven;
use crate::engine::Outcome;
use crate::error::code;
use crate::render::console::Tone;

/// Report how a drive ended; returns the exit code (no drive: the run had nothing to do, 0).
pub fn ended(ctx: &Ctx, store: &Store, driven: Option<Driven>) -> i32 {
    let Some(Driven { run, outcome, took }) = driven else {
        return code::OK;
    };
    let this_command = took;
    let took = crate::render::fmt::duration(took);
    let out = &ctx.out;
    match outcome {
        Outcome::Done => {
            out.event(Tone::Good, "●", &done_line(store, run, this_command, &took));
            code::OK
        }
        Outcome::Waiting(tasks) => {
            let which = if newest_waiting(store, run) {
                String::new()
            } else {
                format!("{run} ")
            };
            let cmds: Vec<String> = tasks
                .iter()
                .map(|t| format!("`wf approve {which}{t}`"))
                .collect();
            out.event(
                Tone::Warn,
                "●",
                &format!(
                    "run {run} is waiting at a manual gate: approve with {}",
                    cmds.join(" or ")
                ),
            );
            code::OK
        }
        Outcome::Failed(tasks) => {
            let first = tasks.first().map(String::as_str).unwrap_or("the task");
            // Point at the log only when the task's last attempt ran (one that could not start
            // has none; its `failed` line said why).
            let ran = store
                .records(run)
                .map(|records| {
                    let last = records.iter().rev().find_map(|r| match &r.entry {
                        wf_state::Entry::Transition {
                            task,
                            attempt,
                            reason,
                            ..
                        } if task == first => Some((*attempt, reason.clone())),
                        _ => None,
                    });
                    match last {
                        Some((attempt, wf_state::Reason::Error(_))) => records.iter().any(|r| {
                            matches!(&r.entry, wf_state::Entry::Spawned { task, attempt: a, .. }
                                if task == first && *a == attempt)
                        }),
                        _ => true,
                    }
                })
                .unwrap_or(true);
            let read = if ran {
                format!("read `wf logs {run} {first}`, ")
            } else {
                String::new()
            };
            out.alert_mark(
                Tone::Bad,
                "●",
                &format!(
                    "run {run} failed: {}; {read}fix the cause, then `wf resume {run}`",
                    tasks.join(", ")
                ),
            );
            code::TASK_FAILED
        }
        Outcome::Stopped(sig) => {
            out.alert(&format!(
                "● run {run} stopped by {}; continue it with `wf resume {run}`",
                if sig == signal_hook::consts::SIGINT {
                    "Ctrl-C"
                } else {
                    "SIGTERM"
                }
            ));
            code::INTERRUPTED
        }
    }
}

/// "run N done in 1.2s" when this command ran the whole run; otherwise what each duration is:
/// the wall time since the run started, the part spent waiting at a gate, and this command's.
fn done_line(store: &Store, run: RunId, this_command: std::time::Duration, took: &str) -> String {
    let d = store
        .records(run)
        .map(|r| crate::durations::of(&r, chrono::Utc::now()))
        .unwrap_or_default();
    let this_ms = i64::try_from(this_command.as_millis()).unwrap_or(i64::MAX);
    // Within a second of this command's own time, and no gate: this command was the run.
    if d.waiting_ms == 0 && d.wall_ms <= this_ms.saturating_add(1_000) {
        return format!("run {run} done in {took}");
    }
    let ms = |v: i64| {
        crate::render::fmt::duration(std::time::Duration::from_millis(v.max(0).unsigned_abs()))
    };
    let waited = if d.waiting_ms > 0 {
        format!(", {} of it waiting at a manual gate", ms(d.waiting_ms))
    } else {
        String::new()
    };
    format!(
        "run {run} done: {} since it started{waited}; this command took {took}",
        ms(d.wall_ms)
    )
}
