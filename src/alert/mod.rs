//! Failure alerts through a durable outbox. An alert is journaled in the same batch as the failure
//! it announces (so a crash cannot lose it), then delivered to each of its channels — a
//! Slack-compatible webhook POST, an e-mail over SMTP, a notify command — with bounded retries, each
//! delivery journaled (so nothing is sent twice after a crash). What could not be delivered stays in
//! the outbox for the next `wf` that writes the state. Alerts of a task whose owner has a route
//! (`[notify.owner.NAME]`) go to that route instead of the workflow's channels. Secrets (webhook
//! URLs, SMTP passwords) never appear in output, history or errors. No shell ever parses alert text.

pub mod command;
pub mod email;
pub mod message;
mod webhook;

use std::time::{Duration, Instant};

use wf_state::{Entry, Store};

use crate::error::Result;
use crate::render::console::{Console, Tone};
use crate::workflow::{Channels, Notify, Workflow};
use message::Message;

/// Tries per channel and invocation, and the pause before each retry.
const BACKOFF: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(800)];
/// The most one invocation spends starting deliveries (a dead receiver never holds a run long).
pub const BUDGET: Duration = Duration::from_secs(8);

/// A kind of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Webhook,
    Email,
    Command,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Webhook, Kind::Email, Kind::Command];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Email => "email",
            Kind::Command => "command",
        }
    }

    fn configured(self, c: &Channels) -> bool {
        match self {
            Kind::Webhook => c.webhook.is_some(),
            Kind::Email => c.email.is_some(),
            Kind::Command => c.command.is_some(),
        }
    }
}

/// A channel as journaled in an alert: `webhook`, `email`, `command` (the workflow's), or
/// `owner.NAME.KIND` (an owner's route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub owner: Option<String>,
    pub kind: Kind,
}

impl Channel {
    pub fn name(&self) -> String {
        match &self.owner {
            Some(o) => format!("owner.{o}.{}", self.kind.as_str()),
            None => self.kind.as_str().to_string(),
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        let (owner, kind) = match s.strip_prefix("owner.") {
            Some(rest) => {
                let (o, k) = rest.rsplit_once('.')?;
                (Some(o.to_string()), k)
            }
            None => (None, s),
        };
        let kind = Kind::ALL.into_iter().find(|k| k.as_str() == kind)?;
        Some(Channel { owner, kind })
    }

    /// The channel set this channel belongs to, if it is still configured.
    fn set<'n>(&self, notify: &'n Notify) -> Option<&'n Channels> {
        let set = match &self.owner {
            Some(o) => notify.owners.get(o)?,
            None => &notify.channels,
        };
        self.kind.configured(set).then_some(set)
    }
}

/// Where alerts of a task with this owner go.
pub fn route(notify: Option<&Notify>, owner: Option<&str>) -> Vec<Channel> {
    let Some(n) = notify else {
        return Vec::new();
    };
    let (set, owner) = match owner.and_then(|o| n.owners.get(o).map(|s| (s, o))) {
        Some((s, o)) => (s, Some(o.to_string())),
        None => (&n.channels, None),
    };
    Kind::ALL
        .into_iter()
        .filter(|k| k.configured(set))
        .map(|kind| Channel {
            owner: owner.clone(),
            kind,
        })
        .collect()
}

/// The workflow's own channels, by name (what `wf notify` lists first).
pub fn channels(notify: Option<&Notify>) -> Vec<String> {
    route(notify, None).iter().map(Channel::name).collect()
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
    let channels = route(wf.notify.as_ref(), owner.as_deref())
        .iter()
        .map(Channel::name)
        .collect();
    Entry::Alert {
        task: task.map(str::to_string),
        attempt,
        owner,
        error,
        exit_code,
        log_tail: log_tail.iter().rev().take(10).rev().cloned().collect(),
        channels,
    }
}

