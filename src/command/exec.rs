//! What `run`, `resume` and `approve` share: the one line that says how a drive of a run ended and
//! what to type next, and its exit code.

use wf_state::Store;

use crate::console::{self, Tone};
use crate::context::Ctx;
use crate::engine::gate::newest_waiting;
use crate::engine::run::Driven;
use crate::engine::Outcome;
use crate::error::code;

/// Report how a drive ended; returns the exit code (no drive: the run had nothing to do, 0).
pub fn ended(ctx: &Ctx, store: &Store, driven: Option<Driven>) -> i32 {
    let Some(Driven { run, outcome, took }) = driven else {
        return code::OK;
    };
    let took = console::duration(took);
    let out = &ctx.out;
    match outcome {
        Outcome::Done => {
            out.event(Tone::Good, "●", &format!("run {run} done in {took}"));
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
            out.alert_mark(
                Tone::Bad,
                "●",
                &format!(
                    "run {run} failed: {}; read `wf logs {run} {first}`, fix the cause, then `wf resume {run}`",
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
