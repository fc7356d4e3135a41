//! The notify command: run without a shell (argv form, placeholders replaced inside arguments) or as
//! a placeholder-free `sh -c` script that reads `WF_ALERT_*` as data. Either way it runs in its own
//! process group, bounded by the notify timeout: at the deadline the whole group gets SIGTERM, then
//! SIGKILL a second later; when it ends, whatever it left behind in its group, or marked with this
//! delivery's id anywhere, is killed. A command started by a delivery carries `WF_IN_ALERT`, so a
//! `wf` it starts delivers nothing (no recursion).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use super::message::Message;
use crate::procs::{find_marked, signal_group};
use crate::workflow::AlertCommand;

/// Set in a notify command's environment; a `wf` that sees it delivers no alerts.
pub const IN_ALERT_VAR: &str = "WF_IN_ALERT";
/// Marks every process of one delivery, so a child that left the group is found too.
const MARK_VAR: &str = "WF_ALERT_DELIVERY";
/// How long a command gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(1);
/// The most of a command's stderr kept for the error message.
const STDERR_KEEP: usize = 4096;

/// Whether this process was started by a notify command.
pub fn inside_alert() -> bool {
    std::env::var_os(IN_ALERT_VAR).is_some_and(|v| !v.is_empty())
}

fn delivery_mark() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}.{nanos}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether the child has exited, without reaping it (so its group id stays reserved).
fn exited(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    match rustix::process::waitid(
        WaitId::Pid(p),
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
    ) {
        Ok(Some(st)) => st.exited() || st.killed() || st.dumped(),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Wait until the child exits or `deadline` passes; true if it exited.
fn wait_until(pid: u32, deadline: Instant) -> bool {
    loop {
        if exited(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run the command for `m`; `Ok` with a short detail on exit 0, `Err` with why otherwise.
pub fn run(
    cmd: &AlertCommand,
    m: &Message,
    dir: &std::path::Path,
    timeout: Duration,
) -> Result<String, String> {
    let mut c = match cmd {
        AlertCommand::Argv(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(argv[1..].iter().map(|a| m.fill(a)));
            c
        }
        AlertCommand::Script(s) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(s);
            c
        }
    };
    let mark = delivery_mark();
    c.envs(m.env())
        .env(IN_ALERT_VAR, "1")
        .env(MARK_VAR, &mark)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // The command gets the umask wf started with, not the private one wf keeps for its state.
    let umask = wf_state::safe::task_umask();
    let spawned = c.spawn();
    drop(umask);
    let mut child = spawned.map_err(|e| {
        format!(
            "the notify command could not be started: {}",
            crate::error::io_reason(&e)
        )
    })?;
    let pid = child.id();
    // stderr is read on its own thread: a background child holding the pipe open never blocks us.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut err) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut kept: Vec<u8> = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > STDERR_KEEP {
                    kept.drain(..kept.len() - STDERR_KEEP);
                }
            }
            let _ = tx.send(kept);
        });
    }
    let timed_out = !wait_until(pid, Instant::now() + timeout);
    if timed_out {
        signal_group(pid, Signal::TERM);
        if !wait_until(pid, Instant::now() + GRACE) {
            signal_group(pid, Signal::KILL);
        }
    }
    // The leader has exited but is not reaped yet, so its group id cannot be reused: whatever is
    // left in the group, and whatever carries this delivery's mark, is killed.
    signal_group(pid, Signal::KILL);
    let status = child.wait();
    for p in find_marked(&format!("{MARK_VAR}={mark}")) {
        signal_group(p, Signal::KILL);
        if let Some(p) = i32::try_from(p).ok().and_then(Pid::from_raw) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
        }
    }
    if timed_out {
        return Err(format!(
            "the notify command timed out after {} and was killed",
            crate::render::fmt::duration(timeout)
        ));
    }
    let stderr = rx
        .recv_timeout(Duration::from_millis(200))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    match status {
        Ok(st) if st.success() => Ok("exit 0".into()),
        Ok(st) => Err(format!(
            "the notify command exited {}{}",
            st.code()
                .map_or("by a signal".to_string(), |c| format!("with code {c}")),
            if last.is_empty() {
                String::new()
            } else {
                format!(": {}", super::message::one_line(last))
            }
        )),
        Err(e) => Err(format!(
            "the notify command could not be waited for: {}",
            crate::error::io_reason(&e)
        )),
    }
}
