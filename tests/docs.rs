//! The documentation keeps up with the code: every key the workflow parser accepts is documented in
//! docs/workflow.md, and every exit code is documented in the README.

use std::path::Path;

mod common;

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

/// Runs `line` with `sh` in `dir`, `wf` on the PATH being the binary under test; a line of a
/// loop (`… || break`) runs inside a one-pass loop with its variable set.
fn sh(dir: &Path, bin: &Path, line: &str) -> (i32, String, String) {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("d=2026-12-01; for _ in 1; do {line}; done");
    // The one test environment (tests/common), with `wf` first on the PATH.
    let out = common::command_of("sh".as_ref(), dir, dir)
        .args(["-c", &script])
        .env("PATH", path)
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
    common::copy_dir(&root.join("examples/homework"), &prepared, &[".wf"]);
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
        common::copy_dir(&tmp.path().join("prepared"), &work, &[]);
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
        let out = common::command(Path::new("."), Path::new("."))
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

/// The fields of one section of docs/json.md: the backticked names in the first column of its
/// tables, or in its text when it has no table.
fn doc_fields(section: &str) -> std::collections::BTreeSet<String> {
    let rows: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').nth(1).unwrap_or_default())
        .collect();
    let text = if rows.is_empty() {
        section.to_string()
    } else {
        rows.join(" ")
    };
    backticked(&text)
}

/// Backticked identifiers (`snake_case`) in `text`.
fn backticked(text: &str) -> std::collections::BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| {
            !w.is_empty()
                && w.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && w.starts_with(|c: char| c.is_ascii_lowercase())
        })
        .map(str::to_string)
        .collect()
}

/// The section of docs/json.md whose heading starts with `heading`.
fn json_section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("## {heading}"))
        .unwrap_or_else(|| panic!("docs/json.md has no section `{heading}`"));
    let body = &doc[start + 3..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}

fn keys(rows: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    rows.iter()
        .filter_map(|r| r.as_object())
        .flat_map(|o| o.keys().cloned())
        .collect()
}

