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

// ---------------------------------------------------------------------------------------------
// 1. The homework example, end to end
// ---------------------------------------------------------------------------------------------

fn homework() -> Test {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homework");
    let t = Test::new();
    t.write(
        "wf.toml",
        &fs::read_to_string(src.join("wf.toml")).expect("reading the example"),
    );
    for e in fs::read_dir(src.join("tasks"))
        .expect("listing the example's tasks")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        t.write(
            &format!("tasks/{name}"),
            &fs::read_to_string(e.path()).expect("reading a task script"),
        );
    }
    t.write(
        "data/raw.csv",
        &fs::read_to_string(src.join("data/raw.csv")).expect("reading raw.csv"),
    );
    t
}

#[test]
fn homework_runs_to_the_manual_gate_and_approval_finishes_it() {
    let t = homework();
    let run = t.wf(&["run"]).code(0);
    let last = run.stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("wf approve report"),
        "the last line should say what to type next: {last:?}"
    );

    let status = t.status();
    let states: Vec<(String, String)> = status
        .iter()
        .map(|r| (text(&r["task"]), text(&r["state"])))
        .collect();
    assert_eq!(
        states,
        [
            ("ingest", "done"),
            ("clean", "done"),
            ("train_or_score", "done"),
            ("report", "waiting"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for r in &status {
        has_fields(
            r,
            &[
                "run",
                "task",
                "state",
                "attempts",
                "cached",
                "owner",
                "started_at",
                "ended_at",
                "exit_code",
            ],
        );
        assert_eq!(r["run"], 1);
        if r["state"] == "done" {
            assert_eq!(r["attempts"], 1, "{r}");
            assert_eq!(r["exit_code"], 0, "{r}");
            assert_eq!(r["cached"], false, "{r}");
            utc(&r["started_at"]);
            utc(&r["ended_at"]);
        }
    }
    assert_eq!(t.task("ingest")["owner"], "data_eng");
    assert_eq!(t.task("report")["owner"], "analyst");
    assert!(
        !t.exists("reports/report.txt"),
        "report ran before approval"
    );

    t.wf(&["approve", "report", "--note", "ok"]).code(0);
    assert!(t.exists("reports/report.txt"));
    assert!(t.read("reports/report.txt").contains("Rows scored:    35"));
    assert!(t.status().iter().all(|r| r["state"] == "done"));

    // The list of runs.
    let runs = t.json(&["--json", "history"]);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let r = &runs[0];
    has_fields(
        r,
        &[
            "run",
            "workflow",
            "state",
            "started_at",
            "ended_at",
            "tasks",
        ],
    );
    assert_eq!(r["run"], 1);
    assert_eq!(r["workflow"], "homework");
    assert_eq!(r["state"], "done");
    utc(&r["started_at"]);
    utc(&r["ended_at"]);
    assert_eq!(r["tasks"]["done"], 4, "{r}");
    for s in ["pending", "running", "waiting", "failed"] {
        assert_eq!(r["tasks"][s], 0, "{r}");
    }

    // The timeline of run 1.
    let tl = t.json(&["--json", "history", "1"]);
    let mut last_seq = 0;
    for e in &tl {
        has_fields(e, &["run", "seq", "at", "kind", "task", "attempt"]);
        assert_eq!(e["run"], 1);
        let seq = e["seq"].as_u64().expect("seq is a number");
        assert!(seq > last_seq, "seq not strictly increasing at {e}");
        last_seq = seq;
        utc(&e["at"]);
        match e["kind"].as_str().expect("kind is a string") {
            "transition" => has_fields(e, &["from", "to", "reason"]),
            "checkpoint" => {
                has_fields(e, &["path", "hash", "bytes", "expires_at"]);
                let hash = e["hash"].as_str().expect("hash is a string");
                assert!(
                    hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
                    "{hash} is not 64 hex digits"
                );
                assert!(e["bytes"].as_u64().is_some_and(|b| b > 0), "{e}");
                utc(&e["expires_at"]);
            }
            "metric" => has_fields(e, &["key", "value"]),
            _ => {}
        }
    }
    let metric = |task: &str, key: &str| -> Option<String> {
        tl.iter()
            .find(|e| e["kind"] == "metric" && e["task"] == task && e["key"] == key)
            .map(|e| text(&e["value"]))
    };
    assert_eq!(metric("ingest", "rows").as_deref(), Some("40"));
    assert!(metric("clean", "null_pct").is_some(), "no null_pct metric");
    assert!(
        metric("train_or_score", "score").is_some(),
        "no score metric"
    );
    let cps: Vec<String> = tl
        .iter()
        .filter(|e| e["kind"] == "checkpoint")
        .map(|e| text(&e["path"]))
        .collect();
    for p in [
        "data/raw.json",
        "data/clean.json",
        "model/model.json",
        "data/scores.json",
        "reports/report.txt",
    ] {
        assert!(cps.iter().any(|c| c == p), "no checkpoint of {p}: {cps:?}");
    }
    let approval = tl
        .iter()
        .find(|e| e["kind"] == "approval")
        .expect("an approval entry");
    assert_eq!(approval["task"], "report");
    assert_eq!(approval["note"], "ok");
    assert_eq!(approval["user"], "tester");
    let done = |task: &str| {
        tl.iter().any(|e| {
            e["kind"] == "transition"
                && e["task"] == task
                && e["from"] == "running"
                && e["to"] == "done"
        })
    };
    assert!(["ingest", "clean", "train_or_score", "report"]
        .iter()
        .all(|t| done(t)));
    assert!(tl.iter().any(|e| e["kind"] == "transition"
        && e["task"] == "report"
        && e["from"] == "pending"
        && e["to"] == "waiting"));
}

// ---------------------------------------------------------------------------------------------
// 2. Validation and lint
// ---------------------------------------------------------------------------------------------

/// `wf check` on an invalid workflow: exit 2, one line `FILE:LINE:COL: …` naming every culprit.
#[track_caller]
fn invalid(toml: &str, culprits: &[&str]) -> Out {
    let t = Test::with(toml);
    let out = t.wf(&["check"]).code(2).one_line_error();
    let prefix = format!("{}:", t.path("wf.toml").display());
    let line = out.stderr.trim();
    let rest = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("error does not start with {prefix}: {line}"));
    let mut parts = rest.splitn(3, ':');
    let (l, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    assert!(
        l.parse::<u32>().is_ok_and(|n| n > 0) && c.parse::<u32>().is_ok_and(|n| n > 0),
        "no line:col in {line}"
    );
    for c in culprits {
        assert!(line.contains(c), "error does not name {c:?}: {line}");
    }
    // The same workflow cannot be run either, and nothing is created.
    t.wf(&["run"]).code(2);
    assert!(!t.state_dir().exists(), "an invalid run created .wf/");
    out
}

#[test]
fn a_cycle_is_rejected_and_shown() {
    let out = invalid(
        r#"
[task.a]
run = "true"
needs = ["c"]
[task.b]
run = "true"
needs = ["a"]
[task.c]
run = "true"
needs = ["b"]
"#,
        &["cycle"],
    );
    // Either direction (`needs` edges or data flow), starting anywhere on the cycle.
    let shown = [
        "a → b → c → a",
        "b → c → a → b",
        "c → a → b → c",
        "a → c → b → a",
        "c → b → a → c",
        "b → a → c → b",
    ];
    assert!(
        shown.iter().any(|s| out.stderr.contains(s)),
        "the cycle is not shown: {}",
        out.stderr
    );
}

#[test]
fn an_unknown_key_gets_a_suggestion() {
    invalid(
        "[task.a]\nrun = \"true\"\nretires = 2\n",
        &["retires", "did you mean", "retries"],
    );
}

#[test]
fn an_unknown_dependency_is_named() {
    invalid(
        "[task.a]\nrun = \"true\"\nneeds = [\"nosuch\"]\n",
        &["nosuch"],
    );
}

#[test]
fn outputs_outside_the_workflow_directory_are_rejected() {
    invalid(
        "[task.a]\nrun = \"true\"\noutputs = [\"../x\"]\n",
        &["../x"],
    );
    invalid(
        "[task.a]\nrun = \"true\"\noutputs = [\"/tmp/x\"]\n",
        &["/tmp/x"],
    );
    invalid(
        "[task.a]\nrun = \"true\"\ninputs = [\"sub/../../y\"]\n",
        &["sub/../../y"],
    );
}

#[test]
fn a_bad_duration_is_rejected() {
    invalid(
        "[task.a]\nrun = \"true\"\ntimeout = \"5 parsecs\"\n",
        &["timeout", "5 parsecs"],
    );
    invalid(
        "[task.a]\nrun = \"true\"\nretry_delay = \"soon\"\n",
        &["retry_delay", "soon"],
    );
}

#[test]
fn a_syntax_error_has_file_line_and_column() {
    let out = invalid("[task.a]\nrun = \"true\"\nretries = \n", &[]);
    assert!(
        out.stderr.contains("wf.toml:3:"),
        "the error should point at line 3: {}",
        out.stderr
    );
    invalid("[task.a\nrun = \"true\"\n", &["wf.toml:1:"]);
}

#[test]
fn two_producers_of_one_output_are_rejected() {
    invalid(
        "[task.a]\nrun = \"true\"\noutputs = [\"o\"]\n[task.b]\nrun = \"true\"\noutputs = [\"o\"]\n",
        &["`a`", "`b`", "o"],
    );
}

/// The homework's original (buggy) input/output tables.
const HOMEWORK_ORIGINAL: &str = r#"
[workflow]
name = "homework"

[task.ingest]
run = "true"
inputs = ["data/raw.ext"]
outputs = ["data/raw.json"]

[task.clean]
run = "true"
needs = ["ingest"]
inputs = ["data/raw.ext"]
outputs = ["data/clean.json"]

[task.train_or_score]
run = "true"
needs = ["clean"]
inputs = ["data/clean.json", "model/model.pkl"]
outputs = ["model/model.pkl", "data/scores.json"]

[task.report]
run = "true"
needs = ["train_or_score"]
manual = true
inputs = ["data/clean.json", "model/model.pkl"]
outputs = ["reports/report.txt"]
"#;

#[test]
fn the_homework_original_tables_pass_check_with_data_flow_warnings() {
    let t = Test::with(HOMEWORK_ORIGINAL);
    let out = t.wf(&["check"]).code(0);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("warning"))
        .collect();
    let any = |words: &[&str]| warnings.iter().any(|w| words.iter().all(|x| w.contains(x)));
    assert!(
        any(&["train_or_score", "model/model.pkl", "reads and writes"]),
        "no warning that train_or_score reads and writes model/model.pkl:\n{}",
        out.stderr
    );
    assert!(
        any(&["data/raw.ext", "no task"]),
        "no warning that data/raw.ext is produced by no task:\n{}",
        out.stderr
    );
    assert!(
        any(&["`clean` needs `ingest`", "none of its outputs"]),
        "no warning that clean needs ingest without reading its outputs:\n{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("4 tasks"),
        "the summary line is missing: {}",
        out.stdout
    );

    // The same findings as JSON Lines, one per warning.
    let json = t.json(&["--json", "check"]);
    assert_eq!(json.len(), warnings.len(), "{json:#?}");
    for w in &json {
        has_fields(w, &["severity", "file", "line", "message"]);
        assert_eq!(w["severity"], "warning");
    }

    // The fixed example has no warnings.
    let ok = homework().wf(&["check"]).code(0);
    assert!(
        !ok.stderr.contains("warning"),
        "the example warns: {}",
        ok.stderr
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "[task.a]\n",
        "[task.b]\n",
        "[workflow]\n",
        "run = \"true\"\n",
        "needs = [\"b\"]\n",
        "needs = [\"a\"]\n",
        "inputs = [\"o\"]\n",
        "outputs = [\"o\"]\n",
        "outputs = [\"../o\"]\n",
        "timeout = \"1x\"\n",
        "retries = -1\n",
        "retries = 99999999999999999999\n",
        "manual = true\n",
        "env = { K = 1 }\n",
        "jobs = 0\n",
        "name = \"é\"\n",
        "= \n",
        "\"",
        "[",
        "]",
        "\u{0}",
        "\n",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        /// Whatever the file says, `wf check` answers 0 or 2 and never panics.
        #[test]
        fn check_never_panics(pieces in proptest::collection::vec(0..PIECES.len(), 0..12)) {
            let toml: String = pieces.iter().map(|&i| PIECES[i]).collect();
            let t = Test::with(&toml);
            let out = t.wf(&["check"]);
            prop_assert!(out.code == 0 || out.code == 2, "exit {} for {toml:?}: {}", out.code, out.stderr);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Failures, retries, missing outputs, timeouts
// ---------------------------------------------------------------------------------------------

#[test]
fn a_failing_task_is_retried_then_fails_the_run_while_other_branches_finish() {
    let t = Test::with(
        r#"
[task.bad]
run = '''echo attempt >> count.txt; echo "out-$WF_ATTEMPT"; echo "err-$WF_ATTEMPT" >&2; exit 3'''
retries = 2
retry_delay = "0s"

[task.after]
run = "touch after.txt"
needs = ["bad"]

[task.other]
run = "echo ok > other.txt"
outputs = ["other.txt"]
"#,
    );
    let out = t.wf(&["run"]).code(1).stderr_has("bad");
    assert!(
        out.stderr.contains("wf logs 1 bad"),
        "the failure should say how to read the log: {}",
        out.stderr
    );
    assert_eq!(t.read("count.txt").lines().count(), 3, "1 + 2 retries");

    let bad = t.task("bad");
    assert_eq!(bad["state"], "failed");
    assert_eq!(bad["attempts"], 3);
    assert_eq!(bad["exit_code"], 3);
    assert_eq!(t.task("other")["state"], "done");
    assert_eq!(t.task("after")["state"], "pending");
    assert_eq!(t.task("after")["attempts"], 0);
    assert!(!t.exists("after.txt"), "a dependent of a failed task ran");

    // The last attempt's output, and any attempt's with --attempt.
    let logs = t.wf(&["logs", "1", "bad"]).code(0);
    assert!(logs.stdout.contains("out-3") && logs.stdout.contains("err-3"));
    assert!(!logs.stdout.contains("out-1"), "{}", logs.stdout);
    let first = t.wf(&["logs", "1", "bad", "--attempt", "1"]).code(0);
    assert!(first.stdout.contains("out-1") && first.stdout.contains("err-1"));
    assert!(!first.stdout.contains("out-3"), "{}", first.stdout);
    t.wf(&["logs", "1", "bad", "--attempt", "9"]).code(2);
    t.wf(&["logs", "1", "after"]).code(2);

    // The journal: three failed attempts, the run failed.
    let tl = t.json(&["--json", "history", "1"]);
    let fails: Vec<&Value> = tl
        .iter()
        .filter(|e| e["kind"] == "transition" && e["task"] == "bad" && e["to"] == "failed")
        .collect();
    assert_eq!(fails.len(), 3, "{fails:#?}");
    assert!(fails.iter().all(|e| text(&e["reason"]).contains('3')));
    let runs = t.json(&["--json", "history"]);
    assert_eq!(runs[0]["state"], "failed");
    assert_eq!(runs[0]["tasks"]["failed"], 1);
    assert_eq!(runs[0]["tasks"]["done"], 1);
    assert_eq!(runs[0]["tasks"]["pending"], 1);
}

#[test]
fn a_declared_output_missing_after_exit_0_fails_the_attempt() {
    let t = Test::with(
        r#"
[task.liar]
run = "echo claiming success"
outputs = ["out/result.txt"]
"#,
    );
    let out = t.wf(&["run"]).code(1);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("out/result.txt"),
        "the failure message should name the missing output:\n{}{}",
        out.stdout,
        out.stderr
    );
    let task = t.task("liar");
    assert_eq!(task["state"], "failed");
    assert!(text(&task["reason"]).contains("out/result.txt"), "{task}");
    let tl = t.json(&["--json", "history", "1"]);
    let fail = tl
        .iter()
        .find(|e| e["kind"] == "transition" && e["to"] == "failed")
        .expect("a failed transition");
    assert!(text(&fail["reason"]).contains("out/result.txt"), "{fail}");
    assert!(
        !tl.iter().any(|e| e["kind"] == "checkpoint"),
        "a missing output was checkpointed"
    );
}

#[test]
fn a_timeout_stops_the_task_and_leaves_no_process() {
    let t = Test::with(
        r#"
[task.slow]
run = "sleep 30"
timeout = "1s"
"#,
    );
    let bg = t.spawn(&["run"]);
    t.wait_for_sleep();
    let out = bg.wait(HANG).code(1);
    assert!(
        out.took < Duration::from_secs(6),
        "a 1s timeout took {:?}",
        out.took
    );
    let task = t.task("slow");
    assert_eq!(task["state"], "failed");
    assert!(text(&task["reason"]).contains("timed out"), "{task}");
    let tl = t.json(&["--json", "history", "1"]);
    assert!(tl.iter().any(|e| e["kind"] == "transition"
        && e["to"] == "failed"
        && text(&e["reason"]).contains("timed out")));

    // No `sleep 30` of this test survives its wf.
    let ours = format!("WF_STATE_DIR={}", t.state_dir().display());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<(u32, String)> = procs_with_env(&ours)
            .into_iter()
            .filter(|(pid, cmd)| {
                cmd == "sleep 30"
                    && fs::read(format!("/proc/{pid}/environ"))
                        .map(|e| e.split(|b| *b == 0).any(|kv| kv.starts_with(b"WF_RUN_ID=")))
                        .unwrap_or(false)
            })
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the timed-out task survived: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The task's environment and metrics
// ---------------------------------------------------------------------------------------------

#[test]
fn tasks_get_their_environment_and_report_metrics() {
    let t = Test::with(
        r#"
[task.probe]
run = '''
echo "$WF_RUN_ID|$WF_TASK|$WF_ATTEMPT|$K" >> env.txt
printf '%s' "$WF_METRICS" > metrics_path.txt
printf '%s' "$WF_STATE_DIR" > state_dir.txt
test "$WF_ATTEMPT" = 2 || exit 1
echo rows=7 >> "$WF_METRICS"
echo "note = two words" >> "$WF_METRICS"
'''
env = { K = "v" }
retries = 1
retry_delay = "0s"
"#,
    );
    t.wf(&["run"]).code(0);
    assert_eq!(t.read("env.txt"), "1|probe|1|v\n1|probe|2|v\n");
    assert_eq!(
        t.read("state_dir.txt"),
        t.state_dir().display().to_string(),
        "WF_STATE_DIR"
    );
    let metrics = t.read("metrics_path.txt");
    assert!(
        Path::new(&metrics).is_absolute() && Path::new(&metrics).exists(),
        "WF_METRICS is not an existing absolute path: {metrics:?}"
    );
    let tl = t.json(&["--json", "history", "1"]);
    let metric = |key: &str| {
        tl.iter()
            .find(|e| e["kind"] == "metric" && e["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no metric {key} in {tl:#?}"))
    };
    assert_eq!(text(&metric("rows")["value"]), "7");
    assert_eq!(metric("rows")["task"], "probe");
    assert_eq!(metric("rows")["attempt"], 2);
    assert_eq!(text(&metric("note")["value"]), "two words");
}

// ---------------------------------------------------------------------------------------------
// 5. Parallelism and task selection
// ---------------------------------------------------------------------------------------------

#[test]
fn independent_tasks_run_at_the_same_time() {
    // Each task waits (bounded, ~10 s) for the other's marker: only a parallel run finishes.
    let t = Test::with(
        r#"
[task.a]
run = 'touch a.mark; i=0; while [ ! -f b.mark ]; do i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done'
[task.b]
run = 'touch b.mark; i=0; while [ ! -f a.mark ]; do i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done'
"#,
    );
    t.wf(&["run", "--jobs", "2"]).code(0);
    assert!(t.status().iter().all(|r| r["state"] == "done"));
}

#[test]
fn only_and_from_run_just_the_selected_tasks() {
    let t = Test::with(
        r#"
[task.a]
run = "echo a >> ran.txt"
[task.b]
run = "echo b >> ran.txt"
needs = ["a"]
[task.c]
run = "echo c >> ran.txt"
needs = ["b"]
[task.d]
run = "echo d >> ran.txt"
"#,
    );
    let names = |t: &Test| -> Vec<String> { t.status().iter().map(|r| text(&r["task"])).collect() };

    t.wf(&["run", "--only", "b", "d"]).code(0);
    assert_eq!(names(&t), ["b", "d"]);
    assert_eq!(t.task("b")["run"], 1);
    let mut ran: Vec<String> = t.read("ran.txt").lines().map(String::from).collect();
    ran.sort();
    assert_eq!(ran, ["b", "d"]);

    fs::remove_file(t.path("ran.txt")).expect("removing ran.txt");
    t.wf(&["run", "--from", "b"]).code(0);
    assert_eq!(names(&t), ["b", "c"]);
    assert_eq!(t.task("c")["run"], 2);
    assert_eq!(t.read("ran.txt"), "b\nc\n");

    t.wf(&["run", "--only", "nosuch"])
        .code(2)
        .stderr_has("nosuch");
    t.wf(&["run", "--from", "nosuch"])
        .code(2)
        .stderr_has("nosuch");
    t.wf(&["run", "--jobs", "0"]).code(2);
}

// ---------------------------------------------------------------------------------------------
// 6. Interrupted runs: refuse, abandon, resume
// ---------------------------------------------------------------------------------------------

/// Start `wf run` of a BLOCK_ONCE task, wait until it runs, and SIGKILL wf (a crash).
fn crash_a_run(t: &Test) {
    let mut bg = t.spawn(&["run"]);
    wait_until(Duration::from_secs(15), "the task started", || {
        t.exists("marker")
    });
    wait_until(Duration::from_secs(15), "status shows it running", || {
        t.status().iter().any(|r| r["state"] == "running")
    });
    t.wait_for_sleep();
    assert!(bg.running(), "wf run ended early");
    bg.signal(rustix::process::Signal::KILL);
    let out = bg.wait(HANG);
    assert_eq!(out.code, -9, "wf was not killed: {}", out.stderr);
    // A task process never outlives a crashed wf (design §4).
    t.assert_no_task_procs("after kill -9 of wf run");
}

#[test]
fn an_interrupted_run_blocks_a_new_run_until_abandoned() {
    let t = Test::with(&format!("[task.slow]\nrun = '{BLOCK_ONCE}'\n"));
    crash_a_run(&t);
    let st = t.task("slow");
    assert_eq!(st["run_state"], "interrupted", "{st}");
    t.wf(&["status"]).code(0).stdout_has("interrupted");

    let out = t.wf(&["run"]).code(2).one_line_error();
    assert!(
        out.stderr.contains("wf resume") && out.stderr.contains("--abandon"),
        "the refusal should name `wf resume` and `--abandon`: {}",
        out.stderr
    );

    t.wf(&["run", "--abandon"]).code(0).stdout_has("run 2");
    assert_eq!(t.task("slow")["run"], 2);
    assert_eq!(t.task("slow")["state"], "done");
    let runs = t.json(&["--json", "history"]);
    let run = |id: u64| {
        runs.iter()
            .find(|r| r["run"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no run {id} in {runs:#?}"))
    };
    assert_eq!(run(1)["state"], "failed");
    assert!(text(&run(1)["reason"]).contains("abandoned"), "{}", run(1));
    utc(&run(1)["ended_at"]);
    assert_eq!(run(2)["state"], "done");
    // An abandoned run is over: it cannot be resumed.
    t.wf(&["resume", "1"]).code(2);
}

#[test]
fn an_abandoned_run_shows_no_task_still_running() {
    let t = Test::with(&format!("[task.slow]\nrun = '{BLOCK_ONCE}'\n"));
    crash_a_run(&t);
    t.wf(&["run", "--abandon"]).code(0);
    let old = t.json(&["--json", "status", "1"]);
    assert!(
        old.iter().all(|r| r["state"] != "running"),
        "run 1 is over but a task of it is still `running`: {old:#?}"
    );
    let runs = t.json(&["--json", "history"]);
    let one = runs.iter().find(|r| r["run"] == 1).expect("run 1");
    assert_eq!(one["tasks"]["running"], 0, "{one}");
}

#[test]
fn run_resume_continues_the_interrupted_run_or_starts_a_new_one() {
    let t = Test::with(&format!("[task.slow]\nrun = '{BLOCK_ONCE}'\n"));
    crash_a_run(&t);
    t.wf(&["run", "--resume"]).code(0);
    let st = t.task("slow");
    assert_eq!(st["run"], 1, "--resume should continue run 1: {st}");
    assert_eq!(st["state"], "done");
    assert_eq!(st["attempts"], 2);
    let tl = t.json(&["--json", "history", "1"]);
    assert!(tl.iter().any(|e| e["kind"] == "transition"
        && e["from"] == "running"
        && e["to"] == "pending"
        && text(&e["reason"]).contains("interrupted")));
    assert_eq!(t.json(&["--json", "history"]).len(), 1);

    // Nothing interrupted now: --resume starts a new run.
    t.wf(&["run", "--resume"]).code(0);
    assert_eq!(t.task("slow")["run"], 2);
    assert_eq!(t.json(&["--json", "history"]).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 7. The writer lock, and readers during a run
// ---------------------------------------------------------------------------------------------

#[test]
fn a_second_writer_is_refused_while_readers_see_the_live_run() {
    let t = Test::with(&format!("[task.hold]\nrun = '{WAIT_FOR_GO}'\n"));
    let mut bg = t.spawn(&["run"]);
    wait_until(Duration::from_secs(15), "the task started", || {
        t.exists("started")
    });

    let second = t.wf(&["run"]).code(3).one_line_error();
    assert!(
        second.took < Duration::from_secs(1),
        "a locked wf should answer at once, took {:?}",
        second.took
    );
    assert!(
        second.stderr.contains(&format!("pid {}", bg.pid())),
        "the message should name the holder's pid {}: {}",
        bg.pid(),
        second.stderr
    );
    t.wf(&["resume"]).code(3);

    t.wf(&["status"]).code(0).stdout_has("running");
    let st = t.task("hold");
    assert_eq!(st["state"], "running", "{st}");
    assert_eq!(st["run_state"], "running", "{st}");
    assert_eq!(st["attempts"], 1, "{st}");
    let runs = t.json(&["--json", "history"]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["state"], "running");

    assert!(bg.running(), "wf run ended early");
    t.write("go", "");
    bg.wait(HANG).code(0);
    assert_eq!(t.task("hold")["state"], "done");
}

// ---------------------------------------------------------------------------------------------
// 8. Ctrl-C
// ---------------------------------------------------------------------------------------------

#[test]
fn ctrl_c_interrupts_the_run_and_resume_finishes_it() {
    let t = Test::with(&format!("[task.slow]\nrun = '{BLOCK_ONCE}'\n"));
    let mut bg = t.spawn(&["run"]);
    wait_until(Duration::from_secs(15), "the task started", || {
        t.exists("marker")
    });
    t.wait_for_sleep();
    assert!(bg.running(), "wf run ended early");
    let sent = Instant::now();
    bg.signal(rustix::process::Signal::INT);
    let out = bg.wait(HANG).code(130).stderr_has("wf resume");
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "wf took {:?} to stop after Ctrl-C",
        sent.elapsed()
    );
    drop(out);
    t.assert_no_task_procs("after Ctrl-C");

    let st = t.task("slow");
    assert_eq!(st["run_state"], "interrupted", "{st}");
    assert_eq!(st["state"], "pending", "{st}");
    assert!(text(&st["reason"]).contains("interrupted"), "{st}");
    t.wf(&["status"]).code(0).stdout_has("interrupted");

    t.wf(&["resume"]).code(0);
    let st = t.task("slow");
    assert_eq!(st["run"], 1);
    assert_eq!(st["state"], "done");
    assert_eq!(st["attempts"], 2);
    assert_eq!(t.json(&["--json", "history"])[0]["state"], "done");
}

// ---------------------------------------------------------------------------------------------
// 9. Usage
// ---------------------------------------------------------------------------------------------

#[test]
fn file_and_state_dir_flags_and_wf_json() {
    let t = Test::new();
    t.write("sub/flow.toml", "[task.b]\nrun = \"pwd > where.txt\"\n");
    t.wf(&["-f", "sub/flow.toml", "--state-dir", "st", "run"])
        .code(0);
    // Tasks run beside their workflow file; the state is where --state-dir says.
    assert_eq!(
        t.read("sub/where.txt").trim(),
        t.path("sub").display().to_string()
    );
    assert!(t.path("st/journal.log").exists() && !t.state_dir().exists());
    assert!(!t.path("sub/.wf").exists());
    let st = t.json(&["--state-dir", "st", "--json", "status"]);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0]["task"], "b");

    // wf.json is found when there is no wf.toml; -C changes directory first.
    let j = Test::new();
    j.write("w/wf.json", r#"{"task": {"a": {"run": "echo a > a.txt"}}}"#);
    j.wf(&["-C", "w", "run"]).code(0);
    assert_eq!(j.read("w/a.txt"), "a\n");
    assert!(j.path("w/.wf").exists());
}

#[test]
fn version_and_unknown_commands() {
    let t = Test::new();
    t.wf(&["--version"]).code(0).stdout_has("wf ");
    t.wf(&["--help"]).code(0).stdout_has("Usage");
    t.wf(&["nosuch"]).code(2).stderr_has("nosuch");
    t.wf(&["run", "--no-such-flag"]).code(2);
}

#[test]
fn status_without_state_says_no_runs_yet() {
    let t = Test::with("[task.a]\nrun = \"true\"\n");
    t.wf(&["status"]).code(0).stdout_has("no runs yet");
    assert!(t.json(&["--json", "status"]).is_empty());
    assert!(t.json(&["--json", "history"]).is_empty());
    assert!(!t.state_dir().exists(), "a reader created the state");
    // Not even a workflow file: still nothing to show, not an error.
    Test::new()
        .wf(&["status"])
        .code(0)
        .stdout_has("no runs yet");
}

#[test]
fn unknown_runs_tasks_and_directories_are_usage_errors() {
    let t = Test::with("[task.a]\nrun = \"true\"\n");
    t.wf(&["logs", "9", "x"]).code(2).one_line_error();
    t.wf(&["status", "9"]).code(2);
    t.wf(&["approve", "a"]).code(2).one_line_error();
    t.wf(&["resume"]).code(2).one_line_error();
    t.wf(&["run"]).code(0);
    t.wf(&["logs", "9", "x"]).code(2).stderr_has("9");
    t.wf(&["logs", "1", "x"]).code(2).stderr_has("x");
    t.wf(&["status", "9"]).code(2).one_line_error();
    t.wf(&["history", "9"]).code(2);
    t.wf(&["-C", "/nonexistent", "status"])
        .code(2)
        .one_line_error()
        .stderr_has("/nonexistent");
}

#[test]
fn a_directory_without_a_workflow_file_is_a_usage_error() {
    let t = Test::new();
    for cmd in ["run", "check", "resume"] {
        t.wf(&[cmd]).code(2).one_line_error().stderr_has("wf.toml");
    }
    assert!(!t.state_dir().exists());
}

#[test]
fn resume_of_a_done_run_has_nothing_to_do() {
    let t = Test::with("[task.a]\nrun = \"echo a >> ran.txt\"\n");
    t.wf(&["run"]).code(0);
    t.wf(&["resume"]).code(0).stdout_has("nothing to resume");
    assert_eq!(t.read("ran.txt"), "a\n", "resume re-ran a done task");
}

// ---------------------------------------------------------------------------------------------
// 10. A damaged state
// ---------------------------------------------------------------------------------------------

/// Run a one-task workflow, damage the middle of the record log (`.wf/journal.log`, the
/// journal's truth), and remove sled's index so that it must be rebuilt from the log.
fn damaged() -> Test {
    let t = Test::with("[task.a]\nrun = \"true\"\n");
    t.wf(&["run"]).code(0);
    let log = t.state_dir().join("journal.log");
    let mut bytes = fs::read(&log).expect("no .wf/journal.log after a run");
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0xff;
    fs::write(&log, bytes).expect("damaging the record log");
    fs::remove_dir_all(t.state_dir().join("journal")).expect("removing the index");
    t
}

const READERS_AND_WRITERS: [&[&str]; 6] = [
    &["status"],
    &["--json", "status"],
    &["--json", "history"],
    &["history", "1"],
    &["run"],
    &["resume"],
];

#[test]
fn a_damaged_record_log_gives_exit_5_with_a_message() {
    let t = damaged();
    for args in READERS_AND_WRITERS {
        let out = t.wf(args).code(5).one_line_error();
        assert!(
            out.stderr.contains("journal.log") && out.stderr.contains("damaged"),
            "the message should say what is damaged: {}",
            out.stderr
        );
    }
}

#[test]
fn a_refused_damaged_record_log_is_left_unchanged() {
    let t = damaged();
    let log = t.state_dir().join("journal.log");
    let before = fs::read(&log).expect("log");
    for args in READERS_AND_WRITERS {
        let out = t.wf(args).code(5);
        assert_eq!(
            before,
            fs::read(&log).expect("log"),
            "`{}` changed the log",
            out.what
        );
    }
}

#[test]
fn a_truncated_record_log_is_noticed() {
    let t = Test::with("[task.a]\nrun = \"true\"\n");
    t.wf(&["run"]).code(0);
    fs::write(t.state_dir().join("journal.log"), "").expect("truncating the log");
    t.wf(&["status"]).code(5).one_line_error();
}

#[test]
fn a_lost_index_is_rebuilt_from_the_record_log() {
    let t = Test::with("[task.a]\nrun = \"true\"\n");
    t.wf(&["run"]).code(0);
    let before = t.json(&["--json", "history", "1"]);
    fs::remove_dir_all(t.state_dir().join("journal")).expect("removing sled's files");
    assert_eq!(t.json(&["--json", "history", "1"]), before);
    t.wf(&["run"]).code(0);
    assert_eq!(t.json(&["--json", "history"]).len(), 2);
}
