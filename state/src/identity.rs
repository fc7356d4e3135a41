//! Which workflow a state directory belongs to: `.wf/WORKFLOW` records the workflow's name and
//! directory when the state is created (or first written by a wf that knows about it), so a
//! state copied from another project, or pointed at by a mistaken `--state-dir`, is refused
//! for writes instead of being adopted. Read without opening the index or taking the lock.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::safe;

pub const FILE: &str = "WORKFLOW";

/// A workflow's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `[workflow] name`.
    pub name: String,
    /// The directory of the workflow file.
    pub dir: PathBuf,
}

impl Identity {
    /// Whether `other` is the same workflow: the same name in the same directory.
    pub fn same(&self, other: &Identity) -> bool {
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        self.name == other.name && canon(&self.dir) == canon(&other.dir)
    }
}

/// The identity recorded in the state directory `root` (None for a state written before wf
/// recorded one, or no state). A damaged record is refused.
pub fn read(root: &Path) -> Result<Option<Identity>, StateError> {
    let path = root.join(FILE);
    let mut f = match safe::open(root, Path::new(FILE), safe::How::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(safe::state_err(&path, "reading the workflow identity")(e)),
    };
    let mut text = String::new();
    Read::by_ref(&mut f)
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(safe::state_err(&path, "reading the workflow identity"))?;
    serde_json::from_str(&text).map(Some).map_err(|_| {
        StateError::Corrupt(format!(
            "{} is damaged; write the workflow's identity again with `wf state adopt` (nothing was \
             changed)",
            path.display()
        ))
    })
}

/// Record `id` as the workflow `root` belongs to (a new name, fsynced, renamed into place).
pub fn write(root: &Path, id: &Identity) -> Result<(), StateError> {
    let path = root.join(FILE);
    let err = |what| safe::state_err(&path, what);
    let dir =
        safe::dir(root, Path::new(""), false).map_err(err("recording the workflow identity"))?;
    let (mut f, tmp) = safe::create_temp(&dir, "WORKFLOW.tmp.", safe::FILE_MODE, root)
        .map_err(err("recording the workflow identity"))?;
    let text = serde_json::to_string(id).unwrap_or_default() + "\n";
    let written = f.write_all(text.as_bytes()).and_then(|_| f.sync_all());
    drop(f);
    if let Err(e) = written {
        let _ = safe::remove_at(&dir, Path::new(&tmp));
        return Err(err("recording the workflow identity")(e));
    }
    safe::rename_at(&dir, Path::new(&tmp), &dir, Path::new(FILE))
        .map_err(err("recording the workflow identity"))?;
    safe::sync(&dir).map_err(err("syncing the state directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let root = d.path().join(".wf");
        std::fs::create_dir(&root)?;
        assert_eq!(read(&root)?, None);
        let id = Identity {
            name: "homework".into(),
            dir: d.path().to_path_buf(),
        };
        write(&root, &id)?;
        assert_eq!(read(&root)?, Some(id.clone()));
        assert!(id.same(&Identity {
            name: "homework".into(),
            dir: d.path().join("."),
        }));
        std::fs::write(root.join(FILE), b"{not json")?;
        assert!(matches!(read(&root), Err(StateError::Corrupt(_))));
        Ok(())
    }
}
