//! What an alert says: one model, rendered as the webhook's text and JSON, the e-mail's subject and
//! body, and the `WF_ALERT_*` values and placeholders of a notify command.

use serde_json::json;
use wf_state::{Entry, Reason, Record, RunId, Store, TaskState};

use crate::error::Result;
use crate::workflow::Workflow;

/// What happened, so each alert names the command that actually moves things on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A task failed after its retries.
    TaskFailed,
    /// A reviewer rejected a manual gate.
    Rejected,
    /// A manual gate waited longer than its `approval_timeout`.
    ApprovalTimeout,
    /// A run failed without a task to blame (given up with `wf run --abandon`).
    RunFailed,
    /// `wf notify --test`.
    Test,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TaskFailed => "task_failed",
            Kind::Rejected => "rejected",
            Kind::ApprovalTimeout => "approval_timeout",
            Kind::RunFailed => "run_failed",
            Kind::Test => "test",
        }
    }
}

/// One alert, ready to render.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: Kind,
    pub workflow: String,
    pub run: RunId,
    /// The journal sequence number of the alert record: with workflow and run, a stable id.
    pub seq: u64,
    pub task: Option<String>,
    pub owner: Option<String>,
    pub attempt: u32,
    pub exit_code: Option<i32>,
    pub error: String,
    pub log_tail: Vec<String>,
    /// The command that moves things on, as the user would type it.
    pub next: String,
}

/// Quote a word for a POSIX shell, for display only (a command the user may copy).
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Message {
    /// The message for the alert journaled as `rec`; what happened is read from the run's journal.
    pub fn from_record(wf: &Workflow, store: &Store, rec: &Record) -> Result<Option<Message>> {
        let Entry::Alert {
            task,
            attempt,
            owner,
            error,
            exit_code,
            log_tail,
            ..
        } = &rec.entry
        else {
            return Ok(None);
        };
        let kind = match task {
            None => Kind::RunFailed,
            Some(t) => kind_of(store, rec.run, rec.seq, t)?,
        };
        let dir = shell_word(&wf.dir.display().to_string());
        let next = match kind {
            Kind::TaskFailed => format!("wf -C {dir} resume {}", rec.run),
            Kind::Rejected | Kind::ApprovalTimeout | Kind::RunFailed => {
                format!("wf -C {dir} run")
            }
            Kind::Test => String::new(),
        };
        Ok(Some(Message {
            kind,
            workflow: wf.name.clone(),
            run: rec.run,
            seq: rec.seq,
            task: task.clone(),
            owner: owner.clone(),
            attempt: *attempt,
            exit_code: *exit_code,
            error: error.clone(),
            log_tail: log_tail.clone(),
            next,
        }))
    }

    /// The message `wf notify --test` sends.
    pub fn test(wf: &Workflow, owner: Option<&str>) -> Message {
        Message {
            kind: Kind::Test,
            workflow: wf.name.clone(),
            run: 0,
            seq: 0,
            task: Some("test".into()),
            owner: owner.map(str::to_string),
            attempt: 0,
            exit_code: None,
            error: "this is a test alert from `wf notify --test`".into(),
            log_tail: Vec::new(),
            next: String::new(),
        }
    }

    /// A stable id receivers can deduplicate on.
    pub fn id(&self) -> String {
        format!("wf:{}:{}:{}", self.workflow, self.run, self.seq)
    }

    /// One line: what happened.
    pub fn headline(&self) -> String {
        let task = self.task.as_deref().unwrap_or("");
        match self.kind {
            Kind::TaskFailed => format!(
                "task {task} of run {} ({}) failed after attempt {}: {}",
                self.run, self.workflow, self.attempt, self.error
            ),
            Kind::Rejected => format!(
                "task {task} of run {} ({}) was {}",
                self.run, self.workflow, self.error
            ),
            Kind::ApprovalTimeout => format!(
                "task {task} of run {} ({}) was not approved in time: {}",
                self.run, self.workflow, self.error
            ),
            Kind::RunFailed => format!(
                "run {} of {} failed: {}",
                self.run, self.workflow, self.error
            ),
            Kind::Test => format!("test alert of {}: {}", self.workflow, self.error),
        }
    }

    /// The e-mail subject: workflow, run and task, on one line.
    pub fn subject(&self) -> String {
        let task = self.task.as_deref().unwrap_or("");
        let what = match self.kind {
            Kind::TaskFailed => format!("{task} failed"),
            Kind::Rejected => format!("{task} rejected"),
            Kind::ApprovalTimeout => format!("{task} not approved in time"),
            Kind::RunFailed => "run failed".to_string(),
            Kind::Test => "test alert".to_string(),
        };
        one_line(&format!("[wf] {} run {}: {what}", self.workflow, self.run))
    }

    /// The plain text of the Slack-compatible webhook and of `WF_ALERT_TEXT`.
    pub fn text(&self) -> String {
        let owner = self
            .owner
            .as_deref()
            .map(|o| format!(" — owner {o}"))
            .unwrap_or_default();
        let mut t = format!(":red_circle: wf: {}{owner}", self.headline());
        if !self.next.is_empty() {
            t.push_str(&format!("\nNext: `{}`", self.next));
        }
        if !self.log_tail.is_empty() {
            t.push_str("\n```\n");
            t.push_str(&self.log_tail.join("\n"));
            t.push_str("\n```");
        }
        t
    }

    /// The e-mail body, plain text.
    pub fn body(&self) -> String {
        let mut b = format!("{}\n\n", self.headline());
        b.push_str(&format!(
            "Workflow:  {}\nRun:       {}\n",
            self.workflow, self.run
        ));
        if let Some(t) = &self.task {
            b.push_str(&format!("Task:      {t}\n"));
        }
        if let Some(o) = &self.owner {
            b.push_str(&format!("Owner:     {o}\n"));
        }
        if self.kind == Kind::TaskFailed {
            b.push_str(&format!("Attempt:   {}\n", self.attempt));
        }
        if let Some(c) = self.exit_code {
            b.push_str(&format!("Exit code: {c}\n"));
        }
        if !self.next.is_empty() {
            b.push_str(&format!("\nNext:\n    {}\n", self.next));
        }
        if !self.log_tail.is_empty() {
            b.push_str("\nLast log lines:\n");
            for l in &self.log_tail {
                b.push_str("    ");
                b.push_str(l);
                b.push('\n');
            }
        }
        b.push_str(&format!("\n-- \nwf alert {}\n", self.id()));
        b
    }

    pub fn payload(&self) -> serde_json::Value {
        json!({
            "text": self.text(),
            "wf": {
                "alert": self.id(),
                "kind": self.kind.as_str(),
                "workflow": self.workflow,
                "run": self.run,
                "task": self.task,
                "owner": self.owner,
                "attempt": self.attempt,
                "exit_code": self.exit_code,
                "error": self.error,
                "log_tail": self.log_tail,
                "next": self.next,
                "resume": (self.kind == Kind::TaskFailed).then_some(&self.next),
            }
        })
    }

    /// A placeholder's value (`{run}` → "3"); `None` for an unknown name.
    pub fn placeholder(&self, name: &str) -> Option<String> {
        Some(match name {
            "run" => self.run.to_string(),
            "task" => self.task.clone().unwrap_or_default(),
            "owner" => self.owner.clone().unwrap_or_default(),
            "error" => self.error.clone(),
            "workflow" => self.workflow.clone(),
            "attempt" => self.attempt.to_string(),
            "exit_code" => self.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            "kind" => self.kind.as_str().to_string(),
            "text" => self.text(),
            _ => return None,
        })
    }

    /// Every `{name}` in `arg` replaced by its value, in one pass: a value is never scanned again,
    /// so a value that itself contains `{task}` stays as it is.
    pub fn fill(&self, arg: &str) -> String {
        let mut out = String::with_capacity(arg.len());
        let mut rest = arg;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}').and_then(|close| {
                let name = &after[..close];
                self.placeholder(name).map(|v| (v, close))
            }) {
                Some((v, close)) => {
                    out.push_str(&v);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The values as environment variables, for a script that reads them as data.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WF_ALERT", self.id()),
            ("WF_ALERT_KIND", self.kind.as_str().into()),
            ("WF_ALERT_WORKFLOW", self.workflow.clone()),
            ("WF_ALERT_RUN", self.run.to_string()),
            ("WF_ALERT_TASK", self.task.clone().unwrap_or_default()),
            ("WF_ALERT_OWNER", self.owner.clone().unwrap_or_default()),
            ("WF_ALERT_ATTEMPT", self.attempt.to_string()),
            (
                "WF_ALERT_EXIT_CODE",
                self.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            ),
            ("WF_ALERT_ERROR", self.error.clone()),
            ("WF_ALERT_LOG_TAIL", self.log_tail.join("\n")),
            ("WF_ALERT_NEXT", self.next.clone()),
            ("WF_ALERT_TEXT", self.text()),
        ]
    }
}

