//! Access inside the state directory that never follows a symbolic link. A path below the state
//! directory is walked one component at a time from a handle on the directory (`openat` with
//! `O_NOFOLLOW | O_DIRECTORY`), so a link planted where wf keeps its own directories or files
//! (`objects/tmp`, `objects/ab`, `logs`, `logs/7/a.1.log`, `lock`, …) is found and refused
//! instead of leading wf to create, write, truncate or delete something elsewhere. Files and
//! directories wf creates are 0600 / 0700 whatever the umask, and temporary names are
//! unpredictable and created exclusively.

use std::fs::File;
use std::io::{Error, ErrorKind, Result};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};

use crate::error::StateError;

/// The payload of the error a planted link (or a file where a directory belongs) gives.
#[derive(Debug)]
pub struct Planted(pub PathBuf);

impl std::fmt::Display for Planted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is a symbolic or hard link, or not the kind of file wf keeps there",
            self.0.display()
        )
    }
}

impl std::error::Error for Planted {}

/// The path of the planted link an error reports, if it is one.
pub fn planted(e: &Error) -> Option<&Path> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<Planted>())
        .map(|p| p.0.as_path())
}

fn planted_err(path: PathBuf) -> Error {
    Error::other(Planted(path))
}

/// The refusal for a link (or a foreign kind of file) where wf keeps its own file or directory.
pub fn refusal(path: &Path) -> StateError {
    StateError::Corrupt(format!(
        "{} is a symbolic or hard link, or another kind of file, where wf keeps its own; wf never \
         follows links inside its state directory — put wf's own file or directory there (for a \
         link you made yourself, a copy of what it points to) or remove it, then run the command \
         again (nothing was changed)",
        path.display()
    ))
}

/// An I/O error in the state directory as the state crate reports it: a planted link is
/// refused (exit 5), anything else is an I/O failure naming `path`.
pub fn state_err(path: &Path, what: &'static str) -> impl FnOnce(Error) -> StateError {
    let path = path.to_path_buf();
    move |e| match planted(&e) {
        Some(p) => refusal(p),
        None => StateError::Io {
            path,
            what,
            source: e,
        },
    }
}

/// The private modes of what wf creates in its state directory.
pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

fn components(rel: &Path) -> Result<Vec<&std::ffi::OsStr>> {
    rel.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a path inside the directory", rel.display()),
            )),
        })
        .collect()
}

/// Open one directory below `at` without following a link; with `create`, make it (with
/// `mode`) when it is missing.
fn step(
    at: &OwnedFd,
    name: &std::ffi::OsStr,
    shown: &Path,
    create: Option<u32>,
) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(at, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOENT) if create.is_some() => {
            let mode = create.unwrap_or(DIR_MODE);
            match rustix::fs::mkdirat(at, name, Mode::from_raw_mode(mode)) {
                Ok(()) => {
                    let fd = rustix::fs::openat(at, name, flags, Mode::empty())
                        .map_err(|e| classify(e, shown))?;
                    // Exactly this mode, whatever the umask took away or the caller's mask.
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
                    Ok(fd)
                }
                Err(rustix::io::Errno::EXIST) => rustix::fs::openat(at, name, flags, Mode::empty())
                    .map_err(|e| classify(e, shown)),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(classify(e, shown)),
    }
}

fn classify(e: rustix::io::Errno, shown: &Path) -> Error {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::MLINK => {
            planted_err(shown.to_path_buf())
        }
        e => e.into(),
    }
}