/// Every field each `--json` output emits is documented in docs/json.md, and every documented
/// field is emitted — for status, history, a run's entries (by kind), a metric trend, gc and
/// check — over a state that has every kind of entry.
#[test]
fn json_fields_match_docs_json_md_both_ways() {
    use std::collections::{BTreeMap, BTreeSet};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(
        dir.join("wf.toml"),
        r#"[workflow]
retention = "1d"
[params]
mode = "ok"
[notify]
command = ["true"]
[task.a]
run = 'echo "rows=3" >> "$WF_METRICS"; echo a > a.txt'
outputs = ["a.txt"]
log = ["rows", "never_reported"]
[task.b]
run = 'cat a.txt > b.txt; echo n > n.txt; echo $UNDECLARED'
inputs = ["a.txt"]
needs = ["a"]
outputs = ["b.txt", "n.txt"]
checkpoint = ["b.txt"]
[task.flaky]
run = '[ "$WF_PARAM_MODE" = ok ] || exit 3'
[task.gate]
run = 'true'
needs = ["b"]
manual = true
"#,
    )
    .expect("write");
    let wf = |args: &[&str]| -> (i32, String) {
        let out = common::command(dir, dir)
            .arg("-C")
            .arg(dir)
            .args(args)
            .env_remove("WF_STATE_DIR")
            .output()
            .expect("wf");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let json = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, out) = wf(&all);
        assert!(code == 0, "wf {all:?}: {out}");
        out.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    // Run 1 waits at the gate; run 2 (failing) reaches the gate and supersedes it; b.txt is
    // edited so that approving run 2 restores it; run 3 is rejected; gc prunes.
    assert_eq!(wf(&["run"]).0, 0);
    std::fs::write(dir.join("b.txt"), "edited\n").expect("write");
    assert_eq!(wf(&["run", "--force", "-p", "mode=fail"]).0, 1);
    std::fs::write(dir.join("b.txt"), "edited again\n").expect("write");
    let (code, out) = wf(&["approve", "2", "gate", "--note", "ok"]);
    assert!(code <= 1, "{out}");
    // A rejection fails the gated task: exit 1.
    for (args, want) in [
        (&["run", "--force"][..], 0),
        (&["reject", "gate", "--note", "no"], 1),
    ] {
        let (code, out) = wf(args);
        assert_eq!(code, want, "wf {args:?}: {out}");
    }

    // gc prunes what the runs above made (its rows are compared below).
    let mut gc_rows = json(&["gc", "--dry-run", "--now", "+400d"]);
    gc_rows.extend(json(&["gc", "--now", "+400d"]));

    let doc = read("docs/json.md");
    let mut problems: Vec<String> = Vec::new();
    let mut compare = |what: &str, emitted: BTreeSet<String>, documented: BTreeSet<String>| {
        for k in emitted.difference(&documented) {
            problems.push(format!("{what}: `{k}` is emitted but not documented"));
        }
        for k in documented.difference(&emitted) {
            problems.push(format!("{what}: `{k}` is documented but never emitted"));
        }
    };
    compare(
        "status",
        keys(&json(&["status"])),
        doc_fields(json_section(&doc, "`wf --json status")),
    );
    compare(
        "history",
        keys(&json(&["history"])),
        doc_fields(json_section(&doc, "`wf --json history` —")),
    );
    compare(
        "metric trend",
        keys(&json(&["history", "--task", "a", "--metric", "rows"])),
        doc_fields(json_section(
            &doc,
            "`wf --json history --task T --metric K`",
        )),
    );
    compare(
        "check",
        keys(&json(&["check"])),
        doc_fields(json_section(&doc, "`wf --json check`")),
    );
    // A run's entries: the common fields, then each kind's own.
    let section = json_section(&doc, "`wf --json history RUN`");
    let (common_part, kinds_part) = section.split_at(section.find("and by kind").unwrap_or(0));
    let common = doc_fields(common_part);
    // Values the kind table shows in backticks that are not field names.
    let values: BTreeSet<&str> = [
        "started",
        "options",
        "resumed",
        "ended",
        "superseded",
        "raised",
        "delivered",
        "failed",
        "dropped",
        "approval_timeout",
        "running",
        "done",
        "approved",
        "rejected",
        "wf",
        "command",
        "seq",
        // `usage`: its `source` values and the task key its cut is made at.
        "rusage",
        "cgroup",
        "sampled",
        "bound",
        "log_limit",
    ]
    .into_iter()
    .collect();
    let mut by_kind: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in kinds_part.lines().filter(|l| l.starts_with("| `")) {
        let mut cells = line.split('|').skip(1);
        let kind = backticked(cells.next().unwrap_or_default());
        let fields: BTreeSet<String> = backticked(cells.next().unwrap_or_default())
            .into_iter()
            .filter(|f| !values.contains(f.as_str()) && !common.contains(f))
            .collect();
        for k in kind {
            by_kind.insert(k, fields.clone());
        }
    }
    let mut emitted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut all_common = BTreeSet::new();
    for run in ["1", "2", "3"] {
        for e in json(&["history", run]) {
            let kind = e["kind"].as_str().unwrap_or("?").to_string();
            let entry = emitted.entry(kind).or_default();
            for k in keys(std::slice::from_ref(&e)) {
                if common.contains(&k) {
                    all_common.insert(k);
                } else {
                    entry.insert(k);
                }
            }
        }
    }
    compare("history RUN (every entry)", all_common, common.clone());
    let documented_kinds: BTreeSet<String> = by_kind.keys().cloned().collect();
    let emitted_kinds: BTreeSet<String> = emitted.keys().cloned().collect();
    compare("history RUN kinds", emitted_kinds, documented_kinds);
    for (kind, fields) in &emitted {
        let documented = by_kind.get(kind).cloned().unwrap_or_default();
        compare(&format!("history RUN `{kind}`"), fields.clone(), documented);
    }
    compare(
        "gc",
        keys(&gc_rows),
        doc_fields(json_section(&doc, "`wf --json gc")),
    );
    assert!(
        problems.is_empty(),
        "docs/json.md and --json disagree:\n{}",
        problems.join("\n")
    );
}
