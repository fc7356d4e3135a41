//! Old state directories must keep opening (state/tests/data/README.md).

use std::path::Path;

use wf_state::{Access, Entry, RunState, Store, TaskState};

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

#[test]
fn v1_state_opens_and_replays() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join(".wf");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1"),
        &root,
    )?;
    let mut store = Store::open(&root, Access::Read)?.ok_or("fixture did not open")?;
    let run = store.latest_run()?.ok_or("no run")?;
    assert_eq!(run.id, 1);
    assert_eq!(run.workflow, "homework");
    assert_eq!(run.state, RunState::Done);
    let snap = store.snapshot(1)?.ok_or("no snapshot")?;
    assert_eq!(snap.tasks.len(), 4);
    assert!(snap.tasks.iter().all(|t| t.state == TaskState::Done));
    let records = store.records(1)?;
    assert_eq!(records.len(), 42);
    // The record log holds the same records: the index can be rebuilt from it alone.
    drop(store);
    std::fs::remove_dir_all(root.join("journal"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut rebuilt = loop {
        match Store::open(&root, Access::Read) {
            Ok(Some(s)) => break s,
            Err(wf_state::StateError::Busy(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return Err(format!("reopen: {:?}", other.err()).into()),
        }
    };
    assert_eq!(rebuilt.records(1)?, records);
    assert_eq!(rebuilt.snapshot(1)?.ok_or("no snapshot")?, snap);
    assert_eq!(wf_state::machine::replay(&records)?, snap);
    assert!(records.iter().any(|r| matches!(
        &r.entry,
        Entry::Approval { note: Some(n), .. } if n == "fixture"
    )));
    Ok(())
}

/// The v1 fixture's index was written by sled (wf before issue #22): a reader answers from the
/// record log without touching it; the first writer replaces it with wf's own index, rebuilt
/// from the record log, and every answer stays the same.
#[test]
fn a_sled_index_is_replaced_by_the_first_writer() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join(".wf");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1"),
        &root,
    )?;
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = names(&root.join("journal"));
    let mut reader = Store::open(&root, Access::Read)?.ok_or("fixture did not open")?;
    let records = reader.records(1)?;
    let snap = reader.snapshot(1)?.ok_or("no snapshot")?;
    drop(reader);
    assert_eq!(
        names(&root.join("journal")),
        before,
        "a reader changed sled's files"
    );
    drop(Store::open(&root, Access::Write)?.ok_or("no writer")?);
    let after = names(&root.join("journal"));
    assert!(
        after
            .iter()
            .any(|n| n.starts_with("index.") && n.ends_with(".log"))
            && !after
                .iter()
                .any(|n| n == "db" || n == "conf" || n.starts_with("snap.")),
        "the writer did not replace sled's index: {after:?}"
    );
    let mut reader = Store::open(&root, Access::Read)?.ok_or("no reader")?;
    assert_eq!(reader.records(1)?, records);
    assert_eq!(reader.snapshot(1)?.ok_or("no snapshot")?, snap);
    Ok(())
}

/// The index as wf writes it since issue #22 (`journal/index.G.log`, `index.N.tbl`, the same
/// for `journal/detail/`), made once from the v1 fixture by `write_v2_fixture`: it must keep
/// opening, for readers and writers, with the same answers.
#[test]
fn v2_index_opens_for_readers_and_writers() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join(".wf");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v2"),
        &root,
    )?;
    let v1_tmp = tempfile::tempdir()?;
    let v1 = v1_tmp.path().join(".wf");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1"),
        &v1,
    )?;
    let mut want = Store::open(&v1, Access::Read)?.ok_or("v1 did not open")?;
    let (records, snap) = (want.records(1)?, want.snapshot(1)?);
    let mut reader = Store::open(&root, Access::Read)?.ok_or("v2 did not open")?;
    assert_eq!(reader.records(1)?, records);
    assert_eq!(reader.snapshot(1)?, snap);
    drop(reader);
    let writer = Store::open(&root, Access::Write)?.ok_or("v2 did not open to write")?;
    assert_eq!(writer.records(1)?, records);
    drop(writer);
    Ok(())
}

