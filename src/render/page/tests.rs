//! The run page against real stores and hand-made journals: complete, self-contained, escaped,
//! and sane at the edges (one task, two hundred, still running, a crash gap).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::collections::HashMap;

use crate::render::fmt::{bytes as human_bytes, span_ms as human_ms, truncate};
use crate::render::timeline::chart::{tick_label, tick_step};
use std::sync::OnceLock;
use std::time::Duration as StdDuration;
use wf_state::{Entry, Reason};

use wf_state::machine::replay;
use wf_state::{Access, RunId, Store, TaskPlan};

fn plan(name: &str, owner: Option<&str>, retries: u32, manual: bool) -> TaskPlan {
    TaskPlan {
        name: name.to_string(),
        owner: owner.map(str::to_string),
        idempotent: true,
        retries,
        manual,
    }
}

/// The page, which renders (a failure is a bug).
fn run_page(snap: &RunSnapshot, records: &[Record], now: DateTime<Utc>) -> String {
    super::run_page(snap, records, now).unwrap()
}

/// What the page's escaper makes of `s`.
fn esc(s: &str) -> String {
    let mut out = String::new();
    askama::filters::Escaper::write_escaped_str(&Escape, &mut out, s).unwrap();
    out
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Drives a real store, so the records carry the store's own timestamps and every entry is
/// checked by the state machine.
struct Sim {
    _dir: tempfile::TempDir,
    store: Store,
    run: RunId,
    attempts: HashMap<String, u32>,
    next_pid: u32,
}

impl Sim {
    fn start(workflow: &str, tasks: Vec<TaskPlan>, first: Vec<Entry>) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(".wf");
        let mut store = Store::open(&root, Access::Write).unwrap().unwrap();
        store.set_fsync(false);
        let mut entries = vec![Entry::RunStarted {
            workflow: workflow.to_string(),
            file: "pipelines/churn.wf.toml".to_string(),
            user: "alice".to_string(),
            host: "etl-01".to_string(),
            pid: 4100,
            args: strings(&["wf", "run", "--jobs", "4"]),
            tasks,
        }];
        entries.extend(first);
        let (run, _) = store.begin_run(entries).unwrap();
        Sim {
            _dir: dir,
            store,
            run,
            attempts: HashMap::new(),
            next_pid: 4200,
        }
    }

    fn commit(&mut self, entries: Vec<Entry>) -> Vec<Record> {
        self.store.commit(self.run, entries).unwrap()
    }

    fn sleep(ms: u64) {
        std::thread::sleep(StdDuration::from_millis(ms));
    }

    fn attempt(&self, task: &str) -> u32 {
        self.attempts.get(task).copied().unwrap_or(0)
    }

    /// pending → running, and its process.
    fn run_task(&mut self, task: &str) -> Vec<Entry> {
        let n = self.attempt(task) + 1;
        self.attempts.insert(task.to_string(), n);
        self.next_pid += 17;
        vec![
            Entry::Transition {
                task: task.to_string(),
                attempt: n,
                from: TaskState::Pending,
                to: TaskState::Running,
                reason: Reason::Started,
                exit_code: None,
            },
            Entry::Spawned {
                task: task.to_string(),
                attempt: n,
                pid: self.next_pid,
                pid_start: Some(123_456),
            },
        ]
    }

    fn tr(&self, task: &str, from: TaskState, to: TaskState, reason: Reason) -> Entry {
        let exit_code = match (&reason, to) {
            (Reason::Exit(c), _) => Some(*c),
            (_, TaskState::Done) if from == TaskState::Running => Some(0),
            _ => None,
        };
        Entry::Transition {
            task: task.to_string(),
            attempt: self.attempt(task),
            from,
            to,
            reason,
            exit_code,
        }
    }

    fn done(&self, task: &str) -> Entry {
        self.tr(task, TaskState::Running, TaskState::Done, Reason::Succeeded)
    }

    fn checkpoint(&self, task: &str, path: &str, bytes: u64) -> Entry {
        let hash = fake_hash(path);
        Entry::Checkpoint {
            task: task.to_string(),
            attempt: self.attempt(task),
            path: path.to_string(),
            hash,
            bytes,
            retention_secs: 7 * 86_400,
            expires_at: Utc::now() + chrono::Duration::days(7),
        }
    }

    fn metric(&self, task: &str, key: &str, value: &str) -> Entry {
        Entry::Metric {
            task: task.to_string(),
            attempt: self.attempt(task),
            key: key.to_string(),
            value: value.to_string(),
        }
    }

    fn finish(mut self) -> (RunSnapshot, Vec<Record>) {
        let snap = self.store.snapshot(self.run).unwrap().unwrap();
        let records = self.store.records(self.run).unwrap();
        (snap, records)
    }
}

