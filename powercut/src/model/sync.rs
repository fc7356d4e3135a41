//! Syncing: fsync of a file (data and length) or a directory (its names) into the durable state.

use super::*;

impl Model {
    /// fsync of a directory: its current names become its durable names.
    pub(super) fn persist_dir(&mut self, ino: u64) -> io::Result<()> {
        let Some(Node {
            body: Body::Dir {
                entries, durable, ..
            },
            ..
        }) = self.nodes.get_mut(&ino)
        else {
            return Ok(());
        };
        let old = std::mem::replace(durable, entries.clone());
        let new = entries.clone();
        self.dirty_dirs.remove(&ino);
        let paths = self.durable_paths(ino);
        let mut removed = Vec::new();
        for (name, &child) in &old {
            if new.get(name) != Some(&child) {
                if let Some(set) = self.dparents.get_mut(&child) {
                    set.remove(&(ino, name.clone()));
                }
                for p in &paths {
                    self.remove_backing(&p.join(name))?;
                }
                removed.push(child);
            }
        }
        for (name, &child) in &new {
            if old.get(name) != Some(&child) {
                self.dparents
                    .entry(child)
                    .or_default()
                    .insert((ino, name.clone()));
                for p in &paths {
                    self.materialize(child, &p.join(name), 0)?;
                }
            }
        }
        for child in removed {
            self.maybe_forget(child);
        }
        Ok(())
    }

    /// fsync/fdatasync of a file: its current data and length become durable.
    pub(super) fn persist_file(&mut self, ino: u64) -> io::Result<()> {
        let paths = self.durable_paths(ino);
        let backing = self.backing.clone();
        let Some(Node {
            body:
                Body::File {
                    data,
                    durable,
                    dirty,
                },
            ..
        }) = self.nodes.get_mut(&ino)
        else {
            return Ok(());
        };
        let len = data.len() as u64;
        durable.resize(data.len(), 0);
        let ranges: Vec<(u64, u64)> = dirty
            .iter()
            .map(|&p| (p * PAGE, ((p + 1) * PAGE).min(len)))
            .filter(|(s, e)| s < e)
            .collect();
        for &(s, e) in &ranges {
            durable[s as usize..e as usize].copy_from_slice(&data[s as usize..e as usize]);
        }
        for p in &paths {
            let full = backing.join(p);
            let f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&full)?;
            for &(s, e) in &ranges {
                f.write_all_at(&data[s as usize..e as usize], s)?;
            }
            f.set_len(len)?;
        }
        dirty.clear();
        Ok(())
    }

    pub(super) fn sync(&mut self, ino: u64) -> Res<()> {
        self.live()?;
        let kind = self.node(ino)?.kind();
        if !self.options.ignore_sync_of.is_empty() {
            let lied = self
                .current_paths()
                .get(&ino)
                .and_then(|p| p.file_name())
                .is_some_and(|n| {
                    self.options
                        .ignore_sync_of
                        .iter()
                        .any(|i| i.as_os_str() == n)
                });
            if lied {
                self.count_op(true);
                return Ok(());
            }
        }
        if self.options.names == Names::Journaled {
            let dirs: Vec<u64> = self.dirty_dirs.iter().copied().collect();
            for d in dirs {
                self.persist_dir(d).map_err(|e| errno(&e))?;
            }
        }
        match kind {
            Kind::File => self.persist_file(ino).map_err(|e| errno(&e))?,
            Kind::Dir => self.persist_dir(ino).map_err(|e| errno(&e))?,
            Kind::Symlink => {}
        }
        self.count_op(true);
        Ok(())
    }

    /// fsync or fdatasync of a file (both persist data and length), or fsync of a directory.
    pub fn fsync(&mut self, ino: u64) -> Res<()> {
        self.sync(ino)
    }
}
