//! End-to-end tests of the public API: parse errors with positions, JSON/TOML equivalence, lint, fuzzing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use crate::workflow::{find_file, lint, load, parse_str, Diagnostic, Severity, Workflow};

fn toml(src: &str) -> Result<Workflow, Vec<Diagnostic>> {
    parse_str(src, Path::new("wf.toml"), false)
}

fn json(src: &str) -> Result<Workflow, Vec<Diagnostic>> {
    parse_str(src, Path::new("wf.json"), true)
}

fn ok(r: Result<Workflow, Vec<Diagnostic>>) -> Workflow {
    match r {
        Ok(wf) => wf,
        Err(diags) => panic!("expected a workflow, got:\n{}", render(&diags)),
    }
}

fn errs(r: Result<Workflow, Vec<Diagnostic>>) -> Vec<Diagnostic> {
    match r {
        Ok(wf) => panic!("expected errors, got a workflow: {wf:?}"),
        Err(diags) => {
            assert!(!diags.is_empty(), "Err must hold at least one diagnostic");
            assert!(diags.iter().all(|d| d.severity == Severity::Error));
            diags
        }
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

fn names(wf: &Workflow) -> Vec<&str> {
    wf.tasks.iter().map(|t| t.name.as_str()).collect()
}

#[test]
fn full_example_parses_with_defaults() {
    let wf = ok(toml(
        r#"
[workflow]
name = "homework"
schedule = "0 6 * * *"
retention = "30d"
keep_last = 2
jobs = 4

[notify]
webhook = "env:WF_SLACK_WEBHOOK"
command = ["mail", "-s", "wf {run}: {task} failed", "data-team@example.com"]

[task.ingest]
run = "sh tasks/ingest.sh"
inputs = ["./data//raw.csv"]
outputs = ["data/raw.json", "data/raw.json"]
retention = "7d"
owner = "data_eng"
retries = 2
retry_delay = "30s"
timeout = "1h 30m"
log = ["rows", "source_uri", "rows"]
manual = true
env = { MODE = "score", _X = "" }

[task.clean]
run = "sh tasks/clean.sh"
needs = ["ingest", "ingest"]
idempotent = false
"#,
    ));
    assert_eq!(wf.name, "homework");
    assert_eq!(wf.schedule.as_deref(), Some("0 6 * * *"));
    assert_eq!(wf.keep_last, 2);
    assert_eq!(wf.jobs, Some(4));
    let notify = wf
        .notify
        .clone()
        .unwrap_or_else(|| panic!("notify missing"));
    assert_eq!(
        notify.channels.webhook.as_deref(),
        Some("env:WF_SLACK_WEBHOOK")
    );
    assert!(notify.channels.command.is_some());
    assert_eq!(wf.file, PathBuf::from("wf.toml"));
    assert!(wf.dir.is_absolute());

    let ingest = wf.task("ingest").unwrap_or_else(|| panic!("no ingest"));
    assert_eq!(ingest.inputs, ["data/raw.csv"]);
    assert_eq!(ingest.outputs, ["data/raw.json"]);
    assert_eq!(ingest.checkpoint, ["data/raw.json"]);
    assert_eq!(ingest.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(ingest.owner.as_deref(), Some("data_eng"));
    assert_eq!(ingest.retries, 2);
    assert_eq!(ingest.retry_delay, Duration::from_secs(30));
    assert_eq!(ingest.timeout, Some(Duration::from_secs(5400)));
    assert_eq!(ingest.log, ["rows", "source_uri"]);
    assert!(ingest.manual && ingest.idempotent);
    assert_eq!(ingest.env.get("MODE").map(String::as_str), Some("score"));
    assert_eq!(ingest.line, 13);

    let clean = wf.task("clean").unwrap_or_else(|| panic!("no clean"));
    assert_eq!(clean.needs, ["ingest"]);
    assert_eq!(clean.needs_idx, [0]);
    assert_eq!(clean.retention, Duration::from_secs(30 * 86_400));
    assert_eq!(clean.retries, 0);
    assert_eq!(clean.retry_delay, Duration::ZERO);
    assert_eq!(clean.timeout, None);
    assert!(!clean.idempotent && !clean.manual);
    assert_eq!(wf.index("clean"), Some(1));
    assert_eq!(wf.index("nope"), None);
}

#[test]
fn defaults_for_minimal_file() {
    let wf = ok(parse_str(
        "[task.a]\nrun = 'true'\n",
        Path::new("/srv/pipelines/nightly/wf.toml"),
        false,
    ));
    assert_eq!(wf.name, "nightly");
    assert_eq!(wf.dir, PathBuf::from("/srv/pipelines/nightly"));
    assert_eq!(wf.retention, Duration::from_secs(30 * 86_400));
    assert_eq!(wf.keep_last, 1);
    assert_eq!(wf.jobs, None);
    assert_eq!(wf.notify, None);
    assert_eq!(wf.schedule, None);
    let a = &wf.tasks[0];
    assert!(a.needs.is_empty() && a.inputs.is_empty() && a.outputs.is_empty());
    assert!(a.checkpoint.is_empty() && a.log.is_empty() && a.env.is_empty());
    assert!(a.idempotent && !a.manual);
    assert_eq!(a.line, 1);
}

/// (source, line, col, substring of the message, substring of the help or "").
const ERROR_CASES: &[(&str, usize, usize, &str, &str)] = &[
    // Syntax.
    ("[task.a]\nrun = \"x\n", 2, 9, "TOML syntax error", ""),
    ("[task.a\nrun='x'\n", 1, 8, "TOML syntax error", ""),
    ("[task.a]\nrun='x'\nrun='y'\n", 3, 1, "TOML syntax error", ""),
    // Types.
    ("[task.ingest]\nrun='x'\nretries = \"2\"\n", 3, 11, "`retries` in [task.ingest] must be a non-negative integer, found a string", ""),
    ("[task.a]\nrun='x'\nretries = -1\n", 3, 11, "must be a non-negative integer, found -1", ""),
    ("[task.a]\nrun='x'\nretries = 101\n", 3, 11, "must be at most 100, found 101", ""),
    ("[task.a]\nrun='x'\nretries = 1.5\n", 3, 11, "found a float", ""),
    ("[task.a]\nrun='x'\nretries = 99999999999999999999999999999999999999999\n", 3, 11, "`retries` in [task.a] is too large; the maximum is 100", ""),
    ("[task.a]\nrun = 5\n", 2, 7, "`run` in [task.a] must be a string, found an integer", ""),
    ("[task.a]\nrun = ''\n", 2, 7, "`run` in [task.a] is empty", ""),
    ("[task.a]\nrun='x'\nidempotent = 'yes'\n", 3, 14, "`idempotent` in [task.a] must be `true` or `false`, found a string", ""),
    ("[task.a]\nrun='x'\nneeds = 'b'\n[task.b]\nrun='y'\n", 3, 9, "`needs` in [task.a] must be an array of strings, found a string", "needs = [\"...\"]"),
    ("[task.a]\nrun='x'\ninputs = ['ok', 3]\n", 3, 17, "item 2 of `inputs` in [task.a] must be a string, found an integer", ""),
    ("[task.a]\nrun='x'\nenv = 'A=1'\n", 3, 7, "`env` in [task.a] must be a table, found a string", ""),
    ("[task.a]\nrun='x'\nenv = { N = 1 }\n", 3, 13, "environment variable `N` in [task.a] must be a string, found an integer", "quote"),
    ("[workflow]\njobs = 0\n[task.a]\nrun='x'\n", 2, 8, "`jobs` in [workflow] must be at least 1, found 0", ""),
    ("[workflow]\nkeep_last = -2\n[task.a]\nrun='x'\n", 2, 13, "`keep_last` in [workflow] must be a non-negative integer", ""),
    ("workflow = 3\n[task.a]\nrun='x'\n", 1, 12, "`workflow` at the top level must be a table, found an integer", ""),
    ("[[task]]\nrun='x'\n", 1, 1, "`task` must be a table of tasks like [task.NAME], found an array", "[[task]]"),
    ("[task]\nrun='x'\n", 2, 5, "task `run` must be a table like [task.run], found a string", "belongs in a [task.NAME]"),
    // Unknown keys.
    ("[task.ingest]\nrun='x'\nretires = 2\n", 3, 1, "unknown key `retires` in [task.ingest]", "did you mean `retries`?"),
    ("[task.a]\nrun='x'\ndepends_on = []\n", 3, 1, "unknown key `depends_on` in [task.a]", "did you mean `needs`?"),
    ("[task.a]\nrun='x'\nschedule = '* * * * *'\n", 3, 1, "unknown key `schedule` in [task.a]", "`schedule` belongs in [workflow]"),
    ("[workflow]\nretenton = '1d'\n[task.a]\nrun='x'\n", 2, 1, "unknown key `retenton` in [workflow]", "did you mean `retention`?"),
    ("[notify]\nwebhok = 'env:X'\n[task.a]\nrun='x'\n", 2, 1, "unknown key `webhok` in [notify]", "did you mean `webhook`?"),
    ("[tasks.a]\nrun='x'\n[task.b]\nrun='y'\n", 1, 2, "unknown key `tasks` at the top level", "did you mean `task`?"),
    ("[workflw]\n[task.b]\nrun='y'\n", 1, 2, "unknown key `workflw` at the top level", "did you mean `workflow`?"),
    // Missing pieces.
    ("[task.ingest]\nneeds = []\n", 1, 7, "task `ingest` has no `run` command", "add `run = \"...\"` to [task.ingest]"),
    ("[workflow]\nname = 'x'\n", 0, 0, "no tasks are defined", "[task.NAME]"),
    ("", 0, 0, "no tasks are defined", ""),
    ("[task]\n", 1, 2, "no tasks are defined", ""),
    // Graph.
    ("[task.a]\nrun='x'\nneeds = ['ingset']\n[task.ingest]\nrun='y'\n", 3, 10, "task `a` needs unknown task `ingset`", "did you mean `ingest`?"),
    ("[task.a]\nrun='x'\nneeds = ['zzz']\n", 3, 10, "task `a` needs unknown task `zzz`", "define [task.zzz]"),
    ("[task.a]\nrun='x'\nneeds = ['a']\n", 3, 10, "task `a` needs itself", ""),
    ("[task.a]\nrun='x'\nneeds=['b']\n[task.b]\nrun='y'\nneeds=['a']\n", 3, 1, "dependency cycle: a → b → a", "remove one of these `needs`"),
    ("[task.a]\nrun='x'\noutputs=['data/x.json']\n[task.b]\nrun='y'\noutputs=['./data/x.json']\n", 6, 10, "tasks `a` and `b` both write `data/x.json`; give each output one producer", ""),
    // Paths.
    ("[task.a]\nrun='x'\noutputs=['/etc/passwd']\n", 3, 10, "output `/etc/passwd` of task `a` is absolute", ""),
    ("[task.a]\nrun='x'\ninputs=['C:\\\\data']\n", 3, 9, "input `C:\\\\data` of task `a` contains `\\`", ""),
    ("[task.a]\nrun='x'\ninputs=['../up.csv']\n", 3, 9, "input `../up.csv` of task `a` contains `..`", ""),
    ("[task.a]\nrun='x'\noutputs=['.wf/x']\n", 3, 10, "output `.wf/x` of task `a` is inside `.wf`", ""),
    ("[task.a]\nrun='x'\noutputs=['out/']\n", 3, 10, "output `out/` of task `a` ends with `/`", ""),
    ("[task.a]\nrun='x'\noutputs=['']\n", 3, 10, "output `` of task `a` is empty", ""),
    ("[task.a]\nrun='x'\noutputs=[\"a\\u0007b\"]\n", 3, 10, "contains a control character", ""),
    ("[task.a]\nrun='x'\noutputs=['x']\ncheckpoint=['y']\n", 4, 13, "checkpoint path `y` of task `a` is not one of its outputs", "add it to `outputs`"),
    // Durations.
    ("[task.a]\nrun='x'\ntimeout='ten minutes'\n", 3, 9, "`timeout` in [task.a] is not a valid duration: `ten minutes` (expected number at 0)", "`90s`"),
    ("[task.a]\nrun='x'\ntimeout='0s'\n", 3, 9, "`timeout` in [task.a] must be greater than zero", ""),
    ("[task.a]\nrun='x'\nretry_delay=30\n", 3, 13, "`retry_delay` in [task.a] must be a duration string, found an integer", "\"30s\""),
    ("[workflow]\nretention='200y'\n[task.a]\nrun='x'\n", 2, 11, "`retention` in [workflow] is longer than 100 years: `200y`", "`7d`"),
    ("[workflow]\nretention='99999999999999999999d'\n[task.a]\nrun='x'\n", 2, 11, "is longer than 100 years", ""),
    // Names.
    ("[task.'my task']\nrun='x'\n", 1, 7, "task name `my task` is invalid", "letters, digits"),
    ("[task._a]\nrun='x'\n", 1, 7, "task name `_a` is invalid", ""),
    ("[task.a]\nrun='x'\nenv={WF_RUN='1'}\n", 3, 6, "environment variable `WF_RUN` in [task.a] uses the reserved prefix `WF_`", ""),
    ("[task.a]\nrun='x'\nenv={'A-B'='1'}\n", 3, 6, "environment variable name `A-B` in [task.a] is invalid", ""),
    ("[task.a]\nrun='x'\nlog=['rows', '9lives']\n", 3, 14, "metric name `9lives` in [task.a] is invalid", ""),
    // Workflow settings.
    ("[workflow]\nschedule='0 6 * *'\n[task.a]\nrun='x'\n", 2, 10, "`schedule` in [workflow] is not a valid 5-field cron expression: `0 6 * *` has 4 fields", "`0 6 * * *`"),
    ("[workflow]\nschedule='61 6 * * *'\n[task.a]\nrun='x'\n", 2, 10, "invalid minute field `61`", ""),
    ("[notify]\nwebhook='slack'\n[task.a]\nrun='x'\n", 2, 9, "`webhook` in [notify] must be `env:NAME` or an http(s) URL (the value is not shown: it may be a secret)", "env:WF_SLACK_WEBHOOK"),
    ("[workflow]\nname=''\n[task.a]\nrun='x'\n", 2, 6, "`name` in [workflow] is empty", ""),
];

#[test]
fn error_cases() {
    let mut failures = Vec::new();
    for (i, (src, line, col, msg, help)) in ERROR_CASES.iter().enumerate() {
        let diags = errs(toml(src));
        let hit = diags.iter().any(|d| {
            d.line == *line
                && d.col == *col
                && d.message.contains(msg)
                && (help.is_empty() || d.help.as_deref().is_some_and(|h| h.contains(help)))
        });
        if !hit {
            failures.push(format!(
                "case {i}: wanted {line}:{col} {msg:?} help {help:?}; got:\n{}",
                render(&diags)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    let diags = errs(toml(
        "[task.a]\nretires = 1\ntimeout = 'x'\nneeds = ['b', 'nope']\n[task.b]\nrun = 'y'\noutputs = ['/abs']\n",
    ));
    let text = render(&diags);
    for want in ["retires", "timeout", "nope", "no `run`", "/abs"] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // Sorted by line.
    let lines: Vec<usize> = diags.iter().map(|d| d.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
}

#[test]
fn display_includes_position_and_help() {
    let diags = errs(toml("[task.ingest]\nrun = 'x'\nretires = 2\n"));
    assert_eq!(
        diags[0].to_string(),
        "wf.toml:3:1: error: unknown key `retires` in [task.ingest]; did you mean `retries`?"
    );
}

#[test]
fn cycle_is_printed_in_needs_order() {
    let diags = errs(toml(
        "[task.a]\nrun='x'\nneeds=['b']\n[task.b]\nrun='x'\nneeds=['c']\n[task.c]\nrun='x'\nneeds=['a']\n[task.d]\nrun='x'\nneeds=['a']\n",
    ));
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!(diags[0].message, "dependency cycle: a → b → c → a");
    assert_eq!((diags[0].line, diags[0].col), (3, 1));
    // Two independent cycles are both reported.
    let diags = errs(toml(
        "[task.a]\nrun='x'\nneeds=['b']\n[task.b]\nrun='x'\nneeds=['a']\n[task.c]\nrun='x'\nneeds=['d']\n[task.d]\nrun='x'\nneeds=['c']\n",
    ));
    let msgs: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["dependency cycle: a → b → a", "dependency cycle: c → d → c"]
    );
}

#[test]
fn topological_order_breaks_ties_by_file_order() {
    let wf = ok(toml(
        "[task.report]\nrun='x'\nneeds=['train','clean']\n[task.zeta]\nrun='x'\n[task.train]\nrun='x'\nneeds=['clean']\n[task.clean]\nrun='x'\nneeds=['ingest']\n[task.ingest]\nrun='x'\n[task.alpha]\nrun='x'\n",
    ));
    assert_eq!(
        names(&wf),
        ["zeta", "ingest", "clean", "train", "report", "alpha"]
    );
    let report = wf.task("report").unwrap_or_else(|| panic!("no report"));
    assert_eq!(report.needs, ["train", "clean"]);
    assert_eq!(report.needs_idx, [3, 2]);
    assert_eq!(report.line, 1);
    assert_eq!(wf.downstream(1), [1, 2, 3, 4]);
    assert_eq!(wf.downstream(0), [0]);
    assert!(wf.downstream(99).is_empty());
    assert!(wf.is_ancestor(1, 4));
    assert!(wf.is_ancestor(2, 3));
    assert!(!wf.is_ancestor(4, 1));
    assert!(!wf.is_ancestor(0, 4));
    assert!(!wf.is_ancestor(2, 2));
    assert!(!wf.is_ancestor(99, 0) && !wf.is_ancestor(0, 99));
}

const EQUIV_TOML: &str = r#"
[workflow]
name = "hw"
schedule = "*/5 * * * MON-FRI"
retention = "10d"
keep_last = 3
jobs = 2

[notify]
webhook = "https://hooks.example.com/abc"

[task.b]
run = "echo b"
needs = ["a"]
inputs = ["x.txt"]
outputs = ["y.txt", "z.txt"]
checkpoint = ["y.txt"]
env = { K = "v" }
log = ["m.n"]
timeout = "5m"

[task.a]
run = "echo a"
outputs = ["x.txt"]
retries = 3
retry_delay = "1s"
manual = true
owner = "me"
idempotent = false
"#;

const EQUIV_JSON: &str = r#"{
  "workflow": {"name": "hw", "schedule": "*/5 * * * MON-FRI", "retention": "10d", "keep_last": 3, "jobs": 2},
  "notify": {"webhook": "https://hooks.example.com/abc"},
  "task": {
    "b": {
      "run": "echo b",
      "needs": ["a"],
      "inputs": ["x.txt"],
      "outputs": ["y.txt", "z.txt"],
      "checkpoint": ["y.txt"],
      "env": {"K": "v"},
      "log": ["m.n"],
      "timeout": "5m"
    },
    "a": {"run": "echo a", "outputs": ["x.txt"], "retries": 3, "retry_delay": "1s",
          "manual": true, "owner": "me", "idempotent": false}
  }
}"#;

#[test]
fn json_is_equivalent_to_toml() {
    let t = ok(toml(EQUIV_TOML));
    let mut j = ok(json(EQUIV_JSON));
    assert_eq!(names(&t), ["a", "b"]);
    assert_eq!(
        j.tasks[0].line, 15,
        "JSON lines are approximated from the key"
    );
    assert_eq!(j.tasks[1].line, 5);
    assert_eq!(j.file, PathBuf::from("wf.json"));
    for (jt, tt) in j.tasks.iter_mut().zip(&t.tasks) {
        jt.line = tt.line;
        jt.col = tt.col;
    }
    j.file = t.file.clone();
    assert_eq!(t, j);
}

#[test]
fn json_errors_have_positions() {
    let diags = errs(json(
        "{\n  \"task\": {\"a\": {\"run\": \"x\",\n    \"retires\": 1}}\n}",
    ));
    assert_eq!((diags[0].line, diags[0].col), (3, 5));
    assert_eq!(diags[0].message, "unknown key `retires` in [task.a]");
    assert_eq!(diags[0].help.as_deref(), Some("did you mean `retries`?"));

    let diags = errs(json(
        "{\"task\": {\"a\": {\"run\": \"x\", \"retries\": \"2\"}}}",
    ));
    assert_eq!((diags[0].line, diags[0].col), (1, 40));

    let diags = errs(json("{\n  \"task\": {,}\n}"));
    assert_eq!((diags[0].line, diags[0].col), (2, 12));
    assert!(diags[0].message.starts_with("JSON syntax error: "));
    assert!(!diags[0].message.contains(" at line "));

    let diags = errs(json("[1, 2]"));
    assert!(diags[0].message.contains("must be a table, found an array"));

    // Duplicate keys survive parsing and are reported.
    let diags = errs(json(
        "{\"task\": {\"a\": {\"run\": \"x\"},\n \"a\": {\"run\": \"y\"}}}",
    ));
    assert_eq!(diags[0].message, "task `a` is defined twice");
    assert_eq!((diags[0].line, diags[0].col), (2, 2));
}

/// Builds the homework workflow in `dir` (with no data files on disk).
fn homework(dir: &Path) -> Workflow {
    let src = r#"
[task.ingest]
run = "sh tasks/ingest.sh"
inputs = ["data/raw.ext"]
outputs = ["data/raw.json"]
owner = "data_eng"

[task.clean]
run = "sh tasks/clean.sh"
needs = ["ingest"]
inputs = ["data/raw.ext"]
outputs = ["data/clean.json"]
owner = "data_eng"

[task.train_or_score]
run = "sh tasks/train_or_score.sh"
needs = ["clean"]
inputs = ["data/clean.json", "model/model.pkl"]
outputs = ["model/model.pkl", "data/scores.json"]
owner = "ml_eng"

[task.report]
run = "sh tasks/report.sh"
needs = ["train_or_score"]
inputs = ["data/clean.json", "model/model.pkl"]
outputs = ["reports/report.txt"]
owner = "analyst"
"#;
    ok(parse_str(src, &dir.join("wf.toml"), false))
}

#[test]
fn homework_lint_finds_its_three_mistakes() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let wf = homework(tmp.path());
    let warnings = lint(&wf);
    let text = render(&warnings);
    assert!(warnings.iter().all(|w| w.severity == Severity::Warning));

    let read_write: Vec<&Diagnostic> = warnings
        .iter()
        .filter(|w| {
            w.message
                .contains("not idempotent: re-running reads its own previous output")
        })
        .collect();
    assert_eq!(read_write.len(), 1, "{text}");
    assert!(read_write[0].message.contains("`train_or_score`"));
    assert!(read_write[0].message.contains("`model/model.pkl`"));
    assert_eq!(read_write[0].line, 15);

    // raw.ext is read by both ingest and clean; each read is reported.
    let missing: Vec<&Diagnostic> = warnings
        .iter()
        .filter(|w| {
            w.message
                .contains("is produced by no task and does not exist")
        })
        .collect();
    assert!(!missing.is_empty(), "{text}");
    assert!(missing
        .iter()
        .all(|w| w.message.contains("input `data/raw.ext`")));
    assert!(missing.iter().any(|w| w.message
        == "input `data/raw.ext` of `clean` is produced by no task and does not exist"));

    let empty_edges: Vec<&Diagnostic> = warnings
        .iter()
        .filter(|w| w.message.contains("reads none of its outputs"))
        .collect();
    assert_eq!(empty_edges.len(), 1, "{text}");
    assert_eq!(
        empty_edges[0].message,
        "`clean` needs `ingest` but reads none of its outputs (data/raw.json); is an input path wrong?"
    );

    assert!(
        !text.contains("does not depend on it"),
        "unexpected race:\n{text}"
    );
    assert_eq!(
        warnings.len(),
        read_write.len() + missing.len() + empty_edges.len(),
        "{text}"
    );

    // Once the raw file exists on disk, the missing-input warnings go away.
    std::fs::create_dir_all(tmp.path().join("data")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("data/raw.ext"), "x").unwrap_or_else(|e| panic!("{e}"));
    let text = render(&lint(&wf));
    assert!(!text.contains("produced by no task"), "{text}");
}

#[test]
fn lint_catches_a_real_race() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let src = "[task.train]\nrun='true'\noutputs=['model/model.pkl']\n\n[task.report]\nrun='true'\ninputs=['model/model.pkl']\noutputs=['r.txt']\n";
    let wf = ok(parse_str(src, &tmp.path().join("wf.toml"), false));
    let warnings = lint(&wf);
    assert_eq!(warnings.len(), 1, "{}", render(&warnings));
    assert_eq!(
        warnings[0].message,
        "`report` reads `model/model.pkl` written by `train` but does not depend on it (add `train` to needs)"
    );
    assert_eq!(warnings[0].line, 5);

    // A transitive dependency is enough; a directory output covers the files inside it.
    let src = "[task.train]\nrun='x'\noutputs=['model']\n[task.mid]\nrun='x'\nneeds=['train']\ninputs=['model/a.pkl']\n[task.report]\nrun='y'\nneeds=['mid']\ninputs=['model/b.pkl']\n";
    let wf = ok(parse_str(src, &tmp.path().join("wf.toml"), false));
    let text = render(&lint(&wf));
    assert!(!text.contains("does not depend"), "{text}");
    assert!(!text.contains("produced by no task"), "{text}");
}

#[test]
fn load_reads_files_and_reports_missing_ones() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    assert_eq!(find_file(tmp.path()), None);
    let missing = tmp.path().join("wf.toml");
    let diags = errs(load(&missing));
    assert!(diags[0].to_string().contains("cannot read"));
    assert!(diags[0]
        .to_string()
        .contains("No such file or directory; run `wf init` or pass -f FILE"));

    std::fs::write(tmp.path().join("wf.json"), EQUIV_JSON).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(find_file(tmp.path()), Some(tmp.path().join("wf.json")));
    std::fs::write(&missing, EQUIV_TOML).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(find_file(tmp.path()), Some(missing.clone()));

    let t = ok(load(&missing));
    let j = ok(load(&tmp.path().join("wf.json")));
    assert_eq!(names(&t), names(&j));
    assert_eq!(t.dir, tmp.path());

    std::fs::write(&missing, b"\xff\xfe[task.a]").unwrap_or_else(|e| panic!("{e}"));
    let diags = errs(load(&missing));
    assert!(diags[0].message.contains("not valid UTF-8"));
}

#[test]
fn deep_nesting_and_garbage_do_not_panic() {
    for n in [100, 10_000, 200_000] {
        let deep = format!("x = {}{}\n", "[".repeat(n), "]".repeat(n));
        let _ = errs(toml(&deep));
        let deep = format!("x = {}1{}\n", "{a=".repeat(n), "}".repeat(n));
        let _ = errs(toml(&deep));
        let deep = format!("{}1 = 2\n", "a.".repeat(n));
        let _ = errs(toml(&deep));
        let deep = format!("[{}]\n", "a.".repeat(n) + "b");
        let _ = errs(toml(&deep));
        let deep = format!("x = {{{}b = 1}}\n", "a.".repeat(n));
        let _ = errs(toml(&deep));
        let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let _ = errs(json(&deep));
        let deep = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        let _ = errs(json(&deep));
    }
    for junk in [
        "\u{feff}",
        "\0",
        "[task.a]\nrun='\u{0}'",
        "{\"task\":",
        "\"",
        "[",
        "]]]]",
    ] {
        let _ = toml(junk);
        let _ = json(junk);
    }
}

/// A random graph: for each task, indices of the tasks it needs (possibly itself or forward).
fn graph_source(needs: &[Vec<usize>]) -> String {
    let mut src = String::new();
    for (i, ns) in needs.iter().enumerate() {
        let list: Vec<String> = ns.iter().map(|j| format!("\"t{j}\"")).collect();
        src.push_str(&format!(
            "[task.t{i}]\nrun = \"true\"\nneeds = [{}]\n",
            list.join(", ")
        ));
    }
    src
}

fn has_cycle(needs: &[Vec<usize>]) -> bool {
    // 0 = unvisited, 1 = on stack, 2 = done; recursion depth is bounded by the small graph size.
    fn visit(v: usize, needs: &[Vec<usize>], state: &mut [u8]) -> bool {
        state[v] = 1;
        for &w in &needs[v] {
            if state[w] == 1 || (state[w] == 0 && visit(w, needs, state)) {
                return true;
            }
        }
        state[v] = 2;
        false
    }
    let mut state = vec![0u8; needs.len()];
    (0..needs.len()).any(|v| state[v] == 0 && visit(v, needs, &mut state))
}

fn arb_graph() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..12).prop_flat_map(|n| {
        // Mostly backward edges (DAG-ish) with occasional forward ones (cycles).
        proptest::collection::vec(proptest::collection::vec((0..n, 0u8..10), 0..4), n).prop_map(
            move |rows| {
                rows.into_iter()
                    .enumerate()
                    .map(|(i, edges)| {
                        let mut ns: Vec<usize> = edges
                            .into_iter()
                            .filter_map(|(j, dice)| (j < i || dice == 0).then_some(j))
                            .filter(|&j| j != i)
                            .collect();
                        ns.dedup();
                        ns
                    })
                    .collect()
            },
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn order_respects_needs_or_reports_cycle(needs in arb_graph()) {
        let src = graph_source(&needs);
        match toml(&src) {
            Ok(wf) => {
                prop_assert!(!has_cycle(&needs));
                prop_assert_eq!(wf.tasks.len(), needs.len());
                for (i, t) in wf.tasks.iter().enumerate() {
                    prop_assert_eq!(t.needs.len(), t.needs_idx.len());
                    for (name, &j) in t.needs.iter().zip(&t.needs_idx) {
                        prop_assert!(j < i, "{} at {} needs {} at {}", t.name, i, name, j);
                        prop_assert_eq!(&wf.tasks[j].name, name);
                    }
                }
            }
            Err(diags) => {
                prop_assert!(has_cycle(&needs));
                prop_assert!(diags.iter().all(|d| d.message.contains("cycle")), "{}", render(&diags));
            }
        }
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        let _ = toml(&s);
        let _ = json(&s);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = toml(&s);
        let _ = json(&s);
    }

    #[test]
    fn mutated_valid_files_never_panic(pos in 0usize..600, byte in any::<u8>()) {
        for base in [EQUIV_TOML, EQUIV_JSON] {
            let mut b = base.as_bytes().to_vec();
            let at = pos % b.len();
            b[at] = byte;
            let s = String::from_utf8_lossy(&b);
            if let Ok(wf) = toml(&s).or_else(|_| json(&s)) {
                let _ = lint(&wf);
            }
        }
    }
}
