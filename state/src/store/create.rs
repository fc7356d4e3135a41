//! Creating a state directory, its version, and everything about it that is checked before
//! the index opens anything (a foreign or newer state, planted links, a damaged or missing record
//! log).

use std::path::Path;

use crate::durable::{exists, sync_dir};
use crate::error::StateError;
use crate::journal::Kv;
use crate::keys::{K_LAYOUT, K_SCHEMA, LAYOUT};
use crate::wal;

use super::{LOG_FILE, SCHEMA, VERSION_FILE};

fn read_version(root: &Path, path: &Path) -> Result<u32, StateError> {
    let bytes = std::fs::read(path).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        what: "reading the state version",
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let schema = text
        .trim()
        .strip_prefix("wf-state schema ")
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| {
            StateError::Corrupt(format!(
                "{} is damaged; restore the state directory from a backup or move it away \
                 (nothing was changed)",
                path.display()
            ))
        })?;
    if schema > SCHEMA {
        return Err(StateError::Newer(format!(
            "{} was written by a newer wf (state schema {schema}; this wf reads up to {SCHEMA}); \
             upgrade wf (nothing was changed)",
            root.display()
        )));
    }
    Ok(schema)
}

/// Names wf itself creates in a state directory before (or besides) its journal.
const OWN_NAMES: [&str; 9] = [
    "WORKFLOW",
    "lock",
    "logs",
    "objects",
    "live.jsonl",
    "live.jsonl.tmp",
    "journal.log",
    "VERSION.tmp",
    "journal",
];

/// Refuse to create a state in a directory holding anything that is not wf's.
fn foreign_check(root: &Path) -> Result<(), StateError> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let n = name.to_string_lossy();
        let aside = n.starts_with("journal.broken-") || n.starts_with("WORKFLOW.tmp.");
        if !aside && !OWN_NAMES.iter().any(|n| name == *n) {
            return Err(StateError::Foreign(root.to_path_buf()));
        }
    }
    Ok(())
}

/// What `inspect` found.
pub(super) struct Inspected {
    pub(super) has_journal: bool,
    pub(super) versioned: bool,
    /// Every frame of the record log was checked (it had changed since wf last verified it).
    pub(super) scanned: bool,
}

/// The names wf keeps in a state directory and what each must be: a directory or a regular file.
const EXPECTED: [(&str, bool); 10] = [
    ("WORKFLOW", false),
    ("journal", true),
    ("logs", true),
    ("objects", true),
    ("journal.log", false),
    ("VERSION", false),
    ("VERSION.tmp", false),
    ("lock", false),
    ("live.jsonl", false),
    ("live.jsonl.tmp", false),
];

/// Refuse a state directory holding a symbolic link (or another kind of file) where wf keeps
/// its own files and directories: at the top, in the index directories and among the object
/// store's fan-out directories. (Deeper names — a run's log directory, an attempt's log — are
/// checked where they are used: every access below the state directory is made without
/// following a link, `safe`.)
fn planted_check(root: &Path) -> Result<(), StateError> {
    use rustix::fs::FileType;
    let d = match crate::safe::dir(root, Path::new(""), false) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A link to nothing (a disk not mounted) is not "no state yet": refuse it rather than
            // report no runs or create anything behind it.
            return match std::fs::read_link(root) {
                Ok(target) => Err(StateError::DanglingLink {
                    path: root.to_path_buf(),
                    target,
                }),
                Err(_) => Ok(()),
            };
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
            return Err(StateError::NotADirectory(root.to_path_buf()))
        }
        Err(e) => {
            return Err(crate::safe::state_err(root, "opening the state directory")(
                e,
            ))
        }
    };
    let io = |p: &Path| crate::safe::state_err(p, "looking at the state directory");
    for (name, is_dir) in EXPECTED {
        let kind = crate::safe::kind_at(&d, Path::new(name)).map_err(io(&root.join(name)))?;
        let ok = match kind {
            None => true,
            Some(k) if is_dir => {
                k == FileType::Directory || (name == "journal" && k == FileType::RegularFile)
            }
            Some(k) => k == FileType::RegularFile,
        };
        if !ok {
            return Err(crate::safe::refusal(&root.join(name)));
        }
    }
    for sub in ["journal", "journal/detail", "objects"] {
        let fd = match crate::safe::dir(root, Path::new(sub), false) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // `journal` as a regular file is reported as damage by the open.
            Err(_) if sub == "journal/detail" || root.join("journal").is_file() => continue,
            Err(e) => return Err(io(&root.join(sub))(e)),
        };
        for (name, kind) in crate::safe::list(&fd).map_err(io(&root.join(sub)))? {
            // In the object store, `tmp` and the fan-out directories (two hex digits) must be
            // directories.
            let n = name.to_string_lossy();
            let fan_out = sub == "objects"
                && (n == "tmp" || (n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit())));
            if kind == FileType::Symlink || (fan_out && kind != FileType::Directory) {
                return Err(crate::safe::refusal(&root.join(sub).join(name)));
            }
        }
    }
    Ok(())
}

