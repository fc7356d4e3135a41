//! Signals as events in the scheduler's poll loop: SIGCHLD, SIGINT and SIGTERM each write a byte
//! to a self-pipe (so `poll` wakes), and SIGINT/SIGTERM also record which one asked us to stop.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook::SigId;

pub struct Signals {
    read: UnixStream,
    stop: Arc<AtomicUsize>,
    ids: Vec<SigId>,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let stop = Arc::new(AtomicUsize::new(0));
        let mut ids = Vec::new();
        for sig in [SIGCHLD, SIGINT, SIGTERM] {
            ids.push(signal_hook::low_level::pipe::register(
                sig,
                write.try_clone()?,
            )?);
        }
        for sig in [SIGINT, SIGTERM] {
            ids.push(signal_hook::flag::register_usize(
                sig,
                Arc::clone(&stop),
                sig as usize,
            )?);
        }
        Ok(Signals { read, stop, ids })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Empty the self-pipe after a wake-up.
    pub fn drain(&self) {
        let mut buf = [0u8; 256];
        while let Ok(n) = (&self.read).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }

    /// The signal that asked wf to stop, if any.
    pub fn stop_requested(&self) -> Option<i32> {
        match self.stop.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }

    /// Forget a stop request (after it was handled).
    pub fn clear(&self) {
        self.stop.store(0, Ordering::SeqCst);
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
