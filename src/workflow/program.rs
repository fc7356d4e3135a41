//! The `wf check` warning for a task whose command is not found: the first word of its `run` is
//! neither a shell keyword or builtin, nor an executable on the PATH, nor a file of the workflow
//! directory. A warning only: the PATH when the task runs may differ from the one `wf check` sees.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::workflow::{Task, Workflow};

/// Words `sh` runs without looking on the PATH: POSIX keywords and special/regular builtins, and
/// the common ones of dash and bash.
const SHELL_WORDS: &[&str] = &[
    "!", ".", ":", "[", "[[", "{", "}", "alias", "bg", "break", "builtin", "case", "cd", "command",
    "continue", "declare", "do", "done", "echo", "elif", "else", "esac", "eval", "exec", "exit",
    "export", "false", "fc", "fg", "fi", "for", "function", "getopts", "hash", "if", "in", "jobs",
    "kill", "let", "local", "printf", "pwd", "read", "readonly", "return", "select", "set",
    "shift", "source", "test", "then", "time", "times", "trap", "true", "type", "typeset",
    "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
];

/// The first word of a shell command line when it can be known without running a shell: leading
/// blank lines, comments and `NAME=value` assignments skipped. None when the word is built by
/// the shell (quotes, `$`, backquotes, globs, escapes) or the line starts with other syntax.
pub fn first_word(run: &str) -> Option<&str> {
    let mut rest = run;
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix('#') {
            rest = comment.split_once('\n').map_or("", |(_, r)| r);
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || ";&|<>()".contains(c))
            .unwrap_or(rest.len());
        let word = rest.get(..end)?;
        if word.is_empty() {
            return None;
        }
        if word.contains(['$', '`', '"', '\'', '\\', '*', '?', '~']) {
            return None;
        }
        let assignment = word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        });
        if assignment {
            rest = rest.get(end..)?;
            continue;
        }
        return Some(word);
    }
}

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What is wrong with the program `task` runs, and a help line; None when it is found (or cannot
/// be known before the run).
/// Names of the PATH's executables, read at the first miss and kept for the rest of a lint.
#[derive(Default)]
pub struct PathNames {
    listed: std::cell::OnceCell<(String, Vec<String>)>,
    /// The suggestion found for each missing word (a workflow repeats its commands).
    nearest: std::cell::RefCell<std::collections::HashMap<(String, String), Option<String>>>,
}

pub fn not_found(wf: &Workflow, task: &Task, seen: &PathNames) -> Option<(String, String)> {
    let word = first_word(&task.run)?;
    if SHELL_WORDS.contains(&word) {
        return None;
    }
    // No file name is longer than 255 bytes (NAME_MAX): such a word is never found, and is shown
    // shortened.
    if word.split('/').any(|part| part.len() > 255) {
        let mut cut = 64;
        while !word.is_char_boundary(cut) {
            cut -= 1;
        }
        return Some((
            format!(
                "`{}` runs `{}…` ({} bytes), which is longer than any file name: the task will fail with exit 127",
                task.name,
                &word[..cut],
                word.len()
            ),
            "check the command: its first word is not a program".to_string(),
        ));
    }
    if word.contains('/') {
        // A path: relative to the workflow directory, where tasks run.
        let path = wf.dir.join(word);
        let produced = wf
            .tasks
            .iter()
            .flat_map(|t| t.outputs.iter())
            .any(|o| Path::new(o) == Path::new(word.trim_start_matches("./")));
        if produced {
            return None;
        }
        return match std::fs::metadata(&path) {
            Err(_) => Some((
                format!(
                    "`{}` runs `{word}`, which does not exist in the workflow directory: the task will fail with exit 127",
                    task.name
                ),
                "check the path (relative paths are taken from the workflow directory)".to_string(),
            )),
            Ok(m) if m.is_dir() => Some((
                format!("`{}` runs `{word}`, which is a directory", task.name),
                "name the program inside it".to_string(),
            )),
            Ok(_) if !executable(&path) => Some((
                format!(
                    "`{}` runs `{word}`, which is not executable: the task will fail with exit 126",
                    task.name
                ),
                format!("make it executable (`chmod +x {word}`) or run it with its interpreter (`sh {word}`)"),
            )),
            Ok(_) => None,
        };
    }
    let path = match task.env.get("PATH") {
        // A PATH built from other variables cannot be known before the run.
        Some(p) if p.contains('$') => return None,
        Some(p) => p.clone(),
        None => std::env::var("PATH").unwrap_or_default(),
    };
    let dirs: Vec<std::path::PathBuf> = path.split(':').map(|d| wf.dir.join(d)).collect();
    if dirs.iter().any(|d| executable(&d.join(word))) {
        return None;
    }
    let mut help = "check the spelling, or install it; `wf check` looks on its own PATH, which may differ from the run's".to_string();
    let key = (path.clone(), word.to_string());
    let known = seen.nearest.borrow().get(&key).cloned();
    let near = match known {
        Some(near) => near,
        None => {
            let (listed, names) = seen
                .listed
                .get_or_init(|| (path.clone(), executables(&dirs)));
            let near = if *listed == path {
                nearest(word, names)
            } else {
                nearest(word, &executables(&dirs))
            };
            seen.nearest.borrow_mut().insert(key, near.clone());
            near
        }
    };
    if let Some(near) = near {
        help = format!("did you mean `{near}`? {help}");
    }
    Some((
        format!(
            "`{}` runs `{word}`, which is not a shell builtin, not on the PATH and not a file in the workflow directory: the task will fail with exit 127",
            task.name
        ),
        help,
    ))
}

/// Edits between two names, counting a swap of two neighbouring letters as one (optimal string
/// alignment): `pyhton` is one edit from `python`.
fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            let v = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[(i - 1) * w + j] + 1)
                    .min(d[i * w + j - 1] + 1)
                    .min(d[(i - 1) * w + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[(i - 2) * w + j - 2] + 1);
                }
                v
            };
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The executable on the PATH or the shell word whose name is closest to `word`: one edit for
/// names of up to six letters, two for longer ones. The PATH's names are listed once per lint.
fn nearest(word: &str, names: &[String]) -> Option<String> {
    let n = word.chars().count();
    let limit = match n {
        0..=2 => return None,
        3..=6 => 1,
        _ => 2,
    };
    SHELL_WORDS
        .iter()
        .copied()
        .chain(names.iter().map(String::as_str))
        .filter(|name| name.len().abs_diff(word.len()) <= limit)
        .map(|name| (edits(word, name), name))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, name)| name.to_string())
}

