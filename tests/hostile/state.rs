//! The state directory as a trust boundary: links, FIFOs and rotten objects planted in `.wf`,
//! a state of another workflow, modes under any umask, an old state without an identity.

use super::outputs::{assert_untouched, outside_secret, status_of};
use super::*;

// Each case plants something inside `.wf` of a workflow that has run once (a checkpoint, a
// metric, an attempt log), then runs every writer and reader against it. Whatever wf answers —
// the expected exit code, or 0 where wf can go on without the planted name — a decoy tree outside
// the workflow directory (files named like the ones wf writes and deletes there) must be exactly
// as it was: same names, bytes, kinds and modes.

/// The workflow of the state cases: a checkpointed output, a metric and a log line.
const STATE_WF: &[u8] = b"[workflow]\nname = \"trust\"\n[task.a]\nrun = \"echo made > o.txt; echo rows=3 >> $WF_METRICS; echo logged\"\noutputs = [\"o.txt\"]\n";

/// The object hash of o.txt's content (`made\n`).
fn made_hash() -> String {
    blake3::hash(b"made\n").to_hex().to_string()
}

/// The decoy tree outside the workflow directory: a directory with files named like the ones wf
/// writes or deletes in `.wf` (an object, an attempt log, a lock, a temporary object, the engine
/// log), and a lone file.
fn decoy(sb: &Sandbox) -> PathBuf {
    let d = sb.root.join("home").join("decoy");
    fs::create_dir_all(&d).expect("creating the decoy");
    for name in [
        made_hash().as_str(),
        "a.1.log",
        "a.1.metrics",
        "lock",
        "12345.678",
        "wf.jsonl",
        "file",
    ] {
        fs::write(d.join(name), format!("decoy {name}\n")).expect("writing a decoy");
    }
    d
}

/// Every name under `dir` with its kind, mode and bytes (links not followed).
fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).to_path_buf();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let mode = m.permissions().mode();
            if m.is_dir() {
                out.insert(rel, format!("dir {mode:o}"));
                walk(base, &p, out);
            } else if m.file_type().is_symlink() {
                let to = fs::read_link(&p).unwrap_or_default();
                out.insert(rel, format!("link {}", to.display()));
            } else {
                let bytes = fs::read(&p).unwrap_or_default();
                out.insert(
                    rel,
                    format!("file {mode:o} {}", blake3::hash(&bytes).to_hex()),
                );
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A sandbox whose workflow has run once (run 1: `a` done with its checkpoint, metric and log).
fn state_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("wf.toml", STATE_WF);
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(out.code, 0, "the first run failed: {}", out.stderr);
    sb
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo")
        .arg(p)
        .status()
        .expect("running mkfifo");
    assert!(st.success(), "mkfifo {}", p.display());
}

fn replace_with_link(p: &Path, to: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).expect("removing a directory"),
        Ok(_) => fs::remove_file(p).expect("removing a file"),
        Err(_) => {}
    }
    std::os::unix::fs::symlink(to, p).expect("planting a link");
}

/// One planted thing: what it is, how to plant it (the `.wf` path, the decoy), and the exit code
/// every command must give (`None`: 0 or 5 — wf may go on without the planted name — but never
/// anything else).
struct Plant {
    name: &'static str,
    plant: fn(&Path, &Path),
    code: Option<i32>,
    /// What readers answer, when it differs from `code` (a planted name only writers use).
    readers: Option<i32>,
}

