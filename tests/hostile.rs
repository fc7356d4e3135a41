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

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

enum Src {
    Text(&'static str),
    Owned(fn() -> String),
    Bytes(fn() -> Vec<u8>),
}

struct Case {
    name: &'static str,
    /// `wf.toml` or `wf.json`.
    file: &'static str,
    src: Src,
    code: i32,
    /// Every fragment must appear in stderr (exit ≠ 0) or stdout (exit 0).
    fragments: &'static [&'static str],
    /// The error is exactly one line.
    one_line: bool,
    /// Also `wf run` it (same exit code; for exit 0 the task is `true`).
    run: bool,
    /// Per-invocation time bound.
    limit: Duration,
    /// A known wf bug: skipped by the main table, run by the ignored test.
    bug: Option<&'static str>,
}

const fn case(name: &'static str, src: Src, code: i32, fragments: &'static [&'static str]) -> Case {
    Case {
        name,
        file: "wf.toml",
        src,
        code,
        fragments,
        one_line: true,
        run: false,
        limit: LIMIT,
        bug: None,
    }
}

impl Case {
    const fn json(mut self) -> Case {
        self.file = "wf.json";
        self
    }
    const fn run(mut self) -> Case {
        self.run = true;
        self
    }
    const fn lines(mut self) -> Case {
        self.one_line = false;
        self
    }
    const fn bug(mut self, why: &'static str) -> Case {
        self.bug = Some(why);
        self
    }
    fn bytes(&self) -> Vec<u8> {
        match &self.src {
            Src::Text(s) => s.as_bytes().to_vec(),
            Src::Owned(f) => f().into_bytes(),
            Src::Bytes(f) => f(),
        }
    }
}

const BUG_JSON_DUPLICATES: &str = "bug: wf.json silently accepts duplicate keys (the last `run` wins, a repeated `task` object is merged) where wf.toml refuses them";

fn cases() -> Vec<Case> {
    use Src::*;
    vec![
        // --- bytes that are not a workflow at all
        case("empty file", Text(""), 2, &["no tasks are defined"]).run(),
        case("only a BOM", Text("\u{feff}"), 2, &["no tasks are defined"]),
        case("a BOM before a valid file", Owned(|| format!("\u{feff}{TASK}")), 0, &["1 task"]).run(),
        case(
            "a NUL byte in a string",
            Text("[task.a]\nrun = \"tr\0ue\"\n"),
            2,
            &["wf.toml:2:", "TOML syntax error"],
        )
        .run(),
        case(
            "a NUL byte in a comment",
            Text("[task.a]\nrun = \"true\"\n# \0\n"),
            2,
            &["wf.toml:3:", "TOML syntax error"],
        ),
        case("4 KiB of random bytes (seed 1)", Bytes(|| random_bytes(1, 4096)), 2, &["is not valid UTF-8 (at byte"]).run(),
        case("64 KiB of random bytes (seed 2)", Bytes(|| random_bytes(2, 65536)), 2, &["is not valid UTF-8 (at byte"]),
        case("random bytes as wf.json (seed 3)", Bytes(|| random_bytes(3, 4096)), 2, &["is not valid UTF-8"]).json(),
        case("random printable ASCII (seed 4)", Bytes(|| random_ascii(4, 4096)), 2, &["TOML syntax error"]).lines(),
        case("random printable ASCII (seed 5)", Bytes(|| random_ascii(5, 300)), 2, &["TOML syntax error"]).lines(),
        case("random printable ASCII as wf.json (seed 6)", Bytes(|| random_ascii(6, 4096)), 2, &["JSON syntax error"]).json(),
        // --- size and depth
        case("20 MB of comments", Bytes(twenty_mb_of_comments), 0, &["1 task"]).run(),
        case("a 20 MB string", Bytes(twenty_mb_string), 0, &["1 task"]),
        case("an unterminated 20 MB string", Bytes(twenty_mb_unterminated_string), 2, &["wf.toml:3:", "TOML syntax error"]).run(),
        case("100,000 nested arrays", Bytes(deep_arrays), 2, &["TOML syntax error", "recurs"]).run(),
        case("100,000 unclosed arrays", Bytes(deep_unclosed_arrays), 2, &["TOML syntax error", "recurs"]).lines(),
        case("100,000 nested inline tables", Bytes(deep_inline_tables), 2, &["TOML syntax error", "recurs"]),
        case("100,000 dotted keys", Bytes(deep_dotted_keys), 2, &["TOML syntax error", "recursion limit"]),
        case("a table header 100,000 keys deep", Bytes(deep_table_header), 2, &["TOML syntax error", "recursion limit"]),
        case("100,000 nested JSON arrays", Bytes(deep_json_arrays), 2, &["JSON syntax error", "recursion limit"]).json().run(),
        case("100,000 nested JSON objects", Bytes(deep_json_objects), 2, &["JSON syntax error", "recursion limit"]).json(),
        case("5,000 tasks in a chain", Bytes(chain_of_5000), 0, &["5000 tasks, 0 warnings"]),
        case(
            "5,000 tasks in one cycle",
            Bytes(cycle_of_5000),
            2,
            &["dependency cycle: t0 → t4999 → t4998 → ", " → t2 → t1 → t0; remove one of these `needs`"],
        )
        .run(),
        case(
            "5,000 tasks and a 2-cycle",
            Bytes(chain_and_small_cycle),
            2,
            &["dependency cycle: u → v → u"],
        ),
        // --- task names (they become file names under .wf/logs/)
        case("a task named ..", Text("[task.\"..\"]\nrun = \"true\"\n"), 2, &["task name `..` is invalid"]).run(),
        case("a task name with /", Text("[task.\"a/b\"]\nrun = \"true\"\n"), 2, &["task name `a/b` is invalid"]),
        case("a task name with ../", Text("[task.\"../x\"]\nrun = \"true\"\n"), 2, &["task name `../x` is invalid"]).run(),
        case("a task name with a space", Text("[task.\"a b\"]\nrun = \"true\"\n"), 2, &["task name `a b` is invalid"]),
        case("a task name with a bell", Text("[task.\"a\\u0007b\"]\nrun = \"true\"\n"), 2, &["task name `a\\u{7}b` is invalid"]),
        case("a task name with a newline", Text("[task.\"a\\nb\"]\nrun = \"true\"\n"), 2, &["task name `a\\nb` is invalid"]),
        case("a task name starting with -", Text("[task.-x]\nrun = \"true\"\n"), 2, &["task name `-x` is invalid"]),
        case(
            "a bare Cyrillic а (U+0430) in a task name",
            Text("[task.\u{430}pple]\nrun = \"true\"\n"),
            2,
            &["wf.toml:1:7:", "TOML syntax error: invalid unquoted key"],
        ),
        case(
            "a quoted Cyrillic а (U+0430) in a task name",
            Text("[task.apple]\nrun = \"true\"\n[task.\"\u{430}pple\"]\nrun = \"true\"\nneeds = [\"apple\"]\n"),
            2,
            &["wf.toml:3:7:", "task name `\u{430}pple` is invalid", "use 1 to 64 letters, digits"],
        )
        .run(),
        case(
            "needs naming a Cyrillic а (U+0430)",
            Text("[task.a]\nrun = \"true\"\n[task.b]\nrun = \"true\"\nneeds = [\"\u{430}\"]\n"),
            2,
            &["task `b` needs unknown task `\u{430}`"],
        ),
        case("a 64-character name", Owned(|| format!("[task.{}]\nrun = \"true\"\n", "a".repeat(64))), 0, &["1 task"]),
        case(
            "a 65-character name",
            Owned(|| format!("[task.{}]\nrun = \"true\"\n", "a".repeat(65))),
            2,
            &["is invalid; use 1 to 64 letters"],
        )
        .run(),
        // --- paths (relative to the workflow directory, never outside it, never into .wf/)
        case("an output with ..", Owned(|| writer("outputs", "../escape.txt")), 2, &["output `../escape.txt` of task `a` contains `..`"]).run(),
        case("an input with a/../../", Owned(|| writer("inputs", "sub/../../escape.txt")), 2, &["input `sub/../../escape.txt` of task `a` contains `..`"]).run(),
        case("an absolute output", Owned(|| writer("outputs", "@ROOT@/abs.txt")), 2, &["/abs.txt` of task `a` is absolute; paths must be relative"]).run(),
        case("a drive-letter output", Owned(|| writer("outputs", "C:/x")), 2, &["output `C:/x` of task `a` is absolute"]),
        case("an output under ~", Owned(|| writer("outputs", "~/pwned.txt")), 2, &["output `~/pwned.txt` of task `a` starts with `~`"]).run(),
        case("an output with a backslash", Text("[task.a]\nrun = \"true\"\noutputs = [\"a\\\\b\"]\n"), 2, &["output `a\\b` of task `a` contains `\\`"]),
        case("an input with NUL", Text("[task.a]\nrun = \"true\"\ninputs = [\"a\\u0000b\"]\n"), 2, &["input `a\\u{0}b` of task `a` contains a control character"]).run(),
        case("an input with ESC", Text("[task.a]\nrun = \"true\"\ninputs = [\"a\\u001b[2Jb\"]\n"), 2, &["contains a control character"]),
        case("an output with a newline", Text("[task.a]\nrun = \"true\"\noutputs = [\"a\\nb\"]\n"), 2, &["output `a\\nb` of task `a` contains a control character"]),
        case("an output into .wf/journal", Owned(|| writer("outputs", ".wf/journal/db")), 2, &["output `.wf/journal/db` of task `a` is inside `.wf`"]).run(),
        case("an output ./.wf", Owned(|| writer("outputs", "./.wf")), 2, &["output `./.wf` of task `a` is inside `.wf`"]),
        case("a checkpoint .wf//x", Text("[task.a]\nrun = \"true\"\noutputs = [\"o\"]\ncheckpoint = [\".wf//x\"]\n"), 2, &["checkpoint path `.wf//x` of task `a` is inside `.wf`"]),
        case("an output that is the directory itself", Text("[task.a]\nrun = \"true\"\noutputs = [\"./\"]\n"), 2, &["output `./` of task `a`"]),
        // --- numbers and durations
        case("a timeout of 99999999999999999d", Text("[task.a]\nrun = \"true\"\ntimeout = \"99999999999999999d\"\n"), 2, &["`timeout` in [task.a] is longer than 100 years"]).run(),
        case("a timeout of 1e400s", Text("[task.a]\nrun = \"true\"\ntimeout = \"1e400s\"\n"), 2, &["`timeout` in [task.a] is not a valid duration: `1e400s`"]),
        case("a retry_delay of 101y", Text("[task.a]\nrun = \"true\"\nretry_delay = \"101y\"\n"), 2, &["`retry_delay` in [task.a] is longer than 100 years"]),
        case("a negative duration", Text("[task.a]\nrun = \"true\"\nretention = \"-5s\"\n"), 2, &["`retention` in [task.a] is not a valid duration: `-5s`"]),
        case("a bare-number timeout", Text("[task.a]\nrun = \"true\"\ntimeout = 30\n"), 2, &["`timeout` in [task.a] must be a duration string, found an integer", "quote it with a unit"]),
        case("retries = -1", Text("[task.a]\nrun = \"true\"\nretries = -1\n"), 2, &["`retries` in [task.a] must be a non-negative integer, found -1"]).run(),
        case("retries = 101", Text("[task.a]\nrun = \"true\"\nretries = 101\n"), 2, &["`retries` in [task.a] must be at most 100, found 101"]),
        case("retries = 10^40", Text("[task.a]\nrun = \"true\"\nretries = 10000000000000000000000000000000000000000\n"), 2, &["`retries` in [task.a] is too large; the maximum is 100"]),
        case("retries = 1.5", Text("[task.a]\nrun = \"true\"\nretries = 1.5\n"), 2, &["`retries` in [task.a] must be a non-negative integer, found a float"]),
        case("jobs = 0", Text("[workflow]\njobs = 0\n[task.a]\nrun = \"true\"\n"), 2, &["`jobs` in [workflow] must be at least 1, found 0"]),
        case("keep_last = 2^32", Text("[workflow]\nkeep_last = 4294967296\n[task.a]\nrun = \"true\"\n"), 2, &["`keep_last` in [workflow] must be at most 4294967295"]),
        // --- structure
        case("a task that needs itself", Text("[task.a]\nrun = \"echo pwned > pwned.txt\"\nneeds = [\"a\"]\n"), 2, &["task `a` needs itself"]).run(),
        case("a duplicate key", Text("[task.a]\nrun = \"true\"\nrun = \"echo pwned > pwned.txt\"\n"), 2, &["wf.toml:3:", "TOML syntax error: duplicate key `run`"]).run(),
        case("a duplicate task table", Text("[task.a]\nrun = \"true\"\n[task.a]\nrun = \"false\"\n"), 2, &["TOML syntax error: duplicate key"]).lines(),
        case("an unknown top-level table", Text("[bogus]\nx = 1\n[task.a]\nrun = \"true\"\n"), 2, &["wf.toml:1:2:", "unknown key `bogus` at the top level"]).run(),
        case("[tasks.a] for [task.a]", Text("[tasks.a]\nrun = \"true\"\n"), 2, &["unknown key `tasks` at the top level; did you mean `task`?"]).lines(),
        case("[[task]]", Text("[[task]]\nrun = \"true\"\n"), 2, &["write each task as [task.NAME], not [[task]]"]),
        case("task = 1", Text("task = 1\n"), 2, &["`task` must be a table of tasks like [task.NAME], found an integer"]),
        case(
            "wrong types everywhere",
            Text("[workflow]\nname = 1\nschedule = []\nretention = true\nkeep_last = \"1\"\njobs = {}\n[notify]\nwebhook = 2\ncommand = false\n[task.a]\nrun = 1\nneeds = \"b\"\ninputs = [1]\noutputs = {}\ncheckpoint = 3\nretention = []\nowner = 4\nidempotent = \"yes\"\nretries = \"2\"\nretry_delay = 5\ntimeout = []\nlog = \"rows\"\nmanual = 1\napproval_timeout = false\nenv = 3\n"),
            2,
            &[
                "`name` in [workflow] must be a string, found an integer", "`run` in [task.a] must be a string, found an integer",
                "`needs` in [task.a] must be an array of strings, found a string",
                "item 1 of `inputs` in [task.a] must be a string, found an integer",
                "`idempotent` in [task.a] must be `true` or `false`, found a string",
                "`env` in [task.a] must be a table, found an integer",
            ],
        )
        .lines(),
        case("an env var named WF_X", Text("[task.a]\nrun = \"true\"\nenv = { WF_X = \"1\" }\n"), 2, &["environment variable `WF_X` in [task.a] uses the reserved prefix `WF_`"]),
        case("a workflow name with a control character", Text("[workflow]\nname = \"a\\u0007b\"\n[task.a]\nrun = \"true\"\n"), 2, &["`name` in [workflow] contains a control character"]),
        // --- the same in wf.json
        case("JSON: empty", Text(""), 2, &["JSON syntax error: EOF while parsing a value"]).json().run(),
        case("JSON: an array document", Text("[]"), 2, &["the document must be a table, found an array"]).json(),
        case("JSON: an output with ..", Text("{\"task\": {\"a\": {\"run\": \"echo pwned > ../escape.txt\", \"outputs\": [\"../escape.txt\"]}}}"), 2, &["wf.json:1:", "output `../escape.txt` of task `a` contains `..`"]).json().run(),
        case("JSON: a NUL in run", Text("{\"task\": {\"a\": {\"run\": \"tr\\u0000ue\"}}}"), 2, &["`run` in [task.a] contains a NUL character"]).json().run(),
        case("JSON: a Cyrillic task name", Text("{\"task\": {\"\\u0430\": {\"run\": \"true\"}}}"), 2, &["task name `\u{430}` is invalid"]).json(),
        case("JSON: retries = -1", Text("{\"task\": {\"a\": {\"run\": \"true\", \"retries\": -1}}}"), 2, &["`retries` in [task.a] must be a non-negative integer, found -1"]).json(),
        case("JSON: retries = 1e400", Text("{\"task\": {\"a\": {\"run\": \"true\", \"retries\": 1e400}}}"), 2, &["JSON syntax error: number out of range"]).json(),
        case("JSON: a timeout of 1e400s", Text("{\"task\": {\"a\": {\"run\": \"true\", \"timeout\": \"1e400s\"}}}"), 2, &["`timeout` in [task.a] is not a valid duration"]).json(),
        case("JSON: a task that needs itself", Text("{\"task\": {\"a\": {\"run\": \"echo pwned > pwned.txt\", \"needs\": [\"a\"]}}}"), 2, &["task `a` needs itself"]).json().run(),
        case("JSON: an unknown top-level key", Text("{\"task\": {\"a\": {\"run\": \"true\"}}, \"bogus\": {}}"), 2, &["unknown key `bogus` at the top level"]).json(),
        case("JSON: a duplicate task", Text("{\"task\": {\"a\": {\"run\": \"true\"}, \"a\": {\"run\": \"false\"}}}"), 2, &["task `a` is defined twice"]).json(),
        case("JSON: wrong types", Text("{\"workflow\": [], \"task\": {\"a\": {\"run\": null, \"manual\": 1}}}"), 2, &["`workflow` at the top level must be a table, found an array", "`run` in [task.a] must be a string, found null"]).json().lines(),
        // --- known bugs
        case("JSON: a duplicate key", Text("{\"task\": {\"a\": {\"run\": \"true\", \"run\": \"echo pwned > pwned.txt\"}}}"), 2, &["duplicate", "run"]).json().run().bug(BUG_JSON_DUPLICATES),
        case("JSON: a duplicate top-level key", Text("{\"task\": {\"a\": {\"run\": \"true\"}}, \"task\": {\"b\": {\"run\": \"echo pwned > pwned.txt\"}}}"), 2, &["duplicate", "task"]).json().run().bug(BUG_JSON_DUPLICATES),
    ]
}

/// Run one case: `wf check` (and `wf run`), with every assertion of the module doc.
fn check_case(c: &Case) {
    let sb = Sandbox::new();
    let bytes = c.bytes();
    let root = sb.root.to_str().expect("a UTF-8 temp path");
    let bytes = if bytes.windows(6).any(|w| w == b"@ROOT@") {
        String::from_utf8(bytes)
            .expect("a text case")
            .replace("@ROOT@", root)
            .into_bytes()
    } else {
        bytes
    };
    sb.write(c.file, &bytes);
    let verbs: &[&str] = if c.run { &["check", "run"] } else { &["check"] };
    for verb in verbs {
        let context = format!("case `{}`, wf {verb}", c.name);
        let out = sb.wf(&[verb], c.limit);
        assert_eq!(
            out.code,
            c.code,
            "{context}: exit {} (wanted {})\nstdout:\n{}\nstderr:\n{}",
            out.code,
            c.code,
            clip(&out.stdout),
            clip(&out.stderr)
        );
        assert!(out.took < c.limit, "{context}: took {:?}", out.took);
        let text = if c.code == 0 && *verb == "check" {
            &out.stdout
        } else {
            &out.stderr
        };
        for f in c
            .fragments
            .iter()
            .filter(|_| c.code != 0 || *verb == "check")
        {
            assert!(
                text.contains(f),
                "{context}: the message lacks {f:?}:\n{}",
                clip(text)
            );
        }
        if c.code != 0 {
            let lines: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect();
            assert!(
                !lines.is_empty() && lines.iter().all(|l| l.contains("error:")),
                "{context}: every line should be an error diagnostic:\n{}",
                clip(&out.stderr)
            );
            if c.one_line {
                assert_eq!(
                    lines.len(),
                    1,
                    "{context}: not one line:\n{}",
                    clip(&out.stderr)
                );
            }
        }
        // A refused workflow creates nothing, not even .wf/; an accepted run creates only .wf/.
        sb.assert_contained(&[c.file], *verb == "run" && c.code == 0, &context);
    }
}

#[test]
fn hostile_workflow_files_are_refused_cleanly() {
    let all = cases();
    let mut ran = 0;
    for c in all.iter().filter(|c| c.bug.is_none()) {
        let started = Instant::now();
        check_case(c);
        ran += 1;
        eprintln!("ok  {:>6.0?}  {}", started.elapsed(), c.name);
    }
    eprintln!(
        "{ran} hostile cases passed ({} known bugs skipped)",
        all.len() - ran
    );
    assert!(ran >= 20);
}

#[test]
fn hostile_cases_that_were_bugs() {
    for c in cases().iter().filter(|c| c.bug.is_some()) {
        check_case(c);
    }
}

/// The names in the table are unique, so a failure names one case.
#[test]
fn case_names_are_unique() {
    let all = cases();
    let names: BTreeSet<&str> = all.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), all.len());
}

