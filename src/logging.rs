//! Engine events as JSON lines in `.wf/logs/wf.jsonl` (via tracing): one object per event with its
//! time, level, run, task, attempt and fields. Written unbuffered by the one process that holds
//! the state directory, so no line is lost at exit (no background writer to drop lines). Human
//! output goes to the console separately (`console`).
//!
//! The file rotates: when a line would take it past `ROTATE_AT` bytes it becomes `wf.jsonl.1`
//! (`.1` becomes `.2`, and so on; `wf.jsonl.KEEP` is removed), so the engine's log never takes
//! more than about `(KEEP + 1) × ROTATE_AT` bytes.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `wf.jsonl` is rotated when a line would take it past this size.
pub const ROTATE_AT: u64 = 8 << 20;
/// How many rotated files are kept (`wf.jsonl.1` is the newest).
pub const KEEP: u32 = 3;

const DIR: &str = "logs";
const NAME: &str = "wf.jsonl";

/// Start writing engine events to `STATE_DIR/logs/wf.jsonl` (once per process; a failure to
/// open the file leaves logging off rather than stopping the command).
pub fn init(state_dir: &Path) {
    let Ok(writer) = Rotating::open(state_dir, ROTATE_AT, KEEP) else {
        return;
    };
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(Mutex::new(writer))
        .with_target(false)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// An append-only file that rotates by size, at write boundaries (tracing writes one event per
/// `write`, so a line is never split across two files).
pub struct Rotating {
    root: PathBuf,
    file: Option<File>,
    size: u64,
    max: u64,
    keep: u32,
    /// A rotation failed: the file grows from then on (this process only).
    stuck: bool,
}

impl Rotating {
    pub fn open(root: &Path, max: u64, keep: u32) -> std::io::Result<Rotating> {
        // Never through a link planted in the state directory; private.
        let file = wf_state::safe::open(
            root,
            &Path::new(DIR).join(NAME),
            wf_state::safe::How::Append,
        )?;
        let size = file.metadata()?.len();
        Ok(Rotating {
            root: root.to_path_buf(),
            file: Some(file),
            size,
            max,
            keep,
            stuck: false,
        })
    }

    /// `wf.jsonl` → `wf.jsonl.1` → … → `wf.jsonl.KEEP` (removed), then a new `wf.jsonl`. When
    /// a name cannot be moved (something that is not wf's file sits there), the file is kept
    /// open as it is and rotation stops for this process.
    fn rotate(&mut self) -> std::io::Result<()> {
        let dir = wf_state::safe::dir(&self.root, Path::new(DIR), true)?;
        let name = |n: u32| {
            if n == 0 {
                PathBuf::from(NAME)
            } else {
                PathBuf::from(format!("{NAME}.{n}"))
            }
        };
        if self.keep == 0 {
            wf_state::safe::remove_at(&dir, &name(0))?;
        } else {
            wf_state::safe::remove_at(&dir, &name(self.keep))?;
            for n in (0..self.keep).rev() {
                // Only wf's own files move: anything else at a name stops the rotation.
                match wf_state::safe::kind_at(&dir, &name(n))? {
                    None => continue,
                    Some(rustix::fs::FileType::RegularFile) => {}
                    Some(_) => return Err(std::io::Error::other("not a regular file")),
                }
                wf_state::safe::rename_at(&dir, &name(n), &dir, &name(n + 1))?;
            }
        }
        let file = wf_state::safe::open(
            &self.root,
            &Path::new(DIR).join(NAME),
            wf_state::safe::How::Append,
        )?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        if self.size >= self.max {
            return Err(std::io::Error::other("wf.jsonl could not be rotated"));
        }
        Ok(())
    }
}

impl Write for Rotating {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.stuck && self.size > 0 && self.size + buf.len() as u64 > self.max {
            // A rotation that fails (a full disk, a directory planted at a rotated name) keeps
            // writing to the file it has, and does not try again.
            if self.rotate().is_err() {
                self.stuck = true;
            }
        }
        let Some(f) = self.file.as_mut() else {
            return Err(std::io::Error::other("wf.jsonl is not open"));
        };
        f.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_a_fixed_number_of_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let mut w = Rotating::open(root, 100, 2).expect("open");
        for i in 0..50 {
            w.write_all(format!("{{\"line\":{i:04}}}\n").as_bytes())
                .expect("write");
        }
        let logs = root.join(DIR);
        let mut names: Vec<String> = std::fs::read_dir(&logs)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["wf.jsonl", "wf.jsonl.1", "wf.jsonl.2"]);
        for n in &names {
            let len = std::fs::metadata(logs.join(n)).expect("meta").len();
            assert!(len <= 100, "{n} is {len} bytes");
            // Whole lines only.
            let text = std::fs::read_to_string(logs.join(n)).expect("read");
            assert!(text.lines().all(|l| l.starts_with('{') && l.ends_with('}')));
        }
        // The newest line is in wf.jsonl, the order runs .2 → .1 → wf.jsonl.
        let now = std::fs::read_to_string(logs.join("wf.jsonl")).expect("read");
        assert!(now.trim_end().ends_with("{\"line\":0049}"));
        let one = std::fs::read_to_string(logs.join("wf.jsonl.1")).expect("read");
        let two = std::fs::read_to_string(logs.join("wf.jsonl.2")).expect("read");
        assert!(two.lines().last() < one.lines().next());
    }

    #[test]
    fn a_name_that_cannot_be_rotated_stops_rotation_not_logging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join(DIR).join("wf.jsonl.1/x")).expect("plant");
        let mut w = Rotating::open(root, 50, 2).expect("open");
        for i in 0..20 {
            w.write_all(format!("{{\"line\":{i:04}}}\n").as_bytes())
                .expect("write");
        }
        let text = std::fs::read_to_string(root.join(DIR).join(NAME)).expect("read");
        assert_eq!(text.lines().count(), 20, "every line kept in wf.jsonl");
        assert!(
            root.join(DIR).join("wf.jsonl.1/x").is_dir(),
            "the planted directory is left"
        );
    }
}