/// Control characters (newlines included) folded to spaces: a header or a subject is one line.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Why `task` alerted at `seq`: its last transition to `failed` before the alert says.
fn kind_of(store: &Store, run: RunId, seq: u64, task: &str) -> Result<Kind> {
    let mut kind = Kind::TaskFailed;
    let mut by_wf = false;
    for r in store.records(run)? {
        if r.seq > seq {
            break;
        }
        match &r.entry {
            Entry::Rejection { task: t, user, .. } if t == task => by_wf = user == "wf",
            Entry::Transition {
                task: t,
                to: TaskState::Failed,
                reason,
                ..
            } if t == task => {
                kind = match reason {
                    Reason::Rejected(_) if by_wf => Kind::ApprovalTimeout,
                    Reason::Rejected(_) => Kind::Rejected,
                    _ => Kind::TaskFailed,
                };
            }
            _ => {}
        }
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Message {
        Message {
            kind: Kind::TaskFailed,
            workflow: "hw".into(),
            run: 3,
            seq: 9,
            task: Some("clean".into()),
            owner: Some("data_eng".into()),
            attempt: 2,
            exit_code: Some(1),
            error: "exit code 1 {task} $(x)".into(),
            log_tail: vec!["a".into()],
            next: "wf -C /x resume 3".into(),
        }
    }

    #[test]
    fn placeholders_are_filled_once() {
        let m = m();
        assert_eq!(m.fill("{run}/{task}/{nope}/{"), "3/clean/{nope}/{");
        // The value's own `{task}` is not expanded again.
        assert_eq!(m.fill("e={error}"), "e=exit code 1 {task} $(x)");
    }

    #[test]
    fn subject_is_one_line() {
        let mut m = m();
        m.workflow = "a\r\nBcc: x@y".into();
        assert!(!m.subject().contains('\n'));
        assert!(!m.subject().contains('\r'));
    }

    #[test]
    fn words_are_quoted_for_display() {
        assert_eq!(shell_word("/srv/hw"), "/srv/hw");
        assert_eq!(shell_word("/a b/it's"), "'/a b/it'\\''s'");
    }
}
