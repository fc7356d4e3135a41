//! `wf init`: a commented starter `wf.toml` in the current directory (never overwrites one).

use std::io::Write;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::render::console::Tone;

/// The reference of the workflow file, built into the binary (`wf init --reference`).
const REFERENCE: &str = include_str!("../../docs/workflow.md");

const STARTER: &str = r#"# A wf workflow: a DAG of shell tasks. Every key: `wf init --reference`.
# Try it: `wf check`, then `wf run`, `wf status`, `wf history`.

[workflow]
name = "NAME"
# schedule = "0 6 * * *"     # for `wf export` and cron recipes (`wf export --help`)
retention = "30d"            # how long checkpoints are kept by default (`wf gc`)

# [notify]                   # alerts when a task fails after its retries (`wf init --reference`)
# webhook = "env:WF_SLACK_WEBHOOK"
# command = ["mail", "-s", "wf {run}: {task} failed", "team@example.com"]   # argv: no shell
# [notify.email]             # SMTP; the URL (and its password) read from the environment
# to = ["team@example.com"]
# from = "wf@example.com"
# server = "env:WF_SMTP_URL" # smtp://user:pass@host:587 (STARTTLS) or smtps://host (TLS)
# [notify.owner.you]         # alerts of tasks owned by `you` go here instead
# email = ["you@example.com"]

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

pub fn init(ctx: &Ctx, args: &crate::cli::InitArgs) -> Result<i32> {
    if args.reference {
        let mut out = std::io::stdout().lock();
        // A reader that went away (`| head`) ends it with exit 0 (`Error::is_broken_pipe`).
        out.write_all(REFERENCE.as_bytes())
            .map_err(Error::io("writing the reference", "stdout"))?;
        return Ok(0);
    }
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
