//! Terminal escapes: everything wf prints for people that came from a workflow file, a note, a
//! metric, a task, an error or the state directory reaches the terminal with its control characters
//! shown escaped; a task's output keeps its colours (on a terminal) and nothing else; `wf check`
//! refuses control characters in the names people read. Each test runs the real binary in a temp
//! workflow directory and scans every byte it printed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use common::WF;

/// What a hostile value looks like: clear the screen, set the window title, write the clipboard,
/// a C1 CSI, a bidi override, a newline.
const EVIL: &str = "a\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}]52;c;ZXZpbA==\u{7}\u{9b}1A\u{202e}b\nc";

struct Dir {
    _tmp: TempDir,
    path: PathBuf,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
    raw_stdout: Vec<u8>,
}

fn dir(toml: &str) -> Dir {
    let tmp = tempfile::Builder::new()
        .prefix("wf-escapes-")
        .tempdir()
        .expect("temp dir");
    let path = tmp.path().canonicalize().expect("canonical temp dir");
    fs::write(path.join("wf.toml"), toml).expect("writing wf.toml");
    Dir { _tmp: tmp, path }
}

fn wf(dir: &Path, args: &[&str]) -> Out {
    let out = common::command(dir, dir)
        .args(args)
        .env_remove("NO_COLOR")
        .env("WF_USER", "tester")
        .env("TERM", "xterm")
        .output()
        .expect("running wf");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        raw_stdout: out.stdout,
    }
}

/// Every line wf printed is free of control characters (its output is piped, so not even colour).
fn assert_clean(what: &str, text: &str) {
    for (n, line) in text.lines().enumerate() {
        if let Some(c) = line.chars().find(|c| {
            c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        }) {
            panic!(
                "{what}: line {} holds the raw control {c:?}: {line:?}",
                n + 1
            );
        }
    }
}

const FLOW: &str = r#"
[task.evil]
run = '''printf 'ok \033[1;31mred\033[0m \033[2J\033]0;title\007 \033[10;1H end\n'; printf 'rows=\033[2J9\nnote=x\033]52;c;AAAA\007y\n' >> "$WF_METRICS"; exit 0'''
owner = "data-eng"
log = ["rows", "note"]

[task.gate]
needs = ["evil"]
run = "true"
manual = true
"#;

#[test]
fn human_output_shows_every_control_escaped() {
    let d = dir(FLOW);
    let run = wf(&d.path, &["run"]);
    assert_eq!(run.code, 0, "run: {}{}", run.stdout, run.stderr);
    assert_clean("wf run (stdout)", &run.stdout);
    assert_clean("wf run (stderr)", &run.stderr);
    // The live echo kept the text of the task's line, escaped the rest, dropped colour (piped).
    assert!(
        run.stdout
            .contains("[evil] ok red \\x1b[2J\\x1b]0;title\\x07 \\x1b[10;1H end"),
        "live echo: {}",
        run.stdout
    );

    let note = wf(&d.path, &["approve", "1", "gate", "--note", EVIL]);
    assert_eq!(note.code, 0, "approve: {}{}", note.stdout, note.stderr);
    assert_clean("wf approve", &note.stdout);
    assert_clean("wf approve (stderr)", &note.stderr);

    for args in [
        &["status"][..],
        &["status", "1"],
        &["history"],
        &["history", "1"],
        &["history", "--task", "evil", "--metric", "rows"],
        &["history", "--task", "evil", "--metric", "note"],
        &["logs", "1", "evil"],
        &["gc", "--dry-run"],
        &["-v", "check"],
    ] {
        let o = wf(&d.path, args);
        assert_eq!(o.code, 0, "wf {args:?}: {}{}", o.stdout, o.stderr);
        assert_clean(&format!("wf {args:?}"), &o.stdout);
        assert_clean(&format!("wf {args:?} (stderr)"), &o.stderr);
    }
    let timeline = wf(&d.path, &["history", "1"]).stdout;
    assert!(timeline.contains("metric rows = \\x1b[2J9"), "{timeline}");
    assert!(
        timeline.contains("approved by tester: \"a\\x1b[2J\\x1b]0;pwned\\x07"),
        "{timeline}"
    );
    assert!(timeline.contains("\\u{9b}1A\\u{202e}b\\nc"), "{timeline}");

    // `--raw` gives the bytes as the task wrote them.
    let raw = wf(&d.path, &["logs", "1", "evil", "--raw"]);
    assert_eq!(raw.code, 0);
    assert!(raw.raw_stdout.windows(4).any(|w| w == b"\x1b[2J"));

    // JSON escapes by its own rules: valid JSON whose strings hold the original value.
    let json = wf(&d.path, &["--json", "history", "1"]);
    assert_eq!(json.code, 0);
    assert_clean("wf --json history 1", &json.stdout);
    let notes: Vec<String> = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("note").and_then(|n| n.as_str()).map(String::from))
        .collect();
    assert_eq!(notes, vec![EVIL.to_string()]);
}

