//! Alerts through the durable outbox, against a real HTTP server on 127.0.0.1: one failure gives
//! exactly one POST and one command; a receiver that is down gets it once, from the next wf; a wf
//! killed between journaling an alert and delivering it delivers it once after the restart; the
//! webhook URL (a secret) never shows.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

/// A tiny HTTP receiver: records each POST body and answers with `status`.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s, st) = (bodies.clone(), status.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !st.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream);
                let mut len = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let code = s.load(Ordering::SeqCst);
                if code == 200 {
                    b.lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&body).into_owned());
                }
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/SECRET-TOKEN-123"),
            bodies,
            status,
            stop,
        }
    }

    fn posts(&self) -> Vec<String> {
        self.bodies.lock().expect("lock").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct T {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    hook: String,
}

impl T {
    fn new(hook: &str) -> T {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().canonicalize().expect("canonical");
        std::fs::write(
            dir.join("wf.toml"),
            r#"
[workflow]
name = "alerting"

[notify]
webhook = "env:WF_TEST_WEBHOOK"
command = 'echo "$WF_ALERT_TASK" "$WF_ALERT_RUN" "$WF_ALERT_OWNER" >> alerts.txt'

[task.ok]
run = "true"

[task.bad]
run = "echo 'it broke: db down' >&2; exit 3"
owner = "data_eng"
retries = 1
"#,
        )
        .expect("write wf.toml");
        T {
            _tmp: tmp,
            dir,
            hook: hook.to_string(),
        }
    }

    fn wf(&self, args: &[&str], crash: Option<&str>) -> Output {
        let mut c = common::command(&self.dir, &self.dir);
        c.args(["-C", &self.dir.to_string_lossy()])
            .args(args)
            .env("WF_TEST_WEBHOOK", &self.hook);
        if let Some(p) = crash {
            c.env("WF_CRASH_POINT", p);
        }
        let out = c.output().expect("run wf");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("panicked"), "{all}");
        assert!(
            !all.contains("SECRET-TOKEN"),
            "the webhook URL was printed: {all}"
        );
        out
    }

    fn journal(&self) -> Vec<Value> {
        let out = self.wf(&["--json", "history", "1"], None);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }

    fn commands(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("alerts.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn no_secret_on_disk(&self) {
        for rel in [".wf/logs/wf.jsonl", ".wf/live.jsonl"] {
            let text = std::fs::read_to_string(self.dir.join(rel)).unwrap_or_default();
            assert!(
                !text.contains("SECRET-TOKEN"),
                "the webhook URL is in {rel}"
            );
        }
        let hist = self.wf(&["--json", "history", "1"], None);
        assert!(!String::from_utf8_lossy(&hist.stdout).contains("SECRET-TOKEN"));
    }
}

#[test]
fn one_failure_gives_exactly_one_post_and_one_command() {
    let rx = Receiver::start();
    let t = T::new(&rx.url);
    assert_eq!(t.wf(&["run"], None).status.code(), Some(1));
    let posts = rx.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let body: Value = serde_json::from_str(&posts[0]).expect("JSON payload");
    assert!(body["text"].as_str().is_some_and(|s| s.contains("bad")));
    assert_eq!(body["wf"]["task"], "bad");
    assert_eq!(body["wf"]["run"], 1);
    assert_eq!(body["wf"]["owner"], "data_eng");
    assert_eq!(body["wf"]["attempt"], 2);
    assert_eq!(body["wf"]["exit_code"], 3);
    assert!(body["wf"]["log_tail"].to_string().contains("db down"));
    assert!(body["wf"]["resume"]
        .as_str()
        .is_some_and(|r| r.contains("resume 1")));
    assert_eq!(t.commands(), ["bad 1 data_eng"]);
    let alerts: Vec<Value> = t
        .journal()
        .into_iter()
        .filter(|e| e["kind"] == "alert")
        .collect();
    assert_eq!(alerts.iter().filter(|e| e["event"] == "raised").count(), 1);
    assert_eq!(
        alerts.iter().filter(|e| e["event"] == "delivered").count(),
        2
    );
    // Nothing is sent again by later invocations.
    t.wf(&["notify"], None);
    assert_eq!(rx.posts().len(), 1);
    assert_eq!(t.commands().len(), 1);
    t.no_secret_on_disk();
}

#[test]
fn a_receiver_that_was_down_gets_the_alert_once_from_the_next_wf() {
    let rx = Receiver::start();
    rx.status.store(500, Ordering::SeqCst);
    let t = T::new(&rx.url);
    let started = Instant::now();
    assert_eq!(t.wf(&["run"], None).status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a dead receiver held the run"
    );
    assert!(rx.posts().is_empty());
    assert!(t
        .journal()
        .iter()
        .any(|e| e["event"] == "failed" && e["channel"] == "webhook"));
    rx.status.store(200, Ordering::SeqCst);
    t.wf(&["notify"], None);
    assert_eq!(rx.posts().len(), 1);
    t.wf(&["notify"], None);
    assert_eq!(rx.posts().len(), 1, "delivered twice");
    assert_eq!(
        t.commands().len(),
        1,
        "the command channel was not held up by the webhook"
    );
}

#[test]
fn an_alert_journaled_before_a_crash_is_delivered_once_after_it() {
    let rx = Receiver::start();
    let t = T::new(&rx.url);
    // Killed after the failure and its alert are journaled, before anything is sent.
    let out = t.wf(&["run"], Some("before-deliver"));
    assert!(!out.status.success());
    assert!(rx.posts().is_empty());
    assert!(t.commands().is_empty());
    // The next wf that writes the state delivers it.
    t.wf(&["notify"], None);
    assert_eq!(rx.posts().len(), 1);
    assert_eq!(t.commands().len(), 1);
    t.wf(&["notify"], None);
    assert_eq!(rx.posts().len(), 1);
}

#[test]
fn notify_test_sends_through_each_channel() {
    let rx = Receiver::start();
    let t = T::new(&rx.url);
    let out = t.wf(&["notify", "--test"], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rx.posts().len(), 1);
    assert_eq!(
        t.commands().iter().map(|c| c.trim()).collect::<Vec<_>>(),
        ["test 0"]
    );
}

#[test]
fn the_engine_log_is_json_lines() {
    let rx = Receiver::start();
    let t = T::new(&rx.url);
    t.wf(&["run"], None);
    let log = std::fs::read_to_string(t.dir.join(".wf/logs/wf.jsonl")).expect("wf.jsonl");
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    for want in ["started", "done", "failed", "alert", "run ended"] {
        assert!(
            events.iter().any(|e| e["event"] == want),
            "no `{want}` event: {log}"
        );
    }
    let logs = t.wf(&["logs", "1", "bad"], None);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("db down"));
}

#[test]
fn a_promised_metric_that_is_missing_is_a_warning_in_history() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("wf.toml"),
        "[task.m]\nrun = 'echo rows=3 >> \"$WF_METRICS\"'\nlog = [\"rows\", \"score\"]\n",
    )
    .expect("write");
    let out = common::command(tmp.path(), tmp.path())
        .args(["-C", &tmp.path().to_string_lossy(), "run"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let hist = common::command(tmp.path(), tmp.path())
        .args([
            "-C",
            &tmp.path().to_string_lossy(),
            "--json",
            "history",
            "1",
        ])
        .output()
        .expect("history");
    let entries: Vec<Value> = String::from_utf8_lossy(&hist.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(entries
        .iter()
        .any(|e| e["kind"] == "metric" && e["key"] == "rows" && e["value"] == "3"));
    let w = entries
        .iter()
        .find(|e| e["kind"] == "warning")
        .expect("a warning entry");
    assert!(w["message"]
        .as_str()
        .is_some_and(|m| m.contains("score") && !m.contains("rows")));
}
