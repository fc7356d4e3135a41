//! Manual gates and the cron line: approve, reject and approval_timeout are journaled with user,
//! time and note; `wf -q run --resume` survives a crash of the previous night's run.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

/// A workflow directory (tests/common) with this file's ways of running wf.
struct T(common::Workdir);

impl std::ops::Deref for T {
    type Target = common::Workdir;

    fn deref(&self) -> &common::Workdir {
        &self.0
    }
}

impl T {
    fn new(toml: &str) -> T {
        T(common::Workdir::new(toml))
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.command(args);
        c.env("WF_USER", "ana");
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

/// The minimal case of issue 17: `make` copies src.txt to out.txt; manual `publish` copies
/// out.txt to final.txt. Every execution is logged with the run id it ran under.
const MAKE_PUBLISH: &str = r#"
[params]
day = "none"

[task.make]
run = "echo \"make $WF_RUN_ID $WF_PARAM_DAY\" >> execs; cp src.txt out.txt"
inputs = ["src.txt"]
outputs = ["out.txt"]

[task.publish]
needs = ["make"]
manual = true
run = "echo \"publish $WF_RUN_ID\" >> execs; cp out.txt final.txt"
inputs = ["out.txt"]
outputs = ["final.txt"]
"#;

impl T {
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.wf(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "wf {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

#[test]
fn a_newer_run_at_the_gate_supersedes_the_older_one_and_approving_it_is_refused() {
    let t = T::new(MAKE_PUBLISH);
    t.write("src.txt", "A\n");
    t.ok(&["run"]);
    t.write("src.txt", "B\n");
    t.ok(&["run"]);
    let out = t.wf(&["approve", "1", "publish"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("run 1 was superseded by run 2") && err.contains("wf approve 2 publish"),
        "{err}"
    );
    assert!(!t.dir.join("final.txt").exists(), "publish ran for run 1");
    // Shown as superseded by status, history and their JSON; no alert was raised.
    let runs = t.json(&["history"]);
    assert_eq!(runs[1]["run"], 1);
    assert_eq!(runs[1]["state"], "superseded");
    assert_eq!(runs[0]["state"], "waiting");
    assert_eq!(t.json(&["history", "--status", "superseded"]).len(), 1);
    let status = t.json(&["status", "1"]);
    assert_eq!(status[0]["run_state"], "superseded");
    let tl = t.json(&["history", "1"]);
    let sup = tl
        .iter()
        .find(|e| e["event"] == "superseded")
        .expect("the supersede is journaled with run 1");
    assert_eq!(sup["by"], 2);
    assert_eq!(sup["task"], "publish");
    assert!(!tl.iter().any(|e| e["kind"] == "alert"), "{tl:?}");
    let text = String::from_utf8_lossy(&t.ok(&["status", "1"]).stdout).to_string();
    assert!(text.contains("superseded"), "{text}");
    // `wf resume 1` and `wf reject 1 publish` refuse the same way.
    assert_eq!(t.wf(&["resume", "1"]).status.code(), Some(2));
    assert_eq!(
        t.wf(&["reject", "1", "publish", "--note", "x"])
            .status
            .code(),
        Some(2)
    );
    // The newest run is the one to approve; it publishes its own data.
    t.ok(&["approve", "publish"]);
    assert_eq!(t.read("final.txt"), "B\n");
    assert_eq!(t.read("execs"), "make 1 none\nmake 2 none\npublish 2\n");
}

#[test]
fn superseded_gates_are_not_failed_by_approval_timeout() {
    let t =
        T::new(&MAKE_PUBLISH.replace("manual = true", "manual = true\napproval_timeout = \"1s\""));
    t.write("src.txt", "A\n");
    t.ok(&["run"]);
    t.write("src.txt", "B\n");
    t.ok(&["run"]);
    std::thread::sleep(Duration::from_millis(1200));
    // Run 2's gate expires; run 1, superseded, is left as it is (no second alert).
    let out = t.ok(&["run", "--only", "make"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("approval_timeout").count(), 1, "{err}");
    let runs = t.json(&["history"]);
    let state = |id: u64| {
        runs.iter()
            .find(|r| r["run"] == id)
            .map(|r| r["state"].clone())
    };
    assert_eq!(state(1), Some("superseded".into()));
    assert_eq!(state(2), Some("failed".into()));
}

#[test]
fn approving_an_older_run_uses_its_own_files_not_the_newest_runs() {
    let t = T::new(MAKE_PUBLISH);
    t.write("src.txt", "A\n");
    t.ok(&["run"]);
    // A newer run rewrites out.txt without reaching the gate, so run 1 still waits.
    t.write("src.txt", "B\n");
    t.ok(&["run", "--only", "make"]);
    assert_eq!(t.read("out.txt"), "B\n");
    let out = t.ok(&["approve", "1", "publish"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("put back run 1's out.txt"));
    assert_eq!(t.read("final.txt"), "A\n", "run 1 published run 2's data");
    let tl = t.json(&["history", "1"]);
    let r = tl
        .iter()
        .find(|e| e["kind"] == "restore")
        .expect("the restore is journaled");
    assert_eq!(r["path"], "out.txt");
    assert_eq!(r["replaced_by"], 2);
    assert_eq!(r["task"], "make");
}

#[test]
fn approving_an_older_run_whose_files_are_gone_is_refused_and_changes_nothing() {
    let t = T::new(MAKE_PUBLISH);
    t.write("src.txt", "A\n");
    t.ok(&["run"]);
    t.write("src.txt", "B\n");
    t.ok(&["run", "--only", "make"]);
    // Run 1's version of out.txt is no longer in the store (as after a prune).
    let hash = t
        .json(&["history", "1"])
        .into_iter()
        .find(|e| e["kind"] == "checkpoint")
        .and_then(|e| e["hash"].as_str().map(String::from))
        .expect("a checkpoint");
    std::fs::remove_file(t.dir.join(".wf/objects").join(&hash[..2]).join(&hash)).expect("rm");
    let before = t.json(&["history", "1"]).len();
    let out = t.wf(&["approve", "1", "publish"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("out.txt") && err.contains("run 2's version") && err.contains("run 1"),
        "{err}"
    );
    assert!(!t.dir.join("final.txt").exists());
    assert_eq!(t.read("out.txt"), "B\n");
    assert_eq!(
        t.json(&["history", "1"]).len(),
        before,
        "a refusal journaled something"
    );
    assert_eq!(t.json(&["status", "1"])[1]["state"], "waiting");
}

/// make → use, where `use` fails while the file `fail` exists.
const MAKE_USE: &str = r#"
[task.make]
run = "echo \"make $WF_RUN_ID\" >> execs; cp src.txt out.txt"
inputs = ["src.txt"]
outputs = ["out.txt"]

[task.use]
needs = ["make"]
run = "echo \"use $WF_RUN_ID\" >> execs; if [ -f fail ]; then exit 1; fi; if [ -f slow ]; then sleep 60; fi; cp out.txt used.txt"
inputs = ["out.txt"]
outputs = ["used.txt"]
"#;

#[test]
fn resuming_a_failed_run_puts_back_the_inputs_a_newer_run_overwrote() {
    let t = T::new(MAKE_USE);
    t.write("src.txt", "A\n");
    t.write("fail", "");
    assert_eq!(t.wf(&["run"]).status.code(), Some(1));
    std::fs::remove_file(t.dir.join("fail")).expect("rm");
    t.write("src.txt", "B\n");
    t.ok(&["run"]);
    assert_eq!(t.read("used.txt"), "B\n");
    t.ok(&["resume", "1"]);
    assert_eq!(t.read("used.txt"), "A\n", "run 1 ran on run 2's out.txt");
    assert_eq!(t.read("execs"), "make 1\nuse 1\nmake 2\nuse 2\nuse 1\n");
    let r = t
        .json(&["history", "1"])
        .into_iter()
        .find(|e| e["kind"] == "restore")
        .expect("journaled");
    assert_eq!(r["replaced_by"], 2);
}

#[test]
fn run_resume_puts_back_an_input_changed_between_the_crash_and_the_resume() {
    let t = T::new(MAKE_USE);
    t.write("src.txt", "A\n");
    t.write("slow", "");
    let mut first = t.cmd(&["-q", "run", "--resume"]).spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.read("execs").contains("use 1") {
        assert!(Instant::now() < deadline, "use never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = first.kill();
    let _ = first.wait();
    std::fs::remove_file(t.dir.join("slow")).expect("rm");
    // Between the crash and the resume, someone rewrites the intermediate file.
    t.write("out.txt", "edited\n");
    t.ok(&["-q", "run", "--resume"]);
    assert_eq!(t.read("used.txt"), "A\n");
    assert_eq!(t.json(&["history"]).len(), 1);
    let r = t
        .json(&["history", "1"])
        .into_iter()
        .find(|e| e["kind"] == "restore")
        .expect("journaled");
    assert_eq!(r["replaced_by"], Value::Null);
    assert!(r["found"].is_string());
}

#[test]
fn parameters_are_journaled_keyed_kept_filtered_and_refused_when_undeclared() {
    let t = T::new(MAKE_PUBLISH);
    t.write("src.txt", "A\n");
    t.ok(&["run", "--param", "day=2026-12-01", "--only", "make"]);
    // Same inputs, same parameters: cached. Another day: runs again.
    t.ok(&["run", "-p", "day=2026-12-01", "--only", "make"]);
    t.ok(&["run", "-p", "day=2026-12-02", "--only", "make"]);
    assert_eq!(
        t.read("execs"),
        "make 1 2026-12-01\nmake 3 2026-12-02\n",
        "a parameter is not in the cache key"
    );
    let opts = t
        .json(&["history", "3"])
        .into_iter()
        .find(|e| e["event"] == "options")
        .expect("options journaled");
    assert_eq!(opts["params"]["day"], "2026-12-02");
    assert_eq!(opts["only"][0], "make");
    let hist = String::from_utf8_lossy(&t.ok(&["history", "3"]).stdout).to_string();
    assert!(hist.contains("day=2026-12-02"), "{hist}");
    // Filter.
    let runs = t.json(&["history", "--param", "day=2026-12-01"]);
    let ids: Vec<_> = runs.iter().map(|r| r["run"].clone()).collect();
    assert_eq!(ids, vec![Value::from(2), Value::from(1)]);
    // Undeclared, malformed, twice: refused before anything is journaled.
    for bad in [
        vec!["run", "-p", "dya=1"],
        vec!["run", "-p", "day"],
        vec!["run", "-p", "day=1", "-p", "day=2"],
    ] {
        let out = t.wf(&bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let err = String::from_utf8_lossy(&t.wf(&["run", "-p", "dya=1"]).stderr).to_string();
    assert!(err.contains("did you mean `day`"), "{err}");
    assert_eq!(t.json(&["history"]).len(), 3);
    // HTML shows them.
    let page = t.dir.join("run3.html");
    t.ok(&["history", "3", "--html", &page.to_string_lossy()]);
    let html = std::fs::read_to_string(&page).expect("html");
    assert!(html.contains("Parameters") && html.contains("day=2026-12-02"));
}

#[test]
fn a_resumed_run_keeps_its_parameters_force_and_jobs() {
    let t = T::new(MAKE_USE);
    t.write("src.txt", "A\n");
    t.ok(&["run"]);
    // Forced, with parameters-free workflow: `use` is killed mid-attempt.
    t.write("slow", "");
    let mut c = t
        .cmd(&["-q", "run", "--force", "--jobs", "1"])
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.read("execs").contains("use 2") {
        assert!(Instant::now() < deadline, "use never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = c.kill();
    let _ = c.wait();
    std::fs::remove_file(t.dir.join("slow")).expect("rm");
    let out = t.ok(&["resume"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !text.contains("cached"),
        "the resumed run used the cache: {text}"
    );
    assert_eq!(
        t.read("execs"),
        "make 1\nuse 1\nmake 2\nuse 2\nuse 2\n",
        "--force was not kept by resume"
    );
    let hist = String::from_utf8_lossy(&t.ok(&["history", "2"]).stdout).to_string();
    assert!(
        hist.contains("--force") && hist.contains("--jobs 1"),
        "{hist}"
    );
}

#[test]
fn the_run_resume_cron_line_keeps_the_interrupted_runs_parameters() {
    let t = T::new(
        &MAKE_USE
            .replace("[task.make]", "[params]\nday = \"today\"\n[task.make]")
            .replace(
                "echo \\\"use $WF_RUN_ID\\\"",
                "echo \\\"use $WF_RUN_ID $WF_PARAM_DAY\\\"",
            ),
    );
    t.write("src.txt", "A\n");
    t.write("slow", "");
    let mut c = t
        .cmd(&["-q", "run", "--resume", "-p", "day=2026-12-01"])
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.read("execs").contains("use 1") {
        assert!(Instant::now() < deadline, "use never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = c.kill();
    let _ = c.wait();
    std::fs::remove_file(t.dir.join("slow")).expect("rm");
    let out = t.ok(&["run", "--resume", "-p", "day=2026-12-02"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("its own parameters"));
    assert_eq!(
        t.read("execs"),
        "make 1\nuse 1 2026-12-01\nuse 1 2026-12-01\n"
    );
    // The next night starts the new day.
    t.ok(&["-q", "run", "--resume", "-p", "day=2026-12-02"]);
    assert!(t.read("execs").ends_with("use 2 2026-12-02\n"));
}

#[test]
fn wf_finds_its_workflow_from_a_subdirectory() {
    let t = T::new(MAKE_PUBLISH);
    t.write("src.txt", "A\n");
    t.ok(&["run"]);
    let sub = t.dir.join("reports/weekly");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let in_sub = |args: &[&str]| {
        let mut c = common::command(&sub, &t.dir);
        c.args(args).env("WF_USER", "ana");
        c.output().expect("run wf")
    };
    let out = in_sub(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0));
    assert!(!text.contains("no runs"), "{text}");
    assert!(text.contains("run 1"), "{text}");
    let out = in_sub(&["-v", "history"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains(&format!("using {}", t.dir.join("wf.toml").display())),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("waiting"));
    // Writers too: the approval runs in the workflow's directory, on its files.
    let out = in_sub(&["approve", "publish"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.read("final.txt"), "A\n");
    assert!(!sub.join(".wf").exists() && !sub.join("final.txt").exists());
}

#[test]
fn approving_an_older_run_whose_input_is_not_checkpointed_and_was_rewritten_is_refused() {
    // out.txt is an output of make but not checkpointed: there is no version of run 1 to put back.
    let t = T::new(&MAKE_PUBLISH.replace(
        "outputs = [\"out.txt\"]",
        "outputs = [\"out.txt\"]\ncheckpoint = []",
    ));
    t.write("src.txt", "A\n");
    t.ok(&["run"]);
    // Approving right away is fine: nobody rewrote it.
    let t2 = T::new(&MAKE_PUBLISH.replace(
        "outputs = [\"out.txt\"]",
        "outputs = [\"out.txt\"]\ncheckpoint = []",
    ));
    t2.write("src.txt", "A\n");
    t2.ok(&["run"]);
    t2.ok(&["approve", "publish"]);
    assert_eq!(t2.read("final.txt"), "A\n");
    // A newer run rewrites it without reaching the gate: approving run 1 is refused.
    t.write("src.txt", "B\n");
    t.ok(&["run", "--only", "make"]);
    let out = t.wf(&["approve", "1", "publish"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not checkpointed") && err.contains("run 2"),
        "{err}"
    );
    assert!(!t.dir.join("final.txt").exists());
}

#[test]
fn env_inputs_are_in_the_cache_key_and_check_warns_about_undeclared_variables() {
    let flow = r#"
[task.train]
run = "echo \"train $ALPHA\" >> execs; echo $ALPHA > model.txt"
outputs = ["model.txt"]
env_inputs = ["ALPHA"]
"#;
    let t = T::new(flow);
    let run = |alpha: Option<&str>| {
        let mut c = t.cmd(&["-q", "run"]);
        match alpha {
            Some(a) => c.env("ALPHA", a),
            None => c.env_remove("ALPHA"),
        };
        let out = c.output().expect("run");
        assert_eq!(out.status.code(), Some(0));
    };
    run(Some("1.0"));
    run(Some("1.0")); // cached
    run(Some("0.5")); // another value: runs
    run(None); // unset differs from any value
    run(Some("")); // and from empty
    assert_eq!(t.read("execs"), "train 1.0\ntrain 0.5\ntrain \ntrain \n");
    // Without env_inputs, `wf check` says the task reads $ALPHA undeclared (exit 0, a warning).
    let t = T::new(&flow.replace("env_inputs = [\"ALPHA\"]\n", ""));
    let out = t.wf(&["check"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("$ALPHA") && err.contains("env_inputs = [\"ALPHA\"]"),
        "{err}"
    );
    let ok = T::new(flow).wf(&["check"]);
    assert!(!String::from_utf8_lossy(&ok.stderr).contains("warning"));
    // Invalid declarations are refused with their place.
    for bad in [
        "env_inputs = [\"1X\"]",
        "env_inputs = [\"WF_RUN_ID\"]",
        "env_inputs = \"ALPHA\"",
    ] {
        let t = T::new(&flow.replace("env_inputs = [\"ALPHA\"]", bad));
        assert_eq!(t.wf(&["check"]).status.code(), Some(2), "{bad}");
    }
}

#[test]
fn bad_params_declarations_are_refused_with_their_place() {
    for (bad, what) in [
        ("[params]\n1day = \"x\"\n", "invalid"),
        ("[params]\nday = 1\n", "quote the value"),
        ("[params]\nday = \"a\"\nDAY = \"b\"\n", "WF_PARAM_DAY"),
        ("params = \"day\"\n", "params"),
    ] {
        let t = T::new(&format!("{bad}[task.a]\nrun = \"true\"\n"));
        let out = t.wf(&["check"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(what) && err.contains("wf.toml:"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn init_in_a_subdirectory_writes_there_and_a_state_only_directory_is_read_as_before() {
    let t = T::new(MAKE_PUBLISH);
    t.write("src.txt", "A\n");
    t.ok(&["run"]);
    let export = t.dir.join("backup.jsonl");
    t.ok(&["state", "export", "--out", &export.to_string_lossy()]);
    // An imported copy in a subdirectory (no workflow file there) is what `wf history` reads there.
    let inspect = t.dir.join("inspect");
    std::fs::create_dir_all(&inspect).expect("mkdir");
    t.ok(&[
        "--state-dir",
        &inspect.join(".wf").to_string_lossy(),
        "state",
        "import",
        &export.to_string_lossy(),
    ]);
    t.ok(&["run", "--only", "make"]); // the pipeline moves on: 2 runs there, 1 in the copy
    let in_dir = |dir: &std::path::Path, args: &[&str]| {
        common::command(dir, dir)
            .args(args)
            .output()
            .expect("run wf")
    };
    let out = in_dir(&inspect, &["--json", "history"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // `wf init` in a subdirectory writes a workflow there, not over the parent's.
    let fresh = t.dir.join("newproj");
    std::fs::create_dir_all(&fresh).expect("mkdir");
    let out = in_dir(&fresh, &["init"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fresh.join("wf.toml").is_file());
    assert_eq!(t.read("wf.toml"), MAKE_PUBLISH);
}

#[test]
fn putting_back_an_input_replaces_a_symbolic_link_and_never_writes_through_it() {
    let t = T::new(MAKE_PUBLISH);
    t.write("src.txt", "A\n");
    t.ok(&["run"]);
    t.write("src.txt", "B\n");
    t.ok(&["run", "--only", "make"]);
    // Someone replaced out.txt with a link to a file outside the workflow.
    let outside = tempfile::tempdir().expect("tempdir");
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").expect("write");
    std::fs::remove_file(t.dir.join("out.txt")).expect("rm");
    std::os::unix::fs::symlink(&victim, t.dir.join("out.txt")).expect("symlink");
    t.ok(&["approve", "1", "publish"]);
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "precious\n"
    );
    let meta = std::fs::symlink_metadata(t.dir.join("out.txt")).expect("meta");
    assert!(meta.file_type().is_file());
    assert_eq!(t.read("final.txt"), "A\n");
}

#[test]
fn a_superseded_run_survives_state_export_and_import() {
    let t = T::new(MAKE_PUBLISH);
    t.write("src.txt", "A\n");
    t.ok(&["run", "-p", "day=2026-12-01"]);
    t.write("src.txt", "B\n");
    t.ok(&["run", "-p", "day=2026-12-02"]);
    let export = t.dir.join("backup.jsonl");
    t.ok(&["state", "export", "--out", &export.to_string_lossy()]);
    let copy = t.dir.join("copy/.wf");
    let copy = copy.to_string_lossy();
    t.ok(&[
        "--state-dir",
        &copy,
        "state",
        "import",
        &export.to_string_lossy(),
    ]);
    let runs = t.json(&["--state-dir", &copy, "history"]);
    let states: Vec<_> = runs.iter().map(|r| r["state"].clone()).collect();
    assert_eq!(
        states,
        vec![Value::from("waiting"), Value::from("superseded")]
    );
    let day1 = t.json(&["--state-dir", &copy, "history", "--param", "day=2026-12-01"]);
    assert_eq!(day1.len(), 1);
    assert_eq!(day1[0]["run"], 1);
    let out = t.wf(&["--state-dir", &copy, "approve", "1", "publish"]);
    assert_eq!(out.status.code(), Some(2));
}