/// Send one message through one channel once.
fn send_once(
    wf: &Workflow,
    set: &Channels,
    kind: Kind,
    m: &Message,
    timeout: Duration,
) -> Option<std::result::Result<String, String>> {
    match kind {
        Kind::Webhook => set
            .webhook
            .as_deref()
            .map(|w| webhook::post(w, &m.payload(), timeout)),
        Kind::Email => set.email.as_ref().map(|e| email::send(e, m, timeout)),
        Kind::Command => set
            .command
            .as_ref()
            .map(|c| command::run(c, m, &wf.dir, timeout)),
    }
}

/// Whether a failed call is worth another try now: a receiver that timed out once is not tried
/// again in the same invocation (the alert stays in the outbox), so one channel never costs more
/// than one timeout (plus the command's grace).
fn worth_retrying(detail: &str) -> bool {
    !detail.contains("timed out")
}

/// Send with bounded retries: a retry only starts when a whole call still fits in the budget.
fn send(
    wf: &Workflow,
    set: &Channels,
    kind: Kind,
    m: &Message,
    until: Instant,
) -> Option<std::result::Result<String, String>> {
    let timeout = wf
        .notify
        .as_ref()
        .map_or(crate::workflow::NOTIFY_TIMEOUT, |n| n.timeout);
    let mut result = send_once(wf, set, kind, m, timeout)?;
    for pause in BACKOFF {
        let retry = matches!(&result, Err(d) if worth_retrying(d));
        if !retry || Instant::now() + pause + timeout + command::GRACE > until {
            break;
        }
        std::thread::sleep(pause);
        result = send_once(wf, set, kind, m, timeout)?;
    }
    Some(result)
}

/// What became of one delivery (journaled as its `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Not delivered; it stays in the outbox.
    Failed,
    /// The channel is not configured any more; it leaves the outbox.
    Dropped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Failed => "failed",
            Outcome::Dropped => "dropped",
        }
    }
}

/// How an alert is named to a person: by run and task, not by a journal number.
fn label(m: &Message) -> String {
    match &m.task {
        Some(t) => format!("alert for {t} (run {})", m.run),
        None => format!("alert for run {}", m.run),
    }
}

/// Deliver what waits in the outbox (each delivery journaled), within a bounded time.
pub fn deliver(wf: &Workflow, store: &mut Store, out: &Console) -> Result<()> {
    let pending = store.outbox()?;
    if pending.is_empty() {
        return Ok(());
    }
    if command::inside_alert() {
        out.alert(&format!(
            "wf: {} alert(s) not delivered from inside a notify command ({} is set); they stay in the outbox for the next wf",
            pending.len(),
            command::IN_ALERT_VAR
        ));
        return Ok(());
    }
    crate::crash::point("before-deliver");
    let until = Instant::now() + BUDGET;
    let empty = Notify::default();
    let notify = wf.notify.as_ref().unwrap_or(&empty);
    for (run, seq, channel_name) in pending {
        if Instant::now() >= until {
            break;
        }
        let Some(rec) = store.record(run, seq)? else {
            continue;
        };
        let Some(m) = Message::from_record(wf, store, &rec)? else {
            continue;
        };
        let channel = Channel::parse(&channel_name);
        let set = channel
            .as_ref()
            .and_then(|c| c.set(notify).map(|s| (s, c.kind)));
        let (outcome, detail) = match set.and_then(|(s, k)| send(wf, s, k, &m, until)) {
            Some(Ok(d)) => (Outcome::Delivered, d),
            Some(Err(d)) => (Outcome::Failed, d),
            None => (
                Outcome::Dropped,
                format!("no `{channel_name}` channel is configured in [notify] any more"),
            ),
        };
        crate::crash::point("after-deliver");
        store.commit(
            run,
            vec![Entry::Delivery {
                alert_seq: seq,
                channel: channel_name.clone(),
                outcome: outcome.as_str().to_string(),
                detail: detail.clone(),
            }],
        )?;
        tracing::info!(event = "alert", run, alert = seq, channel = %channel_name, outcome = outcome.as_str(), detail = %detail);
        match outcome {
            Outcome::Delivered => out.event(
                Tone::Dim,
                "✉",
                &format!("{} sent via {channel_name}", label(&m)),
            ),
            Outcome::Failed => out.alert(&format!(
                "wf: {} not delivered via {channel_name}: {detail}; it stays in the outbox for the next wf (or `wf notify`)",
                label(&m)
            )),
            Outcome::Dropped => out.alert(&format!(
                "wf: {} dropped: {detail}",
                label(&m)
            )),
        }
    }
    Ok(())
}

