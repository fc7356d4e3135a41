//! The cache is never wrong, as a property: random small DAGs of shell tasks whose outputs are
//! deterministic functions of what they read (cat/echo/cp), random edits between runs (inputs,
//! commands, env, checkpoint lists, task and workflow names, outputs scribbled on or deleted),
//! random plans (`--only`, `--from`, full). After each run, the same step is replayed with `--force` in a copy of the
//! workspace taken before the run (fresh state): every file must be byte-identical and the same
//! tasks done — so every cache hit gave what running the task would have given.
//!
//! `PROPTEST_CASES` sets the number of cases (default 24, for CI); `WF_TEST_BIN` checks another
//! build of wf (e.g. a release build, for a long run).

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::Value;

use common::WF;
const SOURCES: usize = 3;

#[derive(Debug, Clone)]
struct Task {
    /// Bit j: needs task j (only j < this task's index counts).
    needs: u8,
    /// Bit k: declares source s{k} as an input (and reads it).
    inputs: u8,
    /// Also declares the outputs of the tasks it needs as inputs.
    declares_upstream: bool,
    /// No outputs: it writes side{i}, which its dependents read.
    phony: bool,
    two_outputs: bool,
    /// 0: default checkpoints (all outputs), 1: `checkpoint = []`, 2: the first output only.
    checkpoint: u8,
    konst: u8,
    env: u8,
    /// Its name: t{i}, t{i}x or t{i}y (tasks write `$WF_TASK` into what they make).
    name: u8,
}

fn name(tasks: &[Task], i: usize) -> String {
    format!("t{i}{}", ["", "x", "y"][usize::from(tasks[i].name % 3)])
}

#[derive(Debug, Clone)]
enum Edit {
    Source(usize, u8),
    Konst(usize, u8),
    Env(usize, u8),
    Checkpoint(usize, u8),
    /// Scribble on a task's (first) output.
    Scribble(usize, u8),
    /// Delete a task's (first) output.
    Delete(usize),
    Rename(usize, u8),
    /// Rename the workflow (tasks write `$WF_WORKFLOW` into what they make).
    RenameWorkflow(u8),
}

#[derive(Debug, Clone)]
enum Plan {
    Full,
    Only(u8),
    From(usize),
}

#[derive(Debug, Clone)]
struct Case {
    tasks: Vec<Task>,
    sources: [u8; SOURCES],
    steps: Vec<(Vec<Edit>, Plan, bool)>,
}

fn task() -> impl Strategy<Value = Task> {
    (
        any::<u8>(),
        0u8..8,
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
        any::<bool>(),
        0u8..3,
        0u8..3,
        0u8..2,
    )
        .prop_map(
            |(needs, inputs, declares_upstream, phony, two_outputs, checkpoint, konst, env)| Task {
                needs,
                inputs,
                declares_upstream,
                phony,
                two_outputs,
                checkpoint,
                konst,
                env,
                name: 0,
            },
        )
}

fn edit(n: usize) -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (0..SOURCES, 0u8..3).prop_map(|(k, v)| Edit::Source(k, v)),
        1 => (0..n, 0u8..3).prop_map(|(i, v)| Edit::Konst(i, v)),
        1 => (0..n, 0u8..2).prop_map(|(i, v)| Edit::Env(i, v)),
        1 => (0..n, 0u8..3).prop_map(|(i, v)| Edit::Checkpoint(i, v)),
        1 => (0..n, 0u8..2).prop_map(|(i, v)| Edit::Scribble(i, v)),
        1 => (0..n).prop_map(Edit::Delete),
        1 => (0..n, 0u8..3).prop_map(|(i, v)| Edit::Rename(i, v)),
        1 => (0u8..2).prop_map(Edit::RenameWorkflow),
    ]
}

