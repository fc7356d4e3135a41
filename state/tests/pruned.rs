//! Property: a sweep's prunes journaled as one `Pruned` record per run give the same state as
//! the same prunes journaled one `Prune` record each — the checkpoint rows (pruned or not, and
//! under which policy), every run's state, and both again after the index is rebuilt from the
//! record log. And a `Pruned` that names a checkpoint of another task, or one that does not
//! exist, is refused whole.

use std::path::Path;

use proptest::prelude::*;
use wf_state::machine;
use wf_state::record::PrunedCheckpoint;
use wf_state::{Access, Entry, Reason, RunId, StateError, Store, TaskPlan, TaskState};

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn open(root: &Path, access: Access) -> Result<Store, TestCaseError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(root, access) {
            Ok(Some(s)) => return Ok(s),
            Ok(None) => return Err(fail("no store")),
            Err(StateError::Busy(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return Err(fail(e)),
        }
    }
}

/// A finished run of `tasks` tasks with `per` checkpoints each; its checkpoints as prunes.
fn run(
    s: &mut Store,
    tasks: usize,
    per: usize,
) -> Result<(RunId, Vec<PrunedCheckpoint>), TestCaseError> {
    let (run, _) = s
        .begin_run(vec![Entry::RunStarted {
            workflow: "w".into(),
            file: "wf.toml".into(),
            user: "u".into(),
            host: "h".into(),
            pid: 1,
            args: vec![],
            tasks: (0..tasks)
                .map(|i| TaskPlan {
                    name: format!("t{i}"),
                    owner: None,
                    idempotent: true,
                    retries: 0,
                    manual: false,
                })
                .collect(),
        }])
        .map_err(fail)?;
    let mut entries = Vec::new();
    for t in 0..tasks {
        let task = format!("t{t}");
        let tr = |from, to, reason| Entry::Transition {
            task: task.clone(),
            attempt: 1,
            from,
            to,
            reason,
            exit_code: None,
        };
        entries.push(tr(TaskState::Pending, TaskState::Running, Reason::Started));
        for k in 0..per {
            entries.push(Entry::Checkpoint {
                task: task.clone(),
                attempt: 1,
                path: format!("out{k}"),
                hash: format!("{:064x}", run * 1000 + (t * per + k) as u64),
                bytes: k as u64 + 1,
                retention_secs: 60,
                expires_at: chrono::Utc::now(),
            });
        }
        entries.push(tr(TaskState::Running, TaskState::Done, Reason::Succeeded));
    }
    let recs = s.commit(run, entries).map_err(fail)?;
    let prunes = recs
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::Checkpoint {
                task,
                attempt,
                path,
                hash,
                bytes,
                ..
            } => Some(PrunedCheckpoint {
                task: task.as_str().into(),
                attempt: *attempt,
                checkpoint_seq: r.seq,
                path: path.as_str().into(),
                hash: hash.clone(),
                bytes: *bytes,
                policy: format!("{}m", r.seq % 7 + 1).into(),
            }),
            _ => None,
        })
        .collect();
    s.commit(
        run,
        vec![Entry::RunEnded {
            state: wf_state::RunState::Done,
            reason: "all tasks done".into(),
        }],
    )
    .map_err(fail)?;
    Ok((run, prunes))
}

type Seen = Vec<(
    RunId,
    Vec<(u64, String, String, bool, Option<String>)>,
    machine::RunSnapshot,
)>;

