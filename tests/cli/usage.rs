//! 9. Usage: flags, version, unknown commands, runs, tasks and directories.

use super::*;

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
