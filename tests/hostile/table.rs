//! The table of hostile workflow files and the check every case goes through.

use super::*;

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
