//! Hostile strings from every source the page shows: they stay text.

use super::*;

/// Strings a workflow file, a task, a note or a log can carry that would break out of HTML text,
/// an attribute, the style sheet, an SVG title or a template if printed as they are.
const HOSTILE: [&str; 10] = [
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "'><svg onload=alert(1)>",
    "</style><script>alert(1)</script>",
    "]]><![CDATA[",
    "{{ 7*7 }}{% if true %}x{% endif %}{# c #}",
    "a\u{0}b\u{1b}[31mc\u{7f}d\u{9b}e",
    "</title></text></svg><a href=\"javascript:alert(1)\">x</a>",
    "&lt;already&gt; &amp; &#60;",
    "--><!-- x",
];

/// The tags and attributes of a page: `(tag, [attribute names])` for every `<…>`.
fn tags(html: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let Some(end) = rest.find('>') else { break };
        let inner = &rest[..end];
        rest = &rest[end + 1..];
        let name: String = inner
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/' || inner.starts_with('/'))
            .take_while(|c| !c.is_whitespace())
            .collect();
        // Attribute names: what precedes each `=` outside quoted values.
        let mut attrs = Vec::new();
        let mut quoted = false;
        let mut word = String::new();
        for c in inner.chars().skip(name.len()) {
            match c {
                '"' => quoted = !quoted,
                '=' if !quoted => attrs.push(std::mem::take(&mut word)),
                c if !quoted && c.is_whitespace() => word.clear(),
                c if !quoted => word.push(c),
                _ => {}
            }
        }
        out.push((name.to_lowercase(), attrs));
    }
    out
}

