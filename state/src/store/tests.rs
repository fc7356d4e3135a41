//! The store's unit tests: commit, reopen, replay, refusals.

use std::path::Path;

use chrono::Utc;

use super::{precheck, Access, Store, LOG_FILE, VERSION_FILE};
use crate::error::StateError;
use crate::machine;
use crate::record::{Entry, Reason, TaskPlan, TaskState};

fn started(tasks: &[&str]) -> Entry {
    Entry::RunStarted {
        workflow: "w".into(),
        file: "wf.toml".into(),
        user: "u".into(),
        host: "h".into(),
        pid: 1,
        args: vec![],
        tasks: tasks
            .iter()
            .map(|n| TaskPlan {
                name: n.to_string(),
                owner: None,
                idempotent: true,
                retries: 0,
                manual: false,
            })
            .collect(),
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

#[test]
fn commit_reopen_and_replay() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join(".wf");
    let run;
    {
        let mut s = Store::open(&root, Access::Write)?.ok_or("no store")?;
        let (r, _) = s.begin_run(vec![started(&["a", "b"])])?;
        run = r;
        s.commit(
            run,
            vec![tr(
                "a",
                1,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            )],
        )?;
        // An illegal entry is refused and nothing of its batch is written.
        let bad = s.commit(
            run,
            vec![
                tr(
                    "a",
                    1,
                    TaskState::Running,
                    TaskState::Done,
                    Reason::Succeeded,
                ),
                tr(
                    "b",
                    1,
                    TaskState::Running,
                    TaskState::Done,
                    Reason::Succeeded,
                ),
            ],
        );
        assert!(bad.is_err());
        assert_eq!(
            s.snapshot(run)?.ok_or("run")?.tasks[0].state,
            TaskState::Running
        );
    }
    let mut s = Store::open(&root, Access::Write)?.ok_or("no store")?;
    let snap = s.snapshot(run)?.ok_or("run")?;
    assert_eq!(snap.tasks[0].state, TaskState::Running);
    assert_eq!(snap.tasks[0].attempts, 1);
    assert_eq!(machine::replay(&s.records(run)?)?, snap);
    assert_eq!(s.active_runs()?.len(), 1);
    assert_eq!(s.last_seq(), 2);
    Ok(())
}

#[test]
fn a_lost_index_is_rebuilt_from_the_record_log() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join(".wf");
    let run;
    {
        let mut s = reopen(&root, Access::Write)?;
        let (r, _) = s.begin_run(vec![started(&["a", "b"])])?;
        run = r;
        s.commit(
            run,
            vec![tr(
                "a",
                1,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            )],
        )?;
    }
    let before = reopen(&root, Access::Read)?.records(run)?;
    // The index is gone: a reader replays the log in memory (and creates nothing)...
    std::fs::remove_dir_all(root.join("journal"))?;
    let mut s = reopen(&root, Access::Read)?;
    assert_eq!(s.records(run)?, before);
    assert_eq!(
        s.snapshot(run)?.ok_or("run")?.tasks[0].state,
        TaskState::Running
    );
    drop(s);
    assert!(!root.join("journal").exists(), "a reader created the index");
    // ... a writer rebuilds it on disk.
    drop(reopen(&root, Access::Write)?);
    assert!(root.join("journal").is_dir());
    assert_eq!(reopen(&root, Access::Read)?.records(run)?, before);
    // A journal without VERSION is not wf's: refused before the index is opened.
    std::fs::remove_file(root.join(VERSION_FILE))?;
    match reopen(&root, Access::Read) {
        Err(StateError::Foreign(_)) => Ok(()),
        other => Err(format!("expected Foreign, got {:?}", other.err()).into()),
    }
}

