//! Task processes: each attempt is `sh -c RUN` in its own process group, killed with SIGKILL if
//! wf dies (by the reaper, which kills its whole group and every process carrying wf's owner
//! mark), with its stdout and stderr read through non-blocking pipes by the scheduler's single poll
//! loop. Where cgroup v2 allows it, each attempt also runs in its own cgroup (cgroup.rs), which
//! catches what leaves the group.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};

use rustix::fs::{fcntl_setfl, OFlags};
use rustix::process::{Pid, Signal};

use super::cgroup::{self, Lease};
use super::output::{CappedLog, Cut, Tail};
use crate::procs::{find_marked, signal_group};

/// What to start.
pub struct Spec<'a> {
    pub command: &'a str,
    pub dir: &'a Path,
    pub env: Vec<(String, String)>,
    /// The state directory and the log's path below it.
    pub root: &'a Path,
    pub log: &'a Path,
    /// At most this many bytes of output are kept in the log (head and tail).
    pub log_limit: u64,
    /// The task's `memory_limit`, in bytes.
    pub memory_limit: Option<u64>,
    /// The attempt's cgroup, where cgroups are available.
    pub cgroup: Option<Lease>,
}

/// How an attempt's `memory_limit` is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// The attempt's cgroup `memory.max`: resident memory, the task is killed beyond it.
    Cgroup,
    /// `ulimit -v` (RLIMIT_AS) set by the shell before the command: address space, an
    /// allocation beyond it fails.
    AddressSpace,
}

/// A running attempt.
pub struct Proc {
    pub child: Child,
    pub pid: u32,
    pub out: Option<ChildStdout>,
    pub err: Option<ChildStderr>,
    /// The attempt's log, created at its first byte of output (an attempt that prints nothing
    /// costs no file creation, which on ext4 waits for the journal commit of the last fsync),
    /// capped at the task's `log_limit`.
    log: CappedLog,
    /// Partial lines per stream, for the console prefix.
    pub pending: [Vec<u8>; 2],
    /// The end of the output (bytes), for failure messages.
    pub tail: Tail,
    /// How the task's `memory_limit` is enforced, when it has one.
    pub memory_limit: Option<(u64, MemoryLimit)>,
    /// Whether the output is echoed to the console line by line (not with -q: then it is only
    /// stored, never split into lines).
    pub echo: bool,
    /// The highest peak RSS (KiB) read from the attempt's leader while it ran.
    pub sampled_rss: Option<u64>,
    sampled_at: Option<std::time::Instant>,
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

/// Make the read end of a pipe wf just created non-blocking: its status flags are known (none:
/// the access mode is not a settable flag), so one `fcntl` sets them without reading them first.
fn nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    fcntl_setfl(fd, OFlags::NONBLOCK)?;
    Ok(())
}

/// Start an attempt (posix_spawn of `/bin/sh -c RUN`, in a new process group, inside its cgroup
/// when it has one).
pub fn spawn(spec: Spec<'_>) -> std::io::Result<Proc> {
    // Whether the command can run without a shell (looked up before `spec` is taken apart).
    let direct_cmd = direct_command(&spec);
    let mut cgroup = spec.cgroup;
    // A memory limit: the cgroup's `memory.max` where the attempt's cgroup has one, else an
    // address-space limit the shell sets for itself before it runs the command (no `pre_exec`:
    // it would cost posix_spawn, and it is unsafe code).
    let memory_limit = spec.memory_limit.map(|bytes| {
        let by_cgroup = cgroup
            .as_ref()
            .is_some_and(|l| l.set_memory_max(Some(bytes)));
        if by_cgroup {
            (bytes, MemoryLimit::Cgroup)
        } else {
            (bytes, MemoryLimit::AddressSpace)
        }
    });
    if memory_limit.is_none() {
        if let Some(l) = &cgroup {
            l.set_memory_max(None);
        }
    }
    if let Some(l) = cgroup.as_mut() {
        l.start_meter();
    }
    // An absolute path: no search of $PATH for every attempt.
    let mut cmd = Command::new("/bin/sh");
    match memory_limit {
        Some((bytes, MemoryLimit::AddressSpace)) => {
            let kib = (bytes / 1024).max(1);
            cmd.arg("-c")
                .arg(format!(
                    "ulimit -v {kib} || exit 125; exec /bin/sh -c \"$1\""
                ))
                .arg("sh")
                .arg(spec.command);
        }
        _ => {
            cmd.arg("-c").arg(spec.command);
        }
    }
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
    // failure to exec it falls back to the shell, which then reports it in its own words. A
    // memory limit kept by `ulimit -v` needs the shell.
    let needs_shell = matches!(memory_limit, Some((_, MemoryLimit::AddressSpace)));
    let mut direct = direct_cmd.filter(|_| !needs_shell).map(|(mut d, pwd)| {
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
        log: CappedLog::new(
            spec.root,
            spec.log.strip_prefix(spec.root).unwrap_or(spec.log),
            spec.log_limit,
        ),
        pending: [Vec::new(), Vec::new()],
        tail: Tail::default(),
        memory_limit,
        echo: true,
        sampled_rss: None,
        // The first read 100 ms in: a short task costs no /proc read.
        sampled_at: Some(std::time::Instant::now()),
        cgroup,
        log_failed: false,
        direct: was_direct,
    })
}

