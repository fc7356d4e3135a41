//! The cache key: everything a task's result may depend on — the workflow's and the task's names,
//! its command and environment, its declared files, the contents of its inputs and of the outputs
//! of the tasks it needs — hashed into one key (docs/retention.md has the table). The key's parts
//! are kept (component → short hash) and journaled, so a miss can say which one changed. Files are
//! hashed by content, through symbolic links, and checked again after the attempt: a file that
//! changed while the task ran makes its result uncacheable.

use std::collections::{BTreeMap, HashMap};
use std::fs::{Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The key's scheme: a key of another scheme never matches one of this.
const SCHEME: &str = "wf-fingerprint-2";

/// A file changed less than this long before it was hashed may change again without its stamp
/// changing (timestamps move in clock ticks): its hash is not reused, and it is hashed again
/// when it is checked after the attempt. Timestamps with nanoseconds move at least every 10 ms
/// (a coarse kernel clock); whole seconds may be a filesystem's 1–2 s granularity.
const RACY_NS: i128 = 100_000_000;
const RACY_WHOLE_SECONDS_NS: i128 = 2_000_000_000;

/// How many hex digits of a part's hash are journaled (enough to tell a change; the key itself
/// is made of the full values).
const SHORT: usize = 16;

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        }
    }

    /// Whether the file changed so shortly before `at` that a change in the same clock tick
    /// could leave this stamp as it is.
    fn racy(&self, at: SystemTime) -> bool {
        let at = match at.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(_) => return true,
        };
        let whole = self.mtime_ns % 1_000_000_000 == 0 && self.ctime_ns % 1_000_000_000 == 0;
        let slack = if whole {
            RACY_WHOLE_SECONDS_NS
        } else {
            RACY_NS
        };
        self.mtime_ns.max(self.ctime_ns) + slack >= at
    }
}

/// A file as it was seen when the key was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// A regular file (through symbolic links, if any): its BLAKE3 content hash and its stamp;
    /// `racy` when it had changed just before it was hashed.
    File {
        hash: String,
        stamp: Stamp,
        racy: bool,
    },
    /// Nothing there (or a symbolic link to nothing).
    Missing,
    /// Something wf cannot hash by content (a directory, a device, unreadable, changing as it
    /// was read): the words say what.
    Unusable(String),
}

/// Content hashes of the files a drive has read, reused while a file's stamp is unchanged (and
/// was not racy when it was hashed): an up-to-date chain reads each file once.
#[derive(Default)]
pub struct Files {
    memo: HashMap<PathBuf, (Stamp, String)>,
}

/// Where the memo is kept between runs, below the state directory.
const MEMO: &str = "journal/stamps";
/// The largest memo read back (a bigger file is ignored: everything is hashed again).
const MEMO_MAX: u64 = 64 * 1024 * 1024;
const MEMO_ENTRIES: usize = 200_000;

impl Files {
    /// The memo an earlier run saved in the state directory `root` (`journal/stamps`, beside the index): a file
    /// whose stamp — device, inode, size, modification and change times to the nanosecond — is
    /// the one it had when it was last hashed, and was not changing then (`racy`), is not read
    /// again. The change time cannot be set by a program (every write, rename, chmod or
    /// `touch -d` moves it), so a file with the same stamp has the same bytes; the limits are
    /// a file changed within the same clock tick as its hash (never memoized: `racy`), a
    /// filesystem that does not keep these times, and a clock set back by root. An unreadable,
    /// damaged or foreign memo is an empty one (everything is hashed); `WF_REHASH=1` ignores it.
    pub fn load(root: &Path) -> Files {
        use std::io::Read;
        let mut files = Files::default();
        if std::env::var_os("WF_REHASH").is_some_and(|v| v == "1") {
            return files;
        }
        let Ok(f) = wf_state::safe::open(root, Path::new(MEMO), wf_state::safe::How::Read) else {
            return files;
        };
        let mut text = String::new();
        if f.take(MEMO_MAX + 1).read_to_string(&mut text).is_err() || text.len() as u64 > MEMO_MAX {
            return files;
        }
        for line in text.lines() {
            if let Some((path, stamp, hash)) = parse_memo_line(line) {
                files.memo.insert(path, (stamp, hash));
            }
        }
        files
    }

