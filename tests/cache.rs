//! The cache is never wrong: each way a stale result could be reused (issue 25) — a need outside
//! the run's plan, an input changed while its task ran, an upstream that is not checkpointed or
//! has no outputs, a renamed task or workflow — and the needless misses (symbolic links, list
//! order, switching plans); and the journaled reason for each hit and miss.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

mod common;

/// A workflow directory (tests/common) with this file's ways of running wf.
struct T(common::Workdir);

impl std::ops::Deref for T {
    type Target = common::Workdir;

    fn deref(&self) -> &common::Workdir {
        &self.0
    }
}

impl T {
    fn new(toml: &str) -> T {
        T(common::Workdir::new(toml))
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.command(args)
    }

    fn wf(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("run wf");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        out
    }

    /// Run wf, which must succeed; its stdout and stderr together.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.wf(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "wf {args:?} exited {:?}: {text}",
            out.status.code()
        );
        text
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.wf(&a);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    /// The tasks that executed (each command appends its name to `execs`), then forget them.
    fn execs(&self) -> Vec<String> {
        let v = self.read("execs").lines().map(str::to_string).collect();
        let _ = std::fs::remove_file(self.dir.join("execs"));
        v
    }

    /// The journaled cache decisions of the latest run: task → (hit, why).
    fn decisions(&self) -> Vec<(String, bool, String)> {
        let run = self.json(&["status"])[0]["run"].clone();
        self.json(&["history", &run.to_string()])
            .into_iter()
            .filter(|e| e["kind"] == "cache")
            .map(|e| {
                (
                    e["task"].as_str().unwrap_or("").to_string(),
                    e["hit"] == true,
                    e["why"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn why(&self, task: &str) -> String {
        self.decisions()
            .into_iter()
            .rev()
            .find(|(t, _, _)| t == task)
            .map(|(_, _, w)| w)
            .unwrap_or_default()
    }
}

/// `a` copies in.txt to mid.txt; `b` needs `a` and reads mid.txt without declaring it.
const CHAIN: &str = r#"
[workflow]
name = "chain"

[task.a]
run = "echo a >> execs; cp in.txt mid.txt"
inputs = ["in.txt"]
outputs = ["mid.txt"]

[task.b]
run = "echo b >> execs; tr a-z A-Z < mid.txt > out.txt"
needs = ["a"]
outputs = ["out.txt"]
"#;

#[test]
fn a_need_outside_the_plan_is_part_of_the_key() {
    let t = T::new(CHAIN);
    t.write("in.txt", "one\n");
    t.ok(&["run", "--only", "a"]);
    t.ok(&["run", "--only", "b"]);
    assert_eq!(t.execs(), ["a", "b"]);
    assert_eq!(t.read("out.txt"), "ONE\n");
    t.write("in.txt", "two\n");
    t.ok(&["run", "--only", "a"]);
    t.ok(&["run", "--only", "b"]);
    assert_eq!(t.execs(), ["a", "b"], "b was a false cache hit");
    assert_eq!(t.read("out.txt"), "TWO\n");
    assert_eq!(
        t.why("b"),
        "mid.txt (an output of upstream a) changed",
        "{:?}",
        t.decisions()
    );
    // --from b after mid.txt changed (here by hand).
    t.write("mid.txt", "three\n");
    t.ok(&["run", "--from", "b"]);
    assert_eq!(t.execs(), ["b"]);
    assert_eq!(t.read("out.txt"), "THREE\n");
}

#[test]
fn the_key_is_the_same_whatever_the_plan() {
    let t = T::new(CHAIN);
    t.write("in.txt", "one\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["a", "b"]);
    // Full run, then --only, --from, full, --only both: nothing runs.
    t.ok(&["run", "--only", "b"]);
    t.ok(&["run", "--from", "a"]);
    t.ok(&["run", "--from", "b"]);
    t.ok(&["run", "--only", "a", "b"]);
    t.ok(&["run"]);
    assert_eq!(t.execs(), Vec::<String>::new(), "a plan change was a miss");
    // And the other way: results of --only runs are hits for a full run.
    t.write("in.txt", "two\n");
    t.ok(&["run", "--only", "a"]);
    t.ok(&["run", "--only", "b"]);
    assert_eq!(t.execs(), ["a", "b"]);
    t.ok(&["run"]);
    assert_eq!(t.execs(), Vec::<String>::new());
    let d = t.decisions();
    assert!(d.iter().all(|(_, hit, _)| *hit), "{d:?}");
    assert!(d[0].2.starts_with("same inputs as run "), "{d:?}");
}

#[test]
fn an_input_changed_while_its_task_ran_is_not_cached() {
    let t = T::new(
        r#"
[task.slow]
run = "echo slow >> execs; sleep 2; cat in.txt > out.txt"
inputs = ["in.txt"]
outputs = ["out.txt"]
"#,
    );
    t.write("in.txt", "old\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["slow"]);
    // Rewritten once the task has started (its key was made before), while it sleeps.
    let run = t
        .cmd(&["run", "--force"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wf");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !t.dir.join("execs").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    t.write("in.txt", "new\n");
    let out = run.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("input in.txt changed while the task ran")
            && err.contains("kept but not cached"),
        "{err}"
    );
    let run = t.json(&["status"])[0]["run"].clone();
    let tl = t.json(&["history", &run.to_string()]);
    assert!(
        tl.iter().any(|e| e["kind"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("in.txt changed while the task ran"))),
        "{tl:#?}"
    );
    assert!(
        !tl.iter().any(|e| e["kind"] == "fingerprint"),
        "the result was recorded as cacheable: {tl:#?}"
    );
    t.execs();
    // With the old content back, the old result (old) comes back from the cache, never "new".
    t.write("in.txt", "old\n");
    t.ok(&["run"]);
    assert_eq!(t.read("out.txt"), "old\n");
    // With the new content, the task runs (no result was recorded for it).
    t.write("in.txt", "new\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["slow"]);
    assert_eq!(t.read("out.txt"), "new\n");
}

#[test]
fn an_upstream_that_is_not_checkpointed_is_part_of_the_key() {
    let t = T::new(&CHAIN.replace(
        "outputs = [\"mid.txt\"]",
        "outputs = [\"mid.txt\"]\ncheckpoint = []",
    ));
    t.write("in.txt", "one\n");
    t.ok(&["run"]);
    t.write("in.txt", "two\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["a", "b", "a", "b"]);
    assert_eq!(t.read("out.txt"), "TWO\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), Vec::<String>::new());
}

/// `p` has no outputs: it rewrites side.txt, which `b` reads.
const PHONY: &str = r#"
[task.p]
run = "echo p >> execs; cat in.txt > side.txt"

[task.b]
run = "echo b >> execs; cat side.txt > out.txt"
needs = ["p"]
outputs = ["out.txt"]
"#;

#[test]
fn an_upstream_without_outputs_that_ran_makes_its_dependents_run() {
    let t = T::new(PHONY);
    t.write("in.txt", "one\n");
    t.ok(&["run"]);
    t.write("in.txt", "two\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["p", "b", "p", "b"], "make's phony rule");
    assert_eq!(t.read("out.txt"), "two\n");
    assert!(
        t.why("b").starts_with("upstream p ran"),
        "{:?}",
        t.decisions()
    );
    assert_eq!(t.why("p"), "it has no outputs, so it always runs");
    // p ran since b's result (in a run of its own): b runs.
    t.write("in.txt", "three\n");
    t.ok(&["run", "--only", "p"]);
    t.ok(&["run", "--only", "b"]);
    assert_eq!(t.execs(), ["p", "b"]);
    assert_eq!(t.read("out.txt"), "three\n");
    // p did not run since: b is a hit.
    t.ok(&["run", "--only", "b"]);
    assert_eq!(t.execs(), Vec::<String>::new());
}

#[test]
fn a_renamed_task_or_workflow_does_not_reuse_the_old_result() {
    let t = T::new(
        r#"
[workflow]
name = "one"

[task.a]
run = "echo $WF_WORKFLOW.$WF_TASK >> execs; echo $WF_WORKFLOW.$WF_TASK > out.txt"
outputs = ["out.txt"]
"#,
    );
    t.ok(&["run"]);
    t.write(
        "wf.toml",
        &t.read("wf.toml").replace("[task.a]", "[task.b]"),
    );
    t.ok(&["run"]);
    assert_eq!(t.read("out.txt"), "one.b\n");
    t.write(
        "wf.toml",
        &t.read("wf.toml")
            .replace("name = \"one\"", "name = \"two\""),
    );
    // A renamed workflow takes its state over deliberately (the state's identity, issue 16).
    t.ok(&["state", "adopt"]);
    t.ok(&["run"]);
    assert_eq!(t.read("out.txt"), "two.b\n");
    assert_eq!(t.execs(), ["one.a", "one.b", "two.b"]);
    assert!(
        t.why("b").contains("workflow's name changed"),
        "{:?}",
        t.decisions()
    );
}

#[test]
fn declared_env_and_command_are_in_the_key_and_explained() {
    let t = T::new(
        r#"
[task.a]
run = "echo a >> execs; echo $MODE > out.txt"
outputs = ["out.txt"]
env = { MODE = "fast" }
"#,
    );
    t.ok(&["run"]);
    assert_eq!(t.why("a"), "no earlier result of a task named a");
    t.write("wf.toml", &t.read("wf.toml").replace("fast", "slow"));
    t.ok(&["run"]);
    assert_eq!(t.why("a"), "env MODE changed");
    assert_eq!(t.read("out.txt"), "slow\n");
    t.write(
        "wf.toml",
        &t.read("wf.toml").replace("> out.txt", ">out.txt"),
    );
    let text = t.ok(&["-v", "run"]);
    assert!(text.contains("runs, not cached: command changed"), "{text}");
    let text = t.ok(&["-v", "run"]);
    assert!(text.contains("cache hit: same inputs as run 3"), "{text}");
    let text = t.ok(&["history", "3"]);
    assert!(text.contains("runs, not cached: command changed"), "{text}");
    assert_eq!(t.execs(), ["a", "a", "a"]);
}

#[test]
fn symlinked_inputs_are_hashed_by_content() {
    let t = T::new(
        r#"
[task.a]
run = "echo a >> execs; cat in.txt data/x.txt > out.txt"
inputs = ["in.txt", "data/x.txt"]
outputs = ["out.txt"]
"#,
    );
    t.write("real/in.txt", "1\n");
    t.write("realdata/x.txt", "x\n");
    std::os::unix::fs::symlink("real/in.txt", t.dir.join("in.txt")).expect("link");
    std::os::unix::fs::symlink("realdata", t.dir.join("data")).expect("link");
    t.ok(&["run"]);
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["a"], "a symlinked input never caches");
    t.write("real/in.txt", "2\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["a"]);
    assert_eq!(t.why("a"), "input in.txt changed");
    t.write("realdata/x.txt", "y\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["a"]);
    assert_eq!(t.read("out.txt"), "2\ny\n");
    // A dangling link: the task is not cacheable, and fails on its missing input.
    std::fs::remove_file(t.dir.join("real/in.txt")).expect("rm");
    let out = t.wf(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(t.why("a"), "not cacheable: input in.txt is missing");
}

#[test]
fn the_order_of_outputs_and_checkpoints_does_not_matter() {
    let toml = r#"
[task.a]
run = "echo a >> execs; echo 1 > o1; echo 2 > o2; echo 3 > o3"
outputs = ["o1", "o2", "o3"]
checkpoint = ["o1", "o2"]
inputs = ["i1", "i2"]
"#;
    let t = T::new(toml);
    t.write("i1", "");
    t.write("i2", "");
    t.ok(&["run"]);
    t.write(
        "wf.toml",
        &toml
            .replace("[\"o1\", \"o2\", \"o3\"]", "[\"o3\", \"o1\", \"o2\"]")
            .replace("[\"o1\", \"o2\"]", "[\"o2\", \"o1\"]")
            .replace("[\"i1\", \"i2\"]", "[\"i2\", \"i1\"]"),
    );
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["a"], "reordering a list was a miss");
}

#[test]
fn a_need_whose_output_is_gone_is_a_miss_and_says_so() {
    let t = T::new(CHAIN);
    t.write("in.txt", "one\n");
    t.ok(&["run"]);
    std::fs::remove_file(t.dir.join("mid.txt")).expect("rm");
    // b alone: its upstream's output is missing, so its earlier result does not stand.
    let out = t.wf(&["run", "--only", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(t.why("b"), "mid.txt (an output of upstream a) is missing");
    // The full run restores mid.txt from a's cached result, and b is a hit again.
    t.execs();
    t.ok(&["run"]);
    assert_eq!(t.execs(), Vec::<String>::new());
    assert_eq!(t.read("out.txt"), "ONE\n");
}

#[test]
fn a_failed_attempt_is_explained_against_on_the_next_run() {
    let t = T::new(
        r#"
[task.a]
run = "echo a >> execs; test -e ok && echo done > out.txt"
outputs = ["out.txt"]
"#,
    );
    assert_eq!(t.wf(&["run"]).status.code(), Some(1));
    t.write("ok", "");
    t.ok(&["run"]);
    assert!(
        t.why("a")
            == "no earlier attempt with the same inputs left a result to reuse (the same inputs since run 1)",
        "{:?}",
        t.decisions()
    );
}

#[test]
fn an_output_that_is_not_checkpointed_is_reused_only_while_unchanged() {
    let t = T::new(
        r#"
[task.a]
run = "echo a >> execs; cat in.txt > o1; cat in.txt > o2"
inputs = ["in.txt"]
outputs = ["o1", "o2"]
checkpoint = ["o1"]
"#,
    );
    t.write("in.txt", "one\n");
    t.ok(&["run"]);
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["a"]);
    // o1 is restored from the store; o2 cannot be, so the task runs.
    t.write("o1", "scribbled\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), Vec::<String>::new());
    assert_eq!(t.read("o1"), "one\n");
    t.write("o2", "scribbled\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["a"]);
    assert_eq!(t.read("o2"), "one\n");
    assert_eq!(
        t.why("a"),
        "output o2 changed since run 3 and is not checkpointed, so it cannot be restored"
    );
    // The result of the run that replaced it is a hit again.
    t.ok(&["run"]);
    assert_eq!(t.execs(), Vec::<String>::new());
}

#[test]
fn a_miss_is_explained_against_the_latest_components_even_after_a_hit_on_an_older_result() {
    let t = T::new(
        r#"
[task.a]
run = "echo a >> execs; cat in.txt > out.txt; echo $MODE >> out.txt"
inputs = ["in.txt"]
outputs = ["out.txt"]
env = { MODE = "x" }
"#,
    );
    t.write("in.txt", "A\n");
    t.ok(&["run"]);
    t.write("in.txt", "B\n");
    t.ok(&["run"]);
    assert_eq!(t.why("a"), "input in.txt changed");
    // Back to A: a hit on run 1, whose components are journaled again (they changed).
    t.write("in.txt", "A\n");
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["a", "a"]);
    let run = t.json(&["history", "3"]);
    let d: Vec<&Value> = run.iter().filter(|e| e["kind"] == "cache").collect();
    assert_eq!(d[0]["hit"], true);
    assert_eq!(d[0]["why"], "same inputs as run 1 (attempt 1)");
    assert!(d[0]["parts"]["input:in.txt"].is_string(), "{d:?}");
    // Unchanged: a hit that journals no components (they are the previous ones).
    t.ok(&["run"]);
    let run = t.json(&["history", "4"]);
    let d: Vec<&Value> = run.iter().filter(|e| e["kind"] == "cache").collect();
    assert_eq!(d[0]["parts"], serde_json::json!({}), "{d:?}");
    // Now only the env changes: that is the reason, not the input (as against run 2).
    t.write("wf.toml", &t.read("wf.toml").replace("\"x\"", "\"y\""));
    t.ok(&["run"]);
    assert_eq!(t.why("a"), "env MODE changed");
    assert_eq!(t.read("out.txt"), "A\ny\n");
}

#[test]
fn inputs_wf_cannot_hash_by_content_make_a_task_run_and_never_hang() {
    let t = T::new(
        r#"
[task.a]
run = "echo a >> execs; echo made > mid.txt"
outputs = ["mid.txt"]

[task.b]
run = "echo b >> execs; cat mid.txt > out.txt"
needs = ["a"]
inputs = ["pipe", "dir"]
outputs = ["out.txt"]
"#,
    );
    // A FIFO nobody writes (reading it would block) and a directory, as declared inputs.
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        t.dir.join("pipe"),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .expect("mkfifo");
    std::fs::create_dir(t.dir.join("dir")).expect("mkdir");
    t.ok(&["run"]);
    t.ok(&["run"]);
    assert_eq!(t.execs(), ["a", "b", "b"]);
    assert_eq!(t.why("b"), "not cacheable: input dir is not a regular file");
    // An upstream output replaced by a directory (b alone): not cacheable, and named.
    let t = T::new(CHAIN);
    t.write("in.txt", "one\n");
    t.ok(&["run"]);
    std::fs::remove_file(t.dir.join("mid.txt")).expect("rm");
    std::fs::create_dir(t.dir.join("mid.txt")).expect("mkdir");
    let _ = t.wf(&["run", "--only", "b"]);
    assert_eq!(
        t.why("b"),
        "not cacheable: mid.txt (an output of upstream a) is not a regular file"
    );
    // A symbolic link loop as an input: not cacheable, and the task fails on it.
    let t = T::new(
        r#"
[task.a]
run = "cat loop > out.txt"
inputs = ["loop"]
outputs = ["out.txt"]
"#,
    );
    std::os::unix::fs::symlink("loop", t.dir.join("loop")).expect("link");
    assert_eq!(t.wf(&["run"]).status.code(), Some(1));
    assert!(
        t.why("a").starts_with("not cacheable: input loop "),
        "{:?}",
        t.decisions()
    );
}

#[test]
fn an_input_deleted_or_an_upstream_output_rewritten_while_the_task_ran_is_named() {
    let t = T::new(
        r#"
[task.a]
run = "echo a >> execs; cp in.txt mid.txt"
inputs = ["in.txt"]
outputs = ["mid.txt"]

[task.b]
run = "echo b >> execs; sleep 2; cat mid.txt > out.txt"
needs = ["a"]
outputs = ["out.txt"]
"#,
    );
    t.write("in.txt", "one\n");
    t.ok(&["run", "--only", "a"]);
    t.execs();
    let run = t
        .cmd(&["run", "--only", "b"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wf");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !t.dir.join("execs").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_file(t.dir.join("mid.txt")).expect("rm");
    t.write("mid.txt", "two\n");
    let out = run.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("mid.txt (an output of upstream a) changed while the task ran"),
        "{err}"
    );
    // Not cached: with mid.txt as it was when the key was made, b runs again.
    t.write("mid.txt", "one\n");
    t.ok(&["run", "--only", "b"]);
    assert_eq!(t.execs(), ["b", "b"]);
    assert_eq!(t.read("out.txt"), "one\n");
}

/// The cache check's memo (docs/retention.md): a file whose stamp (device, inode, size, mtime,
/// ctime) is as when a run hashed it is not read again; one rewritten with the same size — even
/// with its mtime set back — is. `WF_REHASH=1` reads everything.
mod memo {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn hash(text: &str) -> String {
        blake3::hash(text.as_bytes()).to_hex().to_string()
    }

    /// Stamps of files written just now are never trusted (a change in the same clock tick
    /// could leave them as they are): let the clock move on.
    fn settle() {
        std::thread::sleep(Duration::from_millis(300));
    }

    impl T {
        fn memo(&self) -> String {
            self.read(".wf/journal/stamps")
        }

        /// Put `fake` in the memo where it holds the hash of `real` (the stamp kept as it is).
        fn plant(&self, real: &str, fake: &str) {
            let text = self.memo();
            assert!(
                text.contains(&hash(real)),
                "{real:?} is not memoized: {text}"
            );
            self.write(
                ".wf/journal/stamps",
                &text.replace(&hash(real), &hash(fake)),
            );
        }

        /// Rewrite `rel` with `text`, then set its mtime back to what it was (its ctime moves:
        /// no program can set that).
        fn rewrite_keeping_mtime(&self, rel: &str, text: &str) {
            let path = self.dir.join(rel);
            let mtime = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .expect("mtime");
            std::fs::write(&path, text).expect("rewrite");
            let f = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            f.set_modified(mtime).expect("set mtime");
        }
    }

    const TASK: &str = r#"
[task.a]
run = "echo a >> execs; tr a-z A-Z < in.txt > out.txt"
inputs = ["in.txt"]
outputs = ["out.txt"]
"#;

    #[test]
    fn an_unchanged_input_is_not_read_again_a_rewritten_one_is() {
        let t = T::new(TASK);
        t.write("in.txt", "one\n");
        settle();
        t.ok(&["run"]);
        settle();
        t.ok(&["run"]);
        assert_eq!(t.execs(), ["a"]);
        // Same size, other bytes, the same mtime: the change time tells, it is read again.
        t.rewrite_keeping_mtime("in.txt", "two\n");
        settle();
        t.ok(&["run"]);
        assert_eq!(t.execs(), ["a"]);
        assert!(t.why("a").contains("in.txt"), "{}", t.why("a"));
        assert_eq!(t.read("out.txt"), "TWO\n");
        // Back to the first bytes (same size, another mtime): read again, run 1's result hits.
        std::fs::write(t.dir.join("in.txt"), "one\n").expect("write");
        settle();
        t.ok(&["run"]);
        assert_eq!(t.execs(), Vec::<String>::new());
        assert_eq!(t.read("out.txt"), "ONE\n");
        // Its stamp is memoized now: a run trusts the memo instead of reading the file. Planting
        // another hash for the same stamp shows it (the task runs: "in.txt changed").
        settle();
        t.ok(&["run"]);
        t.plant("one\n", "six\n");
        t.ok(&["run"]);
        assert_eq!(t.execs(), ["a"]);
        assert!(t.why("a").contains("in.txt"), "{}", t.why("a"));
    }

    #[test]
    fn a_checkpointed_output_is_checked_by_its_stamp_and_restored_after_a_same_size_rewrite() {
        let t = T::new(TASK);
        t.write("in.txt", "one\n");
        settle();
        t.ok(&["run"]);
        settle();
        t.ok(&["run"]);
        settle();
        t.ok(&["run"]);
        assert_eq!(t.execs(), ["a"]);
        let inode = || {
            std::fs::metadata(t.dir.join("out.txt"))
                .expect("out.txt")
                .ino()
        };
        // The memo vouches for out.txt: planting another hash for its stamp makes the check
        // believe it changed, and the checkpoint is put back (a new file: another inode).
        let before = inode();
        t.plant("ONE\n", "TWO\n");
        t.ok(&["run"]);
        assert_eq!(t.execs(), Vec::<String>::new());
        assert_ne!(inode(), before, "the memo was not used");
        assert_eq!(t.read("out.txt"), "ONE\n");
        // `WF_REHASH=1` reads the file in full instead: it holds the checkpoint, nothing is put back.
        settle();
        t.ok(&["run"]);
        let before = inode();
        t.plant("ONE\n", "TWO\n");
        let out = t
            .cmd(&["run"])
            .env("WF_REHASH", "1")
            .output()
            .expect("run wf");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(inode(), before, "WF_REHASH=1 trusted the memo");
        assert_eq!(t.execs(), Vec::<String>::new());
        // Rewritten in place with the same size and its mtime set back: hashed again, found
        // changed, and the checkpoint is put back.
        t.rewrite_keeping_mtime("out.txt", "XNE\n");
        settle();
        t.ok(&["run"]);
        assert_eq!(t.execs(), Vec::<String>::new());
        assert_eq!(t.read("out.txt"), "ONE\n");
    }
}
