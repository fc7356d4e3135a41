//! `wf gc`: the retention sweeper. Each checkpoint expires at its creation time plus its task's
//! retention — the workflow file's current policy, else the one recorded with it. An expired
//! checkpoint is pruned (journaled in its run) unless it is one of its task's latest `keep_last`,
//! or its run is not finished. Attempt logs follow the same rules (`gc_logs`).
//!
//! Objects are mark-and-sweep: a first pass over the checkpoint index (newest first, each row
//! read in place, nothing copied out) decides every checkpoint once — a byte each, kept — and
//! marks the object of every checkpoint that stays; the logs are decided next; the second pass
//! reads again only the pages that have something due (checking each is the page pass 1
//! decided on), reports them and journals their prunes a page at a time, one `Pruned` record per
//! run (its checkpoints and its logs), unlinking those logs once journaled. Last, every object in
//! the store that nothing marks — those the prunes freed, and any left by a sweep or a run killed
//! midway — is deleted, and the deletions are made durable. So a sweep killed anywhere is
//! finished by the next one, and no reference count has to be kept up to date on every commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use wf_state::checkpoints::RowRef;
use wf_state::objects::Objects;
use wf_state::record::{PrunedCheckpoint, PrunedLog};
use wf_state::{Entry, RunId, Store};

use crate::cli::GcArgs;
use crate::command::gc_logs::{self, LogPlan};
use crate::context::Ctx;
use crate::engine;
use crate::error::{Error, Result};
use crate::render::console::Tone;
use crate::workflow::Workflow;

/// Checkpoints per page: bounds memory and the size of one journal batch.
const CHUNK: usize = 5000;

/// The checkpoints of a page: [`CHUNK`], or `WF_GC_PAGE` in a test build (the `failpoints`
/// feature), so tests sweep a small state in many pages.
fn page_rows() -> usize {
    #[cfg(feature = "failpoints")]
    if let Some(n) = std::env::var("WF_GC_PAGE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    CHUNK
}

/// `--now`: RFC 3339, or `+DURATION` from now.
pub fn parse_now(s: Option<&str>) -> Result<DateTime<Utc>> {
    let Some(s) = s else {
        return Ok(Utc::now());
    };
    if let Some(d) = s.strip_prefix('+') {
        let d = humantime::parse_duration(d.trim()).map_err(|e| {
            Error::Usage(format!(
                "--now `{s}`: `{d}` is not a duration like 8d or 12h ({e})"
            ))
        })?;
        return chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| Utc::now().checked_add_signed(d))
            .ok_or_else(|| Error::Usage(format!("--now `{s}` is too far in the future")));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Error::Usage(format!(
                "--now `{s}` is neither RFC 3339 (2026-12-01T06:00:00Z) nor +DURATION (+8d): {e}"
            ))
        })
}

/// One line of the sweep's report (`--json`: fields in this order, as documented), borrowing its
/// text from the row being reported.
#[derive(serde::Serialize)]
struct Row<'a> {
    action: &'static str,
    /// The attempt whose checkpoint or log this is.
    attempt: u32,
    bytes: u64,
    expired_at: &'a str,
    /// Null for `kept` (docs/json.md: absent values are null, never missing).
    frees: Option<u64>,
    /// Null for a log.
    hash: Option<&'a str>,
    /// `checkpoint` or `log`.
    kind: &'static str,
    path: &'a str,
    policy: &'a str,
    run: RunId,
    task: &'a str,
    /// Null unless `kept`.
    why: Option<&'static str>,
}

