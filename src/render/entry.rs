//! The one description of a journal record in words, used by `wf history`, `wf -v run`, the HTML
//! page and alerts. The `match` in [`describe`] is exhaustive: a new kind of record does not
//! compile until it is described here.
//!
//! A description is a [`Sentence`] of [`Span`]s rather than a string, so that each output can
//! mark up the parts it wants to (the page shows names in bold and paths as code, with escaping
//! done by its template) while the words stay the same everywhere.

use std::fmt;

use chrono::{DateTime, Utc};
use wf_state::{Entry, Record, RunState, TaskState};

use crate::render::fmt as f;

/// A part of a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// Words.
    Text(String),
    /// A name: a user, a workflow, a metric key (bold on the page).
    Name(String),
    /// A path, a value or a command line (code on the page).
    Code(String),
    /// A content hash: shortened with `…`, in full on hover on the page.
    Hash(String),
    /// A point in time: local time in a terminal, UTC on the page.
    Time(DateTime<Utc>),
    /// The state a task moved to (coloured on the page).
    Task(TaskState),
    /// The state a run ended in (a badge on the page).
    Run(RunState),
}

impl Span {
    /// The text a terminal shows for this part.
    pub fn plain(&self) -> String {
        match self {
            Span::Text(s) | Span::Name(s) | Span::Code(s) => s.clone(),
            Span::Hash(h) => format!("{}…", f::short_hash(h)),
            Span::Time(t) => f::local(*t),
            Span::Task(s) => s.to_string(),
            Span::Run(s) => s.to_string(),
        }
    }
}

/// A record in words, as parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sentence(pub Vec<Span>);

impl Sentence {
    fn t(mut self, s: impl Into<String>) -> Sentence {
        let s = s.into();
        if let Some(Span::Text(last)) = self.0.last_mut() {
            last.push_str(&s);
        } else if !s.is_empty() {
            self.0.push(Span::Text(s));
        }
        self
    }

    fn push(mut self, span: Span) -> Sentence {
        self.0.push(span);
        self
    }

    fn name(self, s: &str) -> Sentence {
        self.push(Span::Name(s.to_string()))
    }

    fn code(self, s: &str) -> Sentence {
        self.push(Span::Code(s.to_string()))
    }

    fn hash(self, s: &str) -> Sentence {
        self.push(Span::Hash(s.to_string()))
    }

    /// The parts, for a template.
    pub fn spans(&self) -> &[Span] {
        &self.0
    }
}

/// The terminal's text of the sentence (it is made safe for the terminal where it is printed).
impl fmt::Display for Sentence {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.0 {
            out.write_str(&s.plain())?;
        }
        Ok(())
    }
}

fn s(text: impl Into<String>) -> Sentence {
    Sentence::default().t(text)
}

