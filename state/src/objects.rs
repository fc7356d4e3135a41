//! The content-addressed store of checkpointed outputs: `.wf/objects/ab/abcdef…` named by the
//! BLAKE3 hash of the content, written once (temporary name, fsync, rename, directory fsync), shared
//! by every checkpoint with that content. Symbolic links are never followed, in or out.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::durable::sync_dir;
use crate::error::StateError;
use crate::hashing;
use crate::safe;

pub struct Objects {
    root: PathBuf,
    dir: PathBuf,
    handles: Mutex<Option<Handles>>,
    /// Objects this process stored, or found stored and synced: durable, not synced again.
    durable: Mutex<HashSet<String>>,
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

/// Outputs up to this size are read into memory once, hashed, and written to the store from that
/// buffer (nothing is written when the object is already stored); larger ones are copied by the
/// kernel (a reflink where the filesystem offers one, else `copy_file_range` while another thread
/// hashes the private copy and starts its write-back: `hashing::copy_hashing`).
const SMALL: u64 = 1024 * 1024;

/// Blocks compared, and their size, when guessing that a large output is a stored object again
/// (`Objects::put_like`).
const SAMPLES: u64 = 16;
const SAMPLE: u64 = 4096;

#[cfg(test)]
thread_local! {
    /// Large outputs this thread copied into the store (what the tests of `put_like` count).
    static COPIES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Directory handles held for the life of an `Objects` (a run): the store and its `tmp`.
struct Handles {
    top: OwnedFd,
    tmp: OwnedFd,
}

impl Objects {
    pub fn new(root: &Path) -> Objects {
        Objects {
            root: root.to_path_buf(),
            dir: root.join("objects"),
            handles: Mutex::new(None),
            durable: Mutex::new(HashSet::new()),
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

    /// The held handles of `objects/` and `objects/tmp`, opened (never through a link) and, when
    /// they had to be created, made durable — once per `Objects`.
    fn handles(&self) -> Result<std::sync::MutexGuard<'_, Option<Handles>>, StateError> {
        let mut h = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        if h.is_none() {
            let tmp_path = self.dir.join("tmp");
            let new_store = matches!(
                safe::dir(&self.root, Path::new("objects/tmp"), false),
                Err(ref e) if e.kind() == std::io::ErrorKind::NotFound
            );
            let tmp = safe::dir(&self.root, Path::new("objects/tmp"), true)
                .map_err(io(&tmp_path, "creating the object store"))?;
            let top = safe::dir(&self.root, Path::new("objects"), false)
                .map_err(io(&self.dir, "creating the object store"))?;
            if new_store {
                // A new store's names must survive a power cut too: sync each directory created.
                safe::sync(&top).map_err(io(&self.dir, "syncing the directory"))?;
                sync_dir(&self.root)?;
            }
            *h = Some(Handles { top, tmp });
        }
        Ok(h)
    }

    /// Hash `src` and store it durably, once per content: an object already stored is not
    /// copied again (its fan-out directory is synced once per process, so its name is durable
    /// before a `done` that names it). What is stored is exactly what was hashed: a small output
    /// is hashed and written from one buffer; a large one is copied by the kernel (reflink or
    /// `copy_file_range`) into a private temporary file, and that copy is hashed — while it is
    /// being copied, on another thread, which also starts writing the copy back to the disk, so
    /// the fsync before the rename has little left to wait for.
    pub fn put(&self, src: &Path) -> Result<Stored, StateError> {
        self.put_like(src, || None)
    }

    /// [`Objects::put`], told which object the output probably holds again (`like`: the hash
    /// and size of its last checkpoint, e.g. of the same task with the same inputs; asked only
    /// for a large output). A large
    /// output of that size whose sampled blocks match that object's is hashed first (on every
    /// core, nothing written) and, when the hash names a stored object, not copied at all; any
    /// other is copied and hashed at once as [`Objects::put`] does. The guess only decides the
    /// order of the work: what is stored and returned is always the hash of the bytes read.
    pub fn put_like(
        &self,
        src: &Path,
        like: impl FnOnce() -> Option<(String, u64)>,
    ) -> Result<Stored, StateError> {
        let tmp_path = self.dir.join("tmp");
        let guard = self.handles()?;
        let Some(h) = guard.as_ref() else {
            return Err(StateError::Corrupt(
                "the object store's handles vanished; this is a bug".into(),
            ));
        };
        let reading = |e| StateError::Io {
            path: src.to_path_buf(),
            what: "reading an output to checkpoint",
            source: e,
        };
        let mut input = open_nofollow(src).map_err(reading)?;
        let size = input.metadata().map_err(reading)?.len();
        if size <= SMALL {
            // One read into memory; nothing is written when the object is already stored.
            let mut data = Vec::with_capacity(size as usize + 1);
            (&mut input)
                .take(SMALL + 1)
                .read_to_end(&mut data)
                .map_err(reading)?;
            if data.len() as u64 <= SMALL {
                let hash = blake3::hash(&data).to_hex().to_string();
                let bytes = data.len() as u64;
                if let Some(s) = self.stored(h, &hash, bytes)? {
                    return Ok(s);
                }
                let (mut out, tmp) = safe::create_temp(&h.tmp, "", safe::FILE_MODE, &tmp_path)
                    .map_err(io(&tmp_path, "creating an object"))?;
                if let Err(e) = out.write_all(&data) {
                    drop(out);
                    let _ = safe::remove_at(&h.tmp, Path::new(&tmp));
                    return Err(StateError::Io {
                        path: tmp_path.join(&tmp),
                        what: "copying an output into the object store",
                        source: e,
                    });
                }
                return self.place_file(h, &hash, bytes, &mut out, &tmp);
            }
            // It grew past the small size while being read: copy it as a large one.
        }
        if let Some((hash, bytes)) = like().filter(|&(_, bytes)| bytes == size) {
            if self.looks_like(h, &input, &hash, bytes) {
                // (An output that shrank meanwhile is not hashed here: the copy below stores it
                // as it is.)
                if let Ok(hash) = hashing::file(&input, size) {
                    if let Some(s) = self.stored(h, &hash, size)? {
                        return Ok(s);
                    }
                }
                // Another content after all: copied and hashed again below (what is stored is
                // named by the hash of the copy itself).
            }
        }
        #[cfg(test)]
        COPIES.with(|c| c.set(c.get() + 1));
        let (mut out, tmp) = safe::create_temp(&h.tmp, "", safe::FILE_MODE, &tmp_path)
            .map_err(io(&tmp_path, "creating an object"))?;
        let copied = (|| {
            let shown = tmp_path.join(&tmp);
            let copy = safe::open_at(&h.tmp, Path::new(&tmp), safe::How::Read, 0, &shown)?;
            if rustix::fs::ioctl_ficlone(&out, &input).is_ok() {
                // A reflink: the clone shares the output's blocks copy-on-write, so it is a
                // private copy that nothing else changes; hashed on every core.
                let len = copy.metadata()?.len();
                return Ok((hashing::file(&copy, len)?, len));
            }
            // Its size now (it may have grown past SMALL while read): what is stored, at most.
            let limit = input.metadata()?.len();
            // Copied by the kernel while another thread hashes the copy and starts writing it
            // back (or through memory where the kernel offers no copy).
            hashing::copy_hashing(&input, &out, &copy, limit).map(|(hash, n, _)| (hash, n))
        })();
        let (hash, bytes) = match copied {
            Ok(r) => r,
            Err(e) => {
                drop(out);
                let _ = safe::remove_at(&h.tmp, Path::new(&tmp));
                return Err(StateError::Io {
                    path: src.to_path_buf(),
                    what: "copying an output into the object store",
                    source: e,
                });
            }
        };
        let found = self.stored(h, &hash, bytes);
        if let Ok(None) = found {
            return self.place_file(h, &hash, bytes, &mut out, &tmp);
        }
        // Stored already (or an error): the copy is not needed.
        drop(out);
        let _ = safe::remove_at(&h.tmp, Path::new(&tmp));
        match found {
            Ok(Some(s)) => Ok(s),
            Ok(None) => unreachable!("handled above"),
            Err(e) => Err(e),
        }
    }

    /// Whether `input` (of `bytes` bytes) is probably the stored object `hash` of that size: the
    /// same bytes in [`SAMPLES`] blocks spread over the file, the first and the last among them
    /// (a few small reads, where a copy would read it all). False when the object is not stored
    /// (or not as a regular file of that size): a guess, never a verdict.
    fn looks_like(&self, h: &Handles, input: &File, hash: &str, bytes: u64) -> bool {
        use std::os::unix::fs::FileExt;
        if !valid_hash(hash) || bytes < SAMPLE {
            return false;
        }
        let parent_path = self.dir.join(&hash[..2]);
        let object = safe::dir_at(&h.top, Path::new(&hash[..2]), false, &parent_path)
            .and_then(|d| safe::open_at(&d, Path::new(hash), safe::How::Read, 0, &parent_path));
        let Ok(object) = object else {
            return false;
        };
        if !object
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() == bytes)
        {
            return false;
        }
        let (mut a, mut b) = (vec![0u8; SAMPLE as usize], vec![0u8; SAMPLE as usize]);
        let last = u128::from(bytes - SAMPLE);
        (0..SAMPLES).all(|i| {
            // Evenly spread from the first block to the last (exact: no overflow in u128).
            let at = (last * u128::from(i) / u128::from(SAMPLES - 1)) as u64;
            input.read_exact_at(&mut a, at).is_ok()
                && object.read_exact_at(&mut b, at).is_ok()
                && a == b
        })
    }

    /// The object `hash` if it is stored already (a regular file of `bytes` bytes), made durable
    /// once per process; None when it must be stored. A directory under its name is refused;
    /// anything else there (a link, a FIFO, a copy of another size: damaged) is replaced by the
    /// rename that stores it, never followed.
    fn stored(&self, h: &Handles, hash: &str, bytes: u64) -> Result<Option<Stored>, StateError> {
        use rustix::fs::FileType;
        if !valid_hash(hash) {
            return Err(StateError::Corrupt(
                "a BLAKE3 hash was not 64 hex digits; this is a bug".into(),
            ));
        }
        let parent_path = self.dir.join(&hash[..2]);
        let parent = match safe::dir_at(&h.top, Path::new(&hash[..2]), false, &parent_path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&parent_path, "reading the object store")(e)),
        };
        match safe::stat_at(&parent, Path::new(hash)) {
            Ok(Some(st))
                if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    && st.st_size as u64 == bytes =>
            {
                self.make_durable(&parent, hash, &parent_path)?;
                Ok(Some(Stored {
                    hash: hash.to_string(),
                    bytes,
                    new: false,
                }))
            }
            Ok(Some(st)) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Err(safe::refusal(&parent_path.join(hash)))
            }
            Ok(_) => Ok(None),
            Err(e) => Err(io(&parent_path, "reading the object store")(e)),
        }
    }

    /// fsync the temporary file `tmp` (holding content `hash`), rename it into its fan-out
    /// directory and sync that directory (and the store's, for a new fan-out directory).
    fn place_file(
        &self,
        h: &Handles,
        hash: &str,
        bytes: u64,
        out: &mut File,
        tmp: &str,
    ) -> Result<Stored, StateError> {
        let tmp_path = self.dir.join("tmp");
        let parent_path = self.dir.join(&hash[..2]);
        let fail = |e: StateError| {
            let _ = safe::remove_at(&h.tmp, Path::new(tmp));
            e
        };
        out.sync_all().map_err(|e| {
            fail(StateError::Io {
                path: tmp_path.join(tmp),
                what: "copying an output into the object store",
                source: e,
            })
        })?;
        if bytes > SMALL {
            // Written now: a large object's last pages leave the page cache too (the copy let go
            // of the others as it went; a stored object is read again only to restore it).
            let _ = rustix::fs::fadvise(&*out, 0, None, rustix::fs::Advice::DontNeed);
        }
        let fanout = Path::new(&hash[..2]);
        let (parent, existed) = match safe::dir_at(&h.top, fanout, false, &parent_path) {
            Ok(d) => (d, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let d = safe::dir_at(&h.top, fanout, true, &parent_path)
                    .map_err(|e| fail(io(&parent_path, "creating the object store")(e)))?;
                (d, false)
            }
            Err(e) => return Err(fail(io(&parent_path, "creating the object store")(e))),
        };
        let target = parent_path.join(hash);
        safe::rename_at(&h.tmp, Path::new(tmp), &parent, Path::new(hash))
            .map_err(|e| fail(io(&target, "storing an object")(e)))?;
        safe::sync(&parent).map_err(io(&parent_path, "syncing the directory"))?;
        if !existed {
            safe::sync(&h.top).map_err(io(&self.dir, "syncing the directory"))?;
        }
        self.durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash.to_string());
        Ok(Stored {
            hash: hash.to_string(),
            bytes,
            new: true,
        })
    }

    /// An object found in the store is durable once this process synced it and its directory
    /// (a copy another wf renamed into place but had not synced yet, before a crash, is made
    /// durable before anything names it).
    fn make_durable(
        &self,
        parent: &OwnedFd,
        hash: &str,
        parent_path: &Path,
    ) -> Result<(), StateError> {
        let mut durable = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        if durable.contains(hash) {
            return Ok(());
        }
        let obj = parent_path.join(hash);
        let f = safe::open_at(parent, Path::new(hash), safe::How::Read, 0, &obj)
            .map_err(io(&obj, "syncing an object"))?;
        f.sync_all().map_err(io(&obj, "syncing an object"))?;
        safe::sync(parent).map_err(io(parent_path, "syncing the directory"))?;
        durable.insert(hash.to_string());
        Ok(())
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
            let file = match opened {
                Ok(f) => f,
                Err(e) => {
                    bad.push((hash, format!("cannot be read ({e})")));
                    continue;
                }
            };
            let hashed = file
                .metadata()
                .and_then(|m| hashing::file(&file, m.len()).map(|h| (h, m.len())));
            match hashed {
                Ok((got, n)) => {
                    progress(n);
                    if got != hash {
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
    fn a_large_output_like_a_stored_object_is_hashed_not_copied_and_a_wrong_guess_costs_only_time(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let copies = || COPIES.with(|c| c.get());
        let d = tempfile::tempdir()?;
        let objects = Objects::new(&d.path().join(".wf"));
        let len = 5 * SMALL as usize + 4321;
        let data: Vec<u8> = (0..len).map(|i| (i * 29 % 239) as u8).collect();
        let src = d.path().join("big");
        std::fs::write(&src, &data)?;
        let first = objects.put(&src)?;
        assert!(first.new);
        let like = || Some((first.hash.clone(), first.bytes));
        // The same content again, told so: hashed, found stored, not copied.
        let before = copies();
        let again = objects.put_like(&src, like)?;
        assert_eq!(
            (again.hash.as_str(), again.new),
            (first.hash.as_str(), false)
        );
        assert_eq!(copies(), before, "an object already stored was copied");
        // Wrong guesses: the same size with one byte changed where no sample looks, at a
        // sampled place (the last byte), and a guess naming no stored object or another size.
        let changed = [
            (len / 2 + 3 * SAMPLE as usize / 2, "between samples"),
            (len - 1, "last byte"),
            (0, "first byte"),
        ];
        for (at, what) in changed {
            let before = copies();
            let mut other = data.clone();
            other[at] ^= 0x5a;
            std::fs::write(&src, &other)?;
            let s = objects.put_like(&src, like)?;
            let want = blake3::hash(&other).to_hex().to_string();
            assert_eq!(s.hash, want, "{what}");
            assert!(s.new, "{what}");
            assert_eq!(
                std::fs::read(objects.path(&s.hash).ok_or("no path")?)?,
                other,
                "{what}"
            );
            assert_eq!(copies(), before + 1, "{what}: copied once");
            assert!(objects.remove(&s.hash)? > 0);
        }
        std::fs::write(&src, &data)?;
        for guess in [
            ("0".repeat(64), first.bytes),
            (first.hash.clone(), first.bytes + 1),
            ("not a hash".to_string(), first.bytes),
        ] {
            let s = objects.put_like(&src, || Some(guess.clone()))?;
            assert_eq!((s.hash.as_str(), s.new), (first.hash.as_str(), false));
        }
        assert_eq!(std::fs::read_dir(objects.dir().join("tmp"))?.count(), 0);
        Ok(())
    }

    #[test]
    fn large_outputs_are_copied_by_the_kernel_and_hashed_exactly(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let objects = Objects::new(&d.path().join(".wf"));
        let big: Vec<u8> = (0..3 * SMALL as usize + 17)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(d.path().join("big"), &big)?;
        let a = objects.put(&d.path().join("big"))?;
        assert!(a.new);
        assert_eq!(a.hash, blake3::hash(&big).to_hex().to_string());
        assert_eq!(a.bytes, big.len() as u64);
        let stored = std::fs::read(objects.path(&a.hash).ok_or("no path")?)?;
        assert_eq!(stored, big);
        // The same content again: not stored twice, and no temporary file left behind.
        std::fs::write(d.path().join("big2"), &big)?;
        let b = objects.put(&d.path().join("big2"))?;
        assert!(!b.new);
        assert_eq!(b.hash, a.hash);
        assert_eq!(std::fs::read_dir(objects.dir().join("tmp"))?.count(), 0);
        objects.copy_out(&a.hash, d.path(), "out/big")?;
        assert_eq!(std::fs::read(d.path().join("out/big"))?, big);
        Ok(())
    }

    #[test]
    fn every_size_around_the_boundaries_is_stored_exactly_and_verified(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let objects = Objects::new(&d.path().join(".wf"));
        let mib = 1024 * 1024;
        // The small/large switch, the copy's 8 MiB steps, the hash's 4 MiB subtrees.
        let sizes = [
            SMALL as usize,
            SMALL as usize + 1,
            4 * mib + 1,
            8 * mib - 1,
            8 * mib,
            8 * mib + 1,
            9 * mib + 1000,
        ];
        for (n, size) in sizes.into_iter().enumerate() {
            let data: Vec<u8> = (0..size).map(|i| (i * 13 % 241) as u8 ^ n as u8).collect();
            let src = d.path().join(format!("out{n}"));
            std::fs::write(&src, &data)?;
            let a = objects.put(&src)?;
            assert!(a.new, "size {size}");
            assert_eq!(
                a.hash,
                blake3::hash(&data).to_hex().to_string(),
                "size {size}"
            );
            assert_eq!(a.bytes, size as u64);
            assert_eq!(
                std::fs::read(objects.path(&a.hash).ok_or("no path")?)?,
                data
            );
            assert!(!objects.put(&src)?.new, "size {size}: stored twice");
        }
        assert_eq!(std::fs::read_dir(objects.dir().join("tmp"))?.count(), 0);
        assert!(objects.verify(|_| {})?.is_empty());
        // One byte rotted in the middle of the largest: `verify` (hashing on every core) names it.
        let data: Vec<u8> = (0..9 * mib + 1000)
            .map(|i| (i * 13 % 241) as u8 ^ 6)
            .collect();
        let path = objects
            .path(blake3::hash(&data).to_hex().as_str())
            .ok_or("no path")?;
        let mut rotten = data.clone();
        rotten[5 * mib + 3] ^= 1;
        std::fs::write(&path, &rotten)?;
        let bad = objects.verify(|_| {})?;
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, blake3::hash(&data).to_hex().to_string());
        Ok(())
    }

    #[test]
    fn a_stored_copy_of_another_size_is_replaced() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let objects = Objects::new(&d.path().join(".wf"));
        std::fs::write(d.path().join("a"), b"hello")?;
        let a = objects.put(&d.path().join("a"))?;
        let path = objects.path(&a.hash).ok_or("no path")?;
        std::fs::write(&path, b"hell")?;
        // A fresh Objects (another run): the damaged copy is found by its size and replaced.
        let again = Objects::new(&d.path().join(".wf")).put(&d.path().join("a"))?;
        assert!(again.new);
        assert_eq!(std::fs::read(&path)?, b"hello");
        // A symbolic link planted under an object's name is replaced, never written through.
        std::fs::write(d.path().join("victim"), b"v")?;
        std::fs::write(d.path().join("c"), b"other")?;
        let c_hash = blake3::hash(b"other").to_hex().to_string();
        let c_path = objects.path(&c_hash).ok_or("no path")?;
        std::fs::create_dir_all(c_path.parent().ok_or("no parent")?)?;
        std::os::unix::fs::symlink(d.path().join("victim"), &c_path)?;
        let c = Objects::new(&d.path().join(".wf")).put(&d.path().join("c"))?;
        assert!(c.new);
        assert_eq!(std::fs::read(d.path().join("victim"))?, b"v");
        assert!(!std::fs::symlink_metadata(&c_path)?.file_type().is_symlink());
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
