//! Orphans: a task's processes that try to outlive their wf. Each test starts a real `wf run` whose
//! task leaves a child behind — in its process group with a cleared environment (`env -i`), or in a
//! new session too (`setsid env -i`) — then kills wf (and, for the hardest case, its reaper first),
//! and checks that the child is gone after the reaper or `wf resume` did their work.
//!
//! The cgroup cases need cgroup v2 with the right to create a child cgroup (root, or a delegated
//! subtree); where that is missing they are skipped with a line saying why. The process-group cases
//! run everywhere (with `WF_CGROUP=off`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
}

impl Dir {
    fn new(toml: &str) -> Result<Dir, Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().canonicalize()?;
        std::fs::write(path.join("wf.toml"), toml)?;
        Ok(Dir { _tmp: tmp, path })
    }

    fn cmd(&self, args: &[&str], cgroups: bool) -> Command {
        let mut c = common::command(&self.path, &self.path);
        c.args(["-C", &self.path.to_string_lossy()])
            .args(args)
            .stdin(Stdio::null());
        if cgroups {
            c.env_remove("WF_CGROUP");
        } else {
            c.env("WF_CGROUP", "off");
        }
        c
    }

    /// The pid the orphan wrote, once it did.
    fn wait_for_pid(&self, name: &str) -> Result<u32, Box<dyn std::error::Error>> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(s) = std::fs::read_to_string(self.path.join(name)) {
                if let Ok(p) = s.trim().parse() {
                    return Ok(p);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("the task never wrote {name}").into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| !s[i + 1..].trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn kill(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// SIGKILL wf's reaper (its child running `wf __reap`), then wf itself: a crash that took both.
fn kill_reaper_then_wf(child: &mut Child) {
    let wf_pid = child.id();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(wf_pid) && cmdline.windows(6).any(|w| w == b"__reap") {
                if let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() {
                    kill(pid);
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether this machine lets wf contain attempts in cgroups; `None` with the reason when not.
fn cgroups_usable() -> Result<(), String> {
    let dir = Dir::new("[task.probe]\nrun = \"true\"\n").map_err(|e| e.to_string())?;
    let out = dir
        .cmd(&["-v", "run"], true)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("containment:"))
        .unwrap_or("no containment line")
        .to_string();
    if line.contains("own cgroup v2") {
        Ok(())
    } else {
        Err(line)
    }
}

fn skip(test: &str, why: &str) {
    eprintln!("skipped {test}: cgroup containment is not available here ({why})");
}

/// An orphan that stays in the task's process group but clears its environment (so it carries no
/// owner mark), and a shell that exits a moment after wf died: only the recorded group finds it.
const IN_GROUP: &str = r#"
[task.t]
run = '''
if [ "$WF_ATTEMPT" = 1 ]; then
  env -i sh -c 'echo $$ > orphan.pid; exec sleep 60' &
  echo $$ > shell.pid
  sleep 3
fi
true
'''
"#;

#[test]
fn resume_kills_the_recorded_group_after_wf_and_its_reaper_died() -> TestResult {
    let dir = Dir::new(IN_GROUP)?;
    let mut wf = dir
        .cmd(&["run"], false)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let orphan = dir.wait_for_pid("orphan.pid")?;
    let shell = dir.wait_for_pid("shell.pid")?;
    // The attempt's process group is journaled with the scheduler's next turn (within a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = dir.cmd(&["--json", "history", "1"], false).output()?;
        if String::from_utf8_lossy(&h.stdout).contains("\"kind\":\"spawn\"") {
            break;
        }
        if Instant::now() > deadline {
            kill_reaper_then_wf(&mut wf);
            kill(orphan);
            return Err("the attempt's pid was never journaled".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_reaper_then_wf(&mut wf);
    // The shell ends on its own; the orphan stays behind in the group of a dead leader.
    if !wait_gone(shell, Duration::from_secs(10)) {
        kill(shell);
    }
    std::thread::sleep(Duration::from_millis(100));
    if !alive(orphan) {
        return Err("precondition: the orphan should have outlived wf and its reaper".into());
    }
    let out = dir.cmd(&["resume"], false).output()?;
    let still = alive(orphan);
    if still {
        kill(orphan);
    }
    assert!(
        out.status.success(),
        "resume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !still,
        "the orphan in the recorded group survived resume: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let history = dir.cmd(&["history", "1"], false).output()?;
    let text = String::from_utf8_lossy(&history.stdout);
    assert!(
        text.contains(&format!("killed leftover process {orphan}"))
            || text.contains(&format!(", {orphan}")),
        "resume did not journal the orphan it killed:\n{text}"
    );
    Ok(())
}

/// An orphan that leaves the group (`setsid`) and clears its environment (`env -i`): only a
/// cgroup holds it.
const ESCAPER: &str = r#"
[task.t]
run = '''
if [ "$WF_ATTEMPT" = 1 ]; then
  setsid env -i sh -c 'echo $$ > orphan.pid; exec sleep 60' &
  sleep 60
fi
true
'''
"#;

#[test]
fn cgroup_catches_setsid_and_env_i_after_wf_and_its_reaper_died() -> TestResult {
    if let Err(why) = cgroups_usable() {
        skip(
            "cgroup_catches_setsid_and_env_i_after_wf_and_its_reaper_died",
            &why,
        );
        return Ok(());
    }
    let dir = Dir::new(ESCAPER)?;
    let mut wf = dir
        .cmd(&["run"], true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let orphan = dir.wait_for_pid("orphan.pid")?;
    kill_reaper_then_wf(&mut wf);
    std::thread::sleep(Duration::from_millis(100));
    if !alive(orphan) {
        return Err("precondition: the orphan should have outlived wf and its reaper".into());
    }
    let out = dir.cmd(&["resume"], true).output()?;
    let still = alive(orphan);
    if still {
        kill(orphan);
    }
    assert!(
        out.status.success(),
        "resume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!still, "setsid + env -i escaped the attempt's cgroup");
    assert_no_attempt_cgroups(&dir.path)?;
    Ok(())
}

#[test]
fn the_reaper_ends_the_cgroup_when_only_wf_is_killed() -> TestResult {
    if let Err(why) = cgroups_usable() {
        skip("the_reaper_ends_the_cgroup_when_only_wf_is_killed", &why);
        return Ok(());
    }
    let dir = Dir::new(ESCAPER)?;
    let mut wf = dir
        .cmd(&["run"], true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let orphan = dir.wait_for_pid("orphan.pid")?;
    let _ = wf.kill();
    let _ = wf.wait();
    let gone = wait_gone(orphan, Duration::from_secs(5));
    if !gone {
        kill(orphan);
    }
    assert!(gone, "the reaper did not end the attempt's cgroup");
    Ok(())
}

#[test]
fn a_finished_attempt_leaves_no_process_and_no_cgroup() -> TestResult {
    let toml = r#"
[task.t]
run = '''
setsid env -i sh -c 'echo $$ > orphan.pid; exec sleep 60' &
while [ ! -s orphan.pid ]; do sleep 0.01; done
'''
"#;
    for cgroups in [true, false] {
        if cgroups {
            if let Err(why) = cgroups_usable() {
                skip(
                    "a_finished_attempt_leaves_no_process_and_no_cgroup (cgroup part)",
                    &why,
                );
                continue;
            }
        }
        let dir = Dir::new(toml)?;
        let out = dir.cmd(&["run"], cgroups).output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let orphan = dir.wait_for_pid("orphan.pid")?;
        let gone = wait_gone(orphan, Duration::from_secs(3));
        kill(orphan);
        if cgroups {
            assert!(gone, "the attempt's cgroup did not end its escaped child");
            assert_no_attempt_cgroups(&dir.path)?;
        } else {
            // The documented limit: without cgroups, setsid + env -i escapes a finished attempt.
            eprintln!(
                "without cgroups the setsid + env -i child {}",
                if gone {
                    "was gone"
                } else {
                    "escaped (the documented limit)"
                }
            );
        }
    }
    Ok(())
}

/// No cgroup of this state directory is left (wf's tree is removed when it ends).
fn assert_no_attempt_cgroups(dir: &Path) -> TestResult {
    let parent = std::fs::read_to_string(dir.join(".wf/logs/cgroup-parent"))?;
    let parent = PathBuf::from(parent.trim());
    let prefix = wf::engine::cgroup::state_prefix(&dir.join(".wf"));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<String> = std::fs::read_dir(&parent)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("cgroups left behind in {}: {left:?}", parent.display()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
