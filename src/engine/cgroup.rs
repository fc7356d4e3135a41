//! Containment of task attempts in cgroup v2, where the kernel offers it and wf may create a child
//! cgroup (root, or a delegated subtree): each running attempt has a cgroup of its own, ended with
//! `cgroup.kill`, which reaches every process of the attempt — also one that left the process group
//! (`setsid`) and dropped the owner mark (`env -i`). Without it, wf falls back to process groups and
//! owner marks (docs/resume.md says what that cannot catch).
//!
//! Layout: `HOME/wf-<state>.<pid>/s<N>`, where HOME is the cgroup wf runs in, `<state>` names the
//! state directory (a hash of its path) and `<pid>` this wf. The slots `s<N>` are reused: an
//! attempt leases an empty one (creating and removing a cgroup costs about a millisecond, a lease
//! with the files kept open some tens of microseconds). The reaper removes the whole `wf-….<pid>`
//! tree when wf ends (killing what is in it if wf died), and `wf resume` ends every tree of its
//! state directory left by a wf that died with its reaper.
//!
//! Placement is race-free without `pre_exec` (which would cost posix_spawn, see process.rs): wf
//! moves itself into the attempt's cgroup, spawns the shell (which starts there, as a fork inherits
//! its parent's cgroup), and moves itself back. A task cannot fork before it is contained.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Set to `off` to run without cgroups (process groups only).
pub const ENV_SWITCH: &str = "WF_CGROUP";

/// The file in the state directory's `logs/` that names the cgroup wf ran its attempts under, so
/// that `wf resume` finds them after a crash that also took the reaper.
pub const HOME_FILE: &str = "cgroup-parent";

/// Where attempts' cgroups are made: the cgroup2 mount and the cgroup wf itself runs in.
pub struct Cgroups {
    mount: PathBuf,
    home: PathBuf,
    pool: std::sync::Mutex<Pool>,
}

/// Which containment is active, for `wf -v` and docs.
pub enum Containment {
    Cgroup(&'static Cgroups),
    /// Process groups and owner marks only, and why.
    Groups(String),
}

impl std::fmt::Display for Containment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Containment::Cgroup(c) => write!(
                f,
                "each attempt in its own cgroup v2 under {} (killed with cgroup.kill)",
                c.home.display()
            ),
            Containment::Groups(why) => write!(
                f,
                "process groups and owner marks ({why}); a process that leaves its group and clears its environment is not caught"
            ),
        }
    }
}

static DETECTED: OnceLock<Result<Cgroups, String>> = OnceLock::new();

/// The containment this wf uses (decided once per process).
pub fn containment() -> Containment {
    match DETECTED.get_or_init(detect) {
        Ok(c) => Containment::Cgroup(c),
        Err(why) => Containment::Groups(why.clone()),
    }
}

/// The cgroups to contain attempts in, if any.
pub fn available() -> Option<&'static Cgroups> {
    DETECTED.get_or_init(detect).as_ref().ok()
}

