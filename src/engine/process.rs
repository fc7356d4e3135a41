//! Task processes: each attempt is `sh -c RUN` in its own process group, killed with SIGKILL if
//! wf dies (by the reaper, which kills its whole group and every process carrying wf's owner
//! mark), with its stdout and stderr read through non-blocking pipes by the scheduler's single poll
//! loop. Where cgroup v2 allows it, each attempt also runs in its own cgroup (cgroup.rs), which
//! catches what leaves the group.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};

use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
use rustix::process::{Pid, Signal};

use super::cgroup::{self, Lease};
use crate::procs::{find_marked, signal_group};

/// What to start.
pub struct Spec<'a> {
    pub command: &'a str,
    pub dir: &'a Path,
    pub env: Vec<(String, String)>,
    pub log: &'a Path,
    /// The attempt's cgroup, where cgroups are available.
    pub cgroup: Option<Lease>,
}

/// A running attempt.
pub struct Proc {
    pub child: Child,
    pub pid: u32,
    pub out: Option<ChildStdout>,
    pub err: Option<ChildStderr>,
    /// The attempt's log, created at its first byte of output (an attempt that prints nothing
    /// costs no file creation, which on ext4 waits for the journal commit of the last fsync).
    log: Option<File>,
    log_path: PathBuf,
    /// Partial lines per stream, for the console prefix.
    pub pending: [Vec<u8>; 2],
    /// The last lines of output, for failure messages.
    pub tail: Vec<String>,
    /// The attempt's own cgroup, when it runs in one (what is left in it is killed when the
    /// attempt is dropped).
    pub cgroup: Option<Lease>,
    /// Set when writing the log failed (a full disk): the output is still read, so the task is
    /// never stopped by a closed pipe, but no longer stored.
    log_failed: bool,
    /// Exec'd without the shell (direct.rs): a death by signal N is reported as `sh -c` reports
    /// it, exit 128+N.
    pub direct: bool,
}

fn nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let flags = fcntl_getfl(fd)?;
    fcntl_setfl(fd, flags | OFlags::NONBLOCK)?;
    Ok(())
}

/// Start an attempt (posix_spawn of `/bin/sh -c RUN`, in a new process group, inside its cgroup
/// when it has one).
pub fn spawn(spec: Spec<'_>) -> std::io::Result<Proc> {
    // An absolute path: no search of $PATH for every attempt.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(spec.command);
    let configure = |cmd: &mut Command| {
        cmd.current_dir(spec.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
    };
    configure(&mut cmd);
    // A command with no shell syntax is exec'd directly, as the shell would (direct.rs); any
    // failure to exec it falls back to the shell, which then reports it in its own words.
    let mut direct = direct_command(&spec).map(|(mut d, pwd)| {
        configure(&mut d);
        d.env("PWD", pwd);
        d
    });
    let mut was_direct = false;
    let mut spawn_one = || match direct.as_mut().map(Command::spawn) {
        Some(Ok(child)) => {
            was_direct = true;
            Ok(child)
        }
        _ => cmd.spawn(),
    };
    // No `pre_exec` (and so no parent-death signal): a pre_exec hook forces a full fork() of
    // wf, while without one std uses posix_spawn (vfork-like), which halves wf's per-task cost
    // (docs/performance.md). The reaper — which also covers the shell's own children, which a
    // parent-death signal never did — and resume's leftover check keep the guarantee.
    let cgroup = spec.cgroup;
    // The task gets the umask wf started with, not the private one wf keeps for its state.
    let umask = wf_state::safe::task_umask();
    let spawned = match (cgroup::available(), &cgroup) {
        // The shell starts inside the attempt's cgroup: no fork of it can escape before.
        (Some(cgs), Some(lease)) => cgs.spawn_in(lease, spawn_one),
        _ => spawn_one(),
    };
    drop(umask);
    let mut child = spawned?;
    let out = child.stdout.take();
    let err = child.stderr.take();
    if let Some(o) = &out {
        nonblocking(o.as_fd())?;
    }
    if let Some(e) = &err {
        nonblocking(e.as_fd())?;
    }
    let pid = child.id();
    Ok(Proc {
        child,
        pid,
        out,
        err,
        log: None,
        log_path: spec.log.to_path_buf(),
        pending: [Vec::new(), Vec::new()],
        tail: Vec::new(),
        cgroup,
        log_failed: false,
        direct: was_direct,
    })
}

/// The command that runs `spec` without a shell, when it needs none (direct.rs), and the `PWD`
/// the shell would have exported.
fn direct_command(spec: &Spec<'_>) -> Option<(Command, std::ffi::OsString)> {
    if super::direct::disabled() {
        return None;
    }
    let words = super::direct::words(spec.command)?;
    let own = |name: &str| {
        spec.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| std::ffi::OsString::from(v))
            .or_else(|| std::env::var_os(name))
    };
    let program = super::direct::program(words[0], own("PATH").as_deref())?;
    let pwd = super::direct::pwd(spec.dir, own("PWD").as_deref())?;
    let mut cmd = Command::new(program);
    cmd.arg0(words[0]).args(&words[1..]);
    Some((cmd, pwd))
}

