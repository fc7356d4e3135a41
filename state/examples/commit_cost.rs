//! What durability costs: commits N task transitions through the journal, once with fsync (as wf
//! runs) and once without (kill -9 safe only), side by side in one process, and prints the time
//! per commit of each and their ratio.
//!
//! `cargo run --release -p wf-state --example commit_cost -- [N] [DIR]` (DIR: where to write;
//! default a temporary directory — use a directory on the disk you care about).

use std::time::Instant;

use wf_state::{Access, Entry, Reason, Store, TaskPlan, TaskState};

fn run(dir: &std::path::Path, n: u32, fsync: bool) -> Result<f64, Box<dyn std::error::Error>> {
    let root = dir.join(if fsync { "sync" } else { "nosync" });
    let mut store = Store::open(&root, Access::Write)?.ok_or("no store")?;
    store.set_fsync(fsync);
    let tasks = (0..n)
        .map(|i| TaskPlan {
            name: format!("t{i}"),
            owner: None,
            idempotent: true,
            retries: 0,
            manual: false,
        })
        .collect();
    let (run, _) = store.begin_run(vec![Entry::RunStarted {
        workflow: "bench".into(),
        file: "wf.toml".into(),
        user: "u".into(),
        host: "h".into(),
        pid: 1,
        args: vec![],
        tasks,
    }])?;
    let start = Instant::now();
    for i in 0..n {
        let task = format!("t{i}");
        for (from, to, reason) in [
            (TaskState::Pending, TaskState::Running, Reason::Started),
            (TaskState::Running, TaskState::Done, Reason::Succeeded),
        ] {
            store.commit(
                run,
                vec![Entry::Transition {
                    task: task.clone(),
                    attempt: 1,
                    from,
                    to,
                    reason,
                    exit_code: None,
                }],
            )?;
        }
    }
    Ok(start.elapsed().as_secs_f64() / f64::from(2 * n))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(500);
    let tmp = tempfile::tempdir_in(args.next().unwrap_or_else(|| ".".into()))?;
    let nosync = run(tmp.path(), n, false)?;
    let sync = run(tmp.path(), n, true)?;
    println!(
        "{} commits each: without fsync {:.1} µs/commit, with fsync {:.1} µs/commit (×{:.1})",
        2 * n,
        nosync * 1e6,
        sync * 1e6,
        sync / nosync
    );
    Ok(())
}
