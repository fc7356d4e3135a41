//! The record log `.wf/journal.log`: every journal record, appended and fdatasynced before the
//! index sees it. It is the durable truth; the index (`journal`) is built from it and records how
//! far it has applied it. So what the index loses — the unsynced tail of its delta log after a
//! power cut, or all of it when it is damaged and set aside — is replayed from here when the
//! journal is opened, and nothing acknowledged is ever lost to the index.
//!
//! Frame: magic `wfR1` (4 bytes), payload length (u32 LE), CRC-32 of the payload (u32 LE), payload
//! (a record encoded by `codec`). A frame that fails its checks at the very end of the file is a
//! write torn by a crash (never acknowledged: its fdatasync did not return) and is cut off by the
//! next writer; one followed by any valid frame is damage, and the log is refused.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
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
    /// `journal/log.verified`, kept open once found so that noting the log after each append
    /// costs one write, not a walk from the state directory.
    note: Option<File>,
    /// The length the note's file has since this writer last wrote it (the note is fixed width,
    /// so after the first write no append needs to cut it to length again).
    note_len: Option<usize>,
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
    let mut file = open_log(path, "opening the record log")?;
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

/// Check every frame of the log (magic, length, CRC; payloads are not decoded), a block at a
/// time: Ok with the end of the valid frames when at most a torn last write follows them, the
/// damage refusal otherwise. This is what a state whose log changed since wf last verified it
/// costs at open (`verified`).
pub fn verify(path: &Path) -> Result<u64, StateError> {
    const BLOCK: usize = 8 * 1024 * 1024;
    let mut file = open_log(path, "reading the record log")?;
    let mut bytes: Vec<u8> = Vec::new();
    let mut base = 0u64;
    let mut at = 0usize;
    let mut eof = false;
    loop {
        if !eof && bytes.len() - at < BLOCK {
            bytes.drain(..at);
            base += at as u64;
            at = 0;
            let before = bytes.len();
            (&mut file)
                .take(BLOCK as u64)
                .read_to_end(&mut bytes)
                .map_err(io(path, "reading the record log"))?;
            eof = bytes.len() == before;
        }
        let rest = &bytes[at..];
        if rest.is_empty() && eof {
            return Ok(base + at as u64);
        }
        match frame_len(rest) {
            Ok(Some(n)) => at += n,
            Ok(None) if !eof => {
                // A frame longer than what is read: read all of it.
                let need = match rest.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                    Some(l) => (HEADER + u32::from_le_bytes(l) as usize).saturating_sub(rest.len()),
                    None => HEADER,
                };
                let before = bytes.len();
                (&mut file)
                    .take(need as u64)
                    .read_to_end(&mut bytes)
                    .map_err(io(path, "reading the record log"))?;
                if bytes.len() - before < need {
                    eof = true;
                }
            }
            _ => {
                // Judged exactly as a reading scan judges it (torn last write, or damage).
                let (end, _) = scan(path, base + at as u64, |_, _, _| Ok(()))?;
                return Ok(end);
            }
        }
    }
}

/// The length of the valid frame at the start of `b` (its CRC checked, its payload not
/// decoded): Ok(None) when `b` is too short to hold it.
fn frame_len(b: &[u8]) -> Result<Option<usize>, ()> {
    if b.len() < HEADER {
        return if b.is_empty() || MAGIC.starts_with(&b[..b.len().min(4)]) {
            Ok(None)
        } else {
            Err(())
        };
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
    if crc32fast::hash(&b[HEADER..HEADER + len]) != crc {
        return Err(());
    }
    Ok(Some(HEADER + len))
}

/// Open the record log for reading: never through a link, only a regular file.
fn open_log(path: &Path, what: &'static str) -> Result<File, StateError> {
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) => (d, Path::new(n)),
        _ => return File::open(path).map_err(io(path, what)),
    };
    let d =
        crate::safe::dir(dir, Path::new(""), false).map_err(crate::safe::state_err(path, what))?;
    crate::safe::open_at(&d, name, crate::safe::How::Read, 0, path)
        .map_err(crate::safe::state_err(path, what))
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

/// Where wf notes that it verified every frame of the record log, and the log's identity then
/// (device, inode, size, change and modification times): `journal/log.verified`, derived data
/// beside the index. While the log is exactly as wf left it, opening checks only what the index
/// has not applied; any other change to the log (an edit, a copy, bit flips by a tool, a writer
/// that crashed before it could note its end) makes the next open verify every frame first.
const MARK: &str = "log.verified";

