//! First-use conventions: `wf init`, shell completions, `--version`, and plain output when piped.

mod common;

use std::process::Command;

/// A temporary directory holding `toml` as its `wf.toml`.
fn workflow(toml: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("wf.toml"), toml).expect("write");
    tmp
}

fn wf(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = common::command(dir, dir)
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
fn a_run_with_json_streams_its_journal_as_history_gives_it_and_nothing_else_on_stdout() {
    // A task that prints (not on stdout with --json), a gate, an approval that continues the run,
    // a failing task with a retry, a rejected gate, and a resume: each command's stdout is
    // exactly the rows `wf --json history RUN` gives for the records it journaled.
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("wf.toml"),
        r#"
[task.a]
run = "echo printed-by-a; echo to-stderr >&2"
[task.gate]
needs = ["a"]
manual = true
run = "echo gated"
[task.flaky]
needs = ["gate"]
run = "test -e ok || { touch ok; exit 3; }"
retries = 1
[task.review]
needs = ["flaky"]
manual = true
run = "true"
"#,
    )
    .expect("write");
    let rows = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let mut streamed = Vec::new();
    for (args, want) in [
        (&["--json", "run"][..], 0),
        (&["--json", "approve", "gate", "--note", "ok"], 0),
        (&["--json", "reject", "review", "--note", "no"], 1),
    ] {
        let (code, out, _err) = wf(tmp.path(), args);
        assert_eq!(code == 0, want == 0, "{args:?} exited {code}: {out}");
        assert!(
            !out.contains("printed-by-a") && !out.contains("to-stderr"),
            "{out}"
        );
        let got = rows(&out);
        assert!(!got.is_empty(), "{args:?} printed nothing");
        streamed.extend(got);
    }
    let (code, history, err) = wf(tmp.path(), &["--json", "history", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(streamed, rows(&history));
    let kinds: Vec<&str> = streamed.iter().filter_map(|r| r["kind"].as_str()).collect();
    for kind in ["run", "transition", "approval", "spawn"] {
        assert!(kinds.contains(&kind), "no {kind} row in {kinds:?}");
    }
    let ended = streamed
        .iter()
        .rfind(|r| r["event"] == "ended")
        .expect("the run's end");
    assert!(ended["wall_ms"].as_i64().is_some(), "{ended}");
    // A run resumed: only what the resume journaled.
    std::fs::write(tmp.path().join("wf.toml"), "[task.a]\nrun = 'sleep 30'\n").expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wf"))
        .args(["-q", "run"])
        .current_dir(tmp.path())
        .spawn()
        .expect("spawn");
    // Wait until the task runs, then kill wf and its task hard.
    for _ in 0..200 {
        let (_, out, _) = wf(tmp.path(), &["--json", "status"]);
        if out.contains("\"running\"") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::write(tmp.path().join("wf.toml"), "[task.a]\nrun = 'true'\n").expect("write");
    let (code, out, err) = wf(tmp.path(), &["--json", "resume"]);
    assert_eq!(code, 0, "{out}{err}");
    let resumed = rows(&out);
    let (_, history, _) = wf(tmp.path(), &["--json", "history", "2"]);
    let all = rows(&history);
    assert!(
        resumed.len() < all.len(),
        "the resume printed the run's earlier records"
    );
    assert_eq!(resumed[..], all[all.len() - resumed.len()..]);
}

#[test]
fn json_is_refused_where_a_command_has_none() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("wf.toml"), "[task.a]\nrun = 'true'\n").expect("write");
    for args in [
        &["logs", "1", "a"][..],
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
        let mut child = common::command(tmp.path(), tmp.path())
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
    let tmp = workflow("[task.bad]\nrun = 'exit 3'\n[task.gate]\nrun = 'echo approved > gate.txt'\nmanual = true\n");
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
    let tmp = workflow("[workflow]\nretention = \"1d\"\n[task.a]\nrun = 'echo $WF_RUN_ID > a.txt'\noutputs = ['a.txt']\n");
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

/// Every entry of a directory with its kind, size and bytes (links by target): what "left as it
/// was" compares.
fn snapshot(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("metadata");
            let what = if m.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).expect("readlink"))
            } else if m.is_file() {
                format!("file {:?}", std::fs::read(&p).expect("read"))
            } else {
                format!("{:?}", m.file_type())
            };
            (e.file_name().to_string_lossy().into_owned(), what)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_state_directory_that_is_not_a_directory_is_refused_and_left_as_it_was() {
    let tmp = workflow("[task.a]\nrun = 'echo a > a.txt'\noutputs = ['a.txt']\n");
    let target = tmp.path().join("elsewhere");
    std::fs::write(&target, "not a state\n").expect("write");
    let wfdir = tmp.path().join(".wf");
    type Plant = fn(&std::path::Path, &std::path::Path);
    let cases: [(&str, Plant, &str); 5] = [
        (
            "a regular file",
            |p, _| std::fs::write(p, "my notes\n").expect("write"),
            "is not a directory; move it away or pass --state-dir",
        ),
        (
            "an empty file",
            |p, _| std::fs::write(p, "").expect("write"),
            "is not a directory; move it away or pass --state-dir",
        ),
        (
            "a FIFO",
            |p, _| {
                let ok = Command::new("mkfifo").arg(p).status().expect("mkfifo");
                assert!(ok.success());
            },
            "is not a directory; move it away or pass --state-dir",
        ),
        (
            "a link to a file",
            |p, t| std::os::unix::fs::symlink(t, p).expect("symlink"),
            "is not a directory; move it away or pass --state-dir",
        ),
        (
            "a link to nothing",
            |p, _| std::os::unix::fs::symlink("/nonexistent/wf-state", p).expect("symlink"),
            "which does not exist; create that directory",
        ),
    ];
    for (what, plant, words) in cases {
        let _ = std::fs::remove_file(&wfdir);
        plant(&wfdir, &target);
        let before = snapshot(tmp.path());
        for args in [
            &["run"][..],
            &["status"],
            &["history"],
            &["gc"],
            &["resume"],
            &["approve", "a"],
            &["logs", "1", "a"],
            &["state", "verify"],
        ] {
            let (code, out, err) = wf(tmp.path(), args);
            assert_eq!(code, 5, "{what}: wf {args:?}: {out}{err}");
            assert!(err.contains(words), "{what}: wf {args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{what}: wf {args:?}: {err}");
            assert!(!err.contains("os error"), "{err}");
        }
        assert_eq!(snapshot(tmp.path()), before, "{what}: something changed");
    }
}

#[test]
fn a_missing_input_is_one_sentence_naming_it_and_its_producer() {
    // `late` produces gen.txt but `use` does not need it (it needs `use`: never first); raw.txt is
    // produced by no task.
    for (toml, task, words) in [
        (
            "[task.use]\nrun = 'cat gen.txt > out.txt'\ninputs = ['gen.txt']\noutputs = ['out.txt']\n\
             [task.late]\nrun = 'touch gen.txt'\noutputs = ['gen.txt']\nneeds = ['use']\n",
            "use",
            "its input gen.txt does not exist; task late produces it, but use does not need late",
        ),
        (
            "[task.raw]\nrun = 'cat raw.txt > r.txt'\ninputs = ['raw.txt']\noutputs = ['r.txt']\n",
            "raw",
            "its input raw.txt does not exist and no task produces it",
        ),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("wf.toml"), toml).expect("write");
        let (code, out, err) = wf(tmp.path(), &["run"]);
        assert_eq!(code, 1, "{out}{err}");
        let all = format!("{out}{err}");
        let lines: Vec<&str> = all
            .lines()
            .filter(|l| l.contains(&format!("✗ {task} ")))
            .collect();
        assert_eq!(lines.len(), 1, "{all}");
        assert!(lines[0].contains(words), "{all}");
        assert!(!all.contains("could not start"), "{all}");
        // The closing hint does not send the user to a log that does not exist.
        let last = all
            .lines()
            .find(|l| l.contains("run 1 failed"))
            .expect("closing line");
        assert!(!last.contains("wf logs"), "{last}");
        assert!(last.contains("wf resume 1"), "{last}");
        let (code, _, err) = wf(tmp.path(), &["logs", "1", task]);
        assert_eq!(code, 0);
        assert!(err.contains(&format!("never started: {words}")), "{err}");
    }
}

