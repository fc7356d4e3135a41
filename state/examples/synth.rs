//! Writes a realistic state directory of N finished runs of a homework-like workflow (4 tasks,
//! metrics, checkpoints with the 7/14/30/90-day classes), fast (fsync off, many runs per batch),
//! so `wf --state-dir DIR history | status | gc` can be measured at scale without hours of runs.
//!
//! `cargo run --release -p wf-state --example synth -- --runs 100000 --out DIR [--checkpoints K]`
//! (K checkpoints per task, default 1: 100,000 runs give 400,000 checkpoint records).

use wf_state::{Access, Entry, Reason, RunState, Store, TaskPlan, TaskState};

const TASKS: [(&str, &str, u64); 4] = [
    ("ingest", "data_eng", 7),
    ("clean", "data_eng", 14),
    ("train_or_score", "ml_eng", 30),
    ("report", "analyst", 90),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut runs = 1000u64;
    let mut out = None;
    let mut per_task = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).ok_or("--runs N")?,
            "--out" => out = args.next(),
            "--checkpoints" => {
                per_task = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--checkpoints K")?
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let out = out.ok_or("--out DIR is required")?;
    let root = std::path::Path::new(&out).join(".wf");
    let mut store = Store::open(&root, Access::Write)?.ok_or("could not create the state")?;
    store.set_fsync(false);
    let started = std::time::Instant::now();
    let mut checkpoints = 0u64;
    for i in 0..runs {
        let plan = TASKS
            .iter()
            .map(|(name, owner, _)| TaskPlan {
                name: name.to_string(),
                owner: Some(owner.to_string()),
                idempotent: true,
                retries: 1,
                manual: *name == "report",
            })
            .collect();
        let (run, _) = store.begin_run(vec![Entry::RunStarted {
            workflow: "homework".into(),
            file: "wf.toml".into(),
            user: "synth".into(),
            host: "synth".into(),
            pid: 1,
            args: vec!["wf".into(), "run".into()],
            tasks: plan,
        }])?;
        let mut entries = Vec::new();
        for (t, (name, _, days)) in TASKS.iter().enumerate() {
            let tr = |from, to, reason| Entry::Transition {
                task: name.to_string(),
                attempt: 1,
                from,
                to,
                reason,
                exit_code: None,
            };
            if *name == "report" {
                entries.push(Entry::Transition {
                    task: name.to_string(),
                    attempt: 0,
                    from: TaskState::Pending,
                    to: TaskState::Waiting,
                    reason: Reason::Gate,
                    exit_code: None,
                });
                entries.push(Entry::Approval {
                    task: name.to_string(),
                    user: "ana".into(),
                    note: None,
                });
                entries.push(Entry::Transition {
                    task: name.to_string(),
                    attempt: 0,
                    from: TaskState::Waiting,
                    to: TaskState::Pending,
                    reason: Reason::Approved,
                    exit_code: None,
                });
            }
            entries.push(tr(TaskState::Pending, TaskState::Running, Reason::Started));
            entries.push(Entry::Spawned {
                task: name.to_string(),
                attempt: 1,
                pid: 1000 + t as u32,
                pid_start: Some(1),
            });
            entries.push(Entry::Metric {
                task: name.to_string(),
                attempt: 1,
                key: "rows".into(),
                value: (40 + i % 7).to_string(),
            });
            for k in 0..per_task {
                checkpoints += 1;
                entries.push(Entry::Checkpoint {
                    task: name.to_string(),
                    attempt: 1,
                    path: format!("data/{name}.{k}.json"),
                    hash: blake3::hash(format!("{i}/{name}/{k}").as_bytes())
                        .to_hex()
                        .to_string(),
                    bytes: 2048,
                    retention_secs: days * 86400,
                    expires_at: chrono::Utc::now() + chrono::Duration::days(*days as i64),
                });
            }
            entries.push(Entry::Transition {
                task: name.to_string(),
                attempt: 1,
                from: TaskState::Running,
                to: TaskState::Done,
                reason: Reason::Succeeded,
                exit_code: Some(0),
            });
        }
        entries.push(Entry::RunEnded {
            state: RunState::Done,
            reason: "all tasks done".into(),
        });
        store.commit(run, entries)?;
    }
    store.set_fsync(true);
    println!(
        "wrote {runs} runs ({checkpoints} checkpoints) to {} in {:.1}s",
        root.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
