//! Property: the index (layout 2) answers exactly what the record log says. Several runs commit
//! in random interleavings — so a run's records are scattered over many spans, and chunks of
//! spans and of checkpoint rows fill and overflow — with checkpoints, fingerprints and, through
//! multi-run batches like `wf gc`'s, prunes. Then every query is checked against a derivation
//! from the whole log, before and after the index is thrown away and rebuilt from the log.

use std::collections::HashMap;
use std::path::Path;

use proptest::prelude::*;
use wf_state::checkpoints::Located;
use wf_state::machine;
use wf_state::{Access, Entry, Reason, Record, RunId, StateError, Store, TaskPlan, TaskState};

fn started(tasks: usize) -> Entry {
    Entry::RunStarted {
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
    }
}

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

/// Per run, what the test drives: its task count and where each task is.
struct Sim {
    tasks: usize,
    /// (task index, attempt) of the task running now, if any.
    running: Option<(usize, u32)>,
    next_task: usize,
}

/// One step of a run: start the next task, add a checkpoint / metric / fingerprint to the
/// running one, or finish it.
fn step(run: &mut Sim, pick: u8, n: u64) -> Vec<Entry> {
    match run.running {
        None if run.next_task < run.tasks => {
            let t = format!("t{}", run.next_task);
            run.running = Some((run.next_task, 1));
            run.next_task += 1;
            vec![Entry::Transition {
                task: t,
                attempt: 1,
                from: TaskState::Pending,
                to: TaskState::Running,
                reason: Reason::Started,
                exit_code: None,
            }]
        }
        None => Vec::new(),
        Some((i, a)) => {
            let task = format!("t{i}");
            match pick % 8 {
                0..=3 => vec![Entry::Checkpoint {
                    task,
                    attempt: a,
                    path: format!("out{}", pick % 3),
                    // Few distinct contents, so objects are shared across runs.
                    hash: format!("{:064x}", n % 7),
                    bytes: n,
                    retention_secs: 60,
                    expires_at: chrono::Utc::now(),
                }],
                4 => vec![Entry::Metric {
                    task,
                    attempt: a,
                    key: "rows".into(),
                    value: n.to_string(),
                }],
                5 => vec![Entry::Fingerprint {
                    task,
                    attempt: a,
                    fingerprint: format!("{:016x}", n % 5),
                }],
                6 if n.is_multiple_of(2) => vec![Entry::CacheDecision {
                    task,
                    attempt: a,
                    hit: n.is_multiple_of(4),
                    why: "w".into(),
                    // Sometimes none: the same as the task's previous ones.
                    parts: if n.is_multiple_of(3) {
                        Vec::new()
                    } else {
                        vec![("input:x".into(), (n % 7).to_string())]
                    },
                }],
                _ => {
                    run.running = None;
                    vec![Entry::Transition {
                        task,
                        attempt: a,
                        from: TaskState::Running,
                        to: TaskState::Done,
                        reason: Reason::Succeeded,
                        exit_code: Some(0),
                    }]
                }
            }
        }
    }
}

/// The checkpoints of each run as the log says: rows with their prune applied.
fn derived_checkpoints(log: &[Record]) -> HashMap<RunId, Vec<(u64, String, bool)>> {
    let mut out: HashMap<RunId, Vec<(u64, String, bool)>> = HashMap::new();
    for r in log {
        match &r.entry {
            Entry::Checkpoint { hash, .. } => {
                out.entry(r.run)
                    .or_default()
                    .push((r.seq, hash.clone(), false))
            }
            Entry::Prune { checkpoint_seq, .. } => {
                if let Some(row) = out
                    .get_mut(&r.run)
                    .and_then(|v| v.iter_mut().find(|c| c.0 == *checkpoint_seq))
                {
                    row.2 = true;
                }
            }
            _ => {}
        }
    }
    out
}

fn rows(v: &[Located]) -> Vec<(u64, String, bool)> {
    v.iter()
        .map(|c| (c.seq, c.row.hash.clone(), c.row.pruned.is_some()))
        .collect()
}

