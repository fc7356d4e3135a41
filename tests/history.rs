//! The audit trail: the example's history carries the seed's logging plan; metric trends across
//! runs; history, status and gc work on a state directory without its workflow file.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn wf(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = common::command(dir, dir)
        .args(["-C", &dir.to_string_lossy()])
        .args(args)
        .env("WF_USER", "ana")
        .output()
        .expect("run wf");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

fn lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn copy_example(to: &Path) {
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homework");
    std::fs::copy(ex.join("wf.toml"), to.join("wf.toml")).expect("copy wf.toml");
    for d in ["tasks", "data"] {
        std::fs::create_dir_all(to.join(d)).expect("mkdir");
        for e in std::fs::read_dir(ex.join(d))
            .expect("read example")
            .flatten()
        {
            let name = e.file_name();
            let keep = d == "tasks" || name.to_string_lossy() == "raw.csv";
            if keep {
                std::fs::copy(e.path(), to.join(d).join(&name)).expect("copy");
            }
        }
    }
}

#[test]
fn the_examples_history_carries_the_seeds_logging_plan() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_example(tmp.path());
    assert_eq!(wf(tmp.path(), &["run"]).0, 0);
    assert_eq!(wf(tmp.path(), &["approve", "report"]).0, 0);
    let (code, out, _) = wf(tmp.path(), &["--json", "history", "1"]);
    assert_eq!(code, 0);
    let entries = lines(&out);
    let metric = |task: &str, key: &str| -> Option<String> {
        entries
            .iter()
            .find(|e| e["kind"] == "metric" && e["task"] == task && e["key"] == key)
            .and_then(|e| e["value"].as_str().map(str::to_string))
    };
    // The seed's logging plan: rows, source_uri; rows_in/out, null_pct; params, score;
    // rows_in, summary_path; and artifact paths for each task.
    assert_eq!(metric("ingest", "rows").as_deref(), Some("40"));
    assert!(metric("ingest", "source_uri").is_some());
    assert_eq!(metric("clean", "rows_in").as_deref(), Some("40"));
    assert_eq!(metric("clean", "rows_out").as_deref(), Some("35"));
    assert_eq!(metric("clean", "null_pct").as_deref(), Some("12.50"));
    assert!(metric("train_or_score", "params").is_some_and(|p| p.contains("slope")));
    assert!(metric("train_or_score", "score").is_some());
    assert_eq!(metric("report", "rows_in").as_deref(), Some("35"));
    assert_eq!(
        metric("report", "summary_path").as_deref(),
        Some("reports/report.txt")
    );
    for t in ["ingest", "clean", "train_or_score", "report"] {
        assert!(
            metric(t, "artifact_path").is_some(),
            "{t} has no artifact_path"
        );
        // start/end: its running and done transitions, with times.
        assert!(entries
            .iter()
            .any(|e| e["task"] == t && e["to"] == "running"));
        assert!(entries.iter().any(|e| e["task"] == t && e["to"] == "done"));
    }
    assert!(entries
        .iter()
        .any(|e| e["kind"] == "approval" && e["user"] == "ana"));
    let (code, log, _) = wf(tmp.path(), &["logs", "1", "clean"]);
    assert_eq!(code, 0);
    assert!(log.contains("dropped 5 records"), "{log}");
}

#[test]
fn a_metric_trend_across_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("wf.toml"),
        "[task.m]\nrun = 'echo \"score=$(cat v)\" >> \"$WF_METRICS\"; cp v out'\ninputs = [\"v\"]\noutputs = [\"out\"]\n",
    )
    .expect("write");
    for v in ["0.5", "0.9", "0.7"] {
        std::fs::write(tmp.path().join("v"), v).expect("write v");
        assert_eq!(wf(tmp.path(), &["-q", "run"]).0, 0);
    }
    let (_, out, _) = wf(
        tmp.path(),
        &["--json", "history", "--task", "m", "--metric", "score"],
    );
    let values: Vec<String> = lines(&out)
        .iter()
        .map(|e| e["value"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(values, ["0.7", "0.9", "0.5"], "newest first");
    let (_, human, _) = wf(tmp.path(), &["history", "--task", "m", "--metric", "score"]);
    assert!(human.contains("▁█▄") || human.contains("trend"), "{human}");
    assert!(
        human.contains("▁█"),
        "the sparkline runs oldest to newest: {human}"
    );
    // --metric needs --task.
    assert_eq!(wf(tmp.path(), &["history", "--metric", "score"]).0, 2);
}

#[test]
fn history_status_and_gc_work_on_a_state_directory_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(
        work.join("wf.toml"),
        "[task.a]\nrun = 'date +%N > a.out'\noutputs = [\"a.out\"]\nretention = \"1d\"\n",
    )
    .expect("write");
    for _ in 0..3 {
        assert_eq!(wf(&work, &["-q", "run", "--force"]).0, 0);
    }
    let state: PathBuf = work.join(".wf");
    let elsewhere = tmp.path();
    let sd = state.to_string_lossy().into_owned();
    let (code, out, _) = wf(elsewhere, &["--state-dir", &sd, "--json", "history"]);
    assert_eq!(code, 0);
    assert_eq!(lines(&out).len(), 3);
    let (code, out, _) = wf(elsewhere, &["--state-dir", &sd, "--json", "status"]);
    assert_eq!(code, 0);
    assert_eq!(lines(&out)[0]["run"], 3);
    // Without the workflow file, the retention recorded with each checkpoint applies.
    let (code, out, _) = wf(
        elsewhere,
        &["--state-dir", &sd, "--json", "gc", "--now", "+2d"],
    );
    assert_eq!(code, 0, "{out}");
    let rows = lines(&out);
    assert_eq!(rows.iter().filter(|r| r["action"] == "pruned").count(), 2);
    assert!(rows.iter().all(|r| r["policy"] == "1d"));
}

