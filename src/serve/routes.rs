//! The routes of `wf serve`: pages (`/`, `/runs/RUN`, `/tasks/TASK`, attempt logs), the JSON API
//! (`/api/runs…`) and the approve/reject actions. Every path parameter is checked before use;
//! every refusal says why in one sentence (JSON under `/api/`, a page elsewhere).

use std::io::{Read, Seek, SeekFrom};
use std::net::TcpStream;
use std::sync::mpsc;

use askama::Template;
use chrono::Utc;
use serde_json::{json, Value};
use wf_state::{recover, Entry, RunSnapshot, RunState, TaskState};

use super::auth::{self, Via};
use super::http::{self, Body, Request, Response};
use super::pages::{self, Filter, RunRow};
use super::Shared;
use crate::cli::{ApproveArgs, ExecArgs, HistoryArgs, RejectArgs};
use crate::context::{Ctx, Reader};
use crate::error::Error;

/// What a log page sends at most: its first and last half of this, with a line in between.
pub const LOG_CAP: u64 = 1024 * 1024;
const STATES: [&str; 7] = [
    "",
    "running",
    "waiting",
    "interrupted",
    "done",
    "failed",
    "superseded",
];
const CSS: &str = include_str!("static/wf.css");
const JS: &str = include_str!("static/wf.js");
const ICON: &str = include_str!("static/favicon.svg");

/// Read one request from the connection, have the worker answer it, send the answer, close.
pub(super) fn connection(sh: &Shared, mut stream: TcpStream) {
    let resp = match http::read_request(&stream) {
        Ok(req) => {
            let head = req.method == "HEAD";
            let (tx, rx) = std::sync::mpsc::channel();
            let resp = match sh.jobs.send((req, tx)) {
                Ok(()) => rx.recv().ok(),
                Err(_) => None,
            };
            let resp = resp.unwrap_or_else(|| {
                refuse(
                    false,
                    500,
                    "the request could not be answered; this is a bug in wf",
                )
            });
            let _ = resp.send(&mut stream, head);
            return;
        }
        Err(None) => return,
        Err(Some(bad)) => Response::text(bad.status, format!("{}\n", bad.message)),
    };
    let _ = resp.send(&mut stream, false);
}

/// Answer requests one at a time, on the one thread that reads the state (so the memory that
/// opening the journal takes is one thread's, whatever the number of connections).
pub(super) fn worker(ctx: &Ctx, sh: &Shared, jobs: std::sync::mpsc::Receiver<super::Job>) {
    for (req, reply) in jobs {
        let resp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| route(ctx, sh, &req)))
            .unwrap_or_else(|_| {
                refuse(
                    req.path.starts_with("/api/"),
                    500,
                    "answering this request failed; this is a bug in wf, please report it",
                )
            });
        let _ = reply.send(resp);
    }
}

/// A refusal: JSON `{"error": …}` for the API, a page otherwise.
fn refuse(api: bool, status: u16, message: &str) -> Response {
    if api {
        Response::json(status, &json!({ "error": message }))
    } else {
        let page = pages::ErrorPage { status, message }
            .render()
            .unwrap_or_else(|_| message.to_string());
        Response::html(status, page)
    }
}

/// An error of the store or a command, with the status it deserves.
fn failed(api: bool, e: &Error) -> Response {
    let status = match e {
        Error::Usage(_) | Error::Workflow(_) => 400,
        Error::Locked(_) => 503,
        _ => 500,
    };
    refuse(api, status, &e.to_string())
}