/// Everything about a state directory that can be decided without writing a byte or opening
/// the index: links planted where wf keeps its own names, `VERSION` (damaged, newer), a directory
/// that is not wf's, a missing or damaged record log (every frame is checked unless the log is
/// exactly as wf last verified it). Ok for a directory that does not exist.
pub(super) fn inspect(root: &Path) -> Result<Inspected, StateError> {
    let jdir = root.join("journal");
    let log_path = root.join(LOG_FILE);
    let version_path = root.join(VERSION_FILE);
    planted_check(root)?;
    let has_journal = exists(&jdir)?;
    let has_log = exists(&log_path)?;
    let versioned = exists(&version_path)?;
    if has_journal && !jdir.is_dir() {
        return Err(StateError::Corrupt(format!(
            "{} is not a directory; this state directory is damaged — move it away (nothing was changed)",
            jdir.display()
        )));
    }
    let mut scanned = false;
    if versioned {
        read_version(root, &version_path)?;
        if !has_log {
            return Err(StateError::Corrupt(format!(
                "{} is missing, and it holds every record of the journal; restore the state \
                 directory from a backup or move it away (nothing was changed)",
                log_path.display()
            )));
        }
        scanned = wal::check_verified(root, &log_path)?;
    } else {
        if has_journal {
            // wf writes VERSION before it creates the journal: this is not wf's, or damaged.
            return Err(StateError::Foreign(root.to_path_buf()));
        }
        if has_log && std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0) > 0 {
            // Only an empty log is a creation cut short: records without VERSION are damage.
            return Err(StateError::Corrupt(format!(
                "{} holds records but {} is missing; restore it (`wf-state schema {SCHEMA}`) or \
                 the state directory from a backup (nothing was changed)",
                log_path.display(),
                version_path.display()
            )));
        }
        foreign_check(root)?;
    }
    Ok(Inspected {
        has_journal,
        versioned,
        scanned,
    })
}

/// Decide, without writing anything (no lock, no index), whether the state directory `root` may
/// be used: a writer calls this before it takes the lock, so a state that is refused — foreign,
/// newer, damaged, or holding planted links — is left exactly as it was, `lock` included.
pub fn precheck(root: &Path) -> Result<(), StateError> {
    inspect(root).map(|_| ())
}

pub(super) fn write_version(root: &Path, path: &Path) -> Result<(), StateError> {
    let tmp = root.join("VERSION.tmp");
    let io = |what: &'static str| {
        let p = path.to_path_buf();
        move |source| StateError::Io {
            path: p,
            what,
            source,
        }
    };
    let mut f = crate::safe::open(root, Path::new("VERSION.tmp"), crate::safe::How::Replace)
        .map_err(crate::safe::state_err(&tmp, "creating the state version"))?;
    std::io::Write::write_all(&mut f, format!("wf-state schema {SCHEMA}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io("writing the state version"))?;
    std::fs::rename(&tmp, path).map_err(io("renaming the state version"))?;
    sync_dir(root)
}

/// A fresh, empty index directory (its files synced, so a power cut cannot leave them empty).
pub(super) fn fresh_index(root: &Path, jdir: &Path) -> Result<Kv, StateError> {
    crate::durable::create_private_dir(jdir).map_err(|source| StateError::Io {
        path: jdir.to_path_buf(),
        what: "creating the journal",
        source,
    })?;
    sync_dir(root)?;
    let kv = Kv::open(jdir)?;
    kv.sync_files()?;
    Ok(kv)
}

/// Mark an empty index as this schema and layout.
pub(super) fn init_index(kv: &mut Kv) -> Result<(), StateError> {
    kv.commit(
        vec![
            (K_SCHEMA.to_vec(), Some(SCHEMA.to_le_bytes().to_vec())),
            (K_LAYOUT.to_vec(), Some(LAYOUT.to_le_bytes().to_vec())),
        ],
        true,
        false,
    )
}