// ---------------------------------------------------------------------------------------------
// Run time: outputs that lead outside the workflow directory
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "wf-hostile: secret bytes that live outside the workflow directory\n";

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            found.extend(files_containing(&p, needle));
        } else if m.is_file() {
            let bytes = fs::read(&p).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(p);
            }
        }
    }
    found
}

/// How many files (not directories) are under `dir`.
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match fs::symlink_metadata(e.path()) {
            Ok(m) if m.is_dir() => count_files(&e.path()),
            _ => 1,
        })
        .sum()
}

/// The task status row of `task` in the latest run.
fn status_of(sb: &Sandbox, task: &str) -> serde_json::Value {
    let out = sb.wf(&["--json", "status"], LIMIT);
    assert_eq!(out.code, 0, "wf --json status: {}", out.stderr);
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["task"] == task)
        .unwrap_or_else(|| panic!("no status row for {task}: {}", out.stdout))
}

/// A file outside the workflow directory, and its bytes and modification time.
fn outside_secret(sb: &Sandbox) -> (PathBuf, std::time::SystemTime) {
    let dir = sb.root.join("home").join("outside");
    fs::create_dir_all(&dir).expect("creating the outside directory");
    let p = dir.join("secret.txt");
    fs::write(&p, SECRET).expect("writing the secret");
    let mtime = fs::metadata(&p).and_then(|m| m.modified()).expect("mtime");
    (p, mtime)
}