fn plan(n: usize) -> impl Strategy<Value = Plan> {
    prop_oneof![
        2 => Just(Plan::Full),
        2 => (1u8..(1 << n)).prop_map(Plan::Only),
        1 => (0..n).prop_map(Plan::From),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (2usize..=5).prop_flat_map(|n| {
        (
            prop::collection::vec(task(), n),
            [0u8..3, 0u8..3, 0u8..3],
            prop::collection::vec(
                (prop::collection::vec(edit(n), 0..3), plan(n), any::<bool>()),
                2..6,
            ),
        )
            .prop_map(|(tasks, sources, steps)| Case {
                tasks,
                sources,
                steps,
            })
    })
}

fn needs(tasks: &[Task], i: usize) -> Vec<usize> {
    (0..i).filter(|j| tasks[i].needs & (1 << j) != 0).collect()
}

fn outputs(t: &Task, i: usize) -> Vec<String> {
    match (t.phony, t.two_outputs) {
        (true, _) => vec![],
        (false, false) => vec![format!("o{i}")],
        (false, true) => vec![format!("o{i}"), format!("o{i}b")],
    }
}

fn toml(tasks: &[Task], workflow: u8) -> String {
    let q = |v: &[String]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!("[workflow]\nname = \"prop{workflow}\"\n");
    for (i, t) in tasks.iter().enumerate() {
        let ns = needs(tasks, i);
        let mut reads: Vec<String> = (0..SOURCES)
            .filter(|k| t.inputs & (1 << k) != 0)
            .map(|k| format!("s{k}"))
            .collect();
        let mut inputs = reads.clone();
        for &j in &ns {
            let up = &tasks[j];
            if up.phony {
                reads.push(format!("side{j}"));
            } else {
                reads.extend(outputs(up, j));
                if t.declares_upstream {
                    inputs.extend(outputs(up, j));
                }
            }
        }
        let target = if t.phony {
            format!("side{i}")
        } else {
            format!("o{i}")
        };
        // (Without anything to read, `cat` would read its standard input.)
        let cat = if reads.is_empty() {
            ":".to_string()
        } else {
            format!("cat {}", reads.join(" "))
        };
        let mut run = format!(
            "echo t{i} >> execs; {cat} > {target} 2>/dev/null; echo \\\"k{} $V $WF_WORKFLOW $WF_TASK\\\" >> {target}",
            t.konst
        );
        if !t.phony && t.two_outputs {
            run.push_str(&format!("; cp o{i} o{i}b"));
        }
        s.push_str(&format!("\n[task.{}]\nrun = \"{run}\"\n", name(tasks, i)));
        s.push_str(&format!("env = {{ V = \"e{}\" }}\n", t.env));
        if !ns.is_empty() {
            let names: Vec<String> = ns.iter().map(|&j| name(tasks, j)).collect();
            s.push_str(&format!("needs = [{}]\n", q(&names)));
        }
        if !inputs.is_empty() {
            s.push_str(&format!("inputs = [{}]\n", q(&inputs)));
        }
        let outs = outputs(t, i);
        if !outs.is_empty() {
            s.push_str(&format!("outputs = [{}]\n", q(&outs)));
            match t.checkpoint {
                1 => s.push_str("checkpoint = []\n"),
                2 => s.push_str(&format!("checkpoint = [{}]\n", q(&outs[..1]))),
                _ => {}
            }
        }
    }
    s
}

/// The workspace's files (not `.wf`, not `execs`): name → bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == ".wf" || name == "execs" {
            continue;
        }
        m.insert(name, std::fs::read(e.path()).expect("read"));
    }
    m
}

fn wf(dir: &Path, args: &[String]) -> Result<std::process::Output, TestCaseError> {
    let bin = std::env::var("WF_TEST_BIN").unwrap_or_else(|_| WF.to_string());
    // WF_TEST_BIN runs the same cases against another build.
    let out = common::command_of(bin.as_ref(), dir, dir)
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("WF_CRASH_POINT")
        .output()
        .map_err(|e| TestCaseError::fail(format!("cannot run wf: {e}")))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("panicked") || !matches!(out.status.code(), Some(0 | 1)) {
        return Err(TestCaseError::fail(format!(
            "wf {args:?} exited {:?}: {err}",
            out.status.code()
        )));
    }
    Ok(out)
}

/// The latest run's tasks: name → cached (done tasks only).
fn done(dir: &Path) -> Result<BTreeMap<String, bool>, TestCaseError> {
    let out = wf(dir, &["--json".into(), "status".into()])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["state"] == "done")
        .map(|v| {
            (
                v["task"].as_str().unwrap_or("").to_string(),
                v["cached"] == true,
            )
        })
        .collect())
}

