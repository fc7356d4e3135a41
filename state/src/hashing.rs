//! BLAKE3 of large files at disk speed: a file's tree hashed on every core (each thread reads and
//! hashes its own subtrees; the chaining values are merged as BLAKE3's tree prescribes, so the
//! result is exactly `blake3::hash` of the bytes), and a copy into the object store that is hashed
//! while the kernel copies it and written back to the disk as it goes.

use std::fs::File;
use std::io::{Error, ErrorKind, Read, Result, Write};
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};

use blake3::hazmat::{left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, HasherExt};
use blake3::hazmat::{ChainingValue, Mode};

/// The subtree one thread hashes at a time (a power of two, a whole number of BLAKE3 chunks).
const LEAF: u64 = 4 << 20;
/// The most threads one hash uses.
const MAX_THREADS: usize = 8;
/// Bytes read per call.
const BUF: usize = 1 << 20;
/// What the kernel copies between two looks by the hasher (and the step of early write-back).
const STEP: u64 = 8 << 20;
/// Steps after its write-back started that a step's pages are let go of (written by then).
const DROP_AFTER: usize = 2;

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_THREADS)
}

fn changed() -> Error {
    Error::new(
        ErrorKind::UnexpectedEof,
        "the file got shorter while it was read",
    )
}

/// Feed `len` bytes of `f` from `off` to `hasher` (positioned reads: the file's offset is not
/// used, so threads can share it). A file shorter than that is an error.
fn feed(f: &File, off: u64, len: u64, hasher: &mut blake3::Hasher, buf: &mut [u8]) -> Result<()> {
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = match f.read_at(&mut buf[..want], off + done) {
            Ok(0) => return Err(changed()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}

/// The BLAKE3 hash (hex) of the first `len` bytes of `f`, on every core the process may use.
pub fn file(f: &File, len: u64) -> Result<String> {
    file_with(f, len, LEAF, threads())
}

/// [`file`] with a given subtree size (a power of two of at least one BLAKE3 chunk) and thread
/// count.
fn file_with(f: &File, len: u64, leaf: u64, threads: usize) -> Result<String> {
    debug_assert!(leaf.is_power_of_two() && leaf >= blake3::CHUNK_LEN as u64);
    let mut buf = vec![0u8; BUF.min(usize::try_from(len).unwrap_or(BUF).max(1))];
    if threads <= 1 || len <= leaf {
        let mut hasher = blake3::Hasher::new();
        feed(f, 0, len, &mut hasher, &mut buf)?;
        return Ok(hasher.finalize().to_hex().to_string());
    }
    let leaves = len.div_ceil(leaf);
    let cvs: Mutex<Vec<Option<ChainingValue>>> =
        Mutex::new(vec![None; usize::try_from(leaves).map_err(Error::other)?]);
    let next = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let work = |buf: &mut Vec<u8>| -> Result<()> {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= leaves || failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            let off = i * leaf;
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(off);
            if let Err(e) = feed(f, off, leaf.min(len - off), &mut hasher, buf) {
                failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
            let cv = hasher.finalize_non_root();
            cvs.lock().unwrap_or_else(|e| e.into_inner())[i as usize] = Some(cv);
        }
    };
    let helpers = threads.min(usize::try_from(leaves).unwrap_or(usize::MAX)) - 1;
    std::thread::scope(|s| -> Result<()> {
        // A helper that cannot be started leaves its share to the others (this thread included).
        let handles: Vec<_> = (0..helpers)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("wf-hash".into())
                    .spawn_scoped(s, || {
                        let mut buf = vec![0u8; BUF];
                        work(&mut buf)
                    })
                    .ok()
            })
            .collect();
        let mut result = work(&mut buf);
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(Error::other("a hashing thread failed")));
            result = result.and(r);
        }
        result
    })?;
    let cvs = cvs.into_inner().unwrap_or_else(|e| e.into_inner());
    // The tree above the leaves: a node of more than one leaf splits where BLAKE3 splits it
    // (its left subtree is the largest power of two below its length, a multiple of `leaf`).
    fn node(cvs: &[Option<ChainingValue>], leaf: u64, off: u64, len: u64) -> Result<ChainingValue> {
        if len <= leaf {
            return cvs
                .get((off / leaf) as usize)
                .copied()
                .flatten()
                .ok_or_else(|| Error::other("a subtree of the hash is missing; this is a bug"));
        }
        let left = left_subtree_len(len);
        Ok(merge_subtrees_non_root(
            &node(cvs, leaf, off, left)?,
            &node(cvs, leaf, off + left, len - left)?,
            Mode::Hash,
        ))
    }
    let left = left_subtree_len(len);
    let root = merge_subtrees_root(
        &node(&cvs, leaf, 0, left)?,
        &node(&cvs, leaf, left, len - left)?,
        Mode::Hash,
    );
    Ok(root.to_hex().to_string())
}

