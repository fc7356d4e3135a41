//! Property: for any sequence of legal entries, committed through the real journal in random
//! batches, replaying the journal gives the same state as the index the store maintains, the same
//! as applying the entries in memory, and the same again after reopening the state directory.
//! Illegal entries are refused and change nothing.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use wf_state::machine::{self, RunSnapshot};
use wf_state::{Access, Entry, Reason, Record, RunState, Store, TaskPlan, TaskState};

fn started(n: usize) -> Entry {
    Entry::RunStarted {
        workflow: "w".into(),
        file: "wf.toml".into(),
        user: "u".into(),
        host: "h".into(),
        pid: 1,
        args: vec![],
        tasks: (0..n)
            .map(|i| TaskPlan {
                name: format!("t{i}"),
                owner: Some("o".into()),
                idempotent: i % 2 == 0,
                retries: 2,
                manual: i == 1,
            })
            .collect(),
    }
}

fn tr(t: &str, attempt: u32, from: TaskState, to: TaskState, reason: Reason) -> Entry {
    Entry::Transition {
        task: t.into(),
        attempt,
        from,
        to,
        reason,
        exit_code: None,
    }
}

/// Every legal next entry from `s`.
fn legal(s: &RunSnapshot) -> Vec<Entry> {
    use TaskState::*;
    let mut v = Vec::new();
    if s.run.state.is_final() {
        return v;
    }
    v.push(Entry::RunOptions {
        params: vec![("day".into(), "2026-12-01".into())],
        force: Some(vec![]),
        only: vec![],
        from: None,
        jobs: Some(2),
    });
    for t in &s.tasks {
        let n = t.name.as_str();
        let a = t.attempts;
        match t.state {
            Pending => {
                v.push(tr(n, a + 1, Pending, Running, Reason::Started));
                v.push(tr(n, a, Pending, Waiting, Reason::Gate));
                v.push(tr(n, a, Pending, Done, Reason::CacheHit));
            }
            Running => {
                v.push(Entry::Spawned {
                    task: n.into(),
                    attempt: a,
                    pid: 100 + a,
                    pid_start: Some(7),
                });
                v.push(Entry::Metric {
                    task: n.into(),
                    attempt: a,
                    key: "rows".into(),
                    value: a.to_string(),
                });
                v.push(Entry::Checkpoint {
                    task: n.into(),
                    attempt: a,
                    path: "out".into(),
                    hash: "00".into(),
                    bytes: 1,
                    retention_secs: 60,
                    expires_at: Utc
                        .timestamp_opt(1_900_000_000, 0)
                        .single()
                        .unwrap_or_default(),
                });
                v.push(tr(n, a, Running, Done, Reason::Succeeded));
                v.push(tr(n, a, Running, Failed, Reason::Exit(1)));
                v.push(tr(
                    n,
                    a,
                    Running,
                    Pending,
                    Reason::Interrupted("kill".into()),
                ));
            }
            Failed => {
                v.push(tr(
                    n,
                    a,
                    Failed,
                    Pending,
                    Reason::Retry {
                        n: t.retries_used + 1,
                        of: 2,
                        not_before_ms: 5,
                    },
                ));
                v.push(tr(n, a, Failed, Pending, Reason::Resume));
            }
            Waiting => {
                v.push(Entry::Approval {
                    task: n.into(),
                    user: "ana".into(),
                    note: None,
                });
                v.push(tr(n, a, Waiting, Pending, Reason::Approved));
                v.push(tr(n, a, Waiting, Failed, Reason::Rejected("no".into())));
                if s.run.state == RunState::Waiting {
                    v.push(Entry::Superseded {
                        task: n.into(),
                        by: s.run.id + 1,
                    });
                }
            }
            Done => {
                v.push(tr(n, a, Done, Pending, Reason::OutputsChanged("x".into())));
                v.push(Entry::Restored {
                    task: n.into(),
                    attempt: a,
                    path: "out".into(),
                    hash: "00".into(),
                    found: Some("11".into()),
                    replaced: Some(s.run.id + 1),
                });
            }
        }
    }
    match s.run.state {
        RunState::Running => {
            v.push(Entry::RunEnded {
                state: RunState::Waiting,
                reason: "w".into(),
            });
            v.push(Entry::RunEnded {
                state: RunState::Failed,
                reason: "f".into(),
            });
            v.push(Entry::RunEnded {
                state: RunState::Done,
                reason: "d".into(),
            });
        }
        _ => v.push(Entry::RunResumed {
            user: "u".into(),
            pid: 2,
            args: vec![],
        }),
    }
    v
}

