//! The index watchdog. A write to the disk can stop and never return (a hung network filesystem,
//! a failing device, a frozen filesystem) while the writer holds the state lock. (Before issue
//! 22 the index was sled 0.34.7, which could also deadlock inside a write: issue 23.) Every
//! write to an index (`journal`'s commit, fold of the delta log into a table, and sync of a new
//! index) is armed here with a deadline scaled to its size; when one passes, the watchdog thread
//! calls the stall handler the binary installed (log the event, say the one sentence) and ends
//! the process with exit code 4. The writing thread is blocked in the kernel and cannot be
//! unwound, so ending the process is the only way to release the state lock; the record log is
//! already on disk (write-ahead), so the next command continues from it as after a crash.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What the user is told when an index write stops responding.
pub const STALL_MESSAGE: &str =
    "the index stopped responding; nothing acknowledged is lost; run the command again";

/// The exit code of a process the watchdog ends (wf's "wf itself failed").
pub const STALL_EXIT: i32 = 4;

/// The default time any index write may take before it counts as stalled, before scaling.
pub const DEFAULT_BASE: Duration = Duration::from_secs(30);
/// Extra time per key written in one batch.
const PER_WRITE: Duration = Duration::from_millis(1);
/// Extra time per byte an index operation moves in bulk (1 s per 64 MiB; a fold of the delta log
/// into a table counts four times the log's size).
const OPEN_BYTES_PER_SEC: u64 = 64 * 1024 * 1024;

/// How often the watchdog thread looks at the armed deadlines. Arming never wakes it (guarding
/// an index operation costs a mutex and a map entry, no system call, so reads can be guarded
/// too); a stall is noticed up to this much after its deadline.
const TICK: Duration = Duration::from_millis(100);

/// The base in milliseconds (0: the default); set once by the binary from `WF_INDEX_TIMEOUT`.
static BASE_MS: AtomicU64 = AtomicU64::new(0);

/// Set the base time an index write may take (the binary reads it from `WF_INDEX_TIMEOUT`).
pub fn set_base(base: Duration) {
    let ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
    BASE_MS.store(ms, Ordering::SeqCst);
}

fn base() -> Duration {
    match BASE_MS.load(Ordering::SeqCst) {
        0 => DEFAULT_BASE,
        ms => Duration::from_millis(ms),
    }
}

/// The time allowed for a batch (or a flush) of `writes` keys.
pub fn limit_for_writes(writes: usize) -> Duration {
    base().saturating_add(PER_WRITE.saturating_mul(u32::try_from(writes).unwrap_or(u32::MAX)))
}

/// The time allowed for an index operation that moves `bytes` in bulk (`journal`'s fold passes
/// four times its delta log's size).
pub fn limit_for_open(bytes: u64) -> Duration {
    base().saturating_add(Duration::from_secs(bytes / OPEN_BYTES_PER_SEC))
}

/// An index write that did not finish in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// What was being done ("a commit", "a flush", …).
    pub what: &'static str,
    /// The index directory.
    pub dir: Arc<Path>,
    /// How long it was allowed.
    pub limit: Duration,
}

type Handler = Box<dyn Fn(&Stall) + Send + Sync>;

static HANDLER: OnceLock<Handler> = OnceLock::new();

/// Install what to do, before the process ends with exit code 4, when an index write stalls:
/// log it, tell the user. Called once by the binary; without it the sentence goes to stderr.
pub fn on_stall(handler: impl Fn(&Stall) + Send + Sync + 'static) {
    let _ = HANDLER.set(Box::new(handler));
}

struct Slots {
    next: u64,
    armed: BTreeMap<u64, (Instant, Stall)>,
}

struct Shared {
    slots: Mutex<Slots>,
}

/// A watchdog thread and its armed deadlines.
pub struct Watchdog {
    shared: Arc<Shared>,
}

/// An armed deadline; dropping it (the write returned) disarms it.
pub struct Armed<'a> {
    dog: Option<&'a Watchdog>,
    id: u64,
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        if let Some(dog) = self.dog {
            let mut slots = dog.shared.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.armed.remove(&self.id);
        }
    }
}

impl Watchdog {
    /// Start a watchdog whose thread calls `expired` for each deadline that passes while armed.
    /// `None` when no thread could be started.
    pub fn start(expired: impl Fn(Stall) + Send + 'static) -> Option<Watchdog> {
        let shared = Arc::new(Shared {
            slots: Mutex::new(Slots {
                next: 0,
                armed: BTreeMap::new(),
            }),
        });
        let theirs = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("wf-index-watchdog".into())
            .spawn(move || watch(theirs, expired))
            .ok()?;
        Some(Watchdog { shared })
    }

