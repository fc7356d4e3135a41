//! Semantic layer: checks the parsed tree key by key and the task graph, then builds the [`Workflow`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::workflow::dag;
use crate::workflow::diag::{did_you_mean, shorten, Diagnostic, Pos, Severity};
use crate::workflow::fields::{
    check_cron, normalize_path, parse_duration, valid_env_name, valid_metric_name, valid_task_name,
    DurationError, DURATION_HELP,
};
use crate::workflow::parse::{Entry, Node, Val};
use crate::workflow::{ExportSettings, Notify, Task, Workflow};

pub(crate) const TOP_KEYS: [&str; 5] = ["workflow", "params", "notify", "export", "task"];
pub(crate) const WORKFLOW_KEYS: [&str; 5] = ["name", "schedule", "retention", "keep_last", "jobs"];
pub(crate) const NOTIFY_KEYS: [&str; 5] = ["webhook", "command", "email", "owner", "timeout"];

mod export;
mod notify;
pub(crate) use export::{EXPORT_KEYS, GITHUB_KEYS};
pub use notify::{argv_problem, placeholders_in, valid_address, DEFAULT_TIMEOUT, PLACEHOLDERS};
pub(crate) const TASK_KEYS: [&str; 18] = [
    "run",
    "env_inputs",
    "needs",
    "inputs",
    "outputs",
    "checkpoint",
    "retention",
    "owner",
    "idempotent",
    "retries",
    "retry_delay",
    "timeout",
    "log",
    "manual",
    "env",
    "approval_timeout",
    "log_limit",
    "memory_limit",
];

/// Names people reach for from other tools, mapped to ours.
const TASK_ALIASES: [(&str, &str); 10] = [
    ("depends_on", "needs"),
    ("depends", "needs"),
    ("deps", "needs"),
    ("dependencies", "needs"),
    ("after", "needs"),
    ("requires", "needs"),
    ("cmd", "run"),
    ("command", "run"),
    ("script", "run"),
    ("environment", "env"),
];

const MAX_RETRIES: u64 = 100;
/// An attempt's log keeps at most this many bytes unless its task says otherwise (`log_limit`):
/// the first half and the last half of what it printed.
pub const DEFAULT_LOG_LIMIT: u64 = 16 << 20;
const MIN_LOG_LIMIT: u64 = 1 << 10;
const MAX_LOG_LIMIT: u64 = 64 << 20;
/// Below this a shell cannot start.
const MIN_MEMORY_LIMIT: u64 = 8 << 20;
const SIZE_HELP: &str =
    "write bytes as an integer or a string with a unit K, M or G (powers of 1024), e.g. \"16M\"";

/// `"16M"` → 16 MiB: an integer, optional spaces, then an optional unit K, M, G or T (also
/// written KB/KiB…; powers of 1024) or B. None when it is not one or does not fit.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let unit = s[digits..].trim_start().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// A size for a message: `16 MiB`, `1 KiB`, `1000 bytes`.
pub fn show_size(n: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}
/// Default checkpoint retention: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// Beyond this many diagnostics the rest are summarised in one line.
const MAX_DIAGNOSTICS: usize = 100;

/// A task as decoded from the file, with positions kept for graph diagnostics.
struct RawTask {
    name: String,
    pos: Pos,
    run: Option<String>,
    needs: Vec<(String, Pos)>,
    needs_pos: Option<Pos>,
    inputs: Vec<String>,
    outputs: Vec<(String, Pos)>,
    checkpoint: Option<Vec<String>>,
    retention: Option<Duration>,
    owner: Option<String>,
    idempotent: bool,
    retries: u32,
    retry_delay: Duration,
    timeout: Option<Duration>,
    log: Vec<String>,
    manual: bool,
    approval_timeout: Option<Duration>,
    env: BTreeMap<String, String>,
    env_inputs: Vec<String>,
    log_limit: u64,
    memory_limit: Option<u64>,
}

#[derive(Default)]
struct Settings {
    params: BTreeMap<String, String>,
    name: Option<String>,
    schedule: Option<String>,
    retention: Option<Duration>,
    keep_last: Option<u32>,
    jobs: Option<usize>,
    notify: Option<Notify>,
    export: ExportSettings,
}

