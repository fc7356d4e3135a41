//! Integration tests of the `wf` command line against the product contract (shared/design.md
//! §2–§4). Each test owns a temporary directory with its own `wf.toml`, task files and `.wf/`
//! state, runs the real binary, and checks exit codes, messages, files and `--json` output.
//!
//! Rules the tests keep: no sleeps to "let something happen" (waits poll a condition with a
//! deadline); every task command that waits is a bounded loop; every wf gets a hard time limit;
//! processes a test leaves behind (only possible when wf misbehaves) are killed by pid when the
//! test's `Test` is dropped.

use std::cell::Cell;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

#[path = "../common/mod.rs"]
mod common;

/// A wf that has not exited after this long is hung: it is killed and the test fails.
const HANG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// One test's world: a workflow directory (canonical path), the files in it, and how wf is run.
struct Test {
    _dir: TempDir,
    root: PathBuf,
    /// Captured stdout/stderr of every wf invocation (kept outside the workflow directory).
    io: TempDir,
    seq: Cell<u32>,
}

/// How one wf invocation ended.
struct Out {
    what: String,
    /// The exit code, or minus the signal number.
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// A wf running in the background.
struct Bg {
    what: String,
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
    started: Instant,
}

impl Test {
    fn new() -> Test {
        let dir = tempfile::Builder::new()
            .prefix("wf-cli-")
            .tempdir()
            .expect("creating a temp dir");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        let io = tempfile::Builder::new()
            .prefix("wf-cli-io-")
            .tempdir()
            .expect("creating a temp dir");
        Test {
            _dir: dir,
            root,
            io,
            seq: Cell::new(0),
        }
    }

    /// A test whose `wf.toml` is `toml`.
    fn with(toml: &str) -> Test {
        let t = Test::new();
        t.write("wf.toml", toml);
        t
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(".wf")
    }

    fn write(&self, rel: &str, contents: &str) -> &Test {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).expect("creating a directory");
        }
        fs::write(&p, contents).expect("writing a file");
        self
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// The command for `wf ARGS` in the workflow directory, with a small, fixed environment.
    fn command(&self, args: &[&str]) -> (Command, String, PathBuf, PathBuf) {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        let out = self.io.path().join(format!("{n}.out"));
        let err = self.io.path().join(format!("{n}.err"));
        let mut cmd = common::command(&self.root, &self.root);
        cmd.args(args)
            .stdout(fs::File::create(&out).expect("creating the stdout file"))
            .stderr(fs::File::create(&err).expect("creating the stderr file"));
        (cmd, format!("wf {}", args.join(" ")), out, err)
    }

    /// Start `wf ARGS` in the background.
    fn spawn(&self, args: &[&str]) -> Bg {
        let (mut cmd, what, out, err) = self.command(args);
        let child = cmd.spawn().expect("starting wf");
        Bg {
            what,
            child: Some(child),
            out,
            err,
            started: Instant::now(),
        }
    }

    /// Run `wf ARGS` to its end.
    fn wf(&self, args: &[&str]) -> Out {
        self.spawn(args).wait(HANG)
    }

    /// Run `wf ARGS`, require exit 0, and parse its stdout as JSON Lines.
    fn json(&self, args: &[&str]) -> Vec<Value> {
        self.wf(args).code(0).json()
    }

    /// `wf --json status` of the latest run: one object per task.
    fn status(&self) -> Vec<Value> {
        self.json(&["--json", "status"])
    }

    /// The `wf --json status` object of `task` in the latest run.
    fn task(&self, task: &str) -> Value {
        let rows = self.status();
        rows.iter()
            .find(|r| r["task"] == task)
            .cloned()
            .unwrap_or_else(|| panic!("task {task} is not in `wf --json status`: {rows:#?}"))
    }

    /// Task processes started by a wf of this test that are still alive.
    fn task_procs(&self) -> Vec<(u32, String)> {
        let marker = format!("WF_STATE_DIR={}", self.state_dir().display());
        procs_with_env(&marker)
    }

    /// Wait (bounded) until this test's task runs `sleep 30` (so the process checks that follow
    /// are known to see task processes at all).
    fn wait_for_sleep(&self) {
        wait_until(
            Duration::from_secs(15),
            "the task's `sleep 30` shows in /proc",
            || self.task_procs().iter().any(|(_, cmd)| cmd == "sleep 30"),
        );
    }