/// The identity of the record log as the filesystem reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        Stamp::from_meta(&std::fs::symlink_metadata(path).ok()?)
    }

    fn from_meta(m: &std::fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        m.is_file().then_some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            ctime: (m.ctime(), m.ctime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }

    fn text(&self) -> String {
        let line = format!(
            "wf-log-verified 1 {} {} {} {} {} {} {}",
            self.dev, self.ino, self.size, self.ctime.0, self.ctime.1, self.mtime.0, self.mtime.1
        );
        // Fixed width, written over the old note in one write (a reader never sees a mix that
        // parses: the CRC covers the line).
        format!(
            "{:<127}\n",
            format!("{line} {:08x}", crc32fast::hash(line.as_bytes()))
        )
    }

    fn parse(text: &str) -> Option<Stamp> {
        let text = text.strip_suffix('\n')?.trim_end_matches(' ');
        let (line, crc) = text.rsplit_once(' ')?;
        if u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(line.as_bytes()) {
            return None;
        }
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 9 || f[0] != "wf-log-verified" || f[1] != "1" {
            return None;
        }
        let n = |i: usize| f[i].parse::<i64>().ok();
        Some(Stamp {
            dev: f[2].parse().ok()?,
            ino: f[3].parse().ok()?,
            size: f[4].parse().ok()?,
            ctime: (n(5)?, n(6)?),
            mtime: (n(7)?, n(8)?),
        })
    }
}

/// Logs verified whole by this process (so a check before the lock and the open after it
/// do not both read a changed log).
static VERIFIED: std::sync::Mutex<Vec<Stamp>> = std::sync::Mutex::new(Vec::new());

/// Make sure every frame of the record log at `path` is sound before anything is written or
/// answered: free when the log is exactly as wf last verified it (its mark in `journal/`), a
/// full check of every frame otherwise (`verify`). Changes nothing.
pub fn check_verified(root: &Path, path: &Path) -> Result<bool, StateError> {
    let Some(now) = Stamp::of(path) else {
        // Missing or not a regular file: the open that follows says which.
        return Ok(false);
    };
    let marked = crate::safe::open(
        root,
        &Path::new("journal").join(MARK),
        crate::safe::How::Read,
    )
    .ok()
    .and_then(|mut f| {
        let mut s = String::new();
        f.read_to_string(&mut s).ok().map(|_| s)
    })
    .and_then(|s| Stamp::parse(&s));
    if marked == Some(now) {
        return Ok(false);
    }
    // The log only ever grows (a torn tail is cut only past the last noted size): shorter than
    // noted is lost data, refused before the index is even opened.
    if let Some(m) = marked {
        if (m.dev, m.ino) == (now.dev, now.ino) && now.size < m.size {
            return Err(StateError::Corrupt(format!(
                "{} is shorter ({} bytes) than the journal has applied ({} bytes): the record \
                 log lost data; restore the state directory from a backup (nothing was changed)",
                path.display(),
                now.size,
                m.size
            )));
        }
    }
    if VERIFIED.lock().is_ok_and(|v| v.contains(&now)) {
        return Ok(true);
    }
    verify(path)?;
    if let Ok(mut v) = VERIFIED.lock() {
        v.push(now);
    }
    Ok(true)
}

/// Note that the log at `path` is verified as it is now (derived data: losing or damaging the
/// note costs one full check at the next open, nothing else). Best effort.
pub fn mark_verified(root: &Path, path: &Path) {
    let Some(now) = Stamp::of(path) else {
        return;
    };
    if let Some(f) = open_mark(root) {
        write_mark(&f, &now);
    }
}

/// The note's file, opened (created when missing) without following a link; None before
/// `journal/` exists or when it cannot be opened (best effort: the next open checks the log).
fn open_mark(root: &Path) -> Option<File> {
    if !root.join("journal").is_dir() {
        return None;
    }
    crate::safe::open(
        root,
        &Path::new("journal").join(MARK),
        crate::safe::How::Update,
    )
    .ok()
}

/// Write the note over the old one; the file is cut to the note's length unless `len` says it
/// has that length already. Returns the file's length when it is known.
fn write_mark_sized(f: &File, now: &Stamp, len: Option<usize>) -> Option<usize> {
    use std::os::unix::fs::FileExt;
    let text = now.text();
    f.write_all_at(text.as_bytes(), 0).ok()?;
    if len == Some(text.len()) {
        return len;
    }
    f.set_len(text.len() as u64).ok()?;
    Some(text.len())
}