#[test]
fn a_prune_must_name_its_checkpoint_task_and_attempt() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join(".wf");
    let mut s = reopen(&root, Access::Write)?;
    let (run, _) = s.begin_run(vec![started(&["a"])])?;
    let recs = s.commit(
        run,
        vec![
            tr(
                "a",
                1,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            ),
            Entry::Checkpoint {
                task: "a".into(),
                attempt: 1,
                path: "out".into(),
                hash: "00".repeat(32),
                bytes: 1,
                retention_secs: 60,
                expires_at: Utc::now(),
            },
            tr(
                "a",
                1,
                TaskState::Running,
                TaskState::Done,
                Reason::Succeeded,
            ),
        ],
    )?;
    let cseq = recs[1].seq;
    let prune = |task: &str, attempt: u32, checkpoint_seq: u64| Entry::Prune {
        task: task.into(),
        attempt,
        checkpoint_seq,
        path: "out".into(),
        hash: "00".repeat(32),
        bytes: 1,
        policy: "1m".into(),
    };
    let before = std::fs::metadata(root.join(LOG_FILE))?.len();
    for bad in [
        prune("b", 1, cseq),
        prune("a", 2, cseq),
        prune("a", 1, cseq + 7),
    ] {
        assert!(s.commit_many(vec![(run, vec![bad])]).is_err());
    }
    assert_eq!(
        std::fs::metadata(root.join(LOG_FILE))?.len(),
        before,
        "nothing journaled"
    );
    s.commit_many(vec![(run, vec![prune("a", 1, cseq)])])?;
    assert!(s.checkpoints(run)?[0].row.pruned.is_some());
    Ok(())
}

/// A `Pruned` record of one checkpoint of task `a`'s attempt 1: the one journaled at `seq`.
fn pruned(seq: u64, policy: &str) -> Entry {
    Entry::Pruned {
        checkpoints: vec![crate::record::PrunedCheckpoint {
            task: "a".into(),
            attempt: 1,
            checkpoint_seq: seq,
            path: "p".into(),
            hash: String::new(),
            bytes: 1,
            policy: policy.into(),
        }],
        logs: vec![],
    }
}

/// Open again, waiting while a previous handle of this process still holds the index's lock.
fn reopen(root: &Path, access: Access) -> Result<Store, StateError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(root, access) {
            Ok(Some(s)) => return Ok(s),
            Ok(None) => return Err(StateError::Corrupt("no store".into())),
            Err(StateError::Busy(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn refuses_a_record_log_shorter_than_what_the_index_applied(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join(".wf");
    {
        let mut s = reopen(&root, Access::Write)?;
        s.begin_run(vec![started(&["a"])])?;
    }
    let log = root.join(LOG_FILE);
    let len = std::fs::metadata(&log)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)?
        .set_len(len / 2)?;
    let err = reopen(&root, Access::Read).err().ok_or("opened")?;
    assert!(err.is_unreadable(), "{err}");
    assert!(err.to_string().contains("shorter"), "{err}");
    // A newer VERSION is refused before anything is opened.
    std::fs::write(root.join(VERSION_FILE), "wf-state schema 99\n")?;
    let err = reopen(&root, Access::Read).err().ok_or("opened")?;
    assert!(matches!(err, StateError::Newer(_)), "{err}");
    Ok(())
}

/// Everything the precheck refuses, it refuses without writing a byte: no `lock`, no
/// journal, nothing created or changed in the directory.
#[test]
fn precheck_refuses_without_writing() -> Result<(), Box<dyn std::error::Error>> {
    fn listing(root: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<_> = walk(root);
        v.sort();
        v
    }
    fn walk(d: &Path) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let m = std::fs::symlink_metadata(e.path())
                .map(|m| m.len())
                .unwrap_or(0);
            out.push((e.path().display().to_string(), m));
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path()));
            }
        }
        out
    }
    let d = tempfile::tempdir()?;
    let root = d.path().join(".wf");
    {
        let mut s = Store::open(&root, Access::Write)?.ok_or("no store")?;
        s.begin_run(vec![started(&["a"])])?;
    }
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside)?;
    std::fs::create_dir_all(root.join("objects"))?;
    std::os::unix::fs::symlink(&outside, root.join("objects/tmp"))?;
    let before = listing(&root);
    let err = precheck(&root).err().ok_or("accepted")?;
    assert!(
        err.is_unreadable() && err.to_string().contains("objects/tmp"),
        "{err}"
    );
    assert_eq!(listing(&root), before);
    std::fs::remove_file(root.join("objects/tmp"))?;
    // Damage in the middle of the log, the index intact.
    let log = root.join(LOG_FILE);
    let mut bytes = std::fs::read(&log)?;
    bytes[20] ^= 0x10;
    std::fs::write(&log, &bytes)?;
    let before = listing(&root);
    let err = precheck(&root).err().ok_or("accepted")?;
    assert!(err.to_string().contains("damaged at byte"), "{err}");
    assert!(Store::open(&root, Access::Read).is_err());
    assert_eq!(listing(&root), before);
    bytes[20] ^= 0x10;
    std::fs::write(&log, &bytes)?;
    assert!(precheck(&root).is_ok());
    // A directory of someone else's files.
    let foreign = d.path().join("foreign");
    std::fs::create_dir(&foreign)?;
    std::fs::write(foreign.join("notes.txt"), b"mine")?;
    assert!(matches!(precheck(&foreign), Err(StateError::Foreign(_))));
    assert!(!foreign.join("lock").exists());
    Ok(())
}