/// The v2 fixture's detail index has layout 1 (prunes rewrote their chunks): readers read it as
/// it is, and the first writer marks it layout 2 without rebuilding it (its tables stay), after
/// which prunes go into lists beside the rows and read back through a reopen.
#[test]
fn a_detail_index_of_layout_1_is_read_as_it_is_and_marked_2_by_a_writer(
) -> Result<(), Box<dyn std::error::Error>> {
    use wf_state::journal::Kv;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join(".wf");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v2"),
        &root,
    )?;
    let detail = root.join("journal/detail");
    let layout = |kv: &Kv| -> Result<Option<Vec<u8>>, wf_state::StateError> { kv.get(b"m:layout") };
    assert_eq!(
        layout(&Kv::open_read(&detail)?)?,
        Some(1u32.to_le_bytes().to_vec())
    );
    let tables = |dir: &Path| -> std::io::Result<Vec<String>> {
        let mut t: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tbl"))
            .collect();
        t.sort();
        Ok(t)
    };
    let before = tables(&detail)?;
    let reader = Store::open(&root, Access::Read)?.ok_or("no reader")?;
    let rows = reader.checkpoints(1)?;
    assert_eq!(rows.len(), 5);
    drop(reader);
    let mut writer = Store::open(&root, Access::Write)?.ok_or("no writer")?;
    assert_eq!(writer.checkpoints(1)?, rows);
    let first = &rows[0];
    writer.commit_many(vec![(
        1,
        vec![Entry::Pruned {
            checkpoints: vec![wf_state::record::PrunedCheckpoint {
                task: first.row.task.as_str().into(),
                attempt: first.row.attempt,
                checkpoint_seq: first.seq,
                path: first.row.path.as_str().into(),
                hash: first.row.hash.clone(),
                bytes: first.row.bytes,
                policy: "7d".into(),
            }],
            logs: vec![],
        }],
    )])?;
    drop(writer);
    // Not rebuilt: the tables it had are still there.
    let after = tables(&detail)?;
    assert!(
        before.iter().all(|t| after.contains(t)),
        "{before:?} → {after:?}"
    );
    assert_eq!(
        layout(&Kv::open_read(&detail)?)?,
        Some(2u32.to_le_bytes().to_vec())
    );
    let reader = Store::open(&root, Access::Read)?.ok_or("no reader")?;
    let pruned = reader.checkpoints(1)?;
    assert_eq!(
        pruned[0].row.pruned.as_ref().map(|(_, p)| p.as_str()),
        Some("7d")
    );
    assert_eq!(pruned[1..], rows[1..]);
    Ok(())
}

/// Writes `tests/data/v2` (run once, when the index format was introduced; never again):
/// `WF_WRITE_FIXTURE=1 cargo test -p wf-state --test fixture write_v2_fixture -- --ignored`.
#[test]
#[ignore = "writes the v2 fixture: WF_WRITE_FIXTURE=1 cargo test -p wf-state --test fixture write_v2_fixture -- --ignored"]
fn write_v2_fixture() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("WF_WRITE_FIXTURE").is_none() {
        return Ok(());
    }
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let out = data.join("v2");
    if out.exists() {
        return Err("tests/data/v2 exists; fixtures are never regenerated".into());
    }
    copy_dir(&data.join("v1"), &out)?;
    drop(Store::open(&out, Access::Write)?.ok_or("no writer")?);
    for dir in ["journal", "journal/detail"] {
        wf_state::journal::Kv::open(&out.join(dir))?.compact()?;
    }
    for rel in [
        "journal/index.lock",
        "journal/detail/index.lock",
        "journal/log.verified",
    ] {
        let _ = std::fs::remove_file(out.join(rel));
    }
    Ok(())
}