fn plants() -> Vec<Plant> {
    vec![
        Plant {
            name: "objects/tmp is a link to a directory outside",
            plant: |s, d| replace_with_link(&s.join("objects/tmp"), d),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "an object fan-out directory is a link outside",
            plant: |s, d| replace_with_link(&s.join("objects").join(&made_hash()[..2]), d),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "logs is a link outside",
            plant: |s, d| replace_with_link(&s.join("logs"), d),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "a run's log directory is a link outside",
            plant: |s, d| replace_with_link(&s.join("logs/1"), d),
            code: None,
            readers: None,
        },
        Plant {
            name: "an attempt's log is a link to a file outside",
            plant: |s, d| replace_with_link(&s.join("logs/1/a.1.log"), &d.join("a.1.log")),
            code: None,
            readers: None,
        },
        Plant {
            name: "an attempt's metrics file is a link to a file outside",
            plant: |s, d| replace_with_link(&s.join("logs/1/a.1.metrics"), &d.join("a.1.metrics")),
            code: None,
            readers: None,
        },
        Plant {
            name: "the engine log is a link to a file outside",
            plant: |s, d| replace_with_link(&s.join("logs/wf.jsonl"), &d.join("wf.jsonl")),
            code: None,
            readers: None,
        },
        Plant {
            name: "a stored object is a link to a file outside",
            plant: |s, d| {
                let h = made_hash();
                replace_with_link(&s.join("objects").join(&h[..2]).join(&h), &d.join(&h))
            },
            code: None,
            readers: None,
        },
        Plant {
            name: "lock is a link to a file outside",
            plant: |s, d| replace_with_link(&s.join("lock"), &d.join("lock")),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "lock is a FIFO",
            plant: |s, _| {
                let _ = fs::remove_file(s.join("lock"));
                mkfifo(&s.join("lock"));
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "live.jsonl is a link to a file outside",
            plant: |s, d| replace_with_link(&s.join("live.jsonl"), &d.join("file")),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "journal.log is a link to a copy outside",
            plant: |s, d| {
                fs::copy(s.join("journal.log"), d.join("journal.log")).expect("copying the log");
                replace_with_link(&s.join("journal.log"), &d.join("journal.log"))
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "VERSION is a link",
            plant: |s, d| {
                fs::copy(s.join("VERSION"), d.join("VERSION")).expect("copying VERSION");
                replace_with_link(&s.join("VERSION"), &d.join("VERSION"))
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "the index's log is a link to a copy outside",
            plant: |s, d| {
                let log = index_log(&s.join("journal"));
                fs::copy(&log, d.join("index.log")).expect("copying the index log");
                replace_with_link(&log, &d.join("index.log"))
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "the detail index's log is a link to a copy outside",
            plant: |s, d| {
                let log = index_log(&s.join("journal/detail"));
                fs::copy(&log, d.join("detail.log")).expect("copying the index log");
                replace_with_link(&log, &d.join("detail.log"))
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "the journal directory is a link to a copy outside",
            plant: |s, d| {
                let to = d.join("journal");
                Command::new("cp")
                    .arg("-a")
                    .arg(s.join("journal"))
                    .arg(&to)
                    .status()
                    .expect("cp -a");
                replace_with_link(&s.join("journal"), &to)
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "WORKFLOW is a link",
            plant: |s, d| replace_with_link(&s.join("WORKFLOW"), &d.join("file")),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "an object fan-out directory is a FIFO",
            plant: |s, _| {
                let p = s.join("objects").join(&made_hash()[..2]);
                fs::remove_dir_all(&p).expect("removing the fan-out directory");
                mkfifo(&p);
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "objects/tmp is a regular file",
            plant: |s, _| {
                let _ = fs::remove_dir_all(s.join("objects/tmp"));
                fs::write(s.join("objects/tmp"), b"x").expect("writing objects/tmp");
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "lock is a hard link to a file outside",
            plant: |s, d| {
                let _ = fs::remove_file(s.join("lock"));
                fs::hard_link(d.join("lock"), s.join("lock")).expect("hard link");
            },
            code: Some(5),
            // Readers never write `lock`.
            readers: Some(0),
        },
        Plant {
            name: "the next run's attempt log is a link to a file outside",
            plant: |s, d| {
                fs::create_dir_all(s.join("logs/2")).expect("mkdir logs/2");
                std::os::unix::fs::symlink(d.join("a.1.log"), s.join("logs/2/a.1.log"))
                    .expect("link");
            },
            code: None,
            readers: None,
        },
        Plant {
            name: "the next run's attempt log is a hard link to a file outside",
            plant: |s, d| {
                fs::create_dir_all(s.join("logs/2")).expect("mkdir logs/2");
                fs::hard_link(d.join("a.1.log"), s.join("logs/2/a.1.log")).expect("hard link");
            },
            code: None,
            readers: None,
        },
        Plant {
            name: "the next run's metrics file is a hard link to a file outside",
            plant: |s, d| {
                fs::create_dir_all(s.join("logs/2")).expect("mkdir logs/2");
                fs::hard_link(d.join("a.1.metrics"), s.join("logs/2/a.1.metrics"))
                    .expect("hard link");
            },
            code: None,
            readers: None,
        },
        Plant {
            name: "the next run's log directory is a FIFO",
            plant: |s, _| mkfifo(&s.join("logs/2")),
            code: None,
            readers: None,
        },
        Plant {
            name: "objects/tmp holds a link and a FIFO",
            plant: |s, d| {
                fs::create_dir_all(s.join("objects/tmp")).expect("mkdir tmp");
                std::os::unix::fs::symlink(d.join("12345.678"), s.join("objects/tmp/12345.678"))
                    .expect("link");
                mkfifo(&s.join("objects/tmp/fifo"));
            },
            code: Some(0),
            readers: None,
        },
    ]
}

/// The commands each plant is tried with, in order (writers and readers).
const STATE_COMMANDS: [&[&str]; 8] = [
    &["run", "--force"],
    &["restore", "1"],
    &["gc", "--now", "+400d"],
    &["run"],
    &["status"],
    &["history"],
    &["history", "1"],
    &["logs", "1", "a"],
];

#[test]
fn links_and_fifos_planted_in_the_state_directory_never_reach_outside() {
    let mut problems = Vec::new();
    for p in plants() {
        let sb = state_sandbox();
        let decoy = decoy(&sb);
        (p.plant)(&sb.work.join(".wf"), &decoy);
        let before = tree(&decoy);
        assert!(!before.is_empty());
        for args in STATE_COMMANDS {
            let out = sb.wf(args, LIMIT);
            let readers = matches!(args[0], "status" | "history" | "logs");
            let code = if readers {
                p.readers.or(p.code)
            } else {
                p.code
            };
            let ok = match code {
                // A reader may have nothing to show after a refused writer (exit 2 for an unknown
                // run or attempt is an answer, not a failure).
                Some(c) => out.code == c || (readers && out.code == 2 && c == 0),
                None => [0, 2, 5].contains(&out.code),
            };
            if !ok {
                problems.push(format!(
                    "{}: `{}` exited {} (wanted {:?}): {}",
                    p.name,
                    out.what,
                    out.code,
                    p.code,
                    clip(&out.stderr)
                ));
            }
            if out.code == 5 && out.stderr.lines().filter(|l| !l.trim().is_empty()).count() != 1 {
                problems.push(format!(
                    "{}: `{}` refused in more than one line: {}",
                    p.name,
                    out.what,
                    clip(&out.stderr)
                ));
            }
            let after = tree(&decoy);
            if after != before {
                let changed: Vec<_> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .map(|(k, _)| k.display().to_string())
                    .chain(
                        before
                            .keys()
                            .filter(|k| !after.contains_key(*k))
                            .map(|k| format!("removed {}", k.display())),
                    )
                    .collect();
                problems.push(format!(
                    "{}: `{}` (exit {}) CHANGED THE DECOY OUTSIDE: {changed:?}",
                    p.name, out.what, out.code
                ));
                break;
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_refused_state_directory_is_left_exactly_as_it_was() {
    // Planted links are refused before the lock is taken: not one byte of `.wf` changes.
    for (what, rel) in [
        ("objects/tmp", "objects/tmp"),
        ("logs", "logs"),
        ("lock", "lock"),
    ] {
        let sb = state_sandbox();
        let decoy = decoy(&sb);
        let s = sb.work.join(".wf");
        replace_with_link(
            &s.join(rel),
            &decoy.join(if rel == "lock" { "lock" } else { "" }),
        );
        let before = tree(&s);
        for args in [&["run"][..], &["gc"], &["restore", "1"], &["status"]] {
            let out = sb.wf(args, LIMIT);
            assert_eq!(out.code, 5, "{what}: {}", out.stderr);
            assert!(out.stderr.contains(rel), "{what}: {}", out.stderr);
            assert_eq!(tree(&s), before, "{what}: `{}` changed .wf", out.what);
        }
    }
}

#[test]
fn restore_replaces_a_planted_link_and_never_writes_through_it() {
    let sb = state_sandbox();
    let (secret, mtime) = outside_secret(&sb);
    fs::remove_file(sb.work.join("o.txt")).expect("removing o.txt");
    std::os::unix::fs::symlink(&secret, sb.work.join("o.txt")).expect("planting a link");
    let out = sb.wf(&["restore", "1"], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_untouched(&secret, mtime);
    let m = fs::symlink_metadata(sb.work.join("o.txt")).expect("o.txt");
    assert!(m.is_file(), "o.txt is not a regular file after restore");
    assert_eq!(
        fs::read_to_string(sb.work.join("o.txt")).expect("o.txt"),
        "made\n"
    );
    // No temporary file is left beside it.
    let left: Vec<_> = fs::read_dir(&sb.work)
        .expect("listing")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("wf-restore"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A link on the way to an output is refused, and nothing is written outside.
    sb.write(
        "wf.toml",
        b"[workflow]\nname = \"trust\"\n[task.a]\nrun = \"mkdir -p d; echo made > d/o.txt\"\noutputs = [\"d/o.txt\"]\n",
    );
    assert_eq!(sb.wf(&["run"], LIMIT).code, 0);
    fs::remove_dir_all(sb.work.join("d")).expect("removing d");
    let outside = secret.parent().expect("parent").to_path_buf();
    std::os::unix::fs::symlink(&outside, sb.work.join("d")).expect("planting a link");
    let before = tree(&outside);
    let out = sb.wf(&["restore", "2"], LIMIT);
    assert_ne!(out.code, 0, "restore wrote through d: {}", out.stdout);
    assert_eq!(tree(&outside), before, "restore wrote outside");
}

#[test]
fn a_rotten_object_is_never_materialised() {
    let sb = state_sandbox();
    let h = made_hash();
    let obj = sb.work.join(".wf/objects").join(&h[..2]).join(&h);
    fs::write(&obj, b"rotten\n").expect("rotting the object");
    fs::remove_file(sb.work.join("o.txt")).expect("removing o.txt");
    // restore refuses, naming the object; nothing is put in place.
    let out = sb.wf(&["restore", "1"], LIMIT);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains(&h), "{}", out.stderr);
    assert!(
        !sb.work.join("o.txt").exists(),
        "a rotten object was restored"
    );
    // `wf state verify` names it.
    let out = sb.wf(&["state", "verify"], LIMIT);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains(&h) || out.stdout.contains(&h),
        "{}",
        out.stderr
    );
    // A cache hit on it becomes a miss: the task runs (and the store gets a good copy again).
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("damaged"), "no warning: {}", out.stdout);
    assert_eq!(
        fs::read_to_string(sb.work.join("o.txt")).expect("o.txt"),
        "made\n"
    );
    assert_eq!(status_of(&sb, "a")["cached"], false);
    assert_eq!(
        fs::read(&obj).expect("object"),
        b"made\n",
        "the object was not healed"
    );
    assert_eq!(sb.wf(&["state", "verify"], LIMIT).code, 0);
    // An object a checkpoint still needs, gone: verify names it too.
    fs::remove_file(&obj).expect("removing the object");
    let out = sb.wf(&["state", "verify"], LIMIT);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("missing") && out.stderr.contains(&h),
        "{}",
        out.stderr
    );
}

#[test]
fn a_state_of_another_workflow_is_refused_for_writes() {
    let a = state_sandbox();
    let b = Sandbox::new();
    b.write(
        "wf.toml",
        b"[workflow]\nname = \"other\"\n[task.g]\nmanual = true\nrun = \"true\"\n",
    );
    Command::new("cp")
        .arg("-a")
        .arg(a.work.join(".wf"))
        .arg(b.work.join(".wf"))
        .status()
        .expect("copying the state");
    let s = b.work.join(".wf");
    let before = tree(&s);
    for args in [&["run"][..], &["restore", "1"], &["gc"], &["resume"]] {
        let out = b.wf(args, LIMIT);
        assert_eq!(out.code, 5, "`{}`: {}", out.what, out.stderr);
        assert!(
            out.stderr.contains("`trust`") && out.stderr.contains("`other`"),
            "the refusal names both workflows: {}",
            out.stderr
        );
        assert!(out.stderr.contains("wf state adopt"), "{}", out.stderr);
        assert_eq!(tree(&s), before, "`{}` changed the refused state", out.what);
    }
    assert!(
        !b.work.join("o.txt").exists(),
        "the other project's files were restored"
    );
    // Readers still show it.
    assert_eq!(b.wf(&["history"], LIMIT).code, 0);
    // Approving a task that is not in this workflow is a usage error.
    let out = b.wf(&["approve", "a"], LIMIT);
    assert_eq!(out.code, 2, "{}", out.stderr);
    // The deliberate way through.
    let out = b.wf(&["state", "adopt"], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = b.wf(&["run"], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// Run wf under a given umask (through sh, which sets it).
fn wf_umask(sb: &Sandbox, umask: &str, args: &[&str]) -> i32 {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(WF)
        .args(args)
        .current_dir(&sb.work)
        .env("WF_USER", "tester")
        .env("HOME", sb.root.join("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.status().expect("running wf").code().unwrap_or(-1)
}

#[test]
fn state_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.write("wf.toml", STATE_WF);
    assert_eq!(wf_umask(&sb, "000", &["run"]), 0);
    assert_eq!(wf_umask(&sb, "000", &["run", "--force"]), 0);
    assert_eq!(wf_umask(&sb, "000", &["restore", "1"]), 0);
    assert_eq!(wf_umask(&sb, "000", &["gc", "--now", "+400d"]), 0);
    assert_eq!(wf_umask(&sb, "000", &["status"]), 0);
    let mut open = Vec::new();
    for (p, what) in tree(&sb.work.join(".wf")) {
        let mode = fs::symlink_metadata(sb.work.join(".wf").join(&p))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        if mode & 0o077 != 0 {
            open.push(format!("{} {mode:o} ({what})", p.display()));
        }
    }
    assert!(open.is_empty(), "not private under umask 000: {open:?}");
    // Tasks and restored outputs keep the user's umask: they are the workspace's, not wf's.
    let mode = fs::metadata(sb.work.join("o.txt"))
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    assert_eq!(mode, 0o666, "o.txt");
}

#[test]
fn a_group_writable_state_directory_is_warned_about_once() {
    use std::os::unix::fs::PermissionsExt;
    let sb = state_sandbox();
    fs::set_permissions(sb.work.join(".wf"), fs::Permissions::from_mode(0o777)).expect("chmod");
    for args in [&["status"][..], &["run"]] {
        let out = sb.wf(args, LIMIT);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.stderr.matches("writable by group or others").count(),
            1,
            "`{}`: {}",
            out.what,
            out.stderr
        );
    }
    fs::set_permissions(sb.work.join(".wf"), fs::Permissions::from_mode(0o700)).expect("chmod");
    let out = sb.wf(&["status"], LIMIT);
    assert!(!out.stderr.contains("writable"), "{}", out.stderr);
}

#[test]
fn an_old_state_without_an_identity_keeps_opening_and_is_adopted_by_its_first_writer() {
    let sb = Sandbox::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("state/tests/data/v1");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&fixture)
        .arg(sb.work.join(".wf"))
        .status()
        .expect("copying the fixture");
    assert!(st.success());
    assert!(!sb.work.join(".wf/WORKFLOW").exists());
    sb.write(
        "wf.toml",
        b"[workflow]\nname = \"homework\"\n[task.t]\nrun = \"true\"\n",
    );
    assert_eq!(sb.wf(&["history"], LIMIT).code, 0);
    assert!(
        !sb.work.join(".wf/WORKFLOW").exists(),
        "a reader recorded an identity"
    );
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = fs::read_to_string(sb.work.join(".wf/WORKFLOW")).expect("WORKFLOW");
    assert!(id.contains("\"homework\""), "{id}");
    // From now on it is this workflow's: another name is refused.
    sb.write(
        "wf.toml",
        b"[workflow]\nname = \"renamed\"\n[task.t]\nrun = \"true\"\n",
    );
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("`homework`") && out.stderr.contains("`renamed`"));
    assert_eq!(sb.wf(&["state", "adopt"], LIMIT).code, 0);
    assert_eq!(sb.wf(&["run"], LIMIT).code, 0);
}

/// The current delta log of the index in `dir` (`index.G.log`, the newest generation).
fn index_log(dir: &Path) -> PathBuf {
    let newest = fs::read_dir(dir)
        .expect("listing the index")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let g: u64 = name
                .strip_prefix("index.")?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((g, e.path()))
        })
        .max();
    newest.expect("an index log").1
}
