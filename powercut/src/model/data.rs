//! Data: sizes, open handles, directory listings, reads and writes.

use super::*;

impl Model {
    pub(super) fn resize(&mut self, ino: u64, len: u64) -> Res<()> {
        let n = self.node_mut(ino)?;
        let Body::File { data, dirty, .. } = &mut n.body else {
            return Err(libc::EISDIR);
        };
        let old = data.len() as u64;
        if old != len {
            let (lo, hi) = (old.min(len), old.max(len));
            dirty.extend(pages(lo, hi));
            data.resize(len as usize, 0);
        }
        let now = SystemTime::now();
        n.mtime = now;
        n.ctime = now;
        Ok(())
    }

    /// setattr: mode, owner, size (truncate), times.
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &mut self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Res<Attr> {
        self.live()?;
        if let Some(len) = size {
            self.resize(ino, len)?;
            self.count_op(false);
        }
        let n = self.node_mut(ino)?;
        if let Some(m) = mode {
            n.perm = (m & 0o7777) as u16;
        }
        if let Some(u) = uid {
            n.uid = u;
        }
        if let Some(g) = gid {
            n.gid = g;
        }
        if let Some(t) = atime {
            n.atime = t;
        }
        if let Some(t) = mtime {
            n.mtime = t;
        }
        n.ctime = SystemTime::now();
        self.getattr(ino)
    }

    /// Open a file; returns the handle.
    pub fn open(&mut self, ino: u64, flags: i32) -> Res<u64> {
        self.live()?;
        let kind = self.node(ino)?.kind();
        if kind == Kind::Dir {
            return Err(libc::EISDIR);
        }
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if kind == Kind::File && writes && flags & libc::O_TRUNC != 0 {
            self.resize(ino, 0)?;
            self.count_op(false);
        }
        self.node_mut(ino)?.open += 1;
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(
            fh,
            Handle {
                ino,
                append: flags & libc::O_APPEND != 0,
                listing: None,
            },
        );
        Ok(fh)
    }

    /// Open a directory: its listing is taken now, and read from with readdir.
    pub fn opendir(&mut self, ino: u64) -> Res<u64> {
        self.live()?;
        let (entries, parent) = match &self.node(ino)?.body {
            Body::Dir {
                entries, parent, ..
            } => (entries, *parent),
            _ => return Err(libc::ENOTDIR),
        };
        let mut listing = vec![
            (ino, Kind::Dir, OsString::from(".")),
            (parent, Kind::Dir, OsString::from("..")),
        ];
        for (name, &c) in entries {
            if let Some(n) = self.nodes.get(&c) {
                listing.push((c, n.kind(), name.clone()));
            }
        }
        self.node_mut(ino)?.open += 1;
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(
            fh,
            Handle {
                ino,
                append: false,
                listing: Some(listing),
            },
        );
        Ok(fh)
    }

    /// Entries of an open directory from `offset` on: (inode, kind, name, offset of the next).
    pub fn readdir(&self, fh: u64, offset: u64) -> Res<Vec<(u64, Kind, OsString, u64)>> {
        self.live()?;
        let h = self.handles.get(&fh).ok_or(libc::EBADF)?;
        let listing = h.listing.as_ref().ok_or(libc::ENOTDIR)?;
        Ok(listing
            .iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, (ino, k, n))| (*ino, *k, n.clone(), i as u64 + 1))
            .collect())
    }

    /// Close a handle (file or directory). Works with the power off, too.
    pub fn release(&mut self, fh: u64) {
        if let Some(h) = self.handles.remove(&fh) {
            if let Some(n) = self.nodes.get_mut(&h.ino) {
                n.open = n.open.saturating_sub(1);
            }
            self.maybe_forget(h.ino);
        }
    }

    pub fn read(&mut self, ino: u64, offset: u64, size: u32) -> Res<Vec<u8>> {
        self.live()?;
        let n = self.node_mut(ino)?;
        let Body::File { data, .. } = &n.body else {
            return Err(libc::EISDIR);
        };
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(size as usize).min(data.len());
        let out = data[start..end].to_vec();
        n.atime = SystemTime::now();
        Ok(out)
    }

    /// Write at `offset`, or at the end for a handle opened with `O_APPEND`.
    pub fn write(&mut self, ino: u64, fh: u64, offset: u64, bytes: &[u8]) -> Res<u32> {
        self.live()?;
        let append = self.handles.get(&fh).is_some_and(|h| h.append);
        let n = self.node_mut(ino)?;
        let Body::File { data, dirty, .. } = &mut n.body else {
            return Err(libc::EISDIR);
        };
        let offset = if append { data.len() as u64 } else { offset };
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|e| *e <= (1 << 40))
            .ok_or(libc::EFBIG)?;
        if bytes.is_empty() {
            return Ok(0);
        }
        if end as usize > data.len() {
            let old = data.len() as u64;
            data.resize(end as usize, 0);
            if offset > old {
                dirty.extend(pages(old, offset));
            }
        }
        data[offset as usize..end as usize].copy_from_slice(bytes);
        dirty.extend(pages(offset, end));
        let now = SystemTime::now();
        n.mtime = now;
        n.ctime = now;
        self.count_op(false);
        Ok(bytes.len() as u32)
    }

    /// fallocate: mode 0 extends the file with zeros; `FALLOC_FL_KEEP_SIZE` changes nothing
    /// visible; anything else is not supported.
    pub fn fallocate(&mut self, ino: u64, offset: u64, length: u64, mode: i32) -> Res<()> {
        self.live()?;
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Ok(());
        }
        let end = offset.checked_add(length).ok_or(libc::EFBIG)?;
        let Body::File { data, .. } = &self.node(ino)?.body else {
            return Err(libc::EISDIR);
        };
        if end > data.len() as u64 {
            self.resize(ino, end)?;
            self.count_op(false);
        }
        Ok(())
    }

    /// (inodes, bytes) in use, for statfs.
    pub fn usage(&self) -> (u64, u64) {
        let bytes = self
            .nodes
            .values()
            .map(|n| match &n.body {
                Body::File { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum();
        (self.nodes.len() as u64, bytes)
    }
}