/// The cgroup2 mount point and its root within the hierarchy, from /proc/self/mountinfo.
fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    for line in mountinfo.lines() {
        // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = left.split_whitespace().collect();
        if fields.len() >= 5 {
            return Some((PathBuf::from(unescape(fields[4])), unescape(fields[3])));
        }
    }
    None
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(n as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup v2 path (the `0::PATH` line of /proc/self/cgroup).
fn own_path() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

fn detect() -> Result<Cgroups, String> {
    if std::env::var(ENV_SWITCH).is_ok_and(|v| v == "off") {
        return Err(format!("turned off by {ENV_SWITCH}=off"));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|_| "no /proc/self/mountinfo".to_string())?;
    let (mount, root) = cgroup2_mount(&mountinfo).ok_or("no cgroup2 mount")?;
    let own = own_path().ok_or("this process is in no cgroup v2")?;
    let rel = if root == "/" {
        own.as_str()
    } else {
        own.strip_prefix(root.as_str())
            .ok_or("this process's cgroup is outside the cgroup2 mount")?
    };
    let rel = rel.trim_matches('/');
    let home = if rel.is_empty() {
        mount.clone()
    } else {
        mount.join(rel)
    };
    if rel.split('/').any(|c| c == "..") || !home.is_dir() {
        return Err(format!("cgroup {} is not reachable", home.display()));
    }
    // Moving a process between two cgroups needs write access to their common ancestor's
    // cgroup.procs: here, wf's own cgroup.
    if rustix::fs::access(home.join("cgroup.procs"), rustix::fs::Access::WRITE_OK).is_err() {
        return Err(format!(
            "no permission to manage cgroups under {} (needs root or a delegated cgroup)",
            home.display()
        ));
    }
    Ok(Cgroups {
        mount,
        home,
        pool: Default::default(),
    })
}

/// The name prefix of the cgroups wf makes for the state directory `root`: `wf-` and 12 hex
/// digits of the BLAKE3 hash of its path.
pub fn state_prefix(root: &Path) -> String {
    let hash = blake3::hash(root.as_os_str().as_encoded_bytes()).to_hex();
    format!("wf-{}.", &hash[..12])
}

fn open_write(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

fn open_read(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// The leased cgroups of this wf, and the open files that make a lease cheap.
#[derive(Default)]
struct Pool {
    /// `HOME/wf-<state>.<pid>`, once made.
    dir: Option<PathBuf>,
    home_procs: Option<File>,
    free: Vec<Slot>,
    next: u32,
    /// Making this wf's tree failed (it is not tried again; attempts run without cgroups).
    failed: bool,
}

/// One reusable attempt cgroup, with its `cgroup.procs` (to move wf in) and `cgroup.events` (to
/// see whether anything is left) kept open.
struct Slot {
    path: PathBuf,
    procs: File,
    events: File,
    /// Whether the slot has the memory controller (`memory.max`, `memory.events`,
    /// `memory.peak`): looked up once when the slot is made, not at every attempt.
    memory: bool,
    /// No attempt has run in it yet (its `memory.peak` is this attempt's alone).
    fresh: bool,
}

impl Slot {
    fn populated(&self) -> bool {
        let mut buf = [0u8; 256];
        match rustix::io::pread(&self.events, &mut buf, 0) {
            Ok(n) => String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l.trim() == "populated 1"),
            Err(_) => false,
        }
    }
}

/// Whether this process itself is in the cgroup at `path` (then it must never be killed).
fn holds_me(path: &Path) -> bool {
    let Some(own) = own_path() else {
        return false;
    };
    let own = own.trim_start_matches('/');
    !own.is_empty() && path.ends_with(own)
}

/// SIGKILL everything in the cgroup at `path` and below it (`cgroup.kill`).
fn kill_at(path: &Path) {
    if holds_me(path) {
        return;
    }
    if let Ok(mut f) = open_write(&path.join("cgroup.kill")) {
        let _ = f.write_all(b"1");
    }
}

fn populated_at(path: &Path) -> bool {
    std::fs::read_to_string(path.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l.trim() == "populated 1"))
        .unwrap_or(false)
}

/// The processes in the cgroup at `path` and its children.
fn procs_at(path: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(procs_at(&e.path()));
            }
        }
    }
    out
}

/// Kill everything in the tree at `path`, wait up to `wait` for it to empty, and remove it
/// (children first). True when it is gone.
fn end_tree(path: &Path, wait: std::time::Duration) -> bool {
    if holds_me(path) {
        return false;
    }
    if populated_at(path) {
        kill_at(path);
    }
    let deadline = std::time::Instant::now() + wait;
    while populated_at(path) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    remove_tree(path)
}

fn remove_tree(path: &Path) -> bool {
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    match std::fs::remove_dir(path) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// End the cgroup tree at `path` (the reaper's side: it only knows the path). Only a tree wf
/// named (`wf-….PID`) is touched.
pub fn end_path(path: &Path) {
    let ours = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("wf-") && n.contains('.'));
    if ours && path.is_absolute() {
        end_tree(path, std::time::Duration::from_secs(2));
    }
}

