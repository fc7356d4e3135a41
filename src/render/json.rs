//! What programs read: journal records as JSON objects, exactly as docs/json.md describes them.

use serde_json::{json, Map, Value};
use wf_state::{Entry, Record};

use crate::command::status::rfc3339;

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
                json!(crate::render::fmt::policy(std::time::Duration::from_secs(
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
        Entry::RunOptions {
            params,
            force,
            only,
            from,
            jobs,
        } => {
            put("event", json!("options"));
            put("params", params_json(params));
            put("force", json!(force));
            put("only", json!(only));
            put("from", json!(from));
            put("jobs", json!(jobs));
        }
        Entry::Superseded { by, .. } => {
            put("event", json!("superseded"));
            put("state", json!("superseded"));
            put("by", json!(by));
        }
        Entry::Restored {
            path,
            hash,
            found,
            replaced,
            ..
        } => {
            put("path", json!(path));
            put("hash", json!(hash));
            put("found", json!(found));
            put("replaced_by", json!(replaced));
        }
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

/// A run's parameters as a JSON object, in name order.
pub fn params_json(params: &[(String, String)]) -> Value {
    Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<String, Value>>(),
    )
}
