//! The delta log of an index generation: a header naming the generation's tables (its
//! manifest), then one checksummed frame per committed batch, appended since those tables were
//! written.
//!
//! ```text
//! "wfindex" FORMAT                        8 bytes
//! header     len u32 LE, crc32 u32 LE, generation u64 LE, table count u32 LE,
//!            (table id, length, device, inode, mtime ns, ctime ns: u64 LE each)*   oldest first
//! frame*     len u32 LE, crc32 u32 LE, (tag u8 — 1 put, 0 remove —, varint key length, key,
//!                                        [varint value length, value])*
//! ```
//!
//! The log is not synced per batch: the record log is the durable truth, and the index records
//! how far into it it has applied (`m:logpos`), so whatever a crash or a power cut takes from the
//! end of this log is replayed from the record log. A frame that is short or does not match its
//! checksum ends the log there (its tail was never acknowledged by anything).

use std::path::Path;

use super::table::{damaged, get_varint, put_varint, Entry};
use crate::error::StateError;

pub(super) const MAGIC: &[u8; 7] = b"wfindex";
/// The delta log format this wf writes and the newest it reads.
pub(super) const FORMAT: u8 = 1;

/// A table as a generation's manifest names it: its id, its length, and its identity when it was
/// last checked whole (device, inode, modification and change times): a table found otherwise
/// (copied, restored, written to) is checked whole again before it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct TableRef {
    pub(super) id: u64,
    pub(super) len: u64,
    pub(super) stamp: [u64; 4],
}

const TABLE_REF: usize = 48;

/// A generation's tables, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Manifest {
    pub(super) generation: u64,
    pub(super) tables: Vec<TableRef>,
}

/// The header bytes of a delta log for `m`.
pub(super) fn header(m: &Manifest) -> Vec<u8> {
    let mut payload = Vec::with_capacity(12 + TABLE_REF * m.tables.len());
    payload.extend_from_slice(&m.generation.to_le_bytes());
    payload.extend_from_slice(&(m.tables.len() as u32).to_le_bytes());
    for t in &m.tables {
        for v in [t.id, t.len, t.stamp[0], t.stamp[1], t.stamp[2], t.stamp[3]] {
            payload.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut out = Vec::with_capacity(16 + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Read a delta log's header: its manifest and where its frames start.
pub(super) fn read_header(bytes: &[u8], path: &Path) -> Result<(Manifest, usize), StateError> {
    if bytes.len() < 16 || &bytes[..7] != MAGIC {
        return Err(damaged(path, "not an index log"));
    }
    if bytes[7] > FORMAT {
        return Err(StateError::Newer(format!(
            "the journal index file {} was written by a newer wf (format {}); upgrade wf \
             (nothing was changed)",
            path.display(),
            bytes[7]
        )));
    }
    let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let payload = bytes
        .get(16..16 + n)
        .ok_or_else(|| damaged(path, "a short header"))?;
    if crc32fast::hash(payload) != crc || payload.len() < 12 {
        return Err(damaged(path, "its header does not match its checksum"));
    }
    let u64_at = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(payload.get(i..i + 8)?.try_into().ok()?))
    };
    let generation = u64_at(0).unwrap_or(0);
    let count = u32::from_le_bytes([payload[8], payload[9], payload[10], payload[11]]) as usize;
    if payload.len() != 12 + TABLE_REF * count {
        return Err(damaged(path, "a malformed header"));
    }
    let tables = (0..count)
        .map(|i| {
            let f = |j: usize| u64_at(12 + TABLE_REF * i + 8 * j).unwrap_or(0);
            TableRef {
                id: f(0),
                len: f(1),
                stamp: [f(2), f(3), f(4), f(5)],
            }
        })
        .collect();
    Ok((Manifest { generation, tables }, 16 + n))
}

/// The frame of one batch.
pub(super) fn frame(writes: &[Entry]) -> Vec<u8> {
    let size: usize = writes
        .iter()
        .map(|(k, v)| 12 + k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let mut out = Vec::with_capacity(8 + size);
    out.extend_from_slice(&[0; 8]);
    for (k, v) in writes {
        out.push(u8::from(v.is_some()));
        put_varint(&mut out, k.len() as u64);
        out.extend_from_slice(k);
        if let Some(v) = v {
            put_varint(&mut out, v.len() as u64);
            out.extend_from_slice(v);
        }
    }
    let len = (out.len() - 8) as u32;
    let crc = crc32fast::hash(&out[8..]);
    out[..4].copy_from_slice(&len.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

fn parse_frame(payload: &[u8]) -> Option<Vec<Entry>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < payload.len() {
        let tag = payload[i];
        i += 1;
        let klen = usize::try_from(get_varint(payload, &mut i)?).ok()?;
        let key = payload.get(i..i.checked_add(klen)?)?.to_vec();
        i += klen;
        let value = match tag {
            0 => None,
            1 => {
                let vlen = usize::try_from(get_varint(payload, &mut i)?).ok()?;
                let v = payload.get(i..i.checked_add(vlen)?)?.to_vec();
                i += vlen;
                Some(v)
            }
            _ => return None,
        };
        out.push((key, value));
    }
    Some(out)
}

/// Every whole, sound frame from `start`, handed to `apply` in order; returns where they end
/// (the first frame that is short or does not match its checksum ends the log).
pub(super) fn frames(bytes: &[u8], start: usize, mut apply: impl FnMut(Vec<Entry>)) -> usize {
    let mut at = start;
    while let Some(head) = bytes.get(at..at + 8) {
        let n = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let Some(payload) = bytes.get(at + 8..(at + 8).saturating_add(n)) else {
            break;
        };
        if n == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        let Some(writes) = parse_frame(payload) else {
            break;
        };
        apply(writes);
        at += 8 + n;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_torn_tail_ends_the_log() -> Result<(), StateError> {
        let a: Vec<Entry> = vec![
            (b"k1".to_vec(), Some(b"v1".to_vec())),
            (b"k2".to_vec(), None),
        ];
        let b: Vec<Entry> = vec![(b"".to_vec(), Some(vec![0; 300]))];
        let m = Manifest {
            generation: 7,
            tables: vec![
                TableRef {
                    id: 3,
                    len: 100,
                    stamp: [1, 2, 3, 4],
                },
                TableRef {
                    id: 6,
                    len: 9,
                    stamp: [5, 6, 7, u64::MAX],
                },
            ],
        };
        let mut bytes = header(&m);
        let start = bytes.len();
        bytes.extend(frame(&a));
        bytes.extend(frame(&b));
        let whole = bytes.len();
        let (m2, s2) = read_header(&bytes, Path::new("x"))?;
        assert_eq!((m2, s2), (m, start));
        let mut got = Vec::new();
        assert_eq!(frames(&bytes, start, |w| got.push(w)), whole);
        assert_eq!(got, vec![a.clone(), b]);
        for cut in start..whole {
            let mut n = 0;
            let end = frames(&bytes[..cut], start, |_| n += 1);
            assert!(end <= cut && n <= 1);
        }
        // A flipped byte in the second frame ends the log after the first.
        let mut flipped = bytes.clone();
        flipped[whole - 5] ^= 0x40;
        let mut got = Vec::new();
        let end = frames(&flipped, start, |w| got.push(w));
        assert_eq!(got, vec![a]);
        assert!(end < whole);
        Ok(())
    }
}