#[test]
fn errors_that_quote_user_input_are_escaped() {
    let d = dir(FLOW);
    assert_eq!(wf(&d.path, &["run"]).code, 0);
    for args in [
        &["logs", "1", EVIL][..],
        &["approve", "1", EVIL],
        &["reject", "1", EVIL, "--note", EVIL],
        &["history", "--since", EVIL],
        &["restore", "1", EVIL],
        &["--state-dir", EVIL, "status"],
        &["-f", EVIL, "check"],
    ] {
        let o = wf(&d.path, args);
        assert_clean(&format!("wf {args:?} (stdout)"), &o.stdout);
        assert_clean(&format!("wf {args:?} (stderr)"), &o.stderr);
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    }
}

#[test]
fn check_refuses_control_characters_in_names_people_read() {
    for (what, toml, at) in [
        (
            "owner with a screen clear",
            "[task.a]\nrun = \"true\"\nowner = \"x\\u001b[2Jy\"\n",
            "wf.toml:3:9",
        ),
        (
            "owner with a newline",
            "[task.a]\nrun = \"true\"\nowner = \"x\\ny\"\n",
            "wf.toml:3:9",
        ),
        (
            "owner with a bidi override",
            "[task.a]\nrun = \"true\"\nowner = \"x\u{202e}y\"\n",
            "wf.toml:3:9",
        ),
        (
            "owner with a C1 CSI",
            "[task.a]\nrun = \"true\"\nowner = \"x\\u009b2Jy\"\n",
            "wf.toml:3:9",
        ),
        (
            "workflow name with an OSC",
            "[workflow]\nname = \"x\\u001b]0;t\\u0007\"\n[task.a]\nrun = \"true\"\n",
            "wf.toml:2:8",
        ),
    ] {
        let d = dir(toml);
        let o = wf(&d.path, &["check"]);
        assert_eq!(o.code, 2, "{what}: {}{}", o.stdout, o.stderr);
        assert!(
            o.stderr.contains(at) && o.stderr.contains("contains a control character"),
            "{what}: {}",
            o.stderr
        );
        assert_clean(what, &o.stderr);
        assert!(!d.path.join(".wf").exists(), "{what}: check wrote a state");
    }
}

