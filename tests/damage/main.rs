//! Damaged, foreign and newer state directories (design goal 2: "Refuse, never reset").
//!
//! The state: `.wf/journal.log` is the RECORD LOG — every journal record as a frame (`wfR1`, u32 LE
//! length, u32 LE CRC-32 of the payload, payload), fdatasynced before the index (`.wf/journal/`)
//! gets it. The index is derived: it records in `m:logpos` how far into the log it has applied; at
//! open, what the log holds past `m:logpos` is replayed into it.
//!
//! Each kind of damage below either
//! - is refused with its exit code (5: damaged, foreign or newer) and a one-line message saying
//!   what is wrong, by readers and writers alike — and a refusal never changes the record log,
//!   `VERSION` or anything else outside `journal/` (`.wf/lock` excepted: a writer rewrites it
//!   before it opens anything). The index's own files under `journal/` are derived data that a
//!   writer may rewrite (a fold, a rebuild) or create whenever it opens, so `journal/` and
//!   what is in it are left out of the "unchanged" hashes (a `journal` that is a regular file is
//!   hashed); or
//! - is served (exit 0): every reader answers EXACTLY what it answered before the damage (nothing
//!   acknowledged may ever be lost) and leaves everything outside `journal/` as it was; and every
//!   writer keeps working: it exits 0, the log keeps its bytes and gains only whole frames, and
//!   every record exported before is still exported after.
//!
//! Then the byte-flip test: a state with several sessions of writes (runs with checkpoints and
//! metrics, a retry, an alert through a `[notify] command`, approvals, a `wf gc` prune); in
//! `VERSION`, the record log and each of the index's files, one byte is flipped at ~24 spread
//! positions, each in a fresh copy, and `wf --json history`, `wf --json history 2` and
//! `wf state export` (every record) must either answer exactly what they answered before the flip
//! (exit 0) or refuse (exit 5, one line) — never exit 0 with a different answer (silent loss),
//! never panic, never hang, never change anything outside `journal/`. The record log is flipped
//! twice: with index intact (the flips lie before `m:logpos`, which an open does not read; plus
//! every field of the last frame), and with `journal/` removed, so that the index is rebuilt from
//! the flipped log (plus every field — magic, each length byte, CRC, payload — of the first,
//! middle and last frame); there a flip inside the LAST frame reads as a torn write and may drop
//! exactly that record, all answers alike. The outcomes per file are printed
//! (`cargo test --test damage -- --nocapture`).
//!
//! A refusal never creates `lock` in a directory that is not wf's nor changes one that is there
//! (it is decided before the lock is taken), and damage in the middle of the record log is found
//! with the index intact too: a log that changed since wf last verified it
//! (`journal/log.verified`) is checked whole before anything is answered or appended.
//!
//! Last, `wf state export` / `wf state import` round-trip such a journal exactly.
//!
//! Tests marked `#[ignore = "bug: …"]` show a wf bug; `cargo test --test damage -- --ignored` runs
//! them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;

#[path = "../common/mod.rs"]
mod common;

use common::{copy_dir, Rng};

/// A wf that has not exited after this long is hung: it is killed and the test fails.
const HANG: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// A workflow directory (canonical path) with its `.wf/`.
struct T {
    _dir: TempDir,
    root: PathBuf,
}

/// How one wf invocation ended.
#[derive(Debug, Clone)]
struct Out {
    what: String,
    /// The exit code, or minus the signal number; `i32::MIN` for a hang (killed).
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// A panic, a backtrace or an internal error on stderr.
    fn panicked(&self) -> bool {
        ["panicked", "RUST_BACKTRACE", "internal error"]
            .iter()
            .any(|b| self.stderr.contains(b))
    }

    fn lines(&self) -> usize {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).count()
    }

    fn show(&self) -> String {
        format!(
            "`{}` exited {}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.code,
            clip(&self.stdout),
            clip(&self.stderr)
        )
    }
}