/// Start writing `len` bytes of `f` from `off` to the disk without waiting (`POSIX_FADV_DONTNEED`
/// starts write-back of dirty pages, and drops those already written: the store's copy is not
/// read again soon). Best effort: the final fsync is what makes the data durable.
fn write_behind(f: &File, off: u64, len: u64) {
    if let Some(len) = NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(f, off, Some(len), rustix::fs::Advice::DontNeed);
    }
}

/// How a copy into the store was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    /// By the kernel (`copy_file_range`).
    Kernel,
    /// Through wf's memory (`read`/`write`): the kernel offers no copy between these files.
    Memory,
}

/// Copy `input` (from its start) into the empty `out` and hash the copy while it is made: the
/// kernel copies (`copy_file_range`) a step at a time on this thread while another reads each
/// step back from `copy` (`out` opened for reading) and hashes it, then starts its write-back, so
/// that the final fsync has little left to wait for. What is hashed is the private copy itself,
/// so the hash names exactly what is stored, whatever happens to `input` meanwhile. Where the
/// kernel offers no copy (or no second thread can be started), the data goes through memory:
/// read once, hashed and written from one buffer. Returns the hash (hex), the bytes copied and
/// how.
///
/// At most `limit` bytes are copied (the output's size when it was opened): an output that
/// something keeps appending to is stored as it was then, and cannot keep wf copying forever.
pub fn copy_hashing(
    input: &File,
    out: &File,
    copy: &File,
    limit: u64,
) -> Result<(String, u64, Copied)> {
    let (tx, rx) = mpsc::channel::<u64>();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let hasher = std::thread::Builder::new()
            .name("wf-hash".into())
            .spawn_scoped(s, || hash_behind(rx, copy, &stop));
        let Ok(hasher) = hasher else {
            let (hash, n) = copy_through_memory(input, out, limit)?;
            return Ok((hash, n, Copied::Memory));
        };
        let copied = copy_steps(input, out, limit, &tx, &stop);
        drop(tx);
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err(Error::other("the hashing thread failed")));
        match copied? {
            Some(copied) => {
                let (hash, n) = hashed?;
                if n != copied {
                    return Err(Error::other(
                        "the copy and its hash disagree; this is a bug",
                    ));
                }
                Ok((hash, n, Copied::Kernel))
            }
            None => {
                hashed?;
                let (hash, n) = copy_through_memory(input, out, limit)?;
                Ok((hash, n, Copied::Memory))
            }
        }
    })
}

/// The hashing side of [`copy_hashing`]: each total the copier sends is hashed up to, from the
/// copy, then its write-back is started. On an error, `stop` tells the copier.
fn hash_behind(rx: mpsc::Receiver<u64>, copy: &File, stop: &AtomicBool) -> Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF];
    let mut done = 0u64;
    let mut started = std::collections::VecDeque::new();
    for end in rx {
        if let Err(e) = feed(copy, done, end - done, &mut hasher, &mut buf) {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
        write_behind(copy, done, end - done);
        started.push_back((done, end - done));
        if started.len() > DROP_AFTER {
            if let Some((at, len)) = started.pop_front() {
                write_behind(copy, at, len);
            }
        }
        done = end;
    }
    Ok((hasher.finalize().to_hex().to_string(), done))
}

/// The copying side of [`copy_hashing`]: `copy_file_range` from the input's start (whatever its
/// file offset), a step at a time, each new total sent to the hasher. None when the kernel
/// offers no copy between these files (nothing was copied).
fn copy_steps(
    input: &File,
    out: &File,
    limit: u64,
    tx: &mpsc::Sender<u64>,
    stop: &AtomicBool,
) -> Result<Option<u64>> {
    use rustix::io::Errno;
    let mut at = 0u64;
    let mut copied = 0u64;
    while copied < limit && !stop.load(Ordering::Relaxed) {
        let step = usize::try_from((limit - copied).min(STEP)).unwrap_or(STEP as usize);
        match rustix::fs::copy_file_range(input, Some(&mut at), out, None, step) {
            Ok(0) => break,
            Ok(n) => {
                copied += n as u64;
                // The hasher is gone only when it failed: its error is the one reported.
                if tx.send(copied).is_err() {
                    break;
                }
            }
            Err(Errno::INTR) => continue,
            // Not offered between these files (another filesystem, an old kernel, a special
            // file system): only before anything was copied is falling back possible.
            Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::PERM)
                if copied == 0 =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(copied))
}

