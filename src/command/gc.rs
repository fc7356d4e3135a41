//! `wf gc`: the retention sweeper. Each checkpoint expires at its creation time plus its task's
//! retention — the workflow file's current policy, else the one recorded with it. An expired
//! checkpoint is pruned (journaled in its run, its object deleted once no unpruned checkpoint
//! references it, its attempt's log removed) unless it is one of its task's latest `keep_last`, or
//! its run is not finished. Streams over the checkpoint index newest first; the journal is written
//! before any file is deleted, so a sweep killed midway is finished by the next one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use wf_state::checkpoints::Located;
use wf_state::objects::Objects;
use wf_state::{Entry, RunId, Store};

use crate::cli::GcArgs;
use crate::console::{self, Tone};
use crate::context::Ctx;
use crate::engine;
use crate::error::{Error, Result};
use crate::workflow::Workflow;

/// Prunes journaled per batch: bounds memory and the size of one sled batch.
const CHUNK: usize = 5000;
/// Lookups of reference counts after which a sweep reads them all in one pass.
const ALL_REFS_AFTER: usize = 20_000;

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
    bytes: u64,
    expired_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    frees: Option<u64>,
    hash: String,
    path: String,
    policy: String,
    run: RunId,
    task: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'static str>,
}

struct Sweep<'a> {
    store: &'a mut Store,
    objects: Objects,
    state_dir: std::path::PathBuf,
    dry_run: bool,
    /// References each object keeps after the prunes decided so far (since the last flush: the
    /// index has the rest).
    refs: HashMap<String, u64>,
    /// Whether `refs` holds every object's count (loaded in one pass for a large sweep).
    all_refs: bool,
    looked_up: usize,
    /// Objects the pending prunes leave unreferenced: deleted once the prunes are journaled.
    freed_now: Vec<String>,
    /// Object directories with deletions not yet made durable.
    dirs: HashSet<std::path::PathBuf>,
    pending: Vec<(RunId, Entry)>,
    rows: Vec<Row>,
    pruned: u64,
    freed: u64,
    kept: u64,
}