fn clip(s: &str) -> String {
    if s.len() <= 800 {
        return s.to_string();
    }
    let mut end = 800;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// Run `wf ARGS` in `cwd` with a small fixed environment, killed after `HANG`.
fn wf_in(cwd: &Path, args: &[&str]) -> Out {
    let what = format!("wf {}", args.join(" "));
    let mut child = common::command(cwd, cwd)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting wf");
    // Drain both pipes on threads so a chatty wf never blocks on a full pipe.
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut s);
        s
    });
    let started = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().expect("waiting for wf") {
            use std::os::unix::process::ExitStatusExt;
            break st.code().unwrap_or_else(|| -st.signal().unwrap_or(0));
        }
        if started.elapsed() >= HANG {
            let _ = child.kill();
            let _ = child.wait();
            break i32::MIN;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Out {
        what,
        code,
        stdout,
        stderr,
    }
}

impl T {
    fn new() -> T {
        let dir = tempfile::Builder::new()
            .prefix("wf-damage-")
            .tempdir()
            .expect("creating a temp dir");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        T { _dir: dir, root }
    }

    fn with(toml: &str) -> T {
        let t = T::new();
        fs::write(t.root.join("wf.toml"), toml).expect("writing wf.toml");
        t
    }

    fn state(&self) -> PathBuf {
        self.root.join(".wf")
    }

    fn wf(&self, args: &[&str]) -> Out {
        wf_in(&self.root, args)
    }

    /// `wf ARGS`, which must exit `code` without a panic.
    #[track_caller]
    fn ok(&self, args: &[&str], code: i32) -> Out {
        let out = self.wf(args);
        assert!(out.code == code && !out.panicked(), "{}", out.show());
        out
    }
}

/// Every file (with the BLAKE3 hash of its bytes) and directory under `dir`, `lock` excepted;
/// the index `journal/` only `with_index` (a `journal` that is not a directory is always
/// hashed).
fn hashes(dir: &Path, with_index: bool) -> BTreeMap<PathBuf, String> {
    fn walk(base: &Path, dir: &Path, with_index: bool, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).to_path_buf();
            if rel == Path::new("lock") {
                continue;
            }
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    // the index, and a damaged index wf set aside (`journal.broken-*`) before
                    // rebuilding it from the record log, are not the journal's truth.
                    let aside = rel.to_string_lossy().starts_with("journal.broken-");
                    if (rel == Path::new("journal") || aside) && !with_index {
                        continue;
                    }
                    out.insert(rel, "directory".into());
                    walk(base, &p, with_index, out);
                }
                Ok(_) => {
                    let bytes = fs::read(&p).unwrap_or_default();
                    out.insert(rel, blake3::hash(&bytes).to_hex().to_string());
                }
                Err(_) => {}
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, with_index, &mut out);
    out
}

/// What differs between two `hashes` maps, for messages.
fn diff(a: &BTreeMap<PathBuf, String>, b: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("removed {}", k.display())),
            Some(w) if w != v => out.push(format!("changed {}", k.display())),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("created {}", k.display()));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The record log, as documented (state/src/wal.rs)
// ---------------------------------------------------------------------------------------------

const MAGIC: &[u8; 4] = b"wfR1";
/// Magic, length, CRC.
const HEADER: usize = 12;

/// The whole frames at the start of `log`, as (offset, length with header); parsing stops at the
/// first one that is incomplete or fails its checks. Returns them and where parsing stopped.
fn frames(log: &[u8]) -> (Vec<(usize, usize)>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while log.len() - at >= HEADER && log[at..].starts_with(MAGIC) {
        let word = |i: usize| {
            u32::from_le_bytes([
                log[at + i],
                log[at + i + 1],
                log[at + i + 2],
                log[at + i + 3],
            ])
        };
        let len = word(4) as usize;
        if log.len() - at - HEADER < len
            || crc32fast::hash(&log[at + HEADER..at + HEADER + len]) != word(8)
        {
            break;
        }
        out.push((at, HEADER + len));
        at += HEADER + len;
    }
    (out, at)
}

fn log_path(s: &Path) -> PathBuf {
    s.join("journal.log")
}

fn read_log(s: &Path) -> Vec<u8> {
    fs::read(log_path(s)).expect("reading the record log")
}

/// The record log of `s`, which must be whole frames from its start to its end.
#[track_caller]
fn log_frames(s: &Path) -> Vec<(usize, usize)> {
    let log = read_log(s);
    let (frames, end) = frames(&log);
    assert_eq!(
        end,
        log.len(),
        "the record log is not whole frames to its end"
    );
    assert!(frames.len() >= 3, "a record log of {} frames", frames.len());
    frames
}

// ---------------------------------------------------------------------------------------------
// Kinds of damage
// ---------------------------------------------------------------------------------------------

