//! The record log `.wf/journal.log`: every journal record, appended and fdatasynced before sled
//! sees it. It is the durable truth; sled is the index built from it. So what sled loses — its
//! unsynced tail after a power cut, or everything after a damaged message (sled 0.34 reads a
//! damaged log middle as a torn tail and zeroes the rest) — is replayed from here when the journal
//! is opened, and nothing acknowledged is ever lost to sled.
//!
//! Frame: magic `wfR1` (4 bytes), payload length (u32 LE), CRC-32 of the payload (u32 LE), payload
//! (a record encoded by `codec`). A frame that fails its checks at the very end of the file is a
//! write torn by a crash (never acknowledged: its fdatasync did not return) and is cut off by the
//! next writer; one followed by any valid frame is damage, and the log is refused.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::codec;
use crate::error::StateError;
use crate::record::Record;

const MAGIC: &[u8; 4] = b"wfR1";
const HEADER: usize = 12;
/// No record is anywhere near this big; a larger length is damage.
const MAX_FRAME: usize = 64 * 1024 * 1024;

pub struct RecordLog {
    file: File,
    path: PathBuf,
    /// Where the next frame goes (the end of the valid log).
    end: u64,
}

/// What reading the log from an offset found.
pub struct Tail {
    pub records: Vec<Record>,
    /// The offset just past the last valid frame.
    pub end: u64,
    /// Bytes after `end` that are a torn last write (not damage).
    pub torn: u64,
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { path, what, source }
}

/// Encode records as frames, ready to append in one write, with each frame's (start, length)
/// within the buffer.
pub fn frames(records: &[Record]) -> (Vec<u8>, Vec<(u64, u32)>) {
    let mut out = Vec::new();
    let mut locs = Vec::with_capacity(records.len());
    for r in records {
        let payload = codec::encode_record(r);
        let start = out.len() as u64;
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        locs.push((start, (HEADER + payload.len()) as u32));
    }
    (out, locs)
}

/// Parse one frame at the start of `b`: Ok(Some((record, length))) for a valid frame, Ok(None)
/// when `b` is too short to hold it, Err when it is not a valid frame.
fn frame_at(b: &[u8]) -> Result<Option<(Record, usize)>, ()> {
    if b.len() < HEADER {
        return Ok(None);
    }
    if &b[..4] != MAGIC {
        return Err(());
    }
    let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if len > MAX_FRAME {
        return Err(());
    }
    if b.len() < HEADER + len {
        return Ok(None);
    }
    let crc = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    let payload = &b[HEADER..HEADER + len];
    if crc32fast::hash(payload) != crc {
        return Err(());
    }
    match codec::decode_record(payload) {
        Ok(r) => Ok(Some((r, HEADER + len))),
        Err(_) => Err(()),
    }
}

/// Whether the bytes left at the end of the log, which do not hold a valid frame, are a write a
/// crash cut short (never acknowledged) rather than damage: nothing valid follows, and either the
/// frame is incomplete (`incomplete`: its length runs past the end of the file) or the file ends in
/// zeros (blocks the file was extended by but that were never written).
fn torn(rest: &[u8], incomplete: bool) -> bool {
    if any_valid_frame(rest.get(1..).unwrap_or_default()) {
        return false;
    }
    if incomplete {
        // Even an incomplete frame must look like the start of one: its magic, or zeros.
        let head = &rest[..rest.len().min(4)];
        return MAGIC.starts_with(head) || head.iter().all(|b| *b == 0);
    }
    let zeros = rest.iter().rev().take_while(|b| **b == 0).count();
    zeros == rest.len() || zeros >= 16
}

/// Whether any valid frame starts anywhere in `b` (then a bad frame before it is damage).
fn any_valid_frame(b: &[u8]) -> bool {
    (0..b.len().saturating_sub(HEADER))
        .any(|i| b[i..].starts_with(MAGIC) && matches!(frame_at(&b[i..]), Ok(Some(_))))
}

/// Read the frames of `path` from `from` to the end.
pub fn read_from(path: &Path, from: u64) -> Result<Tail, StateError> {
    let mut records = Vec::new();
    let (end, torn) = scan(path, from, |r, _, _| {
        records.push(r);
        Ok(())
    })?;
    Ok(Tail { records, end, torn })
}

/// Read the frames of `path` from `from` to the end, a block at a time, giving each record with
/// its frame's offset and length to `each`. Returns the offset just past the last valid frame and
/// the length of a torn last write after it. Memory stays bounded by the block size, whatever the
/// size of the log.
pub fn scan(
    path: &Path,
    from: u64,
    mut each: impl FnMut(Record, u64, u32) -> Result<(), StateError>,
) -> Result<(u64, u64), StateError> {
    const BLOCK: usize = 8 * 1024 * 1024;
    let mut file = File::open(path).map_err(io(path, "opening the record log"))?;
    let len = file
        .metadata()
        .map_err(io(path, "reading the record log"))?
        .len();
    if from > len {
        return Err(StateError::Corrupt(format!(
            "{} is shorter ({len} bytes) than the journal has applied ({from} bytes): the record \
             log lost data; restore the state directory from a backup (nothing was changed)",
            path.display()
        )));
    }
    file.seek(SeekFrom::Start(from))
        .map_err(io(path, "reading the record log"))?;
    // `bytes` holds the file from offset `base`; frames are parsed from `at` within it.
    let mut bytes: Vec<u8> = Vec::new();
    let mut base = from;
    let mut at = 0usize;
    let mut eof = false;
    let mut more = false;
    loop {
        if !eof && (more || bytes.len() - at < BLOCK) {
            more = false;
            // Drop what was parsed, then read another block.
            bytes.drain(..at);
            base += at as u64;
            at = 0;
            let mut block = Vec::with_capacity(BLOCK);
            (&mut file)
                .take(BLOCK as u64)
                .read_to_end(&mut block)
                .map_err(io(path, "reading the record log"))?;
            eof = block.is_empty();
            bytes.extend_from_slice(&block);
        }
        let rest = &bytes[at..];
        match frame_at(rest) {
            Ok(Some((r, n))) => {
                each(r, base + at as u64, n as u32)?;
                at += n;
            }
            // A frame longer than what is read so far: read on, unless the file ended.
            Ok(None) if !eof => more = true,
            Ok(None) if rest.is_empty() => break,
            bad => {
                if !eof {
                    // Judge damage against everything after it.
                    file.read_to_end(&mut bytes)
                        .map_err(io(path, "reading the record log"))?;
                }
                let rest = &bytes[at..];
                if !torn(rest, bad.is_ok()) {
                    return Err(StateError::Corrupt(format!(
                        "{} is damaged at byte {}; restore the state directory from a backup or \
                         move it away (nothing was changed)",
                        path.display(),
                        base + at as u64
                    )));
                }
                break;
            }
        }
    }
    Ok((base + at as u64, (bytes.len() - at) as u64))
}

