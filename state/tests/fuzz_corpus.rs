//! Replays the committed fuzz corpus of the `record` target (fuzz/corpus/record) on stable, so CI
//! exercises what the fuzzer found without running a fuzzer.

use std::path::Path;

use chrono::{TimeZone, Utc};
use wf_state::codec;
use wf_state::{Entry, Reason, Record, TaskState};

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/record")
}

/// The same checks as fuzz/fuzz_targets/record.rs.
fn check(data: &[u8]) {
    if let Ok(r) = codec::decode_record(data) {
        assert_eq!(codec::decode_record(&codec::encode_record(&r)), Ok(r));
    }
    let _ = codec::decode_run(data);
    let _ = codec::decode_checkpoints(data);
    let _ = codec::decode_cache(data);
    let _ = codec::decode_tasks(data);
}

#[test]
fn replay_record_corpus() -> std::io::Result<()> {
    let mut n = 0;
    for e in std::fs::read_dir(corpus())? {
        check(&std::fs::read(e?.path())?);
        n += 1;
    }
    assert!(n >= 3, "the record corpus is missing");
    Ok(())
}

/// The machine target's corpus (fuzz/corpus/machine), and a sweep of generated inputs.
#[test]
fn replay_machine_corpus_and_a_sweep() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/machine");
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        wf_state::machine::fuzz_check(&std::fs::read(e?.path())?);
        n += 1;
    }
    assert!(n >= 2, "the machine corpus is missing");
    // A deterministic sweep: 2,000 pseudo-random inputs of up to 256 bytes.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for len in 0..2000usize {
        let bytes: Vec<u8> = (0..len % 257)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        wf_state::machine::fuzz_check(&bytes);
    }
    Ok(())
}

/// Seeds for the corpus: `cargo test -p wf-state --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes the seed corpus"]
fn write_seed_corpus() -> std::io::Result<()> {
    let at = Utc
        .timestamp_opt(1_800_000_000, 0)
        .single()
        .unwrap_or_default();
    let seeds = [
        Entry::Transition {
            task: "clean".into(),
            attempt: 2,
            from: TaskState::Running,
            to: TaskState::Failed,
            reason: Reason::Exit(3),
            exit_code: Some(3),
        },
        Entry::Checkpoint {
            task: "ingest".into(),
            attempt: 1,
            path: "data/raw.json".into(),
            hash: "ab".repeat(32),
            bytes: 2300,
            retention_secs: 7 * 86400,
            expires_at: at,
        },
        Entry::Approval {
            task: "report".into(),
            user: "ana".into(),
            note: Some("QA ok".into()),
        },
    ];
    std::fs::create_dir_all(corpus())?;
    for (i, entry) in seeds.into_iter().enumerate() {
        let r = Record {
            seq: i as u64 + 1,
            run: 1,
            at,
            entry,
        };
        std::fs::write(corpus().join(format!("seed{i}")), codec::encode_record(&r))?;
    }
    Ok(())
}
