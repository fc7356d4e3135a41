//! The two-layer model behind the filesystem: the current state (what every read sees, like a
//! page cache) lives in memory; the durable state is what the backing directory holds. Only an
//! fsync/fdatasync of a file moves that file's data and length into the durable state, and only an
//! fsync of a directory moves that directory's names (strict POSIX; `Names::Journaled` models a
//! journaling filesystem that commits every name change at any fsync). A power cut freezes the
//! model (every later operation fails with EIO) and forgets the current state; the backing directory
//! then holds exactly what was synced (plus, with `random_pages`, a random subset of the unsynced
//! 4 KiB pages of files that had a durable name).
//!
//! The model knows nothing about FUSE: `fs.rs` maps kernel requests onto it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The unit in which the random-page option keeps or drops unsynced data.
pub const PAGE: u64 = 4096;
/// The root directory's inode number (the kernel's convention).
pub const ROOT: u64 = 1;
/// The control file's inode number.
pub const CONTROL: u64 = 2;
/// The control file's name in the root directory (never listed, never stored).
pub const CONTROL_NAME: &str = ".powercut";

const FIRST_INO: u64 = 3;
/// Deepest directory nesting followed when paths are computed (guards against cycles that only a
/// pathological mix of renames and partial directory syncs can create in the durable namespace).
const MAX_DEPTH: usize = 128;

/// An errno value, as the kernel expects it.
pub type Errno = libc::c_int;
/// A model operation's result.
pub type Res<T> = Result<T, Errno>;

fn errno(e: &io::Error) -> Errno {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// When names become durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Names {
    /// Strict POSIX: a name created, renamed or removed in a directory is durable only once that
    /// directory is fsynced. The pessimistic truth; the default.
    #[default]
    Strict,
    /// Like ext4 or XFS with a metadata journal: any fsync or fdatasync (of a file or a directory)
    /// commits every name change made so far, in every directory. File data is still per file.
    Journaled,
}

/// How the filesystem behaves.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// At a cut, write each unsynced 4 KiB page of a durably named file with probability 1/2,
    /// and persist a file's unsynced growth with probability 1/2 (the new tail then reads as
    /// zeros where its pages were not written): a disk that wrote some of what it was given.
    /// Drawn from this seed. `None`: nothing unsynced reaches the disk.
    pub random_pages: Option<u64>,
    /// When names become durable.
    pub names: Names,
    /// Fault injection, a disk that lies: an fsync of a file or directory with one of these
    /// names succeeds and persists nothing. Used to check that a test notices lost writes.
    pub ignore_sync_of: Vec<OsString>,
}

/// What kind of object an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// An inode's attributes, as `stat` shows them.
#[derive(Clone, Debug)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

/// Cut the power automatically once a counter reaches a value (counted from the mount).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// After the n-th operation that changes something (write, truncate, create, mkdir, rename,
    /// unlink, rmdir, symlink, link, fsync, fsyncdir) has been applied.
    Ops(u64),
    /// After the n-th fsync/fdatasync/fsyncdir has made its changes durable (its caller is still
    /// told it succeeded; nothing after it is durable).
    Syncs(u64),
}

/// Counters since the mount.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Operations that changed something.
    pub ops: u64,
    /// fsync, fdatasync and fsyncdir calls.
    pub syncs: u64,
    pub powered_off: bool,
}

/// What a cut threw away.
#[derive(Clone, Debug, Default)]
pub struct CutReport {
    /// One line per file or directory that had unsynced changes: what was lost.
    pub volatile: Vec<String>,
    /// Unsynced pages of durably named files written to the backing directory anyway
    /// (`random_pages`), and those dropped.
    pub kept_pages: u64,
    pub dropped_pages: u64,
    /// The counters at the moment of the cut.
    pub ops: u64,
    pub syncs: u64,
}

enum Body {
    File {
        data: Vec<u8>,
        /// The content the backing directory holds for this inode (under each durable name).
        durable: Vec<u8>,
        /// Pages changed since the last fsync.
        dirty: BTreeSet<u64>,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
        durable: BTreeMap<OsString, u64>,
        parent: u64,
    },
    Symlink {
        target: OsString,
    },
}

struct Node {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Names in the current namespace.
    links: u32,
    /// Open handles.
    open: u32,
}

impl Node {
    fn kind(&self) -> Kind {
        match self.body {
            Body::File { .. } => Kind::File,
            Body::Dir { .. } => Kind::Dir,
            Body::Symlink { .. } => Kind::Symlink,
        }
    }
}

struct Handle {
    ino: u64,
    append: bool,
    /// A directory's listing, taken at opendir.
    listing: Option<Vec<(u64, Kind, OsString)>>,
}

/// A small deterministic generator for the random-page option.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed: nearby seeds give unrelated sequences.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A fair coin (from a high bit: xorshift's lowest bit is weak).
    fn coin(&mut self) -> bool {
        self.next() >> 63 == 1
    }
}

/// The filesystem's whole state. Every method takes the model's lock (held by the caller).
pub struct Model {
    backing: PathBuf,
    options: Options,
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// For every inode, the (directory, name) pairs naming it in the durable namespace.
    dparents: HashMap<u64, BTreeSet<(u64, OsString)>>,
    /// Directories whose names differ from their durable names.
    dirty_dirs: BTreeSet<u64>,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    frozen: bool,
    trigger: Option<Trigger>,
    stats: Stats,
    cut: Option<CutReport>,
    /// The seed of this power cycle's random pages.
    seed: u64,
}