/// Copy `input` (from its start, at most `limit` bytes) to `out` through one buffer, hashing
/// what went through, and start each step's write-back as it goes.
pub fn copy_through_memory(input: &File, mut out: &File, limit: u64) -> Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF];
    let mut bytes = 0u64;
    let mut behind = 0u64;
    let mut input_at = input;
    use std::io::Seek;
    input_at.seek(std::io::SeekFrom::Start(0))?;
    while bytes < limit {
        let want = usize::try_from(limit - bytes)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = match input_at.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        bytes += n as u64;
        if bytes - behind >= STEP {
            write_behind(out, behind, bytes - behind);
            behind = bytes;
        }
    }
    Ok((hasher.finalize().to_hex().to_string(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i * 31 % 253) as u8 ^ (i >> 11) as u8)
            .collect()
    }

    #[test]
    fn the_tree_hash_is_blake3_at_every_length(
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let chunk = blake3::CHUNK_LEN;
        // Around every boundary: chunks, leaves, powers of two of leaves, odd tails.
        let mut lens = vec![0, 1, chunk - 1, chunk, chunk + 1];
        for leaves in [1usize, 2, 3, 4, 5, 7, 8, 9, 16, 17] {
            for delta in [-1i64, 0, 1, 1023, 1025] {
                let l = (leaves * 2 * chunk) as i64 + delta;
                if l > 0 {
                    lens.push(l as usize);
                }
            }
        }
        for len in lens {
            let bytes = data(len);
            let p = d.path().join(format!("f{len}"));
            std::fs::write(&p, &bytes)?;
            let f = File::open(&p)?;
            let want = blake3::hash(&bytes).to_hex().to_string();
            for threads in [1, 2, 3, 8] {
                let got = file_with(&f, len as u64, 2 * chunk as u64, threads)?;
                assert_eq!(got, want, "len {len}, {threads} threads");
            }
            assert_eq!(file(&f, len as u64)?, want, "len {len}");
        }
        Ok(())
    }

    #[test]
    fn a_file_shorter_than_said_is_an_error_not_a_hash(
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let p = d.path().join("f");
        std::fs::write(&p, data(10_000))?;
        let f = File::open(&p)?;
        for threads in [1, 2] {
            assert!(file_with(&f, 20_000, 2048, threads).is_err());
        }
        Ok(())
    }

    #[test]
    fn a_copy_is_exact_and_hashed() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        for len in [0usize, 1, 5000, STEP as usize, STEP as usize * 2 + 12345] {
            let bytes = data(len);
            let src = d.path().join("src");
            std::fs::write(&src, &bytes)?;
            let dst = d.path().join("dst");
            let out = File::create(&dst)?;
            let copy = File::open(&dst)?;
            let (hash, n, _) = copy_hashing(&File::open(&src)?, &out, &copy, u64::MAX)?;
            assert_eq!(n, len as u64);
            assert_eq!(hash, blake3::hash(&bytes).to_hex().to_string());
            assert_eq!(std::fs::read(&dst)?, bytes);
            let out = File::create(&dst)?;
            let (hash2, n2) = copy_through_memory(&File::open(&src)?, &out, u64::MAX)?;
            assert_eq!((hash2, n2), (hash.clone(), n));
            assert_eq!(std::fs::read(&dst)?, bytes);
            // An input already read from (its offset moved) is still copied from its start.
            let mut input = File::open(&src)?;
            let mut some = [0u8; 100];
            let _ = input.read(&mut some)?;
            let out = File::create(&dst)?;
            let copy = File::open(&dst)?;
            assert_eq!(copy_hashing(&input, &out, &copy, u64::MAX)?.0, hash);
            assert_eq!(std::fs::read(&dst)?, bytes);
            // Never more than the limit (an output still growing is stored as it was opened).
            let cut = len / 3;
            for how in 0..2 {
                let out = File::create(&dst)?;
                let copy = File::open(&dst)?;
                let (h, n) = if how == 0 {
                    let (h, n, _) = copy_hashing(&input, &out, &copy, cut as u64)?;
                    (h, n)
                } else {
                    copy_through_memory(&input, &out, cut as u64)?
                };
                assert_eq!(n, cut as u64);
                assert_eq!(h, blake3::hash(&bytes[..cut]).to_hex().to_string());
                assert_eq!(std::fs::read(&dst)?, &bytes[..cut]);
            }
        }
        Ok(())
    }
}
