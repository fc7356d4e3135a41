//! Running a task's command without a shell when the shell would do nothing but split it into
//! words and exec it, as make does: one exec per attempt instead of two (`/bin/sh`, then the
//! program). The rule is deliberately narrow, so the task cannot tell the difference:
//!
//! - the command is made only of the characters `A–Z a–z 0–9 - _ . / , : + @` and spaces or tabs
//!   (no quoting, expansion, globbing, redirection, operator, comment, assignment or newline);
//! - its first word is not a shell reserved word or builtin (`cd`, `echo`, `exec`, `exit`,
//!   `set`, `.`, `:`…; `true` and `false` only without arguments, where builtin and program agree);
//! - the program is found as `sh` would find it: a word with a `/` is a path (relative to the
//!   workflow directory), any other is looked up in the task's `PATH` (absolute entries only, a
//!   regular executable file), and argv[0] is the word as written;
//! - the environment is the shell's: `PWD` is set as `sh` (dash) sets it — kept when it names
//!   the working directory, else that directory's physical path.
//!
//! Anything else — and any failure to exec the program (a script without `#!`, a permission
//! error, a missing interpreter) — runs `/bin/sh -c RUN` as always, so the shell reports it with
//! its own words and exit code (126, 127). `WF_EXEC=shell` in wf's environment turns the direct
//! path off (docs/workflow.md).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Reserved words and builtins of a POSIX shell (dash's set included): never exec'd directly.
const SHELL_WORDS: &[&str] = &[
    "!",
    "{",
    "}",
    "case",
    "do",
    "done",
    "elif",
    "else",
    "esac",
    "fi",
    "for",
    "function",
    "if",
    "in",
    "select",
    "then",
    "until",
    "while",
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "break",
    "builtin",
    "cd",
    "chdir",
    "command",
    "continue",
    "echo",
    "eval",
    "exec",
    "exit",
    "export",
    "fc",
    "fg",
    "getopts",
    "hash",
    "jobs",
    "kill",
    "let",
    "local",
    "printf",
    "pwd",
    "read",
    "readonly",
    "return",
    "set",
    "shift",
    "source",
    "test",
    "times",
    "trap",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
    // bash's, where /bin/sh is bash
    "time",
    "coproc",
    "declare",
    "shopt",
    "enable",
    "disown",
    "suspend",
    "logout",
    "mapfile",
    "readarray",
    "dirs",
    "pushd",
    "popd",
    "history",
    "help",
    "bind",
    "caller",
    "compgen",
    "complete",
    "compopt",
];

/// The words of `command` when it needs no shell (see the module's rule), else None.
pub fn words(command: &str) -> Option<Vec<&str>> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_./,:+@".contains(&b);
    if !command.bytes().all(|b| plain(b) || b == b' ' || b == b'\t') {
        return None;
    }
    let words: Vec<&str> = command
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect();
    let first = *words.first()?;
    if SHELL_WORDS.contains(&first) {
        return None;
    }
    if matches!(first, "true" | "false") && words.len() > 1 {
        return None;
    }
    Some(words)
}

/// The program `word` names, found as `sh` would find it: the path as written when it has a
/// `/` (relative to the task's working directory), else the first regular, executable file `ENTRY/word` of `path` (None when there
/// is none, when `path` has an empty or relative entry, or when it is unset: the shell then
/// decides, with its own rules and messages).
pub fn program(word: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    if word.contains('/') {
        // Exec'd as written, from the task's working directory, as the shell does.
        return Some(PathBuf::from(word));
    }
    for entry in path?.as_bytes().split(|&b| b == b':') {
        if !entry.starts_with(b"/") {
            return None;
        }
        // Joined as the shell joins them (`ENTRY/word`, also after a trailing slash), so a
        // script sees the same `$0`.
        let mut candidate = entry.to_vec();
        candidate.push(b'/');
        candidate.extend_from_slice(word.as_bytes());
        let candidate = PathBuf::from(std::ffi::OsStr::from_bytes(&candidate));
        let executable = std::fs::metadata(&candidate).is_ok_and(|m| m.is_file())
            && rustix::fs::access(&candidate, rustix::fs::Access::EXEC_OK).is_ok();
        if executable {
            return Some(candidate);
        }
    }
    None
}

/// The `PWD` a POSIX shell started in `dir` would export: `inherited` when it is an absolute
/// path naming `dir` (same device and inode), else `dir`'s physical path (None when it cannot
/// be resolved: the shell then decides).
pub fn pwd(dir: &Path, inherited: Option<&std::ffi::OsStr>) -> Option<OsString> {
    // Every attempt of a run asks the same question (the workflow directory, wf's PWD): the
    // answer is kept for a few seconds, so a burst of short attempts costs no `stat` of either,
    // and a long-lived process (`wf serve`) still sees a directory or a link that changed.
    type Memo = Option<(
        std::time::Instant,
        (PathBuf, Option<OsString>),
        Option<OsString>,
    )>;
    const FRESH: std::time::Duration = std::time::Duration::from_secs(5);
    static LAST: std::sync::Mutex<Memo> = std::sync::Mutex::new(None);
    let key = (
        dir.to_path_buf(),
        inherited.map(std::ffi::OsStr::to_os_string),
    );
    let now = std::time::Instant::now();
    if let Ok(last) = LAST.lock() {
        if let Some((at, k, answer)) = last.as_ref() {
            if *k == key && now.duration_since(*at) < FRESH {
                return answer.clone();
            }
        }
    }
    let answer = resolve_pwd(dir, inherited);
    if let Ok(mut last) = LAST.lock() {
        *last = Some((now, key, answer.clone()));
    }
    answer
}