/// A small state: two runs of a task with a checkpoint and a metric. No reader has opened it
/// since the last writer, exactly as a user finds it.
fn small_state() -> T {
    let t = T::with(
        "[task.a]\nrun = 'echo \"v-$WF_RUN_ID\" > o.txt; echo \"rows=$WF_RUN_ID\" >> \"$WF_METRICS\"'\noutputs = [\"o.txt\"]\n",
    );
    t.ok(&["run"], 0);
    t.ok(&["run", "--force"], 0);
    t
}

const READERS: [&[&str]; 4] = [
    &["status"],
    &["--json", "history"],
    &["history", "1"],
    &["state", "export"],
];

const WRITERS: [&[&str]; 4] = [&["run"], &["resume"], &["gc"], &["restore", "1"]];

/// An answer as compared: an export's header line (its time of export) is left out.
fn answer(args: &[&str], stdout: &str) -> String {
    if args.ends_with(&["state", "export"]) {
        stdout.lines().skip(1).collect::<Vec<_>>().join("\n")
    } else {
        stdout.to_string()
    }
}

/// What each command of `cmds` answers on `t`'s state, taken without disturbing it: they run on
/// the state, which is then put back byte for byte as it was.
fn reference(t: &T, cmds: &[&[&str]]) -> Vec<String> {
    let keep = t.root.join(".wf-untouched");
    copy_dir(&t.state(), &keep, &[]);
    let want = cmds
        .iter()
        .map(|args| {
            let out = t.ok(args, 0);
            answer(args, &out.stdout)
        })
        .collect();
    fs::remove_dir_all(t.state()).expect("removing the read state");
    fs::rename(&keep, t.state()).expect("putting the state back");
    want
}

/// Every command in `cmds` refuses the damaged state with `code` and one line naming it.
#[track_caller]
fn assert_refused(damage: fn(&Path), cmds: &[&[&str]], code: i32, fragments: &[&str]) {
    let t = small_state();
    damage(&t.state());
    for args in cmds {
        let out = t.wf(args);
        assert!(!out.panicked(), "{}", out.show());
        assert_eq!(out.code, code, "wrong exit code: {}", out.show());
        assert_eq!(out.lines(), 1, "not a one-line error: {}", out.show());
        for f in fragments {
            assert!(
                out.stderr.contains(f),
                "the message lacks {f:?}: {}",
                out.show()
            );
        }
    }
}

/// `lock` as it is: None when there is none, else its bytes.
fn lock_of(s: &Path) -> Option<Vec<u8>> {
    fs::read(s.join("lock")).ok()
}

/// No command in READERS and WRITERS changes a byte of the damaged state outside `journal/`, and
/// none creates `lock` where there was none (a directory that is not wf's) or changes one.
#[track_caller]
fn assert_unchanged(damage: fn(&Path)) {
    let t = small_state();
    damage(&t.state());
    let before = hashes(&t.state(), false);
    let lock = lock_of(&t.state());
    for args in READERS.iter().chain(WRITERS.iter()) {
        let out = t.wf(args);
        assert_eq!(
            lock_of(&t.state()),
            lock,
            "`{}` (exit {}) created or changed `lock` in the refused state",
            out.what,
            out.code
        );
        let after = hashes(&t.state(), false);
        assert!(
            before == after,
            "`{}` (exit {}) changed the refused state: {:?}\nstderr: {}",
            out.what,
            out.code,
            diff(&before, &after),
            out.stderr
        );
    }
}

/// Every reader answers exactly what it answered before the damage, and leaves everything outside
/// `journal/` as it was.
#[track_caller]
fn assert_served(damage: fn(&Path)) {
    let t = small_state();
    let want = reference(&t, &READERS);
    damage(&t.state());
    let before = hashes(&t.state(), false);
    for (args, want) in READERS.iter().zip(&want) {
        let out = t.wf(args);
        assert!(
            out.code == 0 && !out.panicked(),
            "wanted exit 0: {}",
            out.show()
        );
        assert!(
            answer(args, &out.stdout) == *want,
            "SILENT LOSS: `{}` answered differently after the damage:\n{}\nbefore:\n{}",
            out.what,
            clip(&out.stdout),
            clip(want)
        );
        let after = hashes(&t.state(), false);
        assert!(
            before == after,
            "`{}` changed the state outside journal/: {:?}",
            out.what,
            diff(&before, &after)
        );
    }
}

