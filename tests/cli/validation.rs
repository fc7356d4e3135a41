//! 2. Validation and lint.

use super::homework::homework;
use super::*;

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
