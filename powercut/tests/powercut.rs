//! Power-cut tests of wf: its state directory lives on the power-cut filesystem (mounted in this
//! process), task outputs and the execution log on the real disk. wf runs, resumes, approves and
//! collects garbage while the power is cut at random moments — after a random time, right after
//! the n-th fsync, or after the n-th change — and each cut is: power off (nothing more reaches the
//! disk), SIGKILL wf and every process it started, remount from what was synced. Then:
//!
//! - wf opens the state, or refuses with exit 5 (a refusal is reported as a finding: with every
//!   fsync honoured exactly, wf has no reason to refuse);
//! - every record wf acknowledged is still there: each `[journal N]` line `wf -v` printed (it
//!   prints a record after its commit returned), each execution a task logged (its `running` was
//!   durable before it was spawned), each checkpoint `wf gc` reported pruned;
//! - every object referenced by a surviving, unpruned checkpoint is in the object store;
//! - at the end: exactly one run, every task done, the outputs equal an uninterrupted run's, no
//!   attempt ran twice, no task started after its `done`; after a last `wf gc`, the object store
//!   holds exactly the objects unpruned checkpoints reference.
//!
//! The wf binary: `$WF_BIN`, else ../target/debug/wf beside this crate (the workspace's), else
//! /work/main/target/debug/wf. Cuts per test: `POWERCUT_CUTS` (default 10; the whole file then takes about a minute).
//! Seed: `POWERCUT_SEED` (printed). Soak: `POWERCUT_SOAK=500 cargo test --release --test powercut
//! -- --ignored --nocapture`. `POWERCUT_EVIDENCE=DIR` keeps a copy of the backing directory and
//! the cut report of every failure there.

#[path = "../../tests/common/rng.rs"]
mod rng;

use rng::Rng;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use powercut::{CutReport, Mount, Names, Options, Trigger};
use serde_json::Value;

type Res<T> = Result<T, Box<dyn std::error::Error>>;
type TestResult = Res<()>;

/// The crash tests' workflow (tests/crash.rs): a parallel DAG with a big output (so cuts land
/// while it is hashed and stored), a flaky task with retries and a delay, and a manual gate.
/// Every execution appends `task attempt` to `execs` (on the real disk) first.
const WORKFLOW: &str = r#"
[workflow]
name = "powercut"

[task.a]
run = "echo \"a $WF_ATTEMPT\" >> execs; mkdir -p out; head -c 2000000 /dev/zero | tr '\\0' a > out/a.tmp && mv out/a.tmp out/a"
outputs = ["out/a"]

[task.b]
run = "echo \"b $WF_ATTEMPT\" >> execs; mkdir -p out; sleep 0.1; echo b > out/b"
outputs = ["out/b"]

[task.c]
run = "echo \"c $WF_ATTEMPT\" >> execs; if [ ! -f flaky ]; then touch flaky; exit 3; fi; wc -c < out/a > out/c.tmp && cat out/b >> out/c.tmp && mv out/c.tmp out/c"
needs = ["a", "b"]
inputs = ["out/a", "out/b"]
outputs = ["out/c"]
retries = 2
retry_delay = "300ms"

[task.d]
run = "echo \"d $WF_ATTEMPT\" >> execs; sleep 0.05; cp out/c out/d"
needs = ["c"]
inputs = ["out/c"]
outputs = ["out/d"]

[task.gate]
run = "echo \"gate $WF_ATTEMPT\" >> execs; cp out/d out/gate"
needs = ["d"]
inputs = ["out/d"]
outputs = ["out/gate"]
manual = true

[task.e]
run = "echo \"e $WF_ATTEMPT\" >> execs; cat out/gate out/b > out/e"
needs = ["gate"]
inputs = ["out/gate", "out/b"]
outputs = ["out/e"]
"#;

const TASKS: [&str; 6] = ["a", "b", "c", "d", "gate", "e"];

/// For the gc tests: every run's outputs differ (the `nonce` input changes), every checkpoint
/// expires after a second, and only the latest of each task is kept.
const GC_WORKFLOW: &str = r#"
[workflow]
name = "gc"
retention = "1s"
keep_last = 1

[task.a]
run = "echo \"a $WF_ATTEMPT\" >> execs; mkdir -p out; (cat nonce; head -c 300000 /dev/zero | tr '\\0' a) > out/a.tmp && mv out/a.tmp out/a"
inputs = ["nonce"]
outputs = ["out/a"]

[task.b]
run = "echo \"b $WF_ATTEMPT\" >> execs; (cat nonce; wc -c < out/a) > out/b"
needs = ["a"]
inputs = ["out/a"]
outputs = ["out/b"]
"#;