/// A blake3-looking hex digest of `s` (not a real one; only its looks matter here).
fn fake_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::new();
    for round in 0..4u64 {
        for b in s.bytes().chain(round.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

const LONG: &str =
    "publish_dashboard_snapshot_to_the_analytics_warehouse_partitioned_by_region_and_day";

/// A realistic run: a cache hit, a failure retried after a delay, a crash and a resume, a
/// manual gate approved the next morning (well, half a second later), checkpoints, metrics
/// and a pruned checkpoint.
fn build_sample() -> (RunSnapshot, Vec<Record>) {
    let tasks = vec![
        plan("ingest_events", Some("data-eng"), 0, false),
        plan("load_dim_customers", Some("data-eng"), 0, false),
        plan("clean_events", Some("alice"), 2, false),
        plan("validate_schema", Some("data-eng"), 0, false),
        plan("build_features", Some("ml-team"), 0, false),
        plan("train_model", Some("ml-team"), 1, false),
        plan("evaluate_model", Some("ml-team"), 0, false),
        plan(LONG, Some("bi"), 0, false),
        plan("approve_release", Some("bob"), 0, true),
        plan("notify_team", None, 0, false),
    ];
    let mut sim = Sim::start(
        "churn-model-nightly",
        tasks,
        vec![Entry::Transition {
            task: "load_dim_customers".into(),
            attempt: 0,
            from: TaskState::Pending,
            to: TaskState::Done,
            reason: Reason::CacheHit,
            exit_code: None,
        }],
    );
    let e = sim.run_task("ingest_events");
    sim.commit(e);
    Sim::sleep(260);
    let mut e = vec![
        sim.done("ingest_events"),
        sim.checkpoint("ingest_events", "data/events.parquet", 50_331_648),
        sim.metric("ingest_events", "rows", "1204332"),
        Entry::Fingerprint {
            task: "ingest_events".into(),
            attempt: 1,
            fingerprint: "b3f1c9a0d2e47f5566aa01".into(),
        },
    ];
    e.extend(sim.run_task("clean_events"));
    e.extend(sim.run_task("validate_schema"));
    let ingest_ckpt = sim
        .commit(e)
        .iter()
        .find(|r| matches!(r.entry, Entry::Checkpoint { .. }))
        .unwrap()
        .seq;
    Sim::sleep(140);
    let e = vec![
        sim.tr(
            "clean_events",
            TaskState::Running,
            TaskState::Failed,
            Reason::Exit(2),
        ),
        sim.tr(
            "clean_events",
            TaskState::Failed,
            TaskState::Pending,
            Reason::Retry {
                n: 1,
                of: 2,
                not_before_ms: (Utc::now() + chrono::Duration::milliseconds(250))
                    .timestamp_millis(),
            },
        ),
    ];
    sim.commit(e);
    Sim::sleep(120);
    let e = vec![
        sim.done("validate_schema"),
        sim.metric("validate_schema", "bad_rows", "0"),
    ];
    sim.commit(e);
    Sim::sleep(140);
    let e = sim.run_task("clean_events");
    sim.commit(e);
    Sim::sleep(200);
    let mut e = vec![
        sim.done("clean_events"),
        sim.checkpoint("clean_events", "data/clean/events.parquet", 31_457_280),
        sim.metric("clean_events", "dropped_rows", "1842"),
    ];
    e.extend(sim.run_task("build_features"));
    sim.commit(e);
    Sim::sleep(220);
    let mut e = vec![
        sim.done("build_features"),
        sim.checkpoint("build_features", "features/train.parquet", 8_912_345),
    ];
    e.extend(sim.run_task("train_model"));
    sim.commit(e);
    // wf dies here: nothing is journaled until the resume.
    Sim::sleep(650);
    let e = vec![
        Entry::RunResumed {
            user: "carol".into(),
            pid: 5120,
            args: strings(&["wf", "resume", "1"]),
        },
        sim.tr(
            "train_model",
            TaskState::Running,
            TaskState::Pending,
            Reason::Interrupted(
                "wf stopped during the attempt; killed leftover process 4319".into(),
            ),
        ),
    ];
    sim.commit(e);
    let e = sim.run_task("train_model");
    sim.commit(e);
    Sim::sleep(450);
    let mut e = vec![
        sim.done("train_model"),
        sim.metric("train_model", "accuracy", "0.912"),
        sim.metric("train_model", "auc", "0.874"),
        sim.metric("train_model", "loss", "0.231"),
        sim.checkpoint("train_model", "models/churn.pkl", 734_003),
    ];
    e.extend(sim.run_task("evaluate_model"));
    e.extend(sim.run_task(LONG));
    sim.commit(e);
    Sim::sleep(180);
    let e = vec![
        sim.done("evaluate_model"),
        sim.metric("evaluate_model", "precision@10%", "0.61"),
        sim.tr(
            "approve_release",
            TaskState::Pending,
            TaskState::Waiting,
            Reason::Gate,
        ),
    ];
    sim.commit(e);
    Sim::sleep(110);
    let e = vec![
        sim.done(LONG),
        Entry::RunEnded {
            state: RunState::Waiting,
            reason: "approve_release waits for approval".into(),
        },
    ];
    sim.commit(e);
    Sim::sleep(500);
    let mut e = vec![
        Entry::RunResumed {
            user: "bob".into(),
            pid: 6001,
            args: strings(&["wf", "approve", "approve_release", "--note", "…"]),
        },
        Entry::Approval {
            task: "approve_release".into(),
            user: "bob".into(),
            note: Some("Metrics look good — ship it. See INC-1234 & the \"Q3\" plan".into()),
        },
        sim.tr(
            "approve_release",
            TaskState::Waiting,
            TaskState::Pending,
            Reason::Approved,
        ),
    ];
    e.extend(sim.run_task("approve_release"));
    sim.commit(e);
    Sim::sleep(120);
    let mut e = vec![sim.done("approve_release")];
    e.extend(sim.run_task("notify_team"));
    sim.commit(e);
    Sim::sleep(90);
    let e = vec![
        sim.done("notify_team"),
        Entry::RunEnded {
            state: RunState::Done,
            reason: "all 10 tasks done".into(),
        },
    ];
    sim.commit(e);
    let e = vec![Entry::Prune {
        task: "ingest_events".into(),
        attempt: 1,
        checkpoint_seq: ingest_ckpt,
        path: "data/events.parquet".into(),
        hash: fake_hash("data/events.parquet"),
        bytes: 50_331_648,
        policy: "7d".into(),
    }];
    sim.commit(e);
    sim.finish()
}

fn sample() -> &'static (RunSnapshot, Vec<Record>) {
    static SAMPLE: OnceLock<(RunSnapshot, Vec<Record>)> = OnceLock::new();
    SAMPLE.get_or_init(build_sample)
}

fn sample_html() -> String {
    let (snap, records) = sample();
    let now = records.last().unwrap().at + chrono::Duration::minutes(3);
    run_page(snap, records, now)
}

/// Records built by hand (one run, consecutive seqs), and their replayed state.
fn by_hand(entries: Vec<(i64, Entry)>) -> (RunSnapshot, Vec<Record>) {
    let t0 = DateTime::parse_from_rfc3339("2025-03-14T09:26:53.589Z")
        .unwrap()
        .with_timezone(&Utc);
    let records: Vec<Record> = entries
        .into_iter()
        .enumerate()
        .map(|(i, (ms, entry))| Record {
            seq: 100 + i as u64,
            run: 7,
            at: t0 + chrono::Duration::milliseconds(ms),
            entry,
        })
        .collect();
    let snap = replay(&records).unwrap();
    (snap, records)
}

fn started(tasks: Vec<TaskPlan>) -> Entry {
    Entry::RunStarted {
        workflow: "wf".into(),
        file: "wf.toml".into(),
        user: "u".into(),
        host: "h".into(),
        pid: 1,
        args: vec![],
        tasks,
    }
}

fn tr(task: &str, attempt: u32, from: TaskState, to: TaskState, reason: Reason) -> Entry {
    Entry::Transition {
        task: task.into(),
        attempt,
        from,
        to,
        reason,
        exit_code: None,
    }
}

fn rows(html: &str) -> usize {
    html.matches("<g class=\"row\"").count()
}

/// Everything the page refers to is inside it.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "http://", "https://", "<script", "<link", "<iframe", "<img", "@import", "src=",
        "url(http", "url(//",
    ] {
        assert!(!lower.contains(bad), "the page contains `{bad}`");
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn sample_is_self_contained_and_complete() {
    let html = sample_html();
    let (snap, records) = sample();
    assert_self_contained(&html);
    assert_eq!(rows(&html), snap.tasks.len());
    assert_eq!(snap.run.state, RunState::Done);
    // Every attempt is a bar with a tooltip (the legend, before the chart, has one of each).
    let chart = html.split("<div class=\"chart\">").nth(1).unwrap();
    let chart = chart.split("</svg>").next().unwrap();
    let attempts: u32 = snap.tasks.iter().map(|t| t.attempts).sum();
    assert_eq!(chart.matches("<g class=\"att ").count(), attempts as usize);
    assert_eq!(chart.matches("<g class=\"att int\"").count(), 1);
    assert_eq!(chart.matches("<g class=\"att failed\"").count(), 1);
    assert_eq!(chart.matches("<g class=\"wait retry\"").count(), 1);
    assert_eq!(chart.matches("<g class=\"wait gate\"").count(), 1);
    assert_eq!(chart.matches("<g class=\"mark cache\"").count(), 1);
    assert_eq!(chart.matches("<g class=\"f-resume\"").count(), 2);
    assert!(chart.contains("resumed by carol"));
    assert!(chart.contains("resumed by bob"));
    assert!(chart.contains("exit code: 2"));
    assert!(chart.contains("retry 1 of 2"));
    // The long name is cut in its row, and whole in its tooltip and the table.
    assert!(html.contains(&format!("<title>{LONG}\n")));
    assert!(html.contains("publish_dashboard_snapshot_to_t"));
    assert!(html.contains('…'));
    // Checkpoints, the prune, metrics, the approval, and every record in the journal list.
    assert!(html.contains("48.0 MiB"));
    assert!(html.contains("policy <code>7d</code>"));
    assert!(html.contains("accuracy") && html.contains("0.912"));
    assert!(
        html.contains("Metrics look good — ship it. See INC-1234 &amp; the &quot;Q3&quot; plan")
    );
    assert!(html.contains("<details>"));
    assert_eq!(
        html.matches("<tr><td class=\"num muted\">").count(),
        records.len()
    );
    assert!(html.contains("UTC"));
    assert!(!html.contains("still running"));
}

#[test]
fn journal_text_is_escaped() {
    let evil = "<script>alert(1)</script>";
    let name = "t<b>\"x\"&'y'";
    let (mut snap, mut records) = by_hand(vec![
        (
            0,
            Entry::RunStarted {
                workflow: format!("wf{evil}"),
                file: "a&b.toml".into(),
                user: "<u>".into(),
                host: "h\"><img src=x>".into(),
                pid: 1,
                args: strings(&["wf", "run", "--note", evil]),
                tasks: vec![plan(name, Some("o'<wner>"), 0, true)],
            },
        ),
        (
            5,
            tr(
                name,
                0,
                TaskState::Pending,
                TaskState::Waiting,
                Reason::Gate,
            ),
        ),
        (
            900,
            Entry::Rejection {
                task: name.into(),
                user: "<eve>".into(),
                note: evil.into(),
            },
        ),
        (
            900,
            tr(
                name,
                0,
                TaskState::Waiting,
                TaskState::Failed,
                Reason::Rejected(evil.into()),
            ),
        ),
        (
            901,
            Entry::Metric {
                task: name.into(),
                attempt: 0,
                key: "<k>".into(),
                value: "<img src=x onerror=alert(1)> https://evil.example/".into(),
            },
        ),
        (
            902,
            Entry::Checkpoint {
                task: name.into(),
                attempt: 0,
                path: "out/<a&b>\".csv".into(),
                hash: "<hash>".into(),
                bytes: 10,
                retention_secs: 1,
                expires_at: Utc::now(),
            },
        ),
        (
            903,
            Entry::RunEnded {
                state: RunState::Failed,
                reason: format!("rejected: {evil}"),
            },
        ),
    ]);
    // Control characters are not valid in HTML text.
    snap.run.reason.push('\u{0}');
    records.push(Record {
        seq: 999,
        run: 7,
        at: records[0].at,
        entry: Entry::Metric {
            task: name.into(),
            attempt: 0,
            key: "ctl".into(),
            value: "a\u{1b}[31mb".into(),
        },
    });
    let html = run_page(&snap, &records, Utc::now());
    assert!(!html.contains("<script"), "unescaped script");
    assert!(!html.contains("<img"), "unescaped img");
    assert!(!html.contains("<b>\""), "unescaped task name");
    assert!(!html.contains("<eve>") && !html.contains("<u>") && !html.contains("<k>"));
    assert!(!html.contains('\u{0}') && !html.contains('\u{1b}'));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("t&lt;b&gt;&quot;x&quot;&amp;&#39;y&#39;"));
    assert!(html.contains("out/&lt;a&amp;b&gt;&quot;.csv"));
    // A URL in journal text is text, never a link or a resource.
    assert!(html.contains("https://evil.example/"));
    assert!(!html.contains("href=\"http"));
    assert_eq!(rows(&html), 1);
    assert!(html.contains("rejected by <b>&lt;eve&gt;</b>"));
}

