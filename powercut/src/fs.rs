//! The FUSE side: maps each kernel request onto the model (`model/`) under one lock, and serves
//! the control file `/.powercut` (write `cut` to cut the power, `on` to ask the owner of the mount
//! to power it on again; read it for the counters).
//!
//! Locks: the filesystem does not announce `FUSE_POSIX_LOCKS` or `FUSE_FLOCK_LOCKS`, so the kernel
//! handles `flock`, `fcntl` and OFD locks itself, locally, as it does for any filesystem without
//! its own lock manager. That is exact for processes of this machine (all that uses the mount).

use std::ffi::OsStr;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use crate::model::{self, Attr, Kind, Model, CONTROL, CONTROL_NAME, ROOT};

/// How long the kernel may cache names and attributes. Every change goes through this one
/// mount, so the kernel's caches stay right; a remount starts with none.
const TTL: Duration = Duration::from_secs(1);

/// What the control file asks of the mount's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// The power was cut (by the control file or a trigger).
    PoweredOff,
    /// `on` was written to the control file: mount again from the backing directory.
    PowerOn,
    /// The owner should unmount and stop (sent by the command-line tool's signal handler).
    Quit,
}

/// The filesystem handed to fuser; the model is shared with the `Mount` that owns it.
pub struct PowerCutFs {
    model: Arc<Mutex<Model>>,
    control: Option<Sender<Control>>,
}

impl PowerCutFs {
    pub fn new(model: Arc<Mutex<Model>>, control: Option<Sender<Control>>) -> PowerCutFs {
        PowerCutFs { model, control }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tell(&self, c: Control) {
        if let Some(tx) = &self.control {
            let _ = tx.send(c);
        }
    }

    fn status(&self) -> Vec<u8> {
        let m = self.model();
        let s = m.stats();
        let mut out = format!(
            "power {}\nops {}\nsyncs {}\n",
            if s.powered_off { "off" } else { "on" },
            s.ops,
            s.syncs
        );
        if let Some(c) = m.cut_report() {
            out.push_str(&format!(
                "kept_pages {}\ndropped_pages {}\n",
                c.kept_pages, c.dropped_pages
            ));
            for line in c.volatile {
                out.push_str(&format!("lost {line}\n"));
            }
        }
        out.into_bytes()
    }

    /// Run a command written to the control file.
    fn command(&self, text: &[u8]) -> Result<(), Errno> {
        let text = String::from_utf8_lossy(text);
        for word in text.split_whitespace() {
            match word {
                "cut" | "off" => {
                    let fresh = !self.model().powered_off();
                    self.model().power_off();
                    if fresh {
                        self.tell(Control::PoweredOff);
                    }
                }
                "on" => self.tell(Control::PowerOn),
                _ => return Err(Errno::EINVAL),
            }
        }
        Ok(())
    }

    /// Tell the owner when an operation's trigger cut the power.
    fn after(&self, was_on: bool) {
        if was_on && self.model().powered_off() {
            self.tell(Control::PoweredOff);
        }
    }
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
    }
}

fn fattr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: model::PAGE as u32,
        flags: 0,
    }
}

fn control_attr(size: u64) -> FileAttr {
    let now = SystemTime::now();
    FileAttr {
        ino: INodeNo(CONTROL),
        size,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind: FileType::RegularFile,
        perm: 0o600,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: model::PAGE as u32,
        flags: 0,
    }
}

fn err(e: model::Errno) -> Errno {
    Errno::from_i32(e)
}

