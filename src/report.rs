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
        Entry::Usage {
            cpu_user_us,
            cpu_sys_us,
            max_rss_kib,
            source,
            printed,
            head,
            dropped,
            ..
        } => {
            put("cpu_user_s", json!(*cpu_user_us as f64 / 1e6));
            put("cpu_sys_s", json!(*cpu_sys_us as f64 / 1e6));
            put("max_rss_bytes", json!(max_rss_kib.map(|k| k * 1024)));
            put("source", json!(source));
            put("printed_bytes", json!(printed));
            put("log_head_bytes", json!(head));
            put("log_dropped_bytes", json!(dropped));
        }
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

/// One journal record as a line for people.
pub fn describe(r: &Record) -> String {
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
                "run options: none".to_string()
            } else {
                format!("run options: {text}")
            }
        }
        Entry::Superseded { task, by } => {
            format!("run superseded: run {by} reached {task} later; approve that one")
        }
        Entry::Restored {
            path,
            hash,
            replaced,
            ..
        } => format!(
            "restored {path} (blake3 {}…) from the checkpoint store: the workspace held {}",
            hash.get(..12).unwrap_or(hash),
            match replaced {
                Some(r) => format!("run {r}'s version"),
                None => "another version".to_string(),
            }
        ),
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
        Entry::Usage {
            cpu_user_us,
            cpu_sys_us,
            max_rss_kib,
            source,
            printed,
            dropped,
            ..
        } => usage_line(
            *cpu_user_us,
            *cpu_sys_us,
            *max_rss_kib,
            source,
            *printed,
            *dropped,
        ),
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

/// `used 1.20s CPU (user 1.10s, system 0.10s), peak memory 212.4 MiB; printed 1.2 GiB, of which
/// the log keeps 16.0 MiB (the start and the end; 1.2 GiB dropped from the middle)`.
pub fn usage_line(
    user_us: u64,
    sys_us: u64,
    max_rss_kib: Option<u64>,
    source: &str,
    printed: u64,
    dropped: u64,
) -> String {
    let secs = |us: u64| format!("{:.2}s", us as f64 / 1e6);
    let rss = match (max_rss_kib, source) {
        (Some(k), "sampled") => format!("peak memory at least {}", console::bytes(k * 1024)),
        (Some(k), "bound") => format!("peak memory at most {}", console::bytes(k * 1024)),
        (Some(k), _) => format!("peak memory {}", console::bytes(k * 1024)),
        (None, _) => "peak memory unknown".to_string(),
    };
    let mut s = format!(
        "used {} CPU (user {}, system {}), {rss}",
        secs(user_us + sys_us),
        secs(user_us),
        secs(sys_us)
    );
    if printed == 0 {
        s.push_str("; printed nothing");
    } else if dropped == 0 {
        s.push_str(&format!("; printed {}", console::bytes(printed)));
    } else {
        s.push_str(&format!(
            "; printed {}, of which the log keeps {} (the start and the end; {} dropped from the middle)",
            console::bytes(printed),
            console::bytes(printed - dropped),
            console::bytes(dropped)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