/// A run id from a path: 1 to 20 digits.
fn run_id(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn task_name(s: &str) -> Option<&str> {
    crate::workflow::valid_task_name(s).then_some(s)
}

fn route(ctx: &Ctx, sh: &Shared, req: &Request) -> Response {
    let api = req.path.starts_with("/api/");
    if !auth::host_ok(req, sh.addr) {
        return refuse(
            api,
            421,
            "this server answers only to its own address (the Host header names another)",
        );
    }
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    // `?token=` (the address printed at start): keep it in a cookie and drop it from the address.
    if get {
        if let Some(t) = req.param("token") {
            if !auth::same(&t, &sh.token) {
                return refuse(api, 401, "that token is not this server's; use the address `wf serve` printed, or its WF_SERVE_TOKEN");
            }
            // Back to the same page, named by its path alone: never `//host` (another site)
            // nor anything a header could not carry.
            let plain = req.path.starts_with('/')
                && !req.path.starts_with("//")
                && req
                    .path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'));
            let back = if plain { req.path.as_str() } else { "/" };
            return Response::redirect(back).with(
                "Set-Cookie",
                format!(
                    "{}={}; Path=/; HttpOnly; SameSite=Strict",
                    auth::COOKIE,
                    sh.token
                ),
            );
        }
    }
    let token = auth::presented(req).filter(|(t, _)| auth::same(t, &sh.token));
    let signed_in = token.is_some();
    if sh.public && !signed_in {
        return refuse(api, 401, "this server needs its token for every request: open the address with ?token=, or send `Authorization: Bearer TOKEN`");
    }
    let segs: Vec<&str> = req.path[1..].split('/').collect();
    let view = View {
        ctx,
        sh,
        req,
        signed_in,
    };
    match (get, segs.as_slice()) {
        (true, [""]) => view.runs_page(),
        (true, ["static", "wf.css"]) => Response::new(200, "text/css; charset=utf-8", CSS),
        (true, ["static", "wf.js"]) => Response::new(200, "text/javascript; charset=utf-8", JS),
        (true, ["static", "favicon.svg"] | ["favicon.ico"]) => {
            Response::new(200, "image/svg+xml", ICON)
        }
        (true, ["runs", run]) => match run_id(run) {
            Some(run) => view.run_page(run),
            None => refuse(false, 404, "that is not a run id"),
        },
        (true, ["runs", run, "tasks", task, "attempts", n, "log"]) => {
            let attempt = n
                .parse::<u32>()
                .ok()
                .filter(|a| *a > 0 && a.to_string() == *n);
            match (run_id(run), task_name(task), attempt) {
                (Some(run), Some(task), Some(a)) => view.log(run, task, a),
                _ => refuse(false, 404, "there is no such log"),
            }
        }
        (true, ["tasks", task]) => match task_name(task) {
            Some(task) => view.task_page(task),
            None => refuse(false, 404, "that is not a task name"),
        },
        (true, ["api", "runs"]) => view.api_runs(),
        (true, ["api", "runs", run]) => match run_id(run) {
            Some(run) => view.api_run(run),
            None => refuse(true, 404, "that is not a run id"),
        },
        (true, ["api", "runs", run, "version"]) => match run_id(run) {
            Some(run) => view.api_version(run),
            None => refuse(true, 404, "that is not a run id"),
        },
        (false, ["runs", run, "tasks", task, verb @ ("approve" | "reject")])
        | (false, ["api", "runs", run, "tasks", task, verb @ ("approve" | "reject")])
            if req.method == "POST" =>
        {
            match (run_id(run), task_name(task)) {
                (Some(run), Some(task)) => view.decide(token.map(|t| t.1), run, task, verb),
                _ => refuse(api, 404, "there is no such run or task"),
            }
        }
        (_, ["runs", _, "tasks", _, "approve" | "reject"])
        | (_, ["api", "runs", _, "tasks", _, "approve" | "reject"]) => {
            refuse(api, 405, "use POST").with("Allow", "POST".into())
        }
        (false, _) if !api && routes_exist(&segs) => {
            refuse(api, 405, "use GET").with("Allow", "GET, HEAD".into())
        }
        _ => refuse(api, 404, "there is no such page; `/` lists the runs"),
    }
}

/// Whether a path is one of the GET routes (for 405 rather than 404 on another method).
fn routes_exist(segs: &[&str]) -> bool {
    matches!(
        segs,
        [""] | ["runs", _] | ["tasks", _] | ["api", "runs"] | ["api", "runs", _]
    )
}

struct View<'a> {
    ctx: &'a Ctx,
    sh: &'a Shared,
    req: &'a Request,
    signed_in: bool,
}