/// `checkpoints_visit` gives exactly the rows `checkpoints_page` gives, page by page, newest
/// first — across runs with several chunks of rows, pruned rows included.
#[test]
fn checkpoint_rows_read_in_place_page_as_the_owned_ones() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let root = dir.path().join(".wf");
    let mut s = reopen(&root, Access::Write)?;
    let mut pruned = Vec::new();
    for r in 0..5u32 {
        let (run, _) = s.begin_run(vec![started(&["a", "b"])])?;
        // 0, 70 and 140 checkpoints: a run without rows, and runs of two and three chunks.
        let n = (r % 3) * 70;
        let mut entries = vec![tr(
            "a",
            1,
            TaskState::Pending,
            TaskState::Running,
            Reason::Started,
        )];
        entries.extend((0..n).map(|i| Entry::Checkpoint {
            task: if i % 2 == 0 { "a" } else { "b" }.into(),
            attempt: 1,
            path: format!("out/{i}"),
            hash: format!("{:064x}", u64::from(r) * 1000 + u64::from(i)),
            bytes: u64::from(i),
            retention_secs: 60 + u64::from(i),
            expires_at: Utc::now(),
        }));
        let recs = s.commit(run, entries)?;
        if let Some(c) = recs.get(3) {
            pruned.push((run, c.seq));
            s.commit_many(vec![(
                run,
                vec![Entry::Pruned {
                    checkpoints: vec![crate::record::PrunedCheckpoint {
                        task: "a".into(),
                        attempt: 1,
                        checkpoint_seq: c.seq,
                        path: "out/2".into(),
                        hash: String::new(),
                        bytes: 2,
                        policy: "1m".into(),
                    }],
                    logs: vec![],
                }],
            )])?;
        }
    }
    for limit in [1, 50, 64, 100, 1000] {
        let (mut owned, mut visited) = (Vec::new(), Vec::new());
        let mut before = None;
        loop {
            let page = s.checkpoints_page(before, limit)?;
            let (n, last) = s.checkpoints_visit(before, limit, |run, seq, row| {
                visited.push(crate::checkpoints::Located {
                    run,
                    seq,
                    row: row.to_row(),
                });
                Ok::<(), StateError>(())
            })?;
            assert_eq!(n, page.len());
            assert_eq!(last, page.last().map(|c| (c.run, c.seq)));
            owned.extend(page);
            match last {
                Some(l) => before = Some(l),
                None => break,
            }
        }
        assert_eq!(visited, owned, "limit {limit}");
        assert_eq!(owned.len(), 280);
        let mut places: Vec<(u64, u64)> = owned.iter().map(|c| (c.run, c.seq)).collect();
        let newest_first = places.windows(2).all(|w| w[0] > w[1]);
        assert!(newest_first, "limit {limit}");
        places.retain(|p| pruned.contains(p));
        assert_eq!(places.len(), pruned.len());
        assert!(visited
            .iter()
            .filter(|c| pruned.contains(&(c.run, c.seq)))
            .all(|c| c.row.pruned.as_ref().is_some_and(|(_, p)| p == "1m")));
    }
    Ok(())
}

