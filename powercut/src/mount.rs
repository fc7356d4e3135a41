//! Mounting from Rust: `Mount::new` mounts a backing directory in-process (fuser's pure-Rust
//! mount, no libfuse), `power_off` cuts the power, `power_on` unmounts and mounts again from the
//! backing directory (which then holds exactly what was synced).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};

use crate::fs::{Control, PowerCutFs};
use crate::model::{CutReport, Model, Options, Stats, Trigger};

/// How long an unmount may wait for the kernel to let go before the connection is aborted.
const UNMOUNT_WAIT: Duration = Duration::from_secs(10);

/// A mounted power-cut filesystem. Dropping it cuts the power and unmounts.
pub struct Mount {
    backing: PathBuf,
    mountpoint: PathBuf,
    options: Options,
    model: Arc<Mutex<Model>>,
    session: Option<BackgroundSession>,
    /// The mount's device number (names its FUSE connection in /sys/fs/fuse/connections).
    dev: u64,
    cycles: u64,
    tx: Sender<Control>,
    rx: Receiver<Control>,
}

fn lock(m: &Mutex<Model>) -> MutexGuard<'_, Model> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Mount {
    /// Mount `backing` at `mountpoint` (both existing directories; the mount point must not lie
    /// inside the backing directory). Needs /dev/fuse and root (or `fusermount3` on the PATH).
    pub fn new(backing: &Path, mountpoint: &Path, options: Options) -> io::Result<Mount> {
        let backing = backing.canonicalize()?;
        let mountpoint = mountpoint.canonicalize()?;
        if mountpoint.starts_with(&backing) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the mount point must not lie inside the backing directory",
            ));
        }
        let (tx, rx) = channel();
        let model = Arc::new(Mutex::new(Model::load(&backing, options.clone(), 0)?));
        let mut m = Mount {
            backing,
            mountpoint,
            options,
            model,
            session: None,
            dev: 0,
            cycles: 0,
            tx,
            rx,
        };
        m.mount()?;
        Ok(m)
    }

    fn mount(&mut self) -> io::Result<()> {
        let fs = PowerCutFs::new(self.model.clone(), Some(self.tx.clone()));
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("powercut".into()),
            MountOption::Subtype("powercut".into()),
        ];
        config.acl = SessionACL::Owner;
        let session = fuser::spawn_mount(fs, &self.mountpoint, &config)?;
        self.dev = std::fs::metadata(&self.mountpoint)?.dev();
        self.session = Some(session);
        Ok(())
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Cut the power now (idempotent): every later operation on the mount fails with EIO and
    /// what was not synced is lost. Kill the processes using the mount, then `power_on`.
    pub fn power_off(&self) -> CutReport {
        lock(&self.model).power_off()
    }

    pub fn powered_off(&self) -> bool {
        lock(&self.model).powered_off()
    }

    /// Cut the power by itself when a counter of this power cycle reaches the trigger.
    pub fn arm(&self, trigger: Option<Trigger>) {
        lock(&self.model).arm(trigger);
    }

    /// Counters of this power cycle.
    pub fn stats(&self) -> Stats {
        lock(&self.model).stats()
    }

    /// What the last cut of this power cycle lost (None while the power is on).
    pub fn cut_report(&self) -> Option<CutReport> {
        lock(&self.model).cut_report()
    }

    /// Unmount (cutting the power first if it is still on) and mount the backing directory
    /// again. Every process that used the mount must be gone, or the unmount waits for them
    /// (at most 10 s, then the FUSE connection is aborted).
    pub fn power_on(&mut self) -> io::Result<CutReport> {
        let report = self.power_off();
        self.unmount_session();
        self.cycles += 1;
        *lock(&self.model) = Model::load(&self.backing, self.options.clone(), self.cycles)?;
        self.mount()?;
        Ok(report)
    }

    /// The next event of the control file (`cut`, `on`), waiting at most `timeout`.
    pub fn next_control(&self, timeout: Duration) -> Option<Control> {
        match self.rx.recv_timeout(timeout) {
            Ok(c) => Some(c),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// A sender to wake `next_control` (e.g. with `Control::Quit` from a signal handler thread).
    pub fn control_sender(&self) -> Sender<Control> {
        self.tx.clone()
    }

    /// Detach the mount (lazily: a process still holding it keeps the detached, powered-off
    /// filesystem until it lets go) and wait for the FUSE connection to end, aborting it after
    /// `UNMOUNT_WAIT`. Only then may the mount point be mounted again: fuser's own unmount, run
    /// when its session is dropped, must find nothing left to unmount.
    fn unmount_session(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if let Ok(path) = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid NUL-terminated path; umount2 does not keep the pointer.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
        let (done_tx, done_rx) = channel();
        std::thread::spawn(move || {
            let _ = done_tx.send(session.join());
        });
        if done_rx.recv_timeout(UNMOUNT_WAIT).is_err() {
            abort_connection(self.dev);
            let _ = done_rx.recv_timeout(UNMOUNT_WAIT);
        }
    }

    /// Cut the power and unmount.
    pub fn unmount(mut self) -> CutReport {
        let r = self.power_off();
        self.unmount_session();
        r
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.session.is_some() {
            self.power_off();
            self.unmount_session();
        }
    }
}

/// Abort a FUSE connection that does not go away (a process still holds the mount): every
/// request on it fails from then on, which lets the unmount finish.
fn abort_connection(dev: u64) {
    let conns = Path::new("/sys/fs/fuse/connections");
    let abort = conns.join(dev.to_string()).join("abort");
    if !abort.exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "fusectl", "fusectl"])
            .arg(conns)
            .status();
    }
    let _ = std::fs::write(abort, "1");
}
