use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn all(kv: &Kv, rev: bool) -> Result<Vec<Pair>, StateError> {
    kv.scan(b"", rev).collect()
}

fn expect(model: &Model, lo: &[u8], hi: Option<&[u8]>, rev: bool) -> Vec<Pair> {
    let mut v: Vec<Pair> = model
        .iter()
        .filter(|(k, _)| k.as_slice() >= lo && hi.is_none_or(|h| k.as_slice() < h))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if rev {
        v.reverse();
    }
    v
}

#[derive(Debug, Clone)]
enum Op {
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Fold,
    Reopen,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    // Few distinct keys (so batches overwrite and remove), some sharing prefixes, one 0xff run.
    prop_oneof![
        (0u8..40).prop_map(|i| vec![b'k', i]),
        (0u8..4, 0u8..4).prop_map(|(a, b)| vec![b'r', a, b]),
        Just(vec![0xff, 0xff]),
        Just(Vec::new()),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(
            (key(), prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..40))),
            1..6
        ).prop_map(Op::Batch),
        1 => Just(Op::Fold),
        1 => Just(Op::Reopen),
    ]
}

fn check(kv: &Kv, model: &Model) -> Result<(), TestCaseError> {
    let e = |e: StateError| TestCaseError::fail(e.to_string());
    prop_assert_eq!(all(kv, false).map_err(e)?, expect(model, b"", None, false));
    prop_assert_eq!(all(kv, true).map_err(e)?, expect(model, b"", None, true));
    for p in [&b"k"[..], b"r\x01", b"r", b"\xff", b"z"] {
        let hi = successor(p);
        let got: Vec<Pair> = kv.scan(p, false).collect::<Result<_, _>>().map_err(e)?;
        prop_assert_eq!(got, expect(model, p, hi.as_deref(), false));
        let got: Vec<Pair> = kv.scan(p, true).collect::<Result<_, _>>().map_err(e)?;
        prop_assert_eq!(got, expect(model, p, hi.as_deref(), true));
    }
    let got: Vec<Pair> = kv
        .range(b"k\x05", b"r\x02")
        .collect::<Result<_, _>>()
        .map_err(e)?;
    prop_assert_eq!(got, expect(model, b"k\x05", Some(b"r\x02"), false));
    let got: Vec<Pair> = kv
        .range_rev(b"k\x05", b"r\x02")
        .collect::<Result<_, _>>()
        .map_err(e)?;
    prop_assert_eq!(got, expect(model, b"k\x05", Some(b"r\x02"), true));
    for i in 0u8..40 {
        prop_assert_eq!(
            kv.get(&[b'k', i]).map_err(e)?,
            model.get(&vec![b'k', i]).cloned()
        );
    }
    prop_assert_eq!(kv.is_empty(), model.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any sequence of batches, folds and reopens reads back exactly as a plain ordered map, for
    /// the writer and for a reader opened beside it.
    #[test]
    fn the_index_reads_as_an_ordered_map(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let e = |e: StateError| TestCaseError::fail(e.to_string());
        let mut kv = Kv::open(dir.path()).map_err(e)?;
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::Batch(writes) => {
                    for (k, v) in &writes {
                        match v {
                            Some(v) => { model.insert(k.clone(), v.clone()); }
                            None => { model.remove(k); }
                        }
                    }
                    kv.commit(writes, false, false).map_err(e)?;
                }
                Op::Fold => kv.fold().map_err(e)?,
                Op::Reopen => {
                    drop(kv);
                    kv = Kv::open(dir.path()).map_err(e)?;
                }
            }
            check(&kv, &model)?;
            let reader = Kv::open_read(dir.path()).map_err(e)?;
            check(&reader, &model)?;
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    names(dir)
        .into_iter()
        .map(|n| {
            let b = std::fs::read(dir.join(&n)).unwrap_or_default();
            (n, b)
        })
        .collect()
}

#[test]
fn a_reader_writes_nothing_and_sees_every_committed_batch() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let mut w = Kv::open(dir.path())?;
    for i in 0u32..3000 {
        w.commit(
            vec![(i.to_be_bytes().to_vec(), Some(vec![7; 3000]))],
            false,
            false,
        )?;
    }
    // Folded at least once on the way (8 MiB), and a delta left.
    assert!(!w.tables.is_empty());
    let before = snapshot(dir.path());
    let r = Kv::open_read(dir.path())?;
    assert_eq!(r.scan(b"", false).count(), 3000);
    assert_eq!(r.get(&2999u32.to_be_bytes())?, Some(vec![7; 3000]));
    drop(r);
    assert_eq!(snapshot(dir.path()), before, "a reader changed the index");
    // A second writer is refused while the first holds the index; a reader is not.
    assert!(matches!(Kv::open(dir.path()), Err(StateError::Busy(_))));
    drop(w);
    // Closing folded the log into a table: a reader replays nothing.
    let r = Kv::open_read(dir.path())?;
    assert_eq!(r.log_bytes, 0);
    assert_eq!(r.scan(b"", true).count(), 3000);
    Ok(())
}