/// A temporary directory, in memory where there is one (many small durable commits per case).
fn tempdir() -> Result<tempfile::TempDir, TestCaseError> {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir())
    } else {
        tempfile::tempdir()
    };
    dir.map_err(|e| TestCaseError::fail(format!("cannot make a temporary directory: {e}")))
}

fn check(c: &Case, hits: &Cell<u64>, runs: &Cell<u64>) -> Result<(), TestCaseError> {
    let tmp = tempdir()?;
    let dir = tmp.path();
    let mut tasks = c.tasks.clone();
    let mut workflow = 0;
    let n = tasks.len();
    for (k, v) in c.sources.iter().enumerate() {
        std::fs::write(dir.join(format!("s{k}")), format!("v{v}\n")).expect("write");
    }
    for (step, (edits, plan, two_jobs)) in c.steps.iter().enumerate() {
        let before = workflow;
        for e in edits {
            match *e {
                Edit::Source(k, v) => {
                    std::fs::write(dir.join(format!("s{k}")), format!("v{v}\n")).expect("write")
                }
                Edit::Konst(i, v) => tasks[i].konst = v,
                Edit::Env(i, v) => tasks[i].env = v,
                Edit::Checkpoint(i, v) => tasks[i].checkpoint = v,
                Edit::Scribble(i, v) => {
                    if !tasks[i].phony {
                        std::fs::write(dir.join(format!("o{i}")), format!("scribble{v}\n"))
                            .expect("write");
                    }
                }
                Edit::Delete(i) => {
                    let _ = std::fs::remove_file(dir.join(format!("o{i}")));
                }
                Edit::Rename(i, v) => tasks[i].name = v,
                Edit::RenameWorkflow(v) => workflow = v,
            }
        }
        std::fs::write(dir.join("wf.toml"), toml(&tasks, workflow)).expect("write wf.toml");
        // The oracle's workspace: a copy of this one as the run finds it.
        let copy = tempdir()?;
        for (name, bytes) in files(dir) {
            std::fs::write(copy.path().join(name), bytes).expect("copy");
        }
        let mut args: Vec<String> = vec!["run".into()];
        if *two_jobs {
            args.extend(["--jobs".into(), "2".into()]);
        }
        match plan {
            Plan::Full => {}
            Plan::Only(mask) => {
                args.push("--only".into());
                args.extend(
                    (0..n)
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| name(&tasks, i)),
                );
            }
            Plan::From(i) => args.extend(["--from".into(), name(&tasks, *i)]),
        }
        // A renamed workflow takes its state over deliberately (the state's identity, issue 16).
        if workflow != before && dir.join(".wf").exists() {
            wf(dir, &["state".to_string(), "adopt".to_string()])?;
        }
        wf(dir, &args)?;
        let real = done(dir)?;
        args.push("--force".into());
        wf(copy.path(), &args)?;
        let forced = done(copy.path())?;
        let cached: Vec<&String> = real.iter().filter(|(_, c)| **c).map(|(t, _)| t).collect();
        hits.set(hits.get() + cached.len() as u64);
        runs.set(runs.get() + 1);
        let (a, b) = (files(dir), files(copy.path()));
        if a != b {
            let differ: std::collections::BTreeSet<&String> = a
                .keys()
                .chain(b.keys())
                .filter(|k| a.get(*k) != b.get(*k))
                .collect();
            return Err(TestCaseError::fail(format!(
                "step {step}: files {differ:?} differ from a forced run; cache hits: {cached:?}\n{}",
                toml(&tasks, workflow)
            )));
        }
        let real_done: Vec<&String> = real.keys().collect();
        let forced_done: Vec<&String> = forced.keys().collect();
        prop_assert_eq!(
            real_done,
            forced_done,
            "step {}: other tasks done than in a forced run",
            step
        );
    }
    Ok(())
}

#[test]
fn every_cache_hit_gives_what_a_forced_run_gives() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        source_file: Some(file!()),
        // Failures are kept beside this file, and replayed first by every later run.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    });
    let (hits, runs) = (Cell::new(0), Cell::new(0));
    let result = runner.run(&case(), |c| check(&c, &hits, &runs));
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "{cases} cases, {} runs, {} cache hits, each as a forced run",
        runs.get(),
        hits.get()
    );
    assert!(hits.get() > 0, "no cache hit was ever checked");
}