impl Sweep<'_> {
    /// Make the deletions durable, then let the index forget them.
    fn finish(&mut self) -> Result<()> {
        for dir in std::mem::take(&mut self.dirs) {
            if dir.is_dir() {
                wf_state::durable::sync_dir(&dir)?;
            }
        }
        self.store.forget_all_unreferenced()?;
        Ok(())
    }

    fn remaining(&mut self, hash: &str) -> Result<u64> {
        if let Some(n) = self.refs.get(hash) {
            return Ok(*n);
        }
        if self.all_refs {
            return Ok(0);
        }
        let n = self.store.references(hash)?;
        self.refs.insert(hash.to_string(), n);
        Ok(n)
    }

    /// Look up, a page at a time and each bucket once, the references of the objects this page
    /// may prune. Once a sweep has asked for many, it reads them all in one pass instead:
    /// thousands of lookups scattered over a large index cost more than reading it in order.
    fn prefetch(&mut self, hashes: Vec<&str>) -> Result<()> {
        if self.all_refs {
            return Ok(());
        }
        let want: Vec<&str> = hashes
            .into_iter()
            .filter(|h| !self.refs.contains_key(*h))
            .collect();
        self.looked_up += want.len();
        if self.looked_up > ALL_REFS_AFTER {
            // From here on this map is the sweep's count (it alone writes meanwhile): what the
            // index says, minus what this sweep has pruned.
            let mut all: HashMap<String, u64> = HashMap::new();
            self.store.all_references(|h, n| {
                all.insert(h, n);
            })?;
            if self.dry_run {
                for (h, n) in &self.refs {
                    all.insert(h.clone(), *n);
                }
            }
            self.refs = all;
            self.all_refs = true;
        } else if !want.is_empty() {
            let got = self.store.references_many(&want)?;
            self.refs.extend(got);
        }
        Ok(())
    }

    /// Journal the pending prunes (one atomic batch), then delete what they freed. The
    /// deletions are made durable (and the index forgets them) at the end of the sweep: a sweep
    /// killed before that is finished by the next one, which finds them still to delete.
    fn flush(&mut self, json: bool, out: &crate::console::Console) -> Result<()> {
        if !self.dry_run && !self.pending.is_empty() {
            let mut by_run: Vec<(RunId, Vec<Entry>)> = Vec::new();
            let mut at: HashMap<RunId, usize> = HashMap::new();
            let mut attempts = Vec::new();
            for (run, e) in std::mem::take(&mut self.pending) {
                if let Entry::Prune { task, attempt, .. } = &e {
                    attempts.push((run, task.clone(), *attempt));
                }
                let i = *at.entry(run).or_insert_with(|| {
                    by_run.push((run, Vec::new()));
                    by_run.len() - 1
                });
                by_run[i].1.push(e);
            }
            self.store.commit_many(by_run)?;
            engine::crash::point("gc-after-prune");
            for hash in std::mem::take(&mut self.freed_now) {
                self.freed += self.objects.remove(&hash)?;
                if let Some(dir) = self
                    .objects
                    .path(&hash)
                    .and_then(|p| p.parent().map(Into::into))
                {
                    self.dirs.insert(dir);
                }
            }
            // The index now counts these prunes (a map of all references keeps counting itself).
            if !self.all_refs {
                self.refs.clear();
            }
            let mut last_run = None;
            let mut has_logs = false;
            for (run, task, attempt) in attempts {
                if last_run != Some(run) {
                    last_run = Some(run);
                    let dir = self.state_dir.join("logs").join(run.to_string());
                    has_logs = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
                }
                if !has_logs {
                    continue;
                }
                for p in [
                    engine::log_path(&self.state_dir, run, &task, attempt),
                    engine::log_path(&self.state_dir, run, &task, attempt)
                        .with_extension("metrics"),
                ] {
                    // Only a regular file inside .wf/logs, never through a link.
                    if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                        let _ = std::fs::remove_file(&p);
                    }
                }
            }
        }
        // A dry run journals nothing.
        self.pending.clear();
        if json {
            use std::io::Write;
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
            for row in self.rows.drain(..) {
                if serde_json::to_writer(&mut w, &row).is_err() || w.write_all(b"\n").is_err() {
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
                        "{} run {} {} {} ({}, expired {}){why}",
                        row.action,
                        row.run,
                        row.task,
                        row.path,
                        console::bytes(row.bytes),
                        row.expired_at
                    ),
                )
            }));
        }
        self.rows.clear();
        Ok(())
    }

    /// Delete the objects no unpruned checkpoint references any more (also those a sweep killed
    /// midway left behind), then forget them.
    fn delete_unreferenced(&mut self) -> Result<()> {
        let mut done = Vec::new();
        for hash in self.store.unreferenced()? {
            if self.store.references(&hash)? == 0 {
                self.freed += self.objects.remove(&hash)?;
            }
            done.push(hash);
        }
        // The deletions are durable before the journal forgets them.
        self.objects.sync_removals(&done)?;
        self.store.forget_unreferenced(&done)?;
        Ok(())
    }

    fn consider(
        &mut self,
        c: Located,
        policy: Duration,
        now: DateTime<Utc>,
        keep: Option<&'static str>,
    ) -> Result<()> {
        let expires = engine::expiry(c.row.created_at, policy);
        if expires > now {
            return Ok(());
        }
        let policy_text = console::policy(policy);
        let mut row = Row {
            action: "kept",
            bytes: c.row.bytes,
            expired_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            frees: None,
            hash: c.row.hash.clone(),
            path: c.row.path.clone(),
            policy: policy_text.clone(),
            run: c.run,
            task: c.row.task.clone(),
            why: None,
        };
        if let Some(why) = keep {
            row.why = Some(why);
            self.kept += 1;
        } else {
            let left = self.remaining(&c.row.hash)?.saturating_sub(1);
            self.refs.insert(c.row.hash.clone(), left);
            let frees = if left == 0 { c.row.bytes } else { 0 };
            if left == 0 && !self.dry_run {
                self.freed_now.push(c.row.hash.clone());
            }
            row.action = if self.dry_run {
                "would_prune"
            } else {
                "pruned"
            };
            row.frees = Some(frees);
            self.pruned += 1;
            if self.dry_run {
                self.freed += frees;
            }
            self.pending.push((
                c.run,
                Entry::Prune {
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
        self.rows.push(row);
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
        crate::command::exec::settle(ctx, wf, &mut store)?;
    }
    let objects = Objects::new(&ctx.state_dir);
    if !objects.is_safe() {
        return Err(Error::Usage(format!(
            "{} is a symbolic link; wf gc never deletes through links — make it a directory",
            objects.dir().display()
        )));
    }
    let active: HashSet<RunId> = store.active_runs()?.iter().map(|r| r.id).collect();
    let keep_last = wf.as_ref().map_or(1, |w| w.keep_last);
    let mut sweep = Sweep {
        store: &mut store,
        objects,
        state_dir: ctx.state_dir.clone(),
        dry_run: args.dry_run,
        refs: HashMap::new(),
        freed_now: Vec::new(),
        dirs: HashSet::new(),
        all_refs: false,
        looked_up: 0,
        pending: Vec::new(),
        rows: Vec::new(),
        pruned: 0,
        freed: 0,
        kept: 0,
    };
    if !args.dry_run {
        // Finish what a sweep killed midway journaled but did not delete, and what a copy into
        // the store killed midway left in objects/tmp.
        sweep.delete_unreferenced()?;
        sweep.freed += sweep.objects.clean_tmp()?;
    }
    let mut seen: HashMap<(String, String), u32> = HashMap::new();
    let mut considered = 0u64;
    // Stream newest first, a page at a time; decisions are journaled after each page.
    let mut before: Option<(RunId, u64)> = None;
    loop {
        let batch = sweep.store.checkpoints_page(before, CHUNK)?;
        let Some(last) = batch.last() else {
            break;
        };
        before = Some((last.run, last.seq));
        let policy_of = |c: &Located| {
            wf.as_ref()
                .and_then(|w| w.task(&c.row.task))
                .map(|t| t.retention)
                .unwrap_or(Duration::from_secs(c.row.retention_secs))
        };
        sweep.prefetch(
            batch
                .iter()
                .filter(|c| {
                    c.row.pruned.is_none() && engine::expiry(c.row.created_at, policy_of(c)) <= now
                })
                .map(|c| c.row.hash.as_str())
                .collect(),
        )?;
        for c in batch {
            considered += 1;
            let key = (c.row.task.clone(), c.row.path.clone());
            let n = match seen.get_mut(&key) {
                Some(n) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.insert(key, 1);
                    1
                }
            };
            let latest = n <= keep_last;
            if c.row.pruned.is_some() {
                continue;
            }
            let policy = policy_of(&c);
            let keep = if active.contains(&c.run) {
                Some("its run is not finished")
            } else if latest {
                Some("latest checkpoint of its task (keep_last)")
            } else {
                None
            };
            sweep.consider(c, policy, now, keep)?;
        }
        sweep.flush(ctx.json, &ctx.out)?;
    }
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
                "{verb} {} checkpoint{}, {} {}; kept {} expired; {} checkpoints considered (at {})",
                sweep.pruned,
                if sweep.pruned == 1 { "" } else { "s" },
                if args.dry_run { "would free" } else { "freed" },
                console::bytes(sweep.freed),
                sweep.kept,
                considered,
                crate::command::status::local(now)
            ),
        );
    }
    Ok(0)
}