/// Every writer, on a fresh damaged state, exits 0; the record log keeps every byte it had up to
/// where the undamaged log ended and gains only whole frames; `wf status` still works; and every
/// record exported before the damage is still exported.
#[track_caller]
fn assert_writers_work(damage: fn(&Path)) {
    for args in WRITERS {
        let t = small_state();
        let exported = reference(&t, &[&["state", "export"]]).remove(0);
        let end = read_log(&t.state()).len();
        damage(&t.state());
        let damaged = read_log(&t.state());
        let out = t.wf(args);
        assert!(
            out.code == 0 && !out.panicked(),
            "wanted exit 0: {}",
            out.show()
        );
        let log = read_log(&t.state());
        assert!(
            log.len() >= end && log[..end] == damaged[..end],
            "`{}` changed the first {end} bytes of the record log (now {} bytes)",
            out.what,
            log.len()
        );
        let (_, whole) = frames(&log[end..]);
        assert_eq!(
            end + whole,
            log.len(),
            "after `{}` the record log does not end in whole frames ({} bytes past {end})",
            out.what,
            log.len() - end
        );
        t.ok(&["status"], 0);
        let now = t.ok(&["state", "export"], 0).stdout;
        for line in exported.lines() {
            assert!(
                now.lines().any(|l| l == line),
                "after `{}` the export lost the record {}",
                out.what,
                clip(line)
            );
        }
    }
}

fn write(p: PathBuf, bytes: &[u8]) {
    fs::write(&p, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
}

fn remove_index(s: &Path) {
    fs::remove_dir_all(s.join("journal")).expect("removing journal/");
}

/// The record log replaced by random bytes of its length (index intact: all of it lies before
/// `m:logpos`).
fn log_garbage(s: &Path) {
    let n = read_log(s).len();
    write(log_path(s), &Rng(5).bytes(n));
}

/// The record log replaced by random bytes, and `journal/` removed: the index must be rebuilt
/// from garbage.
fn log_garbage_no_index(s: &Path) {
    log_garbage(s);
    remove_index(s);
}

fn log_half(s: &Path) {
    let log = read_log(s);
    write(log_path(s), &log[..log.len() / 2]);
}

fn log_empty(s: &Path) {
    write(log_path(s), b"");
}

/// The last 5 bytes cut off: shorter than the index's `m:logpos`, so not a torn write.
fn log_cut_5(s: &Path) {
    let log = read_log(s);
    write(log_path(s), &log[..log.len() - 5]);
}

fn log_missing(s: &Path) {
    fs::remove_file(log_path(s)).expect("removing the record log");
}

/// The frame that `log_frame_flipped_no_index` damages: the middle one.
fn middle_frame(s: &Path) -> (usize, usize) {
    let f = log_frames(s);
    f[f.len() / 2]
}

/// A byte in the middle of the middle frame's payload flipped, and `journal/` removed (so the log
/// is read from its start).
fn log_frame_flipped_no_index(s: &Path) {
    let (at, len) = middle_frame(s);
    let mut log = read_log(s);
    log[at + HEADER + (len - HEADER) / 2] ^= 0xFF;
    write(log_path(s), &log);
    remove_index(s);
}

/// A byte in the middle of the middle frame's payload flipped, the index intact (its
/// `m:logpos` lies past the damage, so only a check of the whole log finds it).
fn log_frame_flipped(s: &Path) {
    let (at, len) = middle_frame(s);
    let mut log = read_log(s);
    log[at + HEADER + (len - HEADER) / 2] ^= 0xFF;
    write(log_path(s), &log);
}

/// The middle frame's CRC flipped, the index intact.
fn log_crc_flipped(s: &Path) {
    let (at, _) = middle_frame(s);
    let mut log = read_log(s);
    log[at + 9] ^= 0x01;
    write(log_path(s), &log);
}

/// The first frame's magic overwritten, the index intact.
fn log_first_magic_flipped(s: &Path) {
    let mut log = read_log(s);
    log[0] ^= 0x20;
    write(log_path(s), &log);
}

/// The middle frame damaged, then the log's times put back as they were (as a tool that
/// preserves times would): its change time still differs, so it is checked whole.
fn log_frame_flipped_times_kept(s: &Path) {
    let p = log_path(s);
    let m = fs::metadata(&p).expect("stat the log");
    let (atime, mtime) = (m.accessed().expect("atime"), m.modified().expect("mtime"));
    log_frame_flipped(s);
    let f = fs::File::options()
        .write(true)
        .open(&p)
        .expect("open the log");
    f.set_times(fs::FileTimes::new().set_accessed(atime).set_modified(mtime))
        .expect("setting the log's times back");
}

/// The second byte of the middle frame's length flipped (the frame now claims ~64 KiB more than
/// the rest of the log holds), and `journal/` removed.
fn log_length_flipped_no_index(s: &Path) {
    let (at, _) = middle_frame(s);
    let mut log = read_log(s);
    log[at + 5] ^= 0xFF;
    write(log_path(s), &log);
    remove_index(s);
}

/// A torn write: the start of a frame appended after the last whole one (its fdatasync never
/// returned, so nothing in it was acknowledged).
fn log_torn_frame(s: &Path) {
    let mut log = read_log(s);
    log.extend_from_slice(MAGIC);
    log.extend_from_slice(&[0x40, 0, 0, 0, 0x12, 0x34]);
    write(log_path(s), &log);
}

/// A record log full of records, but neither VERSION nor `journal/`: wf never creates that (it
/// writes VERSION while the log is still empty).
fn log_without_version_or_index(s: &Path) {
    fs::remove_file(s.join("VERSION")).expect("removing VERSION");
    remove_index(s);
}

fn version_garbage(s: &Path) {
    write(s.join("VERSION"), b"garbage\n");
}

fn version_newer(s: &Path) {
    write(s.join("VERSION"), b"wf-state schema 99\n");
}

fn version_not_utf8(s: &Path) {
    write(s.join("VERSION"), b"wf-state schema \xce\n");
}

fn journal_missing(s: &Path) {
    remove_index(s);
}

fn journal_is_a_file(s: &Path) {
    remove_index(s);
    write(s.join("journal"), b"not a directory\n");
}

/// The journal directory is there, but empty (VERSION and the record log intact).
fn journal_emptied(s: &Path) {
    for e in fs::read_dir(s.join("journal"))
        .expect("listing the journal")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            fs::remove_dir_all(&p).expect("emptying the journal");
        } else {
            fs::remove_file(&p).expect("emptying the journal");
        }
    }
}

