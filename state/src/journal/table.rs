//! A sorted table: an immutable file of keys in order, each with a value or a tombstone, in
//! checksummed blocks of about 16 KiB, with an index of each block's first key at the end.
//!
//! ```text
//! "wftable" FORMAT                       8 bytes
//! block*      len u32 LE, crc32 u32 LE, entries           (an entry: varint key length,
//!                                                           varint value length + 1 — 0 is a
//!                                                           tombstone —, key, value)
//! index       len u32 LE, crc32 u32 LE, (varint key length, first key, block offset u64 LE,
//!                                        block length u32 LE)*
//! footer      index offset u64 LE, entry count u64 LE, "wftblend"   24 bytes
//! ```
//!
//! A table is written once (to a temporary name, synced, renamed) and never changed; readers
//! read blocks with `pread` as they need them, so opening one costs its footer and index.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::StateError;

pub(super) const MAGIC: &[u8; 7] = b"wftable";
const END: &[u8; 8] = b"wftblend";
/// The table format this wf writes and the newest it reads.
pub(super) const FORMAT: u8 = 1;
const FOOTER: usize = 24;
/// Blocks close once they pass this size (an entry larger than it has a block of its own).
const BLOCK: usize = 16 * 1024;
/// The largest block index and block a table may hold: a planted file claiming more is refused
/// before anything that large is allocated (wf's blocks are about 16 KiB, an index a few MiB).
const MAX_INDEX: u64 = 256 << 20;
const MAX_BLOCK: u32 = 64 << 20;
/// Decoded blocks kept per table (a cache for point reads; scans hold their own block).
const CACHE_BLOCKS: usize = 64;

/// A key with its value, or `None` for a tombstone (the key was removed).
pub(super) type Entry = (Vec<u8>, Option<Vec<u8>>);

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Read a varint at `*at`, advancing it; None when the bytes end or it is too long.
pub(super) fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

pub(super) fn damaged(path: &Path, why: &str) -> StateError {
    StateError::Corrupt(format!(
        "the journal index file {} is damaged ({why}); move the journal directory away and wf \
         rebuilds it from the record log (journal.log)",
        path.display()
    ))
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { path, what, source }
}