/// The most bytes one `drain` reads before it returns: what it hands to the console is bounded
/// however fast a task prints (the poll loop comes back for the rest).
const DRAIN_MAX: usize = 256 * 1024;
/// A partial line longer than this goes to the console as it is (a task printing without
/// newlines is never accumulated).
const LINE_MAX: usize = 64 * 1024;
/// How often the leader's peak RSS is read while it runs (a fallback, see `Usage`).
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// What an ended attempt used: CPU time of its process tree (the shell and every descendant it
/// waited for) and its peak resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub user_us: u64,
    pub sys_us: u64,
    pub max_rss_kib: Option<u64>,
    /// `rusage`: exact (getrusage of wf's children, before and after the attempt was reaped);
    /// `sampled`: the peak of the attempt's leader process read while it ran, a lower bound
    /// (the rusage high-water mark did not move above wf's own peak or an earlier child's);
    /// `bound`: neither, the figure is an upper bound (wf's children's high-water mark).
    pub source: &'static str,
}

/// (user µs, system µs, peak RSS KiB) of wf's reaped children, as getrusage reports them.
fn children_usage() -> Option<(u64, u64, u64)> {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).ok()?;
    let us = |t: nix::sys::time::TimeVal| u64::try_from(t.num_microseconds()).unwrap_or(0);
    Some((
        us(u.user_time()),
        us(u.system_time()),
        u64::try_from(u.max_rss()).unwrap_or(0),
    ))
}

/// wf's own peak RSS (KiB).
fn own_peak_rss() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF)
        .ok()
        .and_then(|u| u64::try_from(u.max_rss()).ok())
        .unwrap_or(0)
}

/// VmHWM (KiB) of a live process.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
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

impl Proc {
    /// SIGKILL everything of the attempt: its process group and, when it has one, its cgroup
    /// (which also holds what left the group).
    pub fn kill_all(&self) {
        signal_group(self.pid, Signal::KILL);
        if let Some(lease) = &self.cgroup {
            lease.kill();
        }
    }

    /// Reap the attempt's shell if it exited, with what it used. While it runs, its peak memory
    /// is read now and then (the fallback figure of `Usage`).
    pub fn try_wait(&mut self) -> std::io::Result<Option<(std::process::ExitStatus, Usage)>> {
        let before = children_usage();
        let Some(status) = self.child.try_wait()? else {
            let now = std::time::Instant::now();
            if self.sampled_at.is_none_or(|t| now >= t + SAMPLE_EVERY) {
                self.sampled_at = Some(now);
                if let Some(kib) = peak_rss(self.pid) {
                    self.sampled_rss = Some(self.sampled_rss.unwrap_or(0).max(kib));
                }
            }
            return Ok(None);
        };
        let after = children_usage();
        let usage = match (before, after) {
            (Some(b), Some(a)) => {
                // A child's maxrss starts at its parent's at the exec (Linux counts the mm it
                // replaces): only a figure above wf's own peak is the task's.
                let (max_rss_kib, source) = if a.2 > b.2 && a.2 > own_peak_rss() {
                    (Some(a.2), "rusage")
                } else if self.sampled_rss.is_some() {
                    (self.sampled_rss, "sampled")
                } else {
                    (Some(a.2), "bound")
                };
                Usage {
                    user_us: a.0.saturating_sub(b.0),
                    sys_us: a.1.saturating_sub(b.1),
                    max_rss_kib,
                    source,
                }
            }
            _ => Usage {
                max_rss_kib: self.sampled_rss,
                source: "sampled",
                ..Usage::default()
            },
        };
        // Where the attempt ran in a cgroup with the memory controller, the cgroup's own
        // figures: every process of the attempt, also one that left its group or was never
        // waited for.
        let usage = match self.cgroup.as_ref().and_then(Lease::usage) {
            Some(c) => Usage {
                user_us: c.user_us,
                sys_us: c.sys_us,
                max_rss_kib: Some(c.peak_bytes / 1024),
                source: "cgroup",
            },
            None => usage,
        };
        Ok(Some((status, usage)))
    }