/// The names of the executables in `dirs` (listed once, for suggestions).
fn executables(dirs: &[std::path::PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            if let Some(name) = e.file_name().to_str() {
                if executable(&e.path()) {
                    out.push(name.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{edits, first_word};

    #[test]
    fn a_swap_is_one_edit() {
        assert_eq!(edits("pyhton", "python"), 1);
        assert_eq!(edits("grpe", "grep"), 1);
        assert_eq!(edits("mytool", "keytool"), 2);
        assert_eq!(edits("", "ab"), 2);
        assert_eq!(edits("same", "same"), 0);
    }

    #[test]
    fn the_first_word_is_found_or_left_unknown() {
        for (run, want) in [
            ("python3 x.py", Some("python3")),
            ("  \n# comment\npyhton x.py", Some("pyhton")),
            ("A=1 B=\"x\" tool --flag", None),
            ("A=1 B=2 tool --flag", Some("tool")),
            ("./tasks/ingest.sh > out", Some("./tasks/ingest.sh")),
            ("cat<in>out", Some("cat")),
            ("(cd x && make)", None),
            ("$CMD arg", None),
            ("\"quoted prog\" arg", None),
            ("~/bin/x", None),
            ("", None),
            ("echo hi; pyhton", Some("echo")),
        ] {
            assert_eq!(first_word(run), want, "{run:?}");
        }
    }
}
