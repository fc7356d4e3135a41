//! `wf gc`: the retention sweeper. Each checkpoint expires at its creation time plus its task's
//! retention — the workflow file's current policy, else the one recorded with it. An expired
//! checkpoint is pruned (journaled in its run) unless it is one of its task's latest `keep_last`,
//! or its run is not finished. Attempt logs follow the same rules (`gc_logs`).
//!
//! Objects are mark-and-sweep: a first pass over the checkpoint index (newest first) decides and
//! marks the object of every checkpoint that stays; the logs are decided next; the second pass
//! makes the same checkpoint decisions again and journals the prunes a page at a time, one
//! `Pruned` record per run (its checkpoints and its logs), unlinking those logs once journaled.
//! Last, every object in the store that nothing marks — those the prunes freed, and any left by
//! a sweep or a run killed midway — is deleted, and the deletions are made durable. So a sweep
//! killed anywhere is finished by the next one, and no reference count has to be kept up to date
//! on every commit.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use wf_state::checkpoints::Located;
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

/// One line of the sweep's report (`--json`: fields in this order, as documented).
#[derive(serde::Serialize)]
struct Row {
    action: &'static str,
    /// The attempt whose checkpoint or log this is.
    attempt: u32,
    bytes: u64,
    expired_at: String,
    /// Null for `kept` (docs/json.md: absent values are null, never missing).
    frees: Option<u64>,
    /// Null for a log.
    hash: Option<String>,
    /// `checkpoint` or `log`.
    kind: &'static str,
    path: String,
    policy: String,
    run: RunId,
    task: String,
    /// Null unless `kept`.
    why: Option<&'static str>,
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

/// What the sweep does with one checkpoint.
enum Decision {
    /// Not expired, or already pruned: nothing to say.
    Skip,
    /// Expired but kept, and why.
    Keep(&'static str),
    Prune,
}

/// The sweep's decisions, the same in both passes: they depend only on the checkpoints, in the
/// same order, and on what was decided before.
struct Rules<'a> {
    wf: Option<&'a Workflow>,
    now: DateTime<Utc>,
    active: HashSet<RunId>,
    keep_last: u32,
    /// How many checkpoints of each task and path were seen so far, newest first.
    seen: Names<Names<u32>>,
}

impl Rules<'_> {
    fn policy(&self, c: &Located) -> Duration {
        self.wf
            .and_then(|w| w.task(&c.row.task))
            .map(|t| t.retention)
            .unwrap_or(Duration::from_secs(c.row.retention_secs))
    }

    fn decide(&mut self, c: &Located) -> (Decision, Duration, DateTime<Utc>) {
        // Looked up by reference: no key is allocated for a checkpoint seen before.
        let n = match self
            .seen
            .get_mut(&c.row.task)
            .and_then(|paths| paths.get_mut(&c.row.path))
        {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                self.seen
                    .entry(c.row.task.clone())
                    .or_default()
                    .insert(c.row.path.clone(), 1);
                1
            }
        };
        let policy = self.policy(c);
        let expires = engine::expiry(c.row.created_at, policy);
        let decision = if c.row.pruned.is_some() || expires > self.now {
            Decision::Skip
        } else if self.active.contains(&c.run) {
            Decision::Keep("its run is not finished")
        } else if n <= self.keep_last {
            Decision::Keep("latest checkpoint of its task (keep_last)")
        } else {
            Decision::Prune
        };
        (decision, policy, expires)
    }

    /// Walk every checkpoint, newest first, a page at a time (pass 1).
    fn walk(
        &mut self,
        store: &Store,
        mut each: impl FnMut(Located, Decision) -> Result<()>,
    ) -> Result<()> {
        self.seen.clear();
        let mut before: Option<(RunId, u64)> = None;
        loop {
            let batch = store.checkpoints_page(before, CHUNK)?;
            let Some(last) = batch.last() else {
                break;
            };
            before = Some((last.run, last.seq));
            for c in batch {
                let (d, _, _) = self.decide(&c);
                each(c, d)?;
            }
        }
        Ok(())
    }
}

