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
    let mut c = Command::new(WF);
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
