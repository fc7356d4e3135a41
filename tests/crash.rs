//! Crash tests: SIGKILL a real `wf` at random moments (and at every write-ahead boundary through
//! `WF_CRASH_POINT`), resume it, and check what the product promises: the final state equals an
//! uninterrupted run's, every execution of a task appears in the journal as a `running`
//! transition, no task runs again after its `done`, only one run exists, and no task process
//! outlives its `wf`.
//!
//! An index that stops responding (a disk that stops answering, injected through the `failpoints`
//! feature that `cargo test` turns on) must end wf with exit 4 within the watchdog's time, kill
//! its tasks, release the lock, and leave a run that resumes with the same invariants.
//!
//! The soak: `WF_SOAK_KILLS=500 cargo test --release --test crash -- --ignored --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::Rng;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A parallel DAG with a big output (so kills land while it is hashed), a flaky task with retries
/// and a delay, and a manual gate. Every execution appends `task attempt` to `execs` first.
const WORKFLOW: &str = r#"
[workflow]
name = "crash"

[task.a]
run = "echo \"a $WF_ATTEMPT\" >> execs; mkdir -p out; head -c 2000000 /dev/zero | tr '\\0' a > out/a.tmp && mv out/a.tmp out/a"
outputs = ["out/a"]

[task.b]
run = "echo \"b $WF_ATTEMPT\" >> execs; mkdir -p out; sleep 0.1; echo b > out/b"
outputs = ["out/b"]

[task.c]
run = "echo \"c $WF_ATTEMPT\" >> execs; if [ ! -f flaky ]; then touch flaky; exit 3; fi; wc -c < out/a > out/c.tmp && cat out/b >> out/c.tmp && mv out/c.tmp out/c"
needs = ["a", "b"]
inputs = ["out/a", "out/b"]
outputs = ["out/c"]
retries = 2
retry_delay = "300ms"

[task.d]
run = "echo \"d $WF_ATTEMPT\" >> execs; sleep 0.05; cp out/c out/d"
needs = ["c"]
inputs = ["out/c"]
outputs = ["out/d"]

[task.gate]
run = "echo \"gate $WF_ATTEMPT\" >> execs; cp out/d out/gate"
needs = ["d"]
inputs = ["out/d"]
outputs = ["out/gate"]
manual = true

[task.e]
run = "echo \"e $WF_ATTEMPT\" >> execs; cat out/gate out/b > out/e"
needs = ["gate"]
inputs = ["out/gate", "out/b"]
outputs = ["out/e"]
"#;

const TASKS: [&str; 6] = ["a", "b", "c", "d", "gate", "e"];

struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
    /// `WF_INDEX_FOLD_BYTES` for every command (failpoints builds): fold the index's delta log
    /// into tables every few commits, so kills land inside folds and merges too.
    fold_bytes: Option<u64>,
}