struct Sweep<'a> {
    store: &'a mut Store,
    objects: Objects,
    state_dir: std::path::PathBuf,
    dry_run: bool,
    /// Objects of the checkpoints that stay (unpruned after this sweep).
    live: Marks,
    /// Objects this sweep counted as freed (each once).
    freed_set: Marks,
    pending: Vec<(RunId, PrunedCheckpoint)>,
    /// The logs to prune (decided before the checkpoints' pass 2): each run's go into the record
    /// of its checkpoints' prunes when it has some, the rest are journaled after.
    logs: LogPlan,
    /// Object directories with deletions not yet made durable.
    dirs: HashSet<std::path::PathBuf>,
    rows: Vec<Row>,
    /// Whether rows are reported (`--json`, or not `-q`): a quiet sweep builds none.
    report_rows: bool,
    pruned: u64,
    /// Bytes freed (or that would be) by checkpoints: their objects, and what a killed copy or
    /// sweep left in the store.
    freed: u64,
    kept: u64,
    logs_pruned: u64,
    logs_freed: u64,
}

impl Sweep<'_> {
    fn consider(
        &mut self,
        c: Located,
        decision: Decision,
        policy: Duration,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        let why = match decision {
            Decision::Skip => return Ok(()),
            Decision::Keep(why) => Some(why),
            Decision::Prune => None,
        };
        let policy_text = crate::render::fmt::policy(policy);
        let frees = match why {
            Some(_) => {
                self.kept += 1;
                None
            }
            None => {
                // Freed when no checkpoint that stays shares the object (counted once).
                let frees = match key(&c.row.hash) {
                    Some(k) if !self.live.contains(&k) && self.freed_set.insert(k) => c.row.bytes,
                    _ => 0,
                };
                self.pruned += 1;
                if self.dry_run {
                    self.freed += frees;
                }
                Some(frees)
            }
        };
        if self.report_rows {
            self.rows.push(Row {
                action: match (why, self.dry_run) {
                    (Some(_), _) => "kept",
                    (None, true) => "would_prune",
                    (None, false) => "pruned",
                },
                attempt: c.row.attempt,
                bytes: c.row.bytes,
                expired_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                frees,
                hash: Some(c.row.hash.clone()),
                kind: "checkpoint",
                path: c.row.path.clone(),
                policy: policy_text.clone(),
                run: c.run,
                task: c.row.task.clone(),
                why,
            });
        }
        if why.is_none() && !self.dry_run {
            self.pending.push((
                c.run,
                PrunedCheckpoint {
                    task: c.row.task,
                    attempt: c.row.attempt,
                    checkpoint_seq: c.seq,
                    path: c.row.path,
                    hash: c.row.hash,
                    bytes: c.row.bytes,
                    policy: policy_text,
                },
            ));
        }
        Ok(())
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

    /// Journal the pending prunes — one `Pruned` record per run, with the run's log prunes, all
    /// in one atomic batch — and unlink those logs; then report the page.
    fn flush(&mut self, json: bool, out: &crate::render::console::Console) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        if !self.dry_run && !pending.is_empty() {
            let mut by_run: Vec<(RunId, Vec<PrunedCheckpoint>)> = Vec::new();
            let mut at: HashMap<RunId, usize> = HashMap::new();
            for (run, c) in pending {
                let i = *at.entry(run).or_insert_with(|| {
                    by_run.push((run, Vec::new()));
                    by_run.len() - 1
                });
                by_run[i].1.push(c);
            }
            let batch: Vec<(RunId, Vec<PrunedCheckpoint>, Vec<PrunedLog>)> = by_run
                .into_iter()
                .map(|(run, cs)| {
                    let logs = self.logs.pending.remove(&run).unwrap_or_default();
                    (run, cs, logs)
                })
                .collect();
            // The objects they free are deleted by `finish`, with every other unmarked one.
            self.journal(batch)?;
        }
        self.report(json, out);
        Ok(())
    }

    /// Journal a batch of `Pruned` records (durably), then unlink the logs they name.
    fn journal(
        &mut self,
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
        self.store.commit_many(entries)?;
        crate::crash::point("gc-after-prune");
        for (run, task, attempt) in logs {
            self.logs_freed += gc_logs::remove(&self.state_dir, run, &task, attempt);
        }
        Ok(())
    }

    /// Journal the log prunes not journaled with a run's checkpoints (a page of them at a time),
    /// unlink them and what an earlier sweep journaled but did not unlink; report the logs.
    fn finish_logs(&mut self, json: bool, out: &crate::render::console::Console) -> Result<()> {
        if !self.dry_run {
            let pending = std::mem::take(&mut self.logs.pending);
            let mut batch = Vec::new();
            let mut n = 0;
            for (run, logs) in pending {
                n += logs.len();
                batch.push((run, Vec::new(), logs));
                if n >= CHUNK {
                    self.journal(std::mem::take(&mut batch))?;
                    n = 0;
                }
            }
            if !batch.is_empty() {
                self.journal(batch)?;
            }
            for (run, task, attempt) in std::mem::take(&mut self.logs.leftovers) {
                self.logs_freed += gc_logs::remove(&self.state_dir, run, &task, attempt);
            }
        }
        for l in std::mem::take(&mut self.logs.rows) {
            let row = Row {
                action: match (l.why, self.dry_run) {
                    (Some(_), _) => "kept",
                    (None, true) => "would_prune",
                    (None, false) => "pruned",
                },
                attempt: l.attempt,
                bytes: l.bytes,
                expired_at: l
                    .expired_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                frees: l.why.is_none().then_some(l.bytes),
                hash: None,
                kind: "log",
                path: gc_logs::files(l.run, &l.task, l.attempt)[0]
                    .display()
                    .to_string(),
                policy: l.policy,
                run: l.run,
                task: l.task,
                why: l.why,
            };
            if l.why.is_some() {
                self.kept += 1;
            } else {
                self.logs_pruned += 1;
                if self.dry_run {
                    self.logs_freed += l.bytes;
                }
            }
            if self.report_rows {
                self.rows.push(row);
            }
        }
        self.report(json, out);
        Ok(())
    }

    fn report(&mut self, json: bool, out: &crate::render::console::Console) {
        if json {
            use std::io::Write;
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
            for row in self.rows.drain(..) {
                let Ok(text) = serde_json::to_string(&row) else {
                    break;
                };
                let text = crate::safe::json(&text);
                if w.write_all(text.as_bytes()).is_err() || w.write_all(b"\n").is_err() {
                    break;
                }
            }
            let _ = w.flush();
        } else {
            out.events(self.rows.drain(..).map(|row| {
                let why = row.why.map(|w| format!(" ({w})")).unwrap_or_default();
                let kept = row.action == "kept";
                (
                    if kept { Tone::Dim } else { Tone::Warn },
                    if kept { "·" } else { "✂" },
                    format!(
                        "{} run {} {} {}{} ({}, expired {}){why}",
                        row.action,
                        row.run,
                        row.task,
                        if row.kind == "log" { "log " } else { "" },
                        row.path,
                        crate::render::fmt::bytes(row.bytes),
                        row.expired_at
                    ),
                )
            }));
        }
        self.rows.clear();
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
        seen: Names::default(),
    };
    // Pass 1: mark the objects of every checkpoint that stays.
    let mut live = Marks::default();
    let (mut total, mut due) = (0u64, 0u64);
    rules.walk(&store, |c, d| {
        total += 1;
        if !matches!(d, Decision::Skip) {
            due += 1;
        }
        if c.row.pruned.is_none() && !matches!(d, Decision::Prune) {
            if let Some(k) = key(&c.row.hash) {
                live.insert(k);
            }
        }
        Ok(())
    })?;
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
        store: &mut store,
        objects,
        state_dir: ctx.state_dir.clone(),
        dry_run: args.dry_run,
        live,
        freed_set: Marks::default(),
        pending: Vec::new(),
        logs,
        dirs: HashSet::new(),
        rows: Vec::new(),
        report_rows: ctx.json || !ctx.out.quiet,
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
    // Pass 2: the same decisions, journaled and reported a page at a time.
    rules.seen.clear();
    let mut considered = 0u64;
    let mut before: Option<(RunId, u64)> = None;
    if due == 0 {
        // Nothing expired: nothing to journal or report, and pass 1 counted them all.
        considered = total;
    } else {
        loop {
            let page = sweep.store.checkpoints_page(before, CHUNK)?;
            let Some(last) = page.last() else {
                break;
            };
            before = Some((last.run, last.seq));
            for c in page {
                considered += 1;
                let (d, policy, expires) = rules.decide(&c);
                sweep.consider(c, d, policy, expires)?;
            }
            sweep.flush(ctx.json, &ctx.out)?;
        }
    }
    sweep.finish_logs(ctx.json, &ctx.out)?;
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
                considered,
                crate::render::fmt::local(now)
            ),
        );
    }
    Ok(0)
}