fn when(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// The handle number the control file's handles carry (never a model handle).
const CONTROL_FH: u64 = u64::MAX;

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent.0 == ROOT && name == CONTROL_NAME {
            let size = self.status().len() as u64;
            return reply.entry(&TTL, &control_attr(size), Generation(0));
        }
        match self.model().lookup(parent.0, name) {
            Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino.0 == CONTROL {
            let size = self.status().len() as u64;
            return reply.attr(&TTL, &control_attr(size));
        }
        match self.model().getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &fattr(&a)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if ino.0 == CONTROL {
            // `echo cut > .powercut` truncates first.
            return reply.attr(&TTL, &control_attr(0));
        }
        let was_on = !self.model().powered_off();
        let r = self.model().setattr(
            ino.0,
            mode,
            uid,
            gid,
            size,
            atime.map(when),
            mtime.map(when),
        );
        self.after(was_on);
        match r {
            Ok(a) => reply.attr(&TTL, &fattr(&a)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.model().readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(err(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let was_on = !self.model().powered_off();
        let r = self
            .model()
            .mknod(parent.0, name, mode & !umask, req.uid(), req.gid());
        self.after(was_on);
        match r {
            Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let was_on = !self.model().powered_off();
        let r = self
            .model()
            .mkdir(parent.0, name, mode & !umask, req.uid(), req.gid());
        self.after(was_on);
        match r {
            Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if parent.0 == ROOT && name == CONTROL_NAME {
            return reply.error(Errno::EPERM);
        }
        let was_on = !self.model().powered_off();
        let r = self.model().unlink(parent.0, name);
        self.after(was_on);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let was_on = !self.model().powered_off();
        let r = self.model().rmdir(parent.0, name);
        self.after(was_on);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let was_on = !self.model().powered_off();
        let r = self.model().symlink(
            parent.0,
            link_name,
            target.as_os_str(),
            req.uid(),
            req.gid(),
        );
        self.after(was_on);
        match r {
            Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if parent.0 == ROOT && name == CONTROL_NAME {
            return reply.error(Errno::EPERM);
        }
        let was_on = !self.model().powered_off();
        let r = self
            .model()
            .rename(parent.0, name, newparent.0, newname, flags.bits());
        self.after(was_on);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        if ino.0 == CONTROL {
            return reply.error(Errno::EPERM);
        }
        let was_on = !self.model().powered_off();
        let r = self.model().link(ino.0, newparent.0, newname);
        self.after(was_on);
        match r {
            Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if ino.0 == CONTROL {
            return reply.opened(FileHandle(CONTROL_FH), FopenFlags::FOPEN_DIRECT_IO);
        }
        let was_on = !self.model().powered_off();
        let r = self.model().open(ino.0, flags.0);
        self.after(was_on);
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(err(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if ino.0 == CONTROL {
            let s = self.status();
            let start = (offset as usize).min(s.len());
            let end = start.saturating_add(size as usize).min(s.len());
            return reply.data(&s[start..end]);
        }
        match self.model().read(ino.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(err(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if ino.0 == CONTROL {
            return match self.command(data) {
                Ok(()) => reply.written(data.len() as u32),
                Err(e) => reply.error(e),
            };
        }
        let was_on = !self.model().powered_off();
        let r = self.model().write(ino.0, fh.0, offset, data);
        self.after(was_on);
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(err(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) persists nothing.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if fh.0 != CONTROL_FH {
            self.model().release(fh.0);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if ino.0 == CONTROL {
            return reply.ok();
        }
        let was_on = !self.model().powered_off();
        let r = self.model().fsync(ino.0);
        self.after(was_on);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.model().opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.model().readdir(fh.0, offset) {
            Ok(entries) => {
                for (ino, kind, name, next) in entries {
                    if reply.add(INodeNo(ino), next, file_type(kind), &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.model().release(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let was_on = !self.model().powered_off();
        let r = self.model().fsync(ino.0);
        self.after(was_on);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (files, bytes) = self.model().usage();
        let bsize = model::PAGE;
        let total: u64 = 1 << 28; // 1 TiB in 4 KiB blocks: never full
        let used = bytes.div_ceil(bsize);
        reply.statfs(
            total,
            total.saturating_sub(used),
            total.saturating_sub(used),
            files + (1 << 20),
            1 << 20,
            bsize as u32,
            255,
            bsize as u32,
        );
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _n: &OsStr, _s: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        if ino.0 == CONTROL {
            return reply.ok();
        }
        match self.model().getattr(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        if parent.0 == ROOT && name == CONTROL_NAME {
            let size = self.status().len() as u64;
            return reply.created(
                &TTL,
                &control_attr(size),
                Generation(0),
                FileHandle(CONTROL_FH),
                FopenFlags::FOPEN_DIRECT_IO,
            );
        }
        let was_on = !self.model().powered_off();
        let r = self
            .model()
            .create(parent.0, name, mode & !umask, flags, req.uid(), req.gid());
        self.after(was_on);
        match r {
            Ok((a, fh)) => reply.created(
                &TTL,
                &fattr(&a),
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(err(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let was_on = !self.model().powered_off();
        let r = self.model().fallocate(ino.0, offset, length, mode);
        self.after(was_on);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }
}
