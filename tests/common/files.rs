#![allow(dead_code)]
//! Files for tests: copying a tree.

use std::path::Path;

/// Copy the directory tree `from` to `to` (regular files and directories; links and other files
/// are left out), skipping the entries named in `skip` at any depth (e.g. `.wf`).
pub fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).expect("creating a copy");
    for e in std::fs::read_dir(from)
        .expect("listing a directory")
        .flatten()
    {
        let name = e.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let p = e.path();
        let dest = to.join(&name);
        let m = std::fs::symlink_metadata(&p).expect("stat");
        if m.is_dir() {
            copy_dir(&p, &dest, skip);
        } else if m.is_file() {
            std::fs::copy(&p, &dest).expect("copying a file");
        }
    }
}
