//! Damaged, foreign and newer state directories (design goal 2: "Refuse, never reset").
//!
//! The state: `.wf/journal.log` is the RECORD LOG — every journal record as a frame (`wfR1`, u32 LE
//! length, u32 LE CRC-32 of the payload, payload), fdatasynced before sled (`.wf/journal/`) gets
//! it. sled is a derived index that records in `m:logpos` how far into the log it has applied; at
//! open, what the log holds past `m:logpos` is replayed into sled.
//!
//! Each kind of damage below either
//! - is refused with its exit code (5: damaged, foreign or newer) and a one-line message saying
//!   what is wrong, by readers and writers alike — and a refusal never changes the record log,
//!   `VERSION` or anything else outside `journal/` (`.wf/lock` excepted: a writer rewrites it
//!   before it opens anything). sled's own files under `journal/` are a derived index that sled
//!   may rewrite (its recovery, a new snapshot) or create whenever it opens, so `journal/` and
//!   what is in it are left out of the "unchanged" hashes (a `journal` that is a regular file is
//!   hashed); or
//! - is served (exit 0): every reader answers EXACTLY what it answered before the damage (nothing
//!   acknowledged may ever be lost) and leaves everything outside `journal/` as it was; and every
//!   writer keeps working: it exits 0, the log keeps its bytes and gains only whole frames, and
//!   every record exported before is still exported after.
//!
//! Then the byte-flip test: a state with several sessions of writes (runs with checkpoints and
//! metrics, a retry, an alert through a `[notify] command`, approvals, a `wf gc` prune); in
//! `VERSION`, the record log and each of sled's files, one byte is flipped at ~24 spread
//! positions, each in a fresh copy, and `wf --json history`, `wf --json history 2` and
//! `wf state export` (every record) must either answer exactly what they answered before the flip
//! (exit 0) or refuse (exit 5, one line) — never exit 0 with a different answer (silent loss),
//! never panic, never hang, never change anything outside `journal/`. The record log is flipped
//! twice: with sled intact (the flips lie before `m:logpos`, which an open does not read; plus
//! every field of the last frame), and with `journal/` removed, so that the index is rebuilt from
//! the flipped log (plus every field — magic, each length byte, CRC, payload — of the first,
//! middle and last frame); there a flip inside the LAST frame reads as a torn write and may drop
//! exactly that record, all answers alike. The outcomes per file are printed
//! (`cargo test --test damage -- --nocapture`).
//!
//! A refusal never creates `lock` in a directory that is not wf's nor changes one that is there
//! (it is decided before the lock is taken), and damage in the middle of the record log is found
//! with sled's index intact too: a log that changed since wf last verified it
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
/// sled's index `journal/` only `with_index` (a `journal` that is not a directory is always
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
                    // sled's index, and a damaged index wf set aside (`journal.broken-*`) before
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

/// The record log replaced by random bytes of its length (sled intact: all of it lies before
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

/// The last 5 bytes cut off: shorter than sled's `m:logpos`, so not a torn write.
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

/// A byte in the middle of the middle frame's payload flipped, sled's index intact (its
/// `m:logpos` lies past the damage, so only a check of the whole log finds it).
fn log_frame_flipped(s: &Path) {
    let (at, len) = middle_frame(s);
    let mut log = read_log(s);
    log[at + HEADER + (len - HEADER) / 2] ^= 0xFF;
    write(log_path(s), &log);
}

/// The middle frame's CRC flipped, sled's index intact.
fn log_crc_flipped(s: &Path) {
    let (at, _) = middle_frame(s);
    let mut log = read_log(s);
    log[at + 9] ^= 0x01;
    write(log_path(s), &log);
}

/// The first frame's magic overwritten, sled's index intact.
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

/// sled's log replaced by random bytes (VERSION and the record log intact).
fn sled_db_garbage(s: &Path) {
    write(s.join("journal").join("db"), &Rng(7).bytes(8192));
}

/// sled's log and its config both replaced by garbage.
fn sled_db_and_conf_garbage(s: &Path) {
    sled_db_garbage(s);
    write(s.join("journal").join("conf"), b"hi\n");
}

/// A byte flipped in the middle of the used part of sled's log: sled's recovery reads it as a
/// torn tail and zeroes everything after it, so it comes back shorter.
fn sled_db_middle_flipped(s: &Path) {
    let db = s.join("journal").join("db");
    let mut bytes = fs::read(&db).expect("reading sled's log");
    let used = bytes
        .iter()
        .rposition(|b| *b != 0)
        .expect("a non-empty log");
    bytes[used / 2] ^= 0xFF;
    write(db, &bytes);
}

/// A sled database without VERSION: `journal/` and the record log, VERSION removed.
fn foreign_sled_db(s: &Path) {
    fs::remove_file(s.join("VERSION")).expect("removing VERSION");
}