#[test]
fn hostile_names_notes_metrics_and_logs_are_text_on_the_page() {
    for (n, evil) in HOSTILE.iter().enumerate() {
        let gate = format!("gate{evil}");
        let work = format!("work{evil}");
        let (snap, records) = by_hand(vec![
            (
                0,
                Entry::RunStarted {
                    workflow: format!("wf{evil}"),
                    file: format!("{evil}/wf.toml"),
                    user: format!("u{evil}"),
                    host: format!("h{evil}"),
                    pid: 1,
                    args: strings(&["wf", "run", evil]),
                    tasks: vec![
                        plan(&work, Some(&format!("own{evil}")), 1, false),
                        plan(&gate, Some(evil), 0, true),
                    ],
                },
            ),
            (
                0,
                Entry::RunOptions {
                    params: vec![(format!("k{evil}"), format!("v{evil}"))],
                    force: Some(vec![evil.to_string()]),
                    only: vec![],
                    from: Some(evil.to_string()),
                    jobs: Some(2),
                },
            ),
            (
                1,
                Entry::CacheDecision {
                    task: work.clone(),
                    attempt: 1,
                    hit: false,
                    why: format!("why{evil}"),
                    parts: vec![(format!("input:{evil}"), evil.to_string())],
                },
            ),
            (
                1,
                tr(
                    &work,
                    1,
                    TaskState::Pending,
                    TaskState::Running,
                    Reason::Started,
                ),
            ),
            (
                2,
                Entry::Spawned {
                    task: work.clone(),
                    attempt: 1,
                    pid: 42,
                    pid_start: None,
                },
            ),
            (
                30,
                Entry::Metric {
                    task: work.clone(),
                    attempt: 1,
                    key: format!("key{evil}"),
                    value: format!("value{evil}"),
                },
            ),
            (
                30,
                Entry::Warning {
                    task: work.clone(),
                    attempt: 1,
                    message: format!("warn{evil}"),
                },
            ),
            (
                30,
                Entry::Checkpoint {
                    task: work.clone(),
                    attempt: 1,
                    path: format!("out/{evil}.csv"),
                    hash: format!("hash{evil}"),
                    bytes: 10,
                    retention_secs: 60,
                    expires_at: Utc::now(),
                },
            ),
            (
                30,
                Entry::Outputs {
                    task: work.clone(),
                    attempt: 1,
                    files: vec![(format!("o{evil}"), format!("h{evil}"))],
                },
            ),
            (
                30,
                Entry::Transition {
                    task: work.clone(),
                    attempt: 1,
                    from: TaskState::Running,
                    to: TaskState::Failed,
                    reason: Reason::Exit(3),
                    exit_code: Some(3),
                },
            ),
            (
                30,
                Entry::Alert {
                    task: Some(work.clone()),
                    attempt: 1,
                    owner: Some(format!("own{evil}")),
                    error: format!("error{evil}"),
                    exit_code: Some(3),
                    log_tail: vec![format!("log line {evil}")],
                    channels: vec![format!("chan{evil}")],
                },
            ),
            (
                31,
                Entry::Delivery {
                    alert_seq: 110,
                    channel: format!("chan{evil}"),
                    outcome: format!("failed{evil}"),
                    detail: format!("detail{evil}"),
                },
            ),
            (
                32,
                tr(
                    &gate,
                    0,
                    TaskState::Pending,
                    TaskState::Waiting,
                    Reason::Gate,
                ),
            ),
            (
                40,
                Entry::Rejection {
                    task: gate.clone(),
                    user: format!("eve{evil}"),
                    note: format!("note{evil}"),
                },
            ),
            (
                40,
                tr(
                    &gate,
                    0,
                    TaskState::Waiting,
                    TaskState::Failed,
                    Reason::Rejected(evil.to_string()),
                ),
            ),
            (
                41,
                Entry::RunEnded {
                    state: RunState::Failed,
                    reason: format!("reason{evil}"),
                },
            ),
        ]);
        let html = run_page(&snap, &records, Utc::now());
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert_eq!(rows(&html), 2, "case {n}");
        // Only the template's own markup: every tag and attribute is one it writes.
        let allowed_tags = [
            "!doctype", "html", "/html", "head", "/head", "meta", "title", "/title", "style",
            "/style", "body", "/body", "svg", "/svg", "defs", "/defs", "pattern", "/pattern",
            "rect", "main", "/main", "header", "/header", "div", "/div", "h1", "/h1", "span",
            "/span", "dl", "/dl", "dt", "/dt", "dd", "/dd", "i", "/i", "p", "/p", "code", "/code",
            "section", "/section", "h2", "/h2", "g", "/g", "path", "line", "text", "/text",
            "circle", "a", "/a", "table", "/table", "thead", "/thead", "tbody", "/tbody", "tr",
            "/tr", "th", "/th", "td", "/td", "b", "/b", "br", "h3", "/h3", "details", "/details",
            "summary", "/summary", "footer", "/footer",
        ];
        let allowed_attrs = [
            "lang",
            "charset",
            "name",
            "content",
            "http-equiv",
            "width",
            "height",
            "style",
            "aria-hidden",
            "focusable",
            "id",
            "patternUnits",
            "patternTransform",
            "class",
            "viewBox",
            "role",
            "aria-label",
            "x",
            "y",
            "x1",
            "y1",
            "x2",
            "y2",
            "text-anchor",
            "data-task",
            "href",
            "cx",
            "cy",
            "r",
            "rx",
            "d",
            "title",
        ];
        for (tag, attrs) in tags(&html) {
            assert!(
                allowed_tags.contains(&tag.as_str()),
                "case {n}: tag <{tag}> from data"
            );
            for a in attrs {
                assert!(
                    allowed_attrs.contains(&a.as_str()),
                    "case {n}: attribute {a} on <{tag}>"
                );
            }
        }
        let lower = html.to_lowercase();
        assert_eq!(lower.matches("<style>").count(), 1, "case {n}");
        assert_eq!(lower.matches("</style>").count(), 1, "case {n}");
        assert_eq!(
            lower.matches("<title>").count(),
            lower.matches("</title>").count()
        );
        assert!(
            !lower.contains("<script") && !lower.contains("<img"),
            "case {n}"
        );
        assert!(!lower.contains("href=\"javascript"), "case {n}");
        assert!(!html.contains("]]>") && !html.contains("<!--") && !html.contains("<![CDATA["));
        for bad in ['\u{0}', '\u{1b}', '\u{7f}', '\u{9b}'] {
            assert!(!html.contains(bad), "case {n}: control character {bad:?}");
        }
        // Templates see data as data: what looks like a template tag is shown as written.
        if evil.starts_with("{{") {
            assert!(html.contains("{{ 7*7 }}{% if true %}x{% endif %}{# c #}"));
        }
        // Already-escaped text is escaped again, so it reads as typed.
        if evil.starts_with("&lt;") {
            assert!(html.contains("&amp;lt;already&amp;gt; &amp;amp; &amp;#60;"));
        }
        // Every string the records carry reaches the page (escaped), none is dropped.
        for what in [
            "wf", "u", "own", "key", "value", "note", "reason", "warn", "error", "failed", "chan",
            "detail", "why", "out/", "eve",
        ] {
            assert!(
                html.contains(&esc(&format!("{what}{evil}"))),
                "case {n}: {what}… is missing"
            );
        }
    }
}
