//! Containment of task attempts in cgroup v2, where the kernel offers it and wf may create a child
//! cgroup (root, or a delegated subtree): each attempt runs in its own cgroup, a child of the one
//! wf runs in, named after the attempt's key, and is ended with `cgroup.kill`, which reaches every
//! process of the attempt — also one that left the process group (`setsid`) and dropped the
//! owner mark (`env -i`). Without it, wf falls back to process groups and owner marks (docs/resume.md
//! says what that cannot catch).
//!
//! Placement is race-free without `pre_exec` (which would cost posix_spawn, see process.rs): wf
//! moves itself into the attempt's cgroup, spawns the shell (which starts there, as a fork inherits
//! its parent's cgroup), and moves itself back. A task cannot fork before it is contained.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Set to `off` to run without cgroups (process groups only).
pub const ENV_SWITCH: &str = "WF_CGROUP";

/// The file in the state directory's `logs/` that names the cgroup wf ran its attempts under, so
/// that `wf resume` finds them after a crash that also took the reaper.
pub const HOME_FILE: &str = "cgroup-parent";

/// Where attempts' cgroups are made: the cgroup2 mount and the cgroup wf itself runs in.
#[derive(Debug)]
pub struct Cgroups {
    mount: PathBuf,
    home: PathBuf,
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

/// Turn containment off for the rest of this process (a cgroup operation failed in a way that
/// says this system will not allow it).
fn disable(why: String) {
    // Only possible before the first use; afterwards the attempt that failed says why.
    let _ = DETECTED.set(Err(why));
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
    Ok(Cgroups { mount, home })
}

/// The cgroup name of an attempt: `wf-` and 16 hex digits of the BLAKE3 hash of its key, so the
/// same attempt always has the same name and no other can be named by it.
pub fn attempt_name(marker: &str) -> String {
    let hash = blake3::hash(marker.as_bytes()).to_hex();
    format!("wf-{}", &hash[..16])
}

fn write(path: &Path, what: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nofollow()
        .open(path)?;
    f.write_all(what.as_bytes())
}

/// `OpenOptions` with `O_NOFOLLOW` (cgroup files are never links).
trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
    }
}

impl Cgroups {
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Record where this wf makes its attempts' cgroups (once per process), for `wf resume`.
    pub fn record_home(&self, state_dir: &Path) {
        static DONE: OnceLock<()> = OnceLock::new();
        DONE.get_or_init(|| {
            let logs = state_dir.join("logs");
            let _ = std::fs::create_dir_all(&logs);
            let path = logs.join(HOME_FILE);
            let tmp = logs.join(format!("{HOME_FILE}.{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .and_then(|mut f| f.write_all(self.home.to_string_lossy().as_bytes()));
            if written.is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            } else {
                let _ = std::fs::remove_file(&tmp);
            }
        });
    }

    /// Create the cgroup of an attempt (a stale one of the same name, left by a crash, is ended
    /// and reused).
    pub fn create(&self, name: &str) -> std::io::Result<AttemptCgroup> {
        let path = self.home.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = AttemptCgroup { path: path.clone() };
                stale.kill();
                std::mem::forget(stale);
            }
            Err(e) => {
                if matches!(
                    e.raw_os_error(),
                    Some(libc_codes::EACCES | libc_codes::EPERM | libc_codes::EROFS)
                ) {
                    disable(format!(
                        "cannot create cgroups under {}: {e}",
                        self.home.display()
                    ));
                }
                return Err(e);
            }
        }
        let cg = AttemptCgroup { path };
        if !cg.path.join("cgroup.kill").exists() {
            let _ = std::fs::remove_dir(&cg.path);
            std::mem::forget(cg);
            return Err(std::io::Error::other(
                "this kernel has no cgroup.kill (Linux 5.14 or later is needed)",
            ));
        }
        Ok(cg)
    }

    /// Run `spawn` with this process inside `cg`, so what it starts begins there; then come back.
    pub fn spawn_in<T>(
        &self,
        cg: &AttemptCgroup,
        spawn: impl FnOnce() -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        write(&cg.path.join("cgroup.procs"), "0")?;
        let spawned = spawn();
        let back = write(&self.home.join("cgroup.procs"), "0");
        match (spawned, back) {
            (Ok(t), Ok(())) => Ok(t),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(std::io::Error::other(format!(
                "wf could not leave the attempt's cgroup {}: {e}",
                cg.path.display()
            ))),
        }
    }

    /// The cgroup of an interrupted attempt, looked for where a wf may have made it: under the
    /// cgroup recorded in the state directory, under this wf's own, and at the top.
    pub fn find(&self, state_dir: &Path, name: &str) -> Option<AttemptCgroup> {
        let recorded = std::fs::read_to_string(state_dir.join("logs").join(HOME_FILE))
            .ok()
            .map(|s| PathBuf::from(s.trim()));
        let places = recorded
            .into_iter()
            .chain([self.home.clone(), self.mount.clone()]);
        for parent in places {
            // Only inside the cgroup2 mount, and only a directory of exactly this name.
            if !parent.starts_with(&self.mount)
                || parent
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                continue;
            }
            let path = parent.join(name);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
                && path.join("cgroup.kill").exists()
            {
                return Some(AttemptCgroup { path });
            }
        }
        None
    }
}

