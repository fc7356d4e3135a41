//! What a task prints, held in fixed memory whatever its size: the attempt's log capped at its
//! task's `log_limit` (the first half and the last half kept, the middle dropped and counted), and
//! the end of its output for failure messages as a ring of bytes (a line of 10 GB is never held).
//!
//! The log is written in place: the head sequentially, then the tail as a ring over the second
//! half of the file; when the attempt ends, the ring is turned back into order (`finish`) with a
//! fixed buffer, so the file reads head, then tail. What was dropped is journaled with the
//! attempt (`Entry::Usage`), and `wf logs` marks the cut.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The block size of the log's in-place rotation.
const BLOCK: usize = 64 * 1024;
/// How much of the end of the output is kept for failure messages.
pub const TAIL_BYTES: usize = 4096;
/// A line of the failure tail is cut to this many characters.
const TAIL_LINE_CHARS: usize = 300;

/// An attempt's log file, capped: `limit` bytes at most, the first `limit / 2` of the output and
/// the last `limit - limit / 2`.
pub struct CappedLog {
    root: PathBuf,
    rel: PathBuf,
    /// Opened at the first byte of output (an attempt that prints nothing has no log file).
    file: Option<File>,
    head: u64,
    ring: u64,
    /// Bytes of output seen.
    printed: u64,
}

/// How the log of an ended attempt was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cut {
    pub printed: u64,
    /// Bytes of the head kept (all of it when nothing was dropped).
    pub head: u64,
    pub dropped: u64,
}

impl CappedLog {
    /// The log at `root/rel` (below the state directory, opened without following links).
    pub fn new(root: &Path, rel: &Path, limit: u64) -> CappedLog {
        let limit = limit.max(2);
        CappedLog {
            root: root.to_path_buf(),
            rel: rel.to_path_buf(),
            file: None,
            head: limit / 2,
            ring: limit - limit / 2,
            printed: 0,
        }
    }

    fn file(&mut self) -> std::io::Result<&File> {
        if self.file.is_none() {
            let f = wf_state::safe::open(&self.root, &self.rel, wf_state::safe::How::Update)?;
            // A log of the same name left by a wf that died before its attempt was journaled.
            f.set_len(0)?;
            self.file = Some(f);
        }
        self.file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the log file could not be opened"))
    }

    /// Store `bytes`, the next output of the attempt.
    pub fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let (head, ring) = (self.head, self.ring);
        let mut printed = self.printed;
        let file = self.file()?;
        if printed < head {
            let n = bytes
                .len()
                .min(usize::try_from(head - printed).unwrap_or(usize::MAX));
            file.write_all_at(&bytes[..n], printed)?;
            printed += n as u64;
            bytes = &bytes[n..];
        }
        // Past the head, only the last `ring` bytes can be kept: skip what would be overwritten
        // in this same call anyway.
        if bytes.len() as u64 > ring {
            let skip = bytes.len() - ring as usize;
            printed += skip as u64;
            bytes = &bytes[skip..];
        }
        while !bytes.is_empty() {
            let at = (printed - head) % ring;
            let n = bytes.len().min((ring - at) as usize);
            file.write_all_at(&bytes[..n], head + at)?;
            printed += n as u64;
            bytes = &bytes[n..];
        }
        self.printed = printed;
        Ok(())
    }

    /// Count output that is not stored (the log failed earlier): the figures stay true.
    pub fn skip(&mut self, n: usize) {
        self.printed += n as u64;
    }

    /// The attempt ended: put the tail in order (when it wrapped) and say how the log was cut.
    pub fn finish(&mut self) -> std::io::Result<Cut> {
        let limit = self.head + self.ring;
        if self.printed <= limit {
            return Ok(Cut {
                printed: self.printed,
                head: self.printed,
                dropped: 0,
            });
        }
        let start = (self.printed - self.head) % self.ring;
        let (head, ring) = (self.head, self.ring);
        if start != 0 {
            if let Some(f) = &self.file {
                rotate_left(f, head, ring, start)?;
            }
        }
        Ok(Cut {
            printed: self.printed,
            head: self.head,
            dropped: self.printed - limit,
        })
    }

    pub fn printed(&self) -> u64 {
        self.printed
    }
}

/// Rotate the `len` bytes at `base` of `f` left by `by` (three reversals, a block at a time).
fn rotate_left(f: &File, base: u64, len: u64, by: u64) -> std::io::Result<()> {
    reverse(f, base, base + by)?;
    reverse(f, base + by, base + len)?;
    reverse(f, base, base + len)
}

/// Reverse the bytes of `f` in `[from, to)` with fixed buffers.
fn reverse(f: &File, mut from: u64, mut to: u64) -> std::io::Result<()> {
    // `a` also takes the middle that is left (less than two blocks).
    let mut a = vec![0u8; 2 * BLOCK];
    let mut b = vec![0u8; BLOCK];
    while to - from >= 2 * BLOCK as u64 {
        let a = &mut a[..BLOCK];
        f.read_exact_at(a, from)?;
        f.read_exact_at(&mut b, to - BLOCK as u64)?;
        a.reverse();
        b.reverse();
        f.write_all_at(&b, from)?;
        f.write_all_at(a, to - BLOCK as u64)?;
        from += BLOCK as u64;
        to -= BLOCK as u64;
    }
    let n = (to - from) as usize;
    let mid = &mut a[..n];
    f.read_exact_at(mid, from)?;
    mid.reverse();
    f.write_all_at(mid, from)
}