/// A batch that prunes a row and adds a checkpoint to the same chunk — in either order — writes
/// the chunk with both; a second prune of a row keeps the first; the rows read the same after
/// the index is rebuilt from the record log.
#[test]
fn prunes_and_new_checkpoints_in_one_batch_share_their_chunk(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join(".wf");
    let mut s = reopen(&root, Access::Write)?;
    let (run, _) = s.begin_run(vec![started(&["a"])])?;
    let checkpoint = |path: &str| Entry::Checkpoint {
        task: "a".into(),
        attempt: 1,
        path: path.into(),
        hash: "00".repeat(32),
        bytes: 1,
        retention_secs: 60,
        expires_at: Utc::now(),
    };
    let recs = s.commit(
        run,
        vec![
            tr(
                "a",
                1,
                TaskState::Pending,
                TaskState::Running,
                Reason::Started,
            ),
            checkpoint("one"),
        ],
    )?;
    let one = recs[1].seq;
    // The prune first (its chunk patched as read), then a checkpoint into the same chunk.
    let recs = s.commit(run, vec![pruned(one, "1m"), checkpoint("two")])?;
    let two = recs[1].seq;
    // A checkpoint first (the chunk held as rows), then prunes of a row in it, twice.
    s.commit(
        run,
        vec![checkpoint("three"), pruned(two, "2m"), pruned(two, "3m")],
    )?;
    // A row pruned again in a later batch keeps its first prune.
    s.commit_many(vec![(run, vec![pruned(one, "4m")])])?;
    let rows = |s: &Store| -> Result<Vec<(String, Option<String>)>, StateError> {
        Ok(s.checkpoints(run)?
            .into_iter()
            .map(|c| (c.row.path, c.row.pruned.map(|(_, p)| p)))
            .collect())
    };
    let want = vec![
        ("one".to_string(), Some("1m".to_string())),
        ("two".to_string(), Some("2m".to_string())),
        ("three".to_string(), None),
    ];
    assert_eq!(rows(&s)?, want);
    drop(s);
    std::fs::remove_dir_all(root.join("journal/detail"))?;
    let s = reopen(&root, Access::Write)?;
    assert_eq!(rows(&s)?, want, "rebuilt from the record log");
    Ok(())
}