/// Every query of the index against the log.
fn check(root: &Path, runs: &[RunId]) -> Result<(), TestCaseError> {
    let log = wf_state::wal::read_from(&root.join("journal.log"), 0)
        .map_err(fail)?
        .records;
    let mut s = open(root, Access::Read)?;
    let want = derived_checkpoints(&log);
    let mut all_rows = Vec::new();
    for &run in runs {
        let mine: Vec<Record> = log.iter().filter(|r| r.run == run).cloned().collect();
        prop_assert_eq!(
            &s.records(run).map_err(fail)?,
            &mine,
            "records of run {}",
            run
        );
        let replayed = machine::replay(&mine).map_err(fail)?;
        prop_assert_eq!(s.snapshot(run).map_err(fail)?, Some(replayed.clone()));
        prop_assert_eq!(s.run(run).map_err(fail)?, Some(replayed.run.clone()));
        let names: Vec<String> = replayed.tasks.iter().map(|t| t.name.clone()).collect();
        prop_assert_eq!(s.task_names(run).map_err(fail)?, names);
        let got = rows(&s.checkpoints(run).map_err(fail)?);
        let expected = want.get(&run).cloned().unwrap_or_default();
        prop_assert_eq!(&got, &expected, "checkpoints of {}", run);
        all_rows.extend(got.into_iter().map(|r| (run, r)));
    }
    // Paging newest first visits every row once, in order.
    all_rows.sort_by_key(|r| std::cmp::Reverse((r.0, r.1 .0)));
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = s.checkpoints_page(before, 7).map_err(fail)?;
        let Some(last) = page.last() else { break };
        before = Some((last.run, last.seq));
        paged.extend(
            page.iter()
                .map(|c| (c.run, (c.seq, c.row.hash.clone(), c.row.pruned.is_some()))),
        );
    }
    prop_assert_eq!(paged, all_rows);
    // The cache answers the latest done... of the latest journaled fingerprint.
    let mut latest: HashMap<String, (RunId, u32, String)> = HashMap::new();
    for r in &log {
        if let Entry::Fingerprint {
            task,
            attempt,
            fingerprint,
        } = &r.entry
        {
            latest.insert(fingerprint.clone(), (r.run, *attempt, task.clone()));
        }
    }
    for (fp, (run, attempt, task)) in latest {
        let hit = s
            .cache_lookup(&fp)
            .map_err(fail)?
            .ok_or_else(|| fail("no cache entry"))?;
        prop_assert_eq!((hit.run, hit.attempt, hit.task), (run, attempt, task));
    }
    // A task's latest start and latest cache-key parts, by name, across runs.
    let mut starts: HashMap<String, (RunId, u32)> = HashMap::new();
    let mut parts: HashMap<String, wf_state::codec::Parts> = HashMap::new();
    for r in &log {
        if let Entry::CacheDecision {
            task,
            attempt,
            hit,
            parts: p,
            ..
        } = &r.entry
        {
            if !hit {
                starts.insert(task.clone(), (r.run, *attempt));
            }
            if !p.is_empty() {
                parts.insert(task.clone(), (r.run, *attempt, p.clone()));
            }
        }
    }
    for t in (0..6).map(|i| format!("t{i}")) {
        prop_assert_eq!(s.last_start(&t).map_err(fail)?, starts.get(&t).copied());
        prop_assert_eq!(s.last_parts(&t).map_err(fail)?, parts.get(&t).cloned());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn index_answers_what_the_log_says(
        tasks in prop::collection::vec(1usize..6, 2..4),
        picks in prop::collection::vec((any::<u8>(), any::<u8>()), 50..400),
        reopen_at in 0usize..400,
    ) {
        let dir = tempfile::tempdir().map_err(fail)?;
        let root = dir.path().join(".wf");
        let mut store = open(&root, Access::Write)?;
        store.set_fsync(false);
        let mut runs = Vec::new();
        let mut sims = Vec::new();
        for &n in &tasks {
            let (run, _) = store.begin_run(vec![started(n)]).map_err(fail)?;
            runs.push(run);
            sims.push(Sim { tasks: n, running: None, next_task: 0 });
        }
        for (i, (who, pick)) in picks.iter().enumerate() {
            if i == reopen_at {
                // Close and reopen midway: the writer's caches start cold.
                drop(store);
                store = open(&root, Access::Write)?;
                store.set_fsync(false);
            }
            let k = *who as usize % runs.len();
            if pick % 16 == 15 {
                // A sweep: prune some unpruned checkpoints of every run, in one batch.
                let mut batch = Vec::new();
                for &run in &runs {
                    let prunes: Vec<Entry> = store
                        .checkpoints(run)
                        .map_err(fail)?
                        .into_iter()
                        .filter(|c| c.row.pruned.is_none() && c.seq % 3 == u64::from(*pick % 3))
                        .map(|c| Entry::Prune {
                            task: c.row.task,
                            attempt: c.row.attempt,
                            checkpoint_seq: c.seq,
                            path: c.row.path,
                            hash: c.row.hash,
                            bytes: c.row.bytes,
                            policy: "1m".into(),
                        })
                        .collect();
                    if !prunes.is_empty() {
                        batch.push((run, prunes));
                    }
                }
                store.commit_many(batch).map_err(fail)?;
                continue;
            }
            let mut entries = step(&mut sims[k], *pick, i as u64);
            // Sometimes two steps in one commit.
            if pick % 5 == 0 {
                entries.extend(step(&mut sims[k], pick.wrapping_mul(3), i as u64 + 1));
            }
            if entries.is_empty() {
                store
                    .commit(runs[k], vec![Entry::RunEnded {
                        state: wf_state::RunState::Done,
                        reason: "all done".into(),
                    }])
                    .ok();
                sims[k].next_task = usize::MAX;
                continue;
            }
            store.commit(runs[k], entries).map_err(fail)?;
        }
        drop(store);
        check(&root, &runs)?;
        // Throw the detail index away, then both: rebuilt from the log, they answer the same.
        std::fs::remove_dir_all(root.join("journal/detail")).map_err(fail)?;
        check(&root, &runs)?;
        std::fs::remove_dir_all(root.join("journal")).map_err(fail)?;
        check(&root, &runs)?;
    }
}