impl Cgroups {
    /// Lease an empty attempt cgroup (the first lease makes this wf's tree and records where it
    /// is in the state directory, for `wf resume`). `Ok(None)` once making the tree has failed:
    /// the error was returned to the first caller, attempts run without cgroups.
    pub fn lease(&'static self, state_dir: &Path) -> std::io::Result<Option<Lease>> {
        let mut pool = self
            .pool
            .lock()
            .map_err(|_| std::io::Error::other("the cgroup pool is poisoned"))?;
        if pool.failed {
            return Ok(None);
        }
        // The reaper of an earlier engine in this process removed the tree: start again.
        if pool.dir.as_ref().is_some_and(|d| !d.is_dir()) {
            *pool = Pool::default();
        }
        if let Some(slot) = pool.free.pop() {
            return Ok(Some(Lease::new(self, slot)));
        }
        let dir = match &pool.dir {
            Some(d) => d.clone(),
            None => {
                // Trees of this state left by a wf that died with its reaper (a power cut, a
                // `kill -9` of both): the caller holds the state's lock, so they are stale.
                self.bury_stale(state_dir);
                let d =
                    self.home
                        .join(format!("{}{}", state_prefix(state_dir), std::process::id()));
                let made = match std::fs::create_dir(&d) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                    _ if !d.join("cgroup.kill").exists() => {
                        let _ = std::fs::remove_dir(&d);
                        Err(std::io::Error::other(
                            "this kernel has no cgroup.kill (Linux 5.14 or later is needed)",
                        ))
                    }
                    _ => open_write(&self.home.join("cgroup.procs")),
                };
                let procs = match made {
                    Ok(f) => f,
                    Err(e) => {
                        pool.failed = true;
                        return Err(std::io::Error::other(format!(
                            "cannot make cgroups under {}: {e}",
                            self.home.display()
                        )));
                    }
                };
                record_home(state_dir, &self.home);
                // Attempts get a memory controller where wf's own cgroup delegates one (for
                // `memory_limit`); without it they are contained all the same.
                if memory_delegated(&self.home) {
                    if let Ok(mut f) = open_write(&d.join("cgroup.subtree_control")) {
                        let _ = f.write_all(b"+memory");
                    }
                }
                pool.home_procs = Some(procs);
                pool.dir = Some(d.clone());
                d
            }
        };
        let path = dir.join(format!("s{}", pool.next));
        pool.next += 1;
        let fresh = match std::fs::create_dir(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                kill_at(&path);
                false
            }
            Err(e) => return Err(e),
        };
        let slot = Slot {
            procs: open_write(&path.join("cgroup.procs"))?,
            events: open_read(&path.join("cgroup.events"))?,
            memory: path.join("memory.max").exists(),
            fresh,
            path,
        };
        Ok(Some(Lease::new(self, slot)))
    }

    /// This wf's cgroup tree, once it has one (for the reaper).
    pub fn tree(&self) -> Option<PathBuf> {
        self.pool.lock().ok().and_then(|p| p.dir.clone())
    }

    /// Run `spawn` with this process inside the leased cgroup, so what it starts begins there;
    /// then come back.
    pub fn spawn_in<T>(
        &self,
        lease: &Lease,
        spawn: impl FnOnce() -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let Some(slot) = &lease.slot else {
            return spawn();
        };
        if let Err(e) = (&slot.procs).write_all(b"0") {
            // A cgroup problem is wf's, never the task's: it runs with its process group only.
            tracing::warn!(event = "cgroup", error = %e, "an attempt runs without its cgroup");
            return spawn();
        }
        let spawned = spawn();
        let back = match self.pool.lock() {
            Ok(pool) => match &pool.home_procs {
                Some(f) => {
                    let mut f: &File = f;
                    f.write_all(b"0")
                }
                None => Err(std::io::Error::other("no home cgroup")),
            },
            Err(_) => Err(std::io::Error::other("the cgroup pool is poisoned")),
        };
        match (spawned, back) {
            (Ok(t), Ok(())) => Ok(t),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(std::io::Error::other(format!(
                "wf could not leave the attempt's cgroup {}: {e}",
                slot.path.display()
            ))),
        }
    }

    /// End every cgroup tree of this state directory that a wf which died with its reaper left
    /// behind (the caller holds the state's lock, so no other wf of it is alive): under the
    /// cgroup recorded in the state directory, under this wf's own, and at the top. Returns the
    /// processes that were in them.
    pub fn bury_stale(&self, state_dir: &Path) -> Vec<u32> {
        let prefix = state_prefix(state_dir);
        let mine = format!("{prefix}{}", std::process::id());
        let recorded = std::fs::read_to_string(state_dir.join("logs").join(HOME_FILE))
            .ok()
            .map(|s| PathBuf::from(s.trim()));
        let mut killed = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for parent in recorded
            .into_iter()
            .chain([self.home.clone(), self.mount.clone()])
        {
            // Only inside the cgroup2 mount, never through `..`.
            if !parent.starts_with(&self.mount)
                || parent
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
                || !seen.insert(parent.clone())
            {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&parent) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with(&prefix) || name == mine {
                    continue;
                }
                let path = e.path();
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    killed.extend(procs_at(&path));
                    end_tree(&path, std::time::Duration::from_secs(5));
                }
            }
        }
        killed
    }
}

