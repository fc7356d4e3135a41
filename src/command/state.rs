//! `wf state export` / `wf state import`: the whole journal as versioned JSON lines, to back it
//! up, inspect it with ordinary tools, or move it to a new state directory (record for record:
//! same sequence numbers, times and ids; indexes rebuilt and checked against the state machine).

use std::io::{BufRead, BufReader, Write};

use serde_json::json;
use wf_state::{Record, Store};

use crate::cli::StateAction;
use crate::context::{Ctx, Reader};
use crate::error::{Error, Result};
use crate::render::console::Tone;

/// The export format; an import refuses a newer one.
const FORMAT: u64 = 1;

pub fn state(ctx: &Ctx, action: &StateAction) -> Result<i32> {
    match action {
        StateAction::Export { out } => export(ctx, out.as_deref()),
        StateAction::Import { file } => import(ctx, file),
        StateAction::Verify => verify(ctx),
        StateAction::Adopt => adopt(ctx),
    }
}

fn export(ctx: &Ctx, out: Option<&std::path::Path>) -> Result<i32> {
    let reader = ctx.read()?;
    let store: &Store = match &reader {
        Reader::Store(s) => s,
        Reader::Empty => {
            return Err(Error::Usage(format!(
                "there is no state in {} to export",
                ctx.state_dir.display()
            )))
        }
        Reader::Log { .. } => {
            return Err(Error::disk_full(
                &ctx.state_dir,
                "opening the journal index to export it".into(),
                None,
            ))
        }
        Reader::Live { holder, .. } => {
            return Err(Error::Locked(format!(
                "the state is in use by `{}` (pid {}); export it when that ends",
                holder.command, holder.pid
            )))
        }
    };
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(Error::io("creating the export", p))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let io = Error::io(
        "writing the export",
        out.map_or("stdout".into(), |p| p.display().to_string()),
    );
    let header = json!({
        "wf_state_export": FORMAT,
        "schema": wf_state::store::SCHEMA,
        "exported_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let mut n = 0u64;
    // A state that cannot be read is the state's error (exit 5), not the sink's.
    let mut unreadable = None;
    let result = (|| -> std::io::Result<()> {
        writeln!(sink, "{header}")?;
        let fail = |e: wf_state::StateError, slot: &mut Option<wf_state::StateError>| {
            let msg = e.to_string();
            *slot = Some(e);
            std::io::Error::other(msg)
        };
        // The record log, in journal order: an import replays it in the same order.
        let mut write_err = None;
        store
            .each_record(|rec| {
                let written = serde_json::to_writer(&mut sink, &rec)
                    .map_err(std::io::Error::from)
                    .and_then(|_| sink.write_all(b"\n"));
                match written {
                    Ok(()) => {
                        n += 1;
                        Ok(())
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        write_err = Some(e);
                        Err(wf_state::StateError::Corrupt(msg))
                    }
                }
            })
            .map_err(|e| match write_err.take() {
                Some(io) => io,
                None => fail(e, &mut unreadable),
            })?;
        sink.flush()
    })();
    if let Some(e) = unreadable {
        return Err(e.into());
    }
    match result {
        // A closed pipe (`wf state export | head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
        r => r.map_err(io)?,
    }
    if out.is_some() {
        ctx.out
            .event(Tone::Good, "●", &format!("exported {n} records"));
    }
    Ok(0)
}

fn import(ctx: &Ctx, file: &std::path::Path) -> Result<i32> {
    let input: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(file).map_err(Error::io("reading the export", file))?,
        ))
    };
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    if store.latest_run()?.is_some() {
        return Err(Error::Usage(format!(
            "{} already holds runs; import into a new state directory (--state-dir NEW)",
            ctx.state_dir.display()
        )));
    }
    let bad =
        |line: usize, why: String| Error::Usage(format!("{} line {line}: {why}", file.display()));
    let mut lines = input.lines().enumerate();
    let header: serde_json::Value = match lines.next() {
        Some((_, Ok(l))) => serde_json::from_str(&l).map_err(|e| bad(1, e.to_string()))?,
        _ => return Err(bad(1, "empty, not a wf state export".into())),
    };
    match header["wf_state_export"].as_u64() {
        Some(v) if v <= FORMAT => {}
        Some(v) => {
            return Err(bad(
                1,
                format!("export format {v} is newer than this wf reads ({FORMAT}); upgrade wf"),
            ))
        }
        None => return Err(bad(1, "not a wf state export (no header)".into())),
    }
    let mut batch: Vec<Record> = Vec::new();
    let mut runs = std::collections::HashSet::new();
    let mut records = 0u64;
    for (i, line) in lines {
        let line = line.map_err(Error::io("reading the export", file))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(&line).map_err(|e| bad(i + 1, e.to_string()))?;
        if batch.first().is_some_and(|f| f.run != rec.run) {
            store.import_run(std::mem::take(&mut batch))?;
        }
        runs.insert(rec.run);
        records += 1;
        batch.push(rec);
    }
    if !batch.is_empty() {
        store.import_run(batch)?;
    }
    let runs = runs.len();
    ctx.out.event(
        Tone::Good,
        "●",
        &format!(
            "imported {runs} runs ({records} records) into {}",
            ctx.state_dir.display()
        ),
    );
    Ok(0)
}