/// A handle on the directory `rel` below `base` (`base` itself when `rel` is empty), reached
/// without following a link below `base`. With `create`, missing directories are made with
/// `mode` (`base` too). `base` itself may be reached through links: that is the user's choice.
pub fn dir_in(base: &Path, rel: &Path, create: Option<u32>) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut fd = match rustix::fs::openat(CWD, base, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) if create.is_some() => {
            let mut b = std::fs::DirBuilder::new();
            std::os::unix::fs::DirBuilderExt::mode(&mut b, create.unwrap_or(DIR_MODE));
            b.recursive(true).create(base)?;
            rustix::fs::openat(CWD, base, flags, Mode::empty())?
        }
        Err(e) => return Err(e.into()),
    };
    let mut shown = base.to_path_buf();
    for name in components(rel)? {
        shown.push(name);
        fd = step(&fd, name, &shown, create)?;
    }
    Ok(fd)
}

/// A handle on the directory `rel` below the directory handle `at` (private when created with
/// `create`), never through a link; `shown` names it in errors.
pub fn dir_at(at: &OwnedFd, rel: &Path, create: bool, shown: &Path) -> Result<OwnedFd> {
    let mut fd: Option<OwnedFd> = None;
    for name in components(rel)? {
        let next = step(
            fd.as_ref().unwrap_or(at),
            name,
            shown,
            create.then_some(DIR_MODE),
        )?;
        fd = Some(next);
    }
    match fd {
        Some(fd) => Ok(fd),
        None => Ok(at.try_clone()?),
    }
}

/// The status of `name` in `dir`, not following a link (None when it does not exist).
pub fn stat_at(dir: &OwnedFd, name: &Path) -> Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A handle on the state directory's subdirectory `rel` (private when created).
pub fn dir(root: &Path, rel: &Path, create: bool) -> Result<OwnedFd> {
    dir_in(root, rel, create.then_some(DIR_MODE))
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Read,
    /// Read and write, created when missing, not truncated.
    Update,
    /// Append, created when missing.
    Append,
    /// Write, created or truncated.
    Replace,
    /// Write a new file; an existing name (even a dangling link) is an error.
    New,
}

/// Open `name` in the directory `dir` without following a link; only a regular file is ever
/// opened (a FIFO or a device planted there is refused without blocking).
pub fn open_at(dir: &OwnedFd, name: &Path, how: How, mode: u32, shown: &Path) -> Result<File> {
    let base = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let flags = base
        | match how {
            How::Read => OFlags::RDONLY,
            How::Update => OFlags::RDWR | OFlags::CREATE,
            How::Append => OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE,
            How::Replace => OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
            How::New => OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        };
    let flags = if how == How::Replace {
        // Truncate only once the file is known to be a regular file (a FIFO or device is not).
        flags & !OFlags::TRUNC
    } else {
        flags
    };
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode))
        .map_err(|e| classify(e, shown))?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(planted_err(shown.to_path_buf()));
    }
    // A file wf writes has one name, its own: a hard link planted in the state directory to a
    // file elsewhere would have wf write into that file.
    if how != How::Read && st.st_nlink > 1 {
        return Err(planted_err(shown.to_path_buf()));
    }
    // Back to blocking I/O for a regular file (O_NONBLOCK only kept a FIFO from blocking).
    let fl = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, fl & !OFlags::NONBLOCK)?;
    let file = File::from(fd);
    if how == How::Replace {
        file.set_len(0)?;
    }
    Ok(file)
}

fn split(rel: &Path) -> Result<(&Path, &Path)> {
    let name = rel
        .file_name()
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "no file name"))?;
    Ok((rel.parent().unwrap_or(Path::new("")), Path::new(name)))
}

/// Open the file `rel` below the state directory `root` (its directories made when the file may
/// be created), never through a link; created files are private (0600).
pub fn open(root: &Path, rel: &Path, how: How) -> Result<File> {
    let (parent, name) = split(rel)?;
    let d = dir(root, parent, how != How::Read)?;
    open_at(&d, name, how, FILE_MODE, &root.join(rel))
}

