//! wf: a crash-exact workflow engine for data and ML pipelines on one machine. The binary is thin
//! glue: `main_with_args` parses the command line, runs one verb, and turns its result into an
//! exit code; only here (and `main.rs`) is anything printed about an error.

#![forbid(unsafe_code)]
// Human output goes through `console` (which makes it safe for a terminal), never around it.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod alert;
pub mod cli;
pub mod command;
pub mod context;
pub mod crash;
pub mod durations;
pub mod engine;
pub mod error;
pub mod export;
pub mod logging;
pub mod params;
pub mod procs;
pub mod render;
pub mod safe;
pub mod serve;
pub mod workflow;

use std::ffi::OsString;

use clap::Parser;

use cli::{Cli, Command};
use error::{code, Error};
use render::console;

/// The state directory of this command, for the panic hook's full-disk message.
static STATE_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Panics are bugs; a user sees one sentence, never a backtrace. (A closed stdout is not a panic:
/// output goes through `io::Write` and a broken pipe ends the command with exit 0, see
/// `Error::is_broken_pipe`.)
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        // A library that panics on a full disk (sled, the index before wf's own, did) is a full
        // disk, not a bug.
        if error::mentions_disk_full(&msg) {
            if let Some(dir) = STATE_DIR.get() {
                let e = Error::disk_full(dir, "writing its journal".into(), None);
                console::error_line(&format!("wf: {e}"));
                return;
            }
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        console::error_line(&format!(
            "wf: internal error ({msg}{at}); this is a bug in wf, please report it"
        ));
    }));
}

/// When an index write stops responding (a disk that stops answering; before wf's own index,
/// sled could also deadlock inside one, issue #23), the state crate's watchdog calls this and
/// then ends the process with exit code 4: the event goes to the engine log, the user gets one
/// sentence. Task processes die with wf (the reaper), the lock is released with the process, and
/// the next command continues from the record log.
fn install_stall_handler() {
    wf_state::watchdog::on_stall(|stall| {
        tracing::error!(
            event = "index stalled",
            index = %stall.dir.display(),
            operation = stall.what,
            limit_secs = stall.limit.as_secs_f64(),
            "{}",
            wf_state::watchdog::STALL_MESSAGE
        );
        console::error_line(&format!("wf: {}", wf_state::watchdog::STALL_MESSAGE));
    });
}

/// `WF_INDEX_TIMEOUT` (a duration: `30s`, `2m`): how long an index write may take, before
/// scaling by its size, until wf counts the index as stalled.
fn index_timeout() -> Result<(), Error> {
    let Some(v) = std::env::var_os("WF_INDEX_TIMEOUT") else {
        return Ok(());
    };
    let text = v.to_string_lossy();
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => {
            wf_state::watchdog::set_base(d);
            Ok(())
        }
        _ => Err(Error::Usage(format!(
            "WF_INDEX_TIMEOUT must be a duration such as 30s or 2m, not {text:?}; fix or unset it"
        ))),
    }
}

/// Run `wf` with these arguments (the first is the program name); returns the exit code.
pub fn main_with_args(args: Vec<OsString>) -> i32 {
    install_panic_hook();
    install_stall_handler();
    if let Err(e) = index_timeout() {
        report(&e);
        return e.code();
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => code::OK,
                _ => code::USAGE,
            };
        }
    };
    if let Command::Reap = cli.command {
        return engine::process::reap_main();
    }
    match std::panic::catch_unwind(|| dispatch(&cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            report(&e);
            e.code()
        }
        Err(_) => code::INTERNAL,
    }
}

fn report(e: &Error) {
    match e {
        e if e.is_broken_pipe() => {}
        Error::Workflow(diags) => {
            for d in diags {
                console::error_line(&d.to_string());
            }
        }
        _ => console::error_line(&format!("wf: {e}")),
    }
}

/// The verb of a command whose output is for people only, so `--json` is refused rather than
/// silently ignored.
fn without_json(c: &Command) -> Option<&'static str> {
    Some(match c {
        Command::Init(_) => "init",
        Command::Logs { .. } => "logs",
        Command::Restore { .. } => "restore",
        Command::Notify { .. } => "notify",
        Command::Export(_) => "export",
        Command::Graph(_) => "graph",
        Command::Completions { .. } => "completions",
        Command::Serve(_) => "serve",
        _ => return None,
    })
}

fn dispatch(cli: &Cli) -> error::Result<i32> {
    if let Some(verb) = without_json(&cli.command).filter(|_| cli.json) {
        return Err(error::Error::NoJson { verb });
    }
    let ctx = context::Ctx::new(cli)?;
    let _ = STATE_DIR.set(ctx.state_dir.clone());
    run_command(cli, &ctx).map_err(|e| e.on_full_disk(&ctx.state_dir))
}

fn run_command(cli: &Cli, ctx: &context::Ctx) -> error::Result<i32> {
    match &cli.command {
        Command::Init(a) => command::init::init(ctx, a),
        Command::Completions { shell } => {
            // Generated into memory, then written once: a closed pipe (`| head`) is not an error.
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "wf", &mut buf);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &buf)
                .map_err(render::console::stdout_failed)?;
            Ok(0)
        }
        Command::Check => command::check::check(ctx),
        Command::Run(a) => command::run::run(ctx, a),
        Command::Resume(a) => command::resume::resume(ctx, a),
        Command::Status { run } => command::status::status(ctx, *run),
        Command::Approve(a) => command::approve::approve(ctx, a),
        Command::History(a) => command::history::history(ctx, a),
        Command::Serve(a) => serve::serve(ctx, a),
        Command::Logs {
            run,
            task,
            attempt,
            raw,
        } => command::logs::logs(ctx, *run, task, *attempt, *raw),
        Command::Gc(a) => command::gc::gc(ctx, a),
        Command::Reject(a) => command::reject::reject(ctx, a),
        Command::Export(a) => command::export::export(ctx, a),
        Command::Notify { test } => command::notify(ctx, *test),
        Command::State { action } => command::state::state(ctx, action),
        Command::Graph(a) => command::export::graph(ctx, a),
        Command::Restore { run, task } => command::restore::restore(ctx, *run, task.as_deref()),
        Command::Reap => Ok(engine::process::reap_main()),
    }
}