/// Whether the cgroup `home` passes the memory controller on to its children.
fn memory_delegated(home: &Path) -> bool {
    std::fs::read_to_string(home.join("cgroup.subtree_control"))
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"))
}

/// Whether a task's `memory_limit` is enforced by a cgroup on this machine (else wf sets an
/// address-space limit, which is weaker): `wf check` warns when it is not.
pub fn memory_limits() -> bool {
    available().is_some_and(|c| memory_delegated(&c.home))
}

/// Record where this wf makes its cgroups (once per process), for `wf resume`.
fn record_home(state_dir: &Path, home: &Path) {
    let logs = state_dir.join("logs");
    let _ = std::fs::create_dir_all(&logs);
    let path = logs.join(HOME_FILE);
    let tmp = logs.join(format!("{HOME_FILE}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(home.as_os_str().as_encoded_bytes()));
    if written.is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// A running attempt's cgroup. When dropped (the attempt is over), whatever is left in it is
/// killed, and the cgroup goes back to the pool once empty.
pub struct Lease {
    owner: &'static Cgroups,
    slot: Option<Slot>,
    /// Where the slot has the memory controller: its `memory.peak` (reset for this attempt
    /// through this handle) and its `cpu.stat` before the attempt, for `usage`.
    meter: Option<Meter>,
    /// `kill` found the slot empty after the attempt's shell ended: nothing can enter it again
    /// (only wf moves processes in, and only for a new lease), so the end of the lease need not
    /// read `cgroup.events` once more.
    emptied: std::cell::Cell<bool>,
}

/// The readings an attempt's figures are taken against (see `Lease::usage`).
struct Meter {
    peak: Option<File>,
    cpu_before: Option<CpuStat>,
}

/// The CPU time of a cgroup's processes, from its `cpu.stat` (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuStat {
    pub usage_us: u64,
    pub user_us: u64,
    pub system_us: u64,
}

/// What an attempt's cgroup says it used: CPU time of every process that ran in it (also those
/// that left the process group, and those nobody waited for) and its memory high-water mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupUsage {
    pub user_us: u64,
    pub sys_us: u64,
    pub peak_bytes: u64,
}

/// `cpu.stat`'s `usage_usec`, `user_usec` and `system_usec` (present in every cgroup v2, with or
/// without the cpu controller); None when one is missing or not a number.
pub fn parse_cpu_stat(text: &str) -> Option<CpuStat> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse::<u64>().ok()).flatten()
        })
    };
    Some(CpuStat {
        usage_us: field("usage_usec")?,
        user_us: field("user_usec")?,
        system_us: field("system_usec")?,
    })
}