const TAIL_LINES: usize = 20;

impl Proc {
    /// SIGKILL everything of the attempt: its process group and, when it has one, its cgroup
    /// (which also holds what left the group).
    pub fn kill_all(&self) {
        signal_group(self.pid, Signal::KILL);
        if let Some(lease) = &self.cgroup {
            lease.kill();
        }
    }

    /// Read what is available on one stream (0 = stdout, 1 = stderr) into the log, and return the
    /// complete lines for the console. `Ok(true)` means the stream reached its end. When the log
    /// cannot be written (a full disk), the error is put in `log_error` once and the output is
    /// still read — a task is never stopped because wf could not store its output.
    pub fn drain(
        &mut self,
        stream: usize,
        lines: &mut Vec<String>,
        log_error: &mut Option<std::io::Error>,
    ) -> std::io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let r = match stream {
                0 => self.out.as_mut().map(|s| s.read(&mut buf)),
                _ => self.err.as_mut().map(|s| s.read(&mut buf)),
            };
            match r {
                None => return Ok(true),
                Some(Ok(0)) => {
                    let rest = std::mem::take(&mut self.pending[stream]);
                    if !rest.is_empty() {
                        self.line(&rest, lines);
                    }
                    if stream == 0 {
                        self.out = None;
                    } else {
                        self.err = None;
                    }
                    return Ok(true);
                }
                Some(Ok(n)) => {
                    if !self.log_failed {
                        if let Err(e) = self.log_file().and_then(|f| f.write_all(&buf[..n])) {
                            self.log_failed = true;
                            *log_error = Some(e);
                        }
                    }
                    let mut start = 0;
                    for i in 0..n {
                        if buf[i] == b'\n' {
                            let mut line = std::mem::take(&mut self.pending[stream]);
                            line.extend_from_slice(&buf[start..i]);
                            self.line(&line, lines);
                            start = i + 1;
                        }
                    }
                    self.pending[stream].extend_from_slice(&buf[start..n]);
                    if self.pending[stream].len() > 64 * 1024 {
                        let long = std::mem::take(&mut self.pending[stream]);
                        self.line(&long, lines);
                    }
                }
                Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Some(Err(e)) if e.kind() == ErrorKind::Interrupted => continue,
                Some(Err(e)) => return Err(e),
            }
        }
    }

    fn log_file(&mut self) -> std::io::Result<&mut File> {
        if self.log.is_none() {
            // STATE/logs/RUN/TASK.N.log: opened below the state directory without following a
            // link, created private.
            let p = &self.log_path;
            let root = p.ancestors().nth(3).unwrap_or(Path::new("."));
            let rel = p.strip_prefix(root).unwrap_or(p);
            self.log = Some(wf_state::safe::open(
                root,
                rel,
                wf_state::safe::How::Append,
            )?);
        }
        self.log
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the log file could not be opened"))
    }

    fn line(&mut self, bytes: &[u8], lines: &mut Vec<String>) {
        let s = String::from_utf8_lossy(bytes).into_owned();
        if self.tail.len() == TAIL_LINES {
            self.tail.remove(0);
        }
        self.tail.push(s.clone());
        lines.push(s);
    }

    pub fn open_streams(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        let mut v = Vec::new();
        if let Some(o) = &self.out {
            v.push((0, o.as_fd()));
        }
        if let Some(e) = &self.err {
            v.push((1, e.as_fd()));
        }
        v
    }
}