fn two_hundred() -> (RunSnapshot, Vec<Record>) {
    let names: Vec<String> = (0..200).map(|i| format!("shard_{i:03}_load")).collect();
    let tasks = names
        .iter()
        .enumerate()
        .map(|(i, n)| plan(n, Some(["team-a", "team-b"][i % 2]), 1, false))
        .collect();
    let mut entries = vec![(0, started(tasks))];
    for (i, n) in names.iter().enumerate() {
        let s = (i as i64 % 20) * 1500;
        entries.push((
            s,
            tr(
                n,
                1,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            ),
        ));
        let (to, reason) = if i % 37 == 5 {
            (TaskState::Failed, Reason::Exit(1))
        } else {
            (TaskState::Done, Reason::Succeeded)
        };
        entries.push((
            s + 1000 + (i as i64 * 7919) % 9000,
            tr(n, 1, TaskState::Running, to, reason),
        ));
    }
    entries.sort_by_key(|(ms, _)| *ms);
    by_hand(entries)
}

#[test]
fn two_hundred_tasks() {
    let (snap, records) = two_hundred();
    let html = run_page(&snap, &records, Utc::now());
    assert_self_contained(&html);
    assert_eq!(rows(&html), 200);
    // Rows stay readable: the chart grows downwards, about 20 px a row.
    let height: f64 = html
        .split("<svg viewBox=\"0 0 1200 ")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(height >= 200.0 * 20.0, "height {height}");
    // The axis is repeated below such a long chart.
    assert_eq!(html.matches("class=\"tick\" x=\"266.0\"").count(), 2);
}