/// The wf binary under test: `$WF_BIN`; else the workspace's own debug build (this crate lives
/// in the workspace as `powercut/`); else /work/main's.
fn wf_bin() -> Res<PathBuf> {
    static SAID: std::sync::Once = std::sync::Once::new();
    let found = match std::env::var_os("WF_BIN") {
        Some(p) => Some(PathBuf::from(p)),
        None => [
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/wf"),
            PathBuf::from("/work/main/target/debug/wf"),
        ]
        .into_iter()
        .find(|p| p.is_file()),
    };
    let p = found.ok_or("no wf binary: build wf (cargo build) and set WF_BIN to it")?;
    if !p.is_file() {
        return Err(format!("WF_BIN={} is not a file", p.display()).into());
    }
    SAID.call_once(|| eprintln!("testing {}", p.display()));
    Ok(p)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(42)
                | 1
        })
}

/// When the power goes during a command.
#[derive(Clone, Copy, Debug)]
enum Cut {
    Never,
    /// This long after the command started.
    AfterMs(u64),
    /// Right after the command's n-th fsync/fdatasync/fsyncdir made its changes durable.
    Syncs(u64),
    /// Right after the command's n-th change (write, create, rename, fsync, ...).
    Ops(u64),
}

fn random_cut(rng: &mut Rng) -> Cut {
    match rng.below(3) {
        0 => Cut::AfterMs(rng.below(700)),
        1 => Cut::Syncs(1 + rng.below(40)),
        _ => Cut::Ops(1 + rng.below(300)),
    }
}

enum Outcome {
    Exited(ExitStatus),
    Cut,
}

// ---- processes ----

fn stat_of(pid: u32) -> Option<(u32, char)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 1..)?.trim_start();
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((ppid, state))
}

fn all_pids() -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

