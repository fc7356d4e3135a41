//! How journal records read: as JSON objects (docs/json.md) and as one line for people. Shared
//! by `wf history`, `wf -v run` and the HTML timeline.

use serde_json::{json, Map, Value};
use wf_state::{Entry, Record};

use crate::command::status::{local, rfc3339};
use crate::console;

/// One journal record as a JSON object (docs/json.md).
pub fn record_json(r: &Record) -> Value {
    let mut m = Map::new();
    m.insert("run".into(), json!(r.run));
    m.insert("seq".into(), json!(r.seq));
    m.insert("at".into(), rfc3339(Some(r.at)));
    m.insert("kind".into(), json!(r.entry.kind()));
    m.insert("task".into(), json!(r.entry.task()));
    m.insert("attempt".into(), json!(r.entry.attempt()));
    let mut put = |k: &str, v: Value| {
        m.insert(k.into(), v);
    };
    match &r.entry {
        Entry::RunStarted {
            workflow,
            file,
            user,
            host,
            pid,
            args,
            tasks,
        } => {
            put("event", json!("started"));
            put("workflow", json!(workflow));
            put("file", json!(file));
            put("user", json!(user));
            put("host", json!(host));
            put("pid", json!(pid));
            put("args", json!(args));
            put(
                "tasks",
                json!(tasks.iter().map(|t| t.name.clone()).collect::<Vec<_>>()),
            );
        }
        Entry::RunResumed { user, pid, args } => {
            put("event", json!("resumed"));
            put("user", json!(user));
            put("pid", json!(pid));
            put("args", json!(args));
        }
        Entry::RunEnded { state, reason } => {
            put("event", json!("ended"));
            put("state", json!(state.as_str()));
            put("reason", json!(reason));
        }
        Entry::Transition {
            from,
            to,
            reason,
            exit_code,
            ..
        } => {
            put("from", json!(from.as_str()));
            put("to", json!(to.as_str()));
            put("reason", json!(reason.to_string()));
            put("exit_code", json!(exit_code));
        }
        Entry::Spawned { pid, .. } => put("pid", json!(pid)),
        Entry::Checkpoint {
            path,
            hash,
            bytes,
            retention_secs,
            expires_at,
            ..
        } => {
            put("path", json!(path));
            put("hash", json!(hash));
            put("bytes", json!(bytes));
            put(
                "retention",
                json!(console::policy(std::time::Duration::from_secs(
                    *retention_secs
                ))),
            );
            put("expires_at", rfc3339(Some(*expires_at)));
        }
        Entry::Metric { key, value, .. } => {
            put("key", json!(key));
            put("value", json!(value));
        }
        Entry::Approval { user, note, .. } => {
            put("decision", json!("approved"));
            put("user", json!(user));
            put("note", json!(note));
        }
        Entry::Warning { message, .. } => put("message", json!(message)),
        Entry::Rejection { user, note, .. } => {
            put("decision", json!("rejected"));
            put("user", json!(user));
            put("note", json!(note));
        }
        Entry::Alert {
            owner,
            error,
            exit_code,
            channels,
            ..
        } => {
            put("event", json!("raised"));
            put("alert", json!(r.seq));
            put("owner", json!(owner));
            put("error", json!(error));
            put("exit_code", json!(exit_code));
            put("channels", json!(channels));
        }
        Entry::Delivery {
            alert_seq,
            channel,
            outcome,
            detail,
        } => {
            put("event", json!(outcome));
            put("alert", json!(alert_seq));
            put("channel", json!(channel));
            put("detail", json!(detail));
        }
        Entry::Fingerprint { fingerprint, .. } => put("fingerprint", json!(fingerprint)),
        Entry::CacheDecision {
            hit, why, parts, ..
        } => {
            put("hit", json!(hit));
            put("why", json!(why));
            put(
                "parts",
                Value::Object(
                    parts
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect::<Map<String, Value>>(),
                ),
            );
        }
        Entry::Outputs { files, .. } => put(
            "files",
            Value::Object(
                files
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect::<Map<String, Value>>(),
            ),
        ),
        Entry::Prune {
            checkpoint_seq,
            path,
            hash,
            bytes,
            policy,
            ..
        } => {
            put("checkpoint_seq", json!(checkpoint_seq));
            put("path", json!(path));
            put("hash", json!(hash));
            put("bytes", json!(bytes));
            put("policy", json!(policy));
        }
    }
    Value::Object(m)
}

/// One journal record as a line for people.
pub fn describe(r: &Record) -> String {
    match &r.entry {
        Entry::RunStarted {
            user,
            host,
            pid,
            tasks,
            ..
        } => format!(
            "run started by {user} on {host} (pid {pid}): {} tasks",
            tasks.len()
        ),
        Entry::RunResumed { user, pid, .. } => format!("run resumed by {user} (pid {pid})"),
        Entry::RunEnded { state, reason } => format!("run ended {state}: {reason}"),
        Entry::Transition {
            attempt,
            from,
            to,
            reason,
            ..
        } => format!("{from} → {to} ({reason}), attempt {attempt}"),
        Entry::Spawned { pid, attempt, .. } => format!("attempt {attempt} is process {pid}"),
        Entry::Checkpoint {
            path,
            hash,
            bytes: n,
            expires_at,
            retention_secs,
            ..
        } => format!(
            "checkpoint {path} ({}, blake3 {}…), kept {} until {}",
            console::bytes(*n),
            hash.get(..12).unwrap_or(hash),
            console::policy(std::time::Duration::from_secs(*retention_secs)),
            local(*expires_at)
        ),
        Entry::Metric { key, value, .. } => format!("metric {key} = {value}"),
        Entry::Approval { user, note, .. } => format!(
            "approved by {user}{}",
            note.as_deref()
                .map(|n| format!(": \"{n}\""))
                .unwrap_or_default()
        ),
        Entry::Fingerprint { fingerprint, .. } => {
            format!(
                "fingerprint {}…",
                fingerprint.get(..12).unwrap_or(fingerprint)
            )
        }
        Entry::Prune {
            path,
            bytes: n,
            policy,
            ..
        } => format!(
            "pruned checkpoint {path} ({}) under its {policy} policy",
            console::bytes(*n)
        ),
        Entry::Rejection { user, note, .. } => format!("rejected by {user}: \"{note}\""),
        Entry::Warning { message, .. } => format!("warning: {message}"),
        Entry::CacheDecision { hit: true, why, .. } => format!("cache hit: {why}"),
        Entry::CacheDecision {
            hit: false, why, ..
        } => format!("runs, not cached: {why}"),
        Entry::Outputs { files, .. } => format!(
            "outputs not checkpointed: {}",
            files
                .iter()
                .map(|(p, h)| format!("{p} (blake3 {}…)", h.get(..12).unwrap_or(h)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Entry::Alert {
            error, channels, ..
        } => {
            if channels.is_empty() {
                format!("alert {}: {error} (no [notify] channel configured)", r.seq)
            } else {
                format!("alert {}: {error} → {}", r.seq, channels.join(", "))
            }
        }
        Entry::Delivery {
            alert_seq,
            channel,
            outcome,
            detail,
        } => format!(
            "alert {alert_seq} {outcome} via {channel}{}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        ),
    }
}
