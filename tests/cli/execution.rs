//! 3–5. Failures, retries, missing outputs and timeouts; the task's environment and metrics;
//! parallelism and task selection.

use super::*;

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

#[test]
fn the_metrics_file_is_the_tasks_to_create_and_never_read_through_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let t = Test::with(
        r#"
[task.quiet]
run = "true"

[task.linked]
run = '''
echo rows=9 > own.txt
chmod 644 own.txt
ln own.txt "$WF_METRICS"
'''

[task.symlinked]
run = '''
echo rows=8 > other.txt
ln -s "$PWD/other.txt" "$WF_METRICS"
'''

[task.reports]
run = "echo rows=7 >> $WF_METRICS"
"#,
    );
    t.wf(&["run"]).code(0);
    let logs = t.state_dir().join("logs").join("1");
    // Nothing reported, nothing left: the name is not created for the task.
    assert!(!logs.join("quiet.1.metrics").exists());
    // A hard link the task made to a file of its own: read (it is a regular file), but the
    // task's file keeps its mode.
    let own = t.path("own.txt");
    let mode = std::fs::metadata(&own).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode.ok(), Some(0o644), "wf changed a file of the task's");
    // A symbolic link is never followed.
    let tl = t.json(&["--json", "history", "1"]);
    let metric = |task: &str| {
        tl.iter()
            .find(|e| e["kind"] == "metric" && e["task"] == task)
            .map(|e| text(&e["value"]))
    };
    assert_eq!(metric("symlinked"), None, "read through a link: {tl:#?}");
    assert_eq!(metric("linked").as_deref(), Some("9"));
    assert_eq!(metric("reports").as_deref(), Some("7"));
    // The file the task made is private once wf read it.
    let mode =
        std::fs::metadata(logs.join("reports.1.metrics")).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode.ok(), Some(0o600));
}

#[test]
fn a_metrics_name_the_task_turns_into_a_fifo_a_directory_or_a_huge_file_is_harmless() {
    let t = Test::with(
        r#"
[task.fifo]
run = 'mkfifo "$WF_METRICS"'

[task.dir]
run = 'mkdir "$WF_METRICS"'

[task.huge]
run = '''
i=0
while [ $i -lt 20000 ]; do echo "k$i=0123456789012345678901234567890123456789012345678901234567890123456789"; i=$((i+1)); done >> "$WF_METRICS"
'''
"#,
    );
    // Never blocks on the FIFO, never reads a directory, reads at most 1 MiB of the huge file.
    t.wf(&["run"]).code(0);
    let tl = t.json(&["--json", "history", "1"]);
    let count = |task: &str| {
        tl.iter()
            .filter(|e| e["kind"] == "metric" && e["task"] == task)
            .count()
    };
    assert_eq!(count("fifo"), 0);
    assert_eq!(count("dir"), 0);
    assert!(
        (1..=1000).contains(&count("huge")),
        "at most 1000 metrics: {}",
        count("huge")
    );
    for task in ["fifo", "dir", "huge"] {
        assert_eq!(t.task(task)["state"], "done", "{task}");
    }
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
