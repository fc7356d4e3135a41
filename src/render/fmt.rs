//! One formatter for times, durations and sizes, used by the terminal, JSON, the HTML page and
//! alerts alike, so that the same quantity reads the same everywhere.

use chrono::{DateTime, Local, Utc};
use std::time::Duration;

/// A duration for a live terminal line or a report: `45ms`, `2.31s`, `1m 04s`, `3h 02m`,
/// `2d 04h`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        coarse(s, true)
    }
}

/// A duration in milliseconds, compact, for a page or a table where columns of them are compared:
/// `850ms`, `3.2s`, `42s`, `4m 05s`, `2h 03m`, `3d 4h`. Negative spans read as `0ms`.
pub fn span_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 10_000 {
        return format!("{}.{}s", ms / 1000, (ms % 1000) / 100);
    }
    let s = ms / 1000;
    if s < 60 {
        return format!("{s}s");
    }
    coarse(s.unsigned_abs(), false)
}

/// Minutes and up, shared by both duration styles (`pad_days`: `2d 04h` rather than `2d 4h`).
fn coarse(s: u64, pad_days: bool) -> String {
    if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if pad_days {
        format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600)
    } else {
        format!("{}d {}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// Milliseconds from `a` to `b` (negative when `b` is earlier).
pub fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    (b - a).num_milliseconds()
}

/// A size for people: `512 B`, `1.5 KiB`, `48.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A retention or other policy duration: `7d`, `36h`, `90s`.
pub fn policy(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(86400) {
        format!("{}d", s / 86400)
    } else if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A time in the local zone, to the second: what a terminal shows.
pub fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A time as JSON shows it: RFC 3339 in UTC, to the millisecond.
pub fn rfc3339_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A time in UTC to the second (the page shows UTC only).
pub fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A time in UTC to the millisecond.
pub fn utc_ms(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Time of day in UTC (with the date when `multi_day`), to the millisecond.
pub fn clock(at: DateTime<Utc>, multi_day: bool) -> String {
    if multi_day {
        at.format("%m-%d %H:%M:%S%.3f").to_string()
    } else {
        at.format("%H:%M:%S%.3f").to_string()
    }
}

/// At most `max` characters, the last one an ellipsis when cut; and whether it was cut.
pub fn truncate(s: &str, max: usize) -> (String, bool) {
    let max = max.max(1);
    if s.chars().count() <= max {
        return (s.to_string(), false);
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    (t, true)
}

/// The first 12 characters of a hash, as the terminal shows it before `…`.
pub fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(Duration::from_millis(45)), "45ms");
        assert_eq!(duration(Duration::from_millis(2310)), "2.31s");
        assert_eq!(duration(Duration::from_secs(64)), "1m 04s");
        assert_eq!(duration(Duration::from_secs(3 * 3600 + 120)), "3h 02m");
        assert_eq!(
            duration(Duration::from_secs(2 * 86400 + 4 * 3600)),
            "2d 04h"
        );
        assert_eq!(policy(Duration::from_secs(90 * 86400)), "90d");
        assert_eq!(policy(Duration::from_secs(90)), "90s");
        assert_eq!(policy(Duration::from_secs(0)), "0s");
    }

    #[test]
    fn spans_and_sizes() {
        assert_eq!(span_ms(0), "0ms");
        assert_eq!(span_ms(-5), "0ms");
        assert_eq!(span_ms(i64::MIN), "0ms");
        assert_eq!(span_ms(999), "999ms");
        assert_eq!(span_ms(3_250), "3.2s");
        assert_eq!(span_ms(42_000), "42s");
        assert_eq!(span_ms(245_000), "4m 05s");
        assert_eq!(span_ms(7_380_000), "2h 03m");
        assert_eq!(span_ms(273_600_000), "3d 4h");
        assert!(!span_ms(i64::MAX).is_empty());
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(50_331_648), "48.0 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abcdef", 4), ("abc…".to_string(), true));
        assert_eq!(truncate("abc", 4), ("abc".to_string(), false));
        assert_eq!(truncate("héllo wörld", 6).0, "héllo…");
        assert_eq!(truncate("abc", 0).0, "…");
        assert_eq!(short_hash("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_hash("é"), "é");
    }
}