/// The records in `len` bytes of the log at `offset`: whole valid frames, nothing else (a span
/// the index points at; anything else there is damage).
pub fn read_span(
    file: &File,
    path: &Path,
    offset: u64,
    len: u32,
) -> Result<Vec<Record>, StateError> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, offset)
        .map_err(io(path, "reading the record log"))?;
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match frame_at(&bytes[at..]) {
            Ok(Some((r, n))) => {
                out.push(r);
                at += n;
            }
            _ => {
                return Err(StateError::Corrupt(format!(
                    "{} is damaged at byte {}, or the journal index does not match it; restore \
                     the state directory from a backup (nothing was changed)",
                    path.display(),
                    offset + at as u64
                )))
            }
        }
    }
    Ok(out)
}

impl RecordLog {
    /// Open the log for appending at `end` (the end of its valid frames), cutting off a torn
    /// last write first.
    pub fn open(path: &Path, end: u64, create: bool) -> Result<RecordLog, StateError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(io(path, "opening the record log"))?;
        let len = file
            .metadata()
            .map_err(io(path, "opening the record log"))?
            .len();
        if len > end {
            file.set_len(end)
                .and_then(|_| file.sync_all())
                .map_err(io(path, "cutting a torn write off the record log"))?;
        }
        Ok(RecordLog {
            file,
            path: path.to_path_buf(),
            end,
        })
    }

    /// Append records; with `sync`, fdatasync before returning. Returns each record's frame
    /// (offset, length) in the log.
    pub fn append(
        &mut self,
        records: &[Record],
        sync: bool,
    ) -> Result<Vec<(u64, u32)>, StateError> {
        let (bytes, mut locs) = frames(records);
        let path = self.path.clone();
        let result = (|| -> std::io::Result<()> {
            self.file.seek(SeekFrom::Start(self.end))?;
            self.file.write_all(&bytes)?;
            if sync {
                self.file.sync_data()?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Whatever part of the write landed is cut off, so the log stays a clean prefix.
            let _ = self.file.set_len(self.end);
            return Err(io(&path, "appending to the record log")(e));
        }
        for l in &mut locs {
            l.0 += self.end;
        }
        self.end += bytes.len() as u64;
        Ok(locs)
    }

    pub fn end(&self) -> u64 {
        self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Entry;
    use chrono::Utc;

    fn rec(seq: u64) -> Record {
        Record {
            seq,
            run: 1,
            at: Utc::now(),
            entry: Entry::RunEnded {
                state: crate::machine::RunState::Done,
                reason: format!("r{seq}"),
            },
        }
    }

    #[test]
    fn torn_tail_is_cut_and_middle_damage_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let p = d.path().join("journal.log");
        let mut log = RecordLog::open(&p, 0, true)?;
        log.append(&[rec(1), rec(2)], true)?;
        let end2 = log.end();
        log.append(&[rec(3)], true)?;
        drop(log);
        let t = read_from(&p, 0)?;
        assert_eq!(t.records.len(), 3);
        // A torn last write: half of a frame.
        let full = std::fs::read(&p)?;
        std::fs::write(&p, &full[..full.len() - 5])?;
        let t = read_from(&p, 0)?;
        assert_eq!((t.records.len(), t.end), (2, end2));
        assert!(t.torn > 0);
        RecordLog::open(&p, t.end, false)?;
        assert_eq!(std::fs::metadata(&p)?.len(), end2);
        // Damage in the middle, with valid frames after it: refused.
        let mut bad = full.clone();
        bad[HEADER + 3] ^= 0xff;
        std::fs::write(&p, &bad)?;
        assert!(read_from(&p, 0).is_err());
        // A damaged length that runs past the end, with valid frames after it: refused too.
        let mut bad = full.clone();
        bad[5] ^= 0xff;
        std::fs::write(&p, &bad)?;
        assert!(read_from(&p, 0).is_err());
        // A flipped byte inside the last, complete frame: damage, not a torn write.
        let mut bad = full.clone();
        let last = bad.len() - 3;
        bad[last] ^= 0x5a;
        std::fs::write(&p, &bad)?;
        assert!(read_from(&p, 0).is_err());
        // Garbage where the log should be: damage.
        std::fs::write(&p, [0x37u8; 300])?;
        assert!(read_from(&p, 0).is_err());
        // A tail of zeros (blocks extended but never written): torn.
        let mut z = full.clone();
        z.extend_from_slice(&[0u8; 4096]);
        std::fs::write(&p, &z)?;
        assert_eq!(read_from(&p, 0)?.records.len(), 3);
        Ok(())
    }
}