/// The report of a page of the sweep, built in one buffer and written at once: JSON Lines, or
/// the human lines (each a message with its tone and mark, painted and escaped by the console).
#[derive(Default)]
struct Report {
    json: bool,
    text: String,
    lines: Vec<(Tone, &'static str, std::ops::Range<usize>)>,
    scratch: Vec<u8>,
}

impl Report {
    fn add(&mut self, row: &Row<'_>) {
        use std::fmt::Write;
        if self.json {
            self.scratch.clear();
            if serde_json::to_writer(&mut self.scratch, row).is_err() {
                return;
            }
            let Ok(text) = std::str::from_utf8(&self.scratch) else {
                return;
            };
            self.text.push_str(&crate::safe::json(text));
            self.text.push('\n');
            return;
        }
        let kept = row.action == "kept";
        let at = self.text.len();
        let _ = write!(
            self.text,
            "{} run {} {} {}{} ({}, expired {})",
            row.action,
            row.run,
            row.task,
            if row.kind == "log" { "log " } else { "" },
            row.path,
            crate::render::fmt::bytes(row.bytes),
            row.expired_at
        );
        if let Some(why) = row.why {
            let _ = write!(self.text, " ({why})");
        }
        self.lines.push((
            if kept { Tone::Dim } else { Tone::Warn },
            if kept { "·" } else { "✂" },
            at..self.text.len(),
        ));
    }

    /// Write what was added since the last flush.
    fn flush(&mut self, out: &crate::render::console::Console) {
        if self.json {
            use std::io::Write;
            let mut w = std::io::stdout().lock();
            let _ = w.write_all(self.text.as_bytes()).and_then(|()| w.flush());
        } else {
            let text = &self.text;
            out.events(
                self.lines
                    .drain(..)
                    .map(|(tone, mark, r)| (tone, mark, text.get(r).unwrap_or_default())),
            );
        }
        self.text.clear();
        self.lines.clear();
    }
}

/// Hashing for sets of object hashes: they are BLAKE3 digests already, so their first eight bytes
/// are as good a hash as any, at no cost.
#[derive(Default, Clone, Copy)]
struct Digest(u64);

impl std::hash::Hasher for Digest {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// Marks are the first 64 bits of an object's hash: a set of a million is 16 MB, not 70. Two
/// objects sharing them (odds of about 1 in 2^44 over a million objects) can only make the sweep
/// keep an object it could have deleted — never delete one a checkpoint needs.
type Marks = HashSet<u64, std::hash::BuildHasherDefault<Digest>>;

/// An object's mark: the first 8 bytes of its hash (a valid object name: 64 hex digits).
fn key(hash: &str) -> Option<u64> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&hash[..16], 16).ok()
}

/// FNV-1a for the small string maps of the decisions (task and path names): SipHash was a tenth
/// of a large sweep.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type Names<V> = HashMap<String, V, std::hash::BuildHasherDefault<Fnv>>;

/// What the sweep does with one checkpoint: decided once, in pass 1, and kept for pass 2 (a
/// byte each: 1 MB per million checkpoints), so pass 2 neither decides again nor looks at the
/// checkpoints that are not due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Not expired, or already pruned: nothing to say.
    Skip,
    /// Expired but kept: its run is not finished.
    KeepActive,
    /// Expired but kept: one of its task's latest `keep_last`.
    KeepLast,
    Prune,
}

impl Decision {
    /// Why an expired checkpoint is kept (None: pruned, or not expired).
    fn why(self) -> Option<&'static str> {
        match self {
            Decision::KeepActive => Some("its run is not finished"),
            Decision::KeepLast => Some("latest checkpoint of its task (keep_last)"),
            Decision::Skip | Decision::Prune => None,
        }
    }
}

/// What the rules need of one task: the workflow file's policy for it (looked up once), and how
/// many checkpoints of each of its paths were seen so far, newest first. The task's and paths'
/// names are kept shared, for the prunes to name them without an allocation each.
struct TaskRules {
    name: Arc<str>,
    policy: Option<Duration>,
    paths: Names<(u32, Arc<str>)>,
}

/// The sweep's decisions: they depend only on the checkpoints, newest first, and on what was
/// decided before.
struct Rules<'a> {
    wf: Option<&'a Workflow>,
    now: DateTime<Utc>,
    active: HashSet<RunId>,
    keep_last: u32,
    /// Each task's rules, by name (an index into `tasks`).
    index: Names<usize>,
    tasks: Vec<TaskRules>,
}

