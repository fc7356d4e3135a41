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

/// A shell command line shown in a fenced code block of the README or docs/: `wf …`, `$ wf …` or
/// `cargo run -q -- …` (run as `wf …`), with its trailing comment, pipes and redirections cut off
/// (the test is about wf's part of the line). Output lines (`wf: …`, `wf.toml:4:7: …`) are not
/// commands.
fn doc_commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            continue;
        }
        let l = line.trim().trim_start_matches("$ ");
        let l = match l.strip_prefix("cargo run -q -- ") {
            Some(rest) => format!("wf {rest}"),
            None if l.starts_with("wf ") => l.to_string(),
            None => continue,
        };
        // Cut at a comment, a pipe or a redirection outside quotes.
        let mut cmd = String::new();
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for c in l.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') if prev == ' ' => break,
                (None, '|' | '>') => break,
                _ => {}
            }
            cmd.push(c);
            prev = c;
        }
        out.push(cmd.trim().to_string());
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// Runs `line` with `sh` in `dir`, `wf` on the PATH being the binary under test; a line of a
/// loop (`… || break`) runs inside a one-pass loop with its variable set.
fn sh(dir: &Path, bin: &Path, line: &str) -> (i32, String, String) {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("d=2026-12-01; for _ in 1; do {line}; done");
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("WF_STATE_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every wf command line shown in README.md and docs/*.md still runs, against a copy of the
/// example with eight runs in its history: no usage error, no internal error; exit 0 unless the
/// message says the situation differs from the one the doc shows (a run to resume, a gate to
/// approve).
#[test]
fn every_command_line_in_the_docs_runs_against_the_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_wf"), bin.join("wf")).expect("symlink");
    // The prepared history: eight runs, each approved, so that `wf history 7` has its run.
    let prepared = tmp.path().join("prepared/examples/homework");
    copy_dir(&root.join("examples/homework"), &prepared);
    for _ in 0..8 {
        for line in ["wf -q run --force", "wf -q approve report --note prepared"] {
            let (code, out, err) = sh(&prepared, &bin, line);
            assert_eq!(code, 0, "preparing: {line}: {out}{err}");
        }
    }
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut ran = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read doc");
        let name = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let work = tmp.path().join(format!("work-{}", name.replace('/', "-")));
        copy_dir(&tmp.path().join("prepared"), &work);
        let dir = work.join("examples/homework");
        // A copied state belongs to the prepared directory until adopted (the documented way).
        let (code, out, err) = sh(&dir, &bin, "wf -q state adopt");
        assert_eq!(code, 0, "adopting the copy: {out}{err}");
        for cmd in doc_commands(&text) {
            // `wf serve` runs until stopped: tests/serve.rs drives it.
            if cmd.split_whitespace().any(|w| w == "serve") {
                continue;
            }
            let cmd = cmd.replace("-C examples/homework", "-C .");
            let (code, out, err) = sh(&dir, &bin, &cmd);
            ran += 1;
            let usage = [
                "error: unexpected argument",
                "error: unrecognized subcommand",
                "error: invalid value",
                "error: the following required arguments",
                "error: a value is required",
                "Usage: wf",
                "internal error",
                "panicked",
            ];
            let situational = [
                "no run is waiting",
                "nothing to resume",
                "is waiting at a manual gate",
            ];
            let ok = code == 0
                || (code == 2
                    && !usage.iter().any(|u| err.contains(u))
                    && situational.iter().any(|s| err.contains(s)));
            if !ok {
                failures.push(format!(
                    "{name}: `{cmd}` exited {code}: {}{}",
                    out.trim(),
                    err.trim()
                ));
            }
        }
    }
    assert!(ran >= 20, "only {ran} command lines found in the docs");
    assert!(
        failures.is_empty(),
        "{} doc command lines no longer run:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The README's command table names every subcommand of `wf --help` and, in its row, every
/// option that subcommand has beyond the global ones.
#[test]
fn the_readme_command_table_names_every_command_and_option() {
    let readme = read("README.md");
    let help = |args: &[&str]| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wf"))
            .args(args)
            .output()
            .expect("wf --help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let longs = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(str::to_string)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let top = help(&["--help"]);
    let global: Vec<String> = longs(top.split("Options:").nth(1).unwrap_or_default());
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap_or_default()
        .split("Options:")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    assert!(commands.len() >= 10, "{top}");
    let mut missing = Vec::new();
    for c in &commands {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `wf {c}")))
            .unwrap_or_default();
        if row.is_empty() {
            missing.push(format!("no row for `wf {c}`"));
            continue;
        }
        let own = help(&[c, "--help"]);
        for opt in longs(own.split("Options:").nth(1).unwrap_or_default()) {
            if !global.contains(&opt) && opt != "--help" && !row.contains(&opt) {
                missing.push(format!("`wf {c}` row lacks {opt}"));
            }
        }
    }
    assert!(missing.is_empty(), "README command table: {missing:?}");
}