fn resolve_pwd(dir: &Path, inherited: Option<&std::ffi::OsStr>) -> Option<OsString> {
    let here = std::fs::metadata(dir).ok()?;
    if let Some(p) = inherited {
        let p = Path::new(p);
        let same = p.is_absolute()
            && std::fs::metadata(p).is_ok_and(|m| m.dev() == here.dev() && m.ino() == here.ino());
        if same {
            return Some(p.as_os_str().to_os_string());
        }
    }
    std::fs::canonicalize(dir).ok().map(PathBuf::into_os_string)
}

/// Whether `WF_EXEC=shell` turned the direct path off.
pub fn disabled() -> bool {
    std::env::var_os("WF_EXEC").is_some_and(|v| v == "shell")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_commands_skip_the_shell() {
        assert_eq!(words("touch out/t1"), Some(vec!["touch", "out/t1"]));
        assert_eq!(
            words("  python3\t-m  tool --x=1 "),
            None,
            "`=` may be an assignment"
        );
        assert_eq!(
            words(" python3\t-m  tool "),
            Some(vec!["python3", "-m", "tool"])
        );
        assert_eq!(words("true"), Some(vec!["true"]));
        for shell in [
            "",
            "   ",
            "true --help",
            "echo hi",
            "cd x",
            "exit 3",
            "a; b",
            "a && b",
            "a | b",
            "a > f",
            "a < f",
            "$HOME/x",
            "x $Y",
            "x ${Y}",
            "x `y`",
            "x 'a b'",
            "x \"a b\"",
            "x a\\ b",
            "x *.c",
            "x a?",
            "x [ab]",
            "x ~/a",
            "x # c",
            "X=1 y",
            "x\ny",
            "x &",
            "(x)",
            "{ x; }",
            "x %1",
            "! x",
            "if",
            ". ./env",
            ": nothing",
            "x é",
            "set -e",
            "[ -f x ]",
        ] {
            assert_eq!(words(shell), None, "{shell:?} needs the shell");
        }
    }

    #[test]
    fn programs_are_found_as_the_shell_finds_them() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir()?;
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(&a)?;
        std::fs::create_dir_all(&b)?;
        // Not executable in a, executable in b: b's is the one.
        std::fs::write(a.join("tool"), "#!/bin/sh\n")?;
        std::fs::write(b.join("tool"), "#!/bin/sh\n")?;
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755))?;
        // A directory named like a program is skipped.
        std::fs::create_dir_all(a.join("dir"))?;
        let path = std::env::join_paths([&a, &b])?;
        assert_eq!(program("tool", Some(&path)), Some(b.join("tool")));
        assert_eq!(program("dir", Some(&path)), None);
        assert_eq!(program("missing", Some(&path)), None);
        assert_eq!(program("tool", None), None);
        // An empty or relative entry means the current directory: left to the shell.
        assert_eq!(program("tool", Some("::/bin".as_ref())), None);
        assert_eq!(program("tool", Some("rel:/bin".as_ref())), None);
        assert_eq!(program("./x/tool", Some(&path)), Some("./x/tool".into()));
        // Joined as the shell joins them: `$0` of a script is the same.
        let slash = std::env::join_paths([format!("{}/", b.display())])?;
        assert_eq!(
            program("tool", Some(&slash)),
            Some(format!("{}//tool", b.display()).into())
        );
        Ok(())
    }

    #[test]
    fn pwd_is_what_the_shell_exports() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let real = std::fs::canonicalize(d.path())?;
        std::fs::create_dir_all(real.join("w"))?;
        std::os::unix::fs::symlink(real.join("w"), real.join("l"))?;
        let w = real.join("w");
        // Inherited and naming the directory (through a link): kept as it is.
        assert_eq!(
            pwd(&w, Some(real.join("l").as_os_str())),
            Some(real.join("l").into_os_string())
        );
        // Naming another directory, relative, or absent: the physical path.
        assert_eq!(
            pwd(&w, Some(real.as_os_str())),
            Some(w.clone().into_os_string())
        );
        assert_eq!(
            pwd(&w, Some("w".as_ref())),
            Some(w.clone().into_os_string())
        );
        assert_eq!(pwd(&real.join("l"), None), Some(w.into_os_string()));
        Ok(())
    }
}
