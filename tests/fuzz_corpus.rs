//! Replays the committed fuzz corpus of the `workflow` target (fuzz/corpus/workflow) on stable.

use std::path::Path;

#[test]
fn replay_workflow_corpus() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/workflow");
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let bytes = std::fs::read(e?.path())?;
        if let Ok(text) = std::str::from_utf8(&bytes) {
            for json in [false, true] {
                if let Ok(wf) = wf::workflow::parse_str(text, Path::new("wf.toml"), json) {
                    let _ = wf::workflow::lint(&wf);
                }
            }
        }
        n += 1;
    }
    assert!(n >= 3, "the workflow corpus is missing");
    Ok(())
}
