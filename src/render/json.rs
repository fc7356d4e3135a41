//! What programs read: the rows of `--json` output, as typed structs that ARE docs/json.md —
//! one struct per table there, one field per field. No command builds an ad-hoc JSON object.
//!
//! Rows are printed by `Console::json`, which writes an object's keys in name order (as wf
//! always has); the order of fields here follows docs/json.md instead, for reading.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use wf_state::{Entry, Record, RunId, RunView, TaskState, TaskView};

use crate::render::fmt;

/// A time as JSON shows it: RFC 3339 in UTC with milliseconds, or null.
pub fn time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(fmt::rfc3339_text)
}

/// `wf --json status [RUN]`: one object per task of the run.
#[derive(Debug, Serialize)]
pub struct StatusRow<'a> {
    pub run: RunId,
    pub run_state: &'a str,
    pub task: &'a str,
    pub state: &'static str,
    pub attempts: u32,
    pub cached: bool,
    pub owner: Option<&'a str>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: String,
}

impl<'a> StatusRow<'a> {
    pub fn new(run: RunId, run_state: &'a str, t: &'a TaskView) -> StatusRow<'a> {
        StatusRow {
            run,
            run_state,
            task: &t.name,
            state: t.state.as_str(),
            attempts: t.attempts,
            cached: t.cached,
            owner: t.owner.as_deref(),
            started_at: time(t.started_at),
            ended_at: time(t.ended_at),
            exit_code: t.exit_code,
            reason: t.reason.to_string(),
        }
    }
}

/// `wf --json history`: one object per run, newest first.
#[derive(Debug, Serialize)]
pub struct RunRow<'a> {
    pub run: RunId,
    pub workflow: &'a str,
    pub state: &'a str,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// `ended_at` − `started_at`; null while the run has not ended.
    pub wall_ms: Option<i64>,
    /// Task counts by state.
    pub tasks: BTreeMap<&'static str, u32>,
    pub user: &'a str,
    pub host: &'a str,
    pub reason: &'a str,
}

impl<'a> RunRow<'a> {
    /// `state` is the run's state as shown (`interrupted` when no wf drives it any more).
    pub fn new(r: &'a RunView, state: &'a str) -> RunRow<'a> {
        RunRow {
            run: r.id,
            workflow: &r.workflow,
            state,
            started_at: time(Some(r.started_at)),
            ended_at: time(r.ended_at),
            wall_ms: r
                .ended_at
                .map(|e| (e - r.started_at).num_milliseconds().max(0)),
            tasks: TaskState::ALL
                .into_iter()
                .map(|s| (s.as_str(), r.count(s)))
                .collect(),
            user: &r.user,
            host: &r.host,
            reason: &r.reason,
        }
    }
}

/// `wf --json history --metric TASK.KEY`: one object per run that reported it.
#[derive(Debug, Serialize)]
pub struct MetricPoint<'a> {
    pub run: RunId,
    pub task: &'a str,
    pub key: &'a str,
    pub value: &'a str,
    pub at: Option<String>,
}

/// `wf --json check`: one object per lint warning.
#[derive(Debug, Serialize)]
pub struct LintRow<'a> {
    pub severity: &'static str,
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: &'a str,
    pub help: Option<&'a str>,
}

/// `wf --json history RUN`: one object per journal entry of the run, in order. Every entry has
/// these fields, and those of its kind (`detail`).
#[derive(Debug, Serialize)]
pub struct RecordRow<'a> {
    pub run: RunId,
    pub seq: u64,
    pub at: Option<String>,
    pub kind: &'static str,
    pub task: Option<&'a str>,
    pub attempt: Option<u32>,
    #[serde(flatten)]
    pub detail: Detail<'a>,
    /// On the run's end: what its time was spent on (`crate::durations`).
    #[serde(flatten)]
    pub took: Option<Took>,
}

/// A run's durations, on its `ended` entry (docs/json.md).
#[derive(Debug, Serialize)]
pub struct Took {
    pub wall_ms: i64,
    pub running_ms: i64,
    pub waiting_ms: i64,
}

