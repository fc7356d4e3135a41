//! Where things are: the workflow file, the state directory, and how a command gets at the state
//! (the writer lock and the journal for writers; the journal or the live log for readers).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wf_state::identity::{self, Identity};
use wf_state::lock::{self, Holder, LockError, StateLock};
use wf_state::{Access, Record, StateError, Store};

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::render::console::Console;
use crate::workflow::{self, Workflow};

pub struct Ctx {
    /// Where `wf init` writes a new workflow file: the directory of `-f FILE`, else the current
    /// directory (never one found above it).
    pub here: PathBuf,
    /// A workflow file above the current directory that was not used: another user's.
    foreign: Option<(PathBuf, u32)>,
    pub json: bool,
    /// `--json` on a command that runs workflows (`run`, `resume`, `approve`, `reject`): the
    /// records it journals are printed as JSON Lines as they are journaled, and nothing for
    /// people on stdout.
    stream: bool,
    pub out: Console,
    pub file: Option<PathBuf>,
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    pub args: Vec<String>,
    /// The workflow's name once the workflow file loaded (for the state's identity).
    name: std::cell::OnceCell<Option<String>>,
}

/// How a read-only command sees the state.
pub enum Reader {
    /// No state directory yet.
    Empty,
    Store(Box<Store>),
    /// A live wf holds the journal: the records of the run it drives, from its live log.
    Live {
        holder: Holder,
        records: Vec<Record>,
    },
    /// Opening the journal failed for lack of space (a reader writes nothing, so this is a
    /// fallback): every record, read straight from the record log, which needs no byte of space.
    Log {
        records: Vec<Record>,
    },
}

/// How long a command waits for another short-lived reader to let go of the journal.
const READER_WAIT: Duration = Duration::from_secs(3);

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Where a command run in `cwd` finds its workflow: the nearest of `cwd` and the directories
/// above it (as git and cargo find theirs) that holds `wf.toml`, else `wf.json` — or, with
/// neither, a state directory `.wf/` (e.g. one imported for inspection): (file, its directory).
/// A file found above `cwd` that belongs to another user (neither us nor root) is not used —
/// running it would run their commands — and is returned third, so the error can name it.
fn discover(cwd: &Path) -> (Option<PathBuf>, PathBuf, Option<(PathBuf, u32)>) {
    for dir in cwd.ancestors() {
        if let Some(found) = workflow::find_file(dir) {
            if dir != cwd {
                use std::os::unix::fs::MetadataExt;
                let owner = std::fs::metadata(&found).map(|m| m.uid()).unwrap_or(0);
                let me = rustix::process::geteuid().as_raw();
                if owner != me && owner != 0 {
                    return (None, cwd.to_path_buf(), Some((found, owner)));
                }
            }
            return (Some(found), dir.to_path_buf(), None);
        }
        if dir.join(".wf").join("VERSION").is_file() {
            return (None, dir.to_path_buf(), None);
        }
    }
    (None, cwd.to_path_buf(), None)
}

