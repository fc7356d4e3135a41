//! The index soak's hammer (issue #23): drives one index (`journal::Kv`) with the write pattern
//! that forms sled 0.34.7's segment-accountant / IO-pool deadlock — many batches rewriting the
//! same keys with no flush in between, so sealed buffers pile up on sled's IO queue while
//! rewritten segments are freed and the file's tail truncated — for a while, under a stall
//! detector. Exit 0: no stall; exit 3: a batch did not return within the stall time (the
//! threads' stacks are printed first, taken with gdb when it is installed).
//!
//! `cargo run --release -p wf-state --example index_hammer -- [--legacy] [--secs S] [--stall S]
//! [--keys N] [--value BYTES] [--batch N] --dir DIR` (`--legacy`: wf's sled settings before
//! issue #23). `benches/index_soak.sh` runs it many times.

use std::time::{Duration, Instant};

use wf_state::journal::{Kv, Tuning};
use wf_state::watchdog::Watchdog;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut legacy, mut secs, mut stall) = (false, 20u64, 10u64);
    let (mut keys, mut value, mut batch) = (20_000u32, 200usize, 50usize);
    let mut dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> Result<u64, Box<dyn std::error::Error>> {
            Ok(args
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{what} N"))?)
        };
        match a.as_str() {
            "--legacy" => legacy = true,
            "--secs" => secs = num("--secs")?,
            "--stall" => stall = num("--stall")?,
            "--keys" => keys = u32::try_from(num("--keys")?)?,
            "--value" => value = usize::try_from(num("--value")?)?,
            "--batch" => batch = usize::try_from(num("--batch")?)?,
            "--dir" => dir = args.next(),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let dir = std::path::PathBuf::from(dir.ok_or("--dir DIR is required")?);
    std::fs::create_dir_all(&dir)?;
    let tuning = if legacy {
        Tuning::legacy()
    } else {
        Tuning::default()
    };
    let kv = Kv::open_tuned(&dir, tuning)?;
    let dog = Watchdog::start(move |s| {
        eprintln!(
            "STALL: {} in {} did not return in {:?}",
            s.what,
            s.dir.display(),
            s.limit
        );
        let pid = std::process::id().to_string();
        if let Ok(out) = std::process::Command::new("gdb")
            .args(["-p", &pid, "-batch", "-ex", "thread apply all bt"])
            .output()
        {
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        }
        std::process::exit(3);
    })
    .ok_or("no watchdog thread")?;
    let shared: std::sync::Arc<std::path::Path> = std::sync::Arc::from(dir.as_path());
    let started = Instant::now();
    let (mut batches, mut i) = (0u64, 0u64);
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    while started.elapsed() < Duration::from_secs(secs) {
        let writes = (0..batch)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                i += 1;
                let k = (x % u64::from(keys.max(1))) as u32;
                (k.to_be_bytes().to_vec(), Some(vec![(i % 251) as u8; value]))
            })
            .collect();
        let _armed = dog.arm("a batch", &shared, Duration::from_secs(stall));
        kv.commit(writes, false, false)?;
        batches += 1;
    }
    println!(
        "{} batches of {batch} in {:.1}s ({}), no stall",
        batches,
        started.elapsed().as_secs_f64(),
        if legacy {
            "legacy settings"
        } else {
            "wf's settings"
        }
    );
    Ok(())
}
