//! The command line, as clap derive types. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// wf — a crash-exact workflow engine for data and ML pipelines on one machine.
///
/// Exit codes: 0 no task failed (done, or stopped at a manual gate), 1 a task failed, 2 bad usage or
/// invalid workflow, 3 the state is locked by another live wf, 4 wf itself failed (I/O error),
/// 5 the state database is unreadable or from a newer wf, 130 interrupted (resume with `wf resume`).
#[derive(Debug, Parser)]
#[command(name = "wf", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Change to DIR before doing anything.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,

    /// The workflow file (default: wf.toml, then wf.json, in the current directory).
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Where state lives (default: .wf beside the workflow file).
    #[arg(long = "state-dir", global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Print JSON Lines (stable field names, see docs/json.md).
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing but errors (and, for a run, nothing on success).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more: every transition as it is journaled.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter wf.toml here (never overwrites one); --reference prints every key.
    Init(InitArgs),
    /// Parse and validate the workflow, and lint its data flow against its `needs`.
    Check,
    /// Start a new run of the workflow.
    Run(RunArgs),
    /// Continue the latest unfinished run (or RUN) exactly where it stopped.
    Resume(ResumeArgs),
    /// Show the state of the latest (or given) run, task by task.
    Status {
        /// Run id (default: the latest run).
        run: Option<u64>,
    },
    /// Release a manual task that is waiting, and continue its run.
    #[command(override_usage = "wf approve [OPTIONS] [RUN] TASK")]
    Approve(ApproveArgs),
    /// Fail a manual task that is waiting, with a reason (journaled with user and time).
    #[command(override_usage = "wf reject [RUN] TASK --note <TEXT>")]
    Reject(RejectArgs),
    /// Audit past runs; with RUN, that run's full timeline.
    History(HistoryArgs),
    /// Serve a local web dashboard and JSON API over the journal (approve/reject need a token).
    Serve(ServeArgs),
    /// Print the captured stdout/stderr of a task attempt.
    Logs {
        /// Run id.
        run: u64,
        /// Task name.
        task: String,
        /// Attempt number (default: the last one).
        #[arg(long)]
        attempt: Option<u32>,
        /// The captured bytes exactly as the task wrote them. By default colours (SGR) are kept
        /// on a terminal and every other control sequence (title, clipboard, screen clear, cursor
        /// moves) is shown escaped.
        #[arg(long)]
        raw: bool,
    },
    /// Prune checkpoints past their retention (the workflow's current policy), safely.
    Gc(GcArgs),
    /// Put a past run's checkpointed outputs back into the workspace.
    Restore {
        /// Run id.
        run: u64,
        /// Only this task's outputs (default: every task of the run).
        task: Option<String>,
    },
    /// Alerts: `--test` sends a test alert through each [notify] channel.
    Notify {
        /// Send a test alert through each configured channel.
        #[arg(long)]
        test: bool,
    },
    /// Write the same workflow for another scheduler: crontab, systemd, github-actions, argo, airflow.
    Export(ExportArgs),
    /// Print the DAG: a tree for the terminal, or Graphviz DOT with --dot.
    Graph(GraphArgs),
    /// Back up, inspect and migrate the journal as versioned JSON lines.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
    /// Print a shell completion script: `wf completions bash > /etc/bash_completion.d/wf`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Internal: kills the process groups of a wf that died (started by wf itself).
    #[command(name = "__reap", hide = true)]
    Reap,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Print the reference of the workflow file (every key, with defaults) instead of writing one.
    #[arg(long)]
    pub reference: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ExecArgs {
    /// Run at most N tasks at once (default: the workflow's `jobs`, else the number of cores).
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Run only these tasks (their needs are taken as already done).
    #[arg(long, num_args = 1.., value_name = "TASK")]
    pub only: Vec<String>,
    /// Run this task and everything downstream of it.
    #[arg(long, value_name = "TASK", conflicts_with = "only")]
    pub from: Option<String>,
    /// Resume the interrupted run if there is one, else start a new run (the cron line).
    #[arg(long, conflicts_with = "abandon")]
    pub resume: bool,
    /// Give up the interrupted run (journaled) and start a new one.
    #[arg(long)]
    pub abandon: bool,
    /// Ignore the cache: run every task (or only the tasks listed) even when it is up to date.
    /// With --resume, also re-run interrupted tasks that are not idempotent.
    #[arg(long, num_args = 0.., value_name = "TASK")]
    pub force: Option<Vec<String>>,
    /// Set a run parameter declared in [params] (repeatable); tasks see it as WF_PARAM_<NAME>.
    /// `today` and `yesterday` stand for that UTC date.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Run id (default: the interrupted run, else the latest unfinished one).
    pub run: Option<u64>,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Re-run interrupted tasks even if they are not idempotent.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// `[RUN] TASK`: the run (default: the latest run waiting on TASK) and the manual task.
    #[arg(num_args = 1..=2, required = true, value_name = "RUN|TASK")]
    pub target: Vec<String>,
    /// A note recorded with the approval.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Record the approval but do not continue the run now (`wf resume` continues it).
    #[arg(long)]
    pub later: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// `[RUN] TASK`: the run (default: the latest run waiting on TASK) and the manual task.
    #[arg(num_args = 1..=2, required = true, value_name = "RUN|TASK")]
    pub target: Vec<String>,
    /// Why it is rejected (recorded, and shown in history and alerts).
    #[arg(long, value_name = "TEXT", required = true)]
    pub note: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on: loopback by default; any other address needs WF_SERVE_TOKEN set.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8421")]
    pub addr: String,
    /// Who approvals and rejections are journaled as when the request names no one
    /// (default: the user running `wf serve`).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The target: crontab, systemd, github-actions, argo or airflow.
    #[arg(long, value_name = "TARGET")]
    pub to: crate::export::Target,
    /// The container image each task runs in (argo; default debian:bookworm-slim).
    #[arg(long, value_name = "IMG")]
    pub image: Option<String>,
    /// The command that runs wf on the target machine (default: wf).
    #[arg(long = "wf-bin", value_name = "BIN")]
    pub wf_bin: Option<String>,
    /// The workflow directory as it will be on the target machine.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Write the files into DIR instead of printing them (a relative DIR is taken from the
    /// directory wf works in: the -C directory when one is given, as every path of the command line).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Graphviz DOT instead of a tree.
    #[arg(long)]
    pub dot: bool,
}