/// Durations for people, as the console shows them.
fn took(from: chrono::DateTime<Utc>, to: chrono::DateTime<Utc>) -> String {
    crate::render::fmt::duration((to - from).to_std().unwrap_or_default())
}

impl View<'_> {
    /// The filters of `/` and `/api/runs` from the query, as `wf history` takes them.
    fn filters(&self, default_limit: usize) -> Result<(HistoryArgs, Filter), String> {
        let p = |k: &str| self.req.param(k).filter(|v| !v.trim().is_empty());
        let limit = match p("limit") {
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => n,
                _ => return Err(format!("limit must be a number from 1 to 500, not {l:?}")),
            },
            None => default_limit,
        };
        let before = match p("before") {
            Some(b) => Some(run_id(&b).ok_or("before must be a run id")?),
            None => None,
        };
        let filter = Filter {
            state: p("state"),
            task: p("task"),
            owner: p("owner"),
            param: p("param"),
            since: p("since"),
        };
        if let Some(s) = &filter.state {
            if !STATES.contains(&s.as_str()) {
                return Err(format!(
                    "state must be one of {}, not {s:?}",
                    STATES[1..].join(", ")
                ));
            }
        }
        // `since` is a duration (`7d`) as `wf history --since` takes it, or a day (`2026-12-01`,
        // from its start, UTC).
        let since = match filter.since.as_deref().map(str::trim) {
            Some(d) => match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                Ok(day) => {
                    let from = day.and_time(chrono::NaiveTime::MIN).and_utc();
                    let secs = (Utc::now() - from).num_seconds().max(0);
                    Some(format!("{secs}s"))
                }
                Err(_) => Some(d.to_string()),
            },
            None => None,
        };
        let args = HistoryArgs {
            run: None,
            task: filter.task.clone(),
            status: filter.state.clone(),
            owner: filter.owner.clone(),
            since,
            params: filter.param.iter().cloned().collect(),
            limit,
            html: None,
            metric: None,
            before,
        };
        Ok((args, filter))
    }

    fn api_runs(&self) -> Response {
        let (args, _) = match self.filters(20) {
            Ok(a) => a,
            Err(e) => return refuse(true, 400, &e),
        };
        let rows = self.sh.read(self.ctx, |reader| {
            let (rows, holder) = crate::command::history::select(self.ctx, reader, &args)?;
            Ok(rows
                .iter()
                .map(|r| crate::command::history::run_row(r, holder.as_ref()))
                .collect::<Vec<Value>>())
        });
        match rows {
            Ok(rows) => Response::json(200, &Value::Array(rows)),
            Err(e) => failed(true, &e),
        }
    }

    fn api_run(&self, run: u64) -> Response {
        let records = self.sh.read(self.ctx, |reader| reader.records(run));
        match records {
            Ok(r) if r.is_empty() => refuse(true, 404, &format!("there is no run {run}")),
            Ok(r) => Response::json(
                200,
                &Value::Array(crate::command::history::entries_json(&r)),
            ),
            Err(e) => failed(true, &e),
        }
    }

    fn api_version(&self, run: u64) -> Response {
        match self.sh.read(self.ctx, |reader| reader.snapshot(Some(run))) {
            Ok(Some(snap)) => Response::json(200, &json!({"run": run, "version": version(&snap)})),
            Ok(None) => refuse(true, 404, &format!("there is no run {run}")),
            Err(e) => failed(true, &e),
        }
    }

    fn runs_page(&self) -> Response {
        let (args, filter, error) = match self.filters(20) {
            Ok((a, f)) => (Some(a), f, None),
            Err(e) => (None, Filter::default(), Some(e)),
        };
        let mut error = error;
        let mut rows = Vec::new();
        if let Some(args) = &args {
            let got = self.sh.read(self.ctx, |reader| {
                let (runs, holder) = crate::command::history::select(self.ctx, reader, args)?;
                let mut rows = Vec::with_capacity(runs.len());
                for r in runs {
                    rows.push(row(reader, &r, holder.as_ref())?);
                }
                Ok(rows)
            });
            match got {
                Ok(r) => rows = r,
                Err(e) => error = Some(e.to_string()),
            }
        }
        let next = match (&args, rows.last()) {
            (Some(a), Some(last)) if rows.len() == a.limit => {
                let mut q = vec![format!("before={}", last.id)];
                for (k, v) in [
                    ("state", &filter.state),
                    ("task", &filter.task),
                    ("owner", &filter.owner),
                    ("param", &filter.param),
                    ("since", &filter.since),
                ] {
                    if let Some(v) = v {
                        q.push(format!("{k}={}", http::encode(v)));
                    }
                }
                Some(format!("/?{}", q.join("&")))
            }
            _ => None,
        };
        let waiting = rows
            .iter()
            .flat_map(|r| r.waiting.iter().map(move |t| (r.id, t.clone())))
            .collect();
        let page = pages::RunsPage {
            workflow: &self.sh.workflow,
            user: &self.sh.user,
            signed_in: self.signed_in,
            states: &STATES,
            filter,
            error,
            rows,
            waiting,
            next,
        };
        render(&page)
    }

    fn run_page(&self, run: u64) -> Response {
        let got = self.sh.read(self.ctx, |reader| {
            let records = reader.records(run)?;
            if records.is_empty() {
                return Ok(None);
            }
            let holder = reader.holder(&self.ctx.state_dir);
            Ok(reader.snapshot(Some(run))?.map(|s| (s, records, holder)))
        });
        let (snap, records, holder) = match got {
            Ok(Some(x)) => x,
            Ok(None) => return refuse(false, 404, &format!("there is no run {run}")),
            Err(e) => return failed(false, &e),
        };
        let state = recover::shown_state(&snap.run, holder.as_ref());
        // The same page as `wf history RUN --html`, from the same code.
        let page = match crate::render::page::run_page(&snap, &records, Utc::now()) {
            Ok(page) => page,
            Err(e) => return failed(false, &e),
        };
        let message = match self.req.param("done").as_deref() {
            Some("approved") => Some("Approved: the run continues in the background of wf serve; this page follows it."),
            Some("rejected") => Some("Rejected: the task failed with your note, and the run ended unless another gate waits."),
            _ => None,
        };
        let bar = pages::RunBar {
            run,
            state,
            live: matches!(state, "running" | "waiting"),
            version: version(&snap),
            message,
            gates: snap
                .tasks
                .iter()
                .filter(|t| t.state == TaskState::Waiting)
                .map(|t| t.name.clone())
                .collect(),
            tasks: snap
                .tasks
                .iter()
                .map(|t| (t.name.clone(), (1..=t.attempts).collect()))
                .collect(),
            signed_in: self.signed_in,
            user: &self.sh.user,
        };
        let bar = match bar.render() {
            Ok(b) => b,
            Err(e) => return refuse(false, 500, &format!("rendering the page failed ({e})")),
        };
        Response::html(200, embed(&page, &bar))
    }

    fn task_page(&self, task: &str) -> Response {
        let limit = self
            .req
            .param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, 200);
        let got = self.sh.read(self.ctx, |reader| trend(reader, task, limit));
        let points = match got {
            Ok(p) => p,
            Err(e) => return failed(false, &e),
        };
        let mut keys: Vec<String> = points
            .iter()
            .flat_map(|p| p.metrics.iter().map(|(k, _)| k.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        let mut charts = Vec::new();
        let secs: Vec<(u64, String)> = points
            .iter()
            .map(|p| (p.run, p.secs.map(|s| format!("{s:.3}")).unwrap_or_default()))
            .collect();
        if let Some(c) = pages::chart("duration (s)", &secs) {
            charts.push(c);
        }
        for k in &keys {
            let vals: Vec<(u64, String)> = points
                .iter()
                .map(|p| (p.run, p.value(k).unwrap_or_default()))
                .collect();
            if let Some(c) = pages::chart(k, &vals) {
                charts.push(c);
            }
        }
        let rows = points
            .iter()
            .map(|p| pages::Point {
                run: p.run,
                state: p.state.clone(),
                took: p
                    .secs
                    .map(|s| crate::render::fmt::duration(std::time::Duration::from_secs_f64(s)))
                    .unwrap_or_default(),
                values: keys
                    .iter()
                    .map(|k| p.value(k).unwrap_or_default())
                    .collect(),
            })
            .collect();
        render(&pages::TaskPage {
            workflow: &self.sh.workflow,
            user: &self.sh.user,
            signed_in: self.signed_in,
            task,
            keys,
            charts,
            points: rows,
        })
    }

    /// An attempt's log as plain text (never interpreted by the browser), at most `LOG_CAP`
    /// bytes: a longer log is sent as its head and its tail with a line saying what was left out.
    fn log(&self, run: u64, task: &str, attempt: u32) -> Response {
        let got = self
            .sh
            .alone(|| crate::command::logs::open(self.ctx, run, task, Some(attempt)));
        let file = match got {
            Ok((_, Some(f))) => f,
            Ok((_, None)) => {
                return Response::text(
                    200,
                    format!("(attempt {attempt} of {task} printed nothing)\n"),
                )
                .with(
                    "Content-Security-Policy",
                    "default-src 'none'; sandbox".into(),
                )
            }
            Err(e) if e.code() == crate::error::code::USAGE => {
                return refuse(false, 404, &e.to_string())
            }
            Err(e) => return failed(false, &e),
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let body = if len <= LOG_CAP {
            Body::Stream(Box::new(file), len)
        } else {
            match head_and_tail(file, len, run, task, attempt) {
                Ok(b) => Body::Bytes(b),
                Err(_) => return refuse(false, 500, "reading the log failed"),
            }
        };
        Response {
            status: 200,
            headers: vec![
                ("Content-Type", "text/plain; charset=utf-8".into()),
                (
                    "Content-Security-Policy",
                    "default-src 'none'; sandbox".into(),
                ),
            ],
            body,
        }
    }

    /// Approve or reject `task` of `run` for a request that presented the token `via`.
    fn decide(&self, via: Option<Via>, run: u64, task: &str, verb: &str) -> Response {
        let api = self.req.path.starts_with("/api/");
        match via {
            None => {
                return refuse(api, 401, "approving and rejecting need the token: open the address with ?token= that wf serve printed, or send `Authorization: Bearer TOKEN`")
            }
            Some(Via::Cookie) if !auth::same_origin(self.req) => {
                return refuse(api, 403, "this request did not come from wf serve's own page (Origin / Sec-Fetch-Site), so nothing was changed")
            }
            _ => {}
        }
        let ctype = self
            .req
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let (note, by) = match ctype.as_str() {
            "application/json" => {
                let v: Value = match serde_json::from_slice(&self.req.body) {
                    Ok(v) => v,
                    Err(_) => {
                        return refuse(
                            api,
                            400,
                            "the body is not JSON like {\"note\": \"…\", \"by\": \"…\"}",
                        )
                    }
                };
                let s = |k: &str| match v.get(k) {
                    None | Some(Value::Null) => Ok(String::new()),
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(format!("`{k}` must be a string")),
                };
                match (v.is_object(), s("note"), s("by")) {
                    (true, Ok(n), Ok(b)) => (n, b),
                    (false, _, _) => return refuse(api, 400, "the body must be a JSON object"),
                    (_, Err(e), _) | (_, _, Err(e)) => return refuse(api, 400, &e),
                }
            }
            "application/x-www-form-urlencoded" => {
                let form = http::form_pairs(&String::from_utf8_lossy(&self.req.body));
                let f = |k: &str| {
                    form.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                (f("note"), f("by"))
            }
            _ => {
                return refuse(
                    api,
                    415,
                    "send the note as JSON (Content-Type: application/json) or a form",
                )
            }
        };
        let note = note.trim().to_string();
        let by = match by.trim() {
            "" => self.sh.user.clone(),
            b => b.to_string(),
        };
        if by.chars().count() > 64 || by.chars().any(char::is_control) {
            return refuse(
                api,
                400,
                "`by` must be a name of at most 64 characters without control characters",
            );
        }
        if note.len() > 4096
            || note
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return refuse(api, 400, "the note must be at most 4096 bytes, without control characters other than newlines and tabs");
        }
        if verb == "reject" && note.is_empty() {
            return refuse(api, 400, "a rejection needs a note saying why");
        }
        let journaled = if note.is_empty() {
            "via web".to_string()
        } else {
            format!("{note} (via web)")
        };
        let target = vec![run.to_string(), task.to_string()];
        let result = if verb == "approve" {
            self.approve(run, task, target, &journaled, &by)
        } else {
            let ctx = self.ctx.worker(
                vec![
                    "wf".into(),
                    "reject".into(),
                    run.to_string(),
                    task.to_string(),
                ],
                false,
            );
            let args = RejectArgs {
                target,
                note: journaled.clone(),
            };
            self.sh
                .alone(|| crate::command::reject::reject_as(&ctx, &args, &by).map(|_| ()))
        };
        if let Err(e) = result {
            // A refusal of the request as given (no such run, not waiting, superseded, locked,
            // an invalid workflow) is a conflict; anything else is the server's failure.
            let status = match e.code() {
                crate::error::code::USAGE | crate::error::code::LOCKED => 409,
                _ => 500,
            };
            return refuse(api, status, &e.to_string());
        }
        let decision = if verb == "approve" {
            "approved"
        } else {
            "rejected"
        };
        if api {
            Response::json(
                if verb == "approve" { 202 } else { 200 },
                &json!({"run": run, "task": task, "decision": decision, "by": by, "note": journaled}),
            )
        } else {
            Response::redirect(&format!("/runs/{run}?done={decision}"))
        }
    }

    /// `wf approve RUN TASK` as `by`, in a thread of this process: answers once the approval is
    /// journaled (or refused); the run then continues in that thread under the writer lock.
    fn approve(
        &self,
        run: u64,
        task: &str,
        target: Vec<String>,
        note: &str,
        by: &str,
    ) -> crate::error::Result<()> {
        let ctx = self.ctx.worker(
            vec![
                "wf".into(),
                "approve".into(),
                run.to_string(),
                task.to_string(),
                "(via wf serve)".into(),
            ],
            false,
        );
        let args = ApproveArgs {
            target,
            note: Some(note.to_string()),
            later: false,
            exec: ExecArgs::default(),
        };
        let by = by.to_string();
        let (tx, rx) = mpsc::channel::<std::result::Result<(), Error>>();
        let recorded = tx.clone();
        let handle = std::thread::Builder::new()
            .name("wf-approve".into())
            .spawn(move || {
                let mut told = false;
                let r = crate::command::approve::approve_as(&ctx, &args, &by, &mut |_| {
                    told = true;
                    let _ = recorded.send(Ok(()));
                });
                match r {
                    Err(e) if !told => {
                        let _ = tx.send(Err(e));
                    }
                    Err(e) => crate::render::console::error_line(&format!("wf serve: {e}")),
                    Ok(_) => {}
                }
            })
            .map_err(Error::io("starting the approved run", "wf serve"))?;
        self.sh
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
        match rx.recv() {
            Ok(r) => r,
            Err(_) => Err(Error::Internal(
                "the approval stopped without an answer; this is a bug".into(),
            )),
        }
    }
}

/// A run's page version for live updates: changes whenever any task or the run changes.
fn version(snap: &RunSnapshot) -> String {
    let bytes = serde_json::to_vec(snap).unwrap_or_default();
    blake3::hash(&bytes).to_hex()[..16].to_string()
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(p) => Response::html(200, p),
        Err(e) => refuse(false, 500, &format!("rendering the page failed ({e})")),
    }
}