/// End the cgroup at `path` (the reaper's side: it only knows paths). Only a cgroup wf named
/// (`wf-…`) is touched.
pub fn end_path(path: &Path) {
    let ours = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("wf-"));
    if ours && path.is_absolute() && path.join("cgroup.kill").exists() {
        AttemptCgroup {
            path: path.to_path_buf(),
        }
        .end(std::time::Duration::from_secs(2));
    }
}

/// Error numbers used above (rustix has them, but as its own type).
mod libc_codes {
    pub const EPERM: i32 = 1;
    pub const EACCES: i32 = 13;
    pub const EROFS: i32 = 30;
}

/// One attempt's cgroup: killed and removed when dropped.
#[derive(Debug)]
pub struct AttemptCgroup {
    path: PathBuf,
}

impl AttemptCgroup {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this process itself is in the cgroup (then it must never be killed).
    fn holds_me(&self) -> bool {
        let Some(own) = own_path() else {
            return false;
        };
        let own = own.trim_start_matches('/');
        !own.is_empty() && self.path.ends_with(own)
    }

    /// The live processes in the cgroup.
    pub fn procs(&self) -> Vec<u32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Whether any process is left in it (`populated 1` in cgroup.events).
    pub fn populated(&self) -> bool {
        std::fs::read_to_string(self.path.join("cgroup.events"))
            .map(|t| t.lines().any(|l| l.trim() == "populated 1"))
            .unwrap_or(false)
    }

    /// SIGKILL every process in the cgroup, whatever group or session it moved to.
    pub fn kill(&self) {
        if self.holds_me() {
            return;
        }
        if self.populated() {
            let _ = write(&self.path.join("cgroup.kill"), "1");
        }
    }

    /// Kill what is left, wait up to `wait` for it to go, and remove the cgroup. True when it was
    /// removed.
    pub fn end(self, wait: std::time::Duration) -> bool {
        self.kill();
        let deadline = std::time::Instant::now() + wait;
        loop {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
                Err(_) => {
                    std::mem::forget(self);
                    return false;
                }
            }
        }
        std::mem::forget(self);
        true
    }
}

impl Drop for AttemptCgroup {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        let me = AttemptCgroup {
            path: std::mem::take(&mut self.path),
        };
        me.end(std::time::Duration::from_millis(500));
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
    fn attempt_names_are_stable_and_distinct() {
        let a = attempt_name("WF_ATTEMPT_KEY=/x/.wf#1#t#1");
        assert_eq!(a, attempt_name("WF_ATTEMPT_KEY=/x/.wf#1#t#1"));
        assert_ne!(a, attempt_name("WF_ATTEMPT_KEY=/x/.wf#1#t#2"));
        assert!(a.starts_with("wf-") && a.len() == 19);
    }
}
