//! The content-addressed store of checkpointed outputs: `.wf/objects/ab/abcdef…` named by the
//! BLAKE3 hash of the content, written once (temporary name, fsync, rename, directory fsync), shared
//! by every checkpoint with that content. Symbolic links are never followed, in or out.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::durable::sync_dir;
use crate::error::StateError;

pub struct Objects {
    dir: PathBuf,
}

/// What storing a file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub hash: String,
    pub bytes: u64,
    /// False when an object with this content was already stored.
    pub new: bool,
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { path, what, source }
}

const NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// Open a file for reading without following a symbolic link at its last component.
pub fn open_nofollow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(NOFOLLOW)
        .open(path)
}

fn valid_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Objects {
    pub fn new(root: &Path) -> Objects {
        Objects {
            dir: root.join("objects"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the object with this hash lives (None for a string that is not a hash).
    pub fn path(&self, hash: &str) -> Option<PathBuf> {
        valid_hash(hash).then(|| self.dir.join(&hash[..2]).join(hash))
    }

    pub fn has(&self, hash: &str) -> bool {
        self.path(hash)
            .and_then(|p| std::fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_file())
    }

    /// Hash `src` (streaming) and store it durably, once per content.
    pub fn put(&self, src: &Path) -> Result<Stored, StateError> {
        let tmp_dir = self.dir.join("tmp");
        if !tmp_dir.is_dir() {
            // A new store's names must survive a power cut too: sync each directory created.
            std::fs::create_dir_all(&tmp_dir).map_err(io(&tmp_dir, "creating the object store"))?;
            sync_dir(&self.dir)?;
            if let Some(root) = self.dir.parent() {
                sync_dir(root)?;
            }
        }
        let mut input = open_nofollow(src).map_err(io(src, "reading an output to checkpoint"))?;
        let tmp = tmp_dir.join(format!(
            "{}.{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let mut out = File::create(&tmp).map_err(io(&tmp, "creating an object"))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut bytes = 0u64;
        let copied = (|| -> std::io::Result<()> {
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                bytes += n as u64;
            }
            out.sync_all()
        })();
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(src, "copying an output into the object store")(e));
        }
        drop(out);
        let hash = hasher.finalize().to_hex().to_string();
        let Some(target) = self.path(&hash) else {
            let _ = std::fs::remove_file(&tmp);
            return Err(StateError::Corrupt(
                "a BLAKE3 hash was not 64 hex digits; this is a bug".into(),
            ));
        };
        if target.is_file() {
            let _ = std::fs::remove_file(&tmp);
            return Ok(Stored {
                hash,
                bytes,
                new: false,
            });
        }
        let parent = target.parent().unwrap_or(&self.dir).to_path_buf();
        let new_parent = !parent.is_dir();
        std::fs::create_dir_all(&parent).map_err(io(&parent, "creating the object store"))?;
        std::fs::rename(&tmp, &target).map_err(io(&target, "storing an object"))?;
        sync_dir(&parent)?;
        if new_parent {
            sync_dir(&self.dir)?;
        }
        Ok(Stored {
            hash,
            bytes,
            new: true,
        })
    }

    /// Copy an object to `dest` atomically: a temporary file beside it, fsync, rename over it.
    pub fn copy_out(&self, hash: &str, dest: &Path) -> Result<u64, StateError> {
        let src = self
            .path(hash)
            .ok_or_else(|| StateError::Corrupt(format!("`{hash}` is not an object hash")))?;
        let mut input = open_nofollow(&src).map_err(io(&src, "reading a stored object"))?;
        let parent = dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&parent).map_err(io(&parent, "creating an output directory"))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.wf-restore.{}", std::process::id()));
        let result = (|| -> std::io::Result<u64> {
            let mut out = File::create(&tmp)?;
            let n = std::io::copy(&mut input, &mut out)?;
            out.sync_all()?;
            Ok(n)
        })();
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(dest, "restoring an output")(e));
            }
        };
        // A symbolic link at the destination is replaced, never written through.
        std::fs::rename(&tmp, dest).map_err(io(dest, "restoring an output"))?;
        sync_dir(&parent)?;
        Ok(n)
    }

    /// Delete an object; returns the bytes freed (0 when it was already gone). Only a regular
    /// file inside the store is ever removed.
    pub fn remove(&self, hash: &str) -> Result<u64, StateError> {
        let Some(path) = self.path(hash) else {
            return Ok(0);
        };
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {
                std::fs::remove_file(&path).map_err(io(&path, "deleting an object"))?;
                Ok(m.len())
            }
            // A link or anything else planted in the store is left alone.
            Ok(_) => Ok(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&path, "deleting an object")(e)),
        }
    }

    /// Make deletions durable: sync the directories objects were removed from.
    pub fn sync_removals(&self, hashes: &[String]) -> Result<(), StateError> {
        let mut dirs: Vec<PathBuf> = hashes
            .iter()
            .filter_map(|h| self.path(h))
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        for d in dirs.iter().filter(|d| d.is_dir()) {
            sync_dir(d)?;
        }
        Ok(())
    }

    /// Every object in the store (regular files with an object's name, never through a link),
    /// one fan-out directory at a time.
    pub fn each(&self, mut f: impl FnMut(&str)) -> Result<(), StateError> {
        let Ok(dirs) = std::fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for d in dirs.flatten() {
            let name = d.file_name();
            let Some(prefix) = name.to_str() else {
                continue;
            };
            if prefix.len() != 2 || !d.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let entries = std::fs::read_dir(d.path()).map_err(io(&d.path(), "listing objects"))?;
            for e in entries.flatten() {
                let name = e.file_name();
                if let Some(hash) = name.to_str() {
                    if valid_hash(hash)
                        && hash.starts_with(prefix)
                        && e.file_type().is_ok_and(|t| t.is_file())
                    {
                        f(hash);
                    }
                }
            }
        }
        Ok(())
    }

    /// Remove what an interrupted copy left in `objects/tmp` (the caller holds the writer lock,
    /// so nothing is being copied now). Returns the bytes freed.
    pub fn clean_tmp(&self) -> Result<u64, StateError> {
        let tmp = self.dir.join("tmp");
        let Ok(entries) = std::fs::read_dir(&tmp) else {
            return Ok(0);
        };
        let mut freed = 0;
        let mut removed = false;
        for e in entries.flatten() {
            if let Ok(m) = std::fs::symlink_metadata(e.path()) {
                if m.is_file() && std::fs::remove_file(e.path()).is_ok() {
                    freed += m.len();
                    removed = true;
                }
            }
        }
        if removed {
            sync_dir(&tmp)?;
        }
        Ok(freed)
    }

    /// Whether the store's directory (and its parent) are real directories, not links.
    pub fn is_safe(&self) -> bool {
        [self.dir.parent(), Some(self.dir.as_path())]
            .into_iter()
            .flatten()
            .all(|d| {
                std::fs::symlink_metadata(d)
                    .map(|m| m.is_dir())
                    .unwrap_or(true)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_dedupes_and_copy_out_is_exact() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let objects = Objects::new(&d.path().join(".wf"));
        std::fs::write(d.path().join("a"), b"hello")?;
        std::fs::write(d.path().join("b"), b"hello")?;
        let a = objects.put(&d.path().join("a"))?;
        let b = objects.put(&d.path().join("b"))?;
        assert!(a.new && !b.new);
        assert_eq!(a.hash, blake3::hash(b"hello").to_hex().to_string());
        assert_eq!(a.bytes, 5);
        objects.copy_out(&a.hash, &d.path().join("out/c"))?;
        assert_eq!(std::fs::read(d.path().join("out/c"))?, b"hello");
        assert_eq!(objects.remove(&a.hash)?, 5);
        assert!(!objects.has(&a.hash));
        assert_eq!(objects.remove(&a.hash)?, 0);
        Ok(())
    }

    #[test]
    fn links_are_not_followed() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let objects = Objects::new(&d.path().join(".wf"));
        std::fs::write(d.path().join("secret"), b"s")?;
        std::os::unix::fs::symlink(d.path().join("secret"), d.path().join("link"))?;
        assert!(objects.put(&d.path().join("link")).is_err());
        Ok(())
    }
}
