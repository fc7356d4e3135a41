//! `wf serve` end to end: a real server on 127.0.0.1 (a free port) over a real state — the
//! homework example waiting at its report gate — answering pages and the API, escaping what the
//! journal says, refusing approvals without the token (journal unchanged), approving with it (the
//! report runs, the note is journaled), and a SIGKILL of the server during an approved run
//! leaving a run that `wf resume` finishes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct T {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl T {
    /// A copy of examples/homework with `extra` appended to its wf.toml.
    fn homework(patch: impl Fn(String) -> String) -> T {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().canonicalize().expect("canonical");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homework");
        let toml = std::fs::read_to_string(src.join("wf.toml")).expect("example");
        std::fs::write(dir.join("wf.toml"), patch(toml)).expect("write wf.toml");
        for sub in ["tasks", "data"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        for e in std::fs::read_dir(src.join("tasks"))
            .expect("tasks")
            .flatten()
        {
            std::fs::copy(e.path(), dir.join("tasks").join(e.file_name())).expect("copy task");
        }
        std::fs::copy(src.join("data/raw.csv"), dir.join("data/raw.csv")).expect("copy data");
        T { _tmp: tmp, dir }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = common::command(&self.dir, &self.dir);
        c.args(["-C", &self.dir.to_string_lossy()])
            .args(args)
            .env("WF_USER", "ana")
            .env_remove("WF_SERVE_TOKEN")
            .env_remove("WF_CRASH_POINT")
            .stdin(Stdio::null());
        c
    }

    fn wf(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("run wf");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        out
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.wf(&a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }

    fn task_state(&self, task: &str) -> String {
        self.json(&["status"])
            .iter()
            .find(|r| r["task"] == task)
            .map(|r| r["state"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    /// Start `wf serve` on a free port; returns it once it printed its address.
    fn serve(&self, env_token: Option<&str>) -> Server {
        let mut c = self.cmd(&["serve", "--addr", "127.0.0.1:0"]);
        if let Some(t) = env_token {
            c.env("WF_SERVE_TOKEN", t);
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wf serve");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let (mut port, mut token) = (0u16, env_token.map(str::to_string));
        let start = Instant::now();
        while (port == 0 || token.is_none()) && start.elapsed() < Duration::from_secs(30) {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(i) = line.find("http://127.0.0.1:") {
                let rest = &line[i + "http://127.0.0.1:".len()..];
                port = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
            }
            if let Some(i) = line.find("?token=") {
                let rest = &line[i + "?token=".len()..];
                token = Some(
                    rest.split(|c: char| !c.is_ascii_hexdigit())
                        .next()
                        .unwrap_or("")
                        .to_string(),
                );
            }
        }
        assert!(port != 0, "wf serve printed no address");
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Server {
            child,
            port,
            token: token.expect("a token"),
        }
    }
}

struct Server {
    child: Child,
    port: u16,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Send raw bytes to 127.0.0.1:`port`, read the whole response (the connection closes).
fn raw(port: u16, bytes: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(bytes).expect("send");
    // Read to the end of the body (Content-Length), or of the connection.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|n| buf.len() >= end + 4 + n) {
                break;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

impl Server {
    fn raw(&self, bytes: &[u8]) -> Resp {
        raw(self.port, bytes)
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.raw(req.as_bytes())
    }

    fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], "")
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

fn waiting_homework() -> T {
    let t = T::homework(|s| s);
    let out = t.wf(&["run"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.task_state("report"), "waiting");
    t
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pages_and_api_answer_with_the_fields_of_history() {
    let t = waiting_homework();
    let s = t.serve(None);

    let list = s.get("/api/runs");
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.header("content-type"), Some("application/json"));
    let rows = list.json();
    assert_eq!(
        rows,
        Value::Array(t.json(&["history"])),
        "same rows as wf --json history"
    );
    assert_eq!(rows[0]["state"], "waiting");

    let one = s.get("/api/runs/1");
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), Value::Array(t.json(&["history", "1"])));

    let filtered = s.get("/api/runs?state=done&limit=5").json();
    assert_eq!(filtered, Value::Array(Vec::new()));
    assert_eq!(
        s.get("/api/runs?since=2000-01-01")
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        s.get("/api/runs?since=7d&owner=analyst&task=report")
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        s.get("/api/runs?since=2999-01-01").json(),
        Value::Array(Vec::new())
    );
    assert_eq!(s.get("/api/runs?before=1").json(), Value::Array(Vec::new()));
    assert_eq!(
        s.get("/api/runs?before=2").json().as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        s.get("/api/runs?owner=nobody").json(),
        Value::Array(Vec::new())
    );
    assert_eq!(s.get("/api/runs?since=soon").status, 400);
    assert_eq!(s.get("/api/runs?param=nonsense").status, 400);
    assert_eq!(s.get("/api/runs?limit=0").status, 400);
    assert_eq!(s.get("/api/runs?state=%3Cx%3E").status, 400);

    let page = s.get("/");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(page.body.contains("Waiting for approval"), "{}", page.body);
    assert!(page.body.contains("href=\"/runs/1\""));
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "nothing from elsewhere"
    );

    let run = s.get("/runs/1");
    assert_eq!(run.status, 200);
    assert!(run.body.contains("/runs/1/tasks/ingest/attempts/1/log"));
    assert!(run.body.contains("<h2") && run.body.contains("report"));
    assert!(
        run.body.contains("id=\"wf-live\""),
        "a waiting run is followed live"
    );
    assert!(
        !run.body.contains("approve</button>"),
        "no approve button without the token"
    );

    let log = s.get("/runs/1/tasks/ingest/attempts/1/log");
    assert_eq!(log.status, 200);
    assert_eq!(
        log.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(log.header("x-content-type-options"), Some("nosniff"));
    let cli = t.wf(&["logs", "1", "ingest", "--raw"]);
    assert_eq!(log.body.as_bytes(), &cli.stdout[..]);

    let trend = s.get("/tasks/clean");
    assert_eq!(trend.status, 200);
    assert!(
        trend.body.contains("<svg") && trend.body.contains("null_pct"),
        "{}",
        trend.body
    );

    let version = s.get("/api/runs/1/version").json();
    assert!(version["version"].as_str().is_some_and(|v| v.len() == 16));

    assert_eq!(s.get("/static/wf.js").status, 200);
    assert_eq!(s.get("/nope").status, 404);
    let api404 = s.get("/api/nope");
    assert_eq!(api404.status, 404);
    assert!(api404.json()["error"].is_string());
    assert_eq!(s.get("/runs/9").status, 404);
    assert_eq!(s.get("/api/runs/9").status, 404);
    assert_eq!(s.request("DELETE", "/", &[], "").status, 405);
    assert_eq!(s.get("/api/runs/1/tasks/report/approve").status, 405);
}

#[test]
fn hostile_requests_are_refused_and_change_nothing() {
    let t = waiting_homework();
    let s = t.serve(None);
    let before = t.json(&["history", "1"]);
    for path in [
        "/runs/1/tasks/..%2F..%2F..%2Fetc%2Fpasswd/attempts/1/log",
        "/runs/1/tasks/../attempts/1/log",
        "/runs/1/tasks/ingest/attempts/0/log",
        "/runs/1/tasks/ingest/attempts/01/log",
        "/runs/1/tasks/ingest/attempts/9/log",
        "/runs/1/tasks/nosuch/attempts/1/log",
        "/runs/-1",
        "/runs/1%00",
        "/tasks/%3Cscript%3E",
    ] {
        let r = s.get(path);
        assert!(matches!(r.status, 400 | 404), "{path}: {}", r.status);
        assert!(!r.body.contains("root:"), "{path}");
        assert!(!r.body.contains("<script"), "{path}");
    }
    // Another name for 127.0.0.1 (DNS rebinding) is refused.
    let rebound = s.raw(b"GET /api/runs HTTP/1.1\r\nHost: evil.example:80\r\n\r\n");
    assert_eq!(rebound.status, 421);
    // Malformed and oversized requests.
    assert_eq!(s.raw(b"GARBAGE\r\n\r\n").status, 400);
    assert_eq!(s.raw(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").status, 505);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX: {}\r\n\r\n",
        s.port,
        "a".repeat(20_000)
    );
    assert_eq!(s.raw(huge.as_bytes()).status, 431);
    let big = "x".repeat(70_000);
    let auth = s.bearer();
    let r = s.request(
        "POST",
        "/api/runs/1/tasks/report/approve",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &big,
    );
    assert_eq!(r.status, 413);
    let chunked = format!(
        "POST /api/runs/1/tasks/report/approve HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        s.port
    );
    assert_eq!(s.raw(chunked.as_bytes()).status, 411);

    // Approvals without the token, with a wrong one, or with the cookie from another site.
    let body = r#"{"note":"ok"}"#;
    let json = ("Content-Type", "application/json");
    assert_eq!(
        s.request("POST", "/api/runs/1/tasks/report/approve", &[json], body)
            .status,
        401
    );
    let wrong = format!("Bearer {}x", s.token);
    assert_eq!(
        s.request(
            "POST",
            "/api/runs/1/tasks/report/approve",
            &[json, ("Authorization", &wrong)],
            body
        )
        .status,
        401
    );
    let cookie = format!("wf_token={}", s.token);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    for site in [
        vec![],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Origin", "http://evil.example")],
    ] {
        let mut h = vec![form, ("Cookie", cookie.as_str())];
        h.extend(site);
        let r = s.request("POST", "/runs/1/tasks/report/approve", &h, "note=ok");
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let r = s.request("POST", "/runs/1/tasks/report/reject", &[form], "note=no");
    assert_eq!(r.status, 401);
    // The printed address never redirects to another site.
    let r = s.get(&format!("//evil.example/?token={}", s.token));
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let r = s.get(&format!("/%2F%2Fevil.example?token={}", s.token));
    assert_eq!(r.header("location"), Some("/"));
    // A token in the address that is not the server's sets nothing.
    let r = s.get("/?token=0000");
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    assert_eq!(
        t.json(&["history", "1"]),
        before,
        "the journal is unchanged"
    );
    assert_eq!(t.task_state("report"), "waiting");
}

#[test]
fn approval_with_the_token_runs_the_report_and_journals_the_note() {
    let t = waiting_homework();
    let s = t.serve(None);
    let auth = s.bearer();
    let note = r#"<img src=x onerror=alert(1)> looks "fine" & done"#;
    let body = serde_json::json!({"note": note, "by": "<b>rev</b>"}).to_string();
    let r = s.request(
        "POST",
        "/api/runs/1/tasks/report/approve",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["decision"], "approved");
    wait_for("the report to finish", || t.task_state("report") == "done");
    let entries = t.json(&["history", "1"]);
    let approval = entries
        .iter()
        .find(|e| e["kind"] == "approval")
        .expect("an approval entry");
    assert_eq!(approval["user"], "<b>rev</b>");
    assert_eq!(approval["note"], format!("{note} (via web)"));
    assert!(entries
        .iter()
        .any(|e| e["kind"] == "run" && e["event"] == "resumed"));
    wait_for("the run to end", || {
        t.json(&["history"])[0]["state"] == "done"
    });
    // Approving again: the task is no longer waiting.
    let again = s.request(
        "POST",
        "/api/runs/1/tasks/report/approve",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        "{}",
    );
    assert_eq!(again.status, 409, "{}", again.body);
    // Everything the journal says is escaped on every page.
    for path in ["/", "/runs/1"] {
        let p = s.get(path);
        assert_eq!(p.status, 200);
        assert!(!p.body.contains("<img src=x"), "{path}: unescaped note");
        assert!(!p.body.contains("<b>rev</b>"), "{path}: unescaped name");
    }
    assert!(
        s.get("/").body.contains("&#60;b&#62;rev&#60;/b&#62;")
            || s.get("/").body.contains("&lt;b&gt;rev")
    );
}

#[test]
fn the_page_approves_with_the_cookie_from_the_printed_address() {
    let t = waiting_homework();
    let s = t.serve(Some("a-token-chosen-by-the-team-0123456789"));
    let r = s.get(&format!("/runs/1?token={}", s.token));
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/runs/1"));
    let cookie = r.header("set-cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("pair").to_string();
    let page = s.request("GET", "/runs/1", &[("Cookie", &pair)], "");
    assert!(page.body.contains("approve</button>"), "{}", page.body);
    let r = s.request(
        "POST",
        "/runs/1/tasks/report/reject",
        &[
            ("Cookie", &pair),
            ("Sec-Fetch-Site", "same-origin"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "note=numbers+%3Cb%3Eoff%3C%2Fb%3E&by=bo",
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/runs/1?done=rejected"));
    assert_eq!(t.task_state("report"), "failed");
    let e = t.json(&["history", "1"]);
    let rej = e
        .iter()
        .find(|e| e["kind"] == "approval")
        .expect("rejection");
    assert_eq!(rej["decision"], "rejected");
    assert_eq!(rej["user"], "bo");
    assert_eq!(rej["note"], "numbers <b>off</b> (via web)");
}

#[test]
fn hostile_metric_values_are_escaped_on_the_trends_page() {
    let t = T::homework(|s| {
        s.replace(
            "run = \"sh tasks/clean.sh\"",
            "run = \"sh tasks/clean.sh && echo 'null_pct=<script>alert(1)</script>' >> $WF_METRICS\"",
        )
    });
    assert_eq!(t.wf(&["run"]).status.code(), Some(0));
    let s = t.serve(None);
    for path in ["/tasks/clean", "/runs/1"] {
        let p = s.get(path);
        assert_eq!(p.status, 200, "{path}");
        assert!(
            !p.body.contains("<script>alert"),
            "{path}: unescaped metric"
        );
    }
}

#[test]
fn a_public_address_needs_a_chosen_token() {
    let t = waiting_homework();
    let out = t.wf(&["serve", "--addr", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WF_SERVE_TOKEN"));
    let out = t
        .cmd(&["serve", "--addr", "127.0.0.1:0"])
        .env("WF_SERVE_TOKEN", "short")
        .output()
        .expect("wf");
    assert_eq!(out.status.code(), Some(2));
    let out = t.wf(&["serve", "--addr", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(t.wf(&["--json", "serve"]).status.code(), Some(2));
}

#[test]
fn sigkill_of_the_server_during_an_approved_run_leaves_a_resumable_run() {
    // The report blocks on its first attempt (long enough to kill the server under it).
    let t = T::homework(|s| {
        s.replace(
            "run = \"sh tasks/report.sh\"",
            "run = \"test -f marker || { touch marker; sleep 30; }; sh tasks/report.sh\"",
        )
    });
    assert_eq!(t.wf(&["run"]).status.code(), Some(0));
    let mut s = t.serve(None);
    let auth = s.bearer();
    let r = s.request(
        "POST",
        "/api/runs/1/tasks/report/approve",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"note":"go"}"#,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    wait_for("the report to start", || t.dir.join("marker").exists());
    s.child.kill().expect("SIGKILL wf serve");
    let _ = s.child.wait();
    let out = t.wf(&["resume"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.task_state("report"), "done");
    let e = t.json(&["history", "1"]);
    assert!(e
        .iter()
        .any(|e| e["kind"] == "approval" && e["note"] == "go (via web)"));
}

// ---------------------------------------------------------------------------------------------
// A real browser: headless Chromium through chromedriver (the W3C WebDriver protocol over plain
// HTTP). Skipped, saying why, where Debian's `chromium` and `chromium-driver` are not installed
// (`.ci/browser-tools.sh` installs them).
// ---------------------------------------------------------------------------------------------

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = raw(
            self.port,
            format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                self.session
            )
            .as_bytes(),
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn webdriver(port: u16, method: &str, path: &str, body: &Value) -> Value {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw(port, req.as_bytes());
    let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    assert!(
        r.status == 200,
        "WebDriver {method} {path}: {} {}",
        r.status,
        r.body
    );
    v["value"].clone()
}

impl Driver {
    fn start() -> Option<Driver> {
        let chromium = Path::new("/usr/bin/chromium");
        let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists());
        let (true, Some(driver)) = (chromium.exists(), driver) else {
            eprintln!("skipped: headless Chromium needs /usr/bin/chromium and chromedriver (apt-get install chromium chromium-driver, or bash .ci/browser-tools.sh)");
            return None;
        };
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut d = Driver {
            child,
            port,
            session: String::new(),
        };
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let v = webdriver(port, "POST", "/session", &caps);
        d.session = v["sessionId"].as_str().expect("a session").to_string();
        Some(d)
    }

    fn cmd(&self, method: &str, what: &str, body: Value) -> Value {
        webdriver(
            self.port,
            method,
            &format!("/session/{}{what}", self.session),
            &body,
        )
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", serde_json::json!({ "url": url }));
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let body = serde_json::json!({"using": "css selector", "value": css}).to_string();
            let req = format!(
                "POST /session/{}/element HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.session,
                body.len()
            );
            let r = raw(self.port, req.as_bytes());
            if r.status == 200 {
                let v: Value = serde_json::from_str(&r.body).expect("json");
                if let Some(id) = v["value"].as_object().and_then(|o| o.values().next()) {
                    return id.as_str().unwrap_or_default().to_string();
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no element {css}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{id}/click"),
            serde_json::json!({}),
        );
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            serde_json::json!({ "text": text }),
        );
    }

    /// The page's text, read in one script call: the live update may swap the body at any
    /// moment, so an element id found first could be stale by the time its text is asked for.
    fn text(&self) -> String {
        self.cmd(
            "POST",
            "/execute/sync",
            serde_json::json!({"script": "return document.body ? document.body.innerText : '';", "args": []}),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The browser console's errors (CSP violations, script errors, failed loads).
    fn console_errors(&self) -> Vec<String> {
        let v = self.cmd("POST", "/se/log", serde_json::json!({"type": "browser"}));
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

#[test]
fn headless_chromium_reviews_and_approves_a_run() {
    let Some(d) = Driver::start() else {
        return;
    };
    let t = waiting_homework();
    let s = t.serve(Some("chromium-test-token-0123456789abcdef"));
    let base = format!("http://127.0.0.1:{}", s.port);
    d.go(&format!("{base}/"));
    assert!(d.text().contains("Waiting for approval"));
    d.click("table a[href='/runs/1']");
    let start = Instant::now();
    while !d.url().ends_with("/runs/1") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "did not open the run"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.text().contains("report"));
    d.click("a[href='/runs/1/tasks/ingest/attempts/1/log']");
    let log = t.wf(&["logs", "1", "ingest"]);
    let first = String::from_utf8_lossy(&log.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let start = Instant::now();
    while !d.text().contains(first.trim()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the log did not show"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The printed address with the token: the cookie is set, the page shows the buttons.
    d.go(&format!("{base}/runs/1?token={}", s.token));
    d.type_into("input[name='note']", "checked in chromium");
    d.click("form.wf-gate-form button[type='submit']");
    wait_for("the report to finish", || t.task_state("report") == "done");
    // The page follows the run live, without a reload: it ends showing the run done.
    let start = Instant::now();
    while !d.text().contains("run 1 done") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the page did not update: {}",
            d.text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let e = t.json(&["history", "1"]);
    assert!(e
        .iter()
        .any(|e| e["kind"] == "approval" && e["note"] == "checked in chromium (via web)"));
    let errors = d.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[test]
fn ctrl_c_stops_the_server() {
    let t = waiting_homework();
    let mut s = t.serve(None);
    assert_eq!(s.get("/api/runs").status, 200);
    let pid = s.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "wf serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        TcpStream::connect(("127.0.0.1", s.port)).is_err(),
        "still listening"
    );
    assert_eq!(t.task_state("report"), "waiting", "nothing changed");
}
