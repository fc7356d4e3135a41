//! Process identity on Linux: a pid alone can be reused, so a process is named by its pid and its
//! start time (clock ticks since boot, field 22 of `/proc/PID/stat`).

/// The start time of `pid`, or `None` when it does not exist (or /proc cannot tell).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = read_stat(pid)?;
    // The command name (field 2) may contain spaces and parentheses: skip past its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); start time is field 22, i.e. the 20th from here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `/proc/PID/stat` in one read (one line, at most about 1.1 KiB: 52 numbers and a command name
/// the kernel caps at 15 bytes): an open, a read and a close, where reading it as a string
/// costs a stat and a growing series of reads — this runs once per attempt.
fn read_stat(pid: u32) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    // The command name may hold any bytes (it is skipped by the callers, who read past its
    // last ')'): lossy, so a task named in invalid UTF-8 still has a start time.
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Whether the process `pid` that started at `start` is still alive (and not a zombie).
pub fn alive(pid: u32, start: Option<u64>) -> bool {
    let Some(stat) = read_stat(pid) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let mut fields = stat[close + 1..].split_whitespace();
    if fields.next() == Some("Z") {
        return false;
    }
    match start {
        None => true,
        Some(s) => fields.nth(18).and_then(|v| v.parse::<u64>().ok()) == Some(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_with_its_start_time() {
        let me = std::process::id();
        let st = start_time(me);
        assert!(st.is_some());
        assert!(alive(me, st));
        assert!(!alive(me, st.map(|s| s + 1)));
        assert!(!alive(u32::MAX - 1, None));
    }
}