/// The run page of `wf history --html` with the dashboard's bar after `<body>`, and the
/// dashboard's script: its own Content-Security-Policy `<meta>` (no scripts at all) gives way to
/// the server's header, which allows this server's script and nothing else.
fn embed(page: &str, bar: &str) -> String {
    let mut out = String::with_capacity(page.len() + bar.len() + 256);
    let mut rest = page;
    if let Some(i) = rest.find("<meta http-equiv=\"Content-Security-Policy\"") {
        if let Some(end) = rest[i..].find('>') {
            out.push_str(&rest[..i]);
            rest = &rest[i + end + 1..];
        }
    }
    if let Some(i) = rest.find("</head>") {
        out.push_str(&rest[..i]);
        out.push_str(
            "<link rel=\"icon\" href=\"/static/favicon.svg\">\n\
                 <link rel=\"stylesheet\" href=\"/static/wf.css\">\n\
                 <script src=\"/static/wf.js\" defer></script>\n",
        );
        rest = &rest[i..];
    }
    match rest.find("<body>") {
        Some(i) => {
            out.push_str(&rest[..i + "<body>".len()]);
            out.push('\n');
            out.push_str(bar);
            out.push_str(&rest[i + "<body>".len()..]);
        }
        None => {
            out.push_str(bar);
            out.push_str(rest);
        }
    }
    out
}

