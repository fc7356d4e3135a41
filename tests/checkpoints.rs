//! Checkpoints that can be trusted: the content-addressed store, cache hits, `wf restore` and the
//! retention sweeper `wf gc` — each "never delete" rule, idempotence, and a sweep killed midway.

use std::path::Path;
use std::process::Output;

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

    fn wf_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run wf");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        out
    }

    fn wf(&self, args: &[&str]) -> Output {
        self.wf_env(args, &[])
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.wf(args);
        assert!(
            out.status.success(),
            "wf {args:?} exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        self.ok(&a)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    fn execs(&self) -> Vec<String> {
        self.read("execs").lines().map(str::to_string).collect()
    }

    fn objects(&self) -> usize {
        fn count(p: &Path) -> usize {
            std::fs::read_dir(p)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| {
                            let p = e.path();
                            if p.is_dir() {
                                count(&p)
                            } else {
                                1
                            }
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        count(&self.dir.join(".wf/objects")) - count(&self.dir.join(".wf/objects/tmp"))
    }
}

/// x reads in1, y reads in2, z needs both: a diamond's worth of data flow.
const FLOW: &str = r#"
[task.x]
run = "echo x >> execs; cat in1 > x.out"
inputs = ["in1"]
outputs = ["x.out"]
retention = "7d"

[task.y]
run = "echo y >> execs; cat in2 > y.out"
inputs = ["in2"]
outputs = ["y.out"]
retention = "30d"

[task.z]
run = "echo z >> execs; cat x.out y.out > z.out"
needs = ["x", "y"]
inputs = ["x.out", "y.out"]
outputs = ["z.out"]
retention = "30d"
"#;

#[test]
fn unchanged_rerun_runs_nothing_and_a_changed_input_runs_exactly_what_it_affects() {
    let t = T::new(FLOW);
    t.write("in1", "1");
    t.write("in2", "2");
    t.ok(&["run", "--jobs", "1"]); // one at a time: execs are in plan order
    assert_eq!(t.execs(), ["x", "y", "z"]);
    t.ok(&["run", "--jobs", "1"]); // one at a time: execs are in plan order
    assert_eq!(
        t.execs(),
        ["x", "y", "z"],
        "an unchanged re-run executed a task"
    );
    let status = t.json(&["status"]);
    assert!(
        status
            .iter()
            .all(|s| s["cached"] == true && s["state"] == "done"),
        "{status:?}"
    );
    t.write("in2", "two");
    t.ok(&["run", "--jobs", "1"]); // one at a time: execs are in plan order
    assert_eq!(
        t.execs(),
        ["x", "y", "z", "y", "z"],
        "only y and its dependent z re-run"
    );
    assert_eq!(t.read("z.out"), "1two");
    // --force ignores the cache for the tasks named.
    t.ok(&["run", "--jobs", "1", "--force", "x"]);
    assert_eq!(t.execs().last().map(String::as_str), Some("x"));
    assert_eq!(
        t.execs().len(),
        6,
        "x re-ran; its output is unchanged so z stays cached"
    );
}

#[test]
fn a_missing_output_is_restored_from_the_store_on_a_cache_hit() {
    let t = T::new(FLOW);
    t.write("in1", "1");
    t.write("in2", "2");
    t.ok(&["run", "--jobs", "1"]);
    std::fs::remove_file(t.dir.join("x.out")).expect("rm");
    t.ok(&["run", "--jobs", "1"]);
    assert_eq!(t.execs(), ["x", "y", "z"], "nothing re-ran");
    assert_eq!(t.read("x.out"), "1");
}

#[test]
fn restore_is_byte_for_byte_and_a_pruned_checkpoint_is_refused() {
    let t = T::new(FLOW);
    for v in ["a", "b", "c"] {
        t.write("in1", v);
        t.write("in2", &format!("{v}2"));
        t.ok(&["run"]);
    }
    t.write("x.out", "scribbled");
    t.ok(&["restore", "1", "x"]);
    assert_eq!(t.read("x.out"), "a");
    t.ok(&["restore", "2"]);
    assert_eq!(
        (t.read("x.out"), t.read("z.out")),
        ("b".into(), "bb2".into())
    );
    t.ok(&["gc", "--now", "+8d"]);
    let out = t.wf(&["restore", "1", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pruned") && err.contains("7d"), "{err}");
    // y (30d) of run 1 is still there.
    t.ok(&["restore", "1", "y"]);
    assert_eq!(t.read("y.out"), "a2");
}

#[test]
fn gc_prunes_by_policy_keeps_the_latest_and_dry_run_shows_exactly_what_happens() {
    let t = T::new(FLOW);
    for v in ["a", "b", "c"] {
        t.write("in1", v);
        t.write("in2", &format!("{v}2"));
        t.ok(&["run"]);
    }
    let before = t.objects();
    let plan = t.json(&["gc", "--now", "+8d", "--dry-run"]);
    assert_eq!(t.objects(), before, "--dry-run deleted something");
    let done = t.json(&["gc", "--now", "+8d"]);
    let strip = |rows: &[Value]| -> Vec<(String, String, String)> {
        rows.iter()
            .map(|r| {
                (
                    format!("{}/{}/{}", r["run"], r["task"], r["path"]),
                    r["action"]
                        .as_str()
                        .unwrap_or("")
                        .replace("would_prune", "pruned"),
                    r["why"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        strip(&plan),
        strip(&done),
        "the dry run differs from the sweep"
    );
    let pruned: Vec<&Value> = done.iter().filter(|r| r["action"] == "pruned").collect();
    // x (7d): runs 1 and 2 pruned, run 3 kept as the latest; y and z (30d) not expired.
    assert_eq!(pruned.len(), 2, "{done:#?}");
    assert!(pruned.iter().all(|r| r["task"] == "x" && r["run"] != 3));
    assert!(done
        .iter()
        .any(|r| r["task"] == "x" && r["run"] == 3 && r["action"] == "kept"));
    assert!(
        done.iter().all(|r| r["task"] == "x"),
        "a 30d checkpoint expired at +8d"
    );
    assert_eq!(t.objects(), before - 2);
    // Idempotent.
    let again = t.json(&["gc", "--now", "+8d"]);
    assert!(again.iter().all(|r| r["action"] == "kept"), "{again:#?}");
    // History keeps the record of the prune.
    let tl = t.json(&["history", "1"]);
    assert!(tl
        .iter()
        .any(|e| e["kind"] == "prune" && e["path"] == "x.out" && e["policy"] == "7d"));
    // A policy changed in wf.toml applies to existing checkpoints: y at 1d.
    t.write(
        "wf.toml",
        &FLOW.replacen("retention = \"30d\"", "retention = \"1d\"", 1),
    );
    let changed = t.json(&["gc", "--now", "+2d", "--dry-run"]);
    assert!(changed
        .iter()
        .any(|r| r["task"] == "y" && r["action"] == "would_prune"));
}

#[test]
fn gc_never_deletes_an_object_still_referenced_or_a_run_that_is_not_finished() {
    // Two tasks write the same content: one 7d, one 30d. Pruning the 7d one keeps the object.
    let t = T::new(
        r#"
[task.short]
run = "echo same > s.out"
outputs = ["s.out"]
retention = "7d"
[task.long]
run = "echo same > l.out"
outputs = ["l.out"]
retention = "30d"
[task.gate]
run = "echo g > g.out"
needs = ["short"]
outputs = ["g.out"]
manual = true
"#,
    );
    t.ok(&["run", "--force"]);
    t.ok(&["approve", "gate"]);
    t.ok(&["run", "--force"]); // run 2 waits at the gate
    t.ok(&["run", "--force"]); // run 3 waits there too, and supersedes run 2 (terminal)
    let done = t.json(&["gc", "--now", "+8d"]);
    // Run 3 waits at the gate: its checkpoints are kept, whatever their age.
    for r in &done {
        if r["run"] == 3 {
            assert_eq!(r["action"], "kept", "{r}");
            assert_eq!(r["why"], "its run is not finished", "{r}");
        }
    }
    let pruned: Vec<&Value> = done.iter().filter(|r| r["action"] == "pruned").collect();
    assert_eq!(pruned.len(), 2, "{done:#?}");
    for p in &pruned {
        assert_eq!(p["task"], "short");
        assert_ne!(p["run"], 3);
        assert_eq!(
            p["frees"], 0,
            "the object is shared with an unexpired checkpoint"
        );
    }
    t.ok(&["restore", "1", "long"]);
    assert_eq!(t.read("l.out"), "same\n");
}

#[test]
fn gc_refuses_an_object_store_that_is_a_link_and_touches_nothing_outside() {
    let t = T::new(FLOW);
    t.write("in1", "1");
    t.write("in2", "2");
    t.ok(&["run"]);
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("keep"), "precious").expect("write");
    std::fs::rename(t.dir.join(".wf/objects"), t.dir.join(".wf/objects.real")).expect("mv");
    std::os::unix::fs::symlink(outside.path(), t.dir.join(".wf/objects")).expect("symlink");
    let out = t.wf(&["gc", "--now", "+100d"]);
    // A link where wf keeps its own directory: the state is refused (exit 5, issue 16).
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep")).unwrap_or_default(),
        "precious"
    );
}

#[test]
fn a_symlinked_output_is_refused_and_nothing_outside_is_read() {
    let t = T::new("[task.l]\nrun = \"ln -sf /etc/hostname link.out\"\noutputs = [\"link.out\"]\n");
    let out = t.wf(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let status = t.json(&["status"]);
    let reason = status[0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("symbolic link"), "{reason}");
    assert_eq!(t.objects(), 0);
}

#[test]
fn a_sweep_killed_midway_is_finished_by_the_next() {
    let t = T::new(FLOW);
    for v in ["a", "b", "c"] {
        t.write("in1", v);
        t.write("in2", &format!("{v}2"));
        t.ok(&["run"]);
    }
    let before = t.objects();
    // Killed right after the prunes are journaled, before any object is deleted.
    let out = t.wf_env(
        &["gc", "--now", "+8d"],
        &[("WF_CRASH_POINT", "gc-after-prune")],
    );
    assert!(!out.status.success(), "the crash point was not reached");
    assert_eq!(t.objects(), before, "nothing was deleted before the crash");
    let next = t.json(&["gc", "--now", "+8d"]);
    assert!(
        next.iter().all(|r| r["action"] == "kept"),
        "pruned twice: {next:#?}"
    );
    assert_eq!(
        t.objects(),
        before - 2,
        "the next gc deleted what the first one pruned"
    );
    let prunes = t
        .json(&["history", "1"])
        .into_iter()
        .filter(|e| e["kind"] == "prune")
        .count();
    assert_eq!(prunes, 1, "one prune entry per checkpoint");
}

#[test]
fn gc_sweeps_objects_nothing_references_and_leaves_other_files_alone() {
    let t = T::new(FLOW);
    t.write("in1", "a");
    t.write("in2", "b");
    t.ok(&["run"]);
    let before = t.objects();
    // An object no checkpoint references (what a run killed between storing and journaling
    // leaves), and a file that is not an object at all.
    let orphan = "ab".repeat(32);
    let dir = t.dir.join(".wf/objects/ab");
    std::fs::create_dir_all(&dir).expect("objects/ab");
    std::fs::write(dir.join(&orphan), "orphan").expect("orphan");
    std::fs::write(dir.join("notes.txt"), "mine").expect("notes");
    let out = t.ok(&["gc"]);
    assert!(out.contains("freed 6 B"), "{out}");
    assert!(!dir.join(&orphan).exists(), "the orphan object was deleted");
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).expect("notes"),
        "mine",
        "a file that is not an object is left alone"
    );
    assert_eq!(t.objects(), before + 1, "every referenced object stays");
    // Each checkpoint's object still restores.
    t.ok(&["restore", "1"]);
}

#[test]
fn a_large_output_is_stored_and_restored_exactly_and_one_byte_changed_in_a_large_input_is_seen() {
    let t = T::new(
        r#"
[task.a]
run = "cat in.bin in.bin > out.bin"
inputs = ["in.bin"]
outputs = ["out.bin"]
"#,
    );
    // Larger than the copy's 8 MiB steps and the hash's 4 MiB subtrees, not a multiple of either.
    let mut input: Vec<u8> = (0..10 * 1024 * 1024 + 123)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(t.dir.join("in.bin"), &input).expect("write");
    t.ok(&["run"]);
    let out = std::fs::read(t.dir.join("out.bin")).expect("out.bin");
    assert_eq!(out.len(), 2 * input.len());
    let hash = blake3::hash(&out).to_hex().to_string();
    let object = t.dir.join(".wf/objects").join(&hash[..2]).join(&hash);
    assert_eq!(std::fs::read(&object).expect("the object"), out);
    assert_eq!(
        std::fs::read_dir(t.dir.join(".wf/objects/tmp"))
            .expect("tmp")
            .count(),
        0
    );
    // Gone from the workspace: a cache hit puts it back byte for byte.
    std::fs::remove_file(t.dir.join("out.bin")).expect("rm");
    t.ok(&["run"]);
    assert_eq!(std::fs::read(t.dir.join("out.bin")).expect("restored"), out);
    // One byte in the middle of the input changed (same size): hashed again, the task runs.
    input[7 * 1024 * 1024 + 5] ^= 0x40;
    std::fs::write(t.dir.join("in.bin"), &input).expect("rewrite");
    t.ok(&["run"]);
    let again = std::fs::read(t.dir.join("out.bin")).expect("out.bin");
    assert_eq!(again, [input.as_slice(), input.as_slice()].concat());
    let hash = blake3::hash(&again).to_hex().to_string();
    assert!(t
        .dir
        .join(".wf/objects")
        .join(&hash[..2])
        .join(&hash)
        .is_file());
}

#[test]
fn a_rerun_stores_what_its_large_output_now_holds_whatever_it_held_before() {
    // The task copies a file the workflow does not declare, which the test changes between
    // forced runs, and declares an input `note.txt` that the test changes in some runs (another
    // cache key): wf guesses that the output is its last checkpoint again (the same key, else
    // the task's latest), and each guess is right or wrong in another way — the same bytes, one
    // byte changed in the middle, the last byte, a byte of the first block, the same bytes under
    // a new key. Each checkpoint must name, and the store hold, exactly what the output held.
    let t = T::new(
        r#"
[task.a]
run = "cp src.bin out.bin"
inputs = ["note.txt"]
outputs = ["out.bin"]
"#,
    );
    std::fs::write(t.dir.join("note.txt"), "0").expect("write");
    let mut src: Vec<u8> = (0..6 * 1024 * 1024 + 77)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let len = src.len();
    // (a byte of src.bin to change, whether note.txt changes)
    let steps: [(Option<usize>, bool); 8] = [
        (None, false),
        (None, false),
        (Some(len / 2 + 5000), false),
        (Some(len - 1), false),
        (Some(3), false),
        (None, true),
        (Some(len / 3), true),
        (None, false),
    ];
    for (n, (change, note)) in steps.into_iter().enumerate() {
        let run = n + 1;
        if let Some(at) = change {
            src[at] ^= 0x81;
        }
        std::fs::write(t.dir.join("src.bin"), &src).expect("write");
        if note {
            std::fs::write(t.dir.join("note.txt"), run.to_string()).expect("write");
        }
        t.ok(&["run", "--force"]);
        let hash = blake3::hash(&src).to_hex().to_string();
        let rows = t.json(&["history", &run.to_string()]);
        let stored: Vec<&str> = rows
            .iter()
            .filter(|r| r["kind"] == "checkpoint")
            .filter_map(|r| r["hash"].as_str())
            .collect();
        assert_eq!(stored, [hash.as_str()], "run {run}");
        let object = t.dir.join(".wf/objects").join(&hash[..2]).join(&hash);
        assert_eq!(
            std::fs::read(&object).expect("the object"),
            src,
            "run {run}"
        );
    }
    // No temporary copy left behind.
    assert_eq!(
        std::fs::read_dir(t.dir.join(".wf/objects/tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

#[test]
fn a_sweep_over_many_pages_reads_again_only_those_with_something_due() {
    // Pages of one checkpoint (`WF_GC_PAGE`, a test build's knob). Without the workflow file the
    // recorded retention applies: the four newest runs' checkpoints (30d) are not due at +2d,
    // so pass 2 skips their pages; the four oldest (1d) are.
    let flow = |retention: &str| {
        format!(
            "[task.x]\nrun = \"cat in > x.out\"\ninputs = [\"in\"]\noutputs = [\"x.out\"]\n\
             retention = \"{retention}\"\n"
        )
    };
    let t = T::new(&flow("1d"));
    for v in 1..=4 {
        t.write("in", &format!("old {v}"));
        t.ok(&["run"]);
    }
    t.write("wf.toml", &flow("30d"));
    for v in 1..=4 {
        t.write("in", &format!("new {v}"));
        t.ok(&["run"]);
    }
    std::fs::remove_file(t.dir.join("wf.toml")).expect("rm wf.toml");
    let sd = t.dir.join(".wf").to_string_lossy().into_owned();
    let gc = |page: &str, dry: bool| -> Vec<Value> {
        let mut args = vec!["--state-dir", &sd, "--json", "gc", "--now", "+2d"];
        if dry {
            args.push("--dry-run");
        }
        let out = t.wf_env(&args, &[("WF_GC_PAGE", page)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    };
    let runs = |rows: &[Value], action: &str| -> Vec<u64> {
        rows.iter()
            .filter(|r| r["action"] == action)
            .filter_map(|r| r["run"].as_u64())
            .collect()
    };
    let whole = gc("5000", true);
    assert_eq!(runs(&whole, "would_prune"), vec![4, 3, 2, 1], "{whole:#?}");
    for page in ["1", "2", "3"] {
        assert_eq!(gc(page, true), whole, "pages of {page}");
    }
    let before = t.objects();
    let done = gc("1", false);
    assert_eq!(runs(&done, "pruned"), vec![4, 3, 2, 1], "{done:#?}");
    assert_eq!(t.objects(), before - 4);
    assert!(gc("1", false).is_empty(), "pruned twice");
    for run in ["1", "4", "5", "8"] {
        let pruned = t
            .json(&["--state-dir", &sd, "history", run])
            .iter()
            .any(|e| e["kind"] == "prune");
        assert_eq!(pruned, run == "1" || run == "4", "run {run}");
    }
}
