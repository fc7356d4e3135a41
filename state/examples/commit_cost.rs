//! What durability costs: commits 2N task transitions through the journal — one per commit
//! without fsync (kill -9 safe only), one per commit with fsync, and with fsync in group commits of
//! two as the engine journals a chain — side by side in one process, and prints the time per
//! transition of each.
//!
//! `cargo run --release -p wf-state --example commit_cost -- [N] [DIR]` (DIR: where to write;
//! default a temporary directory — use a directory on the disk you care about).

use std::time::Instant;

use wf_state::{Access, Entry, Reason, Store, TaskPlan, TaskState};

/// Seconds per transition: each in its own commit, or (`group`) as the engine commits a chain —
/// a task's `done` together with the next task's `running`.
fn run(
    dir: &std::path::Path,
    n: u32,
    fsync: bool,
    group: bool,
) -> Result<f64, Box<dyn std::error::Error>> {
    let root = dir.join(format!("{fsync}-{group}"));
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
    let tr = |i: u32, from, to, reason| Entry::Transition {
        task: format!("t{i}"),
        attempt: 1,
        from,
        to,
        reason,
        exit_code: None,
    };
    let start = Instant::now();
    if group {
        store.commit(
            run,
            vec![tr(
                0,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            )],
        )?;
        for i in 0..n {
            let mut batch = vec![tr(
                i,
                TaskState::Running,
                TaskState::Done,
                Reason::Succeeded,
            )];
            if i + 1 < n {
                batch.push(tr(
                    i + 1,
                    TaskState::Pending,
                    TaskState::Running,
                    Reason::Started,
                ));
            }
            store.commit(run, batch)?;
        }
    } else {
        for i in 0..n {
            for (from, to, reason) in [
                (TaskState::Pending, TaskState::Running, Reason::Started),
                (TaskState::Running, TaskState::Done, Reason::Succeeded),
            ] {
                store.commit(run, vec![tr(i, from, to, reason)])?;
            }
        }
    }
    Ok(start.elapsed().as_secs_f64() / f64::from(2 * n))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(500);
    let tmp = tempfile::tempdir_in(args.next().unwrap_or_else(|| ".".into()))?;
    let nosync = run(tmp.path(), n, false, false)?;
    let sync = run(tmp.path(), n, true, false)?;
    let grouped = run(tmp.path(), n, true, true)?;
    println!(
        "{} transitions each: one per commit without fsync {:.1} µs, with fsync {:.1} µs \
         (×{:.1}); group commit (done + next running) with fsync {:.1} µs per transition",
        2 * n,
        nosync * 1e6,
        sync * 1e6,
        sync / nosync,
        grouped * 1e6
    );
    Ok(())
}
