//! Hostile workflow files: a table of inputs a careless or malicious author (or a broken editor)
//! can hand to `wf`, each with the exit code and the message fragment wf must answer with. Every
//! case runs the real binary in its own sandbox (a temp root holding the workflow directory, an
//! empty HOME and an empty TMPDIR) and checks, besides the code and the message:
//!
//! - no panic, no backtrace, no "internal error" on stderr;
//! - wf finished within a generous time bound (big inputs must not be quadratic, deep ones must not
//!   overflow the stack, cycles must not hang);
//! - nothing was written outside the workflow directory (the sandbox holds exactly what it held),
//!   and nothing but `.wf/` inside it.
//!
//! Then run-time hostility: an output that is a symbolic link to a file outside the workflow
//! directory must fail the attempt, leave that file alone and never copy it into `.wf/objects`.
//!
//! Then the state directory as a trust boundary: links (symbolic and hard), FIFOs and modes planted
//! in `.wf`, a decoy tree outside checked byte for byte after every command; restore through a
//! planted link; rotten objects; a state of another workflow; modes under umask 000.
//!
//! Cases marked with `bug` are known wf bugs: the main table skips them and an `#[ignore]`d test
//! runs exactly those (`cargo test --test hostile -- --ignored`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

#[path = "../common/mod.rs"]
mod common;

use common::{Rng, WF};

/// The default bound for one wf invocation (a debug build on a busy 2-core machine).
const LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The sandbox
// ---------------------------------------------------------------------------------------------

/// A temp root holding `work/` (the workflow directory), `home/` (HOME) and `tmp/` (TMPDIR).
struct Sandbox {
    _dir: TempDir,
    root: PathBuf,
    work: PathBuf,
}

