//! Export and import round-trip the journal; refusals decided before the lock and before the index.

use super::flips::{ask, queries, scenario};
use super::*;

fn answers(cwd: &Path, state: &Path, qs: &[Vec<String>]) -> Vec<String> {
    qs.iter()
        .map(|q| {
            let out = ask(cwd, state, q);
            assert!(out.code == 0 && !out.panicked(), "{}", out.show());
            out.stdout
        })
        .collect()
}

#[test]
fn export_then_import_round_trips_the_journal() {
    let (t, runs) = scenario();
    let scratch = TempDir::new().expect("scratch dir");
    let export = scratch.path().join("export.jsonl");
    let out = t.ok(
        &["state", "export", "--out", export.to_str().expect("utf-8")],
        0,
    );
    assert!(out.stdout.contains("exported"), "{}", out.show());
    let text = fs::read_to_string(&export).expect("reading the export");
    for kind in [
        "Checkpoint",
        "Metric",
        "Approval",
        // A sweep's prunes: one `Pruned` record per run (older journals: a `Prune` each).
        "Pruned",
        "Alert",
        "Delivery",
        "RunResumed",
    ] {
        assert!(
            text.contains(&format!("\"entry\":{{\"{kind}\"")),
            "the export has no {kind} record"
        );
    }
    // The export to stdout is the same records.
    let stdout = t.ok(&["state", "export"], 0).stdout;
    assert_eq!(
        stdout.lines().skip(1).collect::<Vec<_>>(),
        text.lines().skip(1).collect::<Vec<_>>(),
        "`wf state export` and `--out` differ"
    );

    let fresh = scratch.path().join("new-state");
    let out = t.ok(
        &[
            "--state-dir",
            fresh.to_str().expect("utf-8"),
            "state",
            "import",
            export.to_str().expect("utf-8"),
        ],
        0,
    );
    assert!(out.stdout.contains("imported 3 runs"), "{}", out.show());
    // The export is in journal order (runs interleave: prunes of old runs come late), and so is
    // the imported record log — a rebuild or a partial replay applies it as it was journaled.
    let seqs: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("a JSON record")["seq"]
                .as_u64()
                .expect("a seq")
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let qs = queries(&runs);
    let original = answers(&t.root, &t.state(), &qs);
    let imported = answers(&t.root, &fresh, &qs);
    for ((q, a), b) in qs.iter().zip(&original).zip(&imported) {
        assert_eq!(a, b, "`wf {}` differs after export and import", q.join(" "));
    }
    // Its index rebuilt from its record log answers the same.
    let rebuilt = scratch.path().join("rebuilt");
    copy_dir(&fresh, &rebuilt, &[]);
    fs::remove_dir_all(rebuilt.join("journal")).expect("removing the index");
    assert_eq!(answers(&t.root, &rebuilt, &qs), imported);
    // And the imported state exports the same records again.
    let again = scratch.path().join("again.jsonl");
    t.ok(
        &[
            "--state-dir",
            fresh.to_str().expect("utf-8"),
            "state",
            "export",
            "--out",
            again.to_str().expect("utf-8"),
        ],
        0,
    );
    let again = fs::read_to_string(&again).expect("reading the second export");
    assert_eq!(
        again.lines().skip(1).collect::<Vec<_>>(),
        text.lines().skip(1).collect::<Vec<_>>()
    );

    // Importing into a state that already has runs is refused, and its runs are unchanged.
    let out = t.wf(&[
        "--state-dir",
        fresh.to_str().expect("utf-8"),
        "state",
        "import",
        export.to_str().expect("utf-8"),
    ]);
    assert!(
        out.code == 2 && !out.panicked() && out.lines() == 1,
        "{}",
        out.show()
    );
    assert!(out.stderr.contains("already holds runs"), "{}", out.show());
    assert_eq!(answers(&t.root, &fresh, &qs), imported);

    // An export in a newer format is refused.
    let newer = scratch.path().join("newer.jsonl");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut header: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON header");
    assert_eq!(header["wf_state_export"], 1, "{header}");
    header["wf_state_export"] = serde_json::json!(99);
    lines[0] = header.to_string();
    fs::write(&newer, lines.join("\n") + "\n").expect("writing the newer export");
    let other = scratch.path().join("other-state");
    let out = t.wf(&[
        "--state-dir",
        other.to_str().expect("utf-8"),
        "state",
        "import",
        newer.to_str().expect("utf-8"),
    ]);
    assert!(
        out.code == 2 && !out.panicked() && out.lines() == 1,
        "{}",
        out.show()
    );
    assert!(
        out.stderr
            .contains("export format 99 is newer than this wf reads"),
        "{}",
        out.show()
    );
    let listed = ask(&t.root, &other, &qs[0]);
    assert!(
        listed.code == 0 && listed.stdout.trim().is_empty(),
        "a refused import left runs behind: {}",
        listed.show()
    );
}

/// A writer refused for a foreign or newer state never creates `lock` there nor truncates one
/// that is there (the refusal is decided before the lock is taken).
#[test]
fn a_refusing_writer_never_creates_or_truncates_lock() {
    for (what, damage) in [
        ("foreign files", foreign_files as fn(&Path)),
        ("a newer VERSION", version_newer),
        ("an index without VERSION", index_without_version),
        ("a log damaged in its middle", log_frame_flipped),
    ] {
        for with_lock in [false, true] {
            let t = small_state();
            damage(&t.state());
            let lock = t.state().join("lock");
            if with_lock {
                write(lock.clone(), b"someone's bytes\n");
            } else {
                let _ = fs::remove_file(&lock);
            }
            for args in WRITERS {
                let out = t.wf(args);
                assert_eq!(out.code, 5, "{what}: {}", out.show());
                if with_lock {
                    assert_eq!(
                        fs::read(&lock).ok().as_deref(),
                        Some(&b"someone's bytes\n"[..]),
                        "{what}: `{}` changed lock",
                        out.what
                    );
                } else {
                    assert!(!lock.exists(), "{what}: `{}` created lock", out.what);
                }
            }
        }
    }
}

/// Damage that can be decided without the index is refused by readers before the index opens: not a
/// byte changes, `journal/` (the index's own files) included.
#[test]
fn readers_refuse_before_the_index_is_opened() {
    for (what, damage) in [
        (
            "a flipped byte in the log's middle",
            log_frame_flipped as fn(&Path),
        ),
        ("a flipped CRC in the log's middle", log_crc_flipped),
        ("the log cut in half", log_half),
        ("the log's last 5 bytes cut", log_cut_5),
        ("an empty log", log_empty),
        ("a missing log", log_missing),
        ("garbage for a log", log_garbage),
        ("a newer VERSION", version_newer),
        ("a damaged VERSION", version_garbage),
    ] {
        let t = small_state();
        damage(&t.state());
        let before = hashes(&t.state(), true);
        for args in READERS {
            let out = t.wf(args);
            assert_eq!(out.code, 5, "{what}: {}", out.show());
            let after = hashes(&t.state(), true);
            assert!(
                before == after,
                "{what}: `{}` changed the state (the index included): {:?}",
                out.what,
                diff(&before, &after)
            );
        }
    }
}
