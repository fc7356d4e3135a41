//! `wf serve`: a local web dashboard and JSON API over the journal, served by the same binary.
//! Readers open the state per request exactly as `wf status` does (never the writer lock);
//! approvals and rejections need the token and go through the same command functions as
//! `wf approve` and `wf reject`, the approved run continuing in a thread of this process.
//! The HTTP side is a small synchronous server (`http.rs`): a thread per connection (bounded)
//! reads the request and writes the answer; one worker thread answers the requests in turn, so
//! the state is opened by one thread at a time and its memory stays one thread's.

mod auth;
mod http;
mod pages;
mod routes;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cli::ServeArgs;
use crate::context::{self, Ctx, Reader};
use crate::error::{code, Error, Result};
use crate::render::console::Tone;

/// At most this many connections are served at once; more are answered 503 at once.
const MAX_CONNECTIONS: usize = 64;

/// A request for the worker, and where its answer goes.
pub(crate) type Job = (http::Request, mpsc::Sender<http::Response>);

/// What every request thread shares.
pub(crate) struct Shared {
    pub token: String,
    /// The address actually listened on.
    pub addr: SocketAddr,
    /// Listening on a non-loopback address: reading needs the token too.
    pub public: bool,
    /// Who an approval is journaled as when the request names no one.
    pub user: String,
    /// The workflow's name, for page titles.
    pub workflow: String,
    /// One reader of the state at a time in this process: each open replays the index's delta
    /// log (and what the index lacks of the record log) into memory, so a burst of requests
    /// costs one open at a time, not one per request at once.
    pub store: Mutex<()>,
    /// Requests for the worker thread, which answers them one at a time.
    pub jobs: mpsc::Sender<Job>,
    /// Approved runs continuing in the background (joined before the server exits).
    pub approvals: Mutex<Vec<JoinHandle<()>>>,
    active: AtomicUsize,
}

impl Shared {
    /// Open the state for reading (as `wf status` does), run `f`, and close it again, so that
    /// the next request sees what a `wf run` started meanwhile journaled.
    pub fn read<T>(&self, ctx: &Ctx, f: impl FnOnce(&mut Reader) -> Result<T>) -> Result<T> {
        let _one = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let mut reader = ctx.read()?;
        f(&mut reader)
    }

    /// Run `f`, which opens the state itself, as the only reader of this process.
    pub fn alone<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _one = self.store.lock().unwrap_or_else(|e| e.into_inner());
        f()
    }
}

fn listen_error(addr: SocketAddr, e: &std::io::Error) -> Error {
    let why = match e.kind() {
        std::io::ErrorKind::AddrInUse => "the address is in use".to_string(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges)".to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => "no interface of this machine has it".to_string(),
        _ => e.kind().to_string(),
    };
    Error::Usage(format!(
        "cannot listen on {addr}: {why}; pick another address with --addr IP:PORT"
    ))
}

