//! Checks for single field values (paths, durations, names, cron, webhook), independent of file format.

use std::time::Duration;

/// Longest accepted duration: 100 years of 365.25 days.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// Example shown whenever a duration is rejected.
pub(crate) const DURATION_HELP: &str = "write durations like `90s`, `10m`, `7d` or `1h 30m`";

/// Why a duration string was rejected.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DurationError {
    TooLong,
    /// humantime's explanation.
    Invalid(String),
}

/// Parses a humantime duration of at most 100 years.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d > MAX_DURATION => Err(DurationError::TooLong),
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => Err(DurationError::TooLong),
        Err(e) => Err(DurationError::Invalid(e.to_string())),
    }
}

/// Normalises a workflow-relative path: strips `./`, collapses `//`, returns it with `/` separators.
///
/// The error is the end of a sentence that starts with the path, e.g. "is absolute; ...".
pub(crate) fn normalize_path(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() {
        return Err("is empty");
    }
    if raw.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if raw.contains('\\') {
        return Err(
            "contains `\\`; write paths with `/` separators, relative to the workflow directory",
        );
    }
    let b = raw.as_bytes();
    if raw.starts_with('/') || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':') {
        return Err("is absolute; paths must be relative to the workflow directory");
    }
    if raw.ends_with('/') {
        return Err("ends with `/`; name a file, or a directory without the trailing slash");
    }
    let parts: Vec<&str> = raw
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err("contains `..`; paths must stay inside the workflow directory");
    }
    match parts.first() {
        None => Err("names the workflow directory itself; name a file inside it"),
        Some(&".wf") => Err("is inside `.wf`, the directory where wf keeps its own state"),
        Some(&"~") => Err(
            "starts with `~`, which is not expanded; use a path relative to the workflow directory",
        ),
        Some(_) => Ok(parts.join("/")),
    }
}

/// Task names become file names: 1–64 of `[A-Za-z0-9_-]`, starting with a letter or digit.
pub(crate) fn valid_task_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Metric names: `[A-Za-z_][A-Za-z0-9_.]*`.
pub(crate) fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// A webhook is `env:NAME` or an http(s) URL.
pub(crate) fn check_webhook(s: &str) -> Result<(), &'static str> {
    if let Some(name) = s.strip_prefix("env:") {
        return if valid_env_name(name) {
            Ok(())
        } else {
            Err("names an invalid environment variable:")
        };
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Ok(())
        }
        Some(_) => Err("is not a valid URL:"),
        None => Err("must be `env:NAME` or an http(s) URL, found"),
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Light check of a 5-field cron expression (minute hour day-of-month month day-of-week).
pub(crate) fn check_cron(s: &str) -> Result<(), String> {
    const FIELDS: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("has {} fields", fields.len()));
    }
    for (i, (field, (what, lo, hi))) in fields.iter().zip(FIELDS).enumerate() {
        let names: &[&str] = match i {
            3 => &MONTHS,
            4 => &DAYS,
            _ => &[],
        };
        for item in field.split(',') {
            if !cron_item(item, names, lo, hi) {
                return Err(format!("has an invalid {what} field `{field}`"));
            }
        }
    }
    Ok(())
}

/// `*`, `V`, `V-V`, each optionally followed by `/STEP`.
fn cron_item(item: &str, names: &[&str], lo: u32, hi: u32) -> bool {
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (item, None),
    };
    if let Some(step) = step {
        if !matches!(step.parse::<u32>(), Ok(n) if n >= 1) {
            return false;
        }
    }
    if range == "*" {
        return true;
    }
    let value = |v: &str| -> Option<u32> {
        if let Ok(n) = v.parse::<u32>() {
            return (lo..=hi).contains(&n).then_some(n);
        }
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(v))
            .map(|p| p as u32 + lo)
    };
    match range.split_once('-') {
        Some((a, b)) => matches!((value(a), value(b)), (Some(a), Some(b)) if a <= b),
        None => value(range).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(normalize_path("./data//raw.csv"), Ok("data/raw.csv".into()));
        assert_eq!(normalize_path("a/./b"), Ok("a/b".into()));
        assert_eq!(normalize_path(".wfx/a"), Ok(".wfx/a".into()));
        for bad in [
            "",
            "/etc/passwd",
            "C:\\x",
            "c:/x",
            "\\\\srv\\share",
            "a/../b",
            "../x",
            "a/",
            ".wf/state",
            "./.wf",
            ".",
            "./",
            "a\u{0}b",
            "a\nb",
            "~/x",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert!(parse_duration("100y").is_ok());
        assert!(parse_duration("101y").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn names() {
        assert!(valid_task_name("ingest_2-b"));
        assert!(valid_task_name("9lives"));
        assert!(valid_task_name(&"a".repeat(64)));
        assert!(!valid_task_name(&"a".repeat(65)));
        for bad in ["", "-x", "_x", "a b", "a.b", "é"] {
            assert!(!valid_task_name(bad), "{bad:?}");
        }
        assert!(valid_env_name("_MODE2"));
        assert!(!valid_env_name("2X"));
        assert!(!valid_env_name("A-B"));
        assert!(valid_metric_name("rows.total_2"));
        assert!(!valid_metric_name(".rows"));
    }

    #[test]
    fn cron() {
        for ok in [
            "0 6 * * *",
            "*/15 0-23/2 1,15 JAN-mar mon-FRI",
            "59 23 31 12 7",
        ] {
            assert_eq!(check_cron(ok), Ok(()), "{ok}");
        }
        for bad in [
            "0 6 * *",
            "0 6 * * * *",
            "60 * * * *",
            "* * * FOO *",
            "*/0 * * * *",
            "5-1 * * * *",
            "@daily",
        ] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn webhooks() {
        assert!(check_webhook("env:WF_SLACK_WEBHOOK").is_ok());
        assert!(check_webhook("https://hooks.example.com/x").is_ok());
        assert!(check_webhook("env:").is_err());
        assert!(check_webhook("ftp://x").is_err());
        assert!(check_webhook("https://").is_err());
    }
}