impl Rules<'_> {
    /// The task's rules, looked up by reference: nothing is allocated for a task seen before.
    fn task(&mut self, task: &str) -> &mut TaskRules {
        let i = match self.index.get(task) {
            Some(&i) => i,
            None => {
                let policy = self.wf.and_then(|w| w.task(task)).map(|t| t.retention);
                self.tasks.push(TaskRules {
                    name: task.into(),
                    policy,
                    paths: Names::default(),
                });
                self.index.insert(task.to_string(), self.tasks.len() - 1);
                self.tasks.len() - 1
            }
        };
        &mut self.tasks[i]
    }

    /// The policy in force for a checkpoint (the workflow file's current one for its task, else
    /// the one recorded with it), and its task's and path's shared names.
    fn named(&mut self, c: &RowRef<'_>) -> (Duration, Arc<str>, Arc<str>) {
        let t = self.task(c.task);
        let path = match t.paths.get(c.path) {
            Some((_, p)) => p.clone(),
            None => c.path.into(),
        };
        let policy = t.policy.unwrap_or(Duration::from_secs(c.retention_secs));
        (policy, t.name.clone(), path)
    }

    /// Decide one checkpoint; called once for each, newest first.
    fn decide(&mut self, run: RunId, c: &RowRef<'_>) -> Decision {
        let (now, keep_last, active) = (self.now, self.keep_last, self.active.contains(&run));
        let t = self.task(c.task);
        let n = match t.paths.get_mut(c.path) {
            Some((n, _)) => {
                *n += 1;
                *n
            }
            None => {
                t.paths.insert(c.path.to_string(), (1, c.path.into()));
                1
            }
        };
        let policy = t.policy.unwrap_or(Duration::from_secs(c.retention_secs));
        if c.pruned.is_some() || engine::expiry(c.created_at, policy) > now {
            Decision::Skip
        } else if active {
            Decision::KeepActive
        } else if n <= keep_last {
            Decision::KeepLast
        } else {
            Decision::Prune
        }
    }
}

/// One page of the checkpoint index as pass 1 read it: where it starts (the `before` of
/// `checkpoints_visit`), how many rows it has and how many are due, and a fingerprint of the
/// places of its rows. Pass 2 reads only the pages with something due, and checks each is the
/// page pass 1 decided on before acting on it.
struct Page {
    before: Option<(RunId, u64)>,
    rows: usize,
    due: usize,
    places: u64,
}

/// A fingerprint of a sequence of checkpoint places (run, seq).
#[derive(Default)]
struct Places(u64);

impl Places {
    fn add(&mut self, run: RunId, seq: u64) {
        use std::hash::Hasher;
        let mut h = Fnv(self.0 ^ 0xcbf2_9ce4_8422_2325);
        h.write_u64(run);
        h.write_u64(seq);
        self.0 = h.finish();
    }
}

/// `t` as RFC 3339 to the millisecond, UTC (`2026-12-03T06:00:00.000Z`), appended to `out`:
/// what `to_rfc3339_opts(Millis, true)` writes, without its allocation per call.
fn push_time(out: &mut String, t: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    if (0..=9999).contains(&t.year()) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.timestamp_subsec_millis().min(999)
        );
    } else {
        out.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
}

struct Sweep {
    objects: Objects,
    state_dir: std::path::PathBuf,
    dry_run: bool,
    /// Objects of the checkpoints that stay (unpruned after this sweep).
    live: Marks,
    /// Objects this sweep counted as freed (each once).
    freed_set: Marks,
    /// The page's prunes, a group per run (a run's checkpoints are consecutive in a page).
    pending: Vec<(RunId, Vec<PrunedCheckpoint>)>,
    /// The logs to prune (decided before the checkpoints' pass 2): each run's go into the record
    /// of its checkpoints' prunes when it has some, the rest are journaled after.
    logs: LogPlan,
    /// Object directories with deletions not yet made durable.
    dirs: HashSet<std::path::PathBuf>,
    report: Report,
    /// Whether rows are reported (`--json`, or not `-q`): a quiet sweep builds none.
    report_rows: bool,
    /// The policies' texts (`7d`), each made once.
    policies: Vec<(Duration, Arc<str>)>,
    /// A row's expiry as text (reused).
    expired_at: String,
    pruned: u64,
    /// Bytes freed (or that would be) by checkpoints: their objects, and what a killed copy or
    /// sweep left in the store.
    freed: u64,
    kept: u64,
    logs_pruned: u64,
    logs_freed: u64,
}