/// One row of the runs page: the history row plus who approved, what failed, what waits.
fn row(
    reader: &mut Reader,
    r: &wf_state::RunView,
    holder: Option<&wf_state::lock::Holder>,
) -> crate::error::Result<RunRow> {
    let snap = reader.snapshot(Some(r.id))?;
    let (mut failed, mut waiting, mut approved) = (Vec::new(), Vec::new(), false);
    if let Some(s) = &snap {
        for t in &s.tasks {
            match t.state {
                TaskState::Failed => failed.push(t.name.clone()),
                TaskState::Waiting => waiting.push(t.name.clone()),
                _ => {}
            }
            approved |= t.approved;
        }
    }
    // Who approved is in the run's records: read only for runs with an approval.
    let mut approvers = Vec::new();
    if approved {
        for rec in reader.records(r.id)? {
            if let Entry::Approval { user, .. } = &rec.entry {
                if !approvers.contains(user) {
                    approvers.push(user.clone());
                }
            }
        }
    }
    let state = recover::shown_state(r, holder).to_string();
    let took = match r.ended_at {
        Some(e) => took(r.started_at, e),
        None if r.state == RunState::Running => {
            format!("{} so far", took(r.started_at, Utc::now()))
        }
        None => String::new(),
    };
    let tasks: Vec<String> = TaskState::ALL
        .iter()
        .filter(|s| r.count(**s) > 0)
        .map(|s| format!("{} {}", r.count(*s), s))
        .collect();
    Ok(RunRow {
        id: r.id,
        state,
        started: r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        took,
        user: r.user.clone(),
        host: r.host.clone(),
        approved_by: approvers.join(", "),
        failed,
        waiting,
        tasks: tasks.join(", "),
        reason: r.reason.clone(),
    })
}