/// The last `TAIL_BYTES` of an attempt's output (both streams, in the order read).
#[derive(Default)]
pub struct Tail {
    bytes: VecDeque<u8>,
    /// Whether bytes before the first kept one were dropped (its first line may be partial).
    cut: bool,
}

impl Tail {
    pub fn push(&mut self, data: &[u8]) {
        let data = if data.len() > TAIL_BYTES {
            self.cut = true;
            self.bytes.clear();
            &data[data.len() - TAIL_BYTES..]
        } else {
            data
        };
        let over = (self.bytes.len() + data.len()).saturating_sub(TAIL_BYTES);
        if over > 0 {
            self.cut = true;
            self.bytes.drain(..over);
        }
        self.bytes.extend(data);
    }

    /// The last `n` non-empty lines, as text safe to store (each cut to a few hundred characters;
    /// a first line that began before the kept bytes starts with `…`).
    pub fn lines(&self, n: usize) -> Vec<String> {
        let (a, b) = self.bytes.as_slices();
        let all: Vec<u8> = [a, b].concat();
        let mut lines: Vec<String> = Vec::new();
        for (i, raw) in all.split(|c| *c == b'\n').enumerate() {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = String::from_utf8_lossy(raw);
            let mut line: String = text.chars().take(TAIL_LINE_CHARS).collect();
            if text.chars().count() > TAIL_LINE_CHARS {
                line.push('…');
            }
            if i == 0 && self.cut {
                line.insert(0, '…');
            }
            lines.push(line);
        }
        let skip = lines.len().saturating_sub(n);
        lines.split_off(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capped(limit: u64, chunks: &[&[u8]]) -> (Vec<u8>, Cut) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = CappedLog::new(dir.path(), Path::new("a.log"), limit);
        for c in chunks {
            log.write(c).expect("write");
        }
        let cut = log.finish().expect("finish");
        let bytes = std::fs::read(dir.path().join("a.log")).unwrap_or_default();
        (bytes, cut)
    }

    /// What the log must hold: the first half and the last half of the output.
    fn expected(all: &[u8], limit: usize) -> Vec<u8> {
        if all.len() <= limit {
            return all.to_vec();
        }
        let head = limit / 2;
        let tail = limit - head;
        [&all[..head], &all[all.len() - tail..]].concat()
    }

    #[test]
    fn small_output_is_kept_whole() {
        let (bytes, cut) = capped(100, &[b"hello\n", b"world\n"]);
        assert_eq!(bytes, b"hello\nworld\n");
        assert_eq!(
            cut,
            Cut {
                printed: 12,
                head: 12,
                dropped: 0
            }
        );
    }

    #[test]
    fn nothing_printed_makes_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = CappedLog::new(dir.path(), Path::new("a.log"), 100);
        assert_eq!(log.finish().expect("finish").printed, 0);
        assert!(!dir.path().join("a.log").exists());
    }

    #[test]
    fn head_and_tail_are_kept_in_order_for_every_chunking() {
        let all: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        for limit in [2usize, 3, 64, 101, 1000, 4999, 5000, 6000] {
            for chunk in [1usize, 7, 64, 333, 1000, 5000] {
                let parts: Vec<&[u8]> = all.chunks(chunk).collect();
                let (bytes, cut) = capped(limit as u64, &parts);
                assert_eq!(bytes, expected(&all, limit), "limit {limit} chunk {chunk}");
                assert_eq!(cut.printed, 5000);
                assert_eq!(cut.dropped, 5000u64.saturating_sub(limit as u64));
                if cut.dropped > 0 {
                    assert_eq!(cut.head, (limit / 2) as u64);
                }
            }
        }
    }

    #[test]
    fn rotation_crosses_blocks() {
        // A ring larger than two rotation blocks, wrapped at an odd place.
        let limit = 6 * BLOCK + 10;
        let all: Vec<u8> = (0..(limit * 3 + 12345)).map(|i| (i % 253) as u8).collect();
        let parts: Vec<&[u8]> = all.chunks(40_000).collect();
        let (bytes, cut) = capped(limit as u64, &parts);
        assert_eq!(bytes.len(), limit);
        assert!(bytes == expected(&all, limit));
        assert_eq!(cut.dropped, (all.len() - limit) as u64);
    }

    #[test]
    fn the_tail_keeps_the_last_lines_in_bounded_memory() {
        let mut t = Tail::default();
        for i in 0..10_000 {
            t.push(format!("line {i}\n").as_bytes());
        }
        assert_eq!(t.lines(2), vec!["line 9998", "line 9999"]);
        assert!(t.bytes.len() <= TAIL_BYTES);
        // One huge line: cut, marked, bounded.
        let mut t = Tail::default();
        t.push(&vec![b'x'; 1 << 20]);
        t.push(b"\nlast words\n");
        let lines = t.lines(5);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with('…') && lines[0].chars().count() <= TAIL_LINE_CHARS + 2);
        assert_eq!(lines[1], "last words");
    }
}