impl Ctx {
    pub fn new(cli: &Cli) -> Result<Ctx> {
        if let Some(d) = &cli.directory {
            std::env::set_current_dir(d).map_err(|e| {
                Error::Usage(format!("cannot change to directory {}: {e}", d.display()))
            })?;
        }
        let cwd = absolute(Path::new("."));
        let cwd = cwd.canonicalize().unwrap_or(cwd);
        let here = match &cli.file {
            Some(f) => absolute(f)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| cwd.clone()),
            None => cwd.clone(),
        };
        let (file, dir, foreign) = match &cli.file {
            Some(f) => {
                let f = absolute(f);
                let dir = f
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| cwd.clone());
                (Some(f), dir, None)
            }
            None => discover(&cwd),
        };
        if cli.verbose && cli.file.is_none() {
            match &file {
                Some(f) => {
                    crate::render::console::error_line(&format!("wf: using {}", f.display()))
                }
                None => crate::render::console::error_line(&format!(
                    "wf: no wf.toml or wf.json in {} or above; the state is read from {}",
                    cwd.display(),
                    dir.join(".wf").display()
                )),
            }
        }
        let state_dir = match &cli.state_dir {
            Some(s) => absolute(s),
            None => dir.join(".wf"),
        };
        let stream = cli.json
            && matches!(
                cli.command,
                crate::Command::Run(_)
                    | crate::Command::Resume(_)
                    | crate::Command::Approve(_)
                    | crate::Command::Reject(_)
            );
        Ok(Ctx {
            here,
            foreign,
            json: cli.json,
            stream,
            out: Console::new(cli.quiet || stream, cli.verbose && !stream),
            file,
            dir,
            state_dir,
            args: std::env::args().collect(),
            name: std::cell::OnceCell::new(),
        })
    }

    /// A context for another thread of this process (`wf serve`'s request and approval
    /// threads): the same workflow and state, its own `args` (journaled with a resumed run) and
    /// JSON flag.
    pub fn worker(&self, args: Vec<String>, json: bool) -> Ctx {
        Ctx {
            here: self.here.clone(),
            foreign: self.foreign.clone(),
            json,
            stream: false,
            out: self.out,
            file: self.file.clone(),
            dir: self.dir.clone(),
            state_dir: self.state_dir.clone(),
            args,
            name: std::cell::OnceCell::new(),
        }
    }

    /// Load and validate the workflow file.
    pub fn workflow(&self) -> Result<Workflow> {
        let Some(file) = &self.file else {
            if let Some((found, owner)) = &self.foreign {
                return Err(Error::Usage(format!(
                    "the nearest workflow file, {}, belongs to another user (uid {owner}), so wf does not run it; pass -f FILE to use it anyway, or write your own with `wf init`",
                    found.display()
                )));
            }
            return Err(Error::Usage(format!(
                "no wf.toml or wf.json in {} or any directory above it; write one with `wf init` (`wf init --reference` lists every key) or pass -f FILE",
                self.dir.display()
            )));
        };
        let wf = workflow::load(file).map_err(Error::Workflow)?;
        let _ = self.name.set(Some(wf.name.clone()));
        Ok(wf)
    }

    /// Take the writer lock, or say who holds it (exit 3). Everything that refuses the state —
    /// links planted in it, a damaged or newer state, a directory that is not wf's, a state of
    /// another workflow — is decided first, without writing a byte (not even `lock`).
    /// Without a workflow file (`wf --state-dir DIR gc` on a state alone) the state's own
    /// records are what counts, and any state may be written.
    pub fn lock(&self) -> Result<StateLock> {
        self.lock_checked(Some(false))
    }

    /// The writer lock for a command that writes into the workflow directory (`wf restore`):
    /// without a workflow file, the state must at least be this directory's.
    pub fn lock_for_outputs(&self) -> Result<StateLock> {
        self.lock_checked(Some(true))
    }

    /// Take the writer lock of a state that may belong to another workflow (`wf state adopt`).
    pub fn lock_adopting(&self) -> Result<StateLock> {
        self.lock_checked(None)
    }

    fn lock_checked(&self, identity: Option<bool>) -> Result<StateLock> {
        wf_state::safe::private_umask();
        wf_state::store::precheck(&self.state_dir)?;
        self.warn_modes();
        if let Some(dir_without_name) = identity {
            self.check_identity(dir_without_name)?;
        }
        let command = self.args.join(" ");
        let lock = StateLock::acquire(&self.state_dir, &command).map_err(|e| match e {
            LockError::Held(Some(h)) => Error::Locked(format!(
                "{} is in use by `{}` (pid {}, since {}); wait for it to finish, or stop it and run `wf resume`",
                self.state_dir.display(),
                h.command,
                h.pid,
                h.since.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S")
            )),
            LockError::Held(None) => Error::Locked(format!(
                "{} is in use by another wf process; wait for it to finish",
                self.state_dir.display()
            )),
            LockError::Io(e) => Error::State(e),
        })?;
        Ok(lock)
    }

    /// The identity of the workflow this command works on: its directory, and its name when
    /// the workflow file loads.
    pub fn identity(&self) -> (Option<String>, PathBuf) {
        let name = match self.name.get() {
            Some(n) => n.clone(),
            None => {
                // (Loading sets the name on success.)
                let n = self
                    .file
                    .as_ref()
                    .and_then(|_| self.workflow().ok())
                    .map(|w| w.name);
                let _ = self.name.set(n.clone());
                n
            }
        };
        (name, self.dir.clone())
    }

    /// Refuse (exit 5, nothing written) a state that records another workflow: another name or
    /// directory; without a loadable workflow file, another directory when `dir_without_name`.
    fn check_identity(&self, dir_without_name: bool) -> Result<()> {
        let Some(rec) = identity::read(&self.state_dir)? else {
            return Ok(());
        };
        let (name, dir) = self.identity();
        if name.is_none() && !dir_without_name {
            return Ok(());
        }
        let here = Identity {
            name: name.clone().unwrap_or_else(|| rec.name.clone()),
            dir,
        };
        if rec.same(&here) {
            return Ok(());
        }
        // What the state records came from a file: shown with control characters escaped.
        let safe = |s: &str| s.escape_debug().to_string();
        let shown = |n: Option<&str>, d: &Path| match n {
            Some(n) => format!(
                "workflow `{}` in {}",
                safe(n),
                safe(&d.display().to_string())
            ),
            None => format!("the workflow in {}", safe(&d.display().to_string())),
        };
        Err(Error::State(wf_state::StateError::OtherWorkflow(format!(
            "{} belongs to {}, not to {}; point --state-dir at this workflow's own state, or take it over deliberately with `wf state adopt` (nothing was changed)",
            self.state_dir.display(),
            shown(Some(&rec.name), &rec.dir),
            shown(name.as_deref(), &here.dir),
        ))))
    }

    /// Record this workflow as the state's owner when the state records none yet (a new state,
    /// or one written before wf recorded identities), or always with `force` (`wf state adopt`).
    pub fn record_identity(&self, force: bool) -> Result<Option<Identity>> {
        let old = identity::read(&self.state_dir)?;
        if old.is_some() && !force {
            return Ok(old);
        }
        let (Some(name), dir) = self.identity() else {
            return Ok(old);
        };
        let dir = dir.canonicalize().unwrap_or(dir);
        identity::write(&self.state_dir, &Identity { name, dir })?;
        Ok(old)
    }

    /// Warn (once, on stderr) when the state directory may be written by others: whoever can
    /// write it can change what wf records, restores and runs as cached.
    fn warn_modes(&self) {
        use std::os::unix::fs::PermissionsExt;
        static ONCE: std::sync::Once = std::sync::Once::new();
        let Ok(m) = std::fs::metadata(&self.state_dir) else {
            return;
        };
        if m.is_dir() && m.permissions().mode() & 0o022 != 0 {
            ONCE.call_once(|| {
                self.out.alert(&format!(
                    "wf: warning: {} is writable by group or others, who could change what wf records and restores; make it private with `chmod go-w {}`",
                    self.state_dir.display(),
                    self.state_dir.display()
                ))
            });
        }
    }

    /// Open the journal for writing (the caller holds the lock).
    pub fn open_write(&self) -> Result<Store> {
        let start = Instant::now();
        loop {
            match Store::open(&self.state_dir, Access::Write) {
                Ok(Some(s)) => {
                    self.note_rebuilt(&s);
                    // A new state, or one from before identities: it is this workflow's now.
                    self.record_identity(false)?;
                    // The state is ours and sound: from here on, engine events are logged.
                    crate::logging::init(&self.state_dir);
                    let mut s = s;
                    if self.stream {
                        s.watch(crate::render::json::stream(self.out));
                    }
                    tracing::info!(
                        event = "command",
                        command = %self.args.join(" "),
                        pid = std::process::id()
                    );
                    return Ok(s);
                }
                Ok(None) => {
                    return Err(Error::Internal(
                        "the state could not be created; this is a bug".into(),
                    ))
                }
                // A reader (status, history) has the journal open for a moment.
                Err(StateError::Busy(_)) if start.elapsed() < READER_WAIT => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Say so when opening rebuilt a damaged journal index from the record log.
    fn note_rebuilt(&self, s: &Store) {
        if let Some((aside, _)) = s.rebuilt() {
            self.out.alert(&format!(
                "wf: the journal index was damaged; it was rebuilt from the record log (nothing lost), and the damaged one kept in {}",
                aside.display()
            ));
        }
    }

    /// Open the state for reading without ever blocking a writer.
    pub fn read(&self) -> Result<Reader> {
        wf_state::safe::private_umask();
        self.warn_modes();
        let start = Instant::now();
        loop {
            // While a writer drives a run, readers show it from the live log (the index and
            // the record log are changing under them; docs/operations.md).
            if let Some(holder) = lock::holder(&self.state_dir) {
                if let Some(records) = wf_state::live::read(&self.state_dir)? {
                    return Ok(Reader::Live { holder, records });
                }
            }
            match Store::open(&self.state_dir, Access::Read) {
                Ok(Some(s)) => {
                    self.note_rebuilt(&s);
                    return Ok(Reader::Store(Box::new(s)));
                }
                Ok(None) => return Ok(Reader::Empty),
                Err(StateError::Busy(_)) => {
                    if let Some(holder) = lock::holder(&self.state_dir) {
                        if let Some(records) = wf_state::live::read(&self.state_dir)? {
                            return Ok(Reader::Live { holder, records });
                        }
                    }
                    if start.elapsed() >= READER_WAIT {
                        return Err(Error::Locked(format!(
                            "{} is in use by another wf process; try again in a moment",
                            self.state_dir.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    let e = Error::from(e);
                    if !e.is_disk_full() {
                        return Err(e);
                    }
                    return self.read_log().map_err(|_| e.on_full_disk(&self.state_dir));
                }
            }
        }
    }
}

impl Ctx {
    /// Read the state from its record log alone (the disk is full), saying so once.
    fn read_log(&self) -> Result<Reader> {
        let log = self.state_dir.join("journal.log");
        let tail = wf_state::wal::read_from(&log, 0)?;
        self.out.alert(&format!(
            "wf: the disk holding {} is full, so the journal index cannot be opened; read from the record log instead (free some space)",
            self.state_dir.display()
        ));
        Ok(Reader::Log {
            records: tail.records,
        })
    }
}

/// Who is running wf: $WF_USER, else $USER, else $LOGNAME, else the numeric uid.
pub fn user() -> String {
    for var in ["WF_USER", "USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    format!("uid {}", rustix::process::getuid().as_raw())
}

pub fn host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

impl Reader {
    fn live_run(records: &[Record]) -> Option<u64> {
        records.first().map(|r| r.run)
    }

    fn busy(holder: &Holder, live: Option<u64>) -> Error {
        Error::Locked(format!(
            "the state is in use by `{}` (pid {}); until it ends only its run{} can be shown",
            holder.command,
            holder.pid,
            live.map(|r| format!(" {r}")).unwrap_or_default()
        ))
    }

    /// The runs of a `Log` reader, newest first (empty for the others).
    pub fn logged_runs(&self) -> Vec<wf_state::RunView> {
        let Reader::Log { records } = self else {
            return Vec::new();
        };
        let mut by_run: std::collections::BTreeMap<u64, Vec<&Record>> = Default::default();
        for r in records {
            by_run.entry(r.run).or_default().push(r);
        }
        by_run
            .into_values()
            .rev()
            .filter_map(|rs| wf_state::machine::replay(rs).ok().map(|s| s.run))
            .collect()
    }

    /// The state of `run` (default: the latest run), or `None` when there is no such run.
    pub fn snapshot(&mut self, run: Option<u64>) -> Result<Option<wf_state::RunSnapshot>> {
        match self {
            Reader::Empty => Ok(None),
            Reader::Log { records } => {
                let Some(id) = run.or_else(|| records.iter().map(|r| r.run).max()) else {
                    return Ok(None);
                };
                if !records.iter().any(|r| r.run == id) {
                    return Ok(None);
                }
                wf_state::machine::replay(records.iter().filter(|r| r.run == id))
                    .map(Some)
                    .map_err(|e| Error::Internal(format!("the record log does not replay ({e})")))
            }
            Reader::Store(s) => {
                let id = match run {
                    Some(r) => r,
                    None => match s.latest_run()? {
                        Some(v) => v.id,
                        None => return Ok(None),
                    },
                };
                Ok(s.snapshot(id)?)
            }
            Reader::Live { holder, records } => {
                let live = Self::live_run(records);
                if run.is_some() && run != live {
                    return Err(Self::busy(holder, live));
                }
                wf_state::machine::replay(records.iter())
                    .map(Some)
                    .map_err(|e| Error::Internal(format!("the live log does not replay ({e})")))
            }
        }
    }

    /// Every record of `run`.
    pub fn records(&self, run: u64) -> Result<Vec<Record>> {
        match self {
            Reader::Empty => Ok(Vec::new()),
            Reader::Log { records } => {
                Ok(records.iter().filter(|r| r.run == run).cloned().collect())
            }
            Reader::Store(s) => Ok(s.records(run)?),
            Reader::Live { holder, records } => {
                let live = Self::live_run(records);
                if Some(run) != live {
                    return Err(Self::busy(holder, live));
                }
                Ok(records.clone())
            }
        }
    }

    /// The live holder of the state directory, if any.
    pub fn holder(&self, state_dir: &Path) -> Option<Holder> {
        match self {
            Reader::Live { holder, .. } => Some(holder.clone()),
            _ => lock::holder(state_dir),
        }
    }
}
