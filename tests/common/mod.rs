//! What every integration test shares: the wf binary, the one environment it runs in, a seeded
//! random generator, a directory copy. Each test file says `mod common;` and takes what it needs
//! (so some items are unused in some binaries).
#![allow(dead_code, unused_imports)]

pub mod files;
pub mod rng;

use std::path::Path;
use std::process::{Command, Stdio};

pub use files::copy_dir;
pub use rng::Rng;

/// The wf binary cargo built for these tests (with the `failpoints` feature).
pub const WF: &str = env!("CARGO_BIN_EXE_wf");

/// `wf` run in `cwd` with the one small, fixed environment every test uses: nothing inherited but
/// `PATH` (no WF_CRASH_POINT, WF_PARAM_*, NO_COLOR or locale of the person running the tests),
/// `HOME` as given, the C locale, no colour, and `WF_USER=tester`; stdin empty. A test adds the
/// variables it is about with `.env(…)`.
pub fn command(cwd: &Path, home: &Path) -> Command {
    command_of(WF.as_ref(), cwd, home)
}

/// `command` for another build of wf (a baseline binary in a comparison).
pub fn command_of(bin: &std::ffi::OsStr, cwd: &Path, home: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(cwd)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("HOME", home)
        .env("LC_ALL", "C")
        .env("NO_COLOR", "1")
        .env("WF_USER", "tester")
        .stdin(Stdio::null());
    c
}

/// A workflow in a fresh temporary directory (canonical path): `wf.toml` written, removed with
/// the value. A test file wraps it (`struct T(Workdir)` with `Deref`) and adds its own ways of
/// running wf and reading the answers.
pub struct Workdir {
    _tmp: tempfile::TempDir,
    pub dir: std::path::PathBuf,
}

impl Workdir {
    pub fn new(toml: &str) -> Workdir {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().canonicalize().expect("canonical");
        std::fs::write(dir.join("wf.toml"), toml).expect("write wf.toml");
        Workdir { _tmp: tmp, dir }
    }

    /// Write a file below the directory (its parent directories made).
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
    }

    /// A file below the directory as text; empty when it is missing.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap_or_default()
    }

    /// `wf -C DIR ARGS` in the one test environment (`command`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = command(&self.dir, &self.dir);
        c.args(["-C", &self.dir.to_string_lossy()]).args(args);
        c
    }
}