/// A prune of a row in a run's full last chunk (64 rows), then a checkpoint of the same run (which
/// goes into a new chunk): the chunk read for the checkpoint takes its prune list in, so it must
/// be written again with the prune — every reader, and the index rebuilt from the log, still
/// show the row pruned. (Found in review: the list was removed and the chunk not rewritten.)
#[test]
fn a_prune_in_a_full_chunk_survives_the_next_checkpoint_of_its_run(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join(".wf");
    let mut s = reopen(&root, Access::Write)?;
    let (run, _) = s.begin_run(vec![started(&["a"])])?;
    let checkpoint = |i: usize| Entry::Checkpoint {
        task: "a".into(),
        attempt: 1,
        path: format!("out/{i}"),
        hash: "00".repeat(32),
        bytes: 1,
        retention_secs: 60,
        expires_at: Utc::now(),
    };
    let mut entries = vec![tr(
        "a",
        1,
        TaskState::Pending,
        TaskState::Running,
        Reason::Started,
    )];
    entries.extend((0..64).map(checkpoint));
    let recs = s.commit(run, entries)?;
    let target = recs[10].seq;
    s.commit_many(vec![(run, vec![pruned(target, "7d")])])?;
    s.commit(run, vec![checkpoint(64)])?;
    let pruned = |s: &Store| -> Result<Vec<u64>, StateError> {
        let mut by_rows: Vec<u64> = s
            .checkpoints(run)?
            .into_iter()
            .filter(|c| c.row.pruned.is_some())
            .map(|c| c.seq)
            .collect();
        let mut paged = Vec::new();
        for c in s.checkpoints_page(None, 1000)? {
            if c.row.pruned.is_some() {
                paged.push(c.seq);
            }
        }
        let mut visited = Vec::new();
        s.checkpoints_visit::<StateError>(None, 1000, |_, seq, row| {
            if row.pruned.is_some() {
                visited.push(seq);
            }
            Ok(())
        })?;
        by_rows.sort_unstable();
        paged.sort_unstable();
        visited.sort_unstable();
        assert_eq!(by_rows, paged);
        assert_eq!(by_rows, visited);
        Ok(by_rows)
    };
    assert_eq!(pruned(&s)?, vec![target]);
    drop(s);
    let s = reopen(&root, Access::Write)?;
    assert_eq!(pruned(&s)?, vec![target], "reopened");
    drop(s);
    std::fs::remove_dir_all(root.join("journal/detail"))?;
    let s = reopen(&root, Access::Write)?;
    assert_eq!(pruned(&s)?, vec![target], "rebuilt from the log");
    Ok(())
}

