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
    assert_eq!(records.len(), 38);
    assert_eq!(wf_state::machine::replay(&records)?, snap);
    assert!(records.iter().any(|r| matches!(
        &r.entry,
        Entry::Approval { note: Some(n), .. } if n == "fixture"
    )));
    Ok(())
}