/// The environment variable that marks every task process with the `wf` that started it.
pub const OWNER_VAR: &str = "WF_OWNER";

/// This process's owner mark: pid and start time, so a reused pid never matches.
pub fn owner_mark() -> String {
    let me = std::process::id();
    format!(
        "{me}.{}",
        wf_state::process::start_time(me).unwrap_or_default()
    )
}

/// The reaper: a helper process (`wf __reap`, in its own process group) started before the first
/// task, that wf tells about every task process group it starts and ends. When wf dies for any
/// reason, even SIGKILL, the pipe closes and the reaper kills every group still listed, and every
/// process whose environment carries this wf's owner mark (which also covers a task spawned in the
/// instant before wf could list its group). So no task outlives its wf.
pub struct Reaper {
    pipe: Option<std::process::ChildStdin>,
    child: Option<Child>,
    tree: Option<PathBuf>,
}

impl Reaper {
    pub fn start() -> Reaper {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("wf"));
        let child = Command::new(exe)
            .arg("__reap")
            .env("WF_REAP_MARK", format!("{OWNER_VAR}={}", owner_mark()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        match child {
            Ok(mut c) => Reaper {
                pipe: c.stdin.take(),
                child: Some(c),
                tree: None,
            },
            // Without a reaper nothing kills the attempts when wf dies: they may outlive a
            // crash, and `wf resume` finds what is left of them (marker, group, cgroup) and
            // kills it before the run continues.
            Err(_) => Reaper {
                pipe: None,
                child: None,
                tree: None,
            },
        }
    }

    pub fn watch(&mut self, pgid: u32) {
        self.send(&format!("+{pgid}\n"));
    }

    /// The cgroup tree of this wf's attempts: ended (everything in it killed, then removed) when
    /// wf ends, however it ends.
    pub fn contain(&mut self, tree: &Path) {
        if self.tree.as_deref() != Some(tree) {
            self.send(&format!("={}\n", tree.display()));
            self.tree = Some(tree.to_path_buf());
        }
    }

    pub fn forget(&mut self, pgid: u32) {
        self.send(&format!("-{pgid}\n"));
    }

    fn send(&mut self, msg: &str) {
        if let Some(p) = self.pipe.as_mut() {
            if p.write_all(msg.as_bytes()).is_err() {
                self.pipe = None;
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.pipe = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

/// The body of `wf __reap`: read `+PGID` / `-PGID` / `=CGROUP-TREE` lines until end of input,
/// then SIGKILL every group still listed and end the cgroup tree (kill what is in it, remove it).
pub fn reap_main() -> i32 {
    // Ctrl-C in a terminal goes to wf's group, not ours, but be sure: only EOF ends the reaper.
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::new(Default::default()));
    }
    let mut groups: BTreeMap<u32, ()> = BTreeMap::new();
    let mut tree: Option<PathBuf> = None;
    let mut input = String::new();
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 4096];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                input.push_str(&String::from_utf8_lossy(&buf[..n]));
                while let Some(i) = input.find('\n') {
                    let line: String = input.drain(..=i).collect();
                    let line = line.trim();
                    if let Some(t) = line.strip_prefix('=') {
                        tree = Some(PathBuf::from(t));
                    } else if let Some(p) =
                        line.strip_prefix('+').and_then(|p| p.parse::<u32>().ok())
                    {
                        if p > 1 {
                            groups.insert(p, ());
                        }
                    } else if let Some(p) = line.strip_prefix('-').and_then(|p| p.parse().ok()) {
                        groups.remove(&p);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    for pgid in groups.keys() {
        signal_group(*pgid, Signal::KILL);
    }
    if let Some(t) = &tree {
        cgroup::end_path(t);
    }
    // Processes carrying the owner mark: a task spawned just before wf died, before it could
    // list its group, and anything that left its group. Repeat while they fork.
    if let Ok(mark) = std::env::var("WF_REAP_MARK") {
        for _ in 0..50 {
            let found = find_marked(&mark);
            if found.is_empty() {
                break;
            }
            for pid in found.into_iter().filter(|p| *p > 1) {
                if let Some(p) = Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(p, Signal::KILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    0
}