/// The index files of `journal/` and `journal/detail/` (delta logs and tables) that `pick`
/// selects by name.
fn index_files(s: &Path, pick: fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [s.join("journal"), s.join("journal/detail")] {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("index.") && pick(&name) {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The main index's delta log replaced by random bytes (VERSION and the record log intact).
fn index_log_garbage(s: &Path) {
    let logs = index_files(s, |n| n.ends_with(".log"));
    assert!(!logs.is_empty(), "no index log in {}", s.display());
    write(logs[0].clone(), &Rng(7).bytes(8192));
}

/// Every index file (delta logs and tables, both indexes) replaced by garbage.
fn index_all_garbage(s: &Path) {
    let files = index_files(s, |n| n.ends_with(".log") || n.ends_with(".tbl"));
    assert!(files.len() >= 2, "too few index files in {}", s.display());
    for (i, f) in files.iter().enumerate() {
        write(f.clone(), &Rng(7 + i as u64).bytes(4096));
    }
}

/// A byte flipped in the middle of the main index's delta log: the frames from there on are
/// dropped and replayed from the record log.
fn index_log_middle_flipped(s: &Path) {
    let logs = index_files(s, |n| n.ends_with(".log"));
    let log = logs.first().expect("an index log");
    let mut bytes = fs::read(log).expect("reading the index log");
    assert!(bytes.len() > 200, "an index log with frames");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    write(log.clone(), &bytes);
}

/// An index without VERSION: `journal/` and the record log, VERSION removed.
fn index_without_version(s: &Path) {
    fs::remove_file(s.join("VERSION")).expect("removing VERSION");
}

/// A directory of someone else's files: no VERSION, no journal, no record log.
fn foreign_files(s: &Path) {
    fs::remove_dir_all(s).expect("removing the state");
    fs::create_dir(s).expect("creating a foreign dir");
    write(s.join("notes.txt"), b"my notes, not wf's\n");
    write(s.join("data.bin"), &Rng(11).bytes(1000));
}

// The tests, by topic.
mod export;
mod flips;
mod kinds;