/// Create the file `rel` below `root` afresh (private, empty): whatever held its name before — a
/// stale file, or a link, hard link or FIFO planted there — is unlinked first (its name only:
/// nothing is followed), then the file is created exclusively. A directory there is refused.
pub fn create_fresh(root: &Path, rel: &Path) -> Result<File> {
    let (parent, name) = split(rel)?;
    let d = dir(root, parent, true)?;
    let shown = root.join(rel);
    clear_at(&d, name, &shown)?;
    open_at(&d, name, How::New, FILE_MODE, &shown)
}

/// Make sure nothing holds the name `name` in the directory `dir`: a stale file, or a link, hard
/// link or FIFO planted there, is unlinked (its name only: nothing is followed). A directory there
/// is refused (`shown` names it). One `statat` when the name is free, which is the common case:
/// this is how an attempt's `$WF_METRICS` name is readied for the task to create.
pub fn clear_at(dir: &OwnedFd, name: &Path, shown: &Path) -> Result<()> {
    match kind_at(dir, name)? {
        Some(FileType::Directory) => Err(planted_err(shown.to_path_buf())),
        Some(_) => match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        },
        None => Ok(()),
    }
}

/// Remove the regular file `name` from the directory `dir`; anything else there (a link, a
/// directory, a FIFO) is left alone. Returns its size, or None when nothing was removed.
pub fn remove_at(dir: &OwnedFd, name: &Path) -> Result<Option<u64>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
            match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) => Ok(Some(st.st_size as u64)),
                Err(rustix::io::Errno::NOENT) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        Ok(_) | Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Remove the regular file `rel` below `root` (never through a link; a missing directory on the
/// way means there is nothing to remove).
pub fn remove(root: &Path, rel: &Path) -> Result<Option<u64>> {
    let (parent, name) = split(rel)?;
    match dir(root, parent, false) {
        Ok(d) => remove_at(&d, name),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The kind of `name` in `dir`, not following a link (None when it does not exist).
pub fn kind_at(dir: &OwnedFd, name: &Path) -> Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The names in the directory `dir` with their kinds (not following links), "." and ".." left
/// out.
pub fn list(dir: &OwnedFd) -> Result<Vec<(std::ffi::OsString, FileType)>> {
    use std::os::unix::ffi::OsStrExt;
    let d = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for e in rustix::fs::Dir::read_from(&d)? {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = std::ffi::OsStr::from_bytes(name).to_os_string();
        let kind = match e.file_type() {
            FileType::Unknown => match kind_at(dir, Path::new(&name))? {
                Some(k) => k,
                None => continue,
            },
            k => k,
        };
        out.push((name, kind));
    }
    Ok(out)
}

/// Rename `from` in `from_dir` to `to` in `to_dir` (replacing a file or a link at `to`, never
/// writing through it).
pub fn rename_at(from_dir: &OwnedFd, from: &Path, to_dir: &OwnedFd, to: &Path) -> Result<()> {
    rustix::fs::renameat(from_dir, from, to_dir, to).map_err(Error::from)
}

/// fsync a directory handle, so names created, renamed or removed in it survive a power cut.
pub fn sync(dir: &OwnedFd) -> Result<()> {
    rustix::fs::fsync(dir.as_fd()).map_err(Error::from)
}

/// An unpredictable temporary file name: `prefix` and 16 random hex digits.
pub fn temp_name(prefix: &str) -> String {
    let mut b = [0u8; 8];
    let filled = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())
        .is_ok_and(|n| n == b.len());
    if !filled {
        // No getrandom: the clock's nanoseconds and the pid (O_EXCL still refuses a name taken).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default() as u64;
        b = (t ^ ((std::process::id() as u64) << 32)).to_le_bytes();
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{prefix}{hex}")
}

/// Create a new file with an unpredictable name in `dir` (O_EXCL, never through a link).
pub fn create_temp(dir: &OwnedFd, prefix: &str, mode: u32, shown: &Path) -> Result<(File, String)> {
    for _ in 0..16 {
        let name = temp_name(prefix);
        match open_at(dir, Path::new(&name), How::New, mode, &shown.join(&name)) {
            Ok(f) => return Ok((f, name)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(
        ErrorKind::AlreadyExists,
        format!("no free temporary name in {}", shown.display()),
    ))
}

/// Hold the process umask at `old | 077` from here on, so that files other code creates in the
/// state directory (a library's, a temporary file's) are private too; tasks get the original
/// back (`task_umask`).
pub fn private_umask() {
    use std::sync::atomic::Ordering;
    if ORIGINAL_UMASK.load(Ordering::SeqCst) != u32::MAX {
        return;
    }
    let old = rustix::process::umask(Mode::from_raw_mode(0o077));
    let old = old.as_raw_mode() as u32;
    rustix::process::umask(Mode::from_raw_mode((old | 0o077) as _));
    ORIGINAL_UMASK.store(old, Ordering::SeqCst);
}

static ORIGINAL_UMASK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

/// The umask wf started with (what tasks and restored outputs get).
pub fn original_umask() -> u32 {
    match ORIGINAL_UMASK.load(std::sync::atomic::Ordering::SeqCst) {
        u32::MAX => {
            // Not changed: read it without changing it.
            let m = rustix::process::umask(Mode::from_raw_mode(0o022));
            rustix::process::umask(m);
            m.as_raw_mode() as u32
        }
        m => m,
    }
}

/// While held, the process umask is the original one (a task spawned meanwhile inherits it).
pub struct TaskUmask(Option<u32>);

pub fn task_umask() -> TaskUmask {
    match ORIGINAL_UMASK.load(std::sync::atomic::Ordering::SeqCst) {
        u32::MAX => TaskUmask(None),
        m => {
            let private = rustix::process::umask(Mode::from_raw_mode(m as _));
            TaskUmask(Some(private.as_raw_mode() as u32))
        }
    }
}

impl Drop for TaskUmask {
    fn drop(&mut self) {
        if let Some(m) = self.0 {
            rustix::process::umask(Mode::from_raw_mode(m as _));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn links_on_the_way_are_refused_and_nothing_outside_changes(
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let root = d.path().join(".wf");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&outside)?;
        std::fs::write(outside.join("f"), b"keep")?;
        symlink(&outside, root.join("logs"))?;
        let e = open(&root, Path::new("logs/f"), How::Append)
            .err()
            .ok_or("opened")?;
        assert!(planted(&e).is_some(), "{e}");
        assert!(remove(&root, Path::new("logs/f")).is_err());
        std::fs::remove_file(root.join("logs"))?;
        std::fs::create_dir(root.join("logs"))?;
        symlink(outside.join("f"), root.join("logs/f"))?;
        let e = open(&root, Path::new("logs/f"), How::Replace)
            .err()
            .ok_or("opened")?;
        assert!(planted(&e).is_some(), "{e}");
        assert_eq!(remove(&root, Path::new("logs/f"))?, None);
        assert_eq!(std::fs::read(outside.join("f"))?, b"keep");
        // A FIFO is refused without blocking.
        rustix::fs::mknodat(
            CWD,
            root.join("logs/p"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )?;
        assert!(open(&root, Path::new("logs/p"), How::Read).is_err());
        Ok(())
    }

    #[test]
    fn created_files_and_directories_are_private(
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let root = d.path().join(".wf");
        let mut f = open(&root, Path::new("a/b/c.log"), How::Append)?;
        f.write_all(b"x")?;
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode(&root.join("a/b/c.log"))?, 0o600);
        assert_eq!(mode(&root.join("a/b"))?, 0o700);
        let dfd = dir(&root, Path::new("a"), false)?;
        let (_, n1) = create_temp(&dfd, "t.", 0o600, &root)?;
        let (_, n2) = create_temp(&dfd, "t.", 0o600, &root)?;
        assert_ne!(n1, n2);
        Ok(())
    }
}