fn pages(from: u64, to: u64) -> std::ops::RangeInclusive<u64> {
    // Pages covering the byte range [from, to), to > from.
    (from / PAGE)..=((to - 1) / PAGE)
}

fn time_of(r: io::Result<SystemTime>) -> SystemTime {
    r.unwrap_or(SystemTime::UNIX_EPOCH)
}

impl Model {
    /// Load the backing directory: it becomes both the current and the durable state. `cycle`
    /// (the number of power cycles so far) varies the random-page seed from one cut to the next.
    pub fn load(backing: &Path, options: Options, cycle: u64) -> io::Result<Model> {
        if !fs::metadata(backing)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", backing.display()),
            ));
        }
        let seed = options
            .random_pages
            .map(|s| s ^ cycle.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .unwrap_or(1);
        let mut m = Model {
            backing: backing.to_path_buf(),
            options,
            nodes: HashMap::new(),
            next_ino: FIRST_INO,
            dparents: HashMap::new(),
            dirty_dirs: BTreeSet::new(),
            handles: HashMap::new(),
            next_fh: 1,
            frozen: false,
            trigger: None,
            stats: Stats::default(),
            cut: None,
            seed,
        };
        m.load_tree(backing, ROOT, ROOT, 0)?;
        Ok(m)
    }

    fn alloc(&mut self) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    fn load_tree(&mut self, path: &Path, ino: u64, parent: u64, depth: usize) -> io::Result<()> {
        let meta = fs::symlink_metadata(path)?;
        let ft = meta.file_type();
        let body = if ft.is_dir() {
            let mut entries = BTreeMap::new();
            if depth < MAX_DEPTH {
                for e in fs::read_dir(path)? {
                    let e = e?;
                    let name = e.file_name();
                    if ino == ROOT && name == CONTROL_NAME {
                        continue;
                    }
                    let cft = e.file_type()?;
                    if !(cft.is_dir() || cft.is_file() || cft.is_symlink()) {
                        continue; // sockets, fifos, devices: not modelled
                    }
                    let child = self.alloc();
                    self.load_tree(&e.path(), child, ino, depth + 1)?;
                    entries.insert(name.clone(), child);
                    self.dparents.entry(child).or_default().insert((ino, name));
                }
            }
            Body::Dir {
                durable: entries.clone(),
                entries,
                parent,
            }
        } else if ft.is_symlink() {
            Body::Symlink {
                target: fs::read_link(path)?.into_os_string(),
            }
        } else {
            let data = fs::read(path)?;
            Body::File {
                durable: data.clone(),
                data,
                dirty: BTreeSet::new(),
            }
        };
        self.nodes.insert(
            ino,
            Node {
                body,
                perm: (meta.permissions().mode() & 0o7777) as u16,
                uid: meta.uid(),
                gid: meta.gid(),
                atime: time_of(meta.accessed()),
                mtime: time_of(meta.modified()),
                ctime: time_of(meta.modified()),
                links: 1,
                open: 0,
            },
        );
        Ok(())
    }

    // ---- power ----

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
    fn count_op(&mut self, sync: bool) {
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

    fn live(&self) -> Res<()> {
        if self.frozen {
            Err(libc::EIO)
        } else {
            Ok(())
        }
    }

    /// Human lines naming every unsynced change (for reports of what a cut lost).
    fn volatile(&self) -> Vec<String> {
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
    fn write_random_pages(&mut self) -> (u64, u64) {
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

    // ---- paths ----

    /// One current path (relative to the root) of every reachable inode.
    fn current_paths(&self) -> HashMap<u64, PathBuf> {
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
    fn durable_paths(&self, ino: u64) -> Vec<PathBuf> {
        self.durable_paths_at(ino, 0)
    }

    fn durable_paths_at(&self, ino: u64, depth: usize) -> Vec<PathBuf> {
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

    fn remove_backing(&self, rel: &Path) -> io::Result<()> {
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
    fn materialize(&self, ino: u64, rel: &Path, depth: usize) -> io::Result<()> {
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

    // ---- syncing ----

    /// fsync of a directory: its current names become its durable names.
    fn persist_dir(&mut self, ino: u64) -> io::Result<()> {
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
    fn persist_file(&mut self, ino: u64) -> io::Result<()> {
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

    fn sync(&mut self, ino: u64) -> Res<()> {
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

    // ---- inodes ----

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn entries(&self, dir: u64) -> Res<&BTreeMap<OsString, u64>> {
        match &self.node(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(libc::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Res<&mut BTreeMap<OsString, u64>> {
        match &mut self.node_mut(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(libc::ENOTDIR),
        }
    }

    /// Drop an inode nothing refers to any more: no current name, no open handle, no durable name.
    fn maybe_forget(&mut self, ino: u64) {
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

    fn new_node(&mut self, body: Body, perm: u32, uid: u32, gid: u32) -> u64 {
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

    fn add_name(&mut self, parent: u64, name: &OsStr, ino: u64) -> Res<()> {
        self.entries_mut(parent)?.insert(name.to_os_string(), ino);
        self.dirty_dirs.insert(parent);
        let now = SystemTime::now();
        let p = self.node_mut(parent)?;
        p.mtime = now;
        p.ctime = now;
        Ok(())
    }

    fn free_name(&self, parent: u64, name: &OsStr) -> Res<()> {
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

    fn drop_name(&mut self, parent: u64, name: &OsStr) -> Res<u64> {
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
    fn is_within(&self, mut dir: u64, ancestor: u64) -> bool {
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

    fn set_parent(&mut self, ino: u64, new_parent: u64) {
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

    // ---- data ----

    fn resize(&mut self, ino: u64, len: u64) -> Res<()> {
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