impl From<crate::durations::Durations> for Took {
    fn from(d: crate::durations::Durations) -> Took {
        Took {
            wall_ms: d.wall_ms,
            running_ms: d.running_ms,
            waiting_ms: d.waiting_ms,
        }
    }
}

/// The fields of each kind of journal entry (docs/json.md, "by kind").
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Detail<'a> {
    Started {
        event: &'static str,
        workflow: &'a str,
        file: &'a str,
        user: &'a str,
        host: &'a str,
        pid: u32,
        args: &'a [String],
        tasks: Vec<&'a str>,
    },
    Options {
        event: &'static str,
        params: BTreeMap<&'a str, &'a str>,
        force: &'a Option<Vec<String>>,
        only: &'a [String],
        from: Option<&'a str>,
        jobs: Option<u32>,
    },
    Resumed {
        event: &'static str,
        user: &'a str,
        pid: u32,
        args: &'a [String],
    },
    Ended {
        event: &'static str,
        state: &'static str,
        reason: &'a str,
    },
    Superseded {
        event: &'static str,
        state: &'static str,
        by: RunId,
    },
    Transition {
        from: &'static str,
        to: &'static str,
        reason: String,
        exit_code: Option<i32>,
    },
    Spawn {
        pid: u32,
    },
    Checkpoint {
        path: &'a str,
        hash: &'a str,
        bytes: u64,
        retention: String,
        expires_at: Option<String>,
    },
    Metric {
        key: &'a str,
        value: &'a str,
    },
    Decision {
        decision: &'static str,
        user: &'a str,
        note: Option<&'a str>,
    },
    Fingerprint {
        fingerprint: &'a str,
    },
    Cache {
        hit: bool,
        why: &'a str,
        parts: BTreeMap<&'a str, &'a str>,
    },
    Outputs {
        files: BTreeMap<&'a str, &'a str>,
    },
    Alert {
        event: &'static str,
        alert: u64,
        owner: Option<&'a str>,
        error: &'a str,
        exit_code: Option<i32>,
        channels: &'a [String],
    },
    Delivery {
        event: &'a str,
        alert: u64,
        channel: &'a str,
        detail: &'a str,
    },
    Warning {
        message: &'a str,
    },
    Restore {
        path: &'a str,
        hash: &'a str,
        found: Option<&'a str>,
        replaced_by: Option<RunId>,
    },
    Prune {
        checkpoint_seq: u64,
        path: &'a str,
        hash: &'a str,
        bytes: u64,
        policy: &'a str,
    },
    /// What an attempt used and printed (docs/json.md, `usage`).
    Usage {
        cpu_user_s: f64,
        cpu_sys_s: f64,
        max_rss_bytes: Option<u64>,
        source: &'a str,
        printed_bytes: u64,
        log_head_bytes: u64,
        log_dropped_bytes: u64,
    },
    /// One attempt's log pruned (a sweep's `Pruned` record, expanded).
    LogPrune {
        log: String,
        bytes: u64,
        policy: &'a str,
    },
    /// A sweep's `Pruned` record as it is (not expanded).
    Pruned {
        checkpoints: &'a [wf_state::PrunedCheckpoint],
        logs: &'a [wf_state::PrunedLog],
    },
}

/// Pairs as an object by name (a later pair wins, as in a JSON object).
fn by_name(pairs: &[(String, String)]) -> BTreeMap<&str, &str> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