/// What one run says about a task: its metrics (last report of each key), duration and state.
struct TaskPoint {
    run: u64,
    state: String,
    secs: Option<f64>,
    metrics: Vec<(String, String)>,
}

impl TaskPoint {
    fn value(&self, key: &str) -> Option<String> {
        self.metrics
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// At most this many runs are looked at for a trend (a task that never ran costs no more).
const TREND_SCAN: usize = 5000;

/// The last `limit` runs that ran `task`, oldest first.
fn trend(reader: &mut Reader, task: &str, limit: usize) -> crate::error::Result<Vec<TaskPoint>> {
    let ids: Vec<u64> = match reader {
        Reader::Store(store) => {
            let mut ids = Vec::new();
            for r in store.runs().take(TREND_SCAN) {
                let r = r?;
                if store.task_names(r.id)?.iter().any(|n| n == task) {
                    ids.push(r.id);
                    if ids.len() >= limit {
                        break;
                    }
                }
            }
            ids
        }
        _ => reader
            .snapshot(None)?
            .filter(|s| s.task(task).is_some())
            .map(|s| vec![s.run.id])
            .unwrap_or_default(),
    };
    let mut points = Vec::new();
    for id in ids.into_iter().rev() {
        let mut p = TaskPoint {
            run: id,
            state: String::new(),
            secs: None,
            metrics: Vec::new(),
        };
        let mut started = None;
        for rec in reader.records(id)? {
            match &rec.entry {
                Entry::Metric {
                    task: t,
                    key,
                    value,
                    ..
                } if t == task => match p.metrics.iter_mut().find(|(k, _)| k == key) {
                    Some(m) => m.1 = value.clone(),
                    None => p.metrics.push((key.clone(), value.clone())),
                },
                Entry::Transition { task: t, to, .. } if t == task => {
                    p.state = to.to_string();
                    match to {
                        TaskState::Running => started = Some(rec.at),
                        TaskState::Done | TaskState::Failed => {
                            if let Some(s) = started.take() {
                                p.secs =
                                    Some((rec.at - s).num_milliseconds().max(0) as f64 / 1000.0);
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        points.push(p);
    }
    Ok(points)
}

/// The first and last `LOG_CAP / 2` bytes of a log, and a line between them saying what was
/// left out and how to read it whole.
fn head_and_tail(
    mut file: std::fs::File,
    len: u64,
    run: u64,
    task: &str,
    attempt: u32,
) -> std::io::Result<Vec<u8>> {
    let half = LOG_CAP / 2;
    let mut out = Vec::with_capacity(LOG_CAP as usize + 200);
    (&mut file).take(half).read_to_end(&mut out)?;
    out.extend_from_slice(
        format!(
            "\n[wf serve: {} bytes of this {len}-byte log left out here; `wf logs {run} {task} --attempt {attempt}` prints it whole]\n",
            len - 2 * half
        )
        .as_bytes(),
    );
    file.seek(SeekFrom::Start(len - half))?;
    file.take(half).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_checked() {
        assert_eq!(run_id("42"), Some(42));
        for bad in ["", "-1", "4a", "+4", "1e3", "99999999999999999999999", "٣"] {
            assert_eq!(run_id(bad), None, "{bad}");
        }
        assert!(task_name("report").is_some());
        for bad in ["..", "a/b", "a.b", "", "<x>", "-a"] {
            assert!(task_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn embeds_the_bar_and_drops_the_scriptless_policy() {
        let page = "<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">\n<title>t</title></head>\n<body>\n<main>x</main></body></html>";
        let out = embed(page, "<nav>bar</nav>");
        assert!(!out.contains("Content-Security-Policy"));
        assert!(out.contains("<script src=\"/static/wf.js\" defer></script>\n</head>"));
        assert!(out.contains("<body>\n<nav>bar</nav>\n<main>x</main>"));
    }
}
