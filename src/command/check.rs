//! `wf check`: validate the workflow and lint its declared data flow against its `needs`.

use crate::context::Ctx;
use crate::error::Result;
use crate::render::console::Tone;
use crate::workflow::{self, Severity};

pub fn check(ctx: &Ctx) -> Result<i32> {
    let wf = ctx.workflow()?;
    let mut warnings = workflow::lint(&wf);
    warnings.extend(workflow::memory_limits(
        &wf,
        crate::engine::cgroup::memory_limits(),
    ));
    for w in &warnings {
        if ctx.json {
            ctx.out.json(&crate::render::json::LintRow {
                severity: if w.severity == Severity::Error {
                    "error"
                } else {
                    "warning"
                },
                file: w.file.display().to_string(),
                line: w.line,
                col: w.col,
                message: &w.message,
                help: w.help.as_deref(),
            })?;
        } else {
            ctx.out.alert(&w.to_string());
        }
    }
    if !ctx.json {
        let n = warnings.len();
        ctx.out.event(
            if n == 0 { Tone::Good } else { Tone::Warn },
            "●",
            &format!(
                "{}: {} task{}, {} warning{}",
                wf.file.display(),
                wf.tasks.len(),
                if wf.tasks.len() == 1 { "" } else { "s" },
                n,
                if n == 1 { "" } else { "s" }
            ),
        );
    }
    Ok(0)
}