    /// Keep the memo for the next run (best effort: it is a cache, written to a private temporary
    /// file and renamed over the old one, not synced — a memo lost in a crash costs one hash of
    /// each file).
    pub fn save(&self, root: &Path) {
        use std::io::Write;
        use std::os::unix::ffi::OsStrExt;
        let mut text = String::new();
        // Only files still there as they were hashed are kept (the memo does not grow with
        // files that are gone or changed), at most MEMO_ENTRIES of them.
        let current = self
            .memo
            .iter()
            .filter(|(path, (st, _))| std::fs::metadata(path).is_ok_and(|m| Stamp::of(&m) == *st));
        for (path, (st, hash)) in current.take(MEMO_ENTRIES) {
            let hex: String = path
                .as_os_str()
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            text.push_str(&format!(
                "{} {} {} {} {} {hash} {hex}\n",
                st.dev, st.ino, st.size, st.mtime_ns, st.ctime_ns
            ));
        }
        let shown = root.join("journal");
        let Ok(dir) = wf_state::safe::dir(root, Path::new("journal"), true) else {
            return;
        };
        let Ok((mut f, tmp)) =
            wf_state::safe::create_temp(&dir, "stamps.", wf_state::safe::FILE_MODE, &shown)
        else {
            return;
        };
        let written = f.write_all(text.as_bytes());
        drop(f);
        if written.is_err()
            || wf_state::safe::rename_at(&dir, Path::new(&tmp), &dir, Path::new("stamps")).is_err()
        {
            let _ = wf_state::safe::remove_at(&dir, Path::new(&tmp));
        }
    }

    /// Look at `rel` (relative to `dir`), following symbolic links.
    pub fn look(&mut self, dir: &Path, rel: &str) -> Look {
        let path = dir.join(rel);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Look::Missing
            }
            Err(e) => return Look::Unusable(format!("cannot be read ({})", plain(&e))),
        };
        if !meta.is_file() {
            return Look::Unusable("is not a regular file".into());
        }
        let now = SystemTime::now();
        let stamp = Stamp::of(&meta);
        if let Some((s, hash)) = self.memo.get(&path) {
            if *s == stamp && !stamp.racy(now) {
                return Look::File {
                    hash: hash.clone(),
                    stamp,
                    racy: false,
                };
            }
        }
        self.memo.remove(&path);
        // Non-blocking, so that a FIFO swapped in after the check cannot hang wf; the descriptor's
        // own stamp, before and after reading, is what the hash is of.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&path);
        let file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Look::Missing,
            Err(e) => return Look::Unusable(format!("cannot be read ({})", plain(&e))),
        };
        let before = match file.metadata() {
            Ok(m) if m.is_file() => Stamp::of(&m),
            Ok(_) => return Look::Unusable("is not a regular file".into()),
            Err(e) => return Look::Unusable(format!("cannot be read ({})", plain(&e))),
        };
        // Its size as stamped, hashed on every core (a large input is read at disk speed).
        let hash = match wf_state::hashing::file(&file, before.size) {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Look::Unusable("changed while wf was reading it".into())
            }
            Err(e) => return Look::Unusable(format!("cannot be read ({})", plain(&e))),
        };
        let after = file.metadata().map(|m| Stamp::of(&m));
        if after.as_ref().ok() != Some(&before) {
            return Look::Unusable("changed while wf was reading it".into());
        }
        let racy = before.racy(now);
        if !racy {
            self.memo.insert(path, (before, hash.clone()));
        }
        Look::File {
            hash,
            stamp: before,
            racy,
        }
    }

    /// Check a file again after the attempt: None when it is as `was`, else how it changed. A
    /// file whose stamp changed counts as changed even if it ends with the same bytes: the task
    /// may have read it in between.
    pub fn recheck(&mut self, dir: &Path, rel: &str, was: &Look) -> Option<&'static str> {
        let now = match std::fs::metadata(dir.join(rel)) {
            Ok(m) if m.is_file() => Some(Stamp::of(&m)),
            Ok(_) => return Some("was replaced while the task ran"),
            Err(_) => None,
        };
        match (was, now) {
            (Look::File { stamp, racy, hash }, Some(now)) => {
                if now == *stamp && !racy {
                    return None;
                }
                self.memo.remove(&dir.join(rel));
                match self.look(dir, rel) {
                    Look::File { hash: h, .. } if h == *hash => {
                        (now != *stamp).then_some("was rewritten while the task ran")
                    }
                    Look::File { .. } => Some("changed while the task ran"),
                    Look::Missing => Some("was deleted while the task ran"),
                    Look::Unusable(_) => Some("was replaced while the task ran"),
                }
            }
            (Look::File { .. }, None) => Some("was deleted while the task ran"),
            (Look::Missing, Some(_)) => Some("appeared while the task ran"),
            (Look::Missing, None) | (Look::Unusable(_), _) => None,
        }
    }
}

