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

// `impl Model`, by job (the types and `load` are here).
mod data;
mod names;
mod paths;
mod power;
mod sync;

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
}
