//! The content-addressed store of checkpointed outputs: `.wf/objects/ab/abcdef…` named by the
//! BLAKE3 hash of the content, written once (temporary name, fsync, rename, directory fsync), shared
//! by every checkpoint with that content. Symbolic links are never followed, in or out.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::durable::sync_dir;
use crate::error::StateError;
use crate::safe;

pub struct Objects {
    root: PathBuf,
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
    safe::state_err(path, what)
}

const NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// Open a file for reading without following a symbolic link at its last component; only a
/// regular file (a FIFO put in its place is refused, without blocking).
pub fn open_nofollow(path: &Path) -> std::io::Result<File> {
    let nonblock = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(NOFOLLOW | nonblock)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let fl = rustix::fs::fcntl_getfl(&f)?;
    rustix::fs::fcntl_setfl(&f, fl - rustix::fs::OFlags::NONBLOCK)?;
    Ok(f)
}

fn valid_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Copy `input` to `out` and hash what went through (one read of the data).
fn copy_hashing(input: &mut File, out: &mut File) -> std::io::Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        bytes += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), bytes))
}

impl Objects {
    pub fn new(root: &Path) -> Objects {
        Objects {
            root: root.to_path_buf(),
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

    fn rel(hash: &str) -> PathBuf {
        Path::new("objects").join(&hash[..2])
    }

    pub fn has(&self, hash: &str) -> bool {
        valid_hash(hash)
            && safe::dir(&self.root, &Self::rel(hash), false)
                .ok()
                .and_then(|d| safe::kind_at(&d, Path::new(hash)).ok().flatten())
                .is_some_and(|k| k == rustix::fs::FileType::RegularFile)
    }

    /// Hash `src` (streaming) and store it durably, once per content.
    pub fn put(&self, src: &Path) -> Result<Stored, StateError> {
        let tmp_rel = Path::new("objects/tmp");
        let tmp_path = self.dir.join("tmp");
        let new_store = !self.dir.join("tmp").is_dir();
        let tmp_dir = safe::dir(&self.root, tmp_rel, true)
            .map_err(io(&tmp_path, "creating the object store"))?;
        if new_store {
            // A new store's names must survive a power cut too: sync each directory created.
            sync_dir(&self.dir)?;
            sync_dir(&self.root)?;
        }
        let mut input = open_nofollow(src).map_err(|e| StateError::Io {
            path: src.to_path_buf(),
            what: "reading an output to checkpoint",
            source: e,
        })?;
        let (mut out, tmp) = safe::create_temp(&tmp_dir, "", safe::FILE_MODE, &tmp_path)
            .map_err(io(&tmp_path, "creating an object"))?;
        let copied = copy_hashing(&mut input, &mut out).and_then(|r| out.sync_all().map(|_| r));
        drop(out);
        let (hash, bytes) = match copied {
            Ok(r) => r,
            Err(e) => {
                let _ = safe::remove_at(&tmp_dir, Path::new(&tmp));
                return Err(StateError::Io {
                    path: src.to_path_buf(),
                    what: "copying an output into the object store",
                    source: e,
                });
            }
        };
        if !valid_hash(&hash) {
            let _ = safe::remove_at(&tmp_dir, Path::new(&tmp));
            return Err(StateError::Corrupt(
                "a BLAKE3 hash was not 64 hex digits; this is a bug".into(),
            ));
        }
        let parent_path = self.dir.join(&hash[..2]);
        let new_parent = !parent_path.is_dir();
        let parent = safe::dir(&self.root, &Self::rel(&hash), true)
            .map_err(io(&parent_path, "creating the object store"))?;
        // An object already stored is replaced by the fresh, verified copy (a rename: no extra
        // read), so a stored copy that rotted is healed by the next run that makes it.
        // Anything else planted under the object's name (a link, a FIFO) is replaced by the
        // rename too — never followed, never written through; a directory there is refused.
        let existed = match safe::kind_at(&parent, Path::new(&hash)) {
            Ok(Some(rustix::fs::FileType::RegularFile)) => true,
            Ok(Some(rustix::fs::FileType::Directory)) => {
                let _ = safe::remove_at(&tmp_dir, Path::new(&tmp));
                return Err(safe::refusal(&parent_path.join(&hash)));
            }
            _ => false,
        };
        let target = parent_path.join(&hash);
        safe::rename_at(&tmp_dir, Path::new(&tmp), &parent, Path::new(&hash))
            .map_err(io(&target, "storing an object"))?;
        safe::sync(&parent).map_err(io(&parent_path, "syncing the directory"))?;
        if new_parent {
            sync_dir(&self.dir)?;
        }
        Ok(Stored {
            hash,
            bytes,
            new: !existed,
        })
    }

    /// Copy the object `hash` to `rel` below the directory `base` (the workflow directory),
    /// atomically: a new file with an unpredictable name beside it (created exclusively, never
    /// through a link), hashed while it is copied, fsynced, then renamed over `rel` — a link at
    /// `rel` is replaced, never written through, and no directory on the way may be a link.
    /// An object whose content no longer matches its hash is never put in place: the error
    /// names it (`StateError::Rotten`) and nothing in the workspace changes.
    pub fn copy_out(&self, hash: &str, base: &Path, rel: &str) -> Result<u64, StateError> {
        if !valid_hash(hash) {
            return Err(StateError::Corrupt(format!(
                "`{hash}` is not an object hash"
            )));
        }
        let src = self.dir.join(&hash[..2]).join(hash);
        let objdir = safe::dir(&self.root, &Self::rel(hash), false)
            .map_err(io(&src, "reading a stored object"))?;
        let mut input = safe::open_at(&objdir, Path::new(hash), safe::How::Read, 0, &src)
            .map_err(io(&src, "reading a stored object"))?;
        let dest = base.join(rel);
        let rel = Path::new(rel);
        let (parent_rel, name) = match (rel.parent(), rel.file_name()) {
            (Some(p), Some(n)) => (p, n.to_string_lossy().into_owned()),
            _ => {
                return Err(StateError::Corrupt(format!(
                    "`{}` is not a file path inside the workflow directory",
                    rel.display()
                )))
            }
        };
        // Output directories are the workspace's: ordinary modes (the umask wf started with).
        let dir_mode = 0o777 & !safe::original_umask();
        let parent = safe::dir_in(base, parent_rel, Some(dir_mode)).map_err(|e| match safe::planted(&e) {
            Some(p) => StateError::Io {
                path: p.to_path_buf(),
                what: "restoring an output (a symbolic link is on the way; wf never writes through one)",
                source: e,
            },
            None => StateError::Io {
                path: dest.clone(),
                what: "creating an output directory",
                source: e,
            },
        })?;
        let parent_path = dest.parent().unwrap_or(base).to_path_buf();
        let mode = 0o666 & !safe::original_umask();
        let (mut out, tmp) =
            safe::create_temp(&parent, &format!(".{name}.wf-restore."), mode, &parent_path)
                .and_then(|(f, t)| {
                    // The mode a file the task wrote would have (wf's own umask is private).
                    rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(mode as _))?;
                    Ok((f, t))
                })
                .map_err(|e| StateError::Io {
                    path: dest.clone(),
                    what: "restoring an output",
                    source: e,
                })?;
        let result = copy_hashing(&mut input, &mut out).and_then(|r| out.sync_all().map(|_| r));
        drop(out);
        let fail = |e| {
            let _ = safe::remove_at(&parent, Path::new(&tmp));
            e
        };
        let (got, n) = result.map_err(|e| {
            fail(StateError::Io {
                path: dest.clone(),
                what: "restoring an output",
                source: e,
            })
        })?;
        if got != hash {
            return Err(fail(StateError::Rotten {
                hash: hash.to_string(),
                path: src,
            }));
        }
        safe::rename_at(&parent, Path::new(&tmp), &parent, Path::new(&name)).map_err(|e| {
            fail(StateError::Io {
                path: dest.clone(),
                what: "restoring an output",
                source: e,
            })
        })?;
        safe::sync(&parent).map_err(|e| StateError::Io {
            path: parent_path,
            what: "syncing the directory",
            source: e,
        })?;
        Ok(n)
    }

    /// Delete an object; returns the bytes freed (0 when it was already gone). Only a regular
    /// file inside the store is ever removed, never through a link.
    pub fn remove(&self, hash: &str) -> Result<u64, StateError> {
        let Some(path) = self.path(hash) else {
            return Ok(0);
        };
        let rel = Self::rel(hash).join(hash);
        safe::remove(&self.root, &rel)
            .map(|n| n.unwrap_or(0))
            .map_err(io(&path, "deleting an object"))
    }

    /// Every object in the store (regular files with an object's name, never through a link),
    /// one fan-out directory at a time.
    pub fn each(&self, mut f: impl FnMut(&str)) -> Result<(), StateError> {
        use rustix::fs::FileType;
        let top = match safe::dir(&self.root, Path::new("objects"), false) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&self.dir, "listing objects")(e)),
        };
        for (name, kind) in safe::list(&top).map_err(io(&self.dir, "listing objects"))? {
            let Some(prefix) = name.to_str() else {
                continue;
            };
            if prefix.len() != 2 || kind != FileType::Directory {
                continue;
            }
            let p = self.dir.join(prefix);
            let d = safe::dir(&self.root, &Path::new("objects").join(prefix), false)
                .map_err(io(&p, "listing objects"))?;
            for (name, kind) in safe::list(&d).map_err(io(&p, "listing objects"))? {
                if let Some(hash) = name.to_str() {
                    if valid_hash(hash) && hash.starts_with(prefix) && kind == FileType::RegularFile
                    {
                        f(hash);
                    }
                }
            }
        }
        Ok(())
    }

    /// Check every object against its name (`wf state verify`): the hash of each object whose
    /// content no longer matches, or that cannot be read, with why.
    pub fn verify(
        &self,
        mut progress: impl FnMut(u64),
    ) -> Result<Vec<(String, String)>, StateError> {
        let mut hashes = Vec::new();
        self.each(|h| hashes.push(h.to_string()))?;
        let mut bad = Vec::new();
        for hash in hashes {
            let src = self.dir.join(&hash[..2]).join(&hash);
            let opened = safe::dir(&self.root, &Self::rel(&hash), false)
                .and_then(|d| safe::open_at(&d, Path::new(&hash), safe::How::Read, 0, &src));
            let mut file = match opened {
                Ok(f) => f,
                Err(e) => {
                    bad.push((hash, format!("cannot be read ({e})")));
                    continue;
                }
            };
            let mut hasher = blake3::Hasher::new();
            match std::io::copy(&mut file, &mut hasher) {
                Ok(n) => {
                    progress(n);
                    if hasher.finalize().to_hex().as_str() != hash {
                        bad.push((hash, "its content does not match its hash".into()));
                    }
                }
                Err(e) => bad.push((hash, format!("cannot be read ({e})"))),
            }
        }
        Ok(bad)
    }

    /// Remove what an interrupted copy left in `objects/tmp` (the caller holds the writer lock,
    /// so nothing is being copied now). Only regular files there, never through a link.
    /// Returns the bytes freed.
    pub fn clean_tmp(&self) -> Result<u64, StateError> {
        let p = self.dir.join("tmp");
        let tmp = match safe::dir(&self.root, Path::new("objects/tmp"), false) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&p, "cleaning the object store")(e)),
        };
        let mut freed = 0;
        let mut removed = false;
        for (name, kind) in safe::list(&tmp).map_err(io(&p, "cleaning the object store"))? {
            if kind != rustix::fs::FileType::RegularFile {
                continue;
            }
            if let Ok(Some(n)) = safe::remove_at(&tmp, Path::new(&name)) {
                freed += n;
                removed = true;
            }
        }
        if removed {
            safe::sync(&tmp).map_err(io(&p, "syncing the directory"))?;
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
        objects.copy_out(&a.hash, d.path(), "out/c")?;
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
