//! Failure alerts through a durable outbox. An alert is journaled in the same batch as the failure
//! it announces (so a crash cannot lose it), then delivered to each `[notify]` channel — a
//! Slack-compatible webhook POST, a shell command — with bounded retries, each delivery journaled
//! (so nothing is sent twice after a crash). What could not be delivered stays in the outbox for
//! the next `wf` that writes the state. Secrets (the webhook URL) never appear in output or history.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use wf_state::{Entry, Record, RunId, Store};

use crate::console::{Console, Tone};
use crate::error::Result;
use crate::workflow::{Notify, Workflow};

/// How long one HTTP request or command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Tries per channel and invocation, and the pause before each retry.
const BACKOFF: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(800)];
/// The most one invocation spends delivering (a dead receiver never holds a run long).
const BUDGET: Duration = Duration::from_secs(8);

/// The channels configured in `[notify]`.
pub fn channels(notify: Option<&Notify>) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(n) = notify {
        if n.webhook.is_some() {
            v.push("webhook".to_string());
        }
        if n.command.is_some() {
            v.push("command".to_string());
        }
    }
    v
}

/// The alert entry for a failure (journal it in the same batch as the failing transition).
pub fn raise(
    wf: &Workflow,
    task: Option<&str>,
    attempt: u32,
    error: String,
    exit_code: Option<i32>,
    log_tail: &[String],
) -> Entry {
    let owner = task.and_then(|t| wf.task(t)).and_then(|t| t.owner.clone());
    Entry::Alert {
        task: task.map(str::to_string),
        attempt,
        owner,
        error,
        exit_code,
        log_tail: log_tail.iter().rev().take(10).rev().cloned().collect(),
        channels: channels(wf.notify.as_ref()),
    }
}

/// What an alert says, for both channels.
struct Message {
    workflow: String,
    run: RunId,
    alert: u64,
    task: String,
    owner: String,
    attempt: u32,
    exit_code: Option<i32>,
    error: String,
    log_tail: Vec<String>,
    resume: String,
}

impl Message {
    fn from(wf: &Workflow, rec: &Record) -> Option<Message> {
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
            return None;
        };
        Some(Message {
            workflow: wf.name.clone(),
            run: rec.run,
            alert: rec.seq,
            task: task.clone().unwrap_or_default(),
            owner: owner.clone().unwrap_or_default(),
            attempt: *attempt,
            exit_code: *exit_code,
            error: error.clone(),
            log_tail: log_tail.clone(),
            resume: format!("wf -C {} resume {}", wf.dir.display(), rec.run),
        })
    }

    fn text(&self) -> String {
        let what = if self.task.is_empty() {
            format!("run {} of {} failed", self.run, self.workflow)
        } else {
            format!(
                "task {} of run {} ({}) failed after attempt {}",
                self.task, self.run, self.workflow, self.attempt
            )
        };
        let owner = if self.owner.is_empty() {
            String::new()
        } else {
            format!(" — owner {}", self.owner)
        };
        let mut t = format!(
            ":red_circle: wf: {what}: {}{owner}\nResume: `{}`",
            self.error, self.resume
        );
        if !self.log_tail.is_empty() {
            t.push_str("\n```\n");
            t.push_str(&self.log_tail.join("\n"));
            t.push_str("\n```");
        }
        t
    }

    fn payload(&self) -> serde_json::Value {
        json!({
            "text": self.text(),
            "wf": {
                "alert": self.alert,
                "workflow": self.workflow,
                "run": self.run,
                "task": if self.task.is_empty() { None } else { Some(&self.task) },
                "owner": if self.owner.is_empty() { None } else { Some(&self.owner) },
                "attempt": self.attempt,
                "exit_code": self.exit_code,
                "error": self.error,
                "log_tail": self.log_tail,
                "resume": self.resume,
            }
        })
    }
}

/// Quote for `sh`: the value can never end the quotes or run anything.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A webhook target: its URL, and how to name it without revealing it.
fn webhook_url(spec: &str) -> std::result::Result<(String, String), String> {
    match spec.strip_prefix("env:") {
        Some(var) => match std::env::var(var) {
            Ok(u) if !u.is_empty() => Ok((u, format!("env:{var}"))),
            _ => Err(format!("the environment variable {var} is not set")),
        },
        None => Ok((spec.to_string(), "the configured URL".to_string())),
    }
}

/// POST the payload; errors never include the URL (it is a secret).
fn post(spec: &str, body: &serde_json::Value) -> std::result::Result<String, String> {
    let (url, name) = webhook_url(spec)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(CALL_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .map_err(|e| {
            let why = match e {
                ureq::Error::Timeout(_) => "timed out".to_string(),
                ureq::Error::HostNotFound => "host not found".to_string(),
                ureq::Error::ConnectionFailed => "connection failed".to_string(),
                ureq::Error::Io(io) => format!("I/O error ({})", io.kind()),
                ureq::Error::BadUri(_) => "not a valid URL".to_string(),
                _ => "the request failed".to_string(),
            };
            format!("{name}: {why}")
        })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(format!("{name}: HTTP {status}"))
    } else {
        Err(format!("{name}: HTTP {status}"))
    }
}