/// One line of the saved memo: `DEV INO SIZE MTIME_NS CTIME_NS HASH PATH_HEX`; None for anything
/// else (the line is skipped).
fn parse_memo_line(line: &str) -> Option<(PathBuf, Stamp, String)> {
    use std::os::unix::ffi::OsStrExt;
    let mut it = line.split(' ');
    let stamp = Stamp {
        dev: it.next()?.parse().ok()?,
        ino: it.next()?.parse().ok()?,
        size: it.next()?.parse().ok()?,
        mtime_ns: it.next()?.parse().ok()?,
        ctime_ns: it.next()?.parse().ok()?,
    };
    let hash = it.next()?;
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let hex = it.next()?;
    if it.next().is_some() || hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
    path.is_absolute().then(|| (path, stamp, hash.to_string()))
}

/// An I/O error in words, without Rust's debug form.
fn plain(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Where a component of the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A value from the workflow file, the command line or the environment.
    Text(String),
    /// A declared input: its content. Missing or not a regular file: the task is not cacheable.
    Input(String),
    /// A declared output of a task this one needs, as it is in the workspace: its content, or
    /// that it is absent.
    Upstream { task: String, path: String },
    /// A task this one needs that has no outputs: when it last ran (run, attempt), or never.
    Ran(Option<(u64, u32)>),
}

/// A task's cache key, made by [`key`].
#[derive(Debug, Clone)]
pub struct Key {
    /// BLAKE3 over every component's name and full value; None when the result cannot be cached
    /// (`why_not` says why).
    pub key: Option<String>,
    pub why_not: Option<String>,
    /// Component name → short hash (or a word: `absent`, `run 4.1`), in name order: journaled.
    pub parts: Vec<(String, String)>,
    /// The files read for the key — (how to name it, path, how it looked) — checked again after
    /// the attempt.
    pub files: Vec<(String, String, Look)>,
}