/// `wf state verify`: every frame of the record log (CRC), every record decoded, every object
/// re-hashed. Reads only; exit 5 naming what is damaged.
fn verify(ctx: &Ctx) -> Result<i32> {
    let reader = ctx.read()?;
    let store: &Store = match &reader {
        Reader::Store(s) => s,
        Reader::Empty => {
            return Err(Error::Usage(format!(
                "there is no state in {} to verify",
                ctx.state_dir.display()
            )))
        }
        Reader::Live { holder, .. } => {
            return Err(Error::Locked(format!(
                "the state is in use by `{}` (pid {}); verify it when that ends",
                holder.command, holder.pid
            )))
        }
        Reader::Log { .. } => {
            return Err(Error::Internal(format!(
            "the index of {} cannot be opened (is the disk full?); free some space, then verify",
            ctx.state_dir.display()
        )))
        }
    };
    let log = ctx.state_dir.join("journal.log");
    wf_state::wal::verify(&log)?;
    let mut records = 0u64;
    store.each_record(|_| {
        records += 1;
        Ok(())
    })?;
    let objects = wf_state::objects::Objects::new(&ctx.state_dir);
    let mut count = 0u64;
    let mut bytes = 0u64;
    let bad = objects.verify(|n| {
        count += 1;
        bytes += n;
    })?;
    // Every checkpoint not pruned must have its object (a restore or a cache hit needs it).
    let mut missing: Vec<(String, String)> = Vec::new();
    let mut named = std::collections::HashSet::new();
    let mut rows = 0u64;
    let mut before = None;
    loop {
        let page = store.checkpoints_page(before, 4096)?;
        let Some(last) = page.last() else {
            break;
        };
        before = Some((last.run, last.seq));
        for c in page {
            rows += 1;
            if c.row.pruned.is_none()
                && !objects.has(&c.row.hash)
                && named.insert(c.row.hash.clone())
            {
                missing.push((
                    c.row.hash.clone(),
                    format!(
                        "is missing (checkpoint {} of `{}` in run {}, not pruned)",
                        c.row.path, c.row.task, c.run
                    ),
                ));
            }
        }
    }
    let mut bad = bad;
    bad.extend(missing);
    for (hash, why) in &bad {
        ctx.out
            .event(Tone::Bad, "✗", &format!("object {hash}: {why}"));
    }
    if let Some((hash, why)) = bad.first() {
        return Err(Error::State(wf_state::StateError::Corrupt(format!(
            "{} of the objects in {} are damaged or missing (the first, {hash}: {why}); wf never restores them — a task whose checkpoint it was runs again; remove damaged ones, or restore the state directory from a backup",
            bad.len(),
            objects.dir().display()
        ))));
    }
    ctx.out.event(
        Tone::Good,
        "✓",
        &format!(
            "{} is sound: {records} records, {count} objects ({bytes} bytes), {rows} checkpoints verified",
            ctx.state_dir.display()
        ),
    );
    Ok(0)
}

/// `wf state adopt`: record the current workflow as the one this state belongs to.
fn adopt(ctx: &Ctx) -> Result<i32> {
    let (name, dir) = ctx.identity();
    let Some(name) = name else {
        return Err(Error::Usage(format!(
            "no workflow file loads in {}; `wf state adopt` records the workflow the state belongs to, so it needs one",
            dir.display()
        )));
    };
    let _lock = ctx.lock_adopting()?;
    drop(ctx.open_write()?);
    let old = ctx.record_identity(true)?;
    let was = match old {
        Some(o) if o.name != name || o.dir != dir => {
            format!(" (it belonged to `{}` in {})", o.name, o.dir.display())
        }
        _ => String::new(),
    };
    ctx.out.event(
        Tone::Good,
        "●",
        &format!(
            "{} now belongs to workflow `{name}` in {}{was}",
            ctx.state_dir.display(),
            dir.display()
        ),
    );
    Ok(0)
}