#[track_caller]
fn assert_untouched(p: &Path, mtime: std::time::SystemTime) {
    assert_eq!(
        fs::read_to_string(p).expect("reading the outside file"),
        SECRET,
        "the outside file was changed"
    );
    assert_eq!(
        fs::metadata(p).and_then(|m| m.modified()).expect("mtime"),
        mtime,
        "the outside file was written"
    );
}

#[test]
fn an_output_that_is_a_link_outside_fails_and_is_never_copied() {
    let sb = Sandbox::new();
    let (secret, mtime) = outside_secret(&sb);
    sb.write(
        "wf.toml",
        format!(
            "[task.leak]\nrun = \"ln -s '{}' out.txt\"\noutputs = [\"out.txt\"]\n",
            secret.display()
        )
        .as_bytes(),
    );
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(
        out.code, 1,
        "the attempt should fail:\n{}\n{}",
        out.stdout, out.stderr
    );
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("out.txt") && all.contains("symbolic link"),
        "the failure should name the link: {all}"
    );
    let st = status_of(&sb, "leak");
    assert_eq!(st["state"], "failed", "{st}");
    let history = sb.wf(&["--json", "history", "1"], LIMIT);
    assert!(
        history.stdout.contains("output out.txt is a symbolic link"),
        "the journal should say why: {}",
        history.stdout
    );
    assert_untouched(&secret, mtime);
    let leaked = files_containing(&sb.work.join(".wf"), SECRET.as_bytes());
    assert!(
        leaked.is_empty(),
        "the outside file was copied into .wf: {leaked:?}"
    );
    assert_eq!(
        count_files(&sb.work.join(".wf/objects")),
        0,
        "something was checkpointed"
    );
    // The link is the task's; wf removed nothing and created nothing else beside it.
    fs::remove_dir_all(sb.root.join("home").join("outside")).expect("cleaning up");
    sb.assert_contained(&["wf.toml", "out.txt"], true, "after the run");
}