impl Sweep {
    /// Report (and, pruning, stage) one checkpoint pass 1 decided is due.
    fn consider(
        &mut self,
        run: RunId,
        seq: u64,
        c: &RowRef<'_>,
        decision: Decision,
        (policy, task, path): (Duration, Arc<str>, Arc<str>),
    ) {
        let why = match decision {
            Decision::Skip => return,
            d => d.why(),
        };
        let p = match self.policies.iter().position(|(d, _)| *d == policy) {
            Some(p) => p,
            None => {
                self.policies
                    .push((policy, crate::render::fmt::policy(policy).into()));
                self.policies.len() - 1
            }
        };
        let frees = match why {
            Some(_) => {
                self.kept += 1;
                None
            }
            None => {
                // Freed when no checkpoint that stays shares the object (counted once).
                let frees = match key(c.hash) {
                    Some(k) if !self.live.contains(&k) && self.freed_set.insert(k) => c.bytes,
                    _ => 0,
                };
                self.pruned += 1;
                if self.dry_run {
                    self.freed += frees;
                }
                Some(frees)
            }
        };
        let policy_text = &self.policies[p].1;
        if self.report_rows {
            self.expired_at.clear();
            push_time(&mut self.expired_at, engine::expiry(c.created_at, policy));
            self.report.add(&Row {
                action: match (why, self.dry_run) {
                    (Some(_), _) => "kept",
                    (None, true) => "would_prune",
                    (None, false) => "pruned",
                },
                attempt: c.attempt,
                bytes: c.bytes,
                expired_at: &self.expired_at,
                frees,
                hash: Some(c.hash),
                kind: "checkpoint",
                path: c.path,
                policy: policy_text,
                run,
                task: c.task,
                why,
            });
        }
        if why.is_none() && !self.dry_run {
            let prune = PrunedCheckpoint {
                task,
                attempt: c.attempt,
                checkpoint_seq: seq,
                path,
                hash: c.hash.to_string(),
                bytes: c.bytes,
                policy: policy_text.clone(),
            };
            match self.pending.last_mut() {
                Some((r, group)) if *r == run => group.push(prune),
                _ => self.pending.push((run, vec![prune])),
            }
        }
    }

    fn delete(&mut self, hash: &str) -> Result<()> {
        let n = self.objects.remove(hash)?;
        if n > 0 {
            self.freed += n;
            if let Some(dir) = self
                .objects
                .path(hash)
                .and_then(|p| p.parent().map(Into::into))
            {
                self.dirs.insert(dir);
            }
        }
        Ok(())
    }

