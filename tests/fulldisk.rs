//! A full disk: each test mounts a small tmpfs of its own (it needs root; otherwise it is skipped
//! with a line saying so), fills it to a chosen point, and checks what wf promises: ENOSPC anywhere
//! is exit 4 with one sentence naming the state directory (never a Rust debug string such as
//! `Os { code: 28, … }`); a task that succeeded is never failed because wf could not store its
//! checkpoint (wf stops, the run resumes and finishes once there is room); readers (`status`,
//! `history`) work on a full disk.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A tmpfs mounted on a temp directory, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) where this test cannot mount one.
    fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        let skip = |why: &str| {
            eprintln!("skipped {test}: {why}");
            None
        };
        if rustix::process::geteuid().as_raw() != 0 {
            return skip("mounting a small tmpfs needs root");
        }
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().canonicalize().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return skip("`mount -t tmpfs` failed (no privilege to mount here)");
        }
        Some(Tmpfs { path, _dir: dir })
    }

    /// Free bytes on the tmpfs.
    fn free(&self) -> u64 {
        rustix::fs::statvfs(&self.path)
            .map(|s| s.f_bavail * s.f_frsize)
            .unwrap_or(0)
    }

    /// Fill the disk until only about `leave` bytes are free (a `fill` file in `pad/`).
    fn fill_to(&self, leave: u64) {
        let pad = self.path.join("pad");
        let _ = std::fs::create_dir_all(&pad);
        let have = std::fs::metadata(pad.join("fill"))
            .map(|m| m.len())
            .unwrap_or(0);
        let want = (have + self.free()).saturating_sub(leave);
        let _ = std::fs::remove_file(pad.join("fill"));
        // A short write at the very end is expected when `leave` is 0.
        let _ = std::fs::write(pad.join("fill"), vec![0u8; want as usize]);
    }

    fn unfill(&self) {
        let _ = std::fs::remove_file(self.path.join("pad").join("fill"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn wf(dir: &Path, args: &[&str]) -> Out {
    let out = common::command(dir, dir)
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("WF_CGROUP", "off")
        .output()
        .expect("running wf");
    let o = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for text in [&o.stdout, &o.stderr] {
        assert!(
            !text.contains("Os {")
                && !text.contains("kind: StorageFull")
                && !text.contains("panicked"),
            "wf {args:?} printed a debug string: {text}"
        );
    }
    o
}

/// A task writes 2 MiB of random bytes (no dedup) and checkpoints them; a second one after it.
const FLOW: &str = r#"
[task.big]
run = "head -c 2097152 /dev/urandom > big.bin"
outputs = ["big.bin"]

[task.after]
needs = ["big"]
run = "true"
"#;

fn workspace(fs: &Tmpfs) -> PathBuf {
    let dir = fs.path.join("work");
    std::fs::create_dir_all(&dir).expect("workspace");
    std::fs::write(dir.join("wf.toml"), FLOW).expect("wf.toml");
    dir
}

#[test]
fn a_checkpoint_that_does_not_fit_stops_wf_not_the_task() -> TestResult {
    let Some(fs) = Tmpfs::mount(
        "a_checkpoint_that_does_not_fit_stops_wf_not_the_task",
        "16m",
    ) else {
        return Ok(());
    };
    let dir = workspace(&fs);
    // The state directory exists with its journal, so the run's first writes fit.
    let check = wf(&dir, &["run", "--only", "after"]);
    assert!(check.code <= 1, "{}", check.stderr);
    // Room for the journal's writes (a few KiB) and for the task's output (2 MiB), but not for
    // its copy in the store as well.
    fs.fill_to(3072 * 1024);
    let run = wf(&dir, &["run"]);
    assert_eq!(
        run.code, 4,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let state_dir = dir.join(".wf");
    let sentence = run.stderr.lines().last().unwrap_or_default();
    assert!(
        sentence.contains(&format!(
            "the disk holding the state directory {}",
            state_dir.display()
        )) && sentence.contains("is full")
            && sentence.contains("storing checkpoint big.bin of task big")
            && sentence.contains("free at least")
            && sentence.contains("wf resume"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("big failed"),
        "the task was blamed: {}",
        run.stdout
    );
    assert!(!run.stderr.contains("alert"), "{}", run.stderr);
    // Nothing half-stored is left in the object store.
    let tmp = state_dir.join("objects").join("tmp");
    let leftovers: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "temporary objects left: {leftovers:?}"
    );

    // Readers still work, and show the run as interrupted (resumable), not failed.
    let status = wf(&dir, &["status"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("interrupted"), "{}", status.stdout);

    // With room again, resume finishes the run.
    fs.unfill();
    let resume = wf(&dir, &["resume"]);
    assert_eq!(resume.code, 0, "{}{}", resume.stdout, resume.stderr);
    let status = wf(&dir, &["--json", "status"]);
    assert_eq!(
        status.stdout.matches("\"state\":\"done\"").count(),
        2,
        "{}",
        status.stdout
    );
    Ok(())
}

#[test]
fn readers_work_and_writers_say_so_on_a_full_disk() -> TestResult {
    let Some(fs) = Tmpfs::mount("readers_work_and_writers_say_so_on_a_full_disk", "16m") else {
        return Ok(());
    };
    let dir = workspace(&fs);
    let first = wf(&dir, &["run"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    std::fs::remove_file(dir.join("big.bin"))?;
    fs.fill_to(0);
    assert!(
        fs.free() < 64 * 1024,
        "the disk did not fill: {} free",
        fs.free()
    );

    for args in [
        &["status"][..],
        &["history"],
        &["history", "1"],
        &["status", "1"],
    ] {
        let o = wf(&dir, args);
        assert_eq!(o.code, 0, "wf {args:?} on a full disk: {}", o.stderr);
        assert!(o.stdout.contains("done"), "wf {args:?}: {}", o.stdout);
    }
    let logs = wf(&dir, &["logs", "1", "big"]);
    assert_eq!(logs.code, 0, "wf logs on a full disk: {}", logs.stderr);
    let json = wf(&dir, &["--json", "history"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    assert!(json.stdout.contains("\"run\":1"), "{}", json.stdout);

    let state_dir = dir.join(".wf");
    for args in [&["run", "--force"][..], &["resume"], &["gc"]] {
        let o = wf(&dir, args);
        if o.code == 0 {
            // Nothing to write (resume of a done run) is fine on a full disk.
            continue;
        }
        assert_eq!(o.code, 4, "wf {args:?}: {}{}", o.stdout, o.stderr);
        let last = o.stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains(&format!(
                "the disk holding the state directory {}",
                state_dir.display()
            )) && last.contains("is full"),
            "wf {args:?}: {}",
            o.stderr
        );
    }
    fs.unfill();
    let again = wf(&dir, &["run", "--force"]);
    assert_eq!(again.code, 0, "after freeing space: {}", again.stderr);
    Ok(())
}

/// Readers write nothing (issue #22): on a disk remounted read-only they answer exactly what they
/// answered before, from the index (no fallback to reading the record log, no warning), while a
/// writer says what is wrong.
#[test]
fn readers_answer_from_the_index_on_a_read_only_disk() -> TestResult {
    let Some(fs) = Tmpfs::mount("readers_answer_from_the_index_on_a_read_only_disk", "16m") else {
        return Ok(());
    };
    let dir = workspace(&fs);
    for _ in 0..3 {
        let o = wf(&dir, &["run", "--force"]);
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    let queries: [&[&str]; 7] = [
        &["status"],
        &["history"],
        &["history", "2"],
        &["--json", "history", "3"],
        &["history", "--task", "big"],
        &["logs", "2", "big"],
        &["state", "export"],
    ];
    let before: Vec<Out> = queries.iter().map(|q| wf(&dir, q)).collect();
    let ok = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&fs.path)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: remounting the tmpfs read-only failed");
        return Ok(());
    }
    // (An export's first line says when it was made.)
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("exported_at"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (q, b) in queries.iter().zip(&before) {
        let o = wf(&dir, q);
        assert_eq!(o.code, 0, "wf {q:?} on a read-only disk: {}", o.stderr);
        assert!(
            body(&o.stdout) == body(&b.stdout),
            "wf {q:?} answered differently"
        );
        assert_eq!(o.stderr, b.stderr, "wf {q:?} said more on a read-only disk");
    }
    let run = wf(&dir, &["run", "--force"]);
    assert_ne!(run.code, 0, "a run on a read-only disk succeeded");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let _ = Command::new("mount")
        .args(["-o", "remount,rw"])
        .arg(&fs.path)
        .status();
    Ok(())
}
