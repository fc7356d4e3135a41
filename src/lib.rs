//! wf: a crash-exact workflow engine for data and ML pipelines on one machine. The binary is thin
//! glue: `main_with_args` parses the command line, runs one verb, and turns its result into an
//! exit code; only here (and `main.rs`) is anything printed about an error.

// Human output goes through `console` (which makes it safe for a terminal), never around it.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod alert;
pub mod cli;
pub mod command;
pub mod console;
pub mod context;
pub mod engine;
pub mod error;
pub mod export;
pub mod logging;
pub mod report;
pub mod safe;
pub mod workflow;

use std::ffi::OsString;

use clap::Parser;

use cli::{Cli, Command};
use error::{code, Error};

/// The state directory of this command, for the panic hook's full-disk message.
static STATE_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Panics are bugs; a user sees one sentence, never a backtrace. A closed stdout (`wf history |
/// head`) is not an error at all.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if wf_state::journal::QUIET_PANICS.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if msg.contains("failed printing to stdout") {
            std::process::exit(code::OK);
        }
        // A library that panics on a full disk (sled does, in places) is a full disk, not a bug.
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

/// Run `wf` with these arguments (the first is the program name); returns the exit code.
pub fn main_with_args(args: Vec<OsString>) -> i32 {
    install_panic_hook();
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
        Error::Workflow(diags) => {
            for d in diags {
                console::error_line(&d.to_string());
            }
        }
        _ => console::error_line(&format!("wf: {e}")),
    }
}

fn dispatch(cli: &Cli) -> error::Result<i32> {
    let ctx = context::Ctx::new(cli)?;
    let _ = STATE_DIR.set(ctx.state_dir.clone());
    run_command(cli, &ctx).map_err(|e| e.on_full_disk(&ctx.state_dir))
}

fn run_command(cli: &Cli, ctx: &context::Ctx) -> error::Result<i32> {
    match &cli.command {
        Command::Init => command::init::init(ctx),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "wf", &mut std::io::stdout());
            Ok(0)
        }
        Command::Check => command::check::check(ctx),
        Command::Run(a) => command::run::run(ctx, a),
        Command::Resume(a) => command::resume::resume(ctx, a),
        Command::Status { run } => command::status::status(ctx, *run),
        Command::Approve(a) => command::approve::approve(ctx, a),
        Command::History(a) => command::history::history(ctx, a),
        Command::Logs {
            run,
            task,
            attempt,
            raw,
        } => command::logs::logs(ctx, *run, task, *attempt, *raw),
        Command::Gc(a) => command::gc::gc(ctx, a),
        Command::Reject(a) => command::gate::reject(ctx, a),
        Command::Export(a) => command::export::export(ctx, a),
        Command::Notify { test } => command::notify(ctx, *test),
        Command::State { action } => command::state::state(ctx, action),
        Command::Graph(a) => command::export::graph(ctx, a),
        Command::Restore { run, task } => command::restore::restore(ctx, *run, task.as_deref()),
        Command::Reap => Ok(engine::process::reap_main()),
    }
}