/// Make the key of these components (their order does not matter; a name given twice counts
/// once). Files are hashed through `files`, relative to `dir`.
pub fn key(dir: &Path, files: &mut Files, components: Vec<(String, Source)>) -> Key {
    let components: BTreeMap<String, Source> = components.into_iter().collect();
    let mut h = blake3::Hasher::new();
    let mut field = |value: &str| {
        h.update(&(value.len() as u64).to_le_bytes());
        h.update(value.as_bytes());
    };
    field(SCHEME);
    let mut why_not = None;
    let mut parts = Vec::with_capacity(components.len());
    let mut seen = Vec::new();
    for (name, source) in components {
        let value = match &source {
            Source::Text(t) => t.clone(),
            Source::Input(path) => {
                let look = files.look(dir, path);
                let v = match &look {
                    Look::File { hash, .. } => hash.clone(),
                    Look::Missing => {
                        why_not.get_or_insert_with(|| format!("input {path} is missing"));
                        "absent".into()
                    }
                    Look::Unusable(w) => {
                        why_not.get_or_insert_with(|| format!("input {path} {w}"));
                        "unusable".into()
                    }
                };
                seen.push((format!("input {path}"), path.clone(), look));
                v
            }
            Source::Upstream { task, path } => {
                let look = files.look(dir, path);
                let v = match &look {
                    Look::File { hash, .. } => hash.clone(),
                    Look::Missing => "absent".into(),
                    Look::Unusable(w) => {
                        why_not.get_or_insert_with(|| {
                            format!("{path} (an output of upstream {task}) {w}")
                        });
                        "unusable".into()
                    }
                };
                seen.push((
                    format!("{path} (an output of upstream {task})"),
                    path.clone(),
                    look,
                ));
                v
            }
            Source::Ran(Some((run, attempt))) => format!("run {run}.{attempt}"),
            Source::Ran(None) => "never".into(),
        };
        field(&name);
        field(&value);
        let shown = match &source {
            Source::Ran(_) => value,
            Source::Upstream { .. } | Source::Input(_) if value == "absent" => value,
            _ => short(&name, &value),
        };
        parts.push((name, shown));
    }
    let key = why_not.is_none().then(|| h.finalize().to_hex().to_string());
    Key {
        key,
        why_not,
        parts,
        files: seen,
    }
}