struct Dec<'f> {
    file: &'f Path,
    diags: Vec<Diagnostic>,
}

/// Validates a parsed document and builds the workflow; `Err` holds every error found.
pub(crate) fn build(root: &Node, file: &Path, dir: PathBuf) -> Result<Workflow, Vec<Diagnostic>> {
    let mut d = Dec {
        file,
        diags: Vec::new(),
    };
    d.duplicates(root, "the top level");
    let (settings, tasks) = d.document(root);
    let order = d.graph(&tasks);
    let mut diags = d.diags;
    if diags.iter().any(|x| x.severity == Severity::Error) {
        diags.sort_by_key(|x| if x.line == 0 { usize::MAX } else { x.line });
        if diags.len() > MAX_DIAGNOSTICS {
            let more = diags.len() - MAX_DIAGNOSTICS;
            diags.truncate(MAX_DIAGNOSTICS);
            diags.push(Diagnostic::error(
                file,
                Pos::default(),
                format!("{more} more errors not shown"),
            ));
        }
        return Err(diags);
    }
    let Some((order, needs_idx)) = order else {
        return Err(vec![Diagnostic::error(
            file,
            Pos::default(),
            "the task graph could not be ordered",
        )]);
    };
    Ok(assemble(settings, tasks, order, needs_idx, file, dir))
}

fn assemble(
    s: Settings,
    tasks: Vec<RawTask>,
    order: Vec<usize>,
    needs_idx: Vec<Vec<usize>>,
    file: &Path,
    dir: PathBuf,
) -> Workflow {
    let retention = s.retention.unwrap_or(DEFAULT_RETENTION);
    let mut new_index = vec![0; tasks.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut slots: Vec<Option<(RawTask, Vec<usize>)>> =
        tasks.into_iter().zip(needs_idx).map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    for &old in &order {
        let Some((t, needs)) = slots.get_mut(old).and_then(Option::take) else {
            continue;
        };
        let outputs: Vec<String> = t.outputs.into_iter().map(|(p, _)| p).collect();
        out.push(Task {
            needs: t.needs.into_iter().map(|(n, _)| n).collect(),
            needs_idx: needs.iter().map(|&j| new_index[j]).collect(),
            inputs: t.inputs,
            checkpoint: t.checkpoint.unwrap_or_else(|| outputs.clone()),
            outputs,
            retention: t.retention.unwrap_or(retention),
            owner: t.owner,
            idempotent: t.idempotent,
            retries: t.retries,
            retry_delay: t.retry_delay,
            timeout: t.timeout,
            log: t.log,
            manual: t.manual,
            approval_timeout: t.approval_timeout,
            env: t.env,
            env_inputs: t.env_inputs,
            log_limit: t.log_limit,
            memory_limit: t.memory_limit,
            line: t.pos.line,
            col: t.pos.col,
            run: t.run.unwrap_or_default(),
            name: t.name,
        });
    }
    let name = s.name.unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "workflow".to_string())
    });
    let by_name = out
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    Workflow {
        name,
        schedule: s.schedule,
        retention,
        keep_last: s.keep_last.unwrap_or(1),
        jobs: s.jobs,
        notify: s.notify,
        export: s.export,
        params: s.params,
        tasks: out,
        dir,
        file: file.to_path_buf(),
        by_name,
    }
}

/// Where a key sits, for messages: "[task.ingest]".
fn section(name: &str) -> String {
    format!("[{}]", shorten(name))
}

/// "in [task.a]" or "at the top level".
fn within(ctx: &str) -> String {
    if ctx.starts_with('[') {
        format!("in {ctx}")
    } else {
        format!("at {ctx}")
    }
}

fn misplaced_help(key: &str, here: &str) -> Option<String> {
    let home = if WORKFLOW_KEYS.contains(&key) {
        "[workflow]"
    } else if NOTIFY_KEYS.contains(&key) {
        "[notify]"
    } else if TASK_KEYS.contains(&key) {
        "each [task.NAME]"
    } else {
        return None;
    };
    (home != here).then(|| format!("`{key}` belongs in {home}"))
}