#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Write the whole journal as versioned JSON lines (to stdout, or --out FILE).
    Export {
        /// Write to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Read an export into a new state directory (--state-dir, default .wf), record for record.
    Import {
        /// The export file (`-` for stdin).
        file: PathBuf,
    },
    /// Check every frame of the record log and every stored object against its hash; exit 5
    /// naming what is damaged.
    Verify,
    /// Make the state directory this workflow's (after a deliberate rename or move of the
    /// workflow): writers refuse a state that records another workflow.
    Adopt,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print what would be pruned and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Evaluate the policy at this time: RFC 3339 (2026-12-01T06:00:00Z) or +DURATION (+8d).
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Run id: print that run's timeline instead of the list of runs.
    pub run: Option<u64>,
    /// Only runs (or, with RUN, entries) involving this task.
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,
    /// Only runs in this state (running, interrupted, waiting, done, failed).
    #[arg(long, value_name = "STATE")]
    pub status: Option<String>,
    /// Only runs with a task owned by OWNER.
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
    /// Only runs started within this long ago (e.g. 7d, 12h).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only runs whose parameter NAME had VALUE (repeatable: all must match).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// At most N runs (default 20).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// With RUN: write the run's timeline as one self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE", requires = "run")]
    pub html: Option<PathBuf>,
    /// With --task: the trend of this metric across runs (a table and a sparkline).
    #[arg(long, value_name = "KEY", requires = "task")]
    pub metric: Option<String>,
    /// Only runs older than this run id (the next page of `wf serve`'s list; not on the CLI).
    #[arg(skip)]
    pub before: Option<u64>,
}
