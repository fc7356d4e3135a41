//! `wf init`: a commented starter `wf.toml` in the current directory (never overwrites one).

use std::io::Write;

use crate::console::Tone;
use crate::context::Ctx;
use crate::error::{Error, Result};

const STARTER: &str = r#"# A wf workflow: a DAG of shell tasks. Reference: docs/workflow.md
# Try it: `wf check`, then `wf run`, `wf status`, `wf history`.

[workflow]
name = "NAME"
# schedule = "0 6 * * *"     # for `wf export` and cron recipes (docs/export.md)
retention = "30d"            # how long checkpoints are kept by default (`wf gc`)

# [notify]                   # alerts when a task fails after its retries (docs/alerts.md)
# webhook = "env:WF_SLACK_WEBHOOK"
# command = "mail -s 'wf {run}: {task} failed' team@example.com"

[task.fetch]
run = "mkdir -p data && date -u +%Y-%m-%dT%H:%M:%SZ > data/fetched.txt"
outputs = ["data/fetched.txt"]   # must exist after exit 0; hashed and kept as a checkpoint
retention = "7d"
owner = "you"
retries = 2                      # further attempts after a failure
retry_delay = "10s"
timeout = "5m"

[task.summarize]
run = "wc -c < data/fetched.txt > data/summary.txt && echo bytes=$(cat data/summary.txt) >> \"$WF_METRICS\""
needs = ["fetch"]                # runs after fetch is done
inputs = ["data/fetched.txt"]    # unchanged inputs make a re-run a cache hit
outputs = ["data/summary.txt"]
log = ["bytes"]                  # metrics this task promises to report

[task.publish]
run = "cp data/summary.txt published.txt"
needs = ["summarize"]
inputs = ["data/summary.txt"]
outputs = ["published.txt"]
manual = true                    # waits for `wf approve publish`
"#;

pub fn init(ctx: &Ctx) -> Result<i32> {
    let path = ctx.here.join("wf.toml");
    if path.exists() || ctx.here.join("wf.json").exists() {
        return Err(Error::Usage(format!(
            "{} already has a workflow file; wf init never overwrites one",
            ctx.here.display()
        )));
    }
    let name = ctx
        .here
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "pipeline".into())
        .replace(['"', '\\'], "");
    let text = STARTER.replace("NAME", &name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(Error::io("creating wf.toml", &path))?;
    f.write_all(text.as_bytes())
        .map_err(Error::io("writing wf.toml", &path))?;
    ctx.out.event(
        Tone::Good,
        "●",
        &format!("wrote {}; next: `wf check`, then `wf run`", path.display()),
    );
    Ok(0)
}
