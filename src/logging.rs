//! Engine events as JSON lines in `.wf/logs/wf.jsonl` (via tracing): one object per event with its
//! time, level, run, task, attempt and fields. Written unbuffered by the one process that holds
//! the state directory, so no line is lost at exit (no background writer to drop lines). Human
//! output goes to the console separately (`console`).

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

/// Start writing engine events to `STATE_DIR/logs/wf.jsonl` (once per process; a failure to
/// open the file leaves logging off rather than stopping the command).
pub fn init(state_dir: &Path) {
    let dir = state_dir.join("logs");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let Ok(file) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("wf.jsonl"))
    else {
        return;
    };
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(Mutex::new(file))
        .with_target(false)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
}
