//! Engine events as JSON lines in `.wf/logs/wf.jsonl` (via tracing): one object per event with its
//! time, level, run, task, attempt and fields. Written unbuffered by the one process that holds
//! the state directory, so no line is lost at exit (no background writer to drop lines). Human
//! output goes to the console separately (`console`).

use std::path::Path;
use std::sync::Mutex;

/// Start writing engine events to `STATE_DIR/logs/wf.jsonl` (once per process; a failure to
/// open the file leaves logging off rather than stopping the command).
pub fn init(state_dir: &Path) {
    // Never through a link planted in the state directory; private.
    let Ok(file) = wf_state::safe::open(
        state_dir,
        Path::new("logs/wf.jsonl"),
        wf_state::safe::How::Append,
    ) else {
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
