//! Damaged, foreign and newer state directories (design goal 2: "Refuse, never reset"). Each kind
//! of damage must give its exit code (5: damaged, foreign or newer) and a one-line message saying
//! what is wrong, from readers and writers alike, and must leave every byte of `.wf/` as it was
//! (`.wf/lock` excepted: a writer rewrites it before it opens anything).
//!
//! Then the byte-flip test: a state with several sessions of writes (runs with checkpoints and
//! metrics, a retry, an alert through a `[notify] command`, approvals, a `wf gc` prune); for every
//! file of the journal plus `committed` and `VERSION`, one byte is flipped at ~24 positions, each
//! in a fresh copy, and `wf --json history` and `wf --json history RUN` for every run must either
//! print exactly what they printed before the flip (exit 0) or refuse (exit 5, one line) — never
//! exit 0 with a different answer (silent loss), never panic, never hang. The outcomes per file are
//! printed (`cargo test --test damage -- --nocapture`).
//!
//! Last, `wf state export` / `wf state import` round-trip such a journal exactly.
//!
//! Tests marked `#[ignore = "bug: …"]` show a wf bug; `cargo test --test damage -- --ignored` runs
//! them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const WF: &str = env!("CARGO_BIN_EXE_wf");

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
    let mut child = Command::new(WF)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("HOME", cwd)
        .env("LC_ALL", "C")
        .env("NO_COLOR", "1")
        .env("WF_USER", "tester")
        .stdin(Stdio::null())
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

/// Every file (with the BLAKE3 hash of its bytes) and directory under `dir`, `lock` excepted.
fn hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
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
                    out.insert(rel, "directory".into());
                    walk(base, &p, out);
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
    walk(dir, dir, &mut out);
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

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("creating a copy");
    for e in fs::read_dir(from).expect("listing a state").flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        let m = fs::symlink_metadata(&p).expect("stat");
        if m.is_dir() {
            copy_dir(&p, &dest);
        } else if m.is_file() {
            fs::copy(&p, &dest).expect("copying a state file");
        }
    }
}

/// The committed-sequence file holding `seq` in both slots (its documented format).
fn committed_file(seq: u64) -> Vec<u8> {
    let mut slot = b"wfseq\0\0\x01".to_vec();
    slot.extend_from_slice(&seq.to_le_bytes());
    let crc = crc32(&slot);
    slot.extend_from_slice(&crc.to_le_bytes());
    let mut out = slot.clone();
    out.extend_from_slice(&slot);
    out
}

/// CRC-32 (IEEE), as crc32fast computes it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// splitmix64: fixed pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
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

