//! 6–8. Interrupted runs (refuse, abandon, resume), the writer lock with readers during a run,
//! and Ctrl-C.

use super::*;

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
