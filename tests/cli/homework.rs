//! 1. The homework example, end to end.

use super::*;

pub(super) fn homework() -> Test {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homework");
    let t = Test::new();
    t.write(
        "wf.toml",
        &fs::read_to_string(src.join("wf.toml")).expect("reading the example"),
    );
    for e in fs::read_dir(src.join("tasks"))
        .expect("listing the example's tasks")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        t.write(
            &format!("tasks/{name}"),
            &fs::read_to_string(e.path()).expect("reading a task script"),
        );
    }
    t.write(
        "data/raw.csv",
        &fs::read_to_string(src.join("data/raw.csv")).expect("reading raw.csv"),
    );
    t
}

#[test]
fn homework_runs_to_the_manual_gate_and_approval_finishes_it() {
    let t = homework();
    let run = t.wf(&["run"]).code(0);
    let last = run.stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("wf approve report"),
        "the last line should say what to type next: {last:?}"
    );

    let status = t.status();
    let states: Vec<(String, String)> = status
        .iter()
        .map(|r| (text(&r["task"]), text(&r["state"])))
        .collect();
    assert_eq!(
        states,
        [
            ("ingest", "done"),
            ("clean", "done"),
            ("train_or_score", "done"),
            ("report", "waiting"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for r in &status {
        has_fields(
            r,
            &[
                "run",
                "task",
                "state",
                "attempts",
                "cached",
                "owner",
                "started_at",
                "ended_at",
                "exit_code",
            ],
        );
        assert_eq!(r["run"], 1);
        if r["state"] == "done" {
            assert_eq!(r["attempts"], 1, "{r}");
            assert_eq!(r["exit_code"], 0, "{r}");
            assert_eq!(r["cached"], false, "{r}");
            utc(&r["started_at"]);
            utc(&r["ended_at"]);
        }
    }
    assert_eq!(t.task("ingest")["owner"], "data_eng");
    assert_eq!(t.task("report")["owner"], "analyst");
    assert!(
        !t.exists("reports/report.txt"),
        "report ran before approval"
    );

    t.wf(&["approve", "report", "--note", "ok"]).code(0);
    assert!(t.exists("reports/report.txt"));
    assert!(t.read("reports/report.txt").contains("Rows scored:    35"));
    assert!(t.status().iter().all(|r| r["state"] == "done"));

    // The list of runs.
    let runs = t.json(&["--json", "history"]);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let r = &runs[0];
    has_fields(
        r,
        &[
            "run",
            "workflow",
            "state",
            "started_at",
            "ended_at",
            "tasks",
        ],
    );
    assert_eq!(r["run"], 1);
    assert_eq!(r["workflow"], "homework");
    assert_eq!(r["state"], "done");
    utc(&r["started_at"]);
    utc(&r["ended_at"]);
    assert_eq!(r["tasks"]["done"], 4, "{r}");
    for s in ["pending", "running", "waiting", "failed"] {
        assert_eq!(r["tasks"][s], 0, "{r}");
    }

    // The timeline of run 1.
    let tl = t.json(&["--json", "history", "1"]);
    let mut last_seq = 0;
    for e in &tl {
        has_fields(e, &["run", "seq", "at", "kind", "task", "attempt"]);
        assert_eq!(e["run"], 1);
        let seq = e["seq"].as_u64().expect("seq is a number");
        assert!(seq > last_seq, "seq not strictly increasing at {e}");
        last_seq = seq;
        utc(&e["at"]);
        match e["kind"].as_str().expect("kind is a string") {
            "transition" => has_fields(e, &["from", "to", "reason"]),
            "checkpoint" => {
                has_fields(e, &["path", "hash", "bytes", "expires_at"]);
                let hash = e["hash"].as_str().expect("hash is a string");
                assert!(
                    hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
                    "{hash} is not 64 hex digits"
                );
                assert!(e["bytes"].as_u64().is_some_and(|b| b > 0), "{e}");
                utc(&e["expires_at"]);
            }
            "metric" => has_fields(e, &["key", "value"]),
            _ => {}
        }
    }
    let metric = |task: &str, key: &str| -> Option<String> {
        tl.iter()
            .find(|e| e["kind"] == "metric" && e["task"] == task && e["key"] == key)
            .map(|e| text(&e["value"]))
    };
    assert_eq!(metric("ingest", "rows").as_deref(), Some("40"));
    assert!(metric("clean", "null_pct").is_some(), "no null_pct metric");
    assert!(
        metric("train_or_score", "score").is_some(),
        "no score metric"
    );
    let cps: Vec<String> = tl
        .iter()
        .filter(|e| e["kind"] == "checkpoint")
        .map(|e| text(&e["path"]))
        .collect();
    for p in [
        "data/raw.json",
        "data/clean.json",
        "model/model.json",
        "data/scores.json",
        "reports/report.txt",
    ] {
        assert!(cps.iter().any(|c| c == p), "no checkpoint of {p}: {cps:?}");
    }
    let approval = tl
        .iter()
        .find(|e| e["kind"] == "approval")
        .expect("an approval entry");
    assert_eq!(approval["task"], "report");
    assert_eq!(approval["note"], "ok");
    assert_eq!(approval["user"], "tester");
    let done = |task: &str| {
        tl.iter().any(|e| {
            e["kind"] == "transition"
                && e["task"] == task
                && e["from"] == "running"
                && e["to"] == "done"
        })
    };
    assert!(["ingest", "clean", "train_or_score", "report"]
        .iter()
        .all(|t| done(t)));
    assert!(tl.iter().any(|e| e["kind"] == "transition"
        && e["task"] == "report"
        && e["from"] == "pending"
        && e["to"] == "waiting"));
}
