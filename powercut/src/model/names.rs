//! Inodes and names: lookup, create, link, unlink, rename.

use super::*;

impl Model {
    pub(super) fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    pub(super) fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    pub(super) fn entries(&self, dir: u64) -> Res<&BTreeMap<OsString, u64>> {
        match &self.node(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(libc::ENOTDIR),
        }
    }

    pub(super) fn entries_mut(&mut self, dir: u64) -> Res<&mut BTreeMap<OsString, u64>> {
        match &mut self.node_mut(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(libc::ENOTDIR),
        }
    }

    /// Drop an inode nothing refers to any more: no current name, no open handle, no durable name.
    pub(super) fn maybe_forget(&mut self, ino: u64) {
        if ino == ROOT {
            return;
        }
        let unreferenced = self
            .nodes
            .get(&ino)
            .is_some_and(|n| n.links == 0 && n.open == 0)
            && self.dparents.get(&ino).is_none_or(|s| s.is_empty());
        if unreferenced {
            self.nodes.remove(&ino);
            self.dparents.remove(&ino);
        }
    }

    /// The attributes of an inode.
    pub fn getattr(&self, ino: u64) -> Res<Attr> {
        self.live()?;
        let n = self.node(ino)?;
        let (size, nlink) = match &n.body {
            Body::File { data, .. } => (data.len() as u64, n.links),
            Body::Dir { entries, .. } => {
                let subdirs = entries
                    .values()
                    .filter(|c| self.nodes.get(c).is_some_and(|c| c.kind() == Kind::Dir))
                    .count() as u32;
                (4096, 2 + subdirs)
            }
            Body::Symlink { target } => (target.len() as u64, n.links),
        };
        Ok(Attr {
            ino,
            kind: n.kind(),
            size,
            perm: n.perm,
            nlink,
            uid: n.uid,
            gid: n.gid,
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
        })
    }