#[test]
fn a_torn_or_damaged_log_tail_ends_the_index_there() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let mut w = Kv::open(dir.path())?;
        w.commit(vec![(b"a".to_vec(), Some(b"1".to_vec()))], false, false)?;
        w.commit(vec![(b"b".to_vec(), Some(b"2".to_vec()))], false, false)?;
        // (no fold at close: the log is small)
    }
    let log = dir.path().join("index.1.log");
    let len = std::fs::metadata(&log)?.len();
    // Half of the last frame: a reader stops before it and leaves the file alone...
    let f = std::fs::OpenOptions::new().write(true).open(&log)?;
    f.set_len(len - 3)?;
    let r = Kv::open_read(dir.path())?;
    assert_eq!(r.get(b"a")?, Some(b"1".to_vec()));
    assert_eq!(r.get(b"b")?, None);
    assert_eq!(std::fs::metadata(&log)?.len(), len - 3);
    // ... a writer cuts it off and appends after the last sound frame.
    let mut w = Kv::open(dir.path())?;
    assert!(std::fs::metadata(&log)?.len() < len - 3);
    w.commit(vec![(b"c".to_vec(), Some(b"3".to_vec()))], false, false)?;
    drop(w);
    let r = Kv::open_read(dir.path())?;
    let got: Vec<Pair> = r.scan(b"", false).collect::<Result<_, _>>()?;
    assert_eq!(
        got,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"c".to_vec(), b"3".to_vec())
        ]
    );
    Ok(())
}

#[test]
fn damaged_or_newer_files_are_refused() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let mut w = Kv::open(dir.path())?;
        for i in 0u32..2000 {
            w.commit(
                vec![(i.to_be_bytes().to_vec(), Some(vec![1; 100]))],
                false,
                false,
            )?;
        }
        w.fold()?;
    }
    let tbl = names(dir.path())
        .into_iter()
        .find(|n| n.ends_with(".tbl"))
        .ok_or("no table")?;
    // A flipped byte inside a block: the table was written to since its generation recorded
    // it, so it is checked whole at open, and refused there.
    let mut bytes = std::fs::read(dir.path().join(&tbl))?;
    bytes[100] ^= 1;
    std::fs::write(dir.path().join(&tbl), &bytes)?;
    assert!(matches!(
        Kv::open_read(dir.path()),
        Err(StateError::Corrupt(_))
    ));
    assert!(matches!(Kv::open(dir.path()), Err(StateError::Corrupt(_))));
    bytes[100] ^= 1;
    // Put back as it was, it is checked whole again and accepted; a writer records it anew.
    std::fs::write(dir.path().join(&tbl), &bytes)?;
    assert_eq!(Kv::open_read(dir.path())?.scan(b"", false).count(), 2000);
    drop(Kv::open(dir.path())?);
    let tbl = names(dir.path())
        .into_iter()
        .find(|n| n.ends_with(".tbl"))
        .ok_or("no table")?;
    let log = names(dir.path())
        .into_iter()
        .find(|n| n.ends_with(".log"))
        .ok_or("no log")?;
    let bytes = std::fs::read(dir.path().join(&tbl))?;
    // A table cut short: refused at open.
    std::fs::write(dir.path().join(&tbl), &bytes[..bytes.len() - 1])?;
    assert!(matches!(
        Kv::open_read(dir.path()),
        Err(StateError::Corrupt(_))
    ));
    std::fs::write(dir.path().join(&tbl), &bytes)?;
    // A log from a newer wf.
    let mut lb = std::fs::read(dir.path().join(&log))?;
    lb[7] = delta::FORMAT + 1;
    std::fs::write(dir.path().join(&log), &lb)?;
    assert!(matches!(
        Kv::open_read(dir.path()),
        Err(StateError::Newer(_))
    ));
    assert!(matches!(Kv::open(dir.path()), Err(StateError::Newer(_))));
    // Garbage.
    std::fs::write(dir.path().join(&log), b"garbage garbage garbage")?;
    assert!(matches!(
        Kv::open_read(dir.path()),
        Err(StateError::Corrupt(_))
    ));
    Ok(())
}