impl Dir {
    fn new() -> Result<Dir, Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().canonicalize()?;
        std::fs::write(path.join("wf.toml"), WORKFLOW)?;
        Ok(Dir {
            _tmp: tmp,
            path,
            fold_bytes: None,
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = common::command(&self.path, &self.path);
        c.args(["-C", &self.path.to_string_lossy()]).args(args);
        if let Some(n) = self.fold_bytes {
            c.env("WF_INDEX_FOLD_BYTES", n.to_string());
        }
        c
    }

    fn spawn(&self, args: &[&str], crash: Option<&str>) -> std::io::Result<Child> {
        let mut c = self.cmd(args);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(p) = crash {
            c.env("WF_CRASH_POINT", p);
        }
        c.spawn()
    }

    fn json(&self, args: &[&str]) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let out = self.cmd(&[&["--json"], args].concat()).output()?;
        if !out.status.success() {
            return Err(format!(
                "wf {args:?} exited {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let mut v = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            v.push(serde_json::from_str(line)?);
        }
        Ok(v)
    }

    fn state_marker(&self) -> String {
        format!("WF_STATE_DIR={}", self.path.join(".wf").display())
    }
}

/// Live processes whose environment says they are tasks of this state directory.
fn task_processes(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .map(|i| s[i + 1..].trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie && env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// After a `wf` died, none of its task processes may survive it (the reaper needs a moment).
fn assert_no_survivors(dir: &Dir, context: &str) -> TestResult {
    let marker = dir.state_marker();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = task_processes(&marker);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("task processes {left:?} outlived wf ({context})").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn seed() -> u64 {
    std::env::var("WF_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(42)
                | 1
        })
}

/// What to type next to move the (single) run on: run, resume, approve, or nothing (done).
fn next_command(dir: &Dir) -> Result<Option<Vec<&'static str>>, Box<dyn std::error::Error>> {
    let runs = dir.json(&["history"])?;
    let Some(run) = runs.first() else {
        return Ok(Some(vec!["run"]));
    };
    let state = run["state"].as_str().unwrap_or("");
    Ok(match state {
        "done" => None,
        "waiting" => Some(vec!["approve", "gate"]),
        _ => Some(vec!["resume"]),
    })
}

/// Drive the workflow to its end, SIGKILLing wf at random moments `kills` times.
fn drive(dir: &Dir, rng: &mut Rng, kills: u32, max_delay_ms: u64) -> TestResult {
    let mut done_kills = 0;
    let mut steps = 0;
    while let Some(args) = next_command(dir)? {
        steps += 1;
        if steps > kills as usize + 20 {
            return Err("the run does not finish".into());
        }
        let mut child = dir.spawn(&args, None)?;
        if done_kills < kills {
            std::thread::sleep(Duration::from_millis(rng.below(max_delay_ms)));
            kill9(&mut child);
            done_kills += 1;
            assert_no_survivors(dir, &format!("kill {done_kills} during {args:?}"))?;
        } else {
            let status = child.wait()?;
            if !status.success() {
                return Err(format!("wf {args:?} exited {:?}", status.code()).into());
            }
        }
    }
    Ok(())
}

fn outputs(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, Box<dyn std::error::Error>> {
    let mut m = BTreeMap::new();
    for t in TASKS {
        m.insert(t.to_string(), std::fs::read(dir.join("out").join(t))?);
    }
    Ok(m)
}

/// The invariants every crash test checks once the run is done.
fn check_invariants(dir: &Dir, reference: &BTreeMap<String, Vec<u8>>) -> TestResult {
    let runs = dir.json(&["history"])?;
    if runs.len() != 1 {
        return Err(format!("expected exactly one run, found {}", runs.len()).into());
    }
    let status = dir.json(&["status"])?;
    for s in &status {
        if s["state"] != "done" {
            return Err(format!("task not done at the end: {s}").into());
        }
    }
    if status.len() != TASKS.len() {
        return Err("status does not list every task".into());
    }
    if &outputs(&dir.path)? != reference {
        return Err("outputs differ from an uninterrupted run's".into());
    }
    let journal = dir.json(&["history", "1"])?;
    let mut journaled: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut done_at: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_seq = 0;
    for e in &journal {
        let seq = e["seq"].as_u64().unwrap_or(0);
        if seq <= last_seq {
            return Err("journal sequence is not increasing".into());
        }
        last_seq = seq;
        if e["kind"] != "transition" {
            continue;
        }
        let task = e["task"].as_str().unwrap_or("").to_string();
        let attempt = e["attempt"].as_u64().unwrap_or(0);
        if e["to"] == "running" {
            if let Some(d) = done_at.get(&task) {
                return Err(
                    format!("{task} started attempt {attempt} after its done (seq {d})").into(),
                );
            }
            journaled.insert((task.clone(), attempt));
        }
        if e["to"] == "done" {
            done_at.insert(task, seq);
        }
    }
    let execs = std::fs::read_to_string(dir.path.join("execs"))?;
    let mut seen = BTreeSet::new();
    for line in execs.lines() {
        let mut it = line.split_whitespace();
        let (Some(task), Some(attempt)) =
            (it.next(), it.next().and_then(|a| a.parse::<u64>().ok()))
        else {
            // A line torn by a kill mid-write is still an execution; it has no attempt to match.
            continue;
        };
        let key = (task.to_string(), attempt);
        if !journaled.contains(&key) {
            return Err(
                format!("execution {key:?} has no `running` transition in the journal").into(),
            );
        }
        if !seen.insert(key.clone()) {
            return Err(format!("attempt {key:?} ran twice").into());
        }
    }
    Ok(())
}

fn reference() -> Result<BTreeMap<String, Vec<u8>>, Box<dyn std::error::Error>> {
    let dir = Dir::new()?;
    let mut rng = Rng(1);
    drive(&dir, &mut rng, 0, 1)?;
    check_invariants(&dir, &outputs(&dir.path)?)?;
    outputs(&dir.path)
}

#[test]
fn random_kills_during_run_resume_and_approve() -> TestResult {
    let reference = reference()?;
    let seed = seed();
    eprintln!("WF_CRASH_SEED={seed}");
    let dir = Dir::new()?;
    let mut rng = Rng(seed);
    drive(&dir, &mut rng, 12, 500)?;
    check_invariants(&dir, &reference)
}

/// The same with the index folding its delta log into tables (and merging them) every few
/// commits: kills land inside folds, and the next command opens whatever generation was left.
#[test]
fn random_kills_while_the_index_folds() -> TestResult {
    let reference = reference()?;
    let seed = seed();
    eprintln!("WF_CRASH_SEED={seed}");
    let mut dir = Dir::new()?;
    dir.fold_bytes = Some(300);
    let mut rng = Rng(seed);
    drive(&dir, &mut rng, 12, 500)?;
    check_invariants(&dir, &reference)?;
    let tables = std::fs::read_dir(dir.path.join(".wf/journal"))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tbl"))
        .count();
    if tables == 0 {
        return Err("the index never folded into a table".into());
    }
    Ok(())
}

#[test]
fn kill_at_every_write_ahead_boundary() -> TestResult {
    let reference = reference()?;
    for point in [
        "before-running",
        "before-spawn",
        "after-spawn",
        "before-done",
        "after-done",
        "retry-wait",
        "before-done@3",
        "after-spawn@4",
    ] {
        let dir = Dir::new()?;
        let mut child = dir.spawn(&["run"], Some(point))?;
        let status = child.wait()?;
        if status.success() {
            return Err(format!("crash point {point} was never reached").into());
        }
        assert_no_survivors(&dir, point)?;
        let mut rng = Rng(7);
        drive(&dir, &mut rng, 0, 1).map_err(|e| format!("{point}: {e}"))?;
        check_invariants(&dir, &reference).map_err(|e| format!("{point}: {e}"))?;
    }
    Ok(())
}

/// Start `wf run` on a single task whose shell has a long-lived child, and wait until that child
/// exists; returns wf and the marker of the task's processes.
fn start_sleeper(dir: &Dir) -> Result<(Child, String), Box<dyn std::error::Error>> {
    std::fs::write(
        dir.path.join("wf.toml"),
        "[task.slow]\nrun = \"echo \\\"slow $WF_ATTEMPT\\\" >> execs; if [ \\\"$WF_ATTEMPT\\\" = 1 ]; then sleep 60; fi; echo ok\"\n",
    )?;
    let child = dir.spawn(&["run"], None)?;
    let marker = dir.state_marker();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Wait until the task's `sleep 60` (a grandchild of wf) exists.
    while task_processes(&marker).len() < 2 {
        if Instant::now() > deadline {
            return Err("the task never started".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((child, marker))
}

#[test]
fn no_task_process_outlives_a_killed_wf() -> TestResult {
    let dir = Dir::new()?;
    let (mut child, _) = start_sleeper(&dir)?;
    kill9(&mut child);
    // `sleep 60` would outlive this deadline by far if nothing killed it.
    assert_no_survivors(&dir, "kill -9 of wf during `sleep 60`")
}

#[test]
fn resume_kills_a_leftover_that_escaped_the_reaper() -> TestResult {
    let dir = Dir::new()?;
    let (mut child, marker) = start_sleeper(&dir)?;
    // Kill the reaper first, then wf: the shell dies with wf (parent-death signal) but `sleep`
    // survives, as after a crash that took the reaper too.
    let wf_pid = child.id();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(wf_pid) && cmdline.windows(6).any(|w| w == b"__reap") {
            if let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
    kill9(&mut child);
    std::thread::sleep(Duration::from_millis(200));
    let left = task_processes(&marker);
    if left.is_empty() {
        return Err("precondition: expected a leftover task process".into());
    }
    let out = dir.cmd(&["resume"]).output()?;
    if !out.status.success() {
        return Err(format!("resume failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !task_processes(&marker).is_empty() {
        return Err("leftover survived resume".into());
    }
    let journal = dir.json(&["history", "1"])?;
    let killed = journal.iter().any(|e| {
        e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("killed leftover process"))
    });
    if !killed {
        return Err(format!("resume did not journal the leftover it killed: {stdout}").into());
    }
    Ok(())
}

#[test]
#[ignore = "soak: WF_SOAK_KILLS=500 cargo test --release --test crash -- --ignored --nocapture"]
fn soak() -> TestResult {
    let reference = reference()?;
    let total: u32 = std::env::var("WF_SOAK_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let seed = seed();
    eprintln!("WF_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut kills = 0;
    let mut runs = 0;
    while kills < total {
        let mut dir = Dir::new()?;
        // Every other workflow folds its index every few hundred bytes of commits.
        if runs % 2 == 1 {
            dir.fold_bytes = Some(200 + rng.below(2000));
        }
        let n = (1 + rng.below(15) as u32).min(total - kills);
        let delay = 50 + rng.below(700);
        drive(&dir, &mut rng, n, delay).map_err(|e| format!("after {kills} kills: {e}"))?;
        check_invariants(&dir, &reference).map_err(|e| format!("after {kills} kills: {e}"))?;
        kills += n;
        runs += 1;
    }
    eprintln!("soak: {kills} kills over {runs} workflows survived");
    Ok(())
}

#[test]
fn a_non_idempotent_task_cut_short_needs_force() -> TestResult {
    let dir = Dir::new()?;
    std::fs::write(
        dir.path.join("wf.toml"),
        "[task.slow]\nidempotent = false\nrun = \"echo \\\"slow $WF_ATTEMPT\\\" >> execs; if [ \\\"$WF_ATTEMPT\\\" = 1 ]; then sleep 60; fi; echo ok\"\n",
    )?;
    let mut child = dir.spawn(&["run"], None)?;
    let marker = dir.state_marker();
    let deadline = Instant::now() + Duration::from_secs(10);
    while task_processes(&marker).len() < 2 {
        if Instant::now() > deadline {
            return Err("the task never started".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    kill9(&mut child);
    assert_no_survivors(&dir, "kill -9 during a non-idempotent task")?;
    let out = dir.cmd(&["resume"]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) || !stderr.contains("--force") || !stderr.contains("idempotent")
    {
        return Err(format!("resume without --force: {:?} {stderr}", out.status.code()).into());
    }
    // Nothing was changed by the refusal: the attempt is still journaled running.
    let status = dir.json(&["status"])?;
    if status
        .first()
        .map(|s| s["state"] != "running")
        .unwrap_or(true)
    {
        return Err(format!("the refused resume changed the journal: {status:?}").into());
    }
    let out = dir.cmd(&["resume", "--force"]).output()?;
    if !out.status.success() {
        return Err(format!("resume --force: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let status = dir.json(&["status"])?;
    if status
        .first()
        .map(|s| s["state"] != "done" || s["attempts"] != 2)
        .unwrap_or(true)
    {
        return Err(format!("after --force: {status:?}").into());
    }
    Ok(())
}

#[test]
fn resume_restores_or_reruns_a_done_task_whose_output_changed() -> TestResult {
    for lose_store in [false, true] {
        let dir = Dir::new()?;
        std::fs::write(
            dir.path.join("wf.toml"),
            "[task.a]\nrun = \"echo \\\"a $WF_ATTEMPT\\\" >> execs; echo a > a.out\"\noutputs = [\"a.out\"]\n\
             [task.b]\nneeds = [\"a\"]\ninputs = [\"a.out\"]\nrun = \"echo \\\"b $WF_ATTEMPT\\\" >> execs; cp a.out b.out\"\noutputs = [\"b.out\"]\n",
        )?;
        // wf dies right after a's `done` is durable, before b starts.
        let status = dir.spawn(&["run"], Some("after-done"))?.wait()?;
        if status.success() {
            return Err("the crash point was not reached".into());
        }
        std::fs::write(dir.path.join("a.out"), "tampered\n")?;
        if lose_store {
            std::fs::remove_dir_all(dir.path.join(".wf/objects"))?;
        }
        let out = dir.cmd(&["resume"]).output()?;
        if !out.status.success() {
            return Err(format!("resume: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        // b's `running` shared the batch with a's `done`, so b 1 was journaled but never
        // spawned; it runs once, as attempt 2.
        let execs = std::fs::read_to_string(dir.path.join("execs"))?;
        let journal = dir.json(&["history", "1"])?;
        let rerun = journal.iter().any(|e| {
            e["task"] == "a"
                && e["from"] == "done"
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("a.out changed"))
        });
        let expected = if lose_store {
            "a 1\na 2\nb 2\n" // not restorable: a runs again, with the reason journaled
        } else {
            "a 1\nb 2\n" // restored from the checkpoint store: a is kept
        };
        if execs != expected || rerun != lose_store {
            return Err(format!(
                "lose_store={lose_store}: executions {execs:?}, re-run journaled: {rerun}"
            )
            .into());
        }
        if std::fs::read_to_string(dir.path.join("b.out"))? != "a\n" {
            return Err("b did not see a's output".into());
        }
    }
    Ok(())
}

/// SIGKILL just before and just after the batch that journals a newer run's gate together with
/// the older runs it supersedes: either none or all of it is journaled, and resuming the newer
/// run finishes the job — every older run ends superseded exactly once, and nothing is lost.
#[test]
fn a_kill_during_the_supersede_batch_loses_nothing() -> TestResult {
    for point in ["before-supersede", "after-supersede"] {
        let dir = Dir::new()?;
        std::fs::write(
            dir.path.join("wf.toml"),
            "[task.make]\nrun = \"echo \\\"make $WF_RUN_ID\\\" >> execs; echo $WF_RUN_ID > out.txt\"\noutputs = [\"out.txt\"]\n\
             [task.publish]\nneeds = [\"make\"]\nmanual = true\ninputs = [\"out.txt\"]\nrun = \"cp out.txt final.txt\"\noutputs = [\"final.txt\"]\n",
        )?;
        // Runs 1 and 2 wait at publish in turn (2 supersedes 1); run 3 dies in the batch that
        // supersedes run 2.
        for _ in 0..2 {
            if !dir.cmd(&["-q", "run", "--force"]).status()?.success() {
                return Err("a run failed".into());
            }
        }
        let status = dir.spawn(&["run", "--force"], Some(point))?.wait()?;
        if status.success() {
            return Err(format!("crash point {point} was never reached").into());
        }
        let states = |dir: &Dir| -> Result<Vec<String>, Box<dyn std::error::Error>> {
            let mut runs = dir.json(&["history"])?;
            runs.reverse();
            Ok(runs
                .iter()
                .map(|r| r["state"].as_str().unwrap_or("").to_string())
                .collect())
        };
        let expect = if point == "before-supersede" {
            ["superseded", "waiting", "interrupted"]
        } else {
            ["superseded", "superseded", "interrupted"]
        };
        if states(&dir)? != expect {
            return Err(format!("{point}: after the kill {:?}", states(&dir)?).into());
        }
        let out = dir.cmd(&["resume"]).output()?;
        if !out.status.success() {
            return Err(
                format!("{point}: resume: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
        if states(&dir)? != ["superseded", "superseded", "waiting"] {
            return Err(format!("{point}: after resume {:?}", states(&dir)?).into());
        }
        let by: Vec<Value> = dir
            .json(&["history", "2"])?
            .into_iter()
            .filter(|e| e["event"] == "superseded")
            .map(|e| e["by"].clone())
            .collect();
        if by != [Value::from(3)] {
            return Err(format!("{point}: run 2 superseded by {by:?}").into());
        }
        // Before the batch, make's `done` (which shares it) was not durable: make 3 runs again.
        let execs = if point == "before-supersede" {
            "make 1\nmake 2\nmake 3\nmake 3\n"
        } else {
            "make 1\nmake 2\nmake 3\n"
        };
        if std::fs::read_to_string(dir.path.join("execs"))? != execs {
            return Err(format!(
                "{point}: executions {:?}",
                std::fs::read_to_string(dir.path.join("execs"))?
            )
            .into());
        }
        let out = dir.cmd(&["approve", "publish"]).output()?;
        if !out.status.success() || std::fs::read_to_string(dir.path.join("final.txt"))? != "3\n" {
            return Err(format!("{point}: approving run 3 failed").into());
        }
    }
    Ok(())
}

/// The one sentence wf prints when its index stops responding.
const STALLED: &str =
    "wf: the index stopped responding; nothing acknowledged is lost; run the command again";
/// The watchdog's base time in these tests (a real deadlock never returns; 1 s keeps them fast).
const WATCHDOG: Duration = Duration::from_secs(1);

/// Run wf with an index commit that blocks forever (`WF_FAIL_INDEX_STALL`: the Nth commit, or
/// the first once a file exists); fails unless the watchdog ends it with exit 4, its sentence and
/// an engine log event, after its time and well before a hang would. Returns its stderr.
fn run_stalled(
    dir: &Dir,
    args: &[&str],
    stall: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut child = dir
        .cmd(args)
        .env("WF_INDEX_TIMEOUT", format!("{}ms", WATCHDOG.as_millis()))
        .env("WF_FAIL_INDEX_STALL", stall)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            kill9(&mut child);
            return Err(format!("wf {args:?} hung on a stalled index commit ({stall})").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr)?;
    }
    if status.code() != Some(4) {
        return Err(format!(
            "wf {args:?} with a stalled index ({stall}) exited {:?}, not 4: {stderr}",
            status.code()
        )
        .into());
    }
    if stderr.lines().last() != Some(STALLED) {
        return Err(format!("expected the stall sentence last, got: {stderr}").into());
    }
    if elapsed < WATCHDOG {
        return Err(format!("stopped after {elapsed:?}, before the watchdog's time").into());
    }
    let log = std::fs::read_to_string(dir.path.join(".wf/logs/wf.jsonl"))?;
    let logged = log
        .lines()
        .any(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["event"] == "index stalled"));
    if !logged {
        return Err("no `index stalled` event in the engine log".into());
    }
    Ok(stderr)
}

#[test]
fn a_stalled_index_stops_wf_with_exit_4_kills_its_tasks_and_frees_the_lock() -> TestResult {
    let dir = Dir::new()?;
    // `slow` is running (its `sleep 60` too) when `quick`'s `done` is journaled: the index commit
    // of that batch is the one that never returns (the first once `finishing` exists; `quick`
    // waits for `slow`, whose output line lets both spawns be journaled before it makes that
    // file).
    std::fs::write(
        dir.path.join("wf.toml"),
        r#"
[task.slow]
run = "echo \"slow $WF_ATTEMPT\" >> execs; touch started; echo up; if [ \"$WF_ATTEMPT\" = 1 ]; then sleep 60; fi"

[task.quick]
run = "while [ ! -f started ]; do sleep 0.02; done; sleep 0.3; echo \"quick $WF_ATTEMPT\" >> execs; touch finishing"
"#,
    )?;
    let finishing = dir.path.join("finishing");
    run_stalled(&dir, &["run", "--jobs", "2"], &finishing.to_string_lossy())?;
    // The reaper kills `sleep 60` with wf; nothing of the stalled process survives.
    assert_no_survivors(&dir, "the watchdog ended wf during `sleep 60`")?;
    // The lock went with the process: resume continues the same run from the record log.
    let out = dir.cmd(&["resume"]).output()?;
    if !out.status.success() {
        return Err(format!(
            "resume after the stall exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let status = dir.json(&["status"])?;
    if status.len() != 2 || status.iter().any(|t| t["state"] != "done") {
        return Err(format!("not every task done after resume: {status:?}").into());
    }
    // `quick`'s done was appended to the record log before the index stalled: acknowledged,
    // so it is not run again; `slow`'s interrupted attempt is, as after a crash.
    let execs = std::fs::read_to_string(dir.path.join("execs"))?;
    let mut lines: Vec<&str> = execs.lines().collect();
    lines.sort_unstable();
    if lines != ["quick 1", "slow 1", "slow 2"] {
        return Err(format!("executions after the stall and resume: {lines:?}").into());
    }
    if dir.json(&["history"])?.len() != 1 {
        return Err("the resume started another run".into());
    }
    Ok(())
}

#[test]
fn a_run_stalled_anywhere_resumes_with_the_crash_invariants() -> TestResult {
    let reference = reference()?;
    // Early (the run's start), mid-run (retries, checkpoints) and late (after the gate's wait).
    for nth in [4, 12, 20] {
        let dir = Dir::new()?;
        run_stalled(&dir, &["run"], &nth.to_string()).map_err(|e| format!("commit {nth}: {e}"))?;
        assert_no_survivors(&dir, &format!("stall at commit {nth}"))?;
        let mut rng = Rng(1);
        drive(&dir, &mut rng, 0, 1).map_err(|e| format!("commit {nth}: {e}"))?;
        check_invariants(&dir, &reference).map_err(|e| format!("commit {nth}: {e}"))?;
        if nth == 12 {
            // Without its index, a reader answers from the record log and writes nothing; a
            // writer's rebuild of the whole index stalls the same way, and the next command
            // rebuilds it again.
            std::fs::remove_dir_all(dir.path.join(".wf/journal"))?;
            check_invariants(&dir, &reference).map_err(|e| format!("without the index: {e}"))?;
            if dir.path.join(".wf/journal").exists() {
                return Err("a reader recreated the index".into());
            }
            run_stalled(&dir, &["gc"], "2").map_err(|e| format!("rebuild: {e}"))?;
            check_invariants(&dir, &reference).map_err(|e| format!("after the rebuild: {e}"))?;
        }
    }
    Ok(())
}

#[test]
fn a_bad_index_timeout_is_a_usage_error() -> TestResult {
    let dir = Dir::new()?;
    for bad in ["soon", "0s", "-5s", "\u{1b}[31m"] {
        let out = dir.cmd(&["status"]).env("WF_INDEX_TIMEOUT", bad).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !stderr.contains("WF_INDEX_TIMEOUT") {
            return Err(
                format!("WF_INDEX_TIMEOUT={bad:?}: {:?} {stderr}", out.status.code()).into(),
            );
        }
        if stderr.contains('\u{1b}') || stderr.lines().count() != 1 {
            return Err(format!("not one safe sentence: {stderr:?}").into());
        }
    }
    let out = dir
        .cmd(&["status"])
        .env("WF_INDEX_TIMEOUT", "2m")
        .output()?;
    if out.status.code() == Some(2) {
        return Err("a valid WF_INDEX_TIMEOUT was refused".into());
    }
    Ok(())
}
