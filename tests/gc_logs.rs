//! Attempt logs under retention (`wf gc`, issue 18 item 3): logs of tasks with and without
//! outputs are pruned past their task's retention and beyond `keep_last`, journaled before they
//! are unlinked; `wf logs` on a pruned attempt says when; a sweep killed between its record and
//! the unlink is finished by the next; nothing else under `.wf/logs` (or through a link) is touched.

mod common;

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

/// `a` has no outputs (default retention, 30d), `b` a 7-day checkpoint; both print.
const FLOW: &str = r#"
[task.a]
run = "echo hello from a"

[task.b]
run = "echo b > b.out; echo hello from b"
outputs = ["b.out"]
needs = ["a"]
retention = "7d"
"#;

struct T {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl T {
    fn new(toml: &str) -> T {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().canonicalize().expect("canonical");
        std::fs::write(dir.join("wf.toml"), toml).expect("write wf.toml");
        T { _tmp: tmp, dir }
    }

    fn wf_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = common::command(&self.dir, &self.dir);
        c.args(["-C", &self.dir.to_string_lossy()]).args(args);
        c.env_remove("WF_CRASH_POINT");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run wf");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        out
    }

    fn wf(&self, args: &[&str]) -> Output {
        self.wf_env(args, &[])
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.wf(args);
        assert!(
            out.status.success(),
            "wf {args:?} exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        self.ok(&a)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    fn log(&self, run: u32, name: &str) -> PathBuf {
        self.dir.join(format!(".wf/logs/{run}/{name}"))
    }

    fn runs(&self, n: usize) {
        for _ in 0..n {
            self.ok(&["-q", "run", "--force"]);
        }
    }

    /// The `prune` entries of a run's history.
    fn prunes(&self, run: u32) -> Vec<Value> {
        self.json(&["history", &run.to_string()])
            .into_iter()
            .filter(|e| e["kind"] == "prune")
            .collect()
    }
}

fn logs_of(rows: &[Value], action: &str) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = rows
        .iter()
        .filter(|r| r["kind"] == "log" && r["action"] == action)
        .map(|r| {
            (
                r["run"].as_u64().unwrap_or(0),
                r["task"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn logs_are_pruned_under_their_tasks_retention_beyond_keep_last() {
    let t = T::new(FLOW);
    t.runs(3);
    for run in 1..=3 {
        assert!(t.log(run, "a.1.log").is_file() && t.log(run, "b.1.log").is_file());
    }
    // At +8d only b's 7-day class is due; a (no outputs) has the default 30 days.
    let rows = t.json(&["gc", "--now", "+8d"]);
    assert_eq!(
        logs_of(&rows, "pruned"),
        vec![(1, "b".into()), (2, "b".into())],
        "{rows:#?}"
    );
    assert_eq!(logs_of(&rows, "kept"), vec![(3, "b".into())], "{rows:#?}");
    let kept = rows
        .iter()
        .find(|r| r["kind"] == "log" && r["action"] == "kept")
        .cloned()
        .unwrap_or_default();
    assert_eq!(kept["why"], "latest log of its task (keep_last)", "{kept}");
    for r in rows.iter().filter(|r| r["kind"] == "log") {
        assert!(r["hash"].is_null() && r["attempt"] == 1, "{r}");
        assert!(r["bytes"].as_u64() > Some(0), "{r}");
    }
    assert!(!t.log(1, "b.1.log").exists() && !t.log(2, "b.1.log").exists());
    assert!(t.log(3, "b.1.log").is_file() && t.log(1, "a.1.log").is_file());
    // One record per run (one seq): its checkpoint and its log, shown as a prune each.
    let p = t.prunes(1);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_eq!(p[0]["seq"], p[1]["seq"], "{p:#?}");
    assert_eq!(p[0]["path"], "b.out", "{p:#?}");
    assert_eq!(p[1]["log"], "logs/1/b.1.log", "{p:#?}");
    assert!(p
        .iter()
        .all(|e| e["task"] == "b" && e["attempt"] == 1 && e["policy"] == "7d"));
    let text = t.ok(&["history", "1"]);
    assert!(
        text.contains("pruned the log of attempt 1 (") && text.contains("under its 7d policy"),
        "{text}"
    );

    // A task without outputs: its logs go at its (default) retention.
    let rows = t.json(&["gc", "--now", "+31d"]);
    assert_eq!(
        logs_of(&rows, "pruned"),
        vec![(1, "a".into()), (2, "a".into())],
        "{rows:#?}"
    );
    assert!(rows
        .iter()
        .filter(|r| r["action"] == "pruned")
        .all(|r| r["task"] == "a"));
    assert!(t.log(3, "a.1.log").is_file());
    assert_eq!(t.prunes(1).len(), 3);
    // Idempotent: nothing is pruned twice.
    let rows = t.json(&["gc", "--now", "+31d"]);
    assert!(rows.iter().all(|r| r["action"] == "kept"), "{rows:#?}");
    assert_eq!(t.prunes(1).len(), 3);
}

#[test]
fn wf_logs_on_a_pruned_attempt_says_when_and_why() {
    let t = T::new(FLOW);
    t.runs(2);
    t.ok(&["gc", "--now", "+8d"]);
    let out = t.wf(&["logs", "1", "b"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the log of attempt 1 of `b` in run 1 was pruned by `wf gc` on ")
            && err.contains("under its 7d retention policy"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    assert!(out.stdout.is_empty());
    // The others are as they were.
    assert!(t.ok(&["logs", "1", "a"]).contains("hello from a"));
    assert!(t.ok(&["logs", "2", "b"]).contains("hello from b"));
    // A log that was never written is still "printed nothing", not "pruned".
    std::fs::remove_file(t.log(2, "a.1.log")).expect("rm");
    let out = t.wf(&["logs", "2", "a"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("printed nothing"));
}

#[test]
fn a_dry_run_shows_log_and_checkpoint_bytes_apart_and_changes_nothing() {
    let t = T::new(FLOW);
    t.runs(3);
    let before = std::fs::read(t.dir.join(".wf/journal.log")).expect("log");
    let rows = t.json(&["gc", "--dry-run", "--now", "+31d"]);
    assert_eq!(logs_of(&rows, "would_prune").len(), 4, "{rows:#?}");
    let frees: u64 = rows
        .iter()
        .filter(|r| r["kind"] == "log")
        .filter_map(|r| r["frees"].as_u64())
        .sum();
    let expected: u64 = (1..=2)
        .flat_map(|run| ["a.1.log", "b.1.log"].map(|n| t.log(run, n)))
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert_eq!(frees, expected);
    assert!(rows
        .iter()
        .all(|r| r["kind"] == "log" || r["kind"] == "checkpoint"));
    let text = t.ok(&["gc", "--dry-run", "--now", "+31d"]);
    assert!(
        text.contains("would prune 2 checkpoints and 4 logs")
            && text.contains(&format!("of checkpoints, {expected} B of logs")),
        "{text}"
    );
    assert_eq!(
        std::fs::read(t.dir.join(".wf/journal.log")).expect("log"),
        before,
        "a dry run journals nothing"
    );
    for run in 1..=3 {
        assert!(t.log(run, "a.1.log").is_file() && t.log(run, "b.1.log").is_file());
    }
}

#[test]
fn a_sweep_killed_between_the_record_and_the_unlink_is_finished_by_the_next() {
    let t = T::new(FLOW);
    t.runs(3);
    let out = t.wf_env(
        &["gc", "--now", "+31d"],
        &[("WF_CRASH_POINT", "gc-after-prune")],
    );
    assert!(!out.status.success(), "the crash point was not reached");
    // Journaled, not yet unlinked.
    let journaled: Vec<Value> = (1..=2).flat_map(|r| t.prunes(r)).collect();
    assert!(!journaled.is_empty());
    assert!(t.log(1, "a.1.log").is_file() || t.log(2, "a.1.log").is_file());
    // `wf logs` already answers from the journal for a journaled prune whose file is gone, and
    // reads the file while it is still there.
    let rows = t.json(&["gc", "--now", "+31d"]);
    assert!(
        rows.iter().all(|r| r["action"] == "kept"),
        "pruned twice: {rows:#?}"
    );
    for run in 1..=2 {
        for name in ["a.1.log", "b.1.log", "a.1.metrics", "b.1.metrics"] {
            assert!(!t.log(run, name).exists(), "run {run} {name} left behind");
        }
        let logs = t
            .prunes(run)
            .iter()
            .filter(|p| p["log"].is_string())
            .count();
        assert_eq!(logs, 2, "each log journaled once in run {run}");
    }
    assert!(t.log(3, "a.1.log").is_file() && t.log(3, "b.1.log").is_file());
}

#[test]
fn logs_of_a_run_that_is_not_finished_stay() {
    let t = T::new(
        r#"
[task.a]
run = "echo hello"
retention = "1d"

[task.gate]
run = "echo approved"
needs = ["a"]
manual = true
"#,
    );
    t.ok(&["-q", "run"]);
    // Run 2 reaches the gate too: run 1 ends superseded (finished), run 2 waits.
    t.ok(&["-q", "run", "--force"]);
    let rows = t.json(&["gc", "--now", "+3d"]);
    let logs: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "log").collect();
    assert_eq!(logs.len(), 2, "{rows:#?}");
    let two = logs.iter().find(|r| r["run"] == 2).expect("run 2");
    assert_eq!(two["action"], "kept", "{rows:#?}");
    assert_eq!(two["why"], "its run is not finished", "{rows:#?}");
    assert_eq!(logs_of(&rows, "pruned"), vec![(1, "a".into())], "{rows:#?}");
    assert!(t.log(2, "a.1.log").is_file());
    // Once run 2 is finished, it keeps its log as the latest of its task (keep_last).
    t.ok(&["-q", "approve", "2", "gate"]);
    let rows = t.json(&["gc", "--now", "+3d"]);
    let a: Vec<&Value> = rows
        .iter()
        .filter(|r| r["kind"] == "log" && r["task"] == "a")
        .collect();
    assert_eq!(a.len(), 1, "{rows:#?}");
    assert_eq!(
        a[0]["why"], "latest log of its task (keep_last)",
        "{rows:#?}"
    );
}

#[test]
fn gc_touches_nothing_under_logs_that_is_not_a_journaled_attempts_log() {
    let t = T::new(FLOW);
    t.runs(2);
    let outside = tempfile::tempdir().expect("tempdir");
    let precious = outside.path().join("precious.log");
    std::fs::write(&precious, "keep me").expect("write");
    let logs = t.dir.join(".wf/logs");
    // A link named like a log of a journaled attempt, a log of an attempt never journaled, files
    // that are not logs, and a run directory that is not a number.
    std::fs::remove_file(logs.join("1/a.1.log")).expect("rm");
    std::os::unix::fs::symlink(&precious, logs.join("1/a.1.log")).expect("symlink");
    let others = [
        "1/a.9.log",
        "1/a.01.log",
        "1/notes.txt",
        "1/.1.log",
        "x1/a.1.log",
        "01/a.1.log",
    ];
    for rel in others {
        let p = logs.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, "mine").expect("write");
    }
    let out = t.wf(&["gc", "--now", "+400d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap_or_default(),
        "keep me"
    );
    assert!(std::fs::symlink_metadata(logs.join("1/a.1.log")).is_ok_and(|m| m.is_symlink()));
    for rel in others {
        assert!(logs.join(rel).is_file(), "{rel} was touched");
    }
    assert!(logs.join("wf.jsonl").is_file() || !logs.join("wf.jsonl").exists());
    // Run 1's b log (a regular file, journaled attempt) was pruned; run 2 keeps its latest.
    assert!(!logs.join("1/b.1.log").exists());
    assert!(logs.join("2/a.1.log").is_file() && logs.join("2/b.1.log").is_file());
}

#[test]
fn without_a_workflow_file_the_recorded_retention_or_the_default_applies() {
    let t = T::new(FLOW);
    t.runs(2);
    std::fs::remove_file(t.dir.join("wf.toml")).expect("rm");
    let sd = t.dir.join(".wf");
    let sd = sd.to_string_lossy();
    let mut c = common::command(&t.dir, &t.dir);
    let out = c
        .args(["--state-dir", &sd, "--json", "gc", "--now", "+8d"])
        .env_remove("WF_CRASH_POINT")
        .output()
        .expect("wf");
    assert_eq!(out.status.code(), Some(0));
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    // b's checkpoint recorded 7d; a recorded nothing: the default 30 days.
    assert_eq!(logs_of(&rows, "pruned"), vec![(1, "b".into())], "{rows:#?}");
}
