//! The `powercut` command: mount a power-cut filesystem and keep it mounted until SIGINT/SIGTERM.
//! `echo cut > MOUNT/.powercut` cuts the power (every operation then fails with EIO); after the
//! processes that used it are gone, `echo on > MOUNT/.powercut` mounts the backing directory again.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use powercut::{Control, Mount, Names, Options};

const USAGE: &str = "usage: powercut BACKING MOUNTPOINT [--random-pages SEED] [--journaled-names]

Mounts BACKING at MOUNTPOINT. Writes reach BACKING only when fsynced (names: when their
directory is fsynced; with --journaled-names, at any fsync). `echo cut > MOUNTPOINT/.powercut`
cuts the power; `echo on > MOUNTPOINT/.powercut` mounts BACKING again; `cat` it for counters.
--random-pages SEED: at a cut, keep each unsynced 4 KiB page with probability 1/2.";

fn parse() -> Result<(PathBuf, PathBuf, Options), String> {
    let mut args = std::env::args().skip(1);
    let mut paths = Vec::new();
    let mut options = Options::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--random-pages" => {
                let seed = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--random-pages needs a number")?;
                options.random_pages = Some(seed);
            }
            "--journaled-names" => options.names = Names::Journaled,
            "-h" | "--help" => return Err(String::new()),
            _ => paths.push(PathBuf::from(a)),
        }
    }
    match <[PathBuf; 2]>::try_from(paths) {
        Ok([b, m]) => Ok((b, m, options)),
        Err(_) => Err("expected BACKING and MOUNTPOINT".into()),
    }
}

/// Block SIGINT and SIGTERM in every thread (call before any thread starts), and wait for them
/// in one thread that tells the main loop to quit.
fn quit_on_signals(tx: std::sync::mpsc::Sender<Control>, set: libc::sigset_t) {
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is an initialised signal set; sigwait writes the signal number.
        unsafe { libc::sigwait(&set, &mut sig) };
        let _ = tx.send(Control::Quit);
    });
}

fn blocked_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on a local, zero-initialised sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn main() -> ExitCode {
    let (backing, mountpoint, options) = match parse() {
        Ok(x) => x,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("powercut: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let set = blocked_signals();
    let mut mount = match Mount::new(&backing, &mountpoint, options) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("powercut: cannot mount {}: {e}", mountpoint.display());
            return ExitCode::from(1);
        }
    };
    quit_on_signals(mount.control_sender(), set);
    eprintln!(
        "powercut: {} mounted at {} (echo cut > {}/.powercut)",
        backing.display(),
        mountpoint.display(),
        mountpoint.display()
    );
    loop {
        match mount.next_control(Duration::from_secs(3600)) {
            Some(Control::Quit) => break,
            Some(Control::PoweredOff) => {
                if let Some(r) = mount.cut_report() {
                    eprintln!("powercut: power cut; lost:");
                    for line in r.volatile {
                        eprintln!("  {line}");
                    }
                }
            }
            Some(Control::PowerOn) => match mount.power_on() {
                Ok(_) => eprintln!("powercut: mounted again from {}", backing.display()),
                Err(e) => {
                    eprintln!("powercut: cannot mount again: {e}");
                    return ExitCode::from(1);
                }
            },
            None => {}
        }
    }
    mount.unmount();
    ExitCode::SUCCESS
}