#[test]
fn a_runs_timeline_as_one_self_contained_html_page() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("wf.toml"),
        "[task.a]\nrun = 'true'\n[task.b]\nneeds = [\"a\"]\nrun = 'true'\nmanual = true\n",
    )
    .expect("write");
    assert_eq!(wf(tmp.path(), &["-q", "run"]).0, 0);
    assert_eq!(
        wf(tmp.path(), &["-q", "approve", "b", "--note", "<ok & fine>"]).0,
        0
    );
    let page = tmp.path().join("run1.html");
    let (code, _, err) = wf(
        tmp.path(),
        &["history", "1", "--html", &page.to_string_lossy()],
    );
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&page).expect("the page");
    assert!(html.contains("<svg"), "no timeline");
    assert!(!html.contains("<ok & fine>"), "journal text is not escaped");
    assert!(html.contains("&lt;ok &amp; fine&gt;"));
    for external in ["<script src", "<link", "<img", "url(http"] {
        assert!(
            !html.contains(external),
            "the page loads something: {external}"
        );
    }
    // --html needs RUN.
    assert_eq!(wf(tmp.path(), &["history", "--html", "x.html"]).0, 2);
}

/// Through the real command line: a workflow name, owners, a task's metric and log line, a
/// parameter and an approval note carrying markup are text on the page, in the terminal and in
/// JSON, and nothing in them becomes a tag.
#[test]
fn the_page_of_a_hostile_workflow_is_all_text() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("wf.toml"),
        r#"[workflow]
name = "</style><script>alert(1)</script>"
[params]
note = "x"
[task.a]
owner = "\"><img src=x onerror=alert(1)>"
run = '''printf '%s\n' '</title><script>alert(2)</script>' ; printf 'k<b>=]]><svg onload=alert(3)>\n' >> "$WF_METRICS"'''
[task.b]
needs = ["a"]
owner = "{{ 7*7 }}"
run = 'true'
manual = true
"#,
    )
    .expect("write");
    let (code, _, err) = wf(tmp.path(), &["-q", "run", "--param", "note=<i>p</i>"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = wf(
        tmp.path(),
        &[
            "-q",
            "approve",
            "b",
            "--note",
            "'><script>alert(4)</script>",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let page = tmp.path().join("run1.html");
    let (code, _, err) = wf(
        tmp.path(),
        &["history", "1", "--html", &page.to_string_lossy()],
    );
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&page).expect("the page");
    let lower = html.to_lowercase();
    for tag in ["<script", "<img", "<svg onload", "<i>", "<b>="] {
        assert!(!lower.contains(tag), "{tag} reached the page as markup");
    }
    assert_eq!(lower.matches("</style>").count(), 1);
    assert!(html.contains("&lt;/style&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("{{ 7*7 }}"), "a template tag in data is text");
    assert!(html.contains("&#39;&gt;&lt;script&gt;alert(4)&lt;/script&gt;"));
    assert!(html.contains("note=&lt;i&gt;p&lt;/i&gt;"));
    // The same data in the terminal and in JSON, as typed.
    let (_, out, _) = wf(tmp.path(), &["history", "1", "-v"]);
    assert!(out.contains("approved by "), "{out}");
    assert!(out.contains("'><script>alert(4)</script>"), "{out}");
    let (_, out, _) = wf(tmp.path(), &["--json", "history", "1"]);
    assert!(lines(&out)
        .iter()
        .any(|e| e["kind"] == "approval" && e["note"] == "'><script>alert(4)</script>"));
}