impl Dec<'_> {
    fn error(&mut self, pos: Pos, msg: String, help: Option<String>) {
        self.diags
            .push(Diagnostic::error(self.file, pos, msg).with_help(help));
    }

    fn type_error(&mut self, e: &Entry, ctx: &str, want: &str) {
        let msg = format!(
            "`{}` {} must be {want}, found {}",
            shorten(&e.key),
            within(ctx),
            e.value.val.kind()
        );
        self.error(e.value.pos, msg, None);
    }

    /// Reports an unknown key; `aliases` maps foreign names to ours.
    /// `home` names the section kind for "belongs in" hints, e.g. "each [task.NAME]".
    fn unknown_key(
        &mut self,
        e: &Entry,
        allowed: &[&str],
        aliases: &[(&str, &str)],
        ctx: &str,
        home: &str,
    ) {
        let help = aliases
            .iter()
            .find(|(a, _)| *a == e.key)
            .map(|(_, ours)| format!("did you mean `{ours}`?"))
            .or_else(|| did_you_mean(&e.key, allowed.iter().copied()))
            .or_else(|| misplaced_help(&e.key, home));
        let msg = format!("unknown key `{}` {}", shorten(&e.key), within(ctx));
        self.error(e.key_pos, msg, help);
    }

    fn table<'n>(&mut self, e: &'n Entry, ctx: &str) -> Option<&'n [Entry]> {
        match &e.value.val {
            Val::Table(t) => Some(t),
            _ => {
                self.type_error(e, ctx, "a table");
                None
            }
        }
    }

    fn string(&mut self, e: &Entry, ctx: &str) -> Option<String> {
        let Val::Str(s) = &e.value.val else {
            self.type_error(e, ctx, "a string");
            return None;
        };
        if s.contains('\0') {
            let msg = format!("`{}` in {ctx} contains a NUL character", e.key);
            self.error(e.value.pos, msg, None);
            return None;
        }
        Some(s.clone())
    }

    fn nonempty_string(&mut self, e: &Entry, ctx: &str) -> Option<String> {
        let s = self.string(e, ctx)?;
        if s.trim().is_empty() {
            let msg = format!("`{}` in {ctx} is empty", e.key);
            self.error(e.value.pos, msg, None);
            return None;
        }
        Some(s)
    }

    /// A name people read in status, history and alerts (the workflow's name, an owner): not
    /// empty, and free of control characters and of the invisible characters that reorder or hide
    /// text, which would reach terminals and mail clients.
    fn identifier(&mut self, e: &Entry, ctx: &str) -> Option<String> {
        let s = self.nonempty_string(e, ctx)?;
        if let Some(c) = s.chars().find(|c| crate::safe::is_unsafe(*c)) {
            let msg = format!(
                "`{}` in {ctx} contains a control character ({})",
                e.key,
                crate::safe::safe(&c.to_string())
            );
            let help = "use printable text only (no escape sequences, newlines or tabs)";
            self.error(e.value.pos, msg, Some(help.to_string()));
            return None;
        }
        Some(s)
    }

    fn uint(&mut self, e: &Entry, ctx: &str, min: u64, max: u64) -> Option<u64> {
        let want = if min == 0 {
            "a non-negative integer"
        } else {
            "a positive integer"
        };
        let n = match &e.value.val {
            Val::Int(Some(n)) => *n,
            Val::Int(None) => {
                let msg = format!("`{}` in {ctx} is too large; the maximum is {max}", e.key);
                self.error(e.value.pos, msg, None);
                return None;
            }
            _ => {
                self.type_error(e, ctx, want);
                return None;
            }
        };
        if n < i128::from(min) {
            let msg = if n < 0 {
                format!("`{}` in {ctx} must be {want}, found {n}", e.key)
            } else {
                format!("`{}` in {ctx} must be at least {min}, found {n}", e.key)
            };
            self.error(e.value.pos, msg, None);
            return None;
        }
        if n > i128::from(max) {
            let msg = format!("`{}` in {ctx} must be at most {max}, found {n}", e.key);
            self.error(e.value.pos, msg, None);
            return None;
        }
        u64::try_from(n).ok()
    }

    fn boolean(&mut self, e: &Entry, ctx: &str) -> Option<bool> {
        match &e.value.val {
            Val::Bool(b) => Some(*b),
            _ => {
                self.type_error(e, ctx, "`true` or `false`");
                None
            }
        }
    }

    /// A size: bytes as an integer, or a string with a unit (`"512K"`, `"16M"`, `"2G"`; powers
    /// of 1024, `KiB`/`KB` spellings too), between `min` and `max` bytes.
    fn size(&mut self, e: &Entry, ctx: &str, min: u64, max: u64) -> Option<u64> {
        let n = match &e.value.val {
            Val::Int(Some(n)) if *n >= 0 => u64::try_from(*n).ok(),
            Val::Int(_) => None,
            Val::Str(s) => parse_size(s),
            _ => {
                let msg = format!(
                    "`{}` in {ctx} must be a size like \"16M\", found {}",
                    e.key,
                    e.value.val.kind()
                );
                self.error(e.value.pos, msg, Some(SIZE_HELP.to_string()));
                return None;
            }
        };
        let Some(n) = n else {
            let shown = match &e.value.val {
                Val::Str(s) => format!("`{}`", shorten(s)),
                Val::Int(Some(_)) => "a negative number".to_string(),
                _ => "a number too large".to_string(),
            };
            let msg = format!("`{}` in {ctx} is not a valid size: {shown}", e.key);
            self.error(e.value.pos, msg, Some(SIZE_HELP.to_string()));
            return None;
        };
        if n < min || n > max {
            let msg = if max == u64::MAX {
                format!("`{}` in {ctx} must be at least {}", e.key, show_size(min))
            } else {
                format!(
                    "`{}` in {ctx} must be between {} and {}",
                    e.key,
                    show_size(min),
                    show_size(max)
                )
            };
            self.error(e.value.pos, msg, None);
            return None;
        }
        Some(n)
    }

    fn duration(&mut self, e: &Entry, ctx: &str) -> Option<Duration> {
        let Val::Str(s) = &e.value.val else {
            let help = matches!(e.value.val, Val::Int(_) | Val::Float)
                .then(|| format!("quote it with a unit, e.g. `{} = \"30s\"`", e.key));
            let msg = format!(
                "`{}` in {ctx} must be a duration string, found {}",
                e.key,
                e.value.val.kind()
            );
            self.error(e.value.pos, msg, help);
            return None;
        };
        match parse_duration(s) {
            Ok(d) => Some(d),
            Err(why) => {
                let msg = match why {
                    DurationError::TooLong => format!(
                        "`{}` in {ctx} is longer than 100 years: `{}`",
                        e.key,
                        shorten(s)
                    ),
                    DurationError::Invalid(detail) => format!(
                        "`{}` in {ctx} is not a valid duration: `{}` ({detail})",
                        e.key,
                        shorten(s)
                    ),
                };
                self.error(e.value.pos, msg, Some(DURATION_HELP.to_string()));
                None
            }
        }
    }

    /// An array of strings, with each item's position; duplicates are dropped.
    fn string_list(&mut self, e: &Entry, ctx: &str) -> Option<Vec<(String, Pos)>> {
        let Val::Array(items) = &e.value.val else {
            let help = matches!(e.value.val, Val::Str(_))
                .then(|| format!("write a list, e.g. `{} = [\"...\"]`", e.key));
            let msg = format!(
                "`{}` in {ctx} must be an array of strings, found {}",
                e.key,
                e.value.val.kind()
            );
            self.error(e.value.pos, msg, help);
            return None;
        };
        let mut out: Vec<(String, Pos)> = Vec::with_capacity(items.len());
        let mut seen: HashSet<&str> = HashSet::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match &item.val {
                Val::Str(s) => {
                    if seen.insert(s) {
                        out.push((s.clone(), item.pos));
                    }
                }
                other => {
                    let msg = format!(
                        "item {} of `{}` in {ctx} must be a string, found {}",
                        i + 1,
                        e.key,
                        other.kind()
                    );
                    self.error(item.pos, msg, None);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A list of workflow-relative paths, normalised; bad ones are reported and dropped.
    fn path_list(&mut self, e: &Entry, ctx: &str, what: &str, task: &str) -> Vec<(String, Pos)> {
        let mut out: Vec<(String, Pos)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (raw, pos) in self.string_list(e, ctx).unwrap_or_default() {
            match normalize_path(&raw) {
                Ok(p) => {
                    if seen.insert(p.clone()) {
                        out.push((p, pos));
                    }
                }
                Err(why) => {
                    let msg = format!("{what} `{}` of task `{task}` {why}", shorten(&raw));
                    self.error(pos, msg, None);
                }
            }
        }
        out
    }

    fn document(&mut self, root: &Node) -> (Settings, Vec<RawTask>) {
        let mut settings = Settings::default();
        let mut tasks = Vec::new();
        let Val::Table(top) = &root.val else {
            let msg = format!("the document must be a table, found {}", root.val.kind());
            self.error(root.pos, msg, None);
            return (settings, tasks);
        };
        let mut task_key_pos = None;
        let mut task_entries = 0;
        for e in top {
            match e.key.as_str() {
                "workflow" => {
                    if let Some(t) = self.table(e, "the top level") {
                        self.workflow(t, &mut settings);
                    }
                }
                "notify" => {
                    if let Some(t) = self.table(e, "the top level") {
                        settings.notify = Some(self.notify(t));
                    }
                }
                "export" => {
                    if let Some(t) = self.table(e, "the top level") {
                        settings.export = self.export(t);
                    }
                }
                "params" => {
                    if let Some(t) = self.table(e, "the top level") {
                        self.params(t, &mut settings.params);
                    }
                }
                "task" => {
                    task_key_pos = Some(e.key_pos);
                    match &e.value.val {
                        Val::Table(t) => {
                            task_entries = t.len();
                            self.tasks(t, &mut tasks);
                        }
                        other => {
                            let msg = format!(
                                "`task` must be a table of tasks like [task.NAME], found {}",
                                other.kind()
                            );
                            let help = matches!(other, Val::Array(_))
                                .then(|| "write each task as [task.NAME], not [[task]]".into());
                            self.error(e.value.pos, msg, help);
                            task_entries = 1;
                        }
                    }
                }
                _ => self.unknown_key(
                    e,
                    &TOP_KEYS,
                    &[("tasks", "task")],
                    "the top level",
                    "the top level",
                ),
            }
        }
        // When `task` exists but is broken, that error already explains the missing tasks.
        if task_entries == 0 {
            self.error(
                task_key_pos.unwrap_or_default(),
                "no tasks are defined".to_string(),
                Some("add a [task.NAME] table with a `run` command".to_string()),
            );
        }
        (settings, tasks)
    }

    fn workflow(&mut self, t: &[Entry], s: &mut Settings) {
        let ctx = "[workflow]";
        for e in t {
            match e.key.as_str() {
                "name" => {
                    if let Some(n) = self.identifier(e, ctx) {
                        s.name = Some(n);
                    }
                }
                "schedule" => {
                    if let Some(c) = self.string(e, ctx) {
                        match check_cron(&c) {
                            Ok(()) => s.schedule = Some(c.trim().to_string()),
                            Err(why) => {
                                let msg = format!(
                                    "`schedule` in [workflow] is not a valid 5-field cron expression: `{}` {why}",
                                    shorten(&c)
                                );
                                let help =
                                    "e.g. `0 6 * * *` (minute hour day-of-month month day-of-week)";
                                self.error(e.value.pos, msg, Some(help.to_string()));
                            }
                        }
                    }
                }
                "retention" => s.retention = self.duration(e, ctx),
                "keep_last" => {
                    s.keep_last = self
                        .uint(e, ctx, 0, u64::from(u32::MAX))
                        .and_then(|n| u32::try_from(n).ok());
                }
                "jobs" => {
                    s.jobs = self
                        .uint(e, ctx, 1, u64::from(u32::MAX))
                        .and_then(|n| usize::try_from(n).ok());
                }
                _ => self.unknown_key(e, &WORKFLOW_KEYS, &[], ctx, ctx),
            }
        }
    }

    /// A key given twice in one table (TOML refuses it while parsing; JSON does not): refused
    /// everywhere but between tasks, which `tasks` reports with its own message.
    fn duplicates(&mut self, n: &Node, ctx: &str) {
        let Val::Table(entries) = &n.val else {
            return;
        };
        let mut seen: HashSet<&str> = HashSet::new();
        for e in entries {
            if !seen.insert(e.key.as_str()) && ctx != "[task]" {
                let msg = format!("duplicate key `{}` in {ctx}", shorten(&e.key));
                self.error(e.key_pos, msg, Some("keep one of them".into()));
            }
            let inner = if ctx == "the top level" {
                format!("[{}]", shorten(&e.key))
            } else if ctx == "[task]" {
                format!("[task.{}]", shorten(&e.key))
            } else {
                format!("`{}` in {ctx}", shorten(&e.key))
            };
            self.duplicates(&e.value, &inner);
        }
    }

    fn tasks(&mut self, t: &[Entry], out: &mut Vec<RawTask>) {
        let mut seen: HashSet<&str> = HashSet::new();
        for e in t {
            if !seen.insert(e.key.as_str()) {
                let msg = format!("task `{}` is defined twice", shorten(&e.key));
                self.error(e.key_pos, msg, Some("rename or remove one of them".into()));
                continue;
            }
            if !valid_task_name(&e.key) {
                let msg = format!("task name `{}` is invalid", shorten(&e.key));
                let help =
                    "use 1 to 64 letters, digits, `_` or `-`, starting with a letter or digit";
                self.error(e.key_pos, msg, Some(help.to_string()));
            }
            let Val::Table(body) = &e.value.val else {
                let msg = format!(
                    "task `{}` must be a table like [task.{}], found {}",
                    shorten(&e.key),
                    shorten(&e.key),
                    e.value.val.kind()
                );
                let help = TASK_KEYS
                    .contains(&e.key.as_str())
                    .then(|| format!("`{}` belongs in a [task.NAME] table", e.key));
                self.error(e.value.pos, msg, help);
                continue;
            };
            out.push(self.task(&e.key, e.key_pos, body));
        }
    }

    fn task(&mut self, name: &str, pos: Pos, body: &[Entry]) -> RawTask {
        let ctx = section(&format!("task.{name}"));
        let mut t = RawTask {
            name: name.to_string(),
            pos,
            run: None,
            needs: Vec::new(),
            needs_pos: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            checkpoint: None,
            retention: None,
            owner: None,
            idempotent: true,
            retries: 0,
            retry_delay: Duration::ZERO,
            timeout: None,
            log: Vec::new(),
            manual: false,
            approval_timeout: None,
            env: BTreeMap::new(),
            env_inputs: Vec::new(),
            log_limit: DEFAULT_LOG_LIMIT,
            memory_limit: None,
        };
        let mut has_run = false;
        let mut checkpoint: Option<Vec<(String, Pos)>> = None;
        for e in body {
            match e.key.as_str() {
                "run" => {
                    has_run = true;
                    t.run = self.nonempty_string(e, &ctx);
                }
                "needs" => {
                    t.needs_pos = Some(e.key_pos);
                    t.needs = self.string_list(e, &ctx).unwrap_or_default();
                }
                "inputs" => {
                    t.inputs = self
                        .path_list(e, &ctx, "input", name)
                        .into_iter()
                        .map(|(p, _)| p)
                        .collect();
                }
                "outputs" => t.outputs = self.path_list(e, &ctx, "output", name),
                "checkpoint" => checkpoint = Some(self.path_list(e, &ctx, "checkpoint path", name)),
                "retention" => t.retention = self.duration(e, &ctx),
                "owner" => t.owner = self.identifier(e, &ctx),
                "idempotent" => t.idempotent = self.boolean(e, &ctx).unwrap_or(true),
                "retries" => {
                    t.retries = self
                        .uint(e, &ctx, 0, MAX_RETRIES)
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0);
                }
                "retry_delay" => t.retry_delay = self.duration(e, &ctx).unwrap_or_default(),
                "approval_timeout" => {
                    t.approval_timeout = self.duration(e, &ctx);
                    if t.approval_timeout == Some(Duration::ZERO) {
                        let msg = format!("`approval_timeout` in {ctx} must be greater than zero");
                        self.error(
                            e.value.pos,
                            msg,
                            Some("remove it to wait for approval forever".into()),
                        );
                    }
                }
                "timeout" => {
                    t.timeout = self.duration(e, &ctx);
                    if t.timeout == Some(Duration::ZERO) {
                        let msg = format!("`timeout` in {ctx} must be greater than zero");
                        self.error(e.value.pos, msg, Some("remove it for no timeout".into()));
                    }
                }
                "log" => {
                    for (m, p) in self.string_list(e, &ctx).unwrap_or_default() {
                        if valid_metric_name(&m) {
                            t.log.push(m);
                        } else {
                            let msg = format!("metric name `{}` in {ctx} is invalid", shorten(&m));
                            let help =
                                "use letters, digits, `_` and `.`, starting with a letter or `_`";
                            self.error(p, msg, Some(help.to_string()));
                        }
                    }
                }
                "manual" => t.manual = self.boolean(e, &ctx).unwrap_or(false),
                "log_limit" => {
                    if let Some(n) = self.size(e, &ctx, MIN_LOG_LIMIT, MAX_LOG_LIMIT) {
                        t.log_limit = n;
                    }
                }
                "memory_limit" => t.memory_limit = self.size(e, &ctx, MIN_MEMORY_LIMIT, u64::MAX),
                "env" => {
                    if let Some(vars) = self.table(e, &ctx) {
                        self.env(vars, &ctx, &mut t.env);
                    }
                }
                "env_inputs" => {
                    for (v, p) in self.string_list(e, &ctx).unwrap_or_default() {
                        if !valid_env_name(&v) {
                            let msg = format!(
                                "environment variable name `{}` in `env_inputs` of {ctx} is invalid",
                                shorten(&v)
                            );
                            let help = "use letters, digits and `_`, not starting with a digit";
                            self.error(p, msg, Some(help.to_string()));
                        } else if v.starts_with("WF_") {
                            let msg = format!(
                                "`env_inputs` of {ctx} names `{}`, which wf sets itself",
                                shorten(&v)
                            );
                            let help =
                                "a run parameter is already part of every cache key; remove it";
                            self.error(p, msg, Some(help.to_string()));
                        } else if !t.env_inputs.contains(&v) {
                            t.env_inputs.push(v);
                        }
                    }
                    t.env_inputs.sort();
                }
                _ => self.unknown_key(e, &TASK_KEYS, &TASK_ALIASES, &ctx, "each [task.NAME]"),
            }
        }
        if !has_run {
            let msg = format!("task `{}` has no `run` command", shorten(name));
            let help = format!("add `run = \"...\"` to {ctx}");
            self.error(pos, msg, Some(help));
        }
        if t.approval_timeout.is_some() && !t.manual {
            let msg = format!("`approval_timeout` in {ctx} applies only to a manual task");
            self.error(pos, msg, Some("add `manual = true`, or remove it".into()));
        }
        if let Some(cp) = checkpoint {
            for (p, pos) in &cp {
                if !t.outputs.iter().any(|(o, _)| o == p) {
                    let msg =
                        format!("checkpoint path `{p}` of task `{name}` is not one of its outputs");
                    let help = "add it to `outputs` or remove it from `checkpoint`";
                    self.error(*pos, msg, Some(help.to_string()));
                }
            }
            t.checkpoint = Some(cp.into_iter().map(|(p, _)| p).collect());
        }
        t
    }

    /// `[params]`: run parameters with their defaults (strings). A name must make a valid
    /// `WF_PARAM_<NAME>` once upper-cased, and no two names may upper-case alike.
    fn params(&mut self, vars: &[Entry], out: &mut BTreeMap<String, String>) {
        let ctx = "[params]";
        let mut upper: HashMap<String, String> = HashMap::new();
        for v in vars {
            let name = shorten(&v.key);
            if !valid_env_name(&v.key) {
                let msg = format!("parameter name `{name}` in {ctx} is invalid");
                let help = "use letters, digits and `_`, not starting with a digit (tasks see it as WF_PARAM_<NAME>)";
                self.error(v.key_pos, msg, Some(help.to_string()));
                continue;
            }
            if let Some(other) = upper.insert(v.key.to_ascii_uppercase(), v.key.clone()) {
                let msg = format!(
                    "parameters `{}` and `{name}` in {ctx} both become WF_PARAM_{}",
                    shorten(&other),
                    v.key.to_ascii_uppercase()
                );
                self.error(v.key_pos, msg, Some("rename one of them".into()));
                continue;
            }
            match &v.value.val {
                Val::Str(s) if s.contains('\0') => {
                    let msg = format!("parameter `{name}` in {ctx} contains a NUL character");
                    self.error(v.value.pos, msg, None);
                }
                Val::Str(s) => {
                    out.insert(v.key.clone(), s.clone());
                }
                other => {
                    let msg = format!(
                        "parameter `{name}` in {ctx} must be a string (its default), found {}",
                        other.kind()
                    );
                    let help = matches!(other, Val::Int(_) | Val::Float | Val::Bool(_))
                        .then(|| "quote the value".to_string());
                    self.error(v.value.pos, msg, help);
                }
            }
        }
    }

    fn env(&mut self, vars: &[Entry], ctx: &str, out: &mut BTreeMap<String, String>) {
        for v in vars {
            let name = shorten(&v.key);
            if !valid_env_name(&v.key) {
                let msg = format!("environment variable name `{name}` in {ctx} is invalid");
                let help = "use letters, digits and `_`, not starting with a digit";
                self.error(v.key_pos, msg, Some(help.to_string()));
                continue;
            }
            if v.key.starts_with("WF_") {
                let msg = format!(
                    "environment variable `{name}` in {ctx} uses the reserved prefix `WF_`"
                );
                self.error(
                    v.key_pos,
                    msg,
                    Some("wf sets `WF_*` variables itself; pick another name".into()),
                );
                continue;
            }
            match &v.value.val {
                Val::Str(s) if s.contains('\0') => {
                    let msg =
                        format!("environment variable `{name}` in {ctx} contains a NUL character");
                    self.error(v.value.pos, msg, None);
                }
                Val::Str(s) => {
                    out.insert(v.key.clone(), s.clone());
                }
                other => {
                    let msg = format!(
                        "environment variable `{name}` in {ctx} must be a string, found {}",
                        other.kind()
                    );
                    let help = matches!(other, Val::Int(_) | Val::Float | Val::Bool(_))
                        .then(|| "quote the value".to_string());
                    self.error(v.value.pos, msg, help);
                }
            }
        }
    }

    /// Checks needs, shared outputs and cycles; returns the topological order and resolved needs.
    fn graph(&mut self, tasks: &[RawTask]) -> Option<(Vec<usize>, Vec<Vec<usize>>)> {
        let index: HashMap<&str, usize> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let mut needs_idx = Vec::with_capacity(tasks.len());
        for t in tasks {
            let mut resolved = Vec::with_capacity(t.needs.len());
            for (n, pos) in &t.needs {
                if *n == t.name {
                    let msg = format!("task `{}` needs itself", shorten(n));
                    self.error(
                        *pos,
                        msg,
                        Some(format!("remove `{}` from its needs", shorten(n))),
                    );
                } else if let Some(&j) = index.get(n.as_str()) {
                    resolved.push(j);
                } else {
                    let msg = format!(
                        "task `{}` needs unknown task `{}`",
                        shorten(&t.name),
                        shorten(n)
                    );
                    // Suggestions cost a pass over all tasks; stop once the report is full anyway.
                    let help = if self.diags.len() < MAX_DIAGNOSTICS {
                        did_you_mean(n, tasks.iter().map(|t| t.name.as_str()))
                    } else {
                        None
                    }
                    .or_else(|| Some(format!("define [task.{}] or fix the name", shorten(n))));
                    self.error(*pos, msg, help);
                }
            }
            needs_idx.push(resolved);
        }

        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (i, t) in tasks.iter().enumerate() {
            for (p, pos) in &t.outputs {
                match producer.get(p.as_str()) {
                    Some(&j) => {
                        let msg = format!(
                            "tasks `{}` and `{}` both write `{p}`; give each output one producer",
                            tasks[j].name, t.name
                        );
                        self.error(*pos, msg, None);
                    }
                    None => {
                        producer.insert(p, i);
                    }
                }
            }
        }

        match dag::topo_order(&needs_idx) {
            Ok(order) => Some((order, needs_idx)),
            Err(cycles) => {
                for cycle in cycles {
                    let Some(&first) = cycle.first() else {
                        continue;
                    };
                    let mut names: Vec<&str> =
                        cycle.iter().map(|&i| tasks[i].name.as_str()).collect();
                    names.push(tasks[first].name.as_str());
                    let msg = format!("dependency cycle: {}", names.join(" → "));
                    let pos = tasks[first].needs_pos.unwrap_or(tasks[first].pos);
                    self.error(pos, msg, Some("remove one of these `needs`".into()));
                }
                None
            }
        }
    }
}