#[test]
fn zero_length_run_of_one_cached_task() {
    let (snap, records) = by_hand(vec![
        (0, started(vec![plan("only", None, 0, false)])),
        (
            0,
            tr(
                "only",
                0,
                TaskState::Pending,
                TaskState::Done,
                Reason::CacheHit,
            ),
        ),
        (
            0,
            Entry::RunEnded {
                state: RunState::Done,
                reason: String::new(),
            },
        ),
    ]);
    let html = run_page(&snap, &records, Utc::now());
    assert_self_contained(&html);
    assert_eq!(rows(&html), 1);
    assert!(html.contains(
        "<dt>Duration</dt><dd>0ms <span class=\"muted\">since it started · 0ms running</span>"
    ));
    assert!(html.contains("<g class=\"mark cache\""));
    assert!(!html.contains("NaN") && !html.contains("inf"));
}

fn still_running() -> (RunSnapshot, Vec<Record>) {
    by_hand(vec![
        (
            0,
            started(vec![
                plan("long_job", None, 0, false),
                plan("gate", Some("ops"), 0, true),
            ]),
        ),
        (
            10,
            tr(
                "long_job",
                1,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            ),
        ),
        (
            15,
            Entry::Spawned {
                task: "long_job".into(),
                attempt: 1,
                pid: 777,
                pid_start: None,
            },
        ),
        (
            20,
            tr(
                "gate",
                0,
                TaskState::Pending,
                TaskState::Waiting,
                Reason::Gate,
            ),
        ),
    ])
}