fn write_mark(f: &File, now: &Stamp) {
    let _ = write_mark_sized(f, now, None);
}

impl RecordLog {
    /// Open the log for appending at `end` (the end of its valid frames), cutting off a torn
    /// last write first.
    pub fn open(path: &Path, end: u64, create: bool) -> Result<RecordLog, StateError> {
        let (dir, name) = match (path.parent(), path.file_name()) {
            (Some(d), Some(n)) => (d, Path::new(n)),
            _ => {
                return Err(StateError::Corrupt(format!(
                    "{} is not a record log path; this is a bug",
                    path.display()
                )))
            }
        };
        let d = crate::safe::dir(dir, Path::new(""), false)
            .map_err(crate::safe::state_err(path, "opening the record log"))?;
        let how = if create {
            crate::safe::How::Update
        } else {
            // Only an existing log is opened for appending (never created here by accident).
            match crate::safe::kind_at(&d, name) {
                Ok(None) => {
                    return Err(StateError::Corrupt(format!(
                        "{} is missing; restore the state directory from a backup (nothing was changed)",
                        path.display()
                    )))
                }
                _ => crate::safe::How::Update,
            }
        };
        let file = crate::safe::open_at(&d, name, how, crate::safe::FILE_MODE, path)
            .map_err(crate::safe::state_err(path, "opening the record log"))?;
        let len = file
            .metadata()
            .map_err(io(path, "opening the record log"))?
            .len();
        if len > end {
            file.set_len(end)
                .and_then(|_| file.sync_all())
                .map_err(io(path, "cutting a torn write off the record log"))?;
            mark_verified(dir, path);
        }
        Ok(RecordLog {
            file,
            path: path.to_path_buf(),
            end,
            note: None,
            note_len: None,
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
            // At the log's end in one call (no seek first); the log is not opened for appending,
            // so the offset given is where the bytes land.
            std::os::unix::fs::FileExt::write_all_at(&self.file, &bytes, self.end)?;
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
        // The log was verified whole when this writer opened it and gained only whole frames
        // since: note it as it is now, so readers meanwhile (and the next open) need not check
        // it whole again.
        if self.note.is_none() {
            self.note = self.path.parent().and_then(open_mark);
        }
        if let (Some(note), Some(now)) = (
            &self.note,
            self.file
                .metadata()
                .ok()
                .as_ref()
                .and_then(Stamp::from_meta),
        ) {
            self.note_len = write_mark_sized(note, &now, self.note_len);
        }
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
                state: crate::record::RunState::Done,
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

    #[test]
    fn verify_checks_every_frame_and_the_note_skips_an_unchanged_log(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let root = d.path();
        std::fs::create_dir(root.join("journal"))?;
        let p = root.join("journal.log");
        let mut log = RecordLog::open(&p, 0, true)?;
        log.append(&[rec(1), rec(2), rec(3)], true)?;
        drop(log);
        assert_eq!(verify(&p)?, std::fs::metadata(&p)?.len());
        // Appending noted the log as verified: an open needs no full check.
        assert!(!check_verified(root, &p)?);
        // Damage in the middle (the index would not notice): the log changed, so it is
        // checked whole, and refused.
        let mut bytes = std::fs::read(&p)?;
        let (_, locs) = frames(&[rec(1)]);
        let mid = locs[0].1 as usize + HEADER + 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&p, &bytes)?;
        assert!(verify(&p).is_err());
        assert!(check_verified(root, &p).is_err());
        // A torn tail is not damage.
        bytes[mid] ^= 0x40;
        bytes.extend_from_slice(&MAGIC[..3]);
        std::fs::write(&p, &bytes)?;
        assert_eq!(verify(&p)?, bytes.len() as u64 - 3);
        // A damaged note is only a reason to check whole.
        std::fs::write(root.join("journal").join(MARK), b"garbage")?;
        assert!(check_verified(root, &p)?);
        // A log shorter than noted lost data: refused before anything else.
        mark_verified(root, &p);
        let f = std::fs::OpenOptions::new().write(true).open(&p)?;
        f.set_len(bytes.len() as u64 / 2)?;
        let err = check_verified(root, &p).err().ok_or("accepted")?;
        assert!(err.to_string().contains("shorter"), "{err}");
        Ok(())
    }
}