#[test]
fn a_relative_link_outside_fails_the_same_way() {
    let sb = Sandbox::new();
    let (secret, mtime) = outside_secret(&sb);
    sb.write(
        "wf.toml",
        b"[task.leak]\nrun = \"mkdir -p d && ln -s ../../home/outside/secret.txt d/out.txt\"\noutputs = [\"d/out.txt\"]\n",
    );
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("d/out.txt is a symbolic link"),
        "{}",
        out.stderr
    );
    assert_untouched(&secret, mtime);
    assert!(files_containing(&sb.work.join(".wf"), SECRET.as_bytes()).is_empty());
}

#[test]
fn an_output_below_a_linked_directory_outside_fails_and_is_never_copied() {
    let sb = Sandbox::new();
    let (secret, mtime) = outside_secret(&sb);
    let outside = secret.parent().expect("parent").to_path_buf();
    sb.write(
        "wf.toml",
        format!(
            "[task.leak]\nrun = \"ln -sfn '{}' sub\"\noutputs = [\"sub/secret.txt\"]\n",
            outside.display()
        )
        .as_bytes(),
    );
    let out = sb.wf(&["run"], LIMIT);
    let leaked = files_containing(&sb.work.join(".wf"), SECRET.as_bytes());
    // Whatever the run said, `wf restore` must never write outside the workflow directory.
    fs::write(&secret, "changed since\n").expect("changing the outside file");
    let restore = sb.wf(&["restore", "1"], LIMIT);
    let after = fs::read_to_string(&secret).unwrap_or_default();
    fs::write(&secret, SECRET).expect("resetting");
    let _ = mtime;
    assert!(
        leaked.is_empty(),
        "the outside file was copied into .wf: {leaked:?}"
    );
    assert_eq!(
        after, "changed since\n",
        "`wf restore 1` (exit {}) wrote outside the workflow directory",
        restore.code
    );
    assert_eq!(
        out.code, 1,
        "the attempt should fail: {}{}",
        out.stdout, out.stderr
    );
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("sub/secret.txt"),
        "the failure should name the output"
    );
}