/// Checkpoint rows against a model, through every way a prune reaches them: prunes of chunks the
/// batch does not hold (kept as lists beside the chunk), prunes and new checkpoints of one chunk
/// in one batch (the lists taken into the rows), several batches of prunes on one chunk, a row
/// pruned twice (the first prune kept), a writer reopened, a reader beside it, and the index
/// rebuilt from the record log. After each step, `checkpoints`, `checkpoints_page` and
/// `checkpoints_visit` all give exactly the model's rows.
mod prune_lists {
    use super::*;
    use crate::RunId;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Add n checkpoints to run r (0..3), optionally pruning row k of it in the same batch.
        Add(usize, u8, Option<u16>),
        /// Add checkpoints to run r until its last chunk of rows is exactly full.
        Fill(usize),
        /// Prune these (run, row) pairs (rows modulo the run's rows), in one batch.
        Prune(Vec<(usize, u16)>),
        Reopen,
        Rebuild,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3usize, 1..70u8, proptest::option::of(any::<u16>())).prop_map(|(r, n, k)| Op::Add(r, n, k)),
            4 => proptest::collection::vec((0..3usize, any::<u16>()), 1..30).prop_map(Op::Prune),
            2 => (0..3usize).prop_map(Op::Fill),
            1 => Just(Op::Reopen),
            1 => Just(Op::Rebuild),
        ]
    }

    type Model = Vec<Vec<(u64, String, Option<String>)>>;

    fn check(s: &Store, runs: &[RunId], model: &Model) -> Result<(), TestCaseError> {
        let mut all = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            let got: Vec<(u64, String, Option<String>)> = s
                .checkpoints(*run)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .into_iter()
                .map(|c| (c.seq, c.row.path, c.row.pruned.map(|(_, p)| p)))
                .collect();
            prop_assert_eq!(&got, &model[i], "run {}", run);
            all.extend(
                model[i]
                    .iter()
                    .map(|(seq, p, why)| (*run, *seq, p.clone(), why.clone())),
            );
        }
        all.reverse();
        for limit in [1usize, 7, 1000] {
            let (mut paged, mut visited) = (Vec::new(), Vec::new());
            let mut before = None;
            loop {
                let page = s
                    .checkpoints_page(before, limit)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let Some(l) = page.last() else { break };
                before = Some((l.run, l.seq));
                paged.extend(
                    page.into_iter()
                        .map(|c| (c.run, c.seq, c.row.path, c.row.pruned.map(|(_, p)| p))),
                );
            }
            let mut before = None;
            loop {
                let (n, last) = s
                    .checkpoints_visit::<StateError>(before, limit, |run, seq, row| {
                        visited.push((
                            run,
                            seq,
                            row.path.to_string(),
                            row.pruned.map(|(_, p)| p.to_string()),
                        ));
                        Ok(())
                    })
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                if n == 0 {
                    break;
                }
                before = last;
            }
            prop_assert_eq!(&paged, &all, "page, limit {}", limit);
            prop_assert_eq!(&visited, &all, "visit, limit {}", limit);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn rows_and_their_prunes_read_the_same_every_way(ops in proptest::collection::vec(op(), 1..25)) {
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let root = dir.path().join(".wf");
            let fail = |e: StateError| TestCaseError::fail(e.to_string());
            let mut s = reopen(&root, Access::Write).map_err(fail)?;
            let mut runs = Vec::new();
            for _ in 0..3 {
                let (run, _) = s.begin_run(vec![started(&["a"])]).map_err(fail)?;
                s.commit(run, vec![tr("a", 1, TaskState::Pending, TaskState::Running, Reason::Started)]).map_err(fail)?;
                runs.push(run);
            }
            let mut model: Model = vec![Vec::new(); 3];
            let mut policy = 0u32;
            for op in ops {
                let op = match op {
                    // 64 rows per chunk (detail::ROWS_PER_CHUNK).
                    Op::Fill(r) => Op::Add(r, (64 - model[r].len() % 64) as u8, None),
                    op => op,
                };
                match op {
                    Op::Fill(_) => {}
                    Op::Add(r, n, k) => {
                        let base = model[r].len();
                        let mut entries: Vec<Entry> = (0..n).map(|i| Entry::Checkpoint {
                            task: "a".into(),
                            attempt: 1,
                            path: format!("{r}/{}", base + usize::from(i)),
                            hash: "00".repeat(32),
                            bytes: 1,
                            retention_secs: 60,
                            expires_at: Utc::now(),
                        }).collect();
                        // A prune of a row already there, in the same batch.
                        let target = k.filter(|_| base > 0).map(|k| usize::from(k) % base);
                        if let Some(t) = target {
                            policy += 1;
                            entries.push(pruned(model[r][t].0, &format!("p{policy}")));
                        }
                        let recs = s.commit(runs[r], entries).map_err(fail)?;
                        for (i, rec) in recs.iter().take(usize::from(n)).enumerate() {
                            model[r].push((rec.seq, format!("{r}/{}", base + i), None));
                        }
                        if let Some(t) = target {
                            model[r][t].2.get_or_insert(format!("p{policy}"));
                        }
                    }
                    Op::Prune(items) => {
                        let mut batches: Vec<(RunId, Vec<Entry>)> = Vec::new();
                        for (r, k) in items {
                            if model[r].is_empty() {
                                continue;
                            }
                            let t = usize::from(k) % model[r].len();
                            policy += 1;
                            let why = format!("p{policy}");
                            batches.push((runs[r], vec![pruned(model[r][t].0, &why)]));
                            model[r][t].2.get_or_insert(why);
                        }
                        s.commit_many(batches).map_err(fail)?;
                    }
                    Op::Reopen => {
                        drop(s);
                        s = reopen(&root, Access::Write).map_err(fail)?;
                    }
                    Op::Rebuild => {
                        drop(s);
                        std::fs::remove_dir_all(root.join("journal/detail")).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        s = reopen(&root, Access::Write).map_err(fail)?;
                    }
                }
                check(&s, &runs, &model)?;
                let reader = reopen(&root, Access::Read).map_err(fail)?;
                check(&reader, &runs, &model)?;
            }
        }
    }
}
