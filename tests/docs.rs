//! The documentation keeps up with the code: every key the workflow parser accepts is documented in
//! docs/workflow.md, and every exit code is documented in the README.

use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap_or_default()
}

#[test]
fn every_workflow_key_is_documented() {
    let doc = read("docs/workflow.md");
    assert!(!doc.is_empty(), "docs/workflow.md is missing");
    let missing: Vec<String> = wf::workflow::accepted_keys()
        .into_iter()
        .filter(|(_, key)| !doc.contains(&format!("`{key}`")))
        .map(|(section, key)| format!("{section}.{key}"))
        .collect();
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
}

#[test]
fn every_exit_code_is_documented() {
    let readme = read("README.md");
    for code in [0, 1, 2, 3, 4, 5, 130] {
        assert!(
            readme.contains(&format!("**{code}**")),
            "exit code {code} is not in the README"
        );
    }
}