// ---------------------------------------------------------------------------------------------
// The state directory as a trust boundary: links, FIFOs and modes planted in `.wf`
// ---------------------------------------------------------------------------------------------
//
// Each case plants something inside `.wf` of a workflow that has run once (a checkpoint, a
// metric, an attempt log), then runs every writer and reader against it. Whatever wf answers —
// the expected exit code, or 0 where wf can go on without the planted name — a decoy tree outside
// the workflow directory (files named like the ones wf writes and deletes there) must be exactly
// as it was: same names, bytes, kinds and modes.

/// The workflow of the state cases: a checkpointed output, a metric and a log line.
const STATE_WF: &[u8] = b"[workflow]\nname = \"trust\"\n[task.a]\nrun = \"echo made > o.txt; echo rows=3 >> $WF_METRICS; echo logged\"\noutputs = [\"o.txt\"]\n";

/// The object hash of o.txt's content (`made\n`).
fn made_hash() -> String {
    blake3::hash(b"made\n").to_hex().to_string()
}

/// The decoy tree outside the workflow directory: a directory with files named like the ones wf
/// writes or deletes in `.wf` (an object, an attempt log, a lock, a temporary object, the engine
/// log), and a lone file.
fn decoy(sb: &Sandbox) -> PathBuf {
    let d = sb.root.join("home").join("decoy");
    fs::create_dir_all(&d).expect("creating the decoy");
    for name in [
        made_hash().as_str(),
        "a.1.log",
        "a.1.metrics",
        "lock",
        "12345.678",
        "wf.jsonl",
        "file",
    ] {
        fs::write(d.join(name), format!("decoy {name}\n")).expect("writing a decoy");
    }
    d
}

/// Every name under `dir` with its kind, mode and bytes (links not followed).
fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).to_path_buf();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let mode = m.permissions().mode();
            if m.is_dir() {
                out.insert(rel, format!("dir {mode:o}"));
                walk(base, &p, out);
            } else if m.file_type().is_symlink() {
                let to = fs::read_link(&p).unwrap_or_default();
                out.insert(rel, format!("link {}", to.display()));
            } else {
                let bytes = fs::read(&p).unwrap_or_default();
                out.insert(
                    rel,
                    format!("file {mode:o} {}", blake3::hash(&bytes).to_hex()),
                );
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A sandbox whose workflow has run once (run 1: `a` done with its checkpoint, metric and log).
fn state_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("wf.toml", STATE_WF);
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(out.code, 0, "the first run failed: {}", out.stderr);
    sb
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo")
        .arg(p)
        .status()
        .expect("running mkfifo");
    assert!(st.success(), "mkfifo {}", p.display());
}

fn replace_with_link(p: &Path, to: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).expect("removing a directory"),
        Ok(_) => fs::remove_file(p).expect("removing a file"),
        Err(_) => {}
    }
    std::os::unix::fs::symlink(to, p).expect("planting a link");
}