    /// Journal the page's prunes — one `Pruned` record per run, with the run's log prunes, all
    /// in one atomic batch — and unlink those logs; then report the page.
    fn flush(&mut self, store: &mut Store, out: &crate::render::console::Console) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        if !self.dry_run && !pending.is_empty() {
            let batch: Vec<(RunId, Vec<PrunedCheckpoint>, Vec<PrunedLog>)> = pending
                .into_iter()
                .map(|(run, cs)| {
                    let logs = self.logs.pending.remove(&run).unwrap_or_default();
                    (run, cs, logs)
                })
                .collect();
            // The objects they free are deleted by `finish`, with every other unmarked one.
            self.journal(store, batch)?;
        }
        self.report.flush(out);
        Ok(())
    }

    /// Journal a batch of `Pruned` records (durably), then unlink the logs they name.
    fn journal(
        &mut self,
        store: &mut Store,
        batch: Vec<(RunId, Vec<PrunedCheckpoint>, Vec<PrunedLog>)>,
    ) -> Result<()> {
        let mut logs = Vec::new();
        let entries = batch
            .into_iter()
            .map(|(run, checkpoints, l)| {
                logs.extend(l.iter().map(|l| (run, l.task.clone(), l.attempt)));
                (
                    run,
                    vec![Entry::Pruned {
                        checkpoints,
                        logs: l,
                    }],
                )
            })
            .collect();
        store.commit_many(entries)?;
        crate::crash::point("gc-after-prune");
        for (run, task, attempt) in logs {
            self.logs_freed += gc_logs::remove(&self.state_dir, run, &task, attempt);
        }
        Ok(())
    }

    /// Journal the log prunes not journaled with a run's checkpoints (a page of them at a time),
    /// unlink them and what an earlier sweep journaled but did not unlink; report the logs.
    fn finish_logs(
        &mut self,
        store: &mut Store,
        out: &crate::render::console::Console,
    ) -> Result<()> {
        if !self.dry_run {
            let pending = std::mem::take(&mut self.logs.pending);
            let mut batch = Vec::new();
            let mut n = 0;
            for (run, logs) in pending {
                n += logs.len();
                batch.push((run, Vec::new(), logs));
                if n >= CHUNK {
                    self.journal(store, std::mem::take(&mut batch))?;
                    n = 0;
                }
            }
            if !batch.is_empty() {
                self.journal(store, batch)?;
            }
            for (run, task, attempt) in std::mem::take(&mut self.logs.leftovers) {
                self.logs_freed += gc_logs::remove(&self.state_dir, run, &task, attempt);
            }
        }
        for l in std::mem::take(&mut self.logs.rows) {
            if l.why.is_some() {
                self.kept += 1;
            } else {
                self.logs_pruned += 1;
                if self.dry_run {
                    self.logs_freed += l.bytes;
                }
            }
            if self.report_rows {
                self.expired_at.clear();
                push_time(&mut self.expired_at, l.expired_at);
                let path = gc_logs::files(l.run, &l.task, l.attempt)[0]
                    .display()
                    .to_string();
                self.report.add(&Row {
                    action: match (l.why, self.dry_run) {
                        (Some(_), _) => "kept",
                        (None, true) => "would_prune",
                        (None, false) => "pruned",
                    },
                    attempt: l.attempt,
                    bytes: l.bytes,
                    expired_at: &self.expired_at,
                    frees: l.why.is_none().then_some(l.bytes),
                    hash: None,
                    kind: "log",
                    path: &path,
                    policy: &l.policy,
                    run: l.run,
                    task: &l.task,
                    why: l.why,
                });
            }
        }
        self.report.flush(out);
        Ok(())
    }

    /// Delete every object in the store that no staying checkpoint marks (what a sweep or a run
    /// killed midway left), then make all deletions durable.
    fn finish(&mut self) -> Result<()> {
        let mut orphans = Vec::new();
        self.objects.each(|hash| {
            if key(hash).is_some_and(|k| !self.live.contains(&k)) {
                orphans.push(hash.to_string());
            }
        })?;
        for hash in orphans {
            self.delete(&hash)?;
        }
        for dir in std::mem::take(&mut self.dirs) {
            if dir.is_dir() {
                wf_state::durable::sync_dir(&dir)?;
            }
        }
        Ok(())
    }
}

/// The index changed between the passes (it cannot while the lock is held: this is a bug).
fn changed() -> Error {
    Error::Internal(
        "the checkpoint index changed while wf gc ran, so nothing more was pruned; run wf gc \
         again"
            .into(),
    )
}

