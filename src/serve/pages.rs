//! The dashboard's own pages as askama templates (`templates/`, HTML auto-escaped: every string
//! from the journal — task names, notes, owners, metric names — is escaped by the template), and
//! the SVG charts of the trends page, whose coordinates are computed here from numbers only.

use askama::Template;

#[derive(Template)]
#[template(path = "runs.html")]
pub struct RunsPage<'a> {
    pub workflow: &'a str,
    pub user: &'a str,
    pub signed_in: bool,
    pub states: &'a [&'a str],
    pub filter: Filter,
    pub error: Option<String>,
    pub rows: Vec<RunRow>,
    /// (run, task) pairs waiting at a gate among the rows shown.
    pub waiting: Vec<(u64, String)>,
    pub next: Option<String>,
}

/// The filters as the reviewer typed them (shown back in the form).
#[derive(Default, Clone)]
pub struct Filter {
    pub state: Option<String>,
    pub task: Option<String>,
    pub owner: Option<String>,
    pub param: Option<String>,
    pub since: Option<String>,
}

pub struct RunRow {
    pub id: u64,
    pub state: String,
    pub started: String,
    pub took: String,
    pub user: String,
    pub host: String,
    pub approved_by: String,
    pub failed: Vec<String>,
    pub waiting: Vec<String>,
    pub tasks: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "task.html")]
pub struct TaskPage<'a> {
    pub workflow: &'a str,
    pub user: &'a str,
    pub signed_in: bool,
    pub task: &'a str,
    pub keys: Vec<String>,
    pub charts: Vec<Chart>,
    /// Oldest first.
    pub points: Vec<Point>,
}

pub struct Point {
    pub run: u64,
    pub state: String,
    pub took: String,
    /// One per key of the page, "" where the run did not report it.
    pub values: Vec<String>,
}

pub struct Chart {
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub polyline: String,
    pub dots: Vec<Dot>,
    pub last: String,
    pub min: String,
    pub max: String,
}

pub struct Dot {
    pub x: String,
    pub y: String,
    pub run: u64,
    pub label: String,
}

const W: f64 = 640.0;
const H: f64 = 140.0;
const PAD: f64 = 10.0;

/// A line chart of `values` (oldest first: run, value as written); values that are not finite
/// numbers are left out of the line. `None` when no value is a number.
pub fn chart(key: &str, values: &[(u64, String)]) -> Option<Chart> {
    let nums: Vec<(usize, u64, f64, &str)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, (run, v))| {
            let x: f64 = v.trim().parse().ok()?;
            x.is_finite().then_some((i, *run, x, v.as_str()))
        })
        .collect();
    if nums.is_empty() {
        return None;
    }
    let (lo, hi) = nums
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.2), h.max(p.2))
        });
    let n = values.len().max(2) - 1;
    let dots: Vec<Dot> = nums
        .iter()
        .map(|(i, run, v, label)| {
            let x = PAD + (W - 2.0 * PAD) * (*i as f64) / (n as f64);
            let y = if hi > lo {
                H - PAD - (H - 2.0 * PAD) * (v - lo) / (hi - lo)
            } else {
                H / 2.0
            };
            Dot {
                x: format!("{x:.1}"),
                y: format!("{y:.1}"),
                run: *run,
                label: label.to_string(),
            }
        })
        .collect();
    let polyline = dots
        .iter()
        .map(|d| format!("{},{}", d.x, d.y))
        .collect::<Vec<_>>()
        .join(" ");
    Some(Chart {
        key: key.to_string(),
        width: W as u32,
        height: H as u32,
        polyline,
        last: nums.last().map(|p| p.3.to_string()).unwrap_or_default(),
        min: short(lo),
        max: short(hi),
        dots,
    })
}

fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[derive(Template)]
#[template(path = "run_bar.html")]
pub struct RunBar<'a> {
    pub run: u64,
    pub state: &'a str,
    pub live: bool,
    pub version: String,
    pub message: Option<&'static str>,
    pub gates: Vec<String>,
    /// Each task with its attempts (1..=n).
    pub tasks: Vec<(String, Vec<u32>)>,
    pub signed_in: bool,
    pub user: &'a str,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub status: u16,
    pub message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_numbers_only() {
        let v = vec![
            (1, "10".to_string()),
            (2, "n/a".to_string()),
            (3, "30".to_string()),
        ];
        let c = chart("rows", &v).expect("a chart");
        assert_eq!(c.dots.len(), 2);
        assert_eq!(c.polyline, "10.0,130.0 630.0,10.0");
        assert_eq!(
            (c.min.as_str(), c.max.as_str(), c.last.as_str()),
            ("10", "30", "30")
        );
        assert!(chart("x", &[(1, "NaN".into()), (2, "inf".into())]).is_none());
        let flat = chart("x", &[(1, "5".into())]).expect("one point");
        assert_eq!(flat.dots[0].y, "70.0");
    }

    #[test]
    fn escapes_what_the_journal_says() {
        let page = ErrorPage {
            status: 400,
            message: "<script>alert(1)</script>",
        }
        .render()
        .expect("renders");
        assert!(!page.contains("<script>"));
        assert!(page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"));
    }
}