    /// Arm a deadline `limit` from now for `what` on the index in `dir`.
    pub fn arm(&self, what: &'static str, dir: &Arc<Path>, limit: Duration) -> Armed<'_> {
        let deadline = Instant::now() + limit;
        let mut slots = self.shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        let id = slots.next;
        slots.next += 1;
        slots.armed.insert(
            id,
            (
                deadline,
                Stall {
                    what,
                    dir: Arc::clone(dir),
                    limit,
                },
            ),
        );
        drop(slots);
        Armed {
            dog: Some(self),
            id,
        }
    }
}

/// The watchdog thread: fires what is due, sleeps a tick at most; ends with its `Watchdog`.
fn watch(shared: Arc<Shared>, expired: impl Fn(Stall)) {
    while Arc::strong_count(&shared) > 1 {
        let now = Instant::now();
        let mut slots = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        let due = slots
            .armed
            .iter()
            .min_by_key(|(_, (d, _))| *d)
            .map(|(id, (d, _))| (*id, *d));
        match due {
            Some((id, deadline)) if deadline <= now => {
                let stall = slots.armed.remove(&id).map(|(_, s)| s);
                drop(slots);
                if let Some(stall) = stall {
                    expired(stall);
                }
            }
            due => {
                drop(slots);
                let wait = due.map_or(TICK, |(_, d)| (d - now).min(TICK));
                std::thread::sleep(wait);
            }
        }
    }
}

/// The process's watchdog: a stall runs the installed handler and ends the process (exit 4).
fn global() -> Option<&'static Watchdog> {
    static DOG: OnceLock<Option<Watchdog>> = OnceLock::new();
    DOG.get_or_init(|| {
        Watchdog::start(|stall| {
            match HANDLER.get() {
                Some(h) => h(&stall),
                None => eprintln!("{STALL_MESSAGE}"),
            }
            std::process::exit(STALL_EXIT);
        })
    })
    .as_ref()
}

/// Arm the process's watchdog for an index write (`journal` calls this around every write).
/// Without a watchdog thread (the system refused one) the write runs unguarded.
pub(crate) fn guard(what: &'static str, dir: &Arc<Path>, limit: Duration) -> Armed<'static> {
    match global() {
        Some(dog) => dog.arm(what, dir, limit),
        None => Armed { dog: None, id: 0 },
    }
}

/// Fault injection for the tests (built with the `failpoints` feature only), standing in for a
/// disk that stops answering so the watchdog's path can be tested end to end:
/// `WF_FAIL_INDEX_STALL=N` makes the Nth index commit of the process block forever;
/// `WF_FAIL_INDEX_STALL=PATH` (not a number) the first commit made once the file PATH exists.
#[cfg(feature = "failpoints")]
pub(crate) fn failpoint_commit() {
    enum When {
        Nth(u64),
        Exists(std::path::PathBuf),
    }
    static WHEN: OnceLock<Option<When>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let when = WHEN.get_or_init(|| {
        let v = std::env::var_os("WF_FAIL_INDEX_STALL")?;
        Some(match v.to_str().and_then(|s| s.trim().parse().ok()) {
            Some(n) => When::Nth(n),
            None => When::Exists(std::path::PathBuf::from(v)),
        })
    });
    let stall = match when {
        None => false,
        Some(When::Nth(n)) => HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n,
        Some(When::Exists(path)) => path.exists() && HITS.fetch_add(1, Ordering::SeqCst) == 0,
    };
    if stall {
        loop {
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn dog() -> Result<(Watchdog, mpsc::Receiver<Stall>), Box<dyn std::error::Error>> {
        let (tx, rx) = mpsc::channel();
        let dog = Watchdog::start(move |s| {
            let _ = tx.send(s);
        })
        .ok_or("no watchdog thread")?;
        Ok((dog, rx))
    }

    #[test]
    fn a_write_that_outlives_its_deadline_fires_once() -> Result<(), Box<dyn std::error::Error>> {
        let (dog, rx) = dog()?;
        let started = Instant::now();
        let armed = dog.arm(
            "a commit",
            &Arc::from(Path::new("/x")),
            Duration::from_millis(50),
        );
        let stall = rx.recv_timeout(Duration::from_secs(10))?;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(stall.what, "a commit");
        assert_eq!(&*stall.dir, Path::new("/x"));
        // Fired once, however long the write stays stuck.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(armed);
        Ok(())
    }

    #[test]
    fn writes_that_return_in_time_never_fire() -> Result<(), Box<dyn std::error::Error>> {
        let (dog, rx) = dog()?;
        let x: Arc<Path> = Arc::from(Path::new("/x"));
        for _ in 0..1000 {
            let _armed = dog.arm("a commit", &x, Duration::from_millis(100));
        }
        // A long deadline armed first, a short one after: the short one fires first.
        let _long = dog.arm(
            "a flush",
            &Arc::from(Path::new("/long")),
            Duration::from_secs(60),
        );
        let short = dog.arm(
            "a commit",
            &Arc::from(Path::new("/short")),
            Duration::from_millis(30),
        );
        let stall = rx.recv_timeout(Duration::from_secs(10))?;
        assert_eq!(&*stall.dir, Path::new("/short"));
        drop(short);
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        Ok(())
    }

    #[test]
    fn limits_scale_with_the_batch() {
        assert_eq!(limit_for_writes(0), base());
        assert_eq!(limit_for_writes(20_000), base() + Duration::from_secs(20));
        assert_eq!(
            limit_for_open(640 * 1024 * 1024),
            base() + Duration::from_secs(10)
        );
        assert!(limit_for_writes(usize::MAX) > limit_for_writes(20_000));
    }
}
