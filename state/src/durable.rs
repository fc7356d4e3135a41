//! Directory syncs and private directories: the small durability helpers the journal needs.

use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use crate::error::StateError;

/// fsync a directory, so that names created or renamed in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            what: "syncing the directory",
            source,
        })
}

/// Create a directory (and its parents) readable by its owner only: a state directory holds
/// logs and outputs that may be private.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Whether a path exists, treating "permission denied" as an error to report rather than "no".
pub fn exists(path: &Path) -> Result<bool, StateError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            what: "looking at",
            source,
        }),
    }
}