/// Everything the two ways must agree on.
fn seen(s: &mut Store, runs: &[RunId]) -> Result<Seen, TestCaseError> {
    let mut out = Vec::new();
    for &r in runs {
        let rows = s
            .checkpoints(r)
            .map_err(fail)?
            .into_iter()
            .map(|c| {
                (
                    c.seq,
                    c.row.task,
                    c.row.path,
                    c.row.pruned.is_some(),
                    c.row.pruned.map(|p| p.1),
                )
            })
            .collect();
        let snap = s.snapshot(r).map_err(fail)?.ok_or_else(|| fail("run"))?;
        prop_assert_eq!(
            &machine::replay(&s.records(r).map_err(fail)?).map_err(fail)?,
            &snap
        );
        // The two stores were written at different moments: times aside, the same state.
        let mut snap = snap;
        let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        snap.run.started_at = epoch;
        snap.run.ended_at = None;
        for t in &mut snap.tasks {
            t.started_at = None;
            t.ended_at = None;
        }
        out.push((r, rows, snap));
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, .. ProptestConfig::default() })]

    #[test]
    fn batched_prunes_give_the_state_single_ones_give(
        shape in prop::collection::vec((1usize..4, 1usize..4), 1..6),
        pick in prop::collection::vec(any::<bool>(), 64),
        pages in 1usize..4,
    ) {
        let dir = tempfile::tempdir().map_err(fail)?;
        let (a, b) = (dir.path().join("a/.wf"), dir.path().join("b/.wf"));
        let mut results = Vec::new();
        for (root, batched) in [(&a, false), (&b, true)] {
            let mut s = open(root, Access::Write)?;
            s.set_fsync(false);
            let mut runs = Vec::new();
            let mut chosen: Vec<(RunId, PrunedCheckpoint)> = Vec::new();
            let mut i = 0;
            for &(tasks, per) in &shape {
                let (r, prunes) = run(&mut s, tasks, per)?;
                runs.push(r);
                for p in prunes {
                    if pick[i % pick.len()] {
                        chosen.push((r, p));
                    }
                    i += 1;
                }
            }
            // The sweep's pages: each page one atomic batch over several runs.
            let size = chosen.len().div_ceil(pages).max(1);
            for page in chosen.chunks(size) {
                let mut batch: Vec<(RunId, Vec<Entry>)> = Vec::new();
                for (r, p) in page {
                    let e = if batched {
                        match batch.iter_mut().find(|(run, _)| run == r) {
                            Some((_, es)) => {
                                if let Some(Entry::Pruned { checkpoints, .. }) = es.first_mut() {
                                    checkpoints.push(p.clone());
                                }
                                continue;
                            }
                            None => Entry::Pruned { checkpoints: vec![p.clone()], logs: vec![] },
                        }
                    } else {
                        Entry::Prune {
                            task: p.task.to_string(),
                            attempt: p.attempt,
                            checkpoint_seq: p.checkpoint_seq,
                            path: p.path.to_string(),
                            hash: p.hash.clone(),
                            bytes: p.bytes,
                            policy: p.policy.to_string(),
                        }
                    };
                    batch.push((*r, vec![e]));
                }
                s.commit_many(batch).map_err(fail)?;
            }
            let now = seen(&mut s, &runs)?;
            drop(s);
            // The same after the index is rebuilt from the record log.
            std::fs::remove_dir_all(root.join("journal")).map_err(fail)?;
            let mut s = open(root, Access::Read)?;
            prop_assert_eq!(&seen(&mut s, &runs)?, &now);
            results.push(now);
        }
        prop_assert_eq!(&results[0], &results[1]);
    }
}

#[test]
fn a_pruned_record_naming_a_wrong_checkpoint_is_refused_whole() -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let root = dir.path().join(".wf");
    let mut s = open(&root, Access::Write)?;
    let (r, prunes) = run(&mut s, 2, 2)?;
    let log = root.join("journal.log");
    let before = std::fs::metadata(&log).map_err(fail)?.len();
    let good = prunes[0].clone();
    let mut other_task = prunes[1].clone();
    other_task.task = "t1".into();
    let mut missing = prunes[1].clone();
    missing.checkpoint_seq += 1000;
    let mut other_attempt = prunes[1].clone();
    other_attempt.attempt = 2;
    for bad in [other_task, missing, other_attempt] {
        let e = Entry::Pruned {
            checkpoints: vec![good.clone(), bad],
            logs: vec![],
        };
        assert!(s.commit_many(vec![(r, vec![e])]).is_err());
    }
    // A log of a task the run does not have.
    let e = Entry::Pruned {
        checkpoints: vec![],
        logs: vec![wf_state::record::PrunedLog {
            task: "nope".into(),
            attempt: 1,
            bytes: 1,
            policy: "7d".into(),
        }],
    };
    assert!(s.commit_many(vec![(r, vec![e])]).is_err());
    assert_eq!(
        std::fs::metadata(&log).map_err(fail)?.len(),
        before,
        "nothing journaled"
    );
    assert!(s
        .checkpoints(r)
        .map_err(fail)?
        .iter()
        .all(|c| c.row.pruned.is_none()));
    Ok(())
}