#[test]
fn a_hostile_state_prints_escaped() {
    // A state directory is data too: an export edited to carry escapes in an owner, a user and a
    // workflow name, imported, then shown.
    let d = dir(FLOW);
    assert_eq!(wf(&d.path, &["run"]).code, 0);
    let export = wf(&d.path, &["state", "export"]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let evil_json = serde_json::to_string(EVIL).expect("json string");
    let edited = export
        .stdout
        .replace("\"data-eng\"", &evil_json)
        .replace("\"tester\"", &evil_json);
    assert_ne!(edited, export.stdout, "the export names the owner and user");
    let import = d.path.join("edited.jsonl");
    fs::write(&import, edited).expect("writing the edited export");
    let other = d.path.join("other");
    let i = wf(
        &d.path,
        &[
            "--state-dir",
            other.to_str().expect("utf-8 path"),
            "state",
            "import",
            import.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(i.code, 0, "import: {}{}", i.stdout, i.stderr);
    for args in [&["status"][..], &["history"], &["history", "1"]] {
        let mut full = vec!["--state-dir", other.to_str().expect("utf-8 path")];
        full.extend_from_slice(args);
        let o = wf(&d.path, &full);
        assert_eq!(o.code, 0, "wf {args:?}: {}{}", o.stdout, o.stderr);
        assert_clean(&format!("wf {args:?}"), &o.stdout);
        assert_clean(&format!("wf {args:?} (stderr)"), &o.stderr);
    }
    let status = wf(
        &d.path,
        &["--state-dir", other.to_str().expect("utf-8 path"), "status"],
    );
    assert!(status.stdout.contains("a\\x1b[2J"), "{}", status.stdout);
}

#[test]
fn names_from_the_environment_and_the_file_system_are_escaped() {
    // The user who runs wf is journaled and shown; the workflow directory's name is shown as the
    // workflow's name and in paths; an unknown key is quoted by `wf check`.
    let tmp = tempfile::Builder::new()
        .prefix("wf-escapes-")
        .tempdir()
        .expect("temp dir");
    let root = tmp.path().canonicalize().expect("canonical temp dir");
    let evil_dir = root.join("proj\u{1b}]0;x\u{7}\u{1b}[2J");
    fs::create_dir(&evil_dir).expect("an evil directory name");
    fs::write(
        evil_dir.join("wf.toml"),
        "[task.a]\nrun = \"true\"\n\"k\\u001b[2J\" = 1\n",
    )
    .expect("writing wf.toml");
    let check = wf(&evil_dir, &["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.contains("unknown key"), "{}", check.stderr);
    assert_clean("wf check of an unknown key", &check.stderr);

    fs::write(evil_dir.join("wf.toml"), "[task.a]\nrun = \"true\"\n").expect("wf.toml");
    let run = common::command(&evil_dir, &evil_dir)
        .arg("run")
        .env("WF_USER", EVIL)
        .output()
        .expect("running wf");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_clean("wf run", &String::from_utf8_lossy(&run.stdout));
    assert_clean("wf run (stderr)", &String::from_utf8_lossy(&run.stderr));
    for args in [
        &["status"][..],
        &["history"],
        &["history", "1"],
        &["-v", "check"],
    ] {
        let o = wf(&evil_dir, args);
        assert_eq!(o.code, 0, "wf {args:?}: {}", o.stderr);
        assert_clean(&format!("wf {args:?}"), &o.stdout);
        assert_clean(&format!("wf {args:?} (stderr)"), &o.stderr);
    }
    let status = wf(&evil_dir, &["status"]);
    assert!(status.stdout.contains("by a\\x1b[2J"), "{}", status.stdout);
    // An error naming the evil path.
    let missing = wf(&evil_dir, &["restore", "9"]);
    assert_ne!(missing.code, 0);
    assert_clean("wf restore 9 (stderr)", &missing.stderr);
}

/// Every escape sequence in `bytes` is a colour (SGR) or wf's own erase-line of its status line.
fn only_colour_sequences(bytes: &[u8]) -> Result<(), String> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1b {
            let rest = &bytes[i + 1..];
            let params = rest
                .iter()
                .skip(1)
                .take_while(|b| b.is_ascii_digit() || **b == b';')
                .count();
            let fin = rest.get(1 + params).copied();
            let ok = rest.first() == Some(&b'[')
                && (fin == Some(b'm') || (fin == Some(b'K') && &rest[1..1 + params] == b"2"));
            if !ok {
                let end = (i + 12).min(bytes.len());
                return Err(format!(
                    "a raw escape sequence: {:?}",
                    String::from_utf8_lossy(&bytes[i..end])
                ));
            }
            i += 2 + params + 1;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[test]
fn on_a_terminal_a_task_keeps_its_colours_and_nothing_else() {
    // `script` (util-linux) gives wf a pseudo-terminal.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped on_a_terminal_a_task_keeps_its_colours_and_nothing_else: no `script` to make a pseudo-terminal");
        return;
    }
    let d = dir(FLOW);
    let on_tty = |args: &str| {
        Command::new("script")
            .args(["-qec", &format!("{WF} {args}"), "/dev/null"])
            .current_dir(&d.path)
            .env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .env("WF_USER", "tester")
            .output()
            .expect("running wf under script")
            .stdout
    };
    for (args, what) in [("run", "the live echo"), ("logs 1 evil", "wf logs")] {
        let out = on_tty(args);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("ok \u{1b}[1;31mred\u{1b}[0m \\x1b[2J\\x1b]0;title\\x07 \\x1b[10;1H end"),
            "{what} on a terminal: {text:?}"
        );
        if let Err(e) = only_colour_sequences(&out) {
            panic!("{what} on a terminal: {e}\n{text:?}");
        }
    }
    let raw = on_tty("logs 1 evil --raw");
    assert!(
        raw.windows(4).any(|w| w == b"\x1b[2J"),
        "--raw keeps the bytes"
    );
}
