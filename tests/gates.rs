//! Manual gates and the cron line: approve, reject and approval_timeout are journaled with user,
//! time and note; `wf -q run --resume` survives a crash of the previous night's run.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const WF: &str = env!("CARGO_BIN_EXE_wf");

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

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(WF);
        c.args(["-C", &self.dir.to_string_lossy()])
            .args(args)
            .env("WF_USER", "ana")
            .env_remove("WF_CRASH_POINT")
            .stdin(Stdio::null());
        c
    }

    fn wf(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("run wf");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        out
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.wf(&a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }
}

const GATED: &str = r#"
[task.build]
run = "echo built > build.out"
outputs = ["build.out"]
[task.report]
run = "cp build.out report.txt"
needs = ["build"]
inputs = ["build.out"]
outputs = ["report.txt"]
owner = "analyst"
manual = true
"#;

#[test]
fn reject_fails_the_gate_with_user_time_and_note() {
    let t = T::new(GATED);
    assert_eq!(t.wf(&["run"]).status.code(), Some(0));
    let out = t.wf(&["reject", "report", "--note", "numbers look off"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = t.json(&["status"]);
    assert_eq!(status[1]["state"], "failed");
    assert_eq!(status[1]["run_state"], "failed");
    let tl = t.json(&["history", "1"]);
    let r = tl
        .iter()
        .find(|e| e["kind"] == "approval")
        .expect("a rejection entry");
    assert_eq!(r["decision"], "rejected");
    assert_eq!(r["user"], "ana");
    assert_eq!(r["note"], "numbers look off");
    assert!(r["at"].as_str().is_some_and(|a| a.ends_with('Z')));
    // Nothing is waiting any more.
    assert_eq!(t.wf(&["approve", "report"]).status.code(), Some(2));
}

#[test]
fn approve_is_journaled_with_user_time_and_note() {
    let t = T::new(GATED);
    t.wf(&["run"]);
    let out = t.wf(&["approve", "report", "--note", "QA ok"]);
    assert_eq!(out.status.code(), Some(0));
    let a = t
        .json(&["history", "1"])
        .into_iter()
        .find(|e| e["kind"] == "approval")
        .expect("approval");
    assert_eq!(
        (a["decision"].clone(), a["user"].clone(), a["note"].clone()),
        ("approved".into(), "ana".into(), "QA ok".into())
    );
    assert!(t.dir.join("report.txt").is_file());
}

#[test]
fn a_gate_left_waiting_past_its_approval_timeout_fails() {
    let t = T::new(&GATED.replace("manual = true", "manual = true\napproval_timeout = \"1s\""));
    t.wf(&["run"]);
    std::thread::sleep(Duration::from_millis(1200));
    // The next scheduled run fails the expired gate of run 1, then runs.
    let out = t.wf(&["run"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("approval_timeout"), "{err}");
    let runs = t.json(&["history"]);
    let one = runs.iter().find(|r| r["run"] == 1).expect("run 1");
    assert_eq!(one["state"], "failed");
    let r = t
        .json(&["history", "1"])
        .into_iter()
        .find(|e| e["kind"] == "approval")
        .expect("the timeout is journaled");
    assert_eq!(r["decision"], "rejected");
    assert_eq!(r["user"], "wf");
    assert!(r["note"].as_str().is_some_and(|n| n.contains("1s")));
}

#[test]
fn the_cron_line_survives_a_crash_of_the_previous_nights_run() {
    let t = T::new(
        r#"
[task.slow]
run = "echo \"slow $WF_ATTEMPT\" >> execs; if [ \"$WF_ATTEMPT\" = 1 ]; then sleep 60; fi; echo done > slow.out"
outputs = ["slow.out"]
"#,
    );
    // Night 1: the machine dies in the middle of the run.
    let mut night1 = t.cmd(&["-q", "run", "--resume"]).spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(t.dir.join("execs"))
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the task never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = night1.kill();
    let _ = night1.wait();
    // Night 2: the same cron line resumes run 1, prints nothing, exits 0.
    let out = t.wf(&["-q", "run", "--resume"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let runs = t.json(&["history"]);
    assert_eq!(
        runs.len(),
        1,
        "night 2 started a new run instead of resuming"
    );
    assert_eq!(runs[0]["state"], "done");
    // Night 3: nothing interrupted, so the cron line starts a new run (a cache hit here).
    let out = t.wf(&["-q", "run", "--resume"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(t.json(&["history"]).len(), 2);
    let execs = std::fs::read_to_string(t.dir.join("execs")).unwrap_or_default();
    assert_eq!(execs, "slow 1\nslow 2\n");
}