/// How one wf invocation ended.
struct Out {
    what: String,
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("wf-hostile-")
            .tempdir()
            .expect("creating a temp dir");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        let work = root.join("work");
        for d in ["work", "home", "tmp"] {
            fs::create_dir(root.join(d)).expect("creating a sandbox directory");
        }
        Sandbox {
            _dir: dir,
            root,
            work,
        }
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.work.join(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).expect("creating a directory");
        }
        fs::write(&p, bytes).expect("writing a file");
    }

    /// Run `wf ARGS` in the workflow directory with a small fixed environment; a wf still running
    /// after `limit` is killed and the test fails (a hang).
    fn wf(&self, args: &[&str], limit: Duration) -> Out {
        let what = format!("wf {}", args.join(" "));
        let out_path = self.root.join("tmp").join(".stdout");
        let err_path = self.root.join("tmp").join(".stderr");
        let mut child = common::command(&self.work, &self.root.join("home"))
            .args(args)
            .env("TMPDIR", self.root.join("tmp"))
            .stdout(fs::File::create(&out_path).expect("creating the stdout file"))
            .stderr(fs::File::create(&err_path).expect("creating the stderr file"))
            .spawn()
            .expect("starting wf");
        let started = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("waiting for wf") {
                break st;
            }
            if started.elapsed() >= limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{what}` did not exit within {limit:?} (a hang)");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = started.elapsed();
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| -status.signal().unwrap_or(0));
        let stdout = fs::read_to_string(&out_path).unwrap_or_default();
        let stderr = fs::read_to_string(&err_path).unwrap_or_default();
        // The capture files are ours, not wf's: remove them so the sandbox check sees only wf.
        let _ = fs::remove_file(&out_path);
        let _ = fs::remove_file(&err_path);
        let out = Out {
            what,
            code,
            stdout,
            stderr,
            took,
        };
        for bad in ["panicked", "RUST_BACKTRACE", "internal error"] {
            assert!(
                !out.stderr.contains(bad),
                "`{}` printed `{bad}`:\n{}",
                out.what,
                clip(&out.stderr)
            );
        }
        out
    }

    /// The sandbox holds `work/`, an empty `home/` and an empty `tmp/`, and `work/` holds only
    /// `allowed` (plus `.wf` when `state` is true).
    #[track_caller]
    fn assert_contained(&self, allowed: &[&str], state: bool, context: &str) {
        let names = |d: &Path| -> BTreeSet<String> {
            fs::read_dir(d)
                .unwrap_or_else(|e| panic!("listing {}: {e}", d.display()))
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        };
        let want: BTreeSet<String> = ["home", "tmp", "work"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            names(&self.root),
            want,
            "{context}: wrote beside the workflow directory"
        );
        for d in ["home", "tmp"] {
            let left = names(&self.root.join(d));
            assert!(left.is_empty(), "{context}: wrote into ${d}: {left:?}");
        }
        let mut want: BTreeSet<String> = allowed.iter().map(|s| s.to_string()).collect();
        let got = names(&self.work);
        if state && got.contains(".wf") {
            want.insert(".wf".into());
        }
        assert_eq!(
            got, want,
            "{context}: the workflow directory holds something unexpected"
        );
    }
}

/// At most 600 characters of a long text, for failure messages.
fn clip(s: &str) -> String {
    if s.chars().count() <= 600 {
        return s.to_string();
    }
    let head: String = s.chars().take(600).collect();
    format!("{head}… ({} bytes)", s.len())
}

// ---------------------------------------------------------------------------------------------
// Deterministic generators
// ---------------------------------------------------------------------------------------------

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    (0..len).map(|_| r.next() as u8).collect()
}

/// Printable ASCII and newlines: valid UTF-8, (almost certainly) not valid TOML.
fn random_ascii(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    (0..len)
        .map(|_| match r.next() % 97 {
            96 => b'\n',
            n => b' ' + n as u8 - (n as u8 / 95) * 95,
        })
        .collect()
}

const TASK: &str = "[task.a]\nrun = \"true\"\n";

fn twenty_mb_of_comments() -> Vec<u8> {
    let line = format!("# {}\n", "x".repeat(97));
    let mut s = String::from(TASK);
    s.push_str(&line.repeat(200_000));
    s.into_bytes()
}

fn twenty_mb_string() -> Vec<u8> {
    format!("{TASK}owner = \"{}\"\n", "x".repeat(20_000_000)).into_bytes()
}

fn twenty_mb_unterminated_string() -> Vec<u8> {
    format!("{TASK}owner = \"{}\n", "x".repeat(20_000_000)).into_bytes()
}

const DEEP: usize = 100_000;

fn deep_arrays() -> Vec<u8> {
    format!("{TASK}x = {}{}\n", "[".repeat(DEEP), "]".repeat(DEEP)).into_bytes()
}

fn deep_unclosed_arrays() -> Vec<u8> {
    format!("{TASK}x = {}\n", "[".repeat(DEEP)).into_bytes()
}

fn deep_inline_tables() -> Vec<u8> {
    format!("{TASK}x = {}1{}\n", "{a = ".repeat(DEEP), "}".repeat(DEEP)).into_bytes()
}

fn deep_dotted_keys() -> Vec<u8> {
    format!("{}b = 1\n{TASK}", "a.".repeat(DEEP)).into_bytes()
}

fn deep_table_header() -> Vec<u8> {
    format!("[{}]\nx = 1\n{TASK}", vec!["a"; DEEP].join(".")).into_bytes()
}

fn deep_json_arrays() -> Vec<u8> {
    format!(
        "{{\"task\": {{\"a\": {{\"run\": \"true\", \"x\": {}{}}}}}}}",
        "[".repeat(DEEP),
        "]".repeat(DEEP)
    )
    .into_bytes()
}

fn deep_json_objects() -> Vec<u8> {
    format!(
        "{{\"task\": {{\"a\": {{\"run\": \"true\", \"x\": {}1{}}}}}}}",
        "{\"a\": ".repeat(DEEP),
        "}".repeat(DEEP)
    )
    .into_bytes()
}

const CHAIN: usize = 5_000;

/// t0 ← t1 ← … ← t4999 (each needs the previous one).
fn chain() -> String {
    let mut s = String::new();
    for i in 0..CHAIN {
        s.push_str(&format!("[task.t{i}]\nrun = \"true\"\n"));
        if i > 0 {
            s.push_str(&format!("needs = [\"t{}\"]\n", i - 1));
        }
    }
    s
}

fn chain_of_5000() -> Vec<u8> {
    chain().into_bytes()
}

/// The chain closed into one cycle of 5000: t0 needs t4999.
fn cycle_of_5000() -> Vec<u8> {
    chain()
        .replacen(
            "[task.t0]\nrun = \"true\"\n",
            &format!("[task.t0]\nrun = \"true\"\nneeds = [\"t{}\"]\n", CHAIN - 1),
            1,
        )
        .into_bytes()
}

/// 5000 tasks in a chain and a small cycle behind them.
fn chain_and_small_cycle() -> Vec<u8> {
    let mut s = chain();
    s.push_str(
        "[task.u]\nrun = \"true\"\nneeds = [\"v\"]\n[task.v]\nrun = \"true\"\nneeds = [\"u\"]\n",
    );
    s.into_bytes()
}

/// A task whose `run` would write `path` (so if wf ever ran it, the sandbox check would see it).
/// `@ROOT@` stands for the sandbox root (an absolute path outside the workflow directory).
fn writer(key: &str, path: &str) -> String {
    format!("[task.a]\nrun = \"echo pwned > {path}\"\n{key} = [\"{path}\"]\n")
}

// The tests, by topic.
mod outputs;
mod state;
mod table;
