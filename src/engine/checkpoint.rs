//! What an attempt leaves behind: its declared outputs (which must exist), the BLAKE3 hashes of its
//! checkpoint outputs, and the metrics it reported through `$WF_METRICS`; and the one way a
//! checkpoint is verified in, or restored to, the workspace (cache hits, a continued run's own
//! files, `wf restore`).

use std::path::{Path, PathBuf};

use wf_state::objects::Objects;
use wf_state::StateError;

/// A checkpoint output, hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub path: String,
    pub hash: String,
    pub bytes: u64,
}

/// The first directory on the way to `rel` (inside `dir`) that is a symbolic link, if any: a
/// path through one may lead outside the workflow directory.
pub fn linked_parent(dir: &Path, rel: &str) -> Option<String> {
    let mut at = dir.to_path_buf();
    let mut shown = String::new();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        at.push(part);
        if !shown.is_empty() {
            shown.push('/');
        }
        shown.push_str(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Some(shown);
        }
    }
    None
}

/// Check that `rel` (relative to `dir`) is a regular file reached without any symbolic link.
pub fn check_output(dir: &Path, rel: &str) -> Result<(), String> {
    if let Some(link) = linked_parent(dir, rel) {
        return Err(format!(
            "output {rel} is reached through the symbolic link {link}; wf checkpoints only files inside the workflow directory"
        ));
    }
    match std::fs::symlink_metadata(dir.join(rel)) {
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "output {rel} is a symbolic link; wf checkpoints only regular files inside the workflow directory"
        )),
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("output {rel} is not a regular file")),
        Err(_) => Err(rel.to_string()),
    }
}

/// Hash a file with BLAKE3 (on every core when it is large); a symbolic link is refused, not
/// followed.
pub fn hash_file(dir: &Path, rel: &str) -> Result<Hashed, String> {
    check_output(dir, rel)?;
    let path = dir.join(rel);
    let file = wf_state::objects::open_nofollow(&path)
        .map_err(|e| format!("cannot read output {rel}: {e}"))?;
    // Its size when opened, hashed on every core (a large output is read at disk speed).
    let (hash, bytes) = file
        .metadata()
        .and_then(|m| wf_state::hashing::file(&file, m.len()).map(|h| (h, m.len())))
        .map_err(|e| format!("cannot read output {rel}: {e}"))?;
    Ok(Hashed {
        path: rel.to_string(),
        hash,
        bytes,
    })
}

/// Why a checkpoint cannot be put back into the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrestorable {
    /// Its stored copy is gone from the object store.
    Gone,
    /// This directory on its path is a symbolic link: wf never writes through one.
    Linked(String),
    /// Its stored copy (this object file) no longer matches its hash: it is never put in the
    /// workspace.
    Rotten { hash: String, object: PathBuf },
}

/// What the workspace held of a checkpoint, and what [`verify_or_restore`] did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The file holds the checkpointed content.
    Holds,
    /// The file held another version (`found`: its hash) or was missing (`None`); the stored copy
    /// was put back.
    Restored { found: Option<String> },
    /// The file holds another version (or is missing) and the checkpoint could not be put back.
    Lost {
        found: Option<String>,
        why: Unrestorable,
    },
}

/// Whether the checkpoint `hash` of `rel` could be put back, without writing anything: its stored
/// copy is there and no symbolic link is on its path.
pub fn restorable(
    objects: &Objects,
    dir: &Path,
    rel: &str,
    hash: &str,
) -> Result<(), Unrestorable> {
    if let Some(link) = linked_parent(dir, rel) {
        return Err(Unrestorable::Linked(link));
    }
    if !objects.has(hash) {
        return Err(Unrestorable::Gone);
    }
    Ok(())
}

/// Put the stored copy of the checkpoint `hash` at `rel` (replaced atomically), verified by hash
/// while it is copied: a damaged copy is never put in the workspace. Returns the bytes written,
/// or why it could not be put back; an error is wf's own (the store, the disk).
pub fn restore(
    objects: &Objects,
    dir: &Path,
    rel: &str,
    hash: &str,
) -> Result<Result<u64, Unrestorable>, StateError> {
    if let Err(why) = restorable(objects, dir, rel, hash) {
        return Ok(Err(why));
    }
    match objects.copy_out(hash, dir, rel) {
        Ok(n) => Ok(Ok(n)),
        Err(StateError::Rotten { hash, path }) => {
            Ok(Err(Unrestorable::Rotten { hash, object: path }))
        }
        Err(e) => Err(e),
    }
}

/// The one "verify or restore a checkpoint": the file at `rel` must hold the checkpoint `hash`;
/// when it holds another version or is missing, the stored copy is put back ([`restore`]).
pub fn verify_or_restore(
    objects: &Objects,
    dir: &Path,
    rel: &str,
    hash: &str,
) -> Result<Verified, StateError> {
    let found = match hash_file(dir, rel) {
        Ok(h) if h.hash == hash => return Ok(Verified::Holds),
        Ok(h) => Some(h.hash),
        Err(_) => None,
    };
    Ok(match restore(objects, dir, rel, hash)? {
        Ok(_) => Verified::Restored { found },
        Err(why) => Verified::Lost { found, why },
    })
}

/// The most metrics one attempt may report, and the longest value kept.
const MAX_METRICS: usize = 1000;
const MAX_VALUE: usize = 4096;

/// Parse a metrics file: `key=value` lines; blank lines and lines starting with `#` are skipped;
/// a key is `[A-Za-z_][A-Za-z0-9_.]*`; the value is the rest of the line, trimmed, with one pair of
/// surrounding double quotes removed. A later line for the same key wins. Bad lines are returned as
/// warnings.
pub fn parse_metrics(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut warnings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            warnings.push(format!("metrics line {} has no `=`: {line:.60}", n + 1));
            continue;
        };
        let k = k.trim();
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid {
            warnings.push(format!("metrics line {} has a bad key `{k:.60}`", n + 1));
            continue;
        }
        let mut v = v.trim();
        if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
            v = &v[1..v.len() - 1];
        }
        let mut v = v.to_string();
        if v.len() > MAX_VALUE {
            let mut cut = MAX_VALUE;
            while !v.is_char_boundary(cut) {
                cut -= 1;
            }
            v.truncate(cut);
        }
        if let Some(slot) = out.iter_mut().find(|(key, _)| key == k) {
            slot.1 = v;
        } else if out.len() < MAX_METRICS {
            out.push((k.to_string(), v));
        }
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lines() {
        let (m, w) = parse_metrics(
            "rows=40\n# c\n\nnull_pct = 12.5\nsource_uri=\"file://x\"\nbad line\n1x=2\nrows=41\n",
        );
        assert_eq!(
            m,
            vec![
                ("rows".to_string(), "41".to_string()),
                ("null_pct".to_string(), "12.5".to_string()),
                ("source_uri".to_string(), "file://x".to_string()),
            ]
        );
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn hashes_and_refuses_links() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        std::fs::write(d.path().join("a"), b"abc")?;
        let h = hash_file(d.path(), "a")?;
        assert_eq!(h.bytes, 3);
        assert_eq!(h.hash, blake3::hash(b"abc").to_hex().to_string());
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("l"))?;
        assert!(hash_file(d.path(), "l").is_err());
        assert_eq!(
            check_output(d.path(), "missing"),
            Err("missing".to_string())
        );
        Ok(())
    }
}
