//! Query and sweep costs at scale, in one process, against a state directory written by the
//! `synth` example: open, the latest 20 runs (`wf history`), one run's timeline (`wf history RUN`),
//! the latest run's tasks (`wf status`), a sweep over every checkpoint row (what `wf gc` reads),
//! and — with `--rebuild` — a full replay of the record log into a fresh index (what happens when
//! the index is lost or was built by an older wf). Median of R rounds; sizes on disk.
//!
//! `cargo run --release -p wf-state --example scale -- DIR [R] [--rebuild]`
//! (DIR: the directory given to `synth --out`.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wf_state::{Access, StateError, Store};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Open, retrying while a previous handle of this process still holds the index's lock.
fn open(root: &Path, access: Access) -> Res<Store> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(root, access) {
            Ok(Some(s)) => return Ok(s),
            Ok(None) => return Err(format!("no state in {}", root.display()).into()),
            Err(StateError::Busy(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn size(p: &Path) -> u64 {
    match std::fs::read_dir(p) {
        Ok(rd) => rd.flatten().map(|e| size(&e.path())).sum(),
        Err(_) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
    }
}

/// Time `f` (which opens the store itself) R times; milliseconds, median.
fn time(rounds: usize, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    let mut v = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(v))
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: scale DIR [R] [--rebuild]")?);
    let mut rounds = 5;
    let mut rebuild = false;
    for a in args {
        match a.as_str() {
            "--rebuild" => rebuild = true,
            n => rounds = n.parse().map_err(|_| format!("not a round count: {n}"))?,
        }
    }
    let root = dir.join(".wf");
    // A first open warms the page cache; not what is measured.
    drop(open(&root, Access::Read)?);
    let (runs, middle) = {
        let s = open(&root, Access::Read)?;
        let latest = s.latest_run()?.ok_or("no runs")?.id;
        (latest, latest / 2 + 1)
    };
    println!(
        "state {}: {runs} runs; record log {:.1} MB, index {:.1} MB; median of {rounds}",
        root.display(),
        size(&root.join("journal.log")) as f64 / 1e6,
        size(&root.join("journal")) as f64 / 1e6
    );
    let ms = time(rounds, || {
        drop(open(&root, Access::Read)?);
        Ok(())
    })?;
    println!("open + close                      {ms:9.1} ms");
    let ms = time(rounds, || {
        let s = open(&root, Access::Read)?;
        let n = s.runs().take(20).collect::<Result<Vec<_>, _>>()?.len();
        assert_eq!(n, 20.min(runs as usize));
        Ok(())
    })?;
    println!("latest 20 runs (wf history)       {ms:9.1} ms");
    let ms = time(rounds, || {
        let s = open(&root, Access::Read)?;
        let records = s.records(middle)?;
        let checkpoints = s.checkpoints(middle)?;
        assert!(!records.is_empty() && !checkpoints.is_empty());
        Ok(())
    })?;
    println!("run {middle}'s timeline (wf history RUN) {ms:6.1} ms");
    let ms = time(rounds, || {
        let mut s = open(&root, Access::Read)?;
        let latest = s.latest_run()?.ok_or("no runs")?.id;
        s.snapshot(latest)?.ok_or("no snapshot")?;
        Ok(())
    })?;
    println!("latest run's tasks (wf status)    {ms:9.1} ms");
    let mut rows = 0;
    let ms = time(rounds.min(3), || {
        let s = open(&root, Access::Read)?;
        rows = 0;
        let mut before = None;
        loop {
            let page = s.checkpoints_page(before, 5000)?;
            let Some(last) = page.last() else { break };
            before = Some((last.run, last.seq));
            rows += page.len();
        }
        Ok(())
    })?;
    println!("every checkpoint row ({rows})    {ms:9.1} ms");
    if rebuild {
        let copy = dir.join("rebuild");
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy)?;
        for f in ["VERSION", "journal.log"] {
            std::fs::copy(root.join(f), copy.join(f))?;
        }
        let t = Instant::now();
        drop(open(&copy, Access::Write)?);
        println!(
            "index rebuilt from the log        {:9.1} ms ({:.1} MB index)",
            t.elapsed().as_secs_f64() * 1000.0,
            size(&copy.join("journal")) as f64 / 1e6
        );
        std::fs::remove_dir_all(&copy)?;
    }
    Ok(())
}