/// No command in READERS and WRITERS changes a byte of the damaged state.
#[track_caller]
fn assert_unchanged(damage: fn(&Path)) {
    let t = small_state();
    damage(&t.state());
    let before = hashes(&t.state());
    for args in READERS.iter().chain(WRITERS.iter()) {
        let out = t.wf(args);
        let after = hashes(&t.state());
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

fn write(p: PathBuf, bytes: &[u8]) {
    fs::write(&p, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
}

fn committed_garbage(s: &Path) {
    write(
        s.join("committed"),
        b"this is not a committed-sequence file at all\n",
    );
}

fn committed_truncated(s: &Path) {
    let bytes = fs::read(s.join("committed")).expect("reading committed");
    write(s.join("committed"), &bytes[..7]);
}

fn committed_empty(s: &Path) {
    write(s.join("committed"), b"");
}

fn committed_missing(s: &Path) {
    fs::remove_file(s.join("committed")).expect("removing committed");
}

/// Both slots valid, claiming more records than the journal holds.
fn committed_ahead(s: &Path) {
    write(s.join("committed"), &committed_file(999));
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
    fs::remove_dir_all(s.join("journal")).expect("removing the journal");
}

fn journal_is_a_file(s: &Path) {
    fs::remove_dir_all(s.join("journal")).expect("removing the journal");
    write(s.join("journal"), b"not a directory\n");
}

/// The journal's log replaced by random bytes (VERSION and committed intact).
fn journal_log_garbage(s: &Path) {
    let mut r = Rng(7);
    let bytes: Vec<u8> = (0..8192).map(|_| r.next() as u8).collect();
    write(s.join("journal").join("db"), &bytes);
}

/// The journal's log and its sled config both replaced by garbage.
fn journal_log_and_conf_garbage(s: &Path) {
    journal_log_garbage(s);
    write(s.join("journal").join("conf"), b"hi\n");
}

/// The journal directory is there, but empty (VERSION and committed intact).
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

/// A sled database that is not wf's state: the journal without VERSION and committed.
fn foreign_sled_db(s: &Path) {
    fs::remove_file(s.join("VERSION")).expect("removing VERSION");
    fs::remove_file(s.join("committed")).expect("removing committed");
}

/// A directory of someone else's files: no VERSION, no journal.
fn foreign_files(s: &Path) {
    fs::remove_dir_all(s).expect("removing the state");
    fs::create_dir(s).expect("creating a foreign dir");
    write(s.join("notes.txt"), b"my notes, not wf's\n");
    let mut r = Rng(11);
    let bytes: Vec<u8> = (0..1000).map(|_| r.next() as u8).collect();
    write(s.join("data.bin"), &bytes);
}

/// Tests for one kind: readers refuse, writers refuse, nothing changes.
macro_rules! kind {
    (
        $name:ident, $damage:expr, $code:expr, $frags:expr
        $(, readers_bug = $rb:literal)? $(, writers_bug = $wb:literal)? $(, unchanged_bug = $ub:literal)?
    ) => {
        mod $name {
            use super::*;

            #[test]
            $(#[ignore = $rb])?
            fn readers_refuse() {
                assert_refused($damage, &READERS, $code, &$frags);
            }

            #[test]
            $(#[ignore = $wb])?
            fn writers_refuse() {
                assert_refused($damage, &WRITERS, $code, &$frags);
            }

            #[test]
            $(#[ignore = $ub])?
            fn left_unchanged() {
                assert_unchanged($damage);
            }
        }
    };
}

kind!(
    committed_is_garbage,
    committed_garbage,
    5,
    [
        "committed is damaged",
        "restore the state directory from a backup"
    ]
);
kind!(
    committed_is_truncated,
    committed_truncated,
    5,
    ["committed is damaged"]
);
kind!(
    committed_is_empty,
    committed_empty,
    5,
    ["committed is empty", "nothing was changed"]
);
kind!(
    committed_is_missing,
    committed_missing,
    5,
    ["committed is missing", "nothing was changed"]
);
kind!(
    committed_claims_more_than_the_journal_holds,
    committed_ahead,
    5,
    ["ends at record", "but 999 records were committed"],
    unchanged_bug = "bug: opening sled before refusing rewrites .wf/journal/snap.* (a new snapshot file replaces the old one): repro: two `wf run`s, then write a valid `committed` claiming seq 999, then `wf status` exits 5 and the journal directory has changed"
);
kind!(
    version_is_garbage,
    version_garbage,
    5,
    ["VERSION is damaged", "nothing was changed"]
);
kind!(
    version_is_newer,
    version_newer,
    5,
    [
        "newer wf (state schema 99; this wf reads up to 1)",
        "upgrade wf"
    ]
);
kind!(
    version_is_not_utf8,
    version_not_utf8,
    5,
    ["VERSION"],
    readers_bug = "bug: a VERSION that is not UTF-8 (`wf-state schema \\xce`) gives exit 4 `reading the state version failed …: stream did not contain valid UTF-8` instead of exit 5 (damaged)",
    writers_bug = "bug: a VERSION that is not UTF-8 (`wf-state schema \\xce`) gives exit 4 `reading the state version failed …: stream did not contain valid UTF-8` instead of exit 5 (damaged)"
);
kind!(
    journal_is_missing,
    journal_missing,
    5,
    ["the journal of", "is missing"],
    readers_bug = "bug: with VERSION present and .wf/journal/ gone, `wf status` and `wf --json history` exit 0 saying there are no runs (and `wf history 1` exits 2 `there is no run 1`) while writers refuse with exit 5: Store::open returns Ok(None) for a missing journal before it looks at VERSION"
);
kind!(
    journal_is_a_regular_file,
    journal_is_a_file,
    5,
    ["journal"],
    readers_bug = "bug: a .wf/journal that is a regular file gives exit 4 `opened failed for …/journal: Not a directory (os error 20)` instead of exit 5 (damaged)",
    writers_bug = "bug: a .wf/journal that is a regular file gives exit 4 `opened failed for …/journal: Not a directory (os error 20)` instead of exit 5 (damaged)"
);
kind!(
    journal_log_is_garbage,
    journal_log_garbage,
    5,
    ["the journal in", "is damaged"]
);
kind!(
    journal_log_and_conf_are_garbage,
    journal_log_and_conf_garbage,
    5,
    ["the journal in", "is damaged"],
    unchanged_bug = "bug: with .wf/journal/db random bytes and .wf/journal/conf garbage (`hi`), every command refuses (exit 5) only after sled has rewritten journal/conf"
);
kind!(
    journal_is_empty,
    journal_emptied,
    5,
    [".wf"],
    unchanged_bug = "bug: with VERSION and committed present and .wf/journal/ emptied, every command refuses (exit 5, misleadingly `… is not a wf state directory (no schema key)`) only after sled has created a new database in journal/ (conf, db, snap.*, blobs/)"
);
kind!(
    a_sled_db_without_version,
    foreign_sled_db,
    5,
    ["is not a wf state directory"],
    unchanged_bug = "bug: a sled database without VERSION is refused as foreign (exit 5) only after sled has opened it and rewritten its snapshot file (journal/snap.* replaced)"
);
kind!(
    random_files_without_version,
    foreign_files,
    5,
    ["not a wf state directory"],
    readers_bug = "bug: a state directory holding someone else's files (no VERSION, no journal) is read as an empty state: readers exit 0 with no runs",
    writers_bug = "bug: a state directory holding someone else's files (no VERSION, no journal) is adopted: `wf run` exits 0 and creates journal/, VERSION, committed, objects/ and logs/ among them",
    unchanged_bug = "bug: a state directory holding someone else's files (no VERSION, no journal) is adopted: `wf run` exits 0 and creates journal/, VERSION, committed, objects/ and logs/ among them"
);

#[test]
fn an_intact_small_state_is_read_by_every_command() {
    let t = small_state();
    for args in READERS.iter().chain(WRITERS.iter()) {
        t.ok(args, 0);
    }
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
command = "echo {task} {run} >> alerts.txt"

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

/// The queries whose answers a flipped byte must never change silently.
fn queries(runs: &[u64]) -> Vec<Vec<String>> {
    let mut q = vec![vec!["--json".to_string(), "history".to_string()]];
    for r in runs {
        q.push(vec!["--json".into(), "history".into(), r.to_string()]);
    }
    q
}

fn ask(cwd: &Path, state: &Path, q: &[String]) -> Out {
    let mut args: Vec<&str> = vec!["--state-dir", state.to_str().expect("utf-8 path")];
    args.extend(q.iter().map(String::as_str));
    wf_in(cwd, &args)
}

/// ~24 positions spread over a file: start, end, evenly spaced, a few at random (fixed seed);
/// in a long run of zeros (sled's preallocated segment) only its first, middle and last bytes,
/// while every non-zero region keeps its start and end.
fn positions(bytes: &[u8], seed: u64) -> Vec<usize> {
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
    out
}

#[derive(Default)]
struct Tally {
    flips: usize,
    identical: usize,
    refused: usize,
    /// Refused, and the refusing wf changed the (flipped) copy.
    refused_and_changed: usize,
    /// Flips answered wrongly (a loss, a panic, a hang, another exit code).
    bad: usize,
    problems: Vec<String>,
}

/// Flip one byte of `rel` at `pos` (xor `mask`) in a fresh copy of `pristine`, ask every query,
/// and judge the answers against `want`.
#[allow(clippy::too_many_arguments)]
fn flip_once(
    pristine: &Path,
    scratch: &Path,
    cwd: &Path,
    rel: &Path,
    pos: usize,
    mask: u8,
    qs: &[Vec<String>],
    want: &[String],
    tally: &mut Tally,
) {
    let copy = scratch.join(format!("flip-{pos}-{mask}"));
    copy_dir(pristine, &copy);
    let file = copy.join(rel);
    let mut bytes = fs::read(&file).expect("reading the file to flip");
    bytes[pos] ^= mask;
    fs::write(&file, &bytes).expect("flipping a byte");
    let flipped = hashes(&copy);
    let mut refused = false;
    let mut problems = Vec::new();
    for (q, want) in qs.iter().zip(want) {
        let out = ask(cwd, &copy, q);
        let at = format!(
            "{} byte {pos} ^ {mask:#04x}: `wf {}`",
            rel.display(),
            q.join(" ")
        );
        if out.code == i32::MIN {
            problems.push(format!("{at}: HUNG (killed after {HANG:?})"));
        } else if out.panicked() {
            problems.push(format!("{at}: PANIC: {}", clip(&out.stderr)));
        } else if out.code == 0 && out.stdout == *want {
        } else if out.code == 0 {
            problems.push(format!(
                "{at}: SILENT LOSS: exit 0 with a different answer:\n{}",
                clip(&out.stdout)
            ));
        } else if out.code == 5 && out.lines() == 1 {
            refused = true;
        } else {
            problems.push(format!(
                "{at}: exit {} (wanted 0 and the same answer, or 5): {}",
                out.code,
                clip(&out.stderr)
            ));
        }
    }
    tally.flips += 1;
    if !problems.is_empty() {
        tally.bad += 1;
        tally.problems.extend(problems);
    } else if refused {
        tally.refused += 1;
        if hashes(&copy) != flipped {
            tally.refused_and_changed += 1;
        }
    } else {
        tally.identical += 1;
    }
    let _ = fs::remove_dir_all(&copy);
}

/// The byte-flip test for the state files `pick` selects (paths relative to `.wf`); the k-th
/// position of a file is xored with `masks[k % masks.len()]`.
fn flip_files(label: &str, pick: fn(&Path) -> bool, masks: &[u8]) {
    let (t, runs) = scenario();
    let scratch = TempDir::new().expect("scratch dir");
    // The state exactly as the last writer left it, before any reader opened it.
    let pristine = scratch.path().join("pristine");
    copy_dir(&t.state(), &pristine);
    let qs = queries(&runs);
    let reference = scratch.path().join("reference");
    copy_dir(&pristine, &reference);
    let want: Vec<String> = qs
        .iter()
        .map(|q| {
            let out = ask(&t.root, &reference, q);
            assert!(out.code == 0 && !out.panicked(), "{}", out.show());
            assert!(!out.stdout.trim().is_empty(), "{}", out.show());
            out.stdout
        })
        .collect();
    // The answers are the same from the original directory (nothing depends on where it is).
    let again = ask(&t.root, &t.state(), &qs[0]);
    assert_eq!(again.stdout, want[0]);

    let files: Vec<PathBuf> = hashes(&pristine)
        .into_iter()
        .filter(|(p, h)| h != "directory" && pick(p))
        .map(|(p, _)| p)
        .collect();
    assert!(
        !files.is_empty(),
        "{label}: no file to flip in {:?}",
        hashes(&pristine).keys()
    );
    let started = Instant::now();
    let mut report = Vec::new();
    let mut bad = Vec::new();
    for (fi, rel) in files.iter().enumerate() {
        let bytes = fs::read(pristine.join(rel)).expect("reading a state file");
        let mut tally = Tally::default();
        for (k, pos) in positions(&bytes, 1000 + fi as u64).into_iter().enumerate() {
            let mask = masks[k % masks.len()];
            flip_once(
                &pristine,
                scratch.path(),
                &t.root,
                rel,
                pos,
                mask,
                &qs,
                &want,
                &mut tally,
            );
        }
        report.push(format!(
            "{:<28} {:>7} bytes: {:>3} flips: {:>3} identical, {:>3} refused (exit 5; {} of them changed the copy), {} bad",
            rel.display(),
            bytes.len(),
            tally.flips,
            tally.identical,
            tally.refused,
            tally.refused_and_changed,
            tally.bad
        ));
        bad.extend(tally.problems);
    }
    println!(
        "byte flips of {label} ({} queries each, {:.1?}):\n  {}",
        qs.len(),
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

fn is_committed(p: &Path) -> bool {
    p == Path::new("committed")
}

fn is_version(p: &Path) -> bool {
    p == Path::new("VERSION")
}

fn is_journal_log(p: &Path) -> bool {
    p == Path::new("journal/db")
}

fn is_journal_conf(p: &Path) -> bool {
    p == Path::new("journal/conf")
}

fn is_other_journal_file(p: &Path) -> bool {
    p.starts_with("journal") && !is_journal_log(p) && !is_journal_conf(p)
}

/// Every bit of a byte, and its lowest bit: alternately.
const MASKS: [u8; 2] = [0xFF, 0x01];

#[test]
fn flipped_bytes_in_committed_are_refused_or_harmless() {
    flip_files("committed", is_committed, &MASKS);
}

/// VERSION is text: flips that keep it ASCII are refused (or harmless)...
#[test]
fn flipped_ascii_bits_in_version_are_refused_or_harmless() {
    flip_files("VERSION (ascii flips)", is_version, &[0x01, 0x20, 0x04]);
}

/// ...but a flip of its high bit makes it invalid UTF-8, and that is reported as an I/O error.
#[test]
#[ignore = "bug: a flipped byte that makes .wf/VERSION invalid UTF-8 gives exit 4 (`reading the state version failed …: stream did not contain valid UTF-8`) instead of exit 5"]
fn flipped_high_bits_in_version_are_refused_or_harmless() {
    flip_files("VERSION (high-bit flips)", is_version, &[0xFF, 0x80]);
}

#[test]
fn flipped_bytes_in_the_journal_log_are_refused_or_harmless() {
    flip_files("journal/db", is_journal_log, &MASKS);
}

#[test]
fn flipped_bytes_in_the_journal_conf_are_refused_or_harmless() {
    flip_files("journal/conf", is_journal_conf, &MASKS);
}

#[test]
fn flipped_bytes_in_the_journal_snapshot_are_refused_or_harmless() {
    flip_files("journal/snap.*", is_other_journal_file, &MASKS);
}

/// A reader refusing a journal with a flipped byte must leave it as it was: the records after the
/// flip are still on disk, and a backup tool or a human may want them.
#[test]
#[ignore = "bug: a byte flipped in the middle of .wf/journal/db makes `wf --json history` exit 5 only after sled's recovery has zeroed the log from the damaged message to its end: the records after the flip are destroyed by a read-only command"]
fn a_refused_flip_in_the_journal_log_leaves_it_unchanged() {
    let t = small_state();
    let db = t.state().join("journal").join("db");
    let mut bytes = fs::read(&db).expect("reading the journal log");
    let used = bytes
        .iter()
        .rposition(|b| *b != 0)
        .expect("a non-empty log");
    let pos = used / 2;
    bytes[pos] ^= 0xFF;
    fs::write(&db, &bytes).expect("flipping a byte");
    let before = hashes(&t.state());
    let out = t.wf(&["--json", "history"]);
    assert!(out.code == 5 && !out.panicked(), "{}", out.show());
    let after = fs::read(&db).expect("reading the journal log");
    let zeroed = bytes
        .iter()
        .zip(&after)
        .filter(|(a, b)| a != b && **b == 0)
        .count();
    assert!(
        before == hashes(&t.state()),
        "`wf --json history` (exit {}) changed the refused state: {:?}; {zeroed} bytes of the log \
         (of {used} used, flip at {pos}) were zeroed",
        out.code,
        diff(&before, &hashes(&t.state()))
    );
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
        "Prune",
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
    let qs = queries(&runs);
    let original = answers(&t.root, &t.state(), &qs);
    let imported = answers(&t.root, &fresh, &qs);
    for ((q, a), b) in qs.iter().zip(&original).zip(&imported) {
        assert_eq!(a, b, "`wf {}` differs after export and import", q.join(" "));
    }
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
