//! A command without shell syntax is exec'd without `/bin/sh` (src/engine/direct.rs): the task
//! must not be able to tell. Each command here runs twice — directly, and with `WF_EXEC=shell`
//! forcing the shell — and its output, exit code and outcome must be the same.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::Workdir;

/// A workflow directory (kept while the value lives, when it owns one) and the path wf is given.
struct T {
    _keep: Option<Workdir>,
    dir: PathBuf,
}

impl T {
    fn new() -> T {
        let w = Workdir::new("");
        let dir = w.dir.clone();
        T {
            _keep: Some(w),
            dir,
        }
    }

    fn write(&self, rel: &str, text: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn wf(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        // The one test environment (tests/common): no WF_EXEC or WF_CRASH_POINT inherited.
        let mut c = common::command(&self.dir, &self.dir);
        c.args(["-C", &self.dir.to_string_lossy()]).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run wf");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        out
    }

    /// Run a one-task workflow with `run` (and `env`) afresh; its exit code, and the task's
    /// captured output with the state directory's path taken out.
    fn outcome(&self, run: &str, extra: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
        let _ = std::fs::remove_dir_all(self.dir.join(".wf"));
        let toml = format!(
            "[workflow]\nname = \"d\"\n[task.t]\nrun = \"{}\"\n{extra}\n",
            run.replace('\\', "\\\\").replace('"', "\\\"")
        );
        std::fs::write(self.dir.join("wf.toml"), toml).expect("write wf.toml");
        let code = self.wf(&["-q", "run"], env).status.code();
        let logs = self.wf(&["logs", "1", "t", "--raw"], &[]);
        let text = String::from_utf8_lossy(&logs.stdout).into_owned();
        (code, text)
    }
}

#[test]
fn a_plain_command_behaves_exactly_as_under_the_shell() {
    let t = T::new();
    // `$0` and the arguments of a script, as the kernel and the shell pass them.
    t.write(
        "bin/show",
        "#!/bin/sh\necho \"0=$0 #=$# 1=$1 2=$2\"\nexit 3\n",
        0o755,
    );
    // No `#!`: the shell runs it as a script (exec gives ENOEXEC).
    t.write("bin/plain", "echo plain script\n", 0o755);
    // Not executable: the shell says so, exit 126.
    t.write("bin/noexec", "#!/bin/sh\necho never\n", 0o644);
    // A missing interpreter: exec fails, the shell reports it.
    t.write("bin/badinterp", "#!/nonexistent/interp\n", 0o755);
    let path = format!("{}/bin:/usr/bin:/bin", t.dir.display());
    let env_path = format!("env = {{ PATH = \"{path}\" }}");
    let cases: Vec<(&str, String)> = vec![
        ("printenv PWD", String::new()),
        ("printenv WF_TASK", String::new()),
        ("bin/show a b", String::new()),
        ("./bin/show  a\tb", String::new()),
        ("show x", env_path.clone()),
        ("bin/plain", String::new()),
        ("bin/noexec", String::new()),
        ("bin/badinterp", String::new()),
        ("no-such-program-7q x", String::new()),
        ("bin/missing", String::new()),
        ("true", String::new()),
        ("false", String::new()),
        ("ls -d bin", String::new()),
    ];
    for (run, extra) in cases {
        let direct = t.outcome(run, &extra, &[]);
        let shell = t.outcome(run, &extra, &[("WF_EXEC", "shell")]);
        assert_eq!(direct, shell, "{run:?} differs without the shell");
    }
    // A program killed by a signal: `sh -c` reports exit 128+N (dash also prints the signal's
    // name, "Terminated", to the task's stderr — the one documented difference, so only the
    // exit code is compared here).
    t.write("bin/suicide", "#!/bin/sh\nkill -TERM $$\n", 0o755);
    let direct = t.outcome("bin/suicide", "", &[]);
    let out = t.wf(&["--json", "history", "1"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("143"), "exit 128+15 journaled: {text}");
    let shell = t.outcome("bin/suicide", "", &[("WF_EXEC", "shell")]);
    assert_eq!(direct.0, shell.0);
    // And the cases say what the shell says.
    let (code, text) = t.outcome("bin/show a b", "", &[]);
    assert_eq!(code, Some(1));
    assert!(text.contains("0=bin/show #=2 1=a 2=b"), "{text}");
    let (_, text) = t.outcome("printenv PWD", "", &[]);
    assert_eq!(text.trim(), t.dir.display().to_string());
    let (code, text) = t.outcome("bin/plain", "", &[]);
    assert_eq!((code, text.trim()), (Some(0), "plain script"));
    let (code, _) = t.outcome("false", "", &[]);
    assert_eq!(code, Some(1));
}

#[test]
fn a_task_sees_pwd_as_the_shell_exports_it() {
    let t = T::new();
    std::fs::create_dir_all(t.dir.join("w")).expect("mkdir");
    std::os::unix::fs::symlink(t.dir.join("w"), t.dir.join("l")).expect("symlink");
    let sub = T {
        _keep: None,
        dir: t.dir.join("l"),
    };
    // wf started in the linked directory with PWD naming it: kept as the logical path; with a
    // stale PWD: the physical one. The shell does the same.
    for pwd in [t.dir.join("l"), PathBuf::from("/")] {
        let pwd = pwd.display().to_string();
        let direct = sub.outcome("printenv PWD", "", &[("PWD", &pwd)]);
        let shell = sub.outcome("printenv PWD", "", &[("PWD", &pwd), ("WF_EXEC", "shell")]);
        assert_eq!(direct, shell, "PWD={pwd}");
    }
}
