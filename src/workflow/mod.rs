//! Loading, validating and linting `wf.toml` / `wf.json` workflow files: the engine's only view of a workflow.

mod dag;
mod diag;
mod fields;
mod lint;
mod parse;
mod program;
mod server_url;
mod validate;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The closest of `candidates` to a misspelt name, and a user value made short and printable.
pub(crate) use diag::{closest as suggest, shorten};
pub use diag::{Diagnostic, Severity};
pub(crate) use fields::valid_task_name;
pub use lint::{lint, memory_limits};
pub use server_url::ServerUrl;
pub use validate::{
    argv_problem, parse_size, placeholders_in, show_size, valid_address, DEFAULT_LOG_LIMIT,
    DEFAULT_RETENTION, DEFAULT_TIMEOUT as NOTIFY_TIMEOUT, PLACEHOLDERS,
};

use diag::Pos;

/// Every key the parser accepts, as (section, key); sections are `top`, `workflow`, `notify`,
/// `task`. docs/workflow.md must document each (tests/docs.rs checks it).
pub fn accepted_keys() -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    v.extend(validate::TOP_KEYS.iter().map(|k| ("top", *k)));
    v.extend(validate::WORKFLOW_KEYS.iter().map(|k| ("workflow", *k)));
    v.extend(validate::NOTIFY_KEYS.iter().map(|k| ("notify", *k)));
    v.extend(validate::EXPORT_KEYS.iter().map(|k| ("export", *k)));
    v.extend(
        validate::GITHUB_KEYS
            .iter()
            .map(|k| ("export.github_actions", *k)),
    );
    v.extend(validate::TASK_KEYS.iter().map(|k| ("task", *k)));
    v
}

/// A validated workflow: settings plus tasks in dependency order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub name: String,
    pub schedule: Option<String>,
    pub retention: Duration,
    pub keep_last: u32,
    pub jobs: Option<usize>,
    pub notify: Option<Notify>,
    /// How translated exports prepare each task (`[export]`).
    pub export: ExportSettings,
    /// Run parameters and their defaults (`[params]`); tasks see `WF_PARAM_<NAME>`.
    pub params: BTreeMap<String, String>,
    /// In topological order: every task after all its needs; ties broken by order in the file.
    pub tasks: Vec<Task>,
    /// Directory containing the file, absolute.
    pub dir: PathBuf,
    /// The workflow file path, as given.
    pub file: PathBuf,
    /// Task name → index into `tasks`, so lookups by name are O(1).
    pub(crate) by_name: std::collections::HashMap<String, usize>,
}

/// Where to report failures: the workflow's channels, and per-owner routes that replace them for
/// the tasks of that owner (`[notify.owner.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notify {
    pub channels: Channels,
    pub owners: std::collections::BTreeMap<String, Channels>,
    /// How long one delivery call (HTTP request, SMTP session, command) may take.
    pub timeout: std::time::Duration,
}

/// `[export]`: what a translated task needs on a machine that is not this one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportSettings {
    /// Commands run before each translated task (a step in every GitHub job, a prologue of each
    /// Argo task); nothing for crontab and systemd, where wf runs on this machine.
    pub setup: Vec<String>,
    /// `[export.github_actions]`.
    pub github: GithubSettings,
}

/// `[export.github_actions]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GithubSettings {
    /// The runner label (`runs-on`); default `ubuntu-latest`.
    pub runs_on: Option<String>,
    /// Installs this Python with actions/setup-python before the setup commands.
    pub python_version: Option<String>,
    /// Further actions (`owner/repo@ref`) used as steps before the setup commands.
    pub uses: Vec<String>,
}

/// One set of alert channels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Channels {
    /// `env:NAME` or an http(s) URL (a secret: never printed).
    pub webhook: Option<String>,
    pub command: Option<AlertCommand>,
    pub email: Option<Email>,
}

impl Channels {
    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.command.is_none() && self.email.is_none()
    }
}

/// A notify command. No shell ever parses alert text: the argv form replaces placeholders inside
/// each argument and runs the program directly; the script form (a string, run by `sh -c`) may
/// not contain placeholders at all and reads the values from `WF_ALERT_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertCommand {
    Argv(Vec<String>),
    Script(String),
}

