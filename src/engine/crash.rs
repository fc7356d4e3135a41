//! Fault injection for the crash tests: `WF_CRASH_POINT=NAME` (or `NAME@N`, the Nth time) makes wf
//! SIGKILL itself at that point of the scheduler, so tests can kill it exactly between a journal
//! write and the side effect it announces. Unset in normal use; costs one check per point.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

static TARGET: OnceLock<Option<(String, u32)>> = OnceLock::new();
static HITS: AtomicU32 = AtomicU32::new(0);

fn target() -> &'static Option<(String, u32)> {
    TARGET.get_or_init(|| {
        let v = std::env::var("WF_CRASH_POINT").ok()?;
        match v.split_once('@') {
            Some((name, n)) => Some((name.to_string(), n.parse().unwrap_or(1))),
            None => Some((v, 1)),
        }
    })
}

/// Die here (SIGKILL, like an OOM kill) if this is the configured crash point.
pub fn point(name: &str) {
    if let Some((want, nth)) = target() {
        if want == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
    }
}