/// What a channel reaches, for `wf notify`: never a URL (secret), addresses are fine.
fn describe(set: &Channels, kind: Kind) -> String {
    match kind {
        Kind::Webhook => match set.webhook.as_deref() {
            Some(w) if w.starts_with("env:") => format!("webhook ({w})"),
            _ => "webhook (the configured URL)".into(),
        },
        Kind::Email => match &set.email {
            Some(e) => format!("email to {}", e.to.join(", ")),
            None => "email".into(),
        },
        Kind::Command => match &set.command {
            Some(crate::workflow::AlertCommand::Argv(a)) => format!("command `{}`", a[0]),
            _ => "command (sh script)".into(),
        },
    }
}

/// Which channels each owner's alerts reach, one line per owner (tasks' owners and routed owners).
pub fn routes(wf: &Workflow) -> Vec<String> {
    let mut owners: std::collections::BTreeSet<String> =
        wf.tasks.iter().filter_map(|t| t.owner.clone()).collect();
    if let Some(n) = &wf.notify {
        owners.extend(n.owners.keys().cloned());
    }
    let empty = Notify::default();
    let n = wf.notify.as_ref().unwrap_or(&empty);
    let mut lines = Vec::new();
    let list = |set: &Channels| -> String {
        let v: Vec<String> = Kind::ALL
            .into_iter()
            .filter(|k| k.configured(set))
            .map(|k| describe(set, k))
            .collect();
        if v.is_empty() {
            "nothing (no channel configured)".into()
        } else {
            v.join("; ")
        }
    };
    lines.push(format!("workflow channels: {}", list(&n.channels)));
    for o in owners {
        lines.push(match n.owners.get(&o) {
            Some(set) => format!("owner {o}: {}", list(set)),
            None => format!("owner {o}: the workflow channels"),
        });
    }
    lines
}

/// `wf notify --test`: a test message through every configured channel (the workflow's and each
/// owner route's), journaled nowhere. Returns whether every one was delivered.
pub fn test(wf: &Workflow, out: &Console) -> bool {
    let Some(notify) = wf.notify.as_ref() else {
        out.alert(
            "wf: no [notify] section in the workflow; add a webhook, an email or a command (`wf init --reference` shows the keys)",
        );
        return false;
    };
    for l in routes(wf) {
        out.event(Tone::Plain, "●", &l);
    }
    let until = Instant::now() + BUDGET;
    let mut ok = true;
    let mut sets: Vec<(Option<&str>, &Channels)> = vec![(None, &notify.channels)];
    sets.extend(notify.owners.iter().map(|(o, s)| (Some(o.as_str()), s)));
    for (owner, set) in sets {
        let m = Message::test(wf, owner);
        for kind in Kind::ALL.into_iter().filter(|k| k.configured(set)) {
            let name = Channel {
                owner: owner.map(str::to_string),
                kind,
            }
            .name();
            if Instant::now() >= until {
                ok = false;
                out.alert(&format!(
                    "wf: {name}: not tried: the {}s delivery budget ran out",
                    BUDGET.as_secs()
                ));
                continue;
            }
            match send(wf, set, kind, &m, until) {
                Some(Ok(d)) => out.event(Tone::Good, "✓", &format!("{name}: sent ({d})")),
                Some(Err(d)) => {
                    ok = false;
                    out.alert(&format!("wf: {name}: not sent: {d}"));
                }
                None => {}
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        for s in [
            "webhook",
            "email",
            "command",
            "owner.analyst.email",
            "owner.a.b.webhook",
        ] {
            let c = Channel::parse(s).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(c.name(), s);
        }
        assert_eq!(Channel::parse("owner.x.fax"), None);
        assert_eq!(Channel::parse("sms"), None);
    }
}
