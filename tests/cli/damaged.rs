//! 10. A damaged state.

use super::*;

/// Run a one-task workflow, damage the middle of the record log (`.wf/journal.log`, the
/// journal's truth), and remove the index so that it must be rebuilt from the log.
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
    fs::remove_dir_all(t.state_dir().join("journal")).expect("removing the index's files");
    assert_eq!(t.json(&["--json", "history", "1"]), before);
    t.wf(&["run"]).code(0);
    assert_eq!(t.json(&["--json", "history"]).len(), 2);
}