#[test]
fn leftovers_of_an_interrupted_fold_are_ignored_then_removed(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let mut w = Kv::open(dir.path())?;
        w.commit(vec![(b"a".to_vec(), Some(b"1".to_vec()))], false, false)?;
    }
    // A table and a temporary file a crash left before the next generation's log was written.
    std::fs::write(dir.path().join("index.2.tbl"), b"half a table")?;
    std::fs::write(dir.path().join("index.tmp.0123456789abcdef"), b"x")?;
    let r = Kv::open_read(dir.path())?;
    assert_eq!(r.get(b"a")?, Some(b"1".to_vec()));
    drop(r);
    drop(Kv::open(dir.path())?);
    assert_eq!(names(dir.path()), vec!["index.1.log", "index.lock"]);
    Ok(())
}

#[test]
fn a_sled_index_is_recognised() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    assert!(!holds_sled(dir.path()));
    std::fs::write(dir.path().join("conf"), b"segment_size: 524288\n")?;
    std::fs::write(dir.path().join("db"), b"")?;
    assert!(holds_sled(dir.path()));
    Ok(())
}

/// Readers opening while a writer commits and folds in another thread always see one whole
/// generation: every batch up to the one they see, never an error.
#[test]
fn readers_beside_a_folding_writer_see_whole_batches() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_path_buf();
    let mut w = Kv::open(&path)?;
    w.commit(
        vec![(b"n".to_vec(), Some(0u32.to_be_bytes().to_vec()))],
        false,
        false,
    )?;
    let writer = std::thread::spawn(move || -> Result<(), String> {
        for i in 1u32..=300 {
            w.commit(
                vec![
                    (format!("k{i:05}").into_bytes(), Some(vec![i as u8; 64])),
                    (b"n".to_vec(), Some(i.to_be_bytes().to_vec())),
                ],
                false,
                false,
            )
            .map_err(|e| e.to_string())?;
            if i % 7 == 0 {
                w.fold().map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    });
    let mut seen = 0u32;
    while !writer.is_finished() || seen < 300 {
        let r = Kv::open_read(&path)?;
        let n = r
            .get(b"n")?
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map(u32::from_be_bytes)
            .ok_or("no n")?;
        assert!(n >= seen, "went back from {seen} to {n}");
        let keys = r.scan(b"k", false).count() as u32;
        assert_eq!(keys, n, "a reader saw {keys} keys with n = {n}");
        seen = n;
        if writer.is_finished() && seen < 300 {
            // The writer ended early: its error is below.
            break;
        }
    }
    writer.join().map_err(|_| "writer panicked")??;
    Ok(())
}

/// A planted delta log far larger than any wf writes (sparse here) is refused before it is
/// read into memory.
#[test]
fn a_huge_planted_log_is_refused_without_reading_it() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    drop(Kv::open(dir.path())?);
    let log = dir.path().join("index.1.log");
    let f = std::fs::OpenOptions::new().write(true).open(&log)?;
    f.set_len(3 << 30)?;
    assert!(matches!(
        Kv::open_read(dir.path()),
        Err(StateError::Corrupt(_))
    ));
    Ok(())
}
