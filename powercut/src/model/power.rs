//! Power: the cut (freeze, forget, random pages), the trigger and the counters.

use super::*;

impl Model {
    /// Whether the power is off (every operation then fails with EIO).
    pub fn powered_off(&self) -> bool {
        self.frozen
    }

    /// Counters since the mount.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.powered_off = self.frozen;
        s
    }

    /// Cut the power automatically when `trigger` is reached (replaces an earlier one).
    pub fn arm(&mut self, trigger: Option<Trigger>) {
        self.trigger = trigger;
    }

    /// The report of this power cycle's cut, once it happened.
    pub fn cut_report(&self) -> Option<CutReport> {
        self.cut.clone()
    }

    /// Cut the power now: from here on every operation fails with EIO, and what was not synced is
    /// lost (with `random_pages`, some unsynced pages are written to the backing files first).
    /// Returns what was lost. A second call returns the first cut's report.
    pub fn power_off(&mut self) -> CutReport {
        if let Some(c) = &self.cut {
            return c.clone();
        }
        self.frozen = true;
        let mut report = CutReport {
            volatile: self.volatile(),
            ops: self.stats.ops,
            syncs: self.stats.syncs,
            ..CutReport::default()
        };
        if self.options.random_pages.is_some() {
            let (kept, dropped) = self.write_random_pages();
            report.kept_pages = kept;
            report.dropped_pages = dropped;
        }
        self.cut = Some(report.clone());
        report
    }

    /// Count an operation that changed something, and cut the power if the trigger says so.
    pub(super) fn count_op(&mut self, sync: bool) {
        self.stats.ops += 1;
        if sync {
            self.stats.syncs += 1;
        }
        let fire = match self.trigger {
            Some(Trigger::Ops(n)) => self.stats.ops >= n,
            Some(Trigger::Syncs(n)) => sync && self.stats.syncs >= n,
            None => false,
        };
        if fire {
            self.trigger = None;
            self.power_off();
        }
    }

    pub(super) fn live(&self) -> Res<()> {
        if self.frozen {
            Err(libc::EIO)
        } else {
            Ok(())
        }
    }

    /// Human lines naming every unsynced change (for reports of what a cut lost).
    pub(super) fn volatile(&self) -> Vec<String> {
        let paths = self.current_paths();
        let name = |ino: u64| -> String {
            match paths.get(&ino) {
                Some(p) => format!("/{}", p.display()),
                None => match self.durable_paths(ino).first() {
                    Some(p) => format!("/{} (removed)", p.display()),
                    None => format!("inode {ino} (unnamed)"),
                },
            }
        };
        let mut out = Vec::new();
        let mut inos: Vec<&u64> = self.nodes.keys().collect();
        inos.sort();
        for &ino in inos {
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            match &node.body {
                Body::File {
                    data,
                    durable,
                    dirty,
                } => {
                    if !dirty.is_empty() || data.len() != durable.len() {
                        let named = if self.durable_paths(ino).is_empty() {
                            ", no durable name"
                        } else {
                            ""
                        };
                        out.push(format!(
                            "{}: {} unsynced page(s), length {} (durable {}){named}",
                            name(ino),
                            dirty.len(),
                            data.len(),
                            durable.len()
                        ));
                    }
                }
                Body::Dir {
                    entries, durable, ..
                } => {
                    let added: Vec<String> = entries
                        .iter()
                        .filter(|(n, i)| durable.get(*n) != Some(i))
                        .map(|(n, _)| format!("+{}", n.to_string_lossy()))
                        .collect();
                    let removed: Vec<String> = durable
                        .iter()
                        .filter(|(n, i)| entries.get(*n) != Some(i))
                        .map(|(n, _)| format!("-{}", n.to_string_lossy()))
                        .collect();
                    if !added.is_empty() || !removed.is_empty() {
                        let named = if self.durable_paths(ino).is_empty() {
                            " (directory without a durable name)"
                        } else {
                            ""
                        };
                        out.push(format!(
                            "{}/: unsynced names {}{named}",
                            name(ino).trim_end_matches('/'),
                            [removed, added].concat().join(" ")
                        ));
                    }
                }
                Body::Symlink { .. } => {}
            }
        }
        out
    }

    /// At a cut with `random_pages`: a disk that wrote some of what it was given. For every
    /// durably named file, its unsynced growth is persisted with probability 1/2 (the length
    /// reached the disk, as metadata journaled before the data — ext4 `data=writeback`, XFS — so
    /// the new tail reads as zeros where its pages did not), and each unsynced page is written
    /// with probability 1/2, clipped to the length the file has on the disk.
    pub(super) fn write_random_pages(&mut self) -> (u64, u64) {
        let mut rng = Rng::new(self.seed);
        let mut kept = 0;
        let mut dropped = 0;
        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        inos.sort();
        for ino in inos {
            let paths = self.durable_paths(ino);
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
                continue;
            };
            if paths.is_empty() || dirty.is_empty() {
                continue;
            }
            if data.len() > durable.len() && rng.coin() {
                durable.resize(data.len(), 0);
                for path in &paths {
                    if let Ok(f) = fs::OpenOptions::new()
                        .write(true)
                        .open(self.backing.join(path))
                    {
                        let _ = f.set_len(data.len() as u64);
                    }
                }
            }
            let limit = data.len().min(durable.len()) as u64;
            for &p in dirty.iter() {
                if rng.coin() {
                    dropped += 1;
                    continue;
                }
                kept += 1;
                let start = p * PAGE;
                let end = ((p + 1) * PAGE).min(limit);
                if start >= end {
                    continue;
                }
                let bytes = &data[start as usize..end as usize];
                durable[start as usize..end as usize].copy_from_slice(bytes);
                for path in &paths {
                    if let Ok(f) = fs::OpenOptions::new()
                        .write(true)
                        .open(self.backing.join(path))
                    {
                        let _ = f.write_all_at(bytes, start);
                    }
                }
            }
        }
        (kept, dropped)
    }
}