    /// Look a name up in a directory.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Res<Attr> {
        self.live()?;
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        self.getattr(ino)
    }

    pub(super) fn new_node(&mut self, body: Body, perm: u32, uid: u32, gid: u32) -> u64 {
        let now = SystemTime::now();
        let ino = self.alloc();
        self.nodes.insert(
            ino,
            Node {
                body,
                perm: (perm & 0o7777) as u16,
                uid,
                gid,
                atime: now,
                mtime: now,
                ctime: now,
                links: 1,
                open: 0,
            },
        );
        ino
    }

    pub(super) fn add_name(&mut self, parent: u64, name: &OsStr, ino: u64) -> Res<()> {
        self.entries_mut(parent)?.insert(name.to_os_string(), ino);
        self.dirty_dirs.insert(parent);
        let now = SystemTime::now();
        let p = self.node_mut(parent)?;
        p.mtime = now;
        p.ctime = now;
        Ok(())
    }

    pub(super) fn free_name(&self, parent: u64, name: &OsStr) -> Res<()> {
        if name.is_empty() || name.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        if parent == ROOT && name == CONTROL_NAME {
            return Err(libc::EEXIST);
        }
        if self.entries(parent)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        Ok(())
    }

    /// Create a regular file (mknod); other kinds of node are refused.
    pub fn mknod(&mut self, parent: u64, name: &OsStr, mode: u32, uid: u32, gid: u32) -> Res<Attr> {
        self.live()?;
        let fmt = mode & libc::S_IFMT;
        if fmt != 0 && fmt != libc::S_IFREG {
            return Err(libc::EPERM);
        }
        self.free_name(parent, name)?;
        let ino = self.new_node(
            Body::File {
                data: Vec::new(),
                durable: Vec::new(),
                dirty: BTreeSet::new(),
            },
            mode,
            uid,
            gid,
        );
        self.add_name(parent, name, ino)?;
        self.count_op(false);
        self.getattr(ino)
    }

    /// Create and open a regular file; an existing one is opened unless `O_EXCL`.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
        uid: u32,
        gid: u32,
    ) -> Res<(Attr, u64)> {
        self.live()?;
        if let Some(&ino) = self.entries(parent)?.get(name) {
            if flags & libc::O_EXCL != 0 {
                return Err(libc::EEXIST);
            }
            let fh = self.open(ino, flags)?;
            return Ok((self.getattr(ino)?, fh));
        }
        let attr = self.mknod(parent, name, libc::S_IFREG | (mode & 0o7777), uid, gid)?;
        let fh = self.open(attr.ino, flags & !libc::O_TRUNC)?;
        Ok((attr, fh))
    }

    pub fn mkdir(&mut self, parent: u64, name: &OsStr, mode: u32, uid: u32, gid: u32) -> Res<Attr> {
        self.live()?;
        self.free_name(parent, name)?;
        let ino = self.new_node(
            Body::Dir {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
                parent,
            },
            mode,
            uid,
            gid,
        );
        self.add_name(parent, name, ino)?;
        self.count_op(false);
        self.getattr(ino)
    }

    pub fn symlink(
        &mut self,
        parent: u64,
        name: &OsStr,
        target: &OsStr,
        uid: u32,
        gid: u32,
    ) -> Res<Attr> {
        self.live()?;
        self.free_name(parent, name)?;
        let ino = self.new_node(
            Body::Symlink {
                target: target.to_os_string(),
            },
            0o777,
            uid,
            gid,
        );
        self.add_name(parent, name, ino)?;
        self.count_op(false);
        self.getattr(ino)
    }

    pub fn readlink(&self, ino: u64) -> Res<Vec<u8>> {
        self.live()?;
        match &self.node(ino)?.body {
            Body::Symlink { target } => Ok(target.as_encoded_bytes().to_vec()),
            _ => Err(libc::EINVAL),
        }
    }

    /// A hard link (regular files and symbolic links only).
    pub fn link(&mut self, ino: u64, parent: u64, name: &OsStr) -> Res<Attr> {
        self.live()?;
        if self.node(ino)?.kind() == Kind::Dir {
            return Err(libc::EPERM);
        }
        self.free_name(parent, name)?;
        self.add_name(parent, name, ino)?;
        let n = self.node_mut(ino)?;
        n.links += 1;
        n.ctime = SystemTime::now();
        self.count_op(false);
        self.getattr(ino)
    }

    pub(super) fn drop_name(&mut self, parent: u64, name: &OsStr) -> Res<u64> {
        let ino = self.entries_mut(parent)?.remove(name).ok_or(libc::ENOENT)?;
        self.dirty_dirs.insert(parent);
        let now = SystemTime::now();
        let p = self.node_mut(parent)?;
        p.mtime = now;
        p.ctime = now;
        let n = self.node_mut(ino)?;
        n.links = n.links.saturating_sub(1);
        n.ctime = now;
        Ok(ino)
    }

    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        self.live()?;
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        if self.node(ino)?.kind() == Kind::Dir {
            return Err(libc::EISDIR);
        }
        self.drop_name(parent, name)?;
        self.maybe_forget(ino);
        self.count_op(false);
        Ok(())
    }

    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        self.live()?;
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        if !self.entries(ino)?.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        self.drop_name(parent, name)?;
        self.maybe_forget(ino);
        self.count_op(false);
        Ok(())
    }

    /// Whether directory `dir` is `ancestor` or lies below it.
    pub(super) fn is_within(&self, mut dir: u64, ancestor: u64) -> bool {
        for _ in 0..=MAX_DEPTH {
            if dir == ancestor {
                return true;
            }
            match self.nodes.get(&dir).map(|n| &n.body) {
                Some(Body::Dir { parent, .. }) if *parent != dir => dir = *parent,
                _ => return false,
            }
        }
        false
    }

    pub(super) fn set_parent(&mut self, ino: u64, new_parent: u64) {
        if let Some(Node {
            body: Body::Dir { parent, .. },
            ..
        }) = self.nodes.get_mut(&ino)
        {
            *parent = new_parent;
        }
    }

    /// rename(2), with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Res<()> {
        self.live()?;
        if newparent == ROOT && newname == CONTROL_NAME {
            return Err(libc::EPERM);
        }
        let src = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        let dst = self.entries(newparent)?.get(newname).copied();
        let src_dir = self.node(src)?.kind() == Kind::Dir;
        if src_dir && self.is_within(newparent, src) {
            return Err(libc::EINVAL);
        }
        if flags & libc::RENAME_EXCHANGE != 0 {
            let dst = dst.ok_or(libc::ENOENT)?;
            if self.node(dst)?.kind() == Kind::Dir && self.is_within(parent, dst) {
                return Err(libc::EINVAL);
            }
            self.entries_mut(parent)?.insert(name.to_os_string(), dst);
            self.entries_mut(newparent)?
                .insert(newname.to_os_string(), src);
            self.set_parent(src, newparent);
            self.set_parent(dst, parent);
            self.dirty_dirs.insert(parent);
            self.dirty_dirs.insert(newparent);
            self.count_op(false);
            return Ok(());
        }
        if let Some(d) = dst {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(libc::EEXIST);
            }
            if d == src {
                return Ok(());
            }
            let dst_dir = self.node(d)?.kind() == Kind::Dir;
            if src_dir && !dst_dir {
                return Err(libc::ENOTDIR);
            }
            if !src_dir && dst_dir {
                return Err(libc::EISDIR);
            }
            if dst_dir && !self.entries(d)?.is_empty() {
                return Err(libc::ENOTEMPTY);
            }
            self.drop_name(newparent, newname)?;
        }
        self.drop_name(parent, name)?;
        self.add_name(newparent, newname, src)?;
        self.node_mut(src)?.links += 1;
        self.set_parent(src, newparent);
        if let Some(d) = dst {
            self.maybe_forget(d);
        }
        self.count_op(false);
        Ok(())
    }
}