/// One journal record in words.
pub fn describe(r: &Record) -> Sentence {
    match &r.entry {
        Entry::RunOptions {
            params,
            force,
            only,
            from,
            jobs,
        } => {
            let text = options_text(params, force, only, from, *jobs);
            if text.is_empty() {
                s("run options: none")
            } else {
                s("run options: ").code(&text)
            }
        }
        Entry::Superseded { task, by } => s(format!("run superseded: run {by} reached "))
            .name(task)
            .t(" later; approve that one"),
        Entry::Restored {
            path,
            hash,
            replaced,
            ..
        } => s("restored ")
            .code(path)
            .t(" (blake3 ")
            .hash(hash)
            .t(format!(
                ") from the checkpoint store: the workspace held {}",
                match replaced {
                    Some(r) => format!("run {r}'s version"),
                    None => "another version".to_string(),
                }
            )),
        Entry::RunStarted {
            user,
            host,
            pid,
            tasks,
            ..
        } => s("run started by ").name(user).t(format!(
            " on {host} (pid {pid}): {} task{}",
            tasks.len(),
            if tasks.len() == 1 { "" } else { "s" }
        )),
        Entry::RunResumed { user, pid, .. } => {
            s("run resumed by ").name(user).t(format!(" (pid {pid})"))
        }
        Entry::RunEnded { state, reason } => {
            let sentence = s("run ended ").push(Span::Run(*state));
            if reason.is_empty() {
                sentence
            } else {
                sentence.t(format!(": {reason}"))
            }
        }
        Entry::Transition {
            attempt,
            from,
            to,
            reason,
            ..
        } => {
            // Attempt 0: no attempt has started yet (a gate, a cache hit).
            let sentence = s(format!("{from} → "))
                .push(Span::Task(*to))
                .t(format!(" ({reason})"));
            if *attempt > 0 {
                sentence.t(format!(", attempt {attempt}"))
            } else {
                sentence
            }
        }
        Entry::Spawned { pid, attempt, .. } => s(format!("attempt {attempt} is process {pid}")),
        Entry::Checkpoint {
            path,
            hash,
            bytes,
            expires_at,
            retention_secs,
            ..
        } => s("checkpoint ")
            .code(path)
            .t(format!(" ({}, blake3 ", f::bytes(*bytes)))
            .hash(hash)
            .t(format!(
                "), kept {} until ",
                f::policy(std::time::Duration::from_secs(*retention_secs))
            ))
            .push(Span::Time(*expires_at)),
        Entry::Metric { key, value, .. } => s("metric ").name(key).t(" = ").code(value),
        Entry::Approval { user, note, .. } => {
            let sentence = s("approved by ").name(user);
            match note {
                Some(n) => sentence.t(format!(": \"{n}\"")),
                None => sentence,
            }
        }
        Entry::Fingerprint { fingerprint, .. } => s("fingerprint ").hash(fingerprint),
        Entry::Prune {
            path,
            bytes,
            policy,
            ..
        } => s("pruned checkpoint ")
            .code(path)
            .t(format!(" ({}) under its ", f::bytes(*bytes)))
            .code(policy)
            .t(" policy"),
        Entry::Pruned { checkpoints, logs } if checkpoints.is_empty() && logs.len() == 1 => {
            let l = &logs[0];
            s(format!(
                "pruned the log of attempt {} ({}) under its ",
                l.attempt,
                f::bytes(l.bytes)
            ))
            .code(&l.policy)
            .t(" policy")
        }
        Entry::Pruned { checkpoints, logs } => {
            let mut parts: Vec<String> = checkpoints
                .iter()
                .map(|c| {
                    format!(
                        "checkpoint {} of {} ({}, {})",
                        c.path,
                        c.task,
                        f::bytes(c.bytes),
                        c.policy
                    )
                })
                .collect();
            parts.extend(logs.iter().map(|l| {
                format!(
                    "log of {} attempt {} ({}, {})",
                    l.task,
                    l.attempt,
                    f::bytes(l.bytes),
                    l.policy
                )
            }));
            s(format!("pruned by wf gc: {}", parts.join("; ")))
        }
        Entry::Rejection { user, note, .. } => {
            s("rejected by ").name(user).t(format!(": \"{note}\""))
        }
        Entry::Warning { message, .. } => s(format!("warning: {message}")),
        Entry::Usage {
            cpu_user_us,
            cpu_sys_us,
            max_rss_kib,
            source,
            printed,
            dropped,
            ..
        } => s(usage_text(
            *cpu_user_us,
            *cpu_sys_us,
            *max_rss_kib,
            source,
            *printed,
            *dropped,
        )),
        Entry::CacheDecision { hit: true, why, .. } => s(format!("cache hit: {why}")),
        Entry::CacheDecision {
            hit: false, why, ..
        } => s(format!("runs, not cached: {why}")),
        Entry::Outputs { files, .. } => {
            let mut out = s("outputs not checkpointed: ");
            for (i, (p, h)) in files.iter().enumerate() {
                if i > 0 {
                    out = out.t(", ");
                }
                out = out.code(p).t(" (blake3 ").hash(h).t(")");
            }
            out
        }
        Entry::Alert {
            error, channels, ..
        } => {
            if channels.is_empty() {
                s(format!(
                    "alert {}: {error} (no [notify] channel configured)",
                    r.seq
                ))
            } else {
                s(format!(
                    "alert {}: {error} → {}",
                    r.seq,
                    channels.join(", ")
                ))
            }
        }
        Entry::Delivery {
            alert_seq,
            channel,
            outcome,
            detail,
        } => s(format!(
            "alert {alert_seq} {outcome} via {channel}{}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        )),
    }
}

/// A value shown to people with its control characters escaped (`\u{1b}`), so that a parameter
/// cannot drive the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

/// A run's options as people read them: `day=2026-12-01 mode=train, --force train, --jobs 2`;
/// empty when it was started with none.
pub fn options_text(
    params: &[(String, String)],
    force: &Option<Vec<String>>,
    only: &[String],
    from: &Option<String>,
    jobs: Option<u32>,
) -> String {
    let mut parts = Vec::new();
    if !params.is_empty() {
        parts.push(
            params
                .iter()
                .map(|(k, v)| format!("{}={}", printable(k), printable(v)))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    match force {
        Some(list) if list.is_empty() => parts.push("--force".into()),
        Some(list) => parts.push(format!("--force {}", printable(&list.join(" ")))),
        None => {}
    }
    if !only.is_empty() {
        parts.push(format!("--only {}", printable(&only.join(" "))));
    }
    if let Some(f) = from {
        parts.push(format!("--from {}", printable(f)));
    }
    if let Some(j) = jobs {
        parts.push(format!("--jobs {j}"));
    }
    parts.join(", ")
}

/// What an attempt used and printed (its `Usage` record): `used 1.20s CPU (user 1.10s, system
/// 0.10s), peak memory 212.4 MiB; printed 1.2 GiB, of which the log keeps 16.0 MiB (the start
/// and the end; 1.2 GiB dropped from the middle)`. A sampled peak is a lower bound, a `bound`
/// one an upper bound, and each says so.
pub fn usage_text(
    user_us: u64,
    sys_us: u64,
    max_rss_kib: Option<u64>,
    source: &str,
    printed: u64,
    dropped: u64,
) -> String {
    let secs = |us: u64| format!("{:.2}s", us as f64 / 1e6);
    let rss = match (max_rss_kib, source) {
        (Some(k), "sampled") => {
            format!("peak memory at least {}", f::bytes(k.saturating_mul(1024)))
        }
        (Some(k), "bound") => format!("peak memory at most {}", f::bytes(k.saturating_mul(1024))),
        (Some(k), _) => format!("peak memory {}", f::bytes(k.saturating_mul(1024))),
        (None, _) => "peak memory unknown".to_string(),
    };
    let mut text = format!(
        "used {} CPU (user {}, system {}), {rss}",
        secs(user_us.saturating_add(sys_us)),
        secs(user_us),
        secs(sys_us)
    );
    if printed == 0 {
        text.push_str("; printed nothing");
    } else if dropped == 0 {
        text.push_str(&format!("; printed {}", f::bytes(printed)));
    } else {
        text.push_str(&format!(
            "; printed {}, of which the log keeps {} (the start and the end; {} dropped from the middle)",
            f::bytes(printed),
            f::bytes(printed.saturating_sub(dropped)),
            f::bytes(dropped)
        ));
    }
    text
}

/// A record as history shows it: a sweep's `Pruned` record as one `prune` per checkpoint (the
/// shape of the per-checkpoint `Prune` records older sweeps journaled) and one per log, each
/// with the record's seq and time; any other record as it is.
pub fn expand(r: &Record) -> Vec<Record> {
    let Entry::Pruned { checkpoints, logs } = &r.entry else {
        return vec![r.clone()];
    };
    let one = |entry| Record {
        seq: r.seq,
        run: r.run,
        at: r.at,
        entry,
    };
    checkpoints
        .iter()
        .map(|c| {
            one(Entry::Prune {
                task: c.task.to_string(),
                attempt: c.attempt,
                checkpoint_seq: c.checkpoint_seq,
                path: c.path.to_string(),
                hash: c.hash.clone(),
                bytes: c.bytes,
                policy: c.policy.to_string(),
            })
        })
        .chain(logs.iter().map(|l| {
            one(Entry::Pruned {
                checkpoints: Vec::new(),
                logs: vec![l.clone()],
            })
        }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_state::Reason;

    fn rec(entry: Entry) -> Record {
        Record {
            seq: 9,
            run: 1,
            at: DateTime::<Utc>::UNIX_EPOCH,
            entry,
        }
    }

    #[test]
    fn options_read_as_typed_and_cannot_drive_a_terminal() {
        let params = vec![
            ("day".to_string(), "2026-12-01".to_string()),
            ("note".to_string(), "a\u{1b}[2Jb\nc".to_string()),
        ];
        let text = options_text(&params, &Some(vec![]), &[], &None, Some(2));
        assert_eq!(
            text,
            "day=2026-12-01 note=a\\u{1b}[2Jb\\nc, --force, --jobs 2"
        );
        assert_eq!(options_text(&[], &None, &[], &None, None), "");
        let only = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            options_text(&[], &Some(vec!["t".into()]), &only, &Some("x".into()), None),
            "--force t, --only a b, --from x"
        );
    }

    #[test]
    fn sentences_read_as_the_terminal_always_showed_them() {
        let cases = [
            (
                Entry::Transition {
                    task: "t".into(),
                    attempt: 2,
                    from: TaskState::Running,
                    to: TaskState::Failed,
                    reason: Reason::Exit(3),
                    exit_code: Some(3),
                },
                "running → failed (exit code 3), attempt 2",
            ),
            (
                Entry::Rejection {
                    task: "t".into(),
                    user: "eve".into(),
                    note: "no".into(),
                },
                "rejected by eve: \"no\"",
            ),
            (
                Entry::Approval {
                    task: "t".into(),
                    user: "bob".into(),
                    note: None,
                },
                "approved by bob",
            ),
            (
                Entry::Metric {
                    task: "t".into(),
                    attempt: 1,
                    key: "acc".into(),
                    value: "0.9".into(),
                },
                "metric acc = 0.9",
            ),
            (
                Entry::Outputs {
                    task: "t".into(),
                    attempt: 1,
                    files: vec![
                        ("a".into(), "0123456789abcdef".into()),
                        ("b".into(), "ff".into()),
                    ],
                },
                "outputs not checkpointed: a (blake3 0123456789ab…), b (blake3 ff…)",
            ),
            (
                Entry::Delivery {
                    alert_seq: 4,
                    channel: "webhook".into(),
                    outcome: "failed".into(),
                    detail: "HTTP 500".into(),
                },
                "alert 4 failed via webhook: HTTP 500",
            ),
            (
                Entry::Warning {
                    task: "t".into(),
                    attempt: 1,
                    message: "disk low".into(),
                },
                "warning: disk low",
            ),
        ];
        let more = [
            (
                Entry::Transition {
                    task: "gate".into(),
                    attempt: 0,
                    from: TaskState::Pending,
                    to: TaskState::Waiting,
                    reason: Reason::Gate,
                    exit_code: None,
                },
                "pending → waiting (manual gate)",
            ),
            (
                Entry::RunEnded {
                    state: RunState::Done,
                    reason: String::new(),
                },
                "run ended done",
            ),
            (
                Entry::RunEnded {
                    state: RunState::Failed,
                    reason: "failed: a".into(),
                },
                "run ended failed: failed: a",
            ),
        ];
        for (entry, want) in cases.into_iter().chain(more) {
            assert_eq!(describe(&rec(entry)).to_string(), want);
        }
    }

    #[test]
    fn usage_reads_as_cpu_memory_and_the_cut() {
        let usage = |max_rss_kib, source: &str, printed, dropped| Entry::Usage {
            task: "t".into(),
            attempt: 1,
            cpu_user_us: 1_100_000,
            cpu_sys_us: 100_000,
            max_rss_kib,
            source: source.into(),
            printed,
            head: 8 << 20,
            dropped,
        };
        let cases = [
            (
                usage(Some(2048), "rusage", 0, 0),
                "used 1.20s CPU (user 1.10s, system 0.10s), peak memory 2.0 MiB; printed nothing",
            ),
            (
                usage(Some(2048), "sampled", 10, 0),
                "used 1.20s CPU (user 1.10s, system 0.10s), peak memory at least 2.0 MiB; printed 10 B",
            ),
            (
                usage(None, "bound", 32 << 20, 16 << 20),
                "used 1.20s CPU (user 1.10s, system 0.10s), peak memory unknown; printed 32.0 MiB, of which the log keeps 16.0 MiB (the start and the end; 16.0 MiB dropped from the middle)",
            ),
        ];
        for (entry, want) in cases {
            assert_eq!(describe(&rec(entry)).to_string(), want);
        }
    }

    #[test]
    fn alerts_name_their_channels() {
        let e = Entry::Alert {
            task: Some("t".into()),
            attempt: 1,
            owner: Some("ops".into()),
            error: "t failed".into(),
            exit_code: Some(1),
            log_tail: vec![],
            channels: vec![],
        };
        assert_eq!(
            describe(&rec(e)).to_string(),
            "alert 9: t failed (no [notify] channel configured)"
        );
    }
}