    /// Wait (bounded) until no task process of this test is alive.
    fn assert_no_task_procs(&self, context: &str) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let left = self.task_procs();
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                panic!("{context}: task processes outlived their wf: {left:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Test {
    /// Kill (by pid) any task process this test's wf left behind, so a failing test does not
    /// leave `sleep 30`s around.
    fn drop(&mut self) {
        for (pid, _) in self.task_procs() {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
    }
}

impl Bg {
    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let child = self.child.as_ref().expect("wf is running");
        rustix::process::kill_process(rustix::process::Pid::from_child(child), sig)
            .expect("signalling wf");
    }

    /// Whether wf has exited (without reaping it).
    fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Wait at most `limit` for wf to exit; a wf still running then is killed and the test fails.
    fn wait(mut self, limit: Duration) -> Out {
        let mut child = self.child.take().expect("wf was started");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(st) = child.try_wait().expect("waiting for wf") {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`{}` did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    fs::read_to_string(&self.out).unwrap_or_default(),
                    fs::read_to_string(&self.err).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = self.started.elapsed();
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| -status.signal().unwrap_or(0));
        let out = Out {
            what: self.what.clone(),
            code,
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
            took,
        };
        // No panic message or backtrace ever reaches a user (design §2).
        for bad in ["panicked", "RUST_BACKTRACE", "internal error"] {
            assert!(
                !out.stderr.contains(bad),
                "`{}` printed `{bad}`:\n{}",
                out.what,
                out.stderr
            );
        }
        out
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Out {
    #[track_caller]
    fn code(self, want: i32) -> Out {
        assert_eq!(
            self.code, want,
            "`{}` exited {} (wanted {want})\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    fn stdout_has(self, s: &str) -> Out {
        assert!(
            self.stdout.contains(s),
            "stdout of `{}` lacks {s:?}:\n{}",
            self.what,
            self.stdout
        );
        self
    }

    #[track_caller]
    fn stderr_has(self, s: &str) -> Out {
        assert!(
            self.stderr.contains(s),
            "stderr of `{}` lacks {s:?}:\n{}",
            self.what,
            self.stderr
        );
        self
    }

    /// stderr is exactly one non-empty line (an error is one sentence).
    #[track_caller]
    fn one_line_error(self) -> Out {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "`{}` should print a one-line error, got:\n{}",
            self.what,
            self.stderr
        );
        self
    }

    #[track_caller]
    fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("`{}` printed a non-JSON line {l:?}: {e}", self.what)
                })
            })
            .collect()
    }
}

/// Poll `cond` until it holds; fail with `what` after `limit`.
#[track_caller]
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live processes (not zombies) whose environment contains the entry `needle` (`K=V`).
fn procs_with_env(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(env) = fs::read(e.path().join("environ")) else {
            continue;
        };
        if !env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            continue;
        }
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if matches!(state, Some('Z') | Some('X') | None) {
            continue;
        }
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        out.push((pid, cmdline));
    }
    out
}

/// `v` has every one of `fields` (possibly null).
#[track_caller]
fn has_fields(v: &Value, fields: &[&str]) {
    for f in fields {
        assert!(v.get(*f).is_some(), "field `{f}` missing in {v}");
    }
}

/// An RFC 3339 time in UTC (`…Z`).
#[track_caller]
fn utc(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{v} is not a time string"));
    assert!(
        s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "{s} is not an RFC 3339 UTC time"
    );
}

/// A metric value as text (wf may print it as a string or a number).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The task that waits: touches `started`, then waits (bounded, ~20 s) for the file `go`.
const WAIT_FOR_GO: &str = r#"touch started; i=0; while [ ! -f go ]; do i=$((i+1)); [ $i -gt 400 ] && exit 9; sleep 0.05; done"#;

/// A task that blocks in its first attempt only (until killed) and succeeds in the next one. The
/// `exit 1` keeps the shell from exec-ing `sleep`, so `sleep` is a child of the task's shell (it
/// does not get the shell's parent-death signal: only wf's reaper can stop it if wf dies).
const BLOCK_ONCE: &str = r#"test -f marker || { touch marker; sleep 30; exit 1; }"#;

// The tests, by topic.
mod damaged;
mod execution;
mod homework;
mod interrupts;
mod usage;
mod validation;