/// Run the notify command with the placeholders replaced by shell-quoted values.
fn run_command(template: &str, m: &Message) -> std::result::Result<String, String> {
    let cmd = template
        .replace("{run}", &shell_quote(&m.run.to_string()))
        .replace("{task}", &shell_quote(&m.task))
        .replace("{owner}", &shell_quote(&m.owner))
        .replace("{error}", &shell_quote(&m.error))
        .replace("{workflow}", &shell_quote(&m.workflow));
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(&cmd)
        .env("WF_ALERT", m.alert.to_string())
        .env("WF_ALERT_RUN", m.run.to_string())
        .env("WF_ALERT_TASK", &m.task)
        .env("WF_ALERT_OWNER", &m.owner)
        .env("WF_ALERT_ERROR", &m.error)
        .env("WF_ALERT_TEXT", m.text())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run the notify command: {e}"))?;
    let deadline = Instant::now() + CALL_TIMEOUT * 3;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok("exit 0".into()),
            Ok(Some(st)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let last = err.lines().last().unwrap_or("").to_string();
                return Err(format!(
                    "the notify command exited {}{}",
                    st.code().map_or("by a signal".into(), |c| c.to_string()),
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(": {last}")
                    }
                ));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                crate::engine::process::signal_group(child.id(), rustix::process::Signal::KILL);
                let _ = child.wait();
                return Err("the notify command timed out".into());
            }
        }
    }
}

use std::os::unix::process::CommandExt;

/// Send one message through one channel, with bounded retries.
fn send(
    notify: &Notify,
    channel: &str,
    m: &Message,
    until: Instant,
) -> Option<std::result::Result<String, String>> {
    let once = || match channel {
        "webhook" => notify.webhook.as_deref().map(|w| post(w, &m.payload())),
        "command" => notify.command.as_deref().map(|c| run_command(c, m)),
        _ => None,
    };
    let mut result = once()?;
    for pause in BACKOFF {
        if result.is_ok() || Instant::now() + pause >= until {
            break;
        }
        std::thread::sleep(pause);
        result = once()?;
    }
    Some(result)
}

/// Deliver what waits in the outbox (each delivery journaled), within a bounded time.
pub fn deliver(wf: &Workflow, store: &mut Store, out: &Console) -> Result<()> {
    let pending = store.outbox()?;
    if pending.is_empty() {
        return Ok(());
    }
    crate::engine::crash::point("before-deliver");
    let until = Instant::now() + BUDGET;
    let empty = Notify {
        webhook: None,
        command: None,
    };
    let notify = wf.notify.as_ref().unwrap_or(&empty);
    for (run, seq, channel) in pending {
        let Some(rec) = store.record(run, seq)? else {
            continue;
        };
        let Some(m) = Message::from(wf, &rec) else {
            continue;
        };
        let (outcome, detail) = if Instant::now() >= until {
            break;
        } else {
            match send(notify, &channel, &m, until) {
                Some(Ok(d)) => ("delivered", d),
                Some(Err(d)) => ("failed", d),
                None => (
                    "dropped",
                    format!("no `{channel}` is configured in [notify] any more"),
                ),
            }
        };
        crate::engine::crash::point("after-deliver");
        store.commit(
            run,
            vec![Entry::Delivery {
                alert_seq: seq,
                channel: channel.clone(),
                outcome: outcome.to_string(),
                detail: detail.clone(),
            }],
        )?;
        tracing::info!(event = "alert", run, alert = seq, channel = %channel, outcome, detail = %detail);
        match outcome {
            "delivered" => out.event(
                Tone::Dim,
                "✉",
                &format!("alert {seq} (run {run}) sent via {channel}"),
            ),
            _ => out.alert(&format!(
                "wf: alert {seq} (run {run}) not delivered via {channel}: {detail}{}",
                if outcome == "failed" {
                    "; it stays in the outbox for the next wf"
                } else {
                    ""
                }
            )),
        }
    }
    Ok(())
}

/// `wf notify --test`: a test message through each configured channel, journaled nowhere.
pub fn test(wf: &Workflow, out: &Console) -> bool {
    let Some(notify) = wf.notify.as_ref() else {
        out.alert(
            "wf: no [notify] section in the workflow; add a webhook or a command (docs/alerts.md)",
        );
        return false;
    };
    let m = Message {
        workflow: wf.name.clone(),
        run: 0,
        alert: 0,
        task: "test".into(),
        owner: String::new(),
        attempt: 0,
        exit_code: None,
        error: "this is a test alert from `wf notify --test`".into(),
        log_tail: Vec::new(),
        resume: "(nothing to resume)".into(),
    };
    let until = Instant::now() + BUDGET;
    let mut ok = true;
    for channel in channels(Some(notify)) {
        match send(notify, &channel, &m, until) {
            Some(Ok(d)) => out.event(Tone::Good, "✓", &format!("{channel}: sent ({d})")),
            Some(Err(d)) => {
                ok = false;
                out.alert(&format!("wf: {channel}: not sent: {d}"));
            }
            None => {}
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_cannot_break_out() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn env_webhooks_are_named_not_shown() {
        std::env::set_var("WF_TEST_HOOK_UNSET_X", "");
        let e = webhook_url("env:WF_TEST_HOOK_UNSET_X")
            .err()
            .unwrap_or_default();
        assert!(e.contains("WF_TEST_HOOK_UNSET_X"));
    }
}