/// One planted thing: what it is, how to plant it (the `.wf` path, the decoy), and the exit code
/// every command must give (`None`: 0 or 5 — wf may go on without the planted name — but never
/// anything else).
struct Plant {
    name: &'static str,
    plant: fn(&Path, &Path),
    code: Option<i32>,
    /// What readers answer, when it differs from `code` (a planted name only writers use).
    readers: Option<i32>,
}

fn plants() -> Vec<Plant> {
    vec![
        Plant {
            name: "objects/tmp is a link to a directory outside",
            plant: |s, d| replace_with_link(&s.join("objects/tmp"), d),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "an object fan-out directory is a link outside",
            plant: |s, d| replace_with_link(&s.join("objects").join(&made_hash()[..2]), d),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "logs is a link outside",
            plant: |s, d| replace_with_link(&s.join("logs"), d),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "a run's log directory is a link outside",
            plant: |s, d| replace_with_link(&s.join("logs/1"), d),
            code: None,
            readers: None,
        },
        Plant {
            name: "an attempt's log is a link to a file outside",
            plant: |s, d| replace_with_link(&s.join("logs/1/a.1.log"), &d.join("a.1.log")),
            code: None,
            readers: None,
        },
        Plant {
            name: "an attempt's metrics file is a link to a file outside",
            plant: |s, d| replace_with_link(&s.join("logs/1/a.1.metrics"), &d.join("a.1.metrics")),
            code: None,
            readers: None,
        },
        Plant {
            name: "the engine log is a link to a file outside",
            plant: |s, d| replace_with_link(&s.join("logs/wf.jsonl"), &d.join("wf.jsonl")),
            code: None,
            readers: None,
        },
        Plant {
            name: "a stored object is a link to a file outside",
            plant: |s, d| {
                let h = made_hash();
                replace_with_link(&s.join("objects").join(&h[..2]).join(&h), &d.join(&h))
            },
            code: None,
            readers: None,
        },
        Plant {
            name: "lock is a link to a file outside",
            plant: |s, d| replace_with_link(&s.join("lock"), &d.join("lock")),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "lock is a FIFO",
            plant: |s, _| {
                let _ = fs::remove_file(s.join("lock"));
                mkfifo(&s.join("lock"));
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "live.jsonl is a link to a file outside",
            plant: |s, d| replace_with_link(&s.join("live.jsonl"), &d.join("file")),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "journal.log is a link to a copy outside",
            plant: |s, d| {
                fs::copy(s.join("journal.log"), d.join("journal.log")).expect("copying the log");
                replace_with_link(&s.join("journal.log"), &d.join("journal.log"))
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "VERSION is a link",
            plant: |s, d| {
                fs::copy(s.join("VERSION"), d.join("VERSION")).expect("copying VERSION");
                replace_with_link(&s.join("VERSION"), &d.join("VERSION"))
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "sled's db file is a link to a copy outside",
            plant: |s, d| {
                fs::copy(s.join("journal/db"), d.join("db")).expect("copying db");
                replace_with_link(&s.join("journal/db"), &d.join("db"))
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "the journal directory is a link to a copy outside",
            plant: |s, d| {
                let to = d.join("journal");
                Command::new("cp")
                    .arg("-a")
                    .arg(s.join("journal"))
                    .arg(&to)
                    .status()
                    .expect("cp -a");
                replace_with_link(&s.join("journal"), &to)
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "WORKFLOW is a link",
            plant: |s, d| replace_with_link(&s.join("WORKFLOW"), &d.join("file")),
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "an object fan-out directory is a FIFO",
            plant: |s, _| {
                let p = s.join("objects").join(&made_hash()[..2]);
                fs::remove_dir_all(&p).expect("removing the fan-out directory");
                mkfifo(&p);
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "objects/tmp is a regular file",
            plant: |s, _| {
                let _ = fs::remove_dir_all(s.join("objects/tmp"));
                fs::write(s.join("objects/tmp"), b"x").expect("writing objects/tmp");
            },
            code: Some(5),
            readers: None,
        },
        Plant {
            name: "lock is a hard link to a file outside",
            plant: |s, d| {
                let _ = fs::remove_file(s.join("lock"));
                fs::hard_link(d.join("lock"), s.join("lock")).expect("hard link");
            },
            code: Some(5),
            // Readers never write `lock`.
            readers: Some(0),
        },
        Plant {
            name: "the next run's attempt log is a link to a file outside",
            plant: |s, d| {
                fs::create_dir_all(s.join("logs/2")).expect("mkdir logs/2");
                std::os::unix::fs::symlink(d.join("a.1.log"), s.join("logs/2/a.1.log"))
                    .expect("link");
            },
            code: None,
            readers: None,
        },
        Plant {
            name: "the next run's attempt log is a hard link to a file outside",
            plant: |s, d| {
                fs::create_dir_all(s.join("logs/2")).expect("mkdir logs/2");
                fs::hard_link(d.join("a.1.log"), s.join("logs/2/a.1.log")).expect("hard link");
            },
            code: None,
            readers: None,
        },
        Plant {
            name: "the next run's metrics file is a hard link to a file outside",
            plant: |s, d| {
                fs::create_dir_all(s.join("logs/2")).expect("mkdir logs/2");
                fs::hard_link(d.join("a.1.metrics"), s.join("logs/2/a.1.metrics"))
                    .expect("hard link");
            },
            code: None,
            readers: None,
        },
        Plant {
            name: "the next run's log directory is a FIFO",
            plant: |s, _| mkfifo(&s.join("logs/2")),
            code: None,
            readers: None,
        },
        Plant {
            name: "objects/tmp holds a link and a FIFO",
            plant: |s, d| {
                fs::create_dir_all(s.join("objects/tmp")).expect("mkdir tmp");
                std::os::unix::fs::symlink(d.join("12345.678"), s.join("objects/tmp/12345.678"))
                    .expect("link");
                mkfifo(&s.join("objects/tmp/fifo"));
            },
            code: Some(0),
            readers: None,
        },
    ]
}

/// The commands each plant is tried with, in order (writers and readers).
const STATE_COMMANDS: [&[&str]; 8] = [
    &["run", "--force"],
    &["restore", "1"],
    &["gc", "--now", "+400d"],
    &["run"],
    &["status"],
    &["history"],
    &["history", "1"],
    &["logs", "1", "a"],
];

#[test]
fn links_and_fifos_planted_in_the_state_directory_never_reach_outside() {
    let mut problems = Vec::new();
    for p in plants() {
        let sb = state_sandbox();
        let decoy = decoy(&sb);
        (p.plant)(&sb.work.join(".wf"), &decoy);
        let before = tree(&decoy);
        assert!(!before.is_empty());
        for args in STATE_COMMANDS {
            let out = sb.wf(args, LIMIT);
            let readers = matches!(args[0], "status" | "history" | "logs");
            let code = if readers {
                p.readers.or(p.code)
            } else {
                p.code
            };
            let ok = match code {
                // A reader may have nothing to show after a refused writer (exit 2 for an unknown
                // run or attempt is an answer, not a failure).
                Some(c) => out.code == c || (readers && out.code == 2 && c == 0),
                None => [0, 2, 5].contains(&out.code),
            };
            if !ok {
                problems.push(format!(
                    "{}: `{}` exited {} (wanted {:?}): {}",
                    p.name,
                    out.what,
                    out.code,
                    p.code,
                    clip(&out.stderr)
                ));
            }
            if out.code == 5 && out.stderr.lines().filter(|l| !l.trim().is_empty()).count() != 1 {
                problems.push(format!(
                    "{}: `{}` refused in more than one line: {}",
                    p.name,
                    out.what,
                    clip(&out.stderr)
                ));
            }
            let after = tree(&decoy);
            if after != before {
                let changed: Vec<_> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .map(|(k, _)| k.display().to_string())
                    .chain(
                        before
                            .keys()
                            .filter(|k| !after.contains_key(*k))
                            .map(|k| format!("removed {}", k.display())),
                    )
                    .collect();
                problems.push(format!(
                    "{}: `{}` (exit {}) CHANGED THE DECOY OUTSIDE: {changed:?}",
                    p.name, out.what, out.code
                ));
                break;
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_refused_state_directory_is_left_exactly_as_it_was() {
    // Planted links are refused before the lock is taken: not one byte of `.wf` changes.
    for (what, rel) in [
        ("objects/tmp", "objects/tmp"),
        ("logs", "logs"),
        ("lock", "lock"),
    ] {
        let sb = state_sandbox();
        let decoy = decoy(&sb);
        let s = sb.work.join(".wf");
        replace_with_link(
            &s.join(rel),
            &decoy.join(if rel == "lock" { "lock" } else { "" }),
        );
        let before = tree(&s);
        for args in [&["run"][..], &["gc"], &["restore", "1"], &["status"]] {
            let out = sb.wf(args, LIMIT);
            assert_eq!(out.code, 5, "{what}: {}", out.stderr);
            assert!(out.stderr.contains(rel), "{what}: {}", out.stderr);
            assert_eq!(tree(&s), before, "{what}: `{}` changed .wf", out.what);
        }
    }
}

#[test]
fn restore_replaces_a_planted_link_and_never_writes_through_it() {
    let sb = state_sandbox();
    let (secret, mtime) = outside_secret(&sb);
    fs::remove_file(sb.work.join("o.txt")).expect("removing o.txt");
    std::os::unix::fs::symlink(&secret, sb.work.join("o.txt")).expect("planting a link");
    let out = sb.wf(&["restore", "1"], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_untouched(&secret, mtime);
    let m = fs::symlink_metadata(sb.work.join("o.txt")).expect("o.txt");
    assert!(m.is_file(), "o.txt is not a regular file after restore");
    assert_eq!(
        fs::read_to_string(sb.work.join("o.txt")).expect("o.txt"),
        "made\n"
    );
    // No temporary file is left beside it.
    let left: Vec<_> = fs::read_dir(&sb.work)
        .expect("listing")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("wf-restore"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A link on the way to an output is refused, and nothing is written outside.
    sb.write(
        "wf.toml",
        b"[workflow]\nname = \"trust\"\n[task.a]\nrun = \"mkdir -p d; echo made > d/o.txt\"\noutputs = [\"d/o.txt\"]\n",
    );
    assert_eq!(sb.wf(&["run"], LIMIT).code, 0);
    fs::remove_dir_all(sb.work.join("d")).expect("removing d");
    let outside = secret.parent().expect("parent").to_path_buf();
    std::os::unix::fs::symlink(&outside, sb.work.join("d")).expect("planting a link");
    let before = tree(&outside);
    let out = sb.wf(&["restore", "2"], LIMIT);
    assert_ne!(out.code, 0, "restore wrote through d: {}", out.stdout);
    assert_eq!(tree(&outside), before, "restore wrote outside");
}

#[test]
fn a_rotten_object_is_never_materialised() {
    let sb = state_sandbox();
    let h = made_hash();
    let obj = sb.work.join(".wf/objects").join(&h[..2]).join(&h);
    fs::write(&obj, b"rotten\n").expect("rotting the object");
    fs::remove_file(sb.work.join("o.txt")).expect("removing o.txt");
    // restore refuses, naming the object; nothing is put in place.
    let out = sb.wf(&["restore", "1"], LIMIT);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains(&h), "{}", out.stderr);
    assert!(
        !sb.work.join("o.txt").exists(),
        "a rotten object was restored"
    );
    // `wf state verify` names it.
    let out = sb.wf(&["state", "verify"], LIMIT);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains(&h) || out.stdout.contains(&h),
        "{}",
        out.stderr
    );
    // A cache hit on it becomes a miss: the task runs (and the store gets a good copy again).
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("damaged"), "no warning: {}", out.stdout);
    assert_eq!(
        fs::read_to_string(sb.work.join("o.txt")).expect("o.txt"),
        "made\n"
    );
    assert_eq!(status_of(&sb, "a")["cached"], false);
    assert_eq!(
        fs::read(&obj).expect("object"),
        b"made\n",
        "the object was not healed"
    );
    assert_eq!(sb.wf(&["state", "verify"], LIMIT).code, 0);
    // An object a checkpoint still needs, gone: verify names it too.
    fs::remove_file(&obj).expect("removing the object");
    let out = sb.wf(&["state", "verify"], LIMIT);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("missing") && out.stderr.contains(&h),
        "{}",
        out.stderr
    );
}

#[test]
fn a_state_of_another_workflow_is_refused_for_writes() {
    let a = state_sandbox();
    let b = Sandbox::new();
    b.write(
        "wf.toml",
        b"[workflow]\nname = \"other\"\n[task.g]\nmanual = true\nrun = \"true\"\n",
    );
    Command::new("cp")
        .arg("-a")
        .arg(a.work.join(".wf"))
        .arg(b.work.join(".wf"))
        .status()
        .expect("copying the state");
    let s = b.work.join(".wf");
    let before = tree(&s);
    for args in [&["run"][..], &["restore", "1"], &["gc"], &["resume"]] {
        let out = b.wf(args, LIMIT);
        assert_eq!(out.code, 5, "`{}`: {}", out.what, out.stderr);
        assert!(
            out.stderr.contains("`trust`") && out.stderr.contains("`other`"),
            "the refusal names both workflows: {}",
            out.stderr
        );
        assert!(out.stderr.contains("wf state adopt"), "{}", out.stderr);
        assert_eq!(tree(&s), before, "`{}` changed the refused state", out.what);
    }
    assert!(
        !b.work.join("o.txt").exists(),
        "the other project's files were restored"
    );
    // Readers still show it.
    assert_eq!(b.wf(&["history"], LIMIT).code, 0);
    // Approving a task that is not in this workflow is a usage error.
    let out = b.wf(&["approve", "a"], LIMIT);
    assert_eq!(out.code, 2, "{}", out.stderr);
    // The deliberate way through.
    let out = b.wf(&["state", "adopt"], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = b.wf(&["run"], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// Run wf under a given umask (through sh, which sets it).
fn wf_umask(sb: &Sandbox, umask: &str, args: &[&str]) -> i32 {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(WF)
        .args(args)
        .current_dir(&sb.work)
        .env("WF_USER", "tester")
        .env("HOME", sb.root.join("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.status().expect("running wf").code().unwrap_or(-1)
}

#[test]
fn state_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.write("wf.toml", STATE_WF);
    assert_eq!(wf_umask(&sb, "000", &["run"]), 0);
    assert_eq!(wf_umask(&sb, "000", &["run", "--force"]), 0);
    assert_eq!(wf_umask(&sb, "000", &["restore", "1"]), 0);
    assert_eq!(wf_umask(&sb, "000", &["gc", "--now", "+400d"]), 0);
    assert_eq!(wf_umask(&sb, "000", &["status"]), 0);
    let mut open = Vec::new();
    for (p, what) in tree(&sb.work.join(".wf")) {
        let mode = fs::symlink_metadata(sb.work.join(".wf").join(&p))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        if mode & 0o077 != 0 {
            open.push(format!("{} {mode:o} ({what})", p.display()));
        }
    }
    assert!(open.is_empty(), "not private under umask 000: {open:?}");
    // Tasks and restored outputs keep the user's umask: they are the workspace's, not wf's.
    let mode = fs::metadata(sb.work.join("o.txt"))
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    assert_eq!(mode, 0o666, "o.txt");
}

#[test]
fn a_group_writable_state_directory_is_warned_about_once() {
    use std::os::unix::fs::PermissionsExt;
    let sb = state_sandbox();
    fs::set_permissions(sb.work.join(".wf"), fs::Permissions::from_mode(0o777)).expect("chmod");
    for args in [&["status"][..], &["run"]] {
        let out = sb.wf(args, LIMIT);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.stderr.matches("writable by group or others").count(),
            1,
            "`{}`: {}",
            out.what,
            out.stderr
        );
    }
    fs::set_permissions(sb.work.join(".wf"), fs::Permissions::from_mode(0o700)).expect("chmod");
    let out = sb.wf(&["status"], LIMIT);
    assert!(!out.stderr.contains("writable"), "{}", out.stderr);
}

#[test]
fn an_old_state_without_an_identity_keeps_opening_and_is_adopted_by_its_first_writer() {
    let sb = Sandbox::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("state/tests/data/v1");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&fixture)
        .arg(sb.work.join(".wf"))
        .status()
        .expect("copying the fixture");
    assert!(st.success());
    assert!(!sb.work.join(".wf/WORKFLOW").exists());
    sb.write(
        "wf.toml",
        b"[workflow]\nname = \"homework\"\n[task.t]\nrun = \"true\"\n",
    );
    assert_eq!(sb.wf(&["history"], LIMIT).code, 0);
    assert!(
        !sb.work.join(".wf/WORKFLOW").exists(),
        "a reader recorded an identity"
    );
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = fs::read_to_string(sb.work.join(".wf/WORKFLOW")).expect("WORKFLOW");
    assert!(id.contains("\"homework\""), "{id}");
    // From now on it is this workflow's: another name is refused.
    sb.write(
        "wf.toml",
        b"[workflow]\nname = \"renamed\"\n[task.t]\nrun = \"true\"\n",
    );
    let out = sb.wf(&["run"], LIMIT);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("`homework`") && out.stderr.contains("`renamed`"));
    assert_eq!(sb.wf(&["state", "adopt"], LIMIT).code, 0);
    assert_eq!(sb.wf(&["run"], LIMIT).code, 0);
}