#[test]
fn check_warns_of_a_command_that_is_not_found_and_every_warning_has_a_place_and_a_help() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("tasks")).expect("mkdir");
    std::fs::write(tmp.path().join("tasks/plain.sh"), "echo hi\n").expect("write");
    std::fs::write(
        tmp.path().join("wf.toml"),
        "[task.typo]\nrun = 'pyhton train.py'\n\
         [task.gone]\nrun = './tasks/missing.sh --fast'\n\
         [task.noexec]\nrun = './tasks/plain.sh'\n\
         [task.fine]\nrun = 'LC_ALL=C sort -o out.txt in.txt'\ninputs = ['in.txt']\noutputs = ['out.txt']\n\
         [task.builtin]\nrun = 'cd tasks && ls'\n\
         [task.dynamic]\nrun = '$TOOL --x'\nenv_inputs = ['TOOL']\n\
         [task.made]\nrun = './gen/tool'\nneeds = ['maker']\n\
         [task.maker]\nrun = 'mkdir -p gen && cp /bin/true gen/tool'\noutputs = ['gen/tool']\n\
         [task.edge]\nrun = 'true'\nneeds = ['fine']\n",
    )
    .expect("write");
    std::fs::write(tmp.path().join("in.txt"), "b\na\n").expect("write");
    let (code, out, err) = wf(tmp.path(), &["check"]);
    assert_eq!(code, 0, "{out}{err}");
    let all = format!("{out}{err}");
    for words in [
        "`typo` runs `pyhton`, which is not a shell builtin, not on the PATH",
        "did you mean `python",
        "`gone` runs `./tasks/missing.sh`, which does not exist",
        "`noexec` runs `./tasks/plain.sh`, which is not executable",
    ] {
        assert!(all.contains(words), "{words}: {all}");
    }
    for quiet in [
        "`fine` runs",
        "`builtin` runs",
        "`dynamic` runs",
        "`made` runs",
    ] {
        assert!(!all.contains(quiet), "{quiet}: {all}");
    }
    let (code, out, _) = wf(tmp.path(), &["--json", "check"]);
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(rows.len() >= 4, "{out}");
    for r in &rows {
        assert!(r["line"].as_u64().unwrap_or(0) > 0, "{r}");
        assert!(r["col"].as_u64().unwrap_or(0) > 0, "{r}");
        assert!(r["help"].is_string(), "{r}");
    }
}