#[test]
fn running_attempts_and_open_gates_end_now() {
    let (snap, records) = still_running();
    let now = records[0].at + chrono::Duration::minutes(95);
    let html = run_page(&snap, &records, now);
    assert_self_contained(&html);
    assert!(html.contains("still running at"));
    assert!(html.contains("pid: 777"));
    assert!(html.contains("still waiting at"));
    assert!(html.contains("awaiting approval"));
    assert!(html.contains("<g class=\"f-now\""));
    assert!(html.contains("1h 34m") || html.contains("1h 35m"));
    // Hour-scale ticks.
    assert!(html.contains(">1h<") || html.contains(">1h30m<"));
}

#[test]
fn an_abandoned_attempt_is_interrupted_and_a_crash_gap_is_shown() {
    let (snap, records) = by_hand(vec![
        (0, started(vec![plan("a", None, 0, false)])),
        (
            0,
            tr(
                "a",
                1,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            ),
        ),
        (
            60_000,
            tr(
                "a",
                1,
                TaskState::Running,
                TaskState::Failed,
                Reason::Interrupted("the run was abandoned".into()),
            ),
        ),
        (
            60_000,
            Entry::RunEnded {
                state: RunState::Failed,
                reason: "abandoned by u".into(),
            },
        ),
    ]);
    let html = run_page(&snap, &records, Utc::now());
    assert!(html.contains("<g class=\"att int\""));
    assert!(html.contains("\ninterrupted (the run was abandoned) → failed\n"));
}

