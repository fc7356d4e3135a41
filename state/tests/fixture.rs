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