/// An entry that is illegal from `s` (a task transition whose `from` is wrong; once the run is
/// final, anything that would continue it).
fn illegal(s: &RunSnapshot, pick: usize) -> Entry {
    let t = &s.tasks[pick % s.tasks.len()];
    if s.run.state.is_final() {
        return match pick % 3 {
            0 => Entry::RunResumed {
                user: "u".into(),
                pid: 3,
                args: vec![],
            },
            1 => Entry::Approval {
                task: t.name.clone(),
                user: "u".into(),
                note: None,
            },
            _ => Entry::Superseded {
                task: t.name.clone(),
                by: s.run.id + 2,
            },
        };
    }
    let wrong = TaskState::ALL
        .iter()
        .copied()
        .find(|x| *x != t.state)
        .unwrap_or(TaskState::Done);
    tr(
        &t.name,
        t.attempts,
        wrong,
        TaskState::Running,
        Reason::Started,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn replay_equals_index(tasks in 1usize..5, picks in prop::collection::vec((any::<u16>(), 1usize..4, any::<bool>()), 1..60)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let root = dir.path().join(".wf");
        let mut store = Store::open(&root, Access::Write)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .ok_or_else(|| TestCaseError::fail("no store"))?;
        store.set_fsync(false);
        let (run, first) = store.begin_run(vec![started(tasks)]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut mem: Option<RunSnapshot> = None;
        for r in &first {
            machine::apply(&mut mem, r).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        for (pick, batch, try_illegal) in picks {
            let before = store.snapshot(run).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let Some(snap) = before.clone() else { break };
            if try_illegal {
                let bad = illegal(&snap, pick as usize);
                prop_assert!(store.commit(run, vec![bad]).is_err());
                prop_assert_eq!(store.snapshot(run).map_err(|e| TestCaseError::fail(e.to_string()))?, before.clone());
            }
            // A batch of up to `batch` legal entries, each legal after the previous one.
            let mut sim = Some(snap);
            let mut entries = Vec::new();
            for k in 0..batch {
                let Some(s) = sim.as_ref() else { break };
                let options = legal(s);
                if options.is_empty() { break; }
                let e = options[(pick as usize + k * 7) % options.len()].clone();
                let probe = Record { seq: 0, run, at: Utc::now(), entry: e.clone() };
                machine::apply(&mut sim, &probe).map_err(|e| TestCaseError::fail(e.to_string()))?;
                entries.push(e);
            }
            if entries.is_empty() { break; }
            let recs = store.commit(run, entries).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for r in &recs {
                machine::apply(&mut mem, r).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        let index = store.snapshot(run).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let records = store.records(run).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let replayed = machine::replay(&records).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Some(replayed.clone()), index);
        prop_assert_eq!(Some(replayed.clone()), mem);
        drop(store);
        // (Kept from sled, whose threads could hold the database for a moment; harmless now.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut again = loop {
            match Store::open(&root, Access::Read) {
                Ok(Some(s)) => break s,
                Err(wf_state::StateError::Busy(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                other => return Err(TestCaseError::fail(format!("reopen: {:?}", other.err()))),
            }
        };
        prop_assert_eq!(again.snapshot(run).map_err(|e| TestCaseError::fail(e.to_string()))?, Some(replayed));
    }
}