fn has_marker(pid: u32, marker: &[u8]) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker))
        .unwrap_or(false)
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid we found; a pid that is gone gives ESRCH, which is fine.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The instant after a power cut: stop `root` and everything below it (and every process
/// carrying `marker` in its environment: tasks that escaped the tree), then SIGKILL them all, and
/// wait until none is left running.
fn kill_everything(root: u32, marker: &str) -> TestResult {
    let marker = marker.as_bytes();
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    signal(root, libc::SIGSTOP);
    seen.insert(root);
    for _ in 0..100 {
        let pids = all_pids();
        let mut fresh = Vec::new();
        for &p in &pids {
            if seen.contains(&p) {
                continue;
            }
            let child = stat_of(p).is_some_and(|(ppid, _)| seen.contains(&ppid));
            if child || has_marker(p, marker) {
                fresh.push(p);
            }
        }
        if fresh.is_empty() {
            break;
        }
        for p in fresh {
            signal(p, libc::SIGSTOP);
            seen.insert(p);
        }
    }
    for &p in &seen {
        signal(p, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: Vec<u32> = seen
            .iter()
            .copied()
            .filter(|&p| p != root && stat_of(p).is_some_and(|(_, s)| s != 'Z' && s != 'X'))
            .collect();
        let strays: Vec<u32> = all_pids()
            .into_iter()
            .filter(|&p| !seen.contains(&p) && has_marker(p, marker))
            .collect();
        if alive.is_empty() && strays.is_empty() {
            return Ok(());
        }
        for p in &strays {
            signal(*p, libc::SIGKILL);
        }
        if Instant::now() > deadline {
            return Err(format!("processes {alive:?} {strays:?} survived SIGKILL").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- journal views ----

/// What the journal of every run says.
#[derive(Default)]
struct Journal {
    seqs: BTreeSet<u64>,
    runs: Vec<u64>,
    /// (task, attempt) of every `→ running` transition.
    running: BTreeSet<(String, u64)>,
    /// Checkpoints (run, seq) → (task, path, hash), and which of them were pruned.
    checkpoints: BTreeMap<(u64, u64), (String, String, String)>,
    pruned: BTreeSet<(u64, u64)>,
    /// Attempt logs journaled as pruned: (run, task, log path).
    pruned_logs: BTreeSet<(u64, String, String)>,
    /// A task started after its `done` (run, task, attempt).
    started_after_done: Vec<String>,
}

impl Journal {
    fn unpruned_hashes(&self) -> BTreeSet<String> {
        self.checkpoints
            .iter()
            .filter(|(k, _)| !self.pruned.contains(k))
            .map(|(_, (_, _, h))| h.clone())
            .collect()
    }
}

// ---- findings ----

/// `POWERCUT_KEEP_GOING=1`: record findings and go on (to see every kind in one run); the test
/// still fails at its end if there was any.
fn keep_going() -> bool {
    std::env::var_os("POWERCUT_KEEP_GOING").is_some()
}

static FINDINGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn record(finding: String) {
    eprintln!("FINDING {finding}");
    FINDINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(finding);
}

/// The findings of the rigs whose label starts with `label` (each test has its own labels).
fn findings_of(label: &str) -> Vec<String> {
    let prefix = format!("[{label}");
    FINDINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|f| f.starts_with(&prefix))
        .cloned()
        .collect()
}

// ---- the rig ----

/// Fields drop in order: the mount goes before the temporary directory holding it.
struct Rig {
    mount: Mount,
    work: PathBuf,
    state: PathBuf,
    wf: PathBuf,
    label: String,
    /// Journal sequence numbers wf printed after their commit returned.
    acks: BTreeSet<u64>,
    /// (run, task, path, hash) that `wf gc` reported pruned.
    pruned_acks: BTreeSet<(u64, String, String, String)>,
    /// (run, task, log path) that `wf gc` reported pruned.
    pruned_log_acks: BTreeSet<(u64, String, String)>,
    invocations: u64,
    cuts: u64,
    last_cut: Option<CutReport>,
    /// Record findings and go on (`POWERCUT_KEEP_GOING`) instead of failing at the first.
    keep_going: bool,
    /// What happened, step by step (printed with a finding).
    log: String,
    tmp: tempfile::TempDir,
    /// `WF_INDEX_FOLD_BYTES` for every wf command (half of the rigs): the index folds its delta
    /// log into tables every few commits, so cuts land inside folds and merges too.
    fold_bytes: Option<u64>,
}

impl Rig {
    fn new(label: &str, workflow: &str, options: Options) -> Res<Rig> {
        let wf = wf_bin()?;
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().canonicalize()?;
        let backing = root.join("backing");
        let mnt = root.join("mnt");
        let work = root.join("work");
        for d in [&backing, &mnt, &work, &root.join("out")] {
            fs::create_dir(d)?;
        }
        fs::write(work.join("wf.toml"), workflow)?;
        if std::env::var_os("POWERCUT_PRECREATE_OBJECTS").is_some() {
            // Look past finding 1 (README): `.wf/objects` made durable before wf runs.
            fs::create_dir_all(backing.join(".wf/objects"))?;
        }
        let mount = Mount::new(&backing, &mnt, options)
            .map_err(|e| format!("mounting needs /dev/fuse and root: {e}"))?;
        // (Derived from the label and the seed, so a replay with POWERCUT_SEED folds the same.)
        let mix = label
            .bytes()
            .fold(seed(), |h, b| h.rotate_left(5) ^ u64::from(b));
        let fold_bytes = std::env::var("POWERCUT_FOLD_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .or_else(|| (mix % 2 == 0).then_some(200 + mix % 2000));
        Ok(Rig {
            fold_bytes,
            state: mount.mountpoint().join(".wf"),
            tmp,
            work,
            mount,
            wf,
            label: label.to_string(),
            acks: BTreeSet::new(),
            pruned_acks: BTreeSet::new(),
            pruned_log_acks: BTreeSet::new(),
            invocations: 0,
            cuts: 0,
            last_cut: None,
            keep_going: keep_going(),
            log: String::new(),
        })
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.wf);
        c.arg("-C")
            .arg(&self.work)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env_remove("WF_CRASH_POINT")
            .stdin(Stdio::null());
        if let Some(n) = self.fold_bytes {
            c.env("WF_INDEX_FOLD_BYTES", n.to_string());
        }
        c
    }

    fn marker(&self) -> String {
        format!("WF_STATE_DIR={}", self.state.display())
    }

    /// Run a read-only command: (exit code, JSON lines, stderr).
    fn json(&self, args: &[&str]) -> Res<(Option<i32>, Vec<Value>, String)> {
        let out = self.cmd(&[&["--json"], args].concat()).output()?;
        let mut v = Vec::new();
        if out.status.success() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                v.push(serde_json::from_str(line)?);
            }
        }
        Ok((
            out.status.code(),
            v,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Fail with everything known about the last cut; keep the evidence if asked to.
    fn finding(&self, what: String) -> Box<dyn std::error::Error> {
        let mut msg = format!("[{}] {what}\n", self.label);
        if let Some(n) = self.fold_bytes {
            msg.push_str(&format!(
                "(the index folded every {n} bytes: WF_INDEX_FOLD_BYTES)\n"
            ));
        }
        if let Some(r) = self.mount.cut_report().or_else(|| self.last_cut.clone()) {
            let _ = writeln!(
                msg,
                "cut #{} (after {} changes, {} syncs of that power cycle; random pages kept {}, \
                 dropped {}) lost:",
                self.cuts, r.ops, r.syncs, r.kept_pages, r.dropped_pages
            );
            for l in &r.volatile {
                let _ = writeln!(msg, "  {l}");
            }
        }
        let _ = writeln!(msg, "steps:\n{}", self.log);
        if let Some(dir) = std::env::var_os("POWERCUT_EVIDENCE") {
            let dest = Path::new(&dir).join(format!(
                "{}-{}",
                self.label,
                std::process::id() as u64 * 1000 + self.cuts
            ));
            let _ = copy_tree(self.mount.backing(), &dest.join("backing"));
            let _ = copy_tree(&self.root().join("out"), &dest.join("out"));
            let _ = fs::write(dest.join("finding.txt"), &msg);
            let _ = writeln!(msg, "evidence kept in {}", dest.display());
        }
        msg.into()
    }

    /// A check failed: an error, or with `POWERCUT_KEEP_GOING` a recorded finding.
    fn problem(&self, what: String) -> TestResult {
        let e = self.finding(what);
        if self.keep_going {
            record(e.to_string());
            Ok(())
        } else {
            Err(e)
        }
    }

    /// Run one wf command, cutting the power as `cut` says; after a cut, check what survived.
    fn step(&mut self, args: &[&str], cut: Cut) -> Res<Outcome> {
        let n = self.invocations;
        self.invocations += 1;
        let out = self.root().join("out").join(format!("{n}.out"));
        let err = self.root().join("out").join(format!("{n}.err"));
        let stats = self.mount.stats();
        self.mount.arm(match cut {
            Cut::Syncs(k) => Some(Trigger::Syncs(stats.syncs + k)),
            Cut::Ops(k) => Some(Trigger::Ops(stats.ops + k)),
            _ => None,
        });
        let mut child: Child = self
            .cmd(args)
            .stdout(fs::File::create(&out)?)
            .stderr(fs::File::create(&err)?)
            .process_group(0)
            .spawn()?;
        let start = Instant::now();
        let fired = loop {
            if let Some(status) = child.try_wait()? {
                self.mount.arm(None);
                if !self.mount.powered_off() {
                    self.read_acks(&out)?;
                    let _ = writeln!(self.log, "  wf {args:?} (cut {cut:?} never came): {status}");
                    return Ok(Outcome::Exited(status));
                }
                break true;
            }
            if self.mount.powered_off() {
                break true;
            }
            if let Cut::AfterMs(ms) = cut {
                if start.elapsed() >= Duration::from_millis(ms) {
                    self.mount.power_off();
                    break true;
                }
            }
            if start.elapsed() > Duration::from_secs(120) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if !fired {
            kill_everything(child.id(), &self.marker())?;
            let _ = child.wait();
            return Err(self.finding(format!("wf {args:?} did not finish in 120 s")));
        }
        kill_everything(child.id(), &self.marker())?;
        let _ = child.wait();
        self.mount.arm(None);
        let report = self.mount.power_on()?;
        self.cuts += 1;
        self.read_acks(&out)?;
        let stderr = fs::read_to_string(&err).unwrap_or_default();
        let _ = writeln!(
            self.log,
            "  wf {args:?}: power cut ({cut:?}, after {} changes / {} syncs this cycle); wf said: {}",
            report.ops,
            report.syncs,
            stderr.lines().last().unwrap_or("")
        );
        self.last_cut = Some(report);
        self.check_after_cut()?;
        Ok(Outcome::Cut)
    }

    /// Acknowledgements in a command's output: `[journal N]` lines (-v) and gc's `pruned` rows.
    fn read_acks(&mut self, out: &Path) -> TestResult {
        let text = fs::read_to_string(out).unwrap_or_default();
        for line in text.lines() {
            if let Some(i) = line.find("[journal ") {
                let digits: String = line[i + 9..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if let Ok(seq) = digits.parse() {
                    self.acks.insert(seq);
                }
            }
            if line.starts_with('{') {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    if v["action"] == "pruned" && v["kind"] == "log" {
                        self.pruned_log_acks.insert((
                            v["run"].as_u64().unwrap_or(0),
                            v["task"].as_str().unwrap_or("").to_string(),
                            v["path"].as_str().unwrap_or("").to_string(),
                        ));
                    } else if v["action"] == "pruned" {
                        self.pruned_acks.insert((
                            v["run"].as_u64().unwrap_or(0),
                            v["task"].as_str().unwrap_or("").to_string(),
                            v["path"].as_str().unwrap_or("").to_string(),
                            v["hash"].as_str().unwrap_or("").to_string(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Read every run's journal; a refusal or any other failure to read is a finding.
    fn journal(&self) -> Res<Journal> {
        let (code, runs, stderr) = self.json(&["history"])?;
        match code {
            Some(0) => {}
            Some(5) => {
                return Err(self.finding(format!(
                    "wf refused the state after a power cut (exit 5): {}",
                    stderr.trim()
                )))
            }
            other => {
                return Err(self.finding(format!(
                    "wf history exited {other:?} after a power cut: {}",
                    stderr.trim()
                )))
            }
        }
        let mut j = Journal::default();
        for r in &runs {
            let run = r["run"].as_u64().ok_or("a run without an id")?;
            j.runs.push(run);
            let (code, records, stderr) = self.json(&["history", &run.to_string()])?;
            if code != Some(0) {
                return Err(self.finding(format!(
                    "wf history {run} exited {code:?}: {}",
                    stderr.trim()
                )));
            }
            let mut done: HashMap<String, u64> = HashMap::new();
            for e in &records {
                let seq = e["seq"].as_u64().unwrap_or(0);
                j.seqs.insert(seq);
                let task = e["task"].as_str().unwrap_or("").to_string();
                match e["kind"].as_str() {
                    Some("transition") => {
                        let attempt = e["attempt"].as_u64().unwrap_or(0);
                        if e["to"] == "running" {
                            if let Some(d) = done.get(&task) {
                                j.started_after_done.push(format!(
                                    "run {run}: {task} started attempt {attempt} after its done \
                                     (seq {d})"
                                ));
                            }
                            j.running.insert((task.clone(), attempt));
                        }
                        if e["to"] == "done" {
                            done.insert(task, seq);
                        } else if e["from"] == "done" {
                            done.remove(&task);
                        }
                    }
                    Some("checkpoint") => {
                        j.checkpoints.insert(
                            (run, seq),
                            (
                                task,
                                e["path"].as_str().unwrap_or("").to_string(),
                                e["hash"].as_str().unwrap_or("").to_string(),
                            ),
                        );
                    }
                    Some("prune") => {
                        if let Some(cs) = e["checkpoint_seq"].as_u64() {
                            j.pruned.insert((run, cs));
                        }
                        if let Some(log) = e["log"].as_str() {
                            j.pruned_logs.insert((run, task.clone(), log.to_string()));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(j)
    }

    fn execs(&self) -> Vec<(String, u64)> {
        let text = fs::read_to_string(self.work.join("execs")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                // A line torn by a kill mid-write has no attempt to match.
                Some((it.next()?.to_string(), it.next()?.parse().ok()?))
            })
            .collect()
    }

    fn objects(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Ok(rd) = fs::read_dir(self.state.join("objects")) {
            for d in rd.flatten() {
                if d.file_name().len() != 2 {
                    continue;
                }
                if let Ok(inner) = fs::read_dir(d.path()) {
                    for o in inner.flatten() {
                        out.insert(o.file_name().to_string_lossy().into_owned());
                    }
                }
            }
        }
        out
    }

    /// Half-copied objects of attempts a cut interrupted must not pile up in `objects/tmp`.
    fn check_no_temporaries(&self) -> TestResult {
        let tmp = self.state.join("objects").join("tmp");
        let left: Vec<String> = fs::read_dir(&tmp)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if left.is_empty() {
            return Ok(());
        }
        self.problem(format!(
            "{} temporary object file(s) left in {} by interrupted attempts, never removed: {left:?}",
            left.len(),
            tmp.display()
        ))
    }

    /// What must hold after every cut.
    fn check_after_cut(&self) -> TestResult {
        let j = self.journal()?;
        let lost: Vec<u64> = self.acks.difference(&j.seqs).copied().collect();
        if !lost.is_empty() {
            self.problem(format!(
                "acknowledged journal records {lost:?} are gone after the cut (journal has {} \
                 records, up to seq {:?})",
                j.seqs.len(),
                j.seqs.last()
            ))?;
        }
        for e in self.execs() {
            if !j.running.contains(&e) {
                self.problem(format!(
                    "execution {e:?} has no `running` transition in the journal after the cut"
                ))?;
            }
        }
        if let Some(s) = j.started_after_done.first() {
            self.problem(s.clone())?;
        }
        let pruned: BTreeSet<(u64, String, String, String)> = j
            .pruned
            .iter()
            .filter_map(|k| {
                j.checkpoints
                    .get(k)
                    .map(|(t, p, h)| (k.0, t.clone(), p.clone(), h.clone()))
            })
            .collect();
        if let Some(p) = self.pruned_acks.difference(&pruned).next() {
            self.problem(format!(
                "wf gc reported {p:?} pruned, but the journal has no prune of it after the cut"
            ))?;
        }
        if let Some(p) = self.pruned_log_acks.difference(&j.pruned_logs).next() {
            self.problem(format!(
                "wf gc reported the log {p:?} pruned, but the journal has no prune of it after the cut"
            ))?;
        }
        let present = self.objects();
        let missing: Vec<String> = j
            .unpruned_hashes()
            .into_iter()
            .filter(|h| !present.contains(h))
            .collect();
        if !missing.is_empty() {
            self.problem(format!(
                "{} object(s) referenced by unpruned checkpoints are missing from {}: {:?}",
                missing.len(),
                self.state.join("objects").display(),
                missing
            ))?;
        }
        Ok(())
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let t = e.file_type()?;
        let dest = to.join(e.file_name());
        if t.is_dir() {
            copy_tree(&e.path(), &dest)?;
        } else if t.is_file() {
            fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

// ---- driving a workflow ----

/// What to type next to move the (single) run on: run, resume, approve, or nothing (done).
fn next_command(rig: &Rig) -> Res<Option<Vec<&'static str>>> {
    let (code, runs, stderr) = rig.json(&["history"])?;
    if code != Some(0) {
        return Err(rig.finding(format!("wf history exited {code:?}: {}", stderr.trim())));
    }
    let Some(run) = runs.first() else {
        return Ok(Some(vec!["-v", "run"]));
    };
    Ok(match run["state"].as_str().unwrap_or("") {
        "done" => None,
        "waiting" => Some(vec!["-v", "approve", "gate"]),
        _ => Some(vec!["-v", "resume"]),
    })
}

/// Drive the workflow to its end, cutting the power `cuts` times (each command gets a random
/// cut until that many happened).
fn drive(rig: &mut Rig, rng: &mut Rng, cuts: u64, pick: fn(&mut Rng) -> Cut) -> TestResult {
    let mut steps = 0;
    while let Some(args) = next_command(rig)? {
        steps += 1;
        if steps > cuts * 3 + 20 {
            return Err(rig.finding("the run does not finish".into()));
        }
        if rig.cuts < cuts && rng.below(5) == 0 {
            // Readers open the journal too (and rebuild in memory an index they cannot use).
            rig.step(&["--json", "status"], pick(rng))?;
        }
        let cut = if rig.cuts < cuts {
            pick(rng)
        } else {
            Cut::Never
        };
        if let Outcome::Exited(status) = rig.step(&args, cut)? {
            if !status.success() {
                let err = fs::read_to_string(
                    rig.root()
                        .join("out")
                        .join(format!("{}.err", rig.invocations - 1)),
                )
                .unwrap_or_default();
                return Err(rig.finding(format!(
                    "wf {args:?} exited {:?} without a cut: {}",
                    status.code(),
                    err.trim()
                )));
            }
        }
    }
    Ok(())
}

fn outputs(work: &Path) -> Res<BTreeMap<String, Vec<u8>>> {
    let mut m = BTreeMap::new();
    for t in TASKS {
        m.insert(t.to_string(), fs::read(work.join("out").join(t))?);
    }
    Ok(m)
}

/// The invariants of a workflow driven to its end.
fn check_final(rig: &Rig, reference: &BTreeMap<String, Vec<u8>>) -> TestResult {
    let j = rig.journal()?;
    if j.runs.len() != 1 {
        rig.problem(format!("expected exactly one run, found {:?}", j.runs))?;
    }
    let (_, status, _) = rig.json(&["status"])?;
    if status.len() != TASKS.len() || status.iter().any(|s| s["state"] != "done") {
        rig.problem(format!("not every task is done at the end: {status:?}"))?;
    }
    if &outputs(&rig.work)? != reference {
        rig.problem("the outputs differ from an uninterrupted run's".into())?;
    }
    let mut seen = BTreeSet::new();
    for e in rig.execs() {
        if !j.running.contains(&e) {
            rig.problem(format!("execution {e:?} has no `running` transition"))?;
        }
        if !seen.insert(e.clone()) {
            rig.problem(format!("attempt {e:?} ran twice"))?;
        }
    }
    if let Some(s) = j.started_after_done.first() {
        rig.problem(s.clone())?;
    }
    let lost: Vec<u64> = rig.acks.difference(&j.seqs).copied().collect();
    if !lost.is_empty() {
        rig.problem(format!("acknowledged records {lost:?} are gone"))?;
    }
    rig.check_no_temporaries()
}

/// With `POWERCUT_KEEP_GOING`, a failed workflow is recorded and the test goes on.
fn absorb(r: TestResult) -> TestResult {
    match r {
        Err(e) if keep_going() => {
            record(e.to_string());
            Ok(())
        }
        other => other,
    }
}

/// Fail if findings were recorded for `label` (keep-going mode).
fn verdict(label: &str) -> TestResult {
    let f = findings_of(label);
    if f.is_empty() {
        return Ok(());
    }
    Err(format!("{label}: {} finding(s):\n{}", f.len(), f.join("\n")).into())
}

/// An uninterrupted run's outputs (on the power-cut filesystem, without cuts).
fn reference() -> Res<BTreeMap<String, Vec<u8>>> {
    static REF: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    if let Some(r) = REF.get() {
        return Ok(r.clone());
    }
    let mut rig = Rig::new("reference", WORKFLOW, Options::default())?;
    let mut rng = Rng(1);
    drive(&mut rig, &mut rng, 0, random_cut)?;
    let r = outputs(&rig.work)?;
    check_final(&rig, &r)?;
    Ok(REF.get_or_init(|| r).clone())
}

/// Drive workflows to their end with `total` cuts in all, at most `per_workflow` each.
fn scenario(
    label: &str,
    options: Options,
    total: u64,
    per_workflow: u64,
    pick: fn(&mut Rng) -> Cut,
) -> TestResult {
    let reference = reference()?;
    let seed = seed();
    eprintln!("{label}: POWERCUT_SEED={seed}");
    let mut rng = Rng(seed);
    let mut done = 0;
    let mut workflows = 0;
    while done < total {
        let n = (1 + rng.below(per_workflow)).min(total - done);
        let mut opts = options.clone();
        if let Some(s) = opts.random_pages {
            opts.random_pages = Some(s ^ rng.next());
        }
        let mut rig = Rig::new(&format!("{label}-{workflows}"), WORKFLOW, opts)?;
        absorb(drive(&mut rig, &mut rng, n, pick).and_then(|_| check_final(&rig, &reference)))?;
        done += rig.cuts.max(1);
        workflows += 1;
    }
    eprintln!("{label}: {done} power cuts over {workflows} workflows");
    verdict(label)
}

fn cuts_per_test() -> u64 {
    env_u64("POWERCUT_CUTS", 10)
}

#[test]
fn power_cuts_during_run_resume_and_approve() -> TestResult {
    scenario("strict", Options::default(), cuts_per_test(), 6, random_cut)
}

#[test]
fn power_cuts_with_torn_unsynced_pages() -> TestResult {
    let options = Options {
        random_pages: Some(seed()),
        ..Options::default()
    };
    scenario("random-pages", options, cuts_per_test(), 6, random_cut)
}

#[test]
fn power_cuts_on_a_journaling_filesystem() -> TestResult {
    let options = Options {
        names: Names::Journaled,
        ..Options::default()
    };
    scenario("journaled", options, cuts_per_test(), 6, random_cut)
}

#[test]
fn power_cuts_with_torn_pages_on_a_journaling_filesystem() -> TestResult {
    let options = Options {
        names: Names::Journaled,
        random_pages: Some(seed()),
        ..Options::default()
    };
    scenario(
        "journaled-random-pages",
        options,
        cuts_per_test(),
        6,
        random_cut,
    )
}

/// The checks are not vacuous: on a disk that acknowledges fsyncs of `journal.log` without
/// doing them, a cut must show up as lost records (or a refusal).
#[test]
fn a_disk_that_ignores_fsync_is_caught() -> TestResult {
    let options = Options {
        ignore_sync_of: vec!["journal.log".into()],
        ..Options::default()
    };
    let mut rig = Rig::new("liar", WORKFLOW, options)?;
    rig.keep_going = false;
    // The cut comes once some records were acknowledged (a first `wf run` makes ~36 syncs, the
    // first dozen creating the state directory and its indexes).
    match rig.step(&["-v", "run"], Cut::Syncs(24)) {
        Err(e) if e.to_string().contains("are gone") || e.to_string().contains("refused") => {
            eprintln!(
                "caught, as it should be: {}",
                e.to_string().lines().next().unwrap_or("")
            );
            Ok(())
        }
        Err(e) => Err(format!("the wrong failure: {e}").into()),
        Ok(_) => Err("a cut on a disk that ignores fsync went unnoticed".into()),
    }
}

/// One cut per workflow, right after its first `wf run`'s k-th sync, for k spread over every
/// sync that run makes.
#[test]
fn a_power_cut_right_after_each_sync_of_a_run() -> TestResult {
    let reference = reference()?;
    // How many syncs an uninterrupted `wf run` makes (up to the manual gate).
    let mut probe = Rig::new("probe", WORKFLOW, Options::default())?;
    let before = probe.mount.stats().syncs;
    let Outcome::Exited(status) = probe.step(&["-v", "run"], Cut::Never)? else {
        return Err("the probe was cut".into());
    };
    if !status.success() {
        return Err("the probe run failed".into());
    }
    let syncs = probe.mount.stats().syncs - before;
    drop(probe);
    let cases = cuts_per_test().min(syncs);
    eprintln!("sync points: `wf run` makes {syncs} syncs; cutting after {cases} of them");
    for i in 0..cases {
        let k = 1 + i * syncs / cases;
        let mut rig = Rig::new(&format!("sync-{k}"), WORKFLOW, Options::default())?;
        let mut rng = Rng(k);
        absorb(
            rig.step(&["-v", "run"], Cut::Syncs(k))
                .and_then(|_| drive(&mut rig, &mut rng, 0, random_cut))
                .and_then(|_| check_final(&rig, &reference)),
        )?;
    }
    verdict("sync-")
}

// ---- gc ----

/// Make `n` more runs, each with new outputs (a new nonce), without cuts.
fn gc_runs(rig: &mut Rig, n: u64) -> TestResult {
    for _ in 0..n {
        let nonce = rig.invocations;
        fs::write(rig.work.join("nonce"), format!("{nonce}\n"))?;
        if let Outcome::Exited(s) = rig.step(&["-v", "run"], Cut::Never)? {
            if !s.success() {
                return Err(rig.finding(format!("wf run exited {:?}", s.code())));
            }
        }
    }
    Ok(())
}

fn gc_cut(rng: &mut Rng) -> Cut {
    match rng.below(3) {
        0 => Cut::Syncs(1 + rng.below(8)),
        1 => Cut::Ops(1 + rng.below(60)),
        _ => Cut::AfterMs(rng.below(40)),
    }
}

fn check_gc_final(rig: &Rig) -> TestResult {
    let j = rig.journal()?;
    let referenced = j.unpruned_hashes();
    let present = rig.objects();
    let orphans: Vec<&String> = present.difference(&referenced).collect();
    if !orphans.is_empty() {
        rig.problem(format!(
            "after a complete wf gc, {} object(s) no unpruned checkpoint references are still \
             stored: {orphans:?}",
            orphans.len()
        ))?;
    }
    let missing: Vec<&String> = referenced.difference(&present).collect();
    if !missing.is_empty() {
        rig.problem(format!(
            "objects referenced by unpruned checkpoints are missing: {missing:?}"
        ))?;
    }
    rig.check_no_temporaries()
}

/// Three sweeps, each cut short by a power cut (with new runs between them); then a last sweep
/// must leave exactly the referenced objects.
fn gc_history(rig: &mut Rig, rng: &mut Rng) -> TestResult {
    gc_runs(rig, 3)?;
    // Everything wf did so far is on the disk; nothing else is.
    rig.mount.power_on()?;
    rig.cuts += 1;
    rig.check_after_cut()?;
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..3 {
        let cut = gc_cut(rng);
        rig.step(&["--json", "gc", "--now", "+1d"], cut)?;
        gc_runs(rig, 2)?;
        std::thread::sleep(Duration::from_millis(1100));
    }
    let Outcome::Exited(s) = rig.step(&["--json", "gc", "--now", "+1d"], Cut::Never)? else {
        return Err("the last gc was cut".into());
    };
    if !s.success() {
        return Err(rig.finding(format!("the last wf gc exited {:?}", s.code())));
    }
    check_gc_final(rig)
}

/// Histories of sweeps cut short, `total` cuts in all, over the three filesystem behaviours.
fn gc_scenario(label: &str, total: u64) -> TestResult {
    let seed = seed();
    eprintln!("{label}: POWERCUT_SEED={seed}");
    let mut rng = Rng(seed);
    let mut done = 0;
    let mut round = 0;
    while done < total {
        // Strict names, then a journaling filesystem, then one that also writes some of the
        // unsynced pages.
        let options = match round % 3 {
            0 => Options::default(),
            1 => Options {
                names: Names::Journaled,
                ..Options::default()
            },
            _ => Options {
                names: Names::Journaled,
                random_pages: Some(rng.next()),
                ..Options::default()
            },
        };
        let mut rig = Rig::new(&format!("{label}-{round}"), GC_WORKFLOW, options)?;
        absorb(gc_history(&mut rig, &mut rng))?;
        done += rig.cuts.max(1);
        round += 1;
    }
    eprintln!("{label}: {done} power cuts over {round} histories");
    verdict(&format!("{label}-"))
}

/// Sweep after sweep, each cut short by a power cut; the next sweep must finish the job.
#[test]
fn power_cuts_during_gc() -> TestResult {
    gc_scenario("gc", cuts_per_test())
}

/// The soak: `POWERCUT_SOAK=500 cargo test --release --test powercut -- --ignored --nocapture`
/// (every kind of cut; strict names, random pages, journaled names, both; and gc). Every part
/// runs; the test fails at the end if any did.
#[test]
#[ignore = "soak: POWERCUT_SOAK=500 cargo test --release --test powercut -- --ignored --nocapture"]
fn soak() -> TestResult {
    let total = env_u64("POWERCUT_SOAK", 200);
    let part = total.div_ceil(5);
    let modes = [
        ("soak-strict", Options::default()),
        (
            "soak-random-pages",
            Options {
                random_pages: Some(seed()),
                ..Options::default()
            },
        ),
        (
            "soak-journaled",
            Options {
                names: Names::Journaled,
                ..Options::default()
            },
        ),
        (
            "soak-journaled-random-pages",
            Options {
                names: Names::Journaled,
                random_pages: Some(seed()),
                ..Options::default()
            },
        ),
    ];
    let mut failed = Vec::new();
    for (label, options) in modes {
        if let Err(e) = scenario(label, options, part, 15, random_cut) {
            failed.push(e.to_string());
        }
    }
    if let Err(e) = gc_scenario("soak-gc", part) {
        failed.push(e.to_string());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n").into())
    }
}