/// A file's identity: device, inode, modification and change times (ns).
pub(super) fn stamp_of(m: &std::fs::Metadata) -> [u64; 4] {
    use std::os::unix::fs::MetadataExt;
    let ns = |s: i64, n: i64| {
        (s as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(n as u64)
    };
    [
        m.dev(),
        m.ino(),
        ns(m.mtime(), m.mtime_nsec()),
        ns(m.ctime(), m.ctime_nsec()),
    ]
}

/// Writes a table's entries, which must come in strictly increasing key order.
pub(super) struct TableWriter {
    out: std::io::BufWriter<File>,
    path: PathBuf,
    pos: u64,
    block: Vec<u8>,
    first: Option<Vec<u8>>,
    index: Vec<u8>,
    entries: u64,
}

impl TableWriter {
    pub(super) fn new(file: File, path: &Path) -> Result<TableWriter, StateError> {
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
        out.write_all(MAGIC)
            .and_then(|_| out.write_all(&[FORMAT]))
            .map_err(io(path, "writing a journal index table"))?;
        Ok(TableWriter {
            out,
            path: path.to_path_buf(),
            pos: 8,
            block: Vec::with_capacity(BLOCK + 1024),
            first: None,
            index: Vec::new(),
            entries: 0,
        })
    }

    pub(super) fn add(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let len = key.len() + value.map_or(0, <[u8]>::len);
        if !self.block.is_empty() && self.block.len() + len > BLOCK {
            self.finish_block()?;
        }
        if self.first.is_none() {
            self.first = Some(key.to_vec());
        }
        put_varint(&mut self.block, key.len() as u64);
        put_varint(&mut self.block, value.map_or(0, |v| v.len() as u64 + 1));
        self.block.extend_from_slice(key);
        if let Some(v) = value {
            self.block.extend_from_slice(v);
        }
        self.entries += 1;
        Ok(())
    }

    fn frame(&mut self, payload: &[u8]) -> Result<(), StateError> {
        let len = u32::try_from(payload.len())
            .map_err(|_| damaged(&self.path, "a block larger than 4 GiB"))?;
        self.out
            .write_all(&len.to_le_bytes())
            .and_then(|_| self.out.write_all(&crc32fast::hash(payload).to_le_bytes()))
            .and_then(|_| self.out.write_all(payload))
            .map_err(io(&self.path, "writing a journal index table"))?;
        self.pos += 8 + payload.len() as u64;
        Ok(())
    }

    fn finish_block(&mut self) -> Result<(), StateError> {
        let Some(first) = self.first.take() else {
            return Ok(());
        };
        let block = std::mem::take(&mut self.block);
        let off = self.pos;
        self.frame(&block)?;
        put_varint(&mut self.index, first.len() as u64);
        self.index.extend_from_slice(&first);
        self.index.extend_from_slice(&off.to_le_bytes());
        self.index
            .extend_from_slice(&(block.len() as u32).to_le_bytes());
        self.block = block;
        self.block.clear();
        Ok(())
    }

    /// Write the index and footer and sync the file; returns it and its length.
    pub(super) fn finish(mut self) -> Result<(File, u64), StateError> {
        self.finish_block()?;
        let index_off = self.pos;
        let index = std::mem::take(&mut self.index);
        self.frame(&index)?;
        let mut footer = Vec::with_capacity(FOOTER);
        footer.extend_from_slice(&index_off.to_le_bytes());
        footer.extend_from_slice(&self.entries.to_le_bytes());
        footer.extend_from_slice(END);
        self.out
            .write_all(&footer)
            .map_err(io(&self.path, "writing a journal index table"))?;
        let len = self.pos + FOOTER as u64;
        let file = self
            .out
            .into_inner()
            .map_err(|e| io(&self.path, "writing a journal index table")(e.into_error()))?;
        file.sync_all()
            .map_err(io(&self.path, "syncing a journal index table"))?;
        Ok((file, len))
    }
}

struct BlockRef {
    first: Vec<u8>,
    off: u64,
    len: u32,
}

/// A block read and checked: its bytes and where each entry lies in them.
pub(super) struct Block {
    data: Vec<u8>,
    /// (key start, key end, value end; value start = key end; value end = key end - 1 for a
    /// tombstone).
    at: Vec<(u32, u32, u32)>,
}

impl Block {
    pub(super) fn len(&self) -> usize {
        self.at.len()
    }

    pub(super) fn key(&self, i: usize) -> &[u8] {
        let (ks, ke, _) = self.at[i];
        &self.data[ks as usize..ke as usize]
    }

    pub(super) fn entry(&self, i: usize) -> Entry {
        let (ks, ke, ve) = self.at[i];
        let key = self.data[ks as usize..ke as usize].to_vec();
        let value = (ve >= ke).then(|| self.data[ke as usize..ve as usize].to_vec());
        (key, value)
    }

    /// The first entry whose key is `>= key`.
    pub(super) fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.at.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.key(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn parse(data: Vec<u8>) -> Option<Block> {
        let mut at = Vec::new();
        let mut i = 0usize;
        let mut prev: Option<(usize, usize)> = None;
        while i < data.len() {
            let klen = usize::try_from(get_varint(&data, &mut i)?).ok()?;
            let vlen = get_varint(&data, &mut i)?;
            let ks = i;
            let ke = ks.checked_add(klen)?;
            let (ve, tomb) = if vlen == 0 {
                (ke, true)
            } else {
                (ke.checked_add(usize::try_from(vlen - 1).ok()?)?, false)
            };
            if ve > data.len() || ve > u32::MAX as usize {
                return None;
            }
            // Keys strictly increase inside a block.
            if let Some((ps, pe)) = prev {
                if data[ps..pe] >= data[ks..ke] {
                    return None;
                }
            }
            prev = Some((ks, ke));
            let ve_stored = if tomb { ke.checked_sub(1) } else { Some(ve) };
            // A tombstone's "value end" is one before its key end (an empty key cannot be a
            // tombstone: wf never removes the empty key, and such a table is refused).
            at.push((ks as u32, ke as u32, ve_stored? as u32));
            i = ve;
        }
        Some(Block { data, at })
    }
}

/// An open table.
pub(super) struct Table {
    file: File,
    path: PathBuf,
    blocks: Vec<BlockRef>,
    cache: RefCell<HashMap<usize, Arc<Block>>>,
}

impl Table {
    /// Open a table and read its index; `len` and `stamp` are what its manifest recorded. A
    /// table whose identity is not the recorded one (copied, restored, written to) has every
    /// block checked now, so damage is refused at open rather than in the middle of a command;
    /// returns whether that happened.
    pub(super) fn open(
        file: File,
        path: &Path,
        len: u64,
        stamp: Option<[u64; 4]>,
    ) -> Result<(Table, bool), StateError> {
        let meta = file
            .metadata()
            .map_err(io(path, "reading a journal index table"))?;
        let actual = meta.len();
        if actual != len {
            return Err(damaged(path, "its length is not the one recorded"));
        }
        if len < (8 + 8 + FOOTER) as u64 {
            return Err(damaged(path, "too short"));
        }
        let mut head = [0u8; 8];
        file.read_exact_at(&mut head, 0)
            .map_err(io(path, "reading a journal index table"))?;
        if &head[..7] != MAGIC {
            return Err(damaged(path, "not a table"));
        }
        if head[7] > FORMAT {
            return Err(StateError::Newer(format!(
                "the journal index file {} was written by a newer wf (format {}); upgrade wf \
                 (nothing was changed)",
                path.display(),
                head[7]
            )));
        }
        let mut foot = [0u8; FOOTER];
        file.read_exact_at(&mut foot, len - FOOTER as u64)
            .map_err(io(path, "reading a journal index table"))?;
        if &foot[16..] != END {
            return Err(damaged(path, "no footer"));
        }
        let index_off = u64_at(&foot, 0).unwrap_or(0);
        if index_off < 8 || index_off + 8 > len - FOOTER as u64 {
            return Err(damaged(path, "a bad index offset"));
        }
        let index_len = len - FOOTER as u64 - index_off;
        if index_len > MAX_INDEX {
            return Err(damaged(path, "an index larger than any wf writes"));
        }
        let mut buf = vec![0u8; usize::try_from(index_len).map_err(|_| damaged(path, "huge"))?];
        file.read_exact_at(&mut buf, index_off)
            .map_err(io(path, "reading a journal index table"))?;
        let n = u32_at(&buf, 0).unwrap_or(0) as usize;
        let crc = u32_at(&buf, 4).unwrap_or(0);
        let payload = buf.get(8..).unwrap_or(&[]);
        if payload.len() != n || crc32fast::hash(payload) != crc {
            return Err(damaged(path, "its index does not match its checksum"));
        }
        let mut blocks = Vec::new();
        let mut i = 0usize;
        let bad = || damaged(path, "a malformed index");
        while i < payload.len() {
            let klen =
                usize::try_from(get_varint(payload, &mut i).ok_or_else(bad)?).map_err(|_| bad())?;
            let first = payload.get(i..i + klen).ok_or_else(bad)?.to_vec();
            i += klen;
            let off = u64_at(payload, i).ok_or_else(bad)?;
            let blen = u32_at(payload, i + 8).ok_or_else(bad)?;
            i += 12;
            if off < 8 || blen > MAX_BLOCK || off + 8 + u64::from(blen) > index_off {
                return Err(bad());
            }
            if blocks.last().is_some_and(|b: &BlockRef| b.first >= first) {
                return Err(bad());
            }
            blocks.push(BlockRef {
                first,
                off,
                len: blen,
            });
        }
        let table = Table {
            file,
            path: path.to_path_buf(),
            blocks,
            cache: RefCell::new(HashMap::new()),
        };
        let checked = stamp != Some(stamp_of(&meta));
        if checked {
            table.check_whole()?;
        }
        Ok((table, checked))
    }

    /// Read and check every block, and that keys increase from one block to the next.
    fn check_whole(&self) -> Result<(), StateError> {
        let mut last: Option<Vec<u8>> = None;
        for i in 0..self.blocks.len() {
            let b = self.block_uncached(i)?;
            if last.as_deref().is_some_and(|l| l >= b.key(0)) {
                return Err(damaged(&self.path, "its blocks are out of order"));
            }
            last = Some(b.key(b.len() - 1).to_vec());
        }
        Ok(())
    }

    /// The table's identity as it is now.
    pub(super) fn stamp(&self) -> Result<[u64; 4], StateError> {
        Ok(stamp_of(&self.file.metadata().map_err(io(
            &self.path,
            "reading a journal index table",
        ))?))
    }

    pub(super) fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Block `i`, read and checked (from the cache when it is there).
    pub(super) fn block(&self, i: usize) -> Result<Arc<Block>, StateError> {
        if let Some(b) = self.cache.borrow().get(&i) {
            return Ok(b.clone());
        }
        let block = Arc::new(self.block_uncached(i)?);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_BLOCKS {
            cache.clear();
        }
        cache.insert(i, block.clone());
        Ok(block)
    }

    fn block_uncached(&self, i: usize) -> Result<Block, StateError> {
        let r = self
            .blocks
            .get(i)
            .ok_or_else(|| damaged(&self.path, "a block out of range"))?;
        let mut buf = vec![0u8; 8 + r.len as usize];
        self.file
            .read_exact_at(&mut buf, r.off)
            .map_err(io(&self.path, "reading a journal index table"))?;
        let n = u32_at(&buf, 0).unwrap_or(0);
        let crc = u32_at(&buf, 4).unwrap_or(0);
        buf.drain(..8);
        if n != r.len || crc32fast::hash(&buf) != crc {
            return Err(damaged(&self.path, "a block does not match its checksum"));
        }
        let block = Block::parse(buf).ok_or_else(|| damaged(&self.path, "a malformed block"))?;
        if block.len() == 0 || block.key(0) != r.first.as_slice() {
            return Err(damaged(
                &self.path,
                "a block does not start with its indexed key",
            ));
        }
        Ok(block)
    }

    /// The block that would hold `key`: the last whose first key is `<= key` (None: before
    /// every block).
    pub(super) fn block_for(&self, key: &[u8]) -> Option<usize> {
        self.blocks
            .partition_point(|b| b.first.as_slice() <= key)
            .checked_sub(1)
    }

    /// The number of blocks whose first key is `< key`.
    pub(super) fn blocks_before(&self, key: &[u8]) -> usize {
        self.blocks.partition_point(|b| b.first.as_slice() < key)
    }

    /// `Some(Some(value))`, `Some(None)` for a tombstone, `None` when the table does not hold
    /// the key.
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StateError> {
        let Some(i) = self.block_for(key) else {
            return Ok(None);
        };
        let b = self.block(i)?;
        let at = b.lower_bound(key);
        if at < b.len() && b.key(at) == key {
            return Ok(Some(b.entry(at).1));
        }
        Ok(None)
    }
}

/// The entries of one table with `lo <= key < hi` (no `hi`: to the end), in key order or
/// reversed, tombstones included.
pub(super) struct TableIter<'a> {
    table: &'a Table,
    lo: Vec<u8>,
    hi: Option<Vec<u8>>,
    rev: bool,
    block: Option<Arc<Block>>,
    bi: usize,
    /// Forward: the next entry. Reverse: one past the next entry.
    ei: usize,
    started: bool,
    done: bool,
}

impl<'a> TableIter<'a> {
    pub(super) fn new(table: &'a Table, lo: &[u8], hi: Option<&[u8]>, rev: bool) -> Self {
        TableIter {
            table,
            lo: lo.to_vec(),
            hi: hi.map(<[u8]>::to_vec),
            rev,
            block: None,
            bi: 0,
            ei: 0,
            started: false,
            done: false,
        }
    }

    fn load(&mut self, i: usize) -> Result<Arc<Block>, StateError> {
        let b = self.table.block(i)?;
        self.bi = i;
        self.block = Some(b.clone());
        Ok(b)
    }

    fn start(&mut self) -> Result<(), StateError> {
        self.started = true;
        if self.table.blocks() == 0 {
            self.done = true;
            return Ok(());
        }
        if self.rev {
            let n = match &self.hi {
                Some(h) => self.table.blocks_before(h),
                None => self.table.blocks(),
            };
            let Some(i) = n.checked_sub(1) else {
                self.done = true;
                return Ok(());
            };
            let b = self.load(i)?;
            self.ei = match &self.hi {
                Some(h) => b.lower_bound(h),
                None => b.len(),
            };
        } else {
            let i = self.table.block_for(&self.lo).unwrap_or(0);
            let b = self.load(i)?;
            self.ei = b.lower_bound(&self.lo);
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Option<Entry>, StateError> {
        if !self.started {
            self.start()?;
        }
        loop {
            if self.done {
                return Ok(None);
            }
            let Some(b) = self.block.clone() else {
                self.done = true;
                return Ok(None);
            };
            if self.rev {
                if self.ei > 0 {
                    self.ei -= 1;
                    if b.key(self.ei) < self.lo.as_slice() {
                        self.done = true;
                        return Ok(None);
                    }
                    return Ok(Some(b.entry(self.ei)));
                }
                if self.bi == 0 {
                    self.done = true;
                    return Ok(None);
                }
                let b = self.load(self.bi - 1)?;
                self.ei = b.len();
            } else {
                if self.ei < b.len() {
                    let i = self.ei;
                    self.ei += 1;
                    if self.hi.as_deref().is_some_and(|h| b.key(i) >= h) {
                        self.done = true;
                        return Ok(None);
                    }
                    return Ok(Some(b.entry(i)));
                }
                if self.bi + 1 >= self.table.blocks() {
                    self.done = true;
                    return Ok(None);
                }
                self.load(self.bi + 1)?;
                self.ei = 0;
            }
        }
    }
}

impl Iterator for TableIter<'_> {
    type Item = Result<Entry, StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(e) => e.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