pub fn gc(ctx: &Ctx, args: &GcArgs) -> Result<i32> {
    // The policy in force is the workflow file's current one, when there is a workflow file.
    let wf: Option<Workflow> = match &ctx.file {
        Some(_) => Some(ctx.workflow()?),
        None => None,
    };
    let now = parse_now(args.now.as_deref())?;
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    if let Some(wf) = &wf {
        crate::engine::run::settle(ctx, wf, &mut store)?;
    }
    let objects = Objects::new(&ctx.state_dir);
    if !objects.is_safe() {
        return Err(Error::Usage(format!(
            "{} is a symbolic link; wf gc never deletes through links — make it a directory",
            objects.dir().display()
        )));
    }
    let mut rules = Rules {
        wf: wf.as_ref(),
        now,
        active: store.active_runs()?.iter().map(|r| r.id).collect(),
        keep_last: wf.as_ref().map_or(1, |w| w.keep_last),
        index: Names::default(),
        tasks: Vec::new(),
    };
    // Pass 1, the only one that reads every checkpoint: decide each (kept for pass 2) and mark
    // the object of every checkpoint that stays.
    let mut live = Marks::default();
    let mut decisions: Vec<Decision> = Vec::new();
    let mut pages: Vec<Page> = Vec::new();
    let page_rows = page_rows();
    let mut before: Option<(RunId, u64)> = None;
    loop {
        let mut page = Page {
            before,
            rows: 0,
            due: 0,
            places: 0,
        };
        let mut places = Places::default();
        let (n, last) = store.checkpoints_visit(before, page_rows, |run, seq, c| {
            let d = rules.decide(run, c);
            if d != Decision::Skip {
                page.due += 1;
            }
            if c.pruned.is_none() && d != Decision::Prune {
                if let Some(k) = key(c.hash) {
                    live.insert(k);
                }
            }
            places.add(run, seq);
            decisions.push(d);
            Ok::<(), Error>(())
        })?;
        let Some(last) = last else { break };
        page.rows = n;
        page.places = places.0;
        pages.push(page);
        before = Some(last);
    }
    let total = decisions.len() as u64;
    // The logs are decided before anything is journaled: each run's go with its checkpoints.
    let logs = gc_logs::plan(
        &store,
        &ctx.state_dir,
        wf.as_ref(),
        now,
        &rules.active,
        rules.keep_last,
    )?;
    let mut sweep = Sweep {
        objects,
        state_dir: ctx.state_dir.clone(),
        dry_run: args.dry_run,
        live,
        freed_set: Marks::default(),
        pending: Vec::new(),
        logs,
        dirs: HashSet::new(),
        report: Report {
            json: ctx.json,
            ..Report::default()
        },
        report_rows: ctx.json || !ctx.out.quiet,
        policies: Vec::new(),
        expired_at: String::new(),
        pruned: 0,
        freed: 0,
        kept: 0,
        logs_pruned: 0,
        logs_freed: 0,
    };
    if !args.dry_run {
        // What a copy into the store killed midway left in objects/tmp.
        sweep.freed += sweep.objects.clean_tmp()?;
    }
    // Pass 2: only the pages with something due, read again in place; pass 1's decisions are
    // reported and the prunes journaled a page at a time.
    let mut first = 0;
    for page in &pages {
        let decided = decisions
            .get(first..first + page.rows)
            .ok_or_else(changed)?;
        first += page.rows;
        if page.due == 0 {
            continue;
        }
        let mut places = Places::default();
        let mut i = 0;
        let (n, _) = store.checkpoints_visit(page.before, page_rows, |run, seq, c| {
            places.add(run, seq);
            let d = decided.get(i).copied().unwrap_or(Decision::Skip);
            i += 1;
            if d != Decision::Skip {
                sweep.consider(run, seq, c, d, rules.named(c));
            }
            Ok::<(), Error>(())
        })?;
        if n != page.rows || places.0 != page.places {
            return Err(changed());
        }
        sweep.flush(&mut store, &ctx.out)?;
    }
    sweep.finish_logs(&mut store, &ctx.out)?;
    if !args.dry_run {
        sweep.finish()?;
    }
    if !ctx.json {
        let verb = if args.dry_run {
            "would prune"
        } else {
            "pruned"
        };
        ctx.out.event(
            Tone::Good,
            "●",
            &format!(
                "{verb} {} checkpoint{} and {} log{}, {} {} ({} of checkpoints, {} of logs); kept {} \
                 expired; {} checkpoints considered (at {})",
                sweep.pruned,
                if sweep.pruned == 1 { "" } else { "s" },
                sweep.logs_pruned,
                if sweep.logs_pruned == 1 { "" } else { "s" },
                if args.dry_run { "would free" } else { "freed" },
                crate::render::fmt::bytes(sweep.freed + sweep.logs_freed),
                crate::render::fmt::bytes(sweep.freed),
                crate::render::fmt::bytes(sweep.logs_freed),
                sweep.kept,
                total,
                crate::render::fmt::local(now)
            ),
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
    }

    #[test]
    fn a_decision_is_a_byte() {
        assert_eq!(std::mem::size_of::<Decision>(), 1);
    }

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        for t in [
            at(0),
            at(1_764_720_000),
            Utc.timestamp_opt(1_764_720_000, 999_999_999)
                .single()
                .unwrap_or_default(),
            Utc.timestamp_opt(-62_135_596_800, 5_000_000)
                .single()
                .unwrap_or_default(),
            at(253_402_300_799),
            at(253_402_300_800),
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MIN_UTC,
        ] {
            let mut s = String::from("x");
            push_time(&mut s, t);
            assert_eq!(
                s,
                format!(
                    "x{}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                )
            );
        }
    }

    #[test]
    fn places_tell_an_order_from_another() {
        let mut a = Places::default();
        a.add(1, 2);
        a.add(3, 4);
        let mut b = Places::default();
        b.add(3, 4);
        b.add(1, 2);
        let mut c = Places::default();
        c.add(1, 2);
        assert_ne!(a.0, b.0);
        assert_ne!(a.0, c.0);
    }

    /// The rules as docs/retention.md states them, written the plain way: over the checkpoints
    /// newest first, count each task and path's checkpoints; an expired, unpruned one is kept when
    /// its run is not finished or it is among the latest `keep_last`, else pruned.
    fn reference(
        rows: &[(RunId, RowRef<'_>)],
        now: DateTime<Utc>,
        active: &HashSet<RunId>,
        keep_last: u32,
    ) -> Vec<Decision> {
        let mut seen: HashMap<(String, String), u32> = HashMap::new();
        rows.iter()
            .map(|(run, c)| {
                let n = seen.entry((c.task.into(), c.path.into())).or_insert(0);
                *n += 1;
                let expires = engine::expiry(c.created_at, Duration::from_secs(c.retention_secs));
                if c.pruned.is_some() || expires > now {
                    Decision::Skip
                } else if active.contains(run) {
                    Decision::KeepActive
                } else if *n <= keep_last {
                    Decision::KeepLast
                } else {
                    Decision::Prune
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn decided_once_as_the_rules_say(
            rows in prop::collection::vec(
                (0u64..6, 0usize..3, 0usize..2, 0i64..100, 1u64..50, any::<bool>()),
                0..200,
            ),
            active in prop::collection::hash_set(0u64..6, 0..3),
            keep_last in 0u32..3,
            now in 0i64..150,
        ) {
            let tasks = ["a", "b", "a.b"];
            let paths = ["out", "x/out"];
            let pruned = (at(0), "7d");
            let rows: Vec<(RunId, RowRef<'_>)> = rows
                .iter()
                .map(|&(run, t, p, created, retention, was_pruned)| {
                    (run, RowRef {
                        task: tasks[t],
                        attempt: 1,
                        path: paths[p],
                        hash: "ab",
                        bytes: 1,
                        created_at: at(created),
                        retention_secs: retention,
                        pruned: was_pruned.then_some(pruned),
                    })
                })
                .collect();
            let mut rules = Rules {
                wf: None,
                now: at(now),
                active: active.clone(),
                keep_last,
                index: Names::default(),
                tasks: Vec::new(),
            };
            let got: Vec<Decision> = rows.iter().map(|(run, c)| rules.decide(*run, c)).collect();
            prop_assert_eq!(got, reference(&rows, at(now), &active, keep_last));
        }
    }
}
