//! Fault injection for the crash tests: `WF_CRASH_POINT=NAME` (or `NAME@N`, the Nth time) makes wf
//! SIGKILL itself at that point (of the scheduler, alert delivery, gc), so tests can kill it exactly
//! between a journal write and the side effect it announces. A leaf module. Compiled only with the `failpoints` feature (on for
//! `cargo test`); in every other build `point` is an empty inline function and the variable is not
//! read at all.

#[cfg(feature = "failpoints")]
mod armed {
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

    pub(super) fn point(name: &str) {
        if let Some((want, nth)) = target() {
            if want == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::KILL,
                );
            }
        }
    }
}

/// Die here (SIGKILL, like an OOM kill) if this is the configured crash point.
#[cfg(feature = "failpoints")]
pub fn point(name: &str) {
    armed::point(name);
}

/// Crash points are compiled out of this build (no `failpoints` feature).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn point(_name: &str) {}
