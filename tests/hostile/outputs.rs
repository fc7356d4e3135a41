//! Run time: outputs that lead outside the workflow directory.

use super::*;

const SECRET: &str = "wf-hostile: secret bytes that live outside the workflow directory\n";

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            found.extend(files_containing(&p, needle));
        } else if m.is_file() {
            let bytes = fs::read(&p).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(p);
            }
        }
    }
    found
}

/// How many files (not directories) are under `dir`.
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match fs::symlink_metadata(e.path()) {
            Ok(m) if m.is_dir() => count_files(&e.path()),
            _ => 1,
        })
        .sum()
}

/// The task status row of `task` in the latest run.
pub(super) fn status_of(sb: &Sandbox, task: &str) -> serde_json::Value {
    let out = sb.wf(&["--json", "status"], LIMIT);
    assert_eq!(out.code, 0, "wf --json status: {}", out.stderr);
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["task"] == task)
        .unwrap_or_else(|| panic!("no status row for {task}: {}", out.stdout))
}

/// A file outside the workflow directory, and its bytes and modification time.
pub(super) fn outside_secret(sb: &Sandbox) -> (PathBuf, std::time::SystemTime) {
    let dir = sb.root.join("home").join("outside");
    fs::create_dir_all(&dir).expect("creating the outside directory");
    let p = dir.join("secret.txt");
    fs::write(&p, SECRET).expect("writing the secret");
    let mtime = fs::metadata(&p).and_then(|m| m.modified()).expect("mtime");
    (p, mtime)
}

#[track_caller]
pub(super) fn assert_untouched(p: &Path, mtime: std::time::SystemTime) {
    assert_eq!(
        fs::read_to_string(p).expect("reading the outside file"),
        SECRET,
        "the outside file was changed"
    );
    assert_eq!(
        fs::metadata(p).and_then(|m| m.modified()).expect("mtime"),
        mtime,
        "the outside file was written"
    );
}

#[test]
fn an_output_that_is_a_link_outside_fails_and_is_never_copied() {
    let sb = Sandbox::new();
    let (secret, mtime) = outside_secret(&sb);
    sb.write(
        "wf.toml",
        format!(
            "[task.leak]\nrun = \"ln -s '{}' out.txt\"\noutputs = [\"out.txt\"]\n",
            secret.display()
        )
        .as_bytes(),
    );
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(
        out.code, 1,
        "the attempt should fail:\n{}\n{}",
        out.stdout, out.stderr
    );
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("out.txt") && all.contains("symbolic link"),
        "the failure should name the link: {all}"
    );
    let st = status_of(&sb, "leak");
    assert_eq!(st["state"], "failed", "{st}");
    let history = sb.wf(&["--json", "history", "1"], LIMIT);
    assert!(
        history.stdout.contains("output out.txt is a symbolic link"),
        "the journal should say why: {}",
        history.stdout
    );
    assert_untouched(&secret, mtime);
    let leaked = files_containing(&sb.work.join(".wf"), SECRET.as_bytes());
    assert!(
        leaked.is_empty(),
        "the outside file was copied into .wf: {leaked:?}"
    );
    assert_eq!(
        count_files(&sb.work.join(".wf/objects")),
        0,
        "something was checkpointed"
    );
    // The link is the task's; wf removed nothing and created nothing else beside it.
    fs::remove_dir_all(sb.root.join("home").join("outside")).expect("cleaning up");
    sb.assert_contained(&["wf.toml", "out.txt"], true, "after the run");
}

#[test]
fn a_relative_link_outside_fails_the_same_way() {
    let sb = Sandbox::new();
    let (secret, mtime) = outside_secret(&sb);
    sb.write(
        "wf.toml",
        b"[task.leak]\nrun = \"mkdir -p d && ln -s ../../home/outside/secret.txt d/out.txt\"\noutputs = [\"d/out.txt\"]\n",
    );
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("d/out.txt is a symbolic link"),
        "{}",
        out.stderr
    );
    assert_untouched(&secret, mtime);
    assert!(files_containing(&sb.work.join(".wf"), SECRET.as_bytes()).is_empty());
}

#[test]
fn an_output_below_a_linked_directory_outside_fails_and_is_never_copied() {
    let sb = Sandbox::new();
    let (secret, mtime) = outside_secret(&sb);
    let outside = secret.parent().expect("parent").to_path_buf();
    sb.write(
        "wf.toml",
        format!(
            "[task.leak]\nrun = \"ln -sfn '{}' sub\"\noutputs = [\"sub/secret.txt\"]\n",
            outside.display()
        )
        .as_bytes(),
    );
    let out = sb.wf(&["run"], LIMIT);
    let leaked = files_containing(&sb.work.join(".wf"), SECRET.as_bytes());
    // Whatever the run said, `wf restore` must never write outside the workflow directory.
    fs::write(&secret, "changed since\n").expect("changing the outside file");
    let restore = sb.wf(&["restore", "1"], LIMIT);
    let after = fs::read_to_string(&secret).unwrap_or_default();
    fs::write(&secret, SECRET).expect("resetting");
    let _ = mtime;
    assert!(
        leaked.is_empty(),
        "the outside file was copied into .wf: {leaked:?}"
    );
    assert_eq!(
        after, "changed since\n",
        "`wf restore 1` (exit {}) wrote outside the workflow directory",
        restore.code
    );
    assert_eq!(
        out.code, 1,
        "the attempt should fail: {}{}",
        out.stdout, out.stderr
    );
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("sub/secret.txt"),
        "the failure should name the output"
    );
}
