//! A power-cut filesystem: a FUSE filesystem over a real directory that keeps every change not yet
//! fsynced in memory (reads see it, like a page cache) and forgets it when the power is "cut": the
//! backing directory then holds exactly what was synced. See README.md for the model.
//!
//! ```no_run
//! use powercut::{Mount, Options};
//! # fn main() -> std::io::Result<()> {
//! let mut m = Mount::new("/tmp/backing".as_ref(), "/tmp/mnt".as_ref(), Options::default())?;
//! std::fs::write("/tmp/mnt/a", b"lost")?;   // never fsynced
//! m.power_off();                            // the instant of the cut
//! m.power_on()?;                            // unmount, mount again from the backing dir
//! assert!(!std::path::Path::new("/tmp/mnt/a").exists());
//! # Ok(()) }
//! ```

pub mod fs;
pub mod model;
pub mod mount;

pub use fs::Control;
pub use model::{CutReport, Names, Options, Stats, Trigger};
pub use mount::Mount;