#[test]
fn lost_time_and_changed_outputs() {
    let (snap, records) = by_hand(vec![
        (
            0,
            started(vec![plan("a", None, 0, false), plan("b", None, 0, false)]),
        ),
        (
            0,
            tr(
                "a",
                1,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            ),
        ),
        (
            0,
            tr(
                "b",
                1,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            ),
        ),
        (
            1_000,
            tr(
                "b",
                1,
                TaskState::Running,
                TaskState::Done,
                Reason::Succeeded,
            ),
        ),
        (
            1_500,
            tr(
                "b",
                1,
                TaskState::Done,
                TaskState::Pending,
                Reason::OutputsChanged("out.csv is missing".into()),
            ),
        ),
        // wf died after 1.5 s; the resume at 60 s finds `a` cut short.
        (
            60_000,
            Entry::RunResumed {
                user: "v".into(),
                pid: 9,
                args: vec![],
            },
        ),
        (
            60_000,
            tr(
                "a",
                1,
                TaskState::Running,
                TaskState::Pending,
                Reason::Interrupted("wf stopped during the attempt".into()),
            ),
        ),
    ]);
    let html = run_page(&snap, &records, Utc::now());
    assert!(html.contains("<rect class=\"lost\""));
    assert!(html.contains("its last journal record before that was at"));
    assert!(html.contains("<g class=\"mark changed\""));
    assert!(html.contains("out.csv is missing"));
    // Without records, the page still renders from the state alone.
    let empty = run_page(&snap, &[], Utc::now());
    assert_self_contained(&empty);
    assert_eq!(rows(&empty), 2);
}