pub fn serve(ctx: &Ctx, args: &ServeArgs) -> Result<i32> {
    let addr: SocketAddr = args.addr.parse().map_err(|_| {
        Error::Usage(format!(
            "--addr `{}` is not an address like 127.0.0.1:8421",
            args.addr.escape_debug()
        ))
    })?;
    let from_env = std::env::var(auth::TOKEN_VAR)
        .ok()
        .filter(|t| !t.is_empty());
    if let Some(t) = &from_env {
        if !auth::acceptable(t) {
            return Err(Error::Usage(format!(
                "{} must be {} to 512 printable characters without spaces, quotes, `;` or `,`; set a longer random one (e.g. `openssl rand -hex 32`)",
                auth::TOKEN_VAR,
                auth::MIN_TOKEN
            )));
        }
    }
    let public = !addr.ip().is_loopback();
    if public && from_env.is_none() {
        return Err(Error::Usage(format!(
            "{addr} is reachable from other machines, so wf serve needs a token you chose: set {} (e.g. to `openssl rand -hex 32`), or listen on 127.0.0.1",
            auth::TOKEN_VAR
        )));
    }
    let token = match &from_env {
        Some(t) => t.clone(),
        None => auth::random_token().map_err(Error::io(
            "reading random bytes for the token",
            "/dev/urandom",
        ))?,
    };
    let workflow = ctx
        .workflow()
        .map(|w| w.name)
        .ok()
        .or_else(|| {
            ctx.read()
                .ok()
                .and_then(|mut r| r.snapshot(None).ok().flatten())
                .map(|s| s.run.workflow)
        })
        .unwrap_or_else(|| "wf".into());
    let listener = TcpListener::bind(addr).map_err(|e| listen_error(addr, &e))?;
    let local = listener
        .local_addr()
        .map_err(Error::io("reading the listening address", addr.to_string()))?;
    listener.set_nonblocking(true).map_err(Error::io(
        "setting up the listening socket",
        local.to_string(),
    ))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(Error::io("installing the signal handlers", "wf serve"))?;
    }
    let (jobs, queue) = mpsc::channel::<Job>();
    let shared = Arc::new(Shared {
        token,
        addr: local,
        public,
        user: args.user.clone().unwrap_or_else(context::user),
        workflow,
        store: Mutex::new(()),
        jobs,
        approvals: Mutex::new(Vec::new()),
        active: AtomicUsize::new(0),
    });
    if public {
        ctx.out.alert(&format!(
            "wf: warning: listening on {local}, which other machines can reach; every request needs the token, and anyone who has it can read every run and approve or reject gates"
        ));
    }
    ctx.out.event(
        Tone::Good,
        "●",
        &format!(
            "serving the runs of {} at http://{local}/ (Ctrl-C stops)",
            shared.workflow
        ),
    );
    if from_env.is_some() {
        ctx.out.event(
            Tone::Plain,
            "●",
            &format!(
                "approving and rejecting need the token in {}: open http://{local}/?token=… once, or send `Authorization: Bearer …`",
                auth::TOKEN_VAR
            ),
        );
    } else {
        ctx.out.event(
            Tone::Plain,
            "●",
            &format!(
                "to approve and reject from the page, open http://{local}/?token={} (printed only now; set {} to choose the token)",
                shared.token,
                auth::TOKEN_VAR
            ),
        );
    }
    let wctx = ctx.worker(vec!["wf".into(), "serve".into()], true);
    let sh = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("wf-serve-worker".into())
        .spawn(move || routes::worker(&wctx, &sh, queue))
        .map_err(Error::io("starting the request worker", "wf serve"))?;
    accept_loop(&listener, &shared, &stop);
    ctx.out.event(
        Tone::Plain,
        "●",
        "stopping: waiting for approved runs to stop",
    );
    let pending: Vec<_> =
        std::mem::take(&mut *shared.approvals.lock().unwrap_or_else(|e| e.into_inner()));
    for h in pending {
        let _ = h.join();
    }
    Ok(code::OK)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, stop: &AtomicBool) {
    use std::os::fd::AsFd;
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                dispatch(shared, stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let fd = listener.as_fd();
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 250_000_000,
                };
                let _ = rustix::event::poll(&mut fds, Some(&timeout));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Out of descriptors, a connection reset before accept: keep serving.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
        reap_approvals(shared);
    }
}

/// Forget approval threads that have ended.
fn reap_approvals(shared: &Shared) {
    let mut a = shared.approvals.lock().unwrap_or_else(|e| e.into_inner());
    let (done, running): (Vec<_>, Vec<_>) = a.drain(..).partition(|h| h.is_finished());
    *a = running;
    for h in done {
        let _ = h.join();
    }
}

/// Serve one connection on its own thread (or refuse it when too many are open).
fn dispatch(shared: &Arc<Shared>, mut stream: TcpStream) {
    if shared.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        let _ = http::Response::text(503, "too many connections; try again in a moment\n".into())
            .send(&mut stream, false);
        return;
    }
    let sh = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("wf-serve".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            routes::connection(&sh, stream);
            sh.active.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}
