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

#[test]
fn json_is_refused_where_a_command_has_none() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("wf.toml"), "[task.a]\nrun = 'true'\n").expect("write");
    for args in [
        &["run"][..],
        &["resume"],
        &["approve", "a"],
        &["reject", "a", "--note", "x"],
        &["logs", "1", "a"],
        &["restore", "1"],
        &["graph"],
        &["notify"],
        &["export", "--to", "argo"],
        &["init"],
        &["completions", "bash"],
    ] {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, out, err) = wf(tmp.path(), &all);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("has no JSON output"), "{args:?}: {err}");
    }
    assert!(
        !tmp.path().join(".wf").exists(),
        "a refused command wrote state"
    );
    for args in [
        &["status"][..],
        &["history"],
        &["check"],
        &["gc", "--dry-run"],
    ] {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        assert_eq!(wf(tmp.path(), &all).0, 0, "{args:?}");
    }
}

#[test]
fn the_reference_is_in_the_binary_and_help_reads_right() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, out, _) = wf(tmp.path(), &["init", "--reference"]);
    assert_eq!(code, 0);
    for key in [
        "[workflow]",
        "`retention`",
        "`manual`",
        "[notify]",
        "`env_inputs`",
    ] {
        assert!(out.contains(key), "{key}");
    }
    assert!(!tmp.path().join("wf.toml").exists());
    assert_eq!(wf(tmp.path(), &["init"]).0, 0);
    let text = std::fs::read_to_string(tmp.path().join("wf.toml")).expect("wf.toml");
    assert!(
        !text.contains("docs/"),
        "the starter points at files a binary user lacks"
    );
    assert!(text.contains("wf init --reference"));
    let (_, help, _) = wf(tmp.path(), &["approve", "--help"]);
    assert!(
        help.contains("Usage: wf approve [OPTIONS] [RUN] TASK"),
        "{help}"
    );
    let (_, help, _) = wf(tmp.path(), &["reject", "--help"]);
    assert!(
        help.contains("Usage: wf reject [RUN] TASK --note <TEXT>"),
        "{help}"
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::io::Read;
    let tmp = tempfile::tempdir().expect("tempdir");
    for args in [&["completions", "bash"][..], &["init", "--reference"]] {
        let mut child = Command::new(WF)
            .args(["-C", &tmp.path().to_string_lossy()])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut first = [0u8; 16];
        child
            .stdout
            .take()
            .expect("stdout")
            .read_exact(&mut first)
            .expect("read");
        // The read end is closed here, like `| head -c 16`.
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn approve_without_a_run_finds_a_gate_in_a_run_that_failed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("wf.toml"),
        "[task.bad]\nrun = 'exit 3'\n[task.gate]\nrun = 'echo approved > gate.txt'\nmanual = true\n",
    )
    .expect("write");
    let (code, _, _) = wf(tmp.path(), &["run"]);
    assert_eq!(code, 1);
    // The gate runs; the run stays failed (bad failed), so the exit code says so.
    let (code, out, err) = wf(tmp.path(), &["approve", "gate"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("gate of run 1 approved"), "{out}");
    assert!(tmp.path().join("gate.txt").exists());
    let (code, _, err) = wf(tmp.path(), &["approve", "gate"]);
    assert_eq!(code, 2);
    assert!(err.contains("no run is waiting on task `gate`"), "{err}");
}

#[test]
fn gc_json_rows_carry_every_documented_field_null_when_absent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("wf.toml"),
        "[workflow]\nretention = \"1d\"\n[task.a]\nrun = 'echo $WF_RUN_ID > a.txt'\noutputs = ['a.txt']\n",
    )
    .expect("write");
    for _ in 0..2 {
        assert_eq!(wf(tmp.path(), &["run", "--force"]).0, 0);
    }
    let (code, out, err) = wf(tmp.path(), &["--json", "gc", "--dry-run", "--now", "+10d"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(rows.len() >= 2, "{out}");
    for r in &rows {
        for key in [
            "run",
            "task",
            "path",
            "hash",
            "bytes",
            "expired_at",
            "action",
            "why",
            "frees",
        ] {
            assert!(r.get(key).is_some(), "`{key}` missing from {r}");
        }
    }
    assert!(
        rows.iter()
            .any(|r| r["action"] == "kept" && r["frees"].is_null() && r["why"].is_string()),
        "{out}"
    );
    assert!(
        rows.iter()
            .any(|r| r["action"] == "would_prune" && r["why"].is_null()),
        "{out}"
    );
}

/// Every command that prints, with its reader gone before the first byte (`| head -0`): wf stops
/// writing and exits 0 with nothing on stderr, the way ripgrep does — not exit 4 with "Broken pipe".
#[test]
fn a_reader_that_went_away_ends_every_command_quietly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("wf.toml"),
        "[task.a]\nrun = 'seq 1 20000'\n[task.b]\nrun = 'echo b'\nneeds = ['a']\nowner = 'ops'\n",
    )
    .expect("write");
    for _ in 0..3 {
        assert_eq!(wf(tmp.path(), &["run", "-q"]).0, 0);
    }
    let cases: [&[&str]; 14] = [
        &["history"],
        &["--json", "history"],
        &["history", "1"],
        &["--json", "history", "1"],
        &["history", "--task", "a", "--metric", "x"],
        &["status"],
        &["--json", "status"],
        &["logs", "1", "a"],
        &["graph"],
        &["completions", "bash"],
        &["init", "--reference"],
        &["export", "--to", "github-actions"],
        &["state", "export"],
        &["--json", "gc", "--dry-run"],
    ];
    for args in cases {
        let mut child = Command::new(WF)
            .args(["-C", &tmp.path().to_string_lossy()])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // Close the read end before wf writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Where each column after the first starts on screen, for a line of `wf status`: a CJK
/// character takes two cells, so a byte count would put them out of line.
fn cells(s: &str) -> usize {
    s.chars()
        .map(|c| {
            if ('\u{1100}'..='\u{ffdc}').contains(&c) && c >= '\u{2e80}' {
                2
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn columns_line_up_on_screen_with_wide_and_accented_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("wf.toml"),
        "[workflow]\nname = \"データ処理\"\n[task.a]\nrun = 'true'\nowner = '日本チーム'\n\
         [task.b]\nrun = 'true'\nowner = 'zoë'\n[task.ingest_everything]\nrun = 'true'\n",
    )
    .expect("write");
    assert_eq!(wf(tmp.path(), &["run", "-q"]).0, 0);
    let (code, out, err) = wf(tmp.path(), &["status"]);
    assert_eq!(code, 0, "{err}");
    // The column after OWNER (TOOK, right-aligned: `…ms`) ends at the same cell on every line.
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(" done "))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    let end_of_took = |l: &str| {
        let from = l.find(" done ").expect("state") + 6;
        let ms = from + l[from..].find("ms").expect("took");
        cells(&l[..ms + 2])
    };
    let ends: Vec<usize> = rows.iter().map(|l| end_of_took(l)).collect();
    assert!(ends.windows(2).all(|w| w[0] == w[1]), "{ends:?}\n{out}");
    let header = out.lines().find(|l| l.contains("TOOK")).expect("header");
    let took = header.find("TOOK").expect("TOOK");
    assert_eq!(cells(&header[..took + 4]), ends[0], "{out}");
    // `wf history`: STATE starts at the same cell under a wide workflow name.
    let (code, out, _) = wf(tmp.path(), &["history"]);
    assert_eq!(code, 0);
    let header = out.lines().next().expect("header");
    let row = out.lines().nth(1).expect("row");
    let at = |l: &str, word: &str| cells(&l[..l.find(word).expect("word")]);
    assert_eq!(at(header, "STATE"), at(row, "done"), "{out}");
}
