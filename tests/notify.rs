//! Alert delivery as a user meets it: no alert text ever runs as code whatever the command form
//! and quoting; a notify command that hangs or forks is bounded and leaves no process; a notify
//! command cannot make wf recurse; e-mail over real SMTP (a small SMTP server on 127.0.0.1 in this
//! file) exactly once, kept while the server is down and sent once when it is back; alerts routed
//! by owner; the SMTP password never shows.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::WF;
const PASSWORD: &str = "S3cret-Pa55word";

/// One mail the server accepted.
#[derive(Debug, Clone)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
    authed: bool,
}

impl Mail {
    fn header(&self, name: &str) -> String {
        let want = format!("{}:", name.to_ascii_lowercase());
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_ascii_lowercase().starts_with(&want))
            .map(|l| l[want.len()..].trim().to_string())
            .unwrap_or_default()
    }
}

/// A real (small) SMTP server: EHLO/HELO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA with dot-unstuffing,
/// RSET, NOOP, QUIT. No STARTTLS offered.
struct Smtp {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    stop: Arc<AtomicBool>,
}

fn session(stream: TcpStream, mails: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    write!(w, "220 localhost ESMTP wf-test\r\n")?;
    let (mut from, mut to, mut authed) = (String::new(), Vec::new(), false);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write!(
                w,
                "250-localhost\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10000000\r\n"
            )?;
        } else if upper.starts_with("HELO") {
            write!(w, "250 localhost\r\n")?;
        } else if upper.starts_with("AUTH PLAIN") {
            authed = true;
            write!(w, "235 2.7.0 ok\r\n")?;
        } else if upper.starts_with("AUTH LOGIN") {
            for _ in 0..2 {
                write!(w, "334 VXNlcm5hbWU6\r\n")?;
                line.clear();
                r.read_line(&mut line)?;
            }
            authed = true;
            write!(w, "235 2.7.0 ok\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..].trim().trim_matches(['<', '>']).to_string();
            write!(w, "250 2.1.0 ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(cmd[8..].trim().trim_matches(['<', '>']).to_string());
            write!(w, "250 2.1.5 ok\r\n")?;
        } else if upper == "DATA" {
            write!(w, "354 end with .\r\n")?;
            let mut data = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(l));
                data.push('\n');
            }
            mails.lock().expect("lock").push(Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
                authed,
            });
            write!(w, "250 2.0.0 queued\r\n")?;
        } else if upper == "QUIT" {
            write!(w, "221 2.0.0 bye\r\n")?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            write!(w, "250 ok\r\n")?;
        } else {
            write!(w, "502 5.5.2 not implemented\r\n")?;
        }
    }
}