/// A directory of someone else's files: no VERSION, no journal, no record log.
fn foreign_files(s: &Path) {
    fs::remove_dir_all(s).expect("removing the state");
    fs::create_dir(s).expect("creating a foreign dir");
    write(s.join("notes.txt"), b"my notes, not wf's\n");
    write(s.join("data.bin"), &Rng(11).bytes(1000));
}

/// Tests for one kind. `=> 0`: served (readers answer as before, writers keep working);
/// `=> CODE, [FRAGMENTS]`: refused by readers and writers, and nothing outside `journal/` changes.
/// `bug = "…"` marks every test of the kind ignored, as showing that wf bug.
macro_rules! kind {
    (
        $name:ident, $damage:expr => 0 $(, bug = $bug:literal)?
    ) => {
        mod $name {
            use super::*;

            #[test]
            $(#[ignore = $bug])?
            fn readers_answer_as_before() {
                assert_served($damage);
            }

            #[test]
            $(#[ignore = $bug])?
            fn writers_keep_working() {
                assert_writers_work($damage);
            }
        }
    };
    (
        $name:ident, $damage:expr => $code:expr, $frags:expr $(, bug = $bug:literal)?
    ) => {
        mod $name {
            use super::*;

            #[test]
            $(#[ignore = $bug])?
            fn readers_refuse() {
                assert_refused($damage, &READERS, $code, &$frags);
            }

            #[test]
            $(#[ignore = $bug])?
            fn writers_refuse() {
                assert_refused($damage, &WRITERS, $code, &$frags);
            }

            #[test]
            $(#[ignore = $bug])?
            fn left_unchanged() {
                assert_unchanged($damage);
            }
        }
    };
}

// The record log. An open reads it only from sled's `m:logpos` on, so garbage before that point
// is found only when the index must be rebuilt from the log.
// The records live in the log (the index holds only where they are): garbage there is refused.
kind!(
    log_is_garbage_before_the_index_position,
    log_garbage => 5,
    ["journal.log", "damaged"]
);
kind!(
    log_is_garbage_and_the_index_is_gone,
    log_garbage_no_index => 5,
    ["journal.log", "damaged"]
);
kind!(
    log_is_cut_in_half,
    log_half => 5,
    ["journal.log is shorter", "than the journal has applied", "nothing was changed"]
);
kind!(
    log_is_empty,
    log_empty => 5,
    ["journal.log is shorter (0 bytes)", "nothing was changed"]
);
kind!(
    log_lost_its_last_5_bytes,
    log_cut_5 => 5,
    ["journal.log is shorter", "than the journal has applied"]
);
kind!(
    log_is_missing,
    log_missing => 5,
    ["journal.log is missing", "nothing was changed"]
);
kind!(
    log_has_a_flipped_byte_and_the_index_is_gone,
    log_frame_flipped_no_index => 5,
    ["journal.log is damaged at byte", "nothing was changed"]
);
kind!(
    log_has_a_flipped_length_and_the_index_is_gone,
    log_length_flipped_no_index => 5,
    ["journal.log is damaged at byte"]
);
kind!(log_ends_in_a_torn_frame, log_torn_frame => 0);
// Damage in the middle of the log with sled's index intact: the log changed since wf last
// verified it, so it is checked whole before anything is answered or appended.
kind!(
    log_has_a_flipped_byte_in_its_middle,
    log_frame_flipped => 5,
    ["journal.log is damaged at byte", "nothing was changed"]
);
kind!(
    log_has_a_flipped_crc_in_its_middle,
    log_crc_flipped => 5,
    ["journal.log is damaged at byte"]
);
kind!(
    log_has_a_damaged_first_frame,
    log_first_magic_flipped => 5,
    ["journal.log is damaged at byte 0"]
);
kind!(
    log_damaged_with_its_times_put_back,
    log_frame_flipped_times_kept => 5,
    ["journal.log is damaged at byte"]
);
kind!(
    log_has_neither_version_nor_index,
    log_without_version_or_index => 5,
    [".wf"]
);
// VERSION.
kind!(
    version_is_garbage,
    version_garbage => 5,
    ["VERSION is damaged", "nothing was changed"]
);
kind!(
    version_is_newer,
    version_newer => 5,
    [
        "newer wf (state schema 99; this wf reads up to 1)",
        "upgrade wf"
    ]
);
kind!(
    version_is_not_utf8,
    version_not_utf8 => 5,
    ["VERSION is damaged", "nothing was changed"]
);
// sled's index.
kind!(journal_is_missing, journal_missing => 0);
kind!(journal_is_empty, journal_emptied => 0);
kind!(sled_log_has_a_flipped_byte_in_its_middle, sled_db_middle_flipped => 0);
kind!(
    journal_is_a_regular_file,
    journal_is_a_file => 5,
    ["journal is not a directory", "nothing was changed"]
);
// sled cannot open these: wf sets the index aside (kept) and rebuilds it from the record log.
kind!(sled_log_is_garbage, sled_db_garbage => 0);
kind!(sled_log_and_conf_are_garbage, sled_db_and_conf_garbage => 0);
// Not wf's.
kind!(
    a_sled_db_without_version,
    foreign_sled_db => 5,
    ["is not a wf state directory"]
);
kind!(
    random_files_without_version,
    foreign_files => 5,
    ["not a wf state directory"]
);

#[test]
fn an_intact_small_state_is_read_by_every_command() {
    let t = small_state();
    for args in READERS.iter().chain(WRITERS.iter()) {
        t.ok(args, 0);
    }
}

/// The refusal of a log damaged in its middle names the damaged frame's offset.
#[test]
fn a_damaged_frame_is_named_by_its_offset() {
    let t = small_state();
    let (at, _) = middle_frame(&t.state());
    log_frame_flipped_no_index(&t.state());
    let out = t.ok(&["--json", "history"], 5);
    assert!(
        out.stderr
            .contains(&format!("journal.log is damaged at byte {at};")),
        "{}",
        out.show()
    );
}

/// A torn last frame: readers leave it where it is; the next writer cuts it off before it
/// appends, and the state reads on.
#[test]
fn a_writer_cuts_a_torn_last_frame_off() {
    let t = small_state();
    let end = read_log(&t.state()).len();
    log_torn_frame(&t.state());
    let torn = read_log(&t.state());
    t.ok(&["--json", "history"], 0);
    assert_eq!(
        read_log(&t.state()),
        torn,
        "a reader changed the record log"
    );
    t.ok(&["run"], 0);
    let log = read_log(&t.state());
    assert_eq!(log[..end], torn[..end]);
    assert!(
        !log[end..].starts_with(&torn[end..]),
        "the torn frame is still there"
    );
    let (frames, whole) = frames(&log);
    assert_eq!(whole, log.len(), "the log does not end in whole frames");
    assert!(frames.iter().any(|(at, _)| *at == end), "no frame at {end}");
    let status = t.ok(&["status"], 0);
    assert!(status.stdout.contains("run 3"), "{}", status.show());
    let runs = t.ok(&["--json", "history"], 0).stdout;
    assert_eq!(runs.lines().count(), 3, "{runs}");
}

// ---------------------------------------------------------------------------------------------
// The byte-flip test
// ---------------------------------------------------------------------------------------------

const SCENARIO: &str = r#"
[workflow]
name = "flip"
retention = "1d"
keep_last = 0

[notify]
command = ["sh", "-c", "echo \"$1 $2\" >> alerts.txt", "sh", "{task}", "{run}"]

[task.make]
run = 'mkdir -p out; echo "v-$WF_RUN_ID" > out/a.txt; echo "rows=$WF_RUN_ID" >> "$WF_METRICS"; echo "source=\"x y\"" >> "$WF_METRICS"'
outputs = ["out/a.txt"]
log = ["rows"]

[task.flaky]
run = 'echo "t-$WF_RUN_ID" > out/f.txt; test "$WF_RUN_ID" != 2'
needs = ["make"]
inputs = ["out/a.txt"]
outputs = ["out/f.txt"]
retries = 1

[task.gate]
run = 'cat out/a.txt > out/g.txt'
needs = ["make"]
inputs = ["out/a.txt"]
outputs = ["out/g.txt"]
manual = true
owner = "qa"
"#;

/// Several sessions of writes: run 1 (approved), run 2 (a retry, a failure, an alert delivered
/// through the command channel; its gate left waiting), run 3 (approved), then `wf gc` prunes
/// every checkpoint. Returns the workflow and the run ids.
fn scenario() -> (T, Vec<u64>) {
    let t = T::with(SCENARIO);
    t.ok(&["run"], 0);
    t.ok(&["approve", "gate", "--note", "looks fine"], 0);
    t.ok(&["run", "--force"], 1);
    t.ok(&["run", "--force"], 0);
    t.ok(&["approve", "gate", "--note", "ok again"], 0);
    let gc = t.ok(&["gc", "--now", "+100d"], 0);
    assert!(
        gc.stdout.contains("pruned"),
        "gc pruned nothing: {}",
        gc.stdout
    );
    assert_eq!(
        fs::read_to_string(t.root.join("alerts.txt")).unwrap_or_default(),
        "flaky 2\n",
        "the alert command should have run once"
    );
    (t, vec![1, 2, 3])
}

/// The queries whose answers a flipped byte must never change silently: the list of runs, the
/// view of run 2 (a retry, a failure, an alert, a gate left waiting) and every record.
fn sweep_queries() -> Vec<Vec<String>> {
    [
        &["--json", "history"][..],
        &["--json", "history", "2"],
        &["state", "export"],
    ]
    .iter()
    .map(|q| q.iter().map(|a| a.to_string()).collect())
    .collect()
}

/// The queries the export test compares: every run's view, and every record.
fn queries(runs: &[u64]) -> Vec<Vec<String>> {
    let mut q = vec![vec!["--json".to_string(), "history".to_string()]];
    for r in runs {
        q.push(vec!["--json".into(), "history".into(), r.to_string()]);
    }
    q.push(vec!["state".into(), "export".into()]);
    q
}

fn ask(cwd: &Path, state: &Path, q: &[String]) -> Out {
    let mut args: Vec<&str> = vec!["--state-dir", state.to_str().expect("utf-8 path")];
    args.extend(q.iter().map(String::as_str));
    let mut out = wf_in(cwd, &args);
    out.stdout = answer(&args, &out.stdout);
    out
}

/// Bytes to flip: (offset, xor mask).
type Flips = Vec<(usize, u8)>;

/// ~24 positions spread over a file: start, end, evenly spaced, a few at random (fixed seed);
/// in a long run of zeros (sled's preallocated segment) only its first, middle and last bytes,
/// while every non-zero region keeps its start and end. The k-th is xored with `masks[k % len]`.
fn positions(bytes: &[u8], seed: u64, masks: &[u8]) -> Flips {
    let n = bytes.len();
    if n == 0 {
        return Vec::new();
    }
    // Regions of non-zero data, separated by runs of at least 64 zeros.
    let mut regions: Vec<(usize, usize)> = Vec::new();
    let mut zeros: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < n {
        let start = i;
        let zero = bytes[i] == 0;
        let mut j = i;
        while j < n && (bytes[j] == 0) == zero {
            j += 1;
        }
        if zero && j - start >= 64 {
            zeros.push((start, j));
        } else if let Some(last) = regions.last_mut().filter(|r| r.1 == start) {
            last.1 = j;
        } else {
            regions.push((start, j));
        }
        i = j;
    }
    let data: usize = regions.iter().map(|(a, b)| b - a).sum();
    let mut out = vec![0, n - 1];
    for (a, b) in &regions {
        out.push(*a);
        out.push(b - 1);
    }
    for (a, b) in &zeros {
        out.extend([*a, (a + b) / 2, b - 1]);
    }
    // Evenly spaced over the data (the non-zero regions laid end to end), then random.
    let nth_data = |k: usize| -> usize {
        let mut k = k;
        for (a, b) in &regions {
            if k < b - a {
                return a + k;
            }
            k -= b - a;
        }
        n - 1
    };
    if data > 0 {
        for k in 0..18 {
            out.push(nth_data(k * data / 18));
        }
        let mut r = Rng(seed);
        for _ in 0..4 {
            out.push(nth_data((r.next() % data as u64) as usize));
        }
    }
    out.sort_unstable();
    out.dedup();
    out.into_iter()
        .enumerate()
        .map(|(k, p)| (p, masks[k % masks.len()]))
        .collect()
}

/// Every bit of a byte, and its lowest bit: alternately.
const MASKS: [u8; 2] = [0xFF, 0x01];

fn spread(bytes: &[u8], seed: u64) -> Flips {
    positions(bytes, seed, &MASKS)
}

/// The fields of a record-log frame at `at` (length `len`): a magic byte, each byte of the length
/// (by ±1, by a whole byte, and past the 64 MiB limit), the CRC, and the payload's first, middle
/// and last bytes.
fn frame_fields(at: usize, len: usize) -> Flips {
    let p = at + HEADER;
    let end = at + len;
    vec![
        (at + 1, 0x01),
        (at + 4, 0x01),
        (at + 4, 0xFF),
        (at + 5, 0x01),
        (at + 5, 0xFF),
        (at + 6, 0x01),
        (at + 7, 0x80),
        (at + 9, 0xFF),
        (p, 0xFF),
        (p + (end - p) / 2, 0x01),
        (end - 1, 0xFF),
    ]
}

/// Spread positions over the record log, plus every field of its first, middle and last frame.
fn log_positions(bytes: &[u8], seed: u64) -> Flips {
    let (f, whole) = frames(bytes);
    assert!(
        whole == bytes.len() && f.len() >= 3,
        "the record log is not whole frames"
    );
    let mut out = spread(bytes, seed);
    for (at, len) in [f[0], f[f.len() / 2], f[f.len() - 1]] {
        out.extend(frame_fields(at, len));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Only the length bytes of the log's frames other than the last.
fn log_length_positions(bytes: &[u8], _seed: u64) -> Flips {
    let (f, _) = frames(bytes);
    let mut out = Vec::new();
    for (at, _) in [f[0], f[f.len() / 2], f[f.len() - 2]] {
        out.extend([(at + 5, 0x01), (at + 5, 0xFF), (at + 6, 0x01)]);
    }
    out
}

#[derive(Default)]
struct Tally {
    flips: usize,
    identical: usize,
    /// Identical answers after sled's log `journal/db` was rewritten (its recovery, a replay from
    /// the record log) or created (`journal/` removed).
    rebuilt: usize,
    /// The last frame dropped as a torn write, exactly.
    torn: usize,
    refused: usize,
    /// Flips answered wrongly (a loss, a panic, a hang, another exit code, a change outside
    /// `journal/`).
    bad: usize,
    problems: Vec<String>,
}

/// One byte-flip sweep over the files of `.wf` that `pick` selects.
struct Sweep {
    label: &'static str,
    pick: fn(&Path) -> bool,
    /// Which bytes of a file to flip, and with what.
    at: fn(&[u8], u64) -> Flips,
    /// Remove `journal/` from each flipped copy, so that sled is rebuilt from the record log.
    without_index: bool,
}

/// What the sweep compares against.
struct Expect {
    qs: Vec<Vec<String>>,
    want: Vec<String>,
    /// With `without_index`: the last frame of the log (offset, length) and the answers of the log
    /// without it: a flip inside it may read as a torn write that drops exactly that record.
    torn: Option<((usize, usize), Vec<String>)>,
}

/// Flip one byte of `rel` at `pos` (xor `mask`) in a fresh copy of `pristine`, ask every query,
/// and judge the answers.
#[allow(clippy::too_many_arguments)]
fn flip_once(
    pristine: &Path,
    scratch: &Path,
    cwd: &Path,
    rel: &Path,
    (pos, mask): (usize, u8),
    without_index: bool,
    expect: &Expect,
    tally: &mut Tally,
) {
    let copy = scratch.join(format!("flip-{pos}-{mask}"));
    copy_dir(pristine, &copy, &[]);
    let file = copy.join(rel);
    let mut bytes = fs::read(&file).expect("reading the file to flip");
    bytes[pos] ^= mask;
    fs::write(&file, &bytes).expect("flipping a byte");
    if without_index {
        remove_index(&copy);
    }
    let flipped = hashes(&copy, false);
    let flipped_index = hashes(&copy, true);
    let torn = expect
        .torn
        .as_ref()
        .filter(|((at, len), _)| (*at..at + len).contains(&pos))
        .map(|(_, w)| w);
    let where_ = format!(
        "{}{} byte {pos} ^ {mask:#04x}",
        rel.display(),
        if without_index { " (no journal/)" } else { "" }
    );
    let mut refused = false;
    // For each answer (exit 0): its stdout, and whether it is the answer with the last record
    // dropped.
    let mut served: Vec<(usize, String)> = Vec::new();
    let mut problems = Vec::new();
    for (i, q) in expect.qs.iter().enumerate() {
        let out = ask(cwd, &copy, q);
        let at = format!("{where_}: `wf {}`", q.join(" "));
        if out.code == i32::MIN {
            problems.push(format!("{at}: HUNG (killed after {HANG:?})"));
        } else if out.panicked() {
            problems.push(format!("{at}: PANIC: {}", clip(&out.stderr)));
        } else if out.code == 0 {
            served.push((i, out.stdout));
        } else if out.code == 5 && out.lines() == 1 {
            refused = true;
        } else {
            problems.push(format!(
                "{at}: exit {} (wanted 0 and the same answer, or 5): {}",
                out.code,
                clip(&out.stderr)
            ));
        }
        let now = hashes(&copy, false);
        if now != flipped {
            problems.push(format!(
                "{at}: exit {} and changed the state outside journal/: {:?}",
                out.code,
                diff(&flipped, &now)
            ));
            break;
        }
    }
    let same = served.iter().all(|(i, s)| *s == expect.want[*i]);
    // A flip inside the last frame may read as a torn write: then every answer is the one without
    // the last record (never some with it and some without).
    let dropped = !same && torn.is_some_and(|w| served.iter().all(|(i, s)| *s == w[*i]));
    if !same && !dropped {
        for (i, s) in &served {
            if *s != expect.want[*i] {
                problems.push(format!(
                    "{where_}: `wf {}`: SILENT LOSS: exit 0 with a different answer{}:\n{}",
                    expect.qs[*i].join(" "),
                    if torn.is_some() {
                        " (nor the one without the last record)"
                    } else {
                        ""
                    },
                    clip(s)
                ));
            }
        }
    }
    tally.flips += 1;
    if !problems.is_empty() {
        tally.bad += 1;
        tally.problems.extend(problems);
    } else if refused {
        tally.refused += 1;
    } else if dropped {
        tally.torn += 1;
    } else {
        tally.identical += 1;
        let db = Path::new("journal/db");
        if hashes(&copy, true).get(db) != flipped_index.get(db) {
            tally.rebuilt += 1;
        }
    }
    let _ = fs::remove_dir_all(&copy);
}

/// Answers to `qs` from a copy of `state`, which must be read.
fn answers_of(cwd: &Path, state: &Path, qs: &[Vec<String>], scratch: &Path) -> Vec<String> {
    let copy = scratch.join("reference");
    copy_dir(state, &copy, &[]);
    let want = qs
        .iter()
        .map(|q| {
            let out = ask(cwd, &copy, q);
            assert!(out.code == 0 && !out.panicked(), "{}", out.show());
            assert!(!out.stdout.trim().is_empty(), "{}", out.show());
            out.stdout
        })
        .collect();
    fs::remove_dir_all(&copy).expect("removing the reference copy");
    want
}

impl Sweep {
    fn run(&self) {
        let (t, _) = scenario();
        let scratch = TempDir::new().expect("scratch dir");
        // The state exactly as the last writer left it, before any reader opened it.
        let pristine = scratch.path().join("pristine");
        copy_dir(&t.state(), &pristine, &[]);
        let qs = sweep_queries();
        let want = answers_of(&t.root, &pristine, &qs, scratch.path());
        // The answers are the same from the original directory (nothing depends on where it is).
        let again = ask(&t.root, &t.state(), &qs[0]);
        assert_eq!(again.stdout, want[0]);
        let mut torn = None;
        if self.without_index {
            // Rebuilt from the whole log, the answers are the same.
            let whole = scratch.path().join("whole");
            copy_dir(&pristine, &whole, &[]);
            remove_index(&whole);
            assert_eq!(answers_of(&t.root, &whole, &qs, scratch.path()), want);
            // And from the log without its last frame: what a torn last write leaves.
            let f = log_frames(&whole);
            let last = f[f.len() - 1];
            let log = read_log(&whole);
            write(log_path(&whole), &log[..last.0]);
            let w = answers_of(&t.root, &whole, &qs, scratch.path());
            assert_ne!(w, want, "the last record changes no answer");
            torn = Some((last, w));
        }
        let expect = Expect { qs, want, torn };

        let files: Vec<PathBuf> = hashes(&pristine, true)
            .into_iter()
            .filter(|(p, h)| h != "directory" && (self.pick)(p))
            .map(|(p, _)| p)
            .collect();
        assert!(
            !files.is_empty(),
            "{}: no file to flip in {:?}",
            self.label,
            hashes(&pristine, true).keys()
        );
        let started = Instant::now();
        let mut report = Vec::new();
        let mut bad = Vec::new();
        for (fi, rel) in files.iter().enumerate() {
            let bytes = fs::read(pristine.join(rel)).expect("reading a state file");
            let mut tally = Tally::default();
            for flip in (self.at)(&bytes, 1000 + fi as u64) {
                flip_once(
                    &pristine,
                    scratch.path(),
                    &t.root,
                    rel,
                    flip,
                    self.without_index,
                    &expect,
                    &mut tally,
                );
            }
            report.push(format!(
                "{:<26} {:>6} bytes: {:>3} flips: {:>3} identical ({} with journal/db rewritten), {:>3} refused (exit 5), {} torn (the last record dropped), {} bad",
                rel.display(),
                bytes.len(),
                tally.flips,
                tally.identical,
                tally.rebuilt,
                tally.refused,
                tally.torn,
                tally.bad
            ));
            bad.extend(tally.problems);
        }
        println!(
            "byte flips of {} ({} queries each, {:.1?}):\n  {}",
            self.label,
            expect.qs.len(),
            started.elapsed(),
            report.join("\n  ")
        );
        assert!(
            bad.is_empty(),
            "{} answers to flipped bytes were neither refused nor harmless:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }
}

fn is_version(p: &Path) -> bool {
    p == Path::new("VERSION")
}

fn is_log(p: &Path) -> bool {
    p == Path::new("journal.log")
}

fn is_sled_log(p: &Path) -> bool {
    p == Path::new("journal/db")
}

fn is_sled_conf(p: &Path) -> bool {
    p == Path::new("journal/conf")
}

fn is_other_sled_file(p: &Path) -> bool {
    p.starts_with("journal") && !is_sled_log(p) && !is_sled_conf(p)
}

/// VERSION is text: flips that keep it ASCII...
#[test]
fn flipped_ascii_bits_in_version_are_refused_or_harmless() {
    Sweep {
        label: "VERSION (ascii flips)",
        pick: is_version,
        at: |b, s| positions(b, s, &[0x01, 0x20, 0x04]),
        without_index: false,
    }
    .run();
}

/// ...and flips of its high bit, which make it invalid UTF-8.
#[test]
fn flipped_high_bits_in_version_are_refused_or_harmless() {
    Sweep {
        label: "VERSION (high-bit flips)",
        pick: is_version,
        at: |b, s| positions(b, s, &[0xFF, 0x80]),
        without_index: false,
    }
    .run();
}

/// sled has applied the whole log: an open does not read it, so every flip is harmless. Spread
/// positions, and every field of the last frame (the one next to `m:logpos`).
#[test]
fn flipped_bytes_in_the_record_log_are_refused_or_harmless() {
    Sweep {
        label: "journal.log (sled intact)",
        pick: is_log,
        at: |b, s| {
            let (f, _) = frames(b);
            let (at, len) = f[f.len() - 1];
            let mut out = spread(b, s);
            out.extend(frame_fields(at, len));
            out.sort_unstable();
            out.dedup();
            out
        },
        without_index: false,
    }
    .run();
}

/// With `journal/` gone the index is rebuilt from the whole flipped log.
#[test]
fn flipped_bytes_in_the_record_log_are_refused_when_the_index_is_rebuilt() {
    Sweep {
        label: "journal.log (journal/ removed)",
        pick: is_log,
        at: |b, s| {
            let lengths = log_length_positions(b, s);
            log_positions(b, s)
                .into_iter()
                .filter(|p| !lengths.contains(p))
                .collect()
        },
        without_index: true,
    }
    .run();
}

/// The length of a frame that is not the last, flipped so that it claims more than the log holds.
#[test]
fn flipped_lengths_in_the_record_log_are_refused_when_the_index_is_rebuilt() {
    Sweep {
        label: "journal.log lengths (journal/ removed)",
        pick: is_log,
        at: log_length_positions,
        without_index: true,
    }
    .run();
}

#[test]
fn flipped_bytes_in_the_sled_log_are_refused_or_harmless() {
    Sweep {
        label: "journal/db",
        pick: is_sled_log,
        at: spread,
        without_index: false,
    }
    .run();
}

#[test]
fn flipped_bytes_in_the_sled_conf_are_refused_or_harmless() {
    Sweep {
        label: "journal/conf",
        pick: is_sled_conf,
        at: spread,
        without_index: false,
    }
    .run();
}

#[test]
fn flipped_bytes_in_the_sled_snapshot_are_refused_or_harmless() {
    Sweep {
        label: "journal/snap.*",
        pick: is_other_sled_file,
        at: spread,
        without_index: false,
    }
    .run();
}

// ---------------------------------------------------------------------------------------------
// Export and import
// ---------------------------------------------------------------------------------------------

fn answers(cwd: &Path, state: &Path, qs: &[Vec<String>]) -> Vec<String> {
    qs.iter()
        .map(|q| {
            let out = ask(cwd, state, q);
            assert!(out.code == 0 && !out.panicked(), "{}", out.show());
            out.stdout
        })
        .collect()
}

#[test]
fn export_then_import_round_trips_the_journal() {
    let (t, runs) = scenario();
    let scratch = TempDir::new().expect("scratch dir");
    let export = scratch.path().join("export.jsonl");
    let out = t.ok(
        &["state", "export", "--out", export.to_str().expect("utf-8")],
        0,
    );
    assert!(out.stdout.contains("exported"), "{}", out.show());
    let text = fs::read_to_string(&export).expect("reading the export");
    for kind in [
        "Checkpoint",
        "Metric",
        "Approval",
        // A sweep's prunes: one `Pruned` record per run (older journals: a `Prune` each).
        "Pruned",
        "Alert",
        "Delivery",
        "RunResumed",
    ] {
        assert!(
            text.contains(&format!("\"entry\":{{\"{kind}\"")),
            "the export has no {kind} record"
        );
    }
    // The export to stdout is the same records.
    let stdout = t.ok(&["state", "export"], 0).stdout;
    assert_eq!(
        stdout.lines().skip(1).collect::<Vec<_>>(),
        text.lines().skip(1).collect::<Vec<_>>(),
        "`wf state export` and `--out` differ"
    );

    let fresh = scratch.path().join("new-state");
    let out = t.ok(
        &[
            "--state-dir",
            fresh.to_str().expect("utf-8"),
            "state",
            "import",
            export.to_str().expect("utf-8"),
        ],
        0,
    );
    assert!(out.stdout.contains("imported 3 runs"), "{}", out.show());
    // The export is in journal order (runs interleave: prunes of old runs come late), and so is
    // the imported record log — a rebuild or a partial replay applies it as it was journaled.
    let seqs: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("a JSON record")["seq"]
                .as_u64()
                .expect("a seq")
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let qs = queries(&runs);
    let original = answers(&t.root, &t.state(), &qs);
    let imported = answers(&t.root, &fresh, &qs);
    for ((q, a), b) in qs.iter().zip(&original).zip(&imported) {
        assert_eq!(a, b, "`wf {}` differs after export and import", q.join(" "));
    }
    // Its index rebuilt from its record log answers the same.
    let rebuilt = scratch.path().join("rebuilt");
    copy_dir(&fresh, &rebuilt, &[]);
    fs::remove_dir_all(rebuilt.join("journal")).expect("removing the index");
    assert_eq!(answers(&t.root, &rebuilt, &qs), imported);
    // And the imported state exports the same records again.
    let again = scratch.path().join("again.jsonl");
    t.ok(
        &[
            "--state-dir",
            fresh.to_str().expect("utf-8"),
            "state",
            "export",
            "--out",
            again.to_str().expect("utf-8"),
        ],
        0,
    );
    let again = fs::read_to_string(&again).expect("reading the second export");
    assert_eq!(
        again.lines().skip(1).collect::<Vec<_>>(),
        text.lines().skip(1).collect::<Vec<_>>()
    );

    // Importing into a state that already has runs is refused, and its runs are unchanged.
    let out = t.wf(&[
        "--state-dir",
        fresh.to_str().expect("utf-8"),
        "state",
        "import",
        export.to_str().expect("utf-8"),
    ]);
    assert!(
        out.code == 2 && !out.panicked() && out.lines() == 1,
        "{}",
        out.show()
    );
    assert!(out.stderr.contains("already holds runs"), "{}", out.show());
    assert_eq!(answers(&t.root, &fresh, &qs), imported);

    // An export in a newer format is refused.
    let newer = scratch.path().join("newer.jsonl");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut header: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON header");
    assert_eq!(header["wf_state_export"], 1, "{header}");
    header["wf_state_export"] = serde_json::json!(99);
    lines[0] = header.to_string();
    fs::write(&newer, lines.join("\n") + "\n").expect("writing the newer export");
    let other = scratch.path().join("other-state");
    let out = t.wf(&[
        "--state-dir",
        other.to_str().expect("utf-8"),
        "state",
        "import",
        newer.to_str().expect("utf-8"),
    ]);
    assert!(
        out.code == 2 && !out.panicked() && out.lines() == 1,
        "{}",
        out.show()
    );
    assert!(
        out.stderr
            .contains("export format 99 is newer than this wf reads"),
        "{}",
        out.show()
    );
    let listed = ask(&t.root, &other, &qs[0]);
    assert!(
        listed.code == 0 && listed.stdout.trim().is_empty(),
        "a refused import left runs behind: {}",
        listed.show()
    );
}

/// A writer refused for a foreign or newer state never creates `lock` there nor truncates one
/// that is there (the refusal is decided before the lock is taken).
#[test]
fn a_refusing_writer_never_creates_or_truncates_lock() {
    for (what, damage) in [
        ("foreign files", foreign_files as fn(&Path)),
        ("a newer VERSION", version_newer),
        ("a sled db without VERSION", foreign_sled_db),
        ("a log damaged in its middle", log_frame_flipped),
    ] {
        for with_lock in [false, true] {
            let t = small_state();
            damage(&t.state());
            let lock = t.state().join("lock");
            if with_lock {
                write(lock.clone(), b"someone's bytes\n");
            } else {
                let _ = fs::remove_file(&lock);
            }
            for args in WRITERS {
                let out = t.wf(args);
                assert_eq!(out.code, 5, "{what}: {}", out.show());
                if with_lock {
                    assert_eq!(
                        fs::read(&lock).ok().as_deref(),
                        Some(&b"someone's bytes\n"[..]),
                        "{what}: `{}` changed lock",
                        out.what
                    );
                } else {
                    assert!(!lock.exists(), "{what}: `{}` created lock", out.what);
                }
            }
        }
    }
}

/// Damage that can be decided without the index is refused by readers before sled opens: not a
/// byte changes, `journal/` (sled's own files) included.
#[test]
fn readers_refuse_before_the_index_is_opened() {
    for (what, damage) in [
        (
            "a flipped byte in the log's middle",
            log_frame_flipped as fn(&Path),
        ),
        ("a flipped CRC in the log's middle", log_crc_flipped),
        ("the log cut in half", log_half),
        ("the log's last 5 bytes cut", log_cut_5),
        ("an empty log", log_empty),
        ("a missing log", log_missing),
        ("garbage for a log", log_garbage),
        ("a newer VERSION", version_newer),
        ("a damaged VERSION", version_garbage),
    ] {
        let t = small_state();
        damage(&t.state());
        let before = hashes(&t.state(), true);
        for args in READERS {
            let out = t.wf(args);
            assert_eq!(out.code, 5, "{what}: {}", out.show());
            let after = hashes(&t.state(), true);
            assert!(
                before == after,
                "{what}: `{}` changed the state (sled's index included): {:?}",
                out.what,
                diff(&before, &after)
            );
        }
    }
}