/// `memory.peak`: one number of bytes (None for anything else, such as `max` or a torn read).
pub fn parse_peak(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The attempt's figures from two `cpu.stat` readings and a `memory.peak` reading; None when the
/// counters went backwards (the slot is not the one that was read before) or a reading is
/// missing.
pub fn cgroup_usage(
    before: Option<CpuStat>,
    after: Option<CpuStat>,
    peak: Option<u64>,
) -> Option<CgroupUsage> {
    let (b, a, peak) = (before?, after?, peak?);
    if a.user_us < b.user_us || a.system_us < b.system_us || a.usage_us < b.usage_us {
        return None;
    }
    Some(CgroupUsage {
        user_us: a.user_us - b.user_us,
        sys_us: a.system_us - b.system_us,
        peak_bytes: peak,
    })
}

fn read_at(file: &File) -> Option<String> {
    let mut buf = [0u8; 1024];
    let n = rustix::io::pread(file, &mut buf, 0).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

impl Lease {
    fn new(owner: &'static Cgroups, slot: Slot) -> Lease {
        Lease {
            owner,
            slot: Some(slot),
            meter: None,
            emptied: std::cell::Cell::new(false),
        }
    }

    /// Take the readings an attempt's figures are measured against, just before it starts, where
    /// the slot has the memory controller (else nothing: the attempt's figures come from rusage,
    /// at no cost here). `memory.peak` is reset for this lease's handle (Linux 6.12 and later);
    /// on an older kernel a reused slot's peak may be an earlier attempt's, so it is only used in
    /// a fresh slot.
    pub fn start_meter(&mut self) {
        let Some(slot) = &self.slot else {
            return;
        };
        if !slot.memory {
            return;
        }
        let peak = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(slot.path.join("memory.peak"))
            .ok()
            .filter(|f| {
                let mut f: &File = f;
                f.write_all(b"reset\n").is_ok() || slot.fresh
            });
        let cpu_before = std::fs::read_to_string(slot.path.join("cpu.stat"))
            .ok()
            .and_then(|t| parse_cpu_stat(&t));
        self.meter = Some(Meter { peak, cpu_before });
    }

    /// The attempt's CPU time and peak memory as its cgroup counted them (read when it ended),
    /// or None where the slot has no memory controller or a reading failed (then rusage).
    pub fn usage(&self) -> Option<CgroupUsage> {
        let slot = self.slot.as_ref()?;
        let meter = self.meter.as_ref()?;
        let after = std::fs::read_to_string(slot.path.join("cpu.stat"))
            .ok()
            .and_then(|t| parse_cpu_stat(&t));
        let peak = meter
            .peak
            .as_ref()
            .and_then(read_at)
            .and_then(|t| parse_peak(&t));
        cgroup_usage(meter.cpu_before, after, peak)
    }

    pub fn path(&self) -> Option<&Path> {
        self.slot.as_ref().map(|s| s.path.as_path())
    }

    /// Set (or, with None, lift) the attempt's `memory.max`; false when its cgroup has no memory
    /// controller (then the limit is not enforced by the cgroup).
    pub fn set_memory_max(&self, bytes: Option<u64>) -> bool {
        let Some(slot) = &self.slot else {
            return false;
        };
        if !slot.memory {
            return false;
        }
        let file = slot.path.join("memory.max");
        let value = bytes.map_or_else(|| "max".to_string(), |b| b.to_string());
        let ok = open_write(&file)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .is_ok();
        if ok && bytes.is_some() {
            // Over the limit is over it: no swap to spill into.
            if let Ok(mut f) = open_write(&slot.path.join("memory.swap.max")) {
                let _ = f.write_all(b"0");
            }
        }
        ok
    }

    /// How many times the kernel's OOM killer killed a process in the attempt's cgroup (its
    /// `memory.events`; counts since the cgroup was made, so compare two readings).
    pub fn oom_kills(&self) -> Option<u64> {
        let slot = self.slot.as_ref().filter(|s| s.memory)?;
        let text = std::fs::read_to_string(slot.path.join("memory.events")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    }

    /// SIGKILL every process in the attempt's cgroup, whatever group or session it moved to.
    pub fn kill(&self) {
        if let Some(slot) = &self.slot {
            if slot.populated() {
                kill_at(&slot.path);
            } else {
                self.emptied.set(true);
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut slot) = self.slot.take() else {
            return;
        };
        slot.fresh = false;
        let mut populated = !self.emptied.get() && slot.populated();
        if populated {
            kill_at(&slot.path);
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
            while populated && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(2));
                populated = slot.populated();
            }
        }
        // A slot still holding processes is not reused; the reaper ends it with the tree.
        if !populated {
            if let Ok(mut pool) = self.owner.pool.lock() {
                pool.free.push(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_of_a_hybrid_host() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(info),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
        );
        let pure = "25 1 0:22 /sub /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount(pure),
            Some((PathBuf::from("/sys/fs/cgroup"), "/sub".to_string()))
        );
        assert_eq!(cgroup2_mount("1 1 0:1 / / rw - ext4 /dev/sda rw\n"), None);
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn reads_cpu_stat_and_memory_peak() {
        // cpu.stat of a cgroup without the cpu controller (the core statistics only) and with it.
        let core = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n\
                    nice_usec 0\ncore_sched.force_idle_usec 0\n";
        let before = parse_cpu_stat(core);
        assert_eq!(
            before,
            Some(CpuStat {
                usage_us: 1_234_567,
                user_us: 1_000_000,
                system_us: 234_567
            })
        );
        let with_cpu = "usage_usec 2234567\nuser_usec 1500000\nsystem_usec 734567\n\
                        nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n";
        let after = parse_cpu_stat(with_cpu);
        assert_eq!(
            cgroup_usage(before, after, parse_peak("52428800\n")),
            Some(CgroupUsage {
                user_us: 500_000,
                sys_us: 500_000,
                peak_bytes: 50 << 20
            })
        );
        // Damaged, partial or foreign text reads as nothing (the figures fall back to rusage).
        for bad in [
            "",
            "usage_usec 1\nuser_usec 1\n",
            "usage_usec x\nuser_usec 1\nsystem_usec 1\n",
            "usage_usec -1\nuser_usec 1\nsystem_usec 1\n",
            "usage_usec 18446744073709551616\nuser_usec 1\nsystem_usec 1\n",
            "usage_usec\nuser_usec\nsystem_usec\n",
        ] {
            assert_eq!(parse_cpu_stat(bad), None, "{bad:?}");
        }
        // A field's name is matched whole: `user_usec_extra` is not `user_usec`.
        assert_eq!(
            parse_cpu_stat("usage_usec 3\nuser_usec_extra 9\nuser_usec 2\nsystem_usec 1\n")
                .map(|c| c.user_us),
            Some(2)
        );
        for bad in ["", "max", "12 34", "-5", "1.5"] {
            assert_eq!(parse_peak(bad), None, "{bad:?}");
        }
        // Counters that went backwards (another slot, a recreated cgroup) or a missing reading:
        // no cgroup figures.
        assert_eq!(cgroup_usage(after, before, Some(1)), None);
        assert_eq!(cgroup_usage(None, after, Some(1)), None);
        assert_eq!(cgroup_usage(before, after, None), None);
    }

    #[test]
    fn state_prefixes_are_stable_and_distinct() {
        let a = state_prefix(Path::new("/x/.wf"));
        assert_eq!(a, state_prefix(Path::new("/x/.wf")));
        assert_ne!(a, state_prefix(Path::new("/y/.wf")));
        assert!(a.starts_with("wf-") && a.ends_with('.') && a.len() == 16);
    }
}