    /// Read what is available on one stream (0 = stdout, 1 = stderr) into the log, and return the
    /// complete lines for the console (at most `DRAIN_MAX` bytes per call). `Ok(true)` means the
    /// stream reached its end. When the log cannot be written (a full disk), the error is put in
    /// `log_error` once and the output is still read — a task is never stopped because wf could
    /// not store its output.
    pub fn drain(
        &mut self,
        stream: usize,
        lines: &mut Vec<String>,
        log_error: &mut Option<std::io::Error>,
    ) -> std::io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        let mut read = 0;
        loop {
            if read >= DRAIN_MAX {
                return Ok(false);
            }
            let r = match stream {
                0 => self.out.as_mut().map(|s| s.read(&mut buf)),
                _ => self.err.as_mut().map(|s| s.read(&mut buf)),
            };
            match r {
                None => return Ok(true),
                Some(Ok(0)) => {
                    let rest = std::mem::take(&mut self.pending[stream]);
                    if !rest.is_empty() {
                        lines.push(String::from_utf8_lossy(&rest).into_owned());
                    }
                    if stream == 0 {
                        self.out = None;
                    } else {
                        self.err = None;
                    }
                    return Ok(true);
                }
                Some(Ok(n)) => {
                    read += n;
                    let chunk = &buf[..n];
                    if self.log_failed {
                        self.log.skip(n);
                    } else if let Err(e) = self.log.write(chunk) {
                        self.log_failed = true;
                        *log_error = Some(e);
                    }
                    self.tail.push(chunk);
                    if !self.echo {
                        continue;
                    }
                    let pending = &mut self.pending[stream];
                    let mut start = 0;
                    for (i, b) in chunk.iter().enumerate() {
                        if *b == b'\n' {
                            let line = if pending.is_empty() {
                                String::from_utf8_lossy(&chunk[start..i]).into_owned()
                            } else {
                                pending.extend_from_slice(&chunk[start..i]);
                                let s = String::from_utf8_lossy(pending).into_owned();
                                pending.clear();
                                s
                            };
                            lines.push(line);
                            start = i + 1;
                        }
                    }
                    pending.extend_from_slice(&chunk[start..]);
                    if pending.len() > LINE_MAX {
                        lines.push(String::from_utf8_lossy(pending).into_owned());
                        pending.clear();
                    }
                }
                Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Some(Err(e)) if e.kind() == ErrorKind::Interrupted => continue,
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// The attempt ended: put its log in order and say how it was cut.
    pub fn finish_log(&mut self) -> std::io::Result<Cut> {
        self.log.finish()
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
    /// Groups that ended, not yet told: sent with the next message or `flush` (before wf waits),
    /// so an attempt that ends and the next that starts cost one write and one wake-up of the
    /// reaper, not two.
    pending: String,
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
                pending: String::new(),
            },
            // Without a reaper nothing kills the attempts when wf dies: they may outlive a
            // crash, and `wf resume` finds what is left of them (marker, group, cgroup) and
            // kills it before the run continues.
            Err(_) => Reaper {
                pipe: None,
                child: None,
                tree: None,
                pending: String::new(),
            },
        }
    }

    /// List a group the moment its leader is spawned (with whatever ended before it).
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

    /// Unlist a group whose attempt was reaped (everything in it was killed already). Told with
    /// the next message, at the latest before wf next waits (`flush`): until then a wf that dies
    /// has the reaper signal a group that is already gone.
    pub fn forget(&mut self, pgid: u32) {
        self.pending.push_str(&format!("-{pgid}\n"));
    }

    /// Tell the reaper what ended (before wf blocks: a group id must not stay listed while its
    /// number could be reused).
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.send("");
        }
    }

    fn send(&mut self, msg: &str) {
        self.pending.push_str(msg);
        let text = std::mem::take(&mut self.pending);
        if let Some(p) = self.pipe.as_mut() {
            if p.write_all(text.as_bytes()).is_err() {
                self.pipe = None;
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.flush();
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