/// SMTP delivery (`[notify.email]`, or an owner's `email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: Vec<String>,
    pub from: String,
    /// `smtp://…`, `smtps://…` or `env:NAME` (a secret: never printed).
    pub server: String,
    pub starttls: StartTls,
}

/// Whether to upgrade a plain SMTP connection with STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// Refuse to send unless the server offers STARTTLS (or the URL is `smtps://`).
    Required,
    /// Upgrade when the server offers it (the default).
    Opportunistic,
    /// Never upgrade (a local relay on loopback).
    Never,
}

/// One shell task of the DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub name: String,
    pub run: String,
    /// Names, as written (deduplicated).
    pub needs: Vec<String>,
    /// Indices into [`Workflow::tasks`] of the needs.
    pub needs_idx: Vec<usize>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub checkpoint: Vec<String>,
    pub retention: Duration,
    pub owner: Option<String>,
    pub idempotent: bool,
    pub retries: u32,
    pub retry_delay: Duration,
    pub timeout: Option<Duration>,
    pub log: Vec<String>,
    pub manual: bool,
    /// A manual task left waiting longer than this fails (checked by every `wf` that writes).
    pub approval_timeout: Option<Duration>,
    pub env: BTreeMap<String, String>,
    /// Variables of wf's own environment the task depends on: their values are in its cache key.
    pub env_inputs: Vec<String>,
    /// At most this many bytes of an attempt's output are kept in its log: the first and the
    /// last half (`log_limit`).
    pub log_limit: u64,
    /// The attempt's memory limit in bytes (`memory_limit`), where it can be enforced.
    pub memory_limit: Option<u64>,
    /// 1-based line of the task's table header (0 if unknown).
    pub line: usize,
    /// 1-based column of the task's name in its header (0 if unknown).
    pub col: usize,
}

impl Workflow {
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.by_name.get(name).and_then(|&i| self.tasks.get(i))
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Indices of all tasks downstream of `i` (transitively), including i.
    pub fn downstream(&self, i: usize) -> Vec<usize> {
        dag::downstream(&self.needs_slices(), i)
    }

    /// true when `a` is a transitive dependency (ancestor) of `b`.
    pub fn is_ancestor(&self, a: usize, b: usize) -> bool {
        dag::ancestors(&self.needs_slices(), b)
            .get(a)
            .copied()
            .unwrap_or(false)
    }

    fn needs_slices(&self) -> Vec<&[usize]> {
        self.tasks.iter().map(|t| t.needs_idx.as_slice()).collect()
    }
}

/// Find the workflow file: `wf.toml`, else `wf.json`, in `dir`.
pub fn find_file(dir: &Path) -> Option<PathBuf> {
    ["wf.toml", "wf.json"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Read, parse and validate. Err holds every error found (at least one).
pub fn load(path: &Path) -> Result<Workflow, Vec<Diagnostic>> {
    let bytes = std::fs::read(path).map_err(|e| {
        let (why, help) = match e.kind() {
            ErrorKind::NotFound => (
                "No such file or directory".to_string(),
                Some("run `wf init` or pass -f FILE".to_string()),
            ),
            ErrorKind::PermissionDenied => ("Permission denied".to_string(), None),
            _ => (e.to_string(), None),
        };
        vec![Diagnostic::error(
            path,
            Pos::default(),
            format!("cannot read {}: {why}", path.display()),
        )
        .with_help(help)]
    })?;
    let src = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        vec![Diagnostic::error(
            path,
            Pos::default(),
            format!("{} is not valid UTF-8 (at byte {at})", path.display()),
        )]
    })?;
    let json = path
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("json"));
    parse_str(&src, path, json)
}

/// Same from a string (file name used for messages and to locate the workflow directory).
/// Never panics, whatever the input.
pub fn parse_str(src: &str, file: &Path, json: bool) -> Result<Workflow, Vec<Diagnostic>> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let root = parse::parse(src, file, json)?;
    validate::build(&root, file, workflow_dir(file))
}

/// The directory containing `file`, made absolute against the current directory.
fn workflow_dir(file: &Path) -> PathBuf {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if dir.is_absolute() {
        return dir;
    }
    match std::env::current_dir() {
        // Drops `.` components without resolving symlinks.
        Ok(cwd) => cwd
            .join(dir)
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect(),
        Err(_) => dir,
    }
}

#[cfg(test)]
mod tests;
