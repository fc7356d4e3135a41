//! Small durable files beside the journal, and directory syncs. The committed-sequence file lets
//! `wf` notice when sled comes back shorter than what was acknowledged (sled 0.34 reads a damaged
//! log middle as a torn tail and silently drops what follows it).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::StateError;

/// fsync a directory, so that names created or renamed in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            what: "syncing the directory",
            source,
        })
}

/// Create a directory (and its parents) readable by its owner only: a state directory holds
/// logs and outputs that may be private.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

const MAGIC: &[u8; 8] = b"wfseq\0\0\x01";
const SLOT: usize = 20;

/// The last committed sequence number, in two alternating checksummed slots so that a write torn
/// by a power cut leaves the other slot readable.
pub struct SeqFile {
    file: File,
    path: PathBuf,
}

fn decode_slot(b: &[u8]) -> Option<u64> {
    if b.len() < SLOT || &b[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
    if crc32fast::hash(&b[..16]) != crc {
        return None;
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[8..16]);
    Some(u64::from_le_bytes(n))
}

impl SeqFile {
    /// Open the file; returns the last committed sequence (None when the file is new or empty).
    pub fn open(path: &Path, create: bool) -> Result<(SeqFile, Option<u64>), StateError> {
        let io = |what: &'static str| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, what, source }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(path)
            .map_err(io("opening the committed-sequence file"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io("reading the committed-sequence file"))?;
        let seq = if bytes.is_empty() {
            None
        } else {
            let a = decode_slot(&bytes);
            let b = bytes.get(SLOT..).and_then(decode_slot);
            match (a, b) {
                (None, None) => {
                    return Err(StateError::Corrupt(format!(
                        "{} is damaged, so wf cannot tell how much of the journal was committed; \
                         restore the state directory from a backup or move it away",
                        path.display()
                    )))
                }
                (a, b) => a.max(b),
            }
        };
        Ok((
            SeqFile {
                file,
                path: path.to_path_buf(),
            },
            seq,
        ))
    }

    /// Record `seq` as committed and fdatasync it.
    pub fn store(&mut self, seq: u64) -> Result<(), StateError> {
        let mut slot = [0u8; SLOT];
        slot[..8].copy_from_slice(MAGIC);
        slot[8..16].copy_from_slice(&seq.to_le_bytes());
        let crc = crc32fast::hash(&slot[..16]);
        slot[16..].copy_from_slice(&crc.to_le_bytes());
        let offset = (seq % 2) * SLOT as u64;
        self.file
            .write_all_at(&slot, offset)
            .and_then(|_| self.file.sync_data())
            .map_err(|source| StateError::Io {
                path: self.path.clone(),
                what: "writing the committed-sequence file",
                source,
            })
    }
}

/// Whether a path exists, treating "permission denied" as an error to report rather than "no".
pub fn exists(path: &Path) -> Result<bool, StateError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            what: "looking at",
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_alternate_and_survive_a_torn_one() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|source| StateError::Io {
            path: PathBuf::from("tmp"),
            what: "tempdir",
            source,
        })?;
        let p = dir.path().join("committed");
        let (mut f, seq) = SeqFile::open(&p, true)?;
        assert_eq!(seq, None);
        f.store(1)?;
        f.store(2)?;
        f.store(3)?;
        assert_eq!(SeqFile::open(&p, false)?.1, Some(3));
        // Tear slot 1 (holding 3): the other slot still says 2.
        let raw = OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(|source| StateError::Io {
                path: p.clone(),
                what: "test",
                source,
            });
        raw?.write_all_at(&[0xff; 4], SLOT as u64 + 9)
            .map_err(|source| StateError::Io {
                path: p.clone(),
                what: "test",
                source,
            })?;
        assert_eq!(SeqFile::open(&p, false)?.1, Some(2));
        Ok(())
    }
}
