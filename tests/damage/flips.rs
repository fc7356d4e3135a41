//! The byte-flip test: one byte flipped at spread positions of `VERSION`, the record log and
//! the index's files, each in a fresh copy; every answer is either the same or a refusal.

use super::*;

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
pub(super) fn scenario() -> (T, Vec<u64>) {
    let t = T::with(SCENARIO);
    t.ok(&["run"], 0);
    t.ok(&["approve", "gate", "--note", "looks fine"], 0);
    t.ok(&["run", "--force"], 1);
    // Fold both indexes' delta logs into tables, so that the state holds tables and, after the
    // commands that follow, delta logs with frames (each kind of index file is flipped).
    for dir in ["journal", "journal/detail"] {
        let mut kv = wf_state::journal::Kv::open(&t.state().join(dir)).expect("opening an index");
        kv.compact().expect("folding an index");
    }
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
pub(super) fn queries(runs: &[u64]) -> Vec<Vec<String>> {
    let mut q = vec![vec!["--json".to_string(), "history".to_string()]];
    for r in runs {
        q.push(vec!["--json".into(), "history".into(), r.to_string()]);
    }
    q.push(vec!["state".into(), "export".into()]);
    q
}

pub(super) fn ask(cwd: &Path, state: &Path, q: &[String]) -> Out {
    let mut args: Vec<&str> = vec!["--state-dir", state.to_str().expect("utf-8 path")];
    args.extend(q.iter().map(String::as_str));
    let mut out = wf_in(cwd, &args);
    out.stdout = answer(&args, &out.stdout);
    out
}

/// Bytes to flip: (offset, xor mask).
type Flips = Vec<(usize, u8)>;

/// ~24 positions spread over a file: start, end, evenly spaced, a few at random (fixed seed);
/// in a long run of zeros (a preallocated file) only its first, middle and last bytes,
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
    /// Identical answers after the index's files were rewritten (a damaged index set aside and
    /// rebuilt from the record log) or created (`journal/` removed).
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
    /// Remove `journal/` from each flipped copy, so that the index is rebuilt from the record log.
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
        // The index's files changed: a writer set it aside and rebuilt it, or folded it anew.
        let index = |h: &BTreeMap<PathBuf, String>| -> Vec<(PathBuf, String)> {
            h.iter()
                .filter(|(p, _)| is_index_log(p) || is_index_table(p))
                .map(|(p, h)| (p.clone(), h.clone()))
                .collect()
        };
        if index(&hashes(&copy, true)) != index(&flipped_index) {
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
                "{:<26} {:>6} bytes: {:>3} flips: {:>3} identical ({} with the index rewritten), {:>3} refused (exit 5), {} torn (the last record dropped), {} bad",
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

fn index_file(p: &Path, ext: &str) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.starts_with("journal") && name.starts_with("index.") && name.ends_with(ext)
}

/// The indexes' delta logs (`journal/index.G.log`, `journal/detail/index.G.log`).
fn is_index_log(p: &Path) -> bool {
    index_file(p, ".log")
}

/// The indexes' sorted tables.
fn is_index_table(p: &Path) -> bool {
    index_file(p, ".tbl")
}

/// The other files of `journal/` (the record log's verified note, the hash memo).
fn is_other_index_file(p: &Path) -> bool {
    p.starts_with("journal") && !is_index_log(p) && !is_index_table(p) && !p.ends_with("index.lock")
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

/// The index has applied the whole log: an open does not read it, so every flip is harmless. Spread
/// positions, and every field of the last frame (the one next to `m:logpos`).
#[test]
fn flipped_bytes_in_the_record_log_are_refused_or_harmless() {
    Sweep {
        label: "journal.log (index intact)",
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
fn flipped_bytes_in_the_index_logs_are_refused_or_harmless() {
    Sweep {
        label: "journal/**/index.G.log",
        pick: is_index_log,
        at: spread,
        without_index: false,
    }
    .run();
}

#[test]
fn flipped_bytes_in_the_index_tables_are_refused_or_harmless() {
    Sweep {
        label: "journal/**/index.N.tbl",
        pick: is_index_table,
        at: spread,
        without_index: false,
    }
    .run();
}

#[test]
fn flipped_bytes_in_the_other_index_files_are_refused_or_harmless() {
    Sweep {
        label: "journal/ (other files)",
        pick: is_other_index_file,
        at: spread,
        without_index: false,
    }
    .run();
}
