//! Paths: the current and durable paths of inodes, and writing them into the backing directory.

use super::*;

impl Model {
    /// One current path (relative to the root) of every reachable inode.
    pub(super) fn current_paths(&self) -> HashMap<u64, PathBuf> {
        let mut out = HashMap::new();
        let mut stack = vec![(ROOT, PathBuf::new(), 0usize)];
        while let Some((ino, path, depth)) = stack.pop() {
            if out.contains_key(&ino) || depth > MAX_DEPTH {
                continue;
            }
            if let Some(Node {
                body: Body::Dir { entries, .. },
                ..
            }) = self.nodes.get(&ino)
            {
                for (n, &c) in entries {
                    stack.push((c, path.join(n), depth + 1));
                }
            }
            out.insert(ino, path);
        }
        out
    }

    /// Every path (relative to the backing directory) naming `ino` in the durable namespace.
    pub(super) fn durable_paths(&self, ino: u64) -> Vec<PathBuf> {
        self.durable_paths_at(ino, 0)
    }

    pub(super) fn durable_paths_at(&self, ino: u64, depth: usize) -> Vec<PathBuf> {
        if ino == ROOT {
            return vec![PathBuf::new()];
        }
        if depth > MAX_DEPTH {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(parents) = self.dparents.get(&ino) {
            for (dir, name) in parents {
                for p in self.durable_paths_at(*dir, depth + 1) {
                    out.push(p.join(name));
                }
            }
        }
        out
    }

    pub(super) fn remove_backing(&self, rel: &Path) -> io::Result<()> {
        let full = self.backing.join(rel);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&full),
            Ok(_) => fs::remove_file(&full),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Write inode `ino`'s durable state at `rel` in the backing directory (a directory with its
    /// durable names, recursively).
    pub(super) fn materialize(&self, ino: u64, rel: &Path, depth: usize) -> io::Result<()> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let Some(node) = self.nodes.get(&ino) else {
            return Ok(());
        };
        self.remove_backing(rel)?;
        let full = self.backing.join(rel);
        match &node.body {
            Body::File { durable, .. } => {
                fs::write(&full, durable)?;
                fs::set_permissions(&full, fs::Permissions::from_mode(u32::from(node.perm)))?;
            }
            Body::Dir { durable, .. } => {
                fs::create_dir(&full)?;
                fs::set_permissions(&full, fs::Permissions::from_mode(u32::from(node.perm)))?;
                for (name, &child) in durable {
                    self.materialize(child, &rel.join(name), depth + 1)?;
                }
            }
            Body::Symlink { target } => std::os::unix::fs::symlink(target, &full)?,
        }
        Ok(())
    }
}