/// A component's journaled form: the start of a hash of its name and value.
fn short(name: &str, value: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&(name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    h.update(value.as_bytes());
    let hex = h.finalize().to_hex();
    hex[..SHORT].to_string()
}

/// What differs between an earlier key's parts and these, in words ("input data/raw.json
/// changed; command changed"); None when nothing does.
pub fn explain(old: &[(String, String)], new: &[(String, String)]) -> Option<String> {
    let old_map: HashMap<&str, &str> = old.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let new_map: HashMap<&str, &str> = new.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut said: Vec<String> = Vec::new();
    let mut say = |s: String| {
        if !said.contains(&s) {
            said.push(s);
        }
    };
    for (name, value) in new {
        match old_map.get(name.as_str()) {
            Some(v) if v == value => {}
            Some(_) => say(changed(name, value)),
            None => say(added(name)),
        }
    }
    for (name, _) in old {
        if !new_map.contains_key(name.as_str()) {
            say(removed(name));
        }
    }
    if said.is_empty() {
        return None;
    }
    let more = said.len().saturating_sub(3);
    said.truncate(3);
    let mut text = said.join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    Some(text)
}

fn changed(name: &str, value: &str) -> String {
    match split(name) {
        ("workflow", _) => "the workflow's name changed".into(),
        ("task", _) => "the task's name changed".into(),
        ("command", _) => "command changed".into(),
        ("outputs", _) => "its declared outputs changed".into(),
        ("checkpoint", _) => "its checkpoint list changed".into(),
        ("env", var) => format!("env {var} changed"),
        ("input", path) if value == "absent" => format!("input {path} is missing"),
        ("input", path) => format!("input {path} changed"),
        ("upstream", rest) => match rest.split_once(':') {
            Some((task, path)) if value == "absent" => {
                format!("{path} (an output of upstream {task}) is missing")
            }
            Some((task, path)) => format!("{path} (an output of upstream {task}) changed"),
            None => format!(
                "upstream {rest} ran (it has no outputs, so wf cannot tell what it changed)"
            ),
        },
        _ => format!("{name} changed"),
    }
}

fn added(name: &str) -> String {
    match split(name) {
        ("env", var) => format!("env {var} is new"),
        ("input", path) => format!("input {path} is newly declared"),
        ("upstream", rest) => {
            let task = rest.split_once(':').map_or(rest, |(t, _)| t);
            format!("it newly needs {task}, or {task}'s outputs changed")
        }
        _ => format!("{name} is new"),
    }
}

fn removed(name: &str) -> String {
    match split(name) {
        ("env", var) => format!("env {var} was removed"),
        ("input", path) => format!("input {path} is no longer declared"),
        ("upstream", rest) => {
            let task = rest.split_once(':').map_or(rest, |(t, _)| t);
            format!("it no longer needs {task}, or {task}'s outputs changed")
        }
        _ => format!("{name} was removed"),
    }
}

/// `kind:rest` of a component name.
fn split(name: &str) -> (&str, &str) {
    name.split_once(':').unwrap_or((name, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, v: &str) -> (String, Source) {
        (name.to_string(), Source::Text(v.to_string()))
    }

    #[test]
    fn order_does_not_matter_and_every_component_counts() -> Result<(), Box<dyn std::error::Error>>
    {
        let d = tempfile::tempdir()?;
        std::fs::write(d.path().join("a"), "1")?;
        std::fs::write(d.path().join("b"), "2")?;
        let mut f = Files::default();
        let base = vec![
            text("command", "cat a b"),
            ("input:a".into(), Source::Input("a".into())),
            ("input:b".into(), Source::Input("b".into())),
        ];
        let k1 = key(d.path(), &mut f, base.clone());
        let mut rev = base.clone();
        rev.reverse();
        let k2 = key(d.path(), &mut f, rev);
        assert_eq!(k1.key, k2.key);
        assert!(k1.key.is_some());
        let mut other = base.clone();
        other[0] = text("command", "cat b a");
        assert_ne!(key(d.path(), &mut f, other).key, k1.key);
        // A value moved from one component to another is another key.
        let a = key(d.path(), &mut f, vec![text("x", "ab"), text("y", "")]);
        let b = key(d.path(), &mut f, vec![text("x", "a"), text("y", "b")]);
        assert_ne!(a.key, b.key);
        Ok(())
    }

    #[test]
    fn the_memo_saved_by_a_run_spares_the_next_a_hash_until_the_file_changes(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let root = d.path().join(".wf");
        std::fs::write(d.path().join("a"), "one")?;
        // Not racy once its stamp is older than the clock's tick.
        std::thread::sleep(std::time::Duration::from_millis(250));
        let mut f = Files::default();
        let first = f.look(d.path(), "a");
        f.save(&root);
        // Plant another hash for the same stamp: a run that trusts the memo returns it, which
        // shows the file was not read again.
        let memo = root.join(MEMO);
        let real = blake3::hash(b"one").to_hex().to_string();
        let fake = "f".repeat(64);
        let text = std::fs::read_to_string(&memo)?.replace(&real, &fake);
        std::fs::write(&memo, text)?;
        let mut g = Files::load(&root);
        match (&first, g.look(d.path(), "a")) {
            (Look::File { hash, .. }, Look::File { hash: h, .. }) => {
                assert_eq!(*hash, real);
                assert_eq!(h, fake, "an unchanged stamp is not hashed again");
            }
            other => panic!("{other:?}"),
        }
        // Rewritten with the same size: another stamp (mtime, ctime), so hashed again.
        std::fs::write(d.path().join("a"), "two")?;
        let mut h = Files::load(&root);
        match h.look(d.path(), "a") {
            Look::File { hash, .. } => assert_eq!(hash, blake3::hash(b"two").to_hex().to_string()),
            other => panic!("{other:?}"),
        }
        // A damaged memo is an empty one.
        std::fs::write(&memo, "garbage\n1 2 3\n")?;
        assert!(Files::load(&root).memo.is_empty());
        Ok(())
    }

    #[test]
    fn inputs_through_links_are_hashed_by_content() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        std::fs::write(d.path().join("real"), "x")?;
        std::os::unix::fs::symlink("real", d.path().join("link"))?;
        let mut f = Files::default();
        match f.look(d.path(), "link") {
            Look::File { hash, .. } => assert_eq!(hash, blake3::hash(b"x").to_hex().to_string()),
            other => panic!("{other:?}"),
        }
        std::os::unix::fs::symlink("nowhere", d.path().join("dangling"))?;
        assert_eq!(f.look(d.path(), "dangling"), Look::Missing);
        std::fs::create_dir(d.path().join("dir"))?;
        assert!(matches!(f.look(d.path(), "dir"), Look::Unusable(_)));
        assert_eq!(f.look(d.path(), "real/below"), Look::Missing);
        let k = key(
            d.path(),
            &mut f,
            vec![("input:dir".into(), Source::Input("dir".into()))],
        );
        assert!(k.key.is_none());
        assert_eq!(
            k.why_not.as_deref(),
            Some("input dir is not a regular file")
        );
        Ok(())
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let p = d.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &p, rustix::fs::Mode::from_raw_mode(0o600))?;
        let mut f = Files::default();
        assert!(matches!(f.look(d.path(), "fifo"), Look::Unusable(_)));
        Ok(())
    }

    #[test]
    fn recheck_sees_changes_made_during_the_attempt() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        std::fs::write(d.path().join("a"), "one")?;
        let mut f = Files::default();
        let was = f.look(d.path(), "a");
        assert_eq!(f.recheck(d.path(), "a", &was), None);
        std::fs::write(d.path().join("a"), "two")?;
        assert_eq!(
            f.recheck(d.path(), "a", &was),
            Some("changed while the task ran")
        );
        // Changed and changed back: the stamp tells.
        let was = f.look(d.path(), "a");
        std::fs::write(d.path().join("tmp"), "two")?;
        std::fs::rename(d.path().join("tmp"), d.path().join("a"))?;
        assert_eq!(
            f.recheck(d.path(), "a", &was),
            Some("was rewritten while the task ran")
        );
        let was = f.look(d.path(), "a");
        std::fs::remove_file(d.path().join("a"))?;
        assert_eq!(
            f.recheck(d.path(), "a", &was),
            Some("was deleted while the task ran")
        );
        let was = f.look(d.path(), "a");
        assert_eq!(was, Look::Missing);
        std::fs::write(d.path().join("a"), "")?;
        assert_eq!(
            f.recheck(d.path(), "a", &was),
            Some("appeared while the task ran")
        );
        Ok(())
    }

    #[test]
    fn a_memoized_hash_is_not_trusted_for_a_racy_file() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        std::fs::write(d.path().join("a"), "one")?;
        let mut f = Files::default();
        let Look::File { racy, .. } = f.look(d.path(), "a") else {
            panic!("not a file");
        };
        assert!(racy, "a file written just now is racy");
        assert!(f.memo.is_empty());
        Ok(())
    }

    #[test]
    fn explanations_name_what_changed() {
        let p = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let old = p(&[
            ("command", "1"),
            ("input:data/raw.json", "2"),
            ("upstream:clean", "run 3.1"),
            ("upstream:a:mid.txt", "4"),
        ]);
        assert_eq!(explain(&old, &old), None);
        let new = p(&[
            ("command", "1"),
            ("input:data/raw.json", "9"),
            ("upstream:clean", "run 5.1"),
            ("upstream:a:mid.txt", "4"),
        ]);
        assert_eq!(
            explain(&old, &new).as_deref(),
            Some("input data/raw.json changed; upstream clean ran (it has no outputs, so wf cannot tell what it changed)")
        );
        let new = p(&[("command", "2"), ("env:MODE", "x")]);
        let text = explain(&old, &new).unwrap_or_default();
        assert!(text.starts_with("command changed; env MODE is new; input data/raw.json is no longer declared; and 2 more"), "{text}");
    }
}