#[test]
fn durations_after_an_approval_say_what_they_measure() {
    let tmp = workflow(
        "[task.a]\nrun = 'true'\n[task.gate]\nrun = 'true'\nneeds = ['a']\nmanual = true\n",
    );
    assert_eq!(wf(tmp.path(), &["run"]).0, 0);
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let (code, out, err) = wf(tmp.path(), &["approve", "gate"]);
    assert_eq!(code, 0, "{out}{err}");
    let done = out
        .lines()
        .chain(err.lines())
        .find(|l| l.contains("run 1 done"))
        .expect("done line");
    assert!(done.contains("since it started"), "{done}");
    assert!(done.contains("waiting at a manual gate"), "{done}");
    assert!(done.contains("this command took"), "{done}");
    let (_, out, _) = wf(tmp.path(), &["--json", "history", "1"]);
    let end: serde_json::Value = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .rfind(|v| v["event"] == "ended")
        .expect("ended entry");
    let (wall, running, waiting) = (
        end["wall_ms"].as_i64().expect("wall_ms"),
        end["running_ms"].as_i64().expect("running_ms"),
        end["waiting_ms"].as_i64().expect("waiting_ms"),
    );
    assert!(waiting >= 1_400, "{end}");
    assert!(wall >= waiting + running, "{end}");
    let (_, out, _) = wf(tmp.path(), &["--json", "history"]);
    let row: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("row")).expect("json");
    assert_eq!(row["wall_ms"].as_i64(), Some(wall), "{row}");
    let (_, out, _) = wf(tmp.path(), &["history", "1"]);
    assert!(out.contains("waiting at a manual gate"), "{out}");
    let page = tmp.path().join("run1.html");
    let (code, _, err) = wf(
        tmp.path(),
        &["history", "1", "--html", &page.to_string_lossy()],
    );
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("since it started"), "{html}");
    assert!(html.contains("waiting at a manual gate"), "{html}");
    // A run this command ran whole keeps the short form.
    let (_, out, err) = wf(tmp.path(), &["run", "--force", "a"]);
    let all = format!("{out}{err}");
    assert!(!all.contains("since it started"), "{all}");
}

/// Every command that prints, with its reader gone before the first byte (`| head -0`): wf stops
/// writing and exits 0 with nothing on stderr, the way ripgrep does — not exit 4 with "Broken pipe".
#[test]
fn a_reader_that_went_away_ends_every_command_quietly() {
    let tmp = workflow(
        "[task.a]\nrun = 'seq 1 20000'\n[task.b]\nrun = 'echo b'\nneeds = ['a']\nowner = 'ops'\n",
    );
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
        let mut child = common::command(tmp.path(), tmp.path())
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
    let tmp = workflow(
        "[workflow]\nname = \"データ処理\"\n[task.a]\nrun = 'true'\nowner = '日本チーム'\n\
         [task.b]\nrun = 'true'\nowner = 'zoë'\n[task.ingest_everything]\nrun = 'true'\n",
    );
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