impl<'a> RecordRow<'a> {
    pub fn new(r: &'a Record) -> RecordRow<'a> {
        let detail = match &r.entry {
            Entry::RunStarted {
                workflow,
                file,
                user,
                host,
                pid,
                args,
                tasks,
            } => Detail::Started {
                event: "started",
                workflow,
                file,
                user,
                host,
                pid: *pid,
                args,
                tasks: tasks.iter().map(|t| t.name.as_str()).collect(),
            },
            Entry::RunResumed { user, pid, args } => Detail::Resumed {
                event: "resumed",
                user,
                pid: *pid,
                args,
            },
            Entry::RunEnded { state, reason } => Detail::Ended {
                event: "ended",
                state: state.as_str(),
                reason,
            },
            Entry::Transition {
                from,
                to,
                reason,
                exit_code,
                ..
            } => Detail::Transition {
                from: from.as_str(),
                to: to.as_str(),
                reason: reason.to_string(),
                exit_code: *exit_code,
            },
            Entry::Spawned { pid, .. } => Detail::Spawn { pid: *pid },
            Entry::Checkpoint {
                path,
                hash,
                bytes,
                retention_secs,
                expires_at,
                ..
            } => Detail::Checkpoint {
                path,
                hash,
                bytes: *bytes,
                retention: fmt::policy(std::time::Duration::from_secs(*retention_secs)),
                expires_at: time(Some(*expires_at)),
            },
            Entry::Metric { key, value, .. } => Detail::Metric { key, value },
            Entry::Approval { user, note, .. } => Detail::Decision {
                decision: "approved",
                user,
                note: note.as_deref(),
            },
            Entry::Rejection { user, note, .. } => Detail::Decision {
                decision: "rejected",
                user,
                note: Some(note),
            },
            Entry::Warning { message, .. } => Detail::Warning { message },
            Entry::Alert {
                owner,
                error,
                exit_code,
                channels,
                ..
            } => Detail::Alert {
                event: "raised",
                alert: r.seq,
                owner: owner.as_deref(),
                error,
                exit_code: *exit_code,
                channels,
            },
            Entry::Delivery {
                alert_seq,
                channel,
                outcome,
                detail,
            } => Detail::Delivery {
                event: outcome,
                alert: *alert_seq,
                channel,
                detail,
            },
            Entry::Fingerprint { fingerprint, .. } => Detail::Fingerprint { fingerprint },
            Entry::RunOptions {
                params,
                force,
                only,
                from,
                jobs,
            } => Detail::Options {
                event: "options",
                params: by_name(params),
                force,
                only,
                from: from.as_deref(),
                jobs: *jobs,
            },
            Entry::Superseded { by, .. } => Detail::Superseded {
                event: "superseded",
                state: "superseded",
                by: *by,
            },
            Entry::Restored {
                path,
                hash,
                found,
                replaced,
                ..
            } => Detail::Restore {
                path,
                hash,
                found: found.as_deref(),
                replaced_by: *replaced,
            },
            Entry::CacheDecision {
                hit, why, parts, ..
            } => Detail::Cache {
                hit: *hit,
                why,
                parts: by_name(parts),
            },
            Entry::Outputs { files, .. } => Detail::Outputs {
                files: by_name(files),
            },
            Entry::Prune {
                checkpoint_seq,
                path,
                hash,
                bytes,
                policy,
                ..
            } => Detail::Prune {
                checkpoint_seq: *checkpoint_seq,
                path,
                hash,
                bytes: *bytes,
                policy,
            },
            Entry::Pruned { checkpoints, logs } if checkpoints.is_empty() && logs.len() == 1 => {
                let l = &logs[0];
                Detail::LogPrune {
                    log: format!("logs/{}/{}.{}.log", r.run, l.task, l.attempt),
                    bytes: l.bytes,
                    policy: &l.policy,
                }
            }
            Entry::Pruned { checkpoints, logs } => Detail::Pruned { checkpoints, logs },
            Entry::Usage {
                cpu_user_us,
                cpu_sys_us,
                max_rss_kib,
                source,
                printed,
                head,
                dropped,
                ..
            } => Detail::Usage {
                cpu_user_s: *cpu_user_us as f64 / 1e6,
                cpu_sys_s: *cpu_sys_us as f64 / 1e6,
                max_rss_bytes: max_rss_kib.map(|k| k.saturating_mul(1024)),
                source,
                printed_bytes: *printed,
                log_head_bytes: *head,
                log_dropped_bytes: *dropped,
            },
        };
        RecordRow {
            run: r.run,
            seq: r.seq,
            at: time(Some(r.at)),
            kind: r.entry.kind(),
            task: r.entry.task(),
            attempt: r.entry.attempt(),
            detail,
            took: None,
        }
    }
}

/// What `wf --json run` (`resume`, `approve`, `reject`) prints: each record the command journals,
/// as it is journaled, as the row `wf --json history RUN` gives it (a run's end with its
/// durations, computed from the run's records up to it). A reader that went away does not stop
/// the run.
pub fn stream(out: crate::render::console::Console) -> wf_state::store::Watcher {
    Box::new(move |store: &wf_state::Store, records: &[Record]| {
        for r in records {
            for e in crate::render::entry::expand(r) {
                let mut row = RecordRow::new(&e);
                if matches!(e.entry, Entry::RunEnded { .. } | Entry::Superseded { .. }) {
                    if let Ok(all) = store.records(e.run) {
                        let upto: Vec<Record> = all
                            .iter()
                            .filter(|x| x.seq <= e.seq)
                            .flat_map(crate::render::entry::expand)
                            .collect();
                        row.took = Some(crate::durations::of(&upto, e.at).into());
                    }
                }
                let _ = out.json(&row);
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wf_state::{Reason, TaskPlan};

    fn row(entry: Entry) -> serde_json::Value {
        let r = Record {
            seq: 7,
            run: 3,
            at: DateTime::<Utc>::UNIX_EPOCH,
            entry,
        };
        serde_json::to_value(RecordRow::new(&r)).unwrap()
    }

    #[test]
    fn every_entry_has_the_common_fields() {
        let v = row(Entry::Spawned {
            task: "t".into(),
            attempt: 2,
            pid: 99,
            pid_start: None,
        });
        assert_eq!(
            v.to_string(),
            r#"{"at":"1970-01-01T00:00:00.000Z","attempt":2,"kind":"spawn","pid":99,"run":3,"seq":7,"task":"t"}"#
        );
    }

    #[test]
    fn kinds_carry_their_fields_as_documented() {
        let v = row(Entry::RunStarted {
            workflow: "w".into(),
            file: "wf.toml".into(),
            user: "ana".into(),
            host: "h".into(),
            pid: 1,
            args: vec!["wf".into(), "run".into()],
            tasks: vec![TaskPlan {
                name: "a".into(),
                owner: None,
                idempotent: true,
                retries: 0,
                manual: false,
            }],
        });
        assert_eq!(v["event"], "started");
        assert_eq!(v["tasks"], serde_json::json!(["a"]));
        assert!(v["task"].is_null());
        let v = row(Entry::Transition {
            task: "a".into(),
            attempt: 1,
            from: TaskState::Running,
            to: TaskState::Failed,
            reason: Reason::Exit(3),
            exit_code: Some(3),
        });
        assert_eq!(v["reason"], "exit code 3");
        assert_eq!(v["to"], "failed");
        let v = row(Entry::Approval {
            task: "a".into(),
            user: "bob".into(),
            note: None,
        });
        assert_eq!(v["decision"], "approved");
        assert!(v["note"].is_null() && v.get("note").is_some());
        let v = row(Entry::RunOptions {
            params: vec![("b".into(), "1".into()), ("a".into(), "2".into())],
            force: Some(vec![]),
            only: vec![],
            from: None,
            jobs: None,
        });
        assert_eq!(v["params"].to_string(), r#"{"a":"2","b":"1"}"#);
        assert_eq!(v["force"], serde_json::json!([]));
        assert!(v["from"].is_null() && v["jobs"].is_null());
        let v = row(Entry::Checkpoint {
            task: "a".into(),
            attempt: 1,
            path: "out".into(),
            hash: "h".into(),
            bytes: 10,
            retention_secs: 7 * 86400,
            expires_at: DateTime::<Utc>::UNIX_EPOCH,
        });
        assert_eq!(v["retention"], "7d");
    }
}