impl Smtp {
    fn start_on(port: u16) -> Smtp {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, st) = (mails.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(180);
            while !st.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let m = m.clone();
                        std::thread::spawn(move || {
                            let _ = session(s, &m);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Smtp { port, mails, stop }
    }

    fn start() -> Smtp {
        Smtp::start_on(0)
    }

    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }

    fn url(&self) -> String {
        format!("smtp://wf-user:{PASSWORD}@127.0.0.1:{}", self.port)
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

struct T {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl T {
    fn new(toml: &str) -> T {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().canonicalize().expect("canonical");
        std::fs::write(dir.join("wf.toml"), toml).expect("write wf.toml");
        T {
            _tmp: tmp,
            dir,
            env: Vec::new(),
        }
    }

    fn env(mut self, k: &str, v: &str) -> T {
        self.env.push((k.into(), v.into()));
        self
    }

    fn wf(&self, args: &[&str]) -> Output {
        self.wf_crash(args, None)
    }

    fn wf_crash(&self, args: &[&str], crash: Option<&str>) -> Output {
        let mut c = common::command(&self.dir, &self.dir);
        c.args(["-C", &self.dir.to_string_lossy()])
            .args(args)
            .env("WF_USER", "ana");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(p) = crash {
            c.env("WF_CRASH_POINT", p);
        }
        let out = c.output().expect("run wf");
        let all = text(&out);
        assert!(!all.contains("panicked"), "{all}");
        assert!(
            !all.contains(PASSWORD),
            "the SMTP password was printed: {all}"
        );
        out
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap_or_default()
    }

    fn exists(&self, rel: &str) -> bool {
        self.dir.join(rel).exists()
    }

    /// No secret in the engine log, the journal, the history or a state export.
    fn no_secret_anywhere(&self) {
        for rel in [".wf/logs/wf.jsonl", ".wf/journal.log", ".wf/live.jsonl"] {
            let bytes = std::fs::read(self.dir.join(rel)).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(PASSWORD),
                "the SMTP password is in {rel}"
            );
        }
        for args in [
            &["--json", "history", "1"][..],
            &["history", "1"],
            &["state", "export"],
        ] {
            let out = self.wf(args);
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains(PASSWORD),
                "{args:?}"
            );
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// No alert text ever runs
// ---------------------------------------------------------------------------------------------

/// Each hostile value tries to create a file named `pwned*` when parsed by a shell.
const HOSTILE: [&str; 9] = [
    "$(touch pwned1)",
    "`touch pwned2`",
    "'; touch pwned3; '",
    "\"; touch pwned4; \"",
    "x; touch pwned5",
    "\\\"; touch pwned6 #",
    "$(touch pwned7)'\"`touch pwned8`",
    "a\ntouch pwned9",
    "EOF\ntouch pwned10\nEOF",
];

fn hostile_workflow(command: &str) -> String {
    // The owner carries one value, the failing task's log every value, and the rejection note
    // (given on the command line) every value too.
    let owner = toml_string("o$(touch pwned11)`touch pwned12`';\"");
    let lines: Vec<String> = HOSTILE.iter().map(|h| h.replace('\n', "\\n")).collect();
    let printf = lines
        .iter()
        .map(|l| format!("printf '%s\\n' {} >&2", sh_single(l)))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "[workflow]\nname = \"hostile\"\n\n[notify]\ncommand = {command}\ntimeout = \"5s\"\n\n[task.bad]\nrun = {}\nowner = {owner}\n\n[task.gate]\nrun = \"true\"\nmanual = true\nowner = {owner}\n",
        toml_string(&format!("{printf}; exit 3")),
    )
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

fn sh_single(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn assert_nothing_ran(t: &T, case: &str) {
    let pwned: Vec<String> = std::fs::read_dir(&t.dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pwned"))
        .collect();
    assert!(
        pwned.is_empty(),
        "{case}: alert text ran as code: {pwned:?}"
    );
}

#[test]
fn no_alert_text_runs_whatever_the_command_form() {
    // Forms that are accepted: argv (values as data), and scripts that read $WF_ALERT_* in
    // every quoting context.
    let forms: [(&str, &str); 6] = [
        (
            "argv, value after sh -c's script",
            r#"["sh", "-c", "printf '%s\n' \"$1\" >> alerts.txt", "sh", "{text} {error} {owner}"]"#,
        ),
        (
            "argv, values as separate words",
            r#"["sh", "-c", "printf '%s\n' \"$@\" >> alerts.txt", "sh", "{run}", "{task}", "{owner}", "{error}", "{text}"]"#,
        ),
        (
            "script, unquoted variable",
            r#""printf '%s\n' $WF_ALERT_TEXT $WF_ALERT_OWNER >> alerts.txt""#,
        ),
        (
            "script, double-quoted variable",
            r#""printf '%s\n' \"$WF_ALERT_TEXT\" \"$WF_ALERT_ERROR\" \"$WF_ALERT_LOG_TAIL\" >> alerts.txt""#,
        ),
        (
            "script, single-quoted variable",
            r#""printf '%s\n' '$WF_ALERT_TEXT' >> alerts.txt; printf '%s\n' \"$WF_ALERT_TEXT\" >> alerts.txt""#,
        ),
        (
            "script, heredoc",
            r#""cat >> alerts.txt <<EOF\n$WF_ALERT_TEXT\n$WF_ALERT_OWNER\nEOF""#,
        ),
    ];
    for (case, command) in forms {
        let t = T::new(&hostile_workflow(command));
        let check = t.wf(&["check"]);
        assert!(check.status.success(), "{case}: {}", text(&check));
        let run = t.wf(&["run"]);
        assert_eq!(run.status.code(), Some(1), "{case}: {}", text(&run));
        let note = HOSTILE.join(" ");
        let rej = t.wf(&["reject", "1", "gate", "--note", &note]);
        assert_eq!(rej.status.code(), Some(1), "{case}: {}", text(&rej));
        assert_nothing_ran(&t, case);
        let got = t.read("alerts.txt");
        // The alerts were delivered, with the text.
        assert!(got.contains("bad"), "{case}: {got}");
        assert!(got.contains("gate"), "{case}: {got}");
        if !case.contains("unquoted") {
            assert!(got.contains("$(touch pwned1)"), "{case}: {got}");
            assert!(got.contains("`touch pwned2`"), "{case}: {got}");
        }
        let hist = text(&t.wf(&["--json", "history", "1"]));
        assert_eq!(
            hist.matches("\"event\":\"delivered\"").count(),
            2,
            "{case}: {hist}"
        );
    }
}

#[test]
fn placeholders_a_shell_would_parse_are_refused_before_anything_runs() {
    let refused: [(&str, &str); 9] = [
        (
            "script, unquoted",
            r#""echo wf {run}: {task} failed >> alerts.txt""#,
        ),
        (
            "script, single quotes",
            r#""echo 'wf {run}: {error}' >> alerts.txt""#,
        ),
        (
            "script, double quotes",
            r#""echo \"wf {run}: {error}\" >> alerts.txt""#,
        ),
        (
            "script, heredoc",
            r#""cat >> alerts.txt <<EOF\n{error}\nEOF""#,
        ),
        (
            "argv, in sh -c's script",
            r#"["sh", "-c", "echo '{error}' >> alerts.txt"]"#,
        ),
        (
            "argv, in bash -c's script",
            r#"["bash", "-lc", "echo {text}"]"#,
        ),
        (
            "argv, behind env",
            r#"["env", "A=1", "sh", "-c", "echo {error}"]"#,
        ),
        (
            "argv, python -c",
            r#"["python3", "-c", "print('{error}')"]"#,
        ),
        ("argv, the program", r#"["{task}"]"#),
    ];
    for (case, command) in refused {
        let t = T::new(&hostile_workflow(command));
        for args in [&["check"][..], &["run"]] {
            let out = t.wf(args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{case} {args:?}: {}",
                text(&out)
            );
            let msg = text(&out);
            assert!(msg.contains("placeholder"), "{case}: {msg}");
            assert!(
                msg.contains("WF_ALERT_") || msg.contains("[\""),
                "{case}: no safe form shown: {msg}"
            );
        }
        assert!(!t.exists(".wf"), "{case}: a refused workflow created state");
        assert_nothing_ran(&t, case);
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded commands, no recursion
// ---------------------------------------------------------------------------------------------

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}

fn gone_soon(needle: &str) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let left = processes_with(needle);
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_notify_command_that_hangs_or_forks_is_bounded_and_leaves_no_process() {
    let cases = [
        (
            "hangs",
            "sleep 987651",
            r#"["sh", "-c", "sleep 987651"]"#,
            false,
        ),
        (
            "hangs and ignores TERM",
            "sleep 987652",
            r#"["sh", "-c", "trap '' TERM; sleep 987652 & sleep 987652; wait"]"#,
            false,
        ),
        (
            "forks and hangs",
            "sleep 987653",
            r#"["sh", "-c", "sleep 987653 & setsid sleep 987653 & (sleep 987653 &) ; sleep 987653"]"#,
            false,
        ),
        (
            "forks and exits 0",
            "sleep 987654",
            r#"["sh", "-c", "sleep 987654 & setsid sleep 987654 & exit 0"]"#,
            true,
        ),
    ];
    for (case, needle, command, ok) in cases {
        let t = T::new(&format!(
            "[workflow]\nname = \"b\"\n[notify]\ncommand = {command}\ntimeout = \"1s\"\n[task.a]\nrun = \"true\"\n"
        ));
        let started = Instant::now();
        let out = t.wf(&["notify", "--test"]);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(6), "{case}: took {took:?}");
        assert_eq!(
            out.status.code(),
            Some(if ok { 0 } else { 1 }),
            "{case}: {}",
            text(&out)
        );
        if !ok {
            assert!(text(&out).contains("timed out"), "{case}: {}", text(&out));
        }
        let left = gone_soon(needle);
        assert!(left.is_empty(), "{case}: left behind: {left:?}");
    }
}

#[test]
fn a_notify_command_that_calls_wf_cannot_recurse() {
    let bin = Path::new(WF)
        .parent()
        .expect("bin dir")
        .to_string_lossy()
        .into_owned();
    let t = T::new(
        "[workflow]\nname = \"r\"\n[notify]\ncommand = \"echo start >> calls.txt; wf notify --test; wf notify; echo \\\"inner exit $?\\\" >> calls.txt\"\ntimeout = \"5s\"\n[task.a]\nrun = \"true\"\n",
    )
    .env("PATH", &format!("{bin}:/usr/bin:/bin"));
    let started = Instant::now();
    let out = t.wf(&["notify", "--test"]);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = t.read("calls.txt");
    assert_eq!(calls.matches("start").count(), 1, "recursed: {calls}");
    assert!(calls.contains("inner exit 2"), "{calls}");
}

// ---------------------------------------------------------------------------------------------
// E-mail over SMTP
// ---------------------------------------------------------------------------------------------

fn email_workflow(owner_route: &str) -> String {
    format!(
        r#"[workflow]
name = "mailing"

[notify.email]
to = ["data-team@example.com", "oncall@example.com"]
from = "wf@example.com"
server = "env:WF_TEST_SMTP"
{owner_route}
[task.ok]
run = "true"

[task.bad]
run = "echo 'row 7 is broken' >&2; printf '.\n..\n' >&2; echo 'db down' >&2; exit 3"
owner = "data_eng"
"#
    )
}

#[test]
fn a_failing_task_sends_exactly_one_email() {
    let smtp = Smtp::start();
    let t = T::new(&email_workflow("")).env("WF_TEST_SMTP", &smtp.url());
    let run = t.wf(&["run"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert!(m.authed, "credentials from the URL were not used");
    assert_eq!(m.from, "wf@example.com");
    assert_eq!(m.to, ["data-team@example.com", "oncall@example.com"]);
    let subject = m.header("Subject");
    for want in ["mailing", "run 1", "bad"] {
        assert!(subject.contains(want), "subject {subject:?} lacks {want}");
    }
    assert!(!m.header("Message-ID").is_empty());
    for want in [
        "exit code 3",
        "data_eng",
        "db down",
        "row 7 is broken",
        "resume 1",
        "\n    .\n    ..\n",
    ] {
        assert!(m.data.contains(want), "body lacks {want:?}: {}", m.data);
    }
    assert!(
        text(&run).contains("alert for bad (run 1) sent via email"),
        "{}",
        text(&run)
    );
    // Nothing is sent again.
    t.wf(&["notify"]);
    assert_eq!(smtp.mails().len(), 1);
    t.no_secret_anywhere();
}

#[test]
fn a_server_that_was_down_gets_the_email_once_later() {
    let port = free_port();
    let url = format!("smtp://wf-user:{PASSWORD}@127.0.0.1:{port}");
    let t = T::new(&email_workflow("")).env("WF_TEST_SMTP", &url);
    let started = Instant::now();
    assert_eq!(t.wf(&["run"]).status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a dead server held the run"
    );
    let hist = text(&t.wf(&["--json", "history", "1"]));
    assert!(hist.contains("\"event\":\"failed\""), "{hist}");
    assert!(!hist.contains(PASSWORD));
    let smtp = Smtp::start_on(port);
    let out = t.wf(&["notify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(smtp.mails().len(), 1);
    t.wf(&["notify"]);
    t.wf(&["run"]);
    // The second run fails again: that is a new alert, so exactly one more.
    assert_eq!(smtp.mails().len(), 2);
    t.no_secret_anywhere();
}

#[test]
fn a_crash_around_delivery_never_sends_a_second_mail_beyond_the_window() {
    let smtp = Smtp::start();
    let t = T::new(&email_workflow("")).env("WF_TEST_SMTP", &smtp.url());
    // Killed after the alert is journaled, before it is sent: sent once by the next wf.
    assert!(!t
        .wf_crash(&["run"], Some("before-deliver"))
        .status
        .success());
    assert!(smtp.mails().is_empty());
    t.wf(&["notify"]);
    t.wf(&["notify"]);
    assert_eq!(smtp.mails().len(), 1);
    // Killed after the server accepted, before `delivered` is journaled: the documented window
    // sends it again, with the same Message-ID so a receiver can drop the duplicate.
    let smtp2 = Smtp::start();
    let t2 = T::new(&email_workflow("")).env("WF_TEST_SMTP", &smtp2.url());
    assert!(!t2
        .wf_crash(&["run"], Some("after-deliver"))
        .status
        .success());
    t2.wf(&["notify"]);
    t2.wf(&["notify"]);
    let mails = smtp2.mails();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[0].header("Message-ID"), mails[1].header("Message-ID"));
}

#[test]
fn alerts_go_to_the_owner_route_else_to_the_workflow() {
    let smtp = Smtp::start();
    let t = T::new(&(email_workflow(
        "\n[notify.owner.data_eng]\nemail = [\"de@example.com\"]\n\n[notify.owner.analyst]\nemail = { to = [\"an@example.com\"], from = \"wf-an@example.com\", server = \"env:WF_TEST_SMTP\", starttls = \"opportunistic\" }\n",
    ) + "\n[task.other]\nrun = \"exit 4\"\nowner = \"ml_eng\"\n"))
    .env("WF_TEST_SMTP", &smtp.url());
    assert_eq!(t.wf(&["run"]).status.code(), Some(1));
    let mut mails = smtp.mails();
    mails.sort_by_key(|m| m.to.clone());
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[0].to, ["data-team@example.com", "oncall@example.com"]);
    assert!(mails[0].header("Subject").contains("other"));
    assert_eq!(mails[1].to, ["de@example.com"]);
    assert!(mails[1].header("Subject").contains("bad"));
    let out = t.wf(&["notify", "--test"]);
    let said = text(&out);
    assert!(
        said.contains("owner data_eng: email to de@example.com"),
        "{said}"
    );
    assert!(
        said.contains("owner analyst: email to an@example.com"),
        "{said}"
    );
    assert!(
        said.contains("owner ml_eng: the workflow channels"),
        "{said}"
    );
    assert_eq!(smtp.mails().len(), 5, "one test mail per channel");
    t.no_secret_anywhere();
}

#[test]
fn starttls_required_refuses_a_server_without_it() {
    let smtp = Smtp::start();
    let t = T::new(&email_workflow("").replace(
        "server = \"env:WF_TEST_SMTP\"",
        "server = \"env:WF_TEST_SMTP\"\nstarttls = \"required\"",
    ))
    .env("WF_TEST_SMTP", &smtp.url());
    let out = t.wf(&["notify", "--test"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("STARTTLS"), "{}", text(&out));
    assert!(smtp.mails().is_empty());
}

#[test]
fn a_literal_server_url_with_a_password_is_never_echoed() {
    let smtp = Smtp::start();
    let t =
        T::new(&email_workflow("").replace("\"env:WF_TEST_SMTP\"", &format!("\"{}\"", smtp.url())));
    assert_eq!(t.wf(&["run"]).status.code(), Some(1));
    assert_eq!(smtp.mails().len(), 1);
    let bad = T::new(&email_workflow("").replace(
        "\"env:WF_TEST_SMTP\"",
        &format!("\"smtpx://u:{PASSWORD}@h\""),
    ));
    let out = bad.wf(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("server"), "{}", text(&out));
    t.no_secret_anywhere();
}
