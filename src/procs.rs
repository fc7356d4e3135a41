//! Processes on this machine, by group and by mark: signalling an attempt's process group, killing
//! what is left of an interrupted one, and finding processes by a variable in their environment
//! (a /proc scan). A leaf: the engine and alert commands both use it.

use rustix::process::{kill_process_group, Pid, Signal};

/// Send `sig` to the whole process group of an attempt (its pid is the group id). Group ids 0
/// and 1 (and anything that does not fit a pid) are refused: `kill(-1)` would signal every
/// process the user may signal.
pub fn signal_group(pgid: u32, sig: Signal) {
    if pgid <= 1 || pgid > i32::MAX as u32 {
        return;
    }
    if let Some(pid) = Pid::from_raw(pgid as i32) {
        let _ = kill_process_group(pid, sig);
    }
}

/// SIGKILL the recorded process group of an interrupted attempt, whose leader was `pid` started
/// at `start`; returns the processes that were in it. The group is killed when its leader is
/// still that process, and also when the leader is gone but members are left (a pid that is some
/// group's id is never handed to a new process while the group exists, so the group is still the
/// attempt's). When the pid now names another process, the group is not ours and is left alone.
pub fn bury_group(pid: u32, start: Option<u64>) -> Vec<u32> {
    if pid <= 1 || pid > i32::MAX as u32 {
        return Vec::new();
    }
    // The pid names another process now (or one wf cannot verify): not the attempt's group.
    // A zombie leader keeps its start time, so it still counts as the attempt's.
    let reused = match (wf_state::process::start_time(pid), start) {
        (Some(now), Some(then)) => now != then,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if reused {
        return Vec::new();
    }
    let leader = wf_state::process::alive(pid, start);
    let members = group_members(pid, start);
    if leader || !members.is_empty() {
        signal_group(pid, Signal::KILL);
    }
    members
}

/// The live processes whose process group is `pgid` (and that started no earlier than `start`).
/// Every process in /proc: its pid and its /proc entry (empty when /proc cannot be read).
fn proc_pids() -> impl Iterator<Item = (u32, std::fs::DirEntry)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flat_map(|d| d.flatten())
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((pid, e))
        })
}

fn group_members(pgid: u32, start: Option<u64>) -> Vec<u32> {
    let mut out = Vec::new();
    for (pid, entry) in proc_pids() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        // After the name: state, ppid, pgrp, …, starttime (field 22 of the line, here 19).
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let in_group = fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid);
        let zombie = fields.first() == Some(&"Z");
        let started = fields.get(19).and_then(|t| t.parse::<u64>().ok());
        let late_enough = match (start, started) {
            (Some(s), Some(t)) => t >= s,
            _ => true,
        };
        if in_group && !zombie && late_enough {
            out.push(pid);
        }
    }
    out
}

/// Processes (other than zombies) whose environment marks them as part of this attempt: what
/// resume checks when the journal has no pid for an interrupted attempt.
pub fn find_marked(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let needle = marker.as_bytes();
    for (pid, entry) in proc_pids() {
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == needle) && wf_state::process::alive(pid, None) {
            out.push(pid);
        }
    }
    out
}
