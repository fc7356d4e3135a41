//! First-use conventions: `wf init`, shell completions, `--version`, and plain output when piped.

use std::process::Command;

const WF: &str = env!("CARGO_BIN_EXE_wf");

fn wf(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(WF)
        .args(["-C", &dir.to_string_lossy()])
        .args(args)
        .output()
        .expect("run wf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_writes_a_starter_that_checks_and_runs_and_never_overwrites() {
    let tmp = tempfile::tempdir().expect("tempdir");
    assert_eq!(wf(tmp.path(), &["init"]).0, 0);
    let text = std::fs::read_to_string(tmp.path().join("wf.toml")).expect("wf.toml");
    assert!(text.contains("[task."));
    let (code, _, err) = wf(tmp.path(), &["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "the starter lints clean: {err}");
    let (code, out, _) = wf(tmp.path(), &["run"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.contains("wf approve publish")),
        "{out}"
    );
    std::fs::write(tmp.path().join("wf.toml"), "# mine\n").expect("write");
    let (code, _, err) = wf(tmp.path(), &["init"]);
    assert_eq!(code, 2);
    assert!(err.contains("never overwrites"), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("wf.toml")).unwrap_or_default(),
        "# mine\n"
    );
}

#[test]
fn completions_version_and_plain_piped_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = wf(tmp.path(), &["completions", shell]);
        assert_eq!(code, 0);
        assert!(
            out.contains("approve") && out.contains("history"),
            "{shell}"
        );
    }
    let (code, out, _) = wf(tmp.path(), &["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("wf "));
    std::fs::write(tmp.path().join("wf.toml"), "[task.a]\nrun = 'echo hi'\n").expect("write");
    let (code, out, err) = wf(tmp.path(), &["run"]);
    assert_eq!(code, 0);
    assert!(
        !out.contains('\u{1b}') && !err.contains('\u{1b}'),
        "escape codes when piped"
    );
    assert!(out.contains("[a] hi"));
}