#[test]
fn formats() {
    assert_eq!(human_ms(0), "0ms");
    assert_eq!(human_ms(-5), "0ms");
    assert_eq!(human_ms(999), "999ms");
    assert_eq!(human_ms(3_250), "3.2s");
    assert_eq!(human_ms(42_000), "42s");
    assert_eq!(human_ms(245_000), "4m 05s");
    assert_eq!(human_ms(7_380_000), "2h 03m");
    assert_eq!(human_ms(273_600_000), "3d 4h");
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(50_331_648), "48.0 MiB");
    assert_eq!(
        esc("<a href='x'>&\"</a>"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
    );
    assert_eq!(truncate("abcdef", 4), ("abc…".to_string(), true));
    assert_eq!(truncate("abc", 4), ("abc".to_string(), false));
    assert_eq!(truncate("héllo wörld", 6).0, "héllo…");
    assert_eq!(tick_step(10, 10), 1);
    assert_eq!(tick_step(3_600, 10), 500);
    assert_eq!(tick_step(95 * 60_000, 10), 600_000);
    assert_eq!(tick_step(105 * 60_000, 10), 900_000);
    assert_eq!(tick_step(400 * 86_400_000, 10), 2_592_000_000 * 2);
    assert_eq!(tick_label(0, 500), "0");
    assert_eq!(tick_label(500, 500), "500ms");
    assert_eq!(tick_label(1_500, 500), "1.5s");
    assert_eq!(tick_label(90_000, 30_000), "1m30s");
    assert_eq!(tick_label(5_400_000, 900_000), "1h30m");
    assert_eq!(tick_label(86_400_000 * 2, 43_200_000), "2d");
}

/// `WF_HTML_SAMPLES=/tmp cargo test write_samples` writes pages to look at.
#[test]
fn write_samples() {
    let Some(dir) = std::env::var_os("WF_HTML_SAMPLES") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::write(dir.join("wf-timeline.html"), sample_html()).unwrap();
    // The same run, seen while it waited at its gate.
    let (_, records) = sample();
    let cut = records
        .iter()
        .position(|r| {
            matches!(
                r.entry,
                Entry::RunEnded {
                    state: RunState::Waiting,
                    ..
                }
            )
        })
        .unwrap();
    let part = &records[..=cut];
    let snap = replay(part).unwrap();
    let now = part[cut].at + chrono::Duration::milliseconds(700);
    std::fs::write(
        dir.join("wf-timeline-waiting.html"),
        run_page(&snap, part, now),
    )
    .unwrap();
    let (snap, records) = two_hundred();
    let html = run_page(&snap, &records, Utc::now());
    std::fs::write(dir.join("wf-timeline-200.html"), html).unwrap();
    let (snap, records) = by_hand(vec![
        (0, started(vec![plan("only", None, 0, false)])),
        (
            0,
            tr(
                "only",
                0,
                TaskState::Pending,
                TaskState::Done,
                Reason::CacheHit,
            ),
        ),
        (
            0,
            Entry::RunEnded {
                state: RunState::Done,
                reason: String::new(),
            },
        ),
    ]);
    std::fs::write(
        dir.join("wf-timeline-tiny.html"),
        run_page(&snap, &records, Utc::now()),
    )
    .unwrap();
    let (snap, records) = still_running();
    let now = records[0].at + chrono::Duration::minutes(95);
    std::fs::write(
        dir.join("wf-timeline-running.html"),
        run_page(&snap, &records, now),
    )
    .unwrap();
}

mod hostile;
