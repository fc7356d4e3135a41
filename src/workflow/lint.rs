//! Lint warnings comparing declared data flow (inputs/outputs) with declared `needs`.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::workflow::dag;
use crate::workflow::diag::{Diagnostic, Pos};
use crate::workflow::Workflow;

/// How many output paths an "empty edge" warning lists before eliding the rest.
const LIST_MAX: usize = 3;

/// Warnings about declared data flow vs `needs`: races, read-write tasks, missing inputs and
/// `needs` edges that carry no data. Existence checks are relative to `wf.dir`.
pub fn lint(wf: &Workflow) -> Vec<Diagnostic> {
    let needs: Vec<&[usize]> = wf.tasks.iter().map(|t| t.needs_idx.as_slice()).collect();
    let mut producers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in wf.tasks.iter().enumerate() {
        for o in &t.outputs {
            producers.entry(o.as_str()).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    let path_names = crate::workflow::program::PathNames::default();
    for (b, task) in wf.tasks.iter().enumerate() {
        let pos = Pos {
            line: task.line,
            col: task.col,
        };
        let warn = |msg: String, help: Option<&str>| {
            Diagnostic::warning(&wf.file, pos, msg).with_help(help.map(str::to_string))
        };
        let mut ancestors: Option<Vec<bool>> = None;
        for input in &task.inputs {
            let writers = writers_of(&producers, input);
            if writers.is_empty() {
                if matches!(wf.dir.join(input).try_exists(), Ok(false)) {
                    out.push(warn(
                        format!(
                            "input `{input}` of `{}` is produced by no task and does not exist",
                            task.name
                        ),
                        Some("check the path, or list it in the `outputs` of the task that creates it"),
                    ));
                }
                continue;
            }
            for a in writers {
                if a == b {
                    if task.idempotent {
                        out.push(warn(
                            format!(
                                "task `{}` reads and writes `{input}`; not idempotent: re-running reads its own previous output",
                                task.name
                            ),
                            Some("write to a different path, or set `idempotent = false`"),
                        ));
                    }
                    continue;
                }
                let anc = ancestors.get_or_insert_with(|| dag::ancestors(&needs, b));
                if !anc.get(a).copied().unwrap_or(false) {
                    let writer = wf.tasks.get(a).map_or("?", |t| t.name.as_str());
                    out.push(warn(
                        format!(
                            "`{}` reads `{input}` written by `{writer}` but does not depend on it (add `{writer}` to needs)",
                            task.name
                        ),
                        Some(&format!(
                            "add `needs = [\"{writer}\"]` to [task.{}], or read another path",
                            task.name
                        )),
                    ));
                }
            }
        }
        for name in undeclared_params(wf, task) {
            let param = name.trim_start_matches("WF_PARAM_").to_ascii_lowercase();
            out.push(warn(
                format!(
                    "`{}` reads ${name}, but [params] declares no `{param}`: it will be unset",
                    task.name
                ),
                Some(&format!(
                    "declare it: add `{param} = \"DEFAULT\"` under [params]"
                )),
            ));
        }
        let unkeyed = unkeyed_vars(task);
        if !unkeyed.is_empty() {
            let names: Vec<String> = unkeyed.iter().map(|n| format!("${n}")).collect();
            let list: Vec<String> = unkeyed.iter().map(|n| format!("\"{n}\"")).collect();
            out.push(warn(
                format!(
                    "`{}` reads {} from the environment, which is not in its `env` or `env_inputs`: a change of it is not a reason to run again, so the cache may serve a result made with another value",
                    task.name,
                    names.join(", ")
                ),
                Some(&format!(
                    "add `env_inputs = [{}]` to [task.{}], or set it in `env`",
                    list.join(", "),
                    task.name
                )),
            ));
        }
        if let Some((msg, help)) = crate::workflow::program::not_found(wf, task, &path_names) {
            out.push(warn(msg, Some(&help)));
        }
        let mut seen = Vec::new();
        for &a in &task.needs_idx {
            if seen.contains(&a) {
                continue;
            }
            seen.push(a);
            let Some(up) = wf.tasks.get(a) else { continue };
            if up.outputs.is_empty()
                || up
                    .outputs
                    .iter()
                    .any(|o| task.inputs.iter().any(|i| overlaps(o, i)))
            {
                continue;
            }
            let mut list = up
                .outputs
                .iter()
                .take(LIST_MAX)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if up.outputs.len() > LIST_MAX {
                list.push_str(", …");
            }
            out.push(warn(
                format!(
                    "`{}` needs `{}` but reads none of its outputs ({list}); is an input path wrong?",
                    task.name, up.name
                ),
                Some(&format!(
                    "list the output it reads in the `inputs` of [task.{}], or drop `{}` from its needs if only the order matters",
                    task.name, up.name
                )),
            ));
        }
    }
    out
}

/// Variables the shell and the system set, which no task declares.
const STANDARD_VARS: [&str; 26] = [
    "HOME",
    "PATH",
    "PWD",
    "OLDPWD",
    "USER",
    "LOGNAME",
    "SHELL",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "TERM",
    "IFS",
    "RANDOM",
    "LINENO",
    "HOSTNAME",
    "UID",
    "EUID",
    "PPID",
    "SECONDS",
    "OPTARG",
    "OPTIND",
    "PS1",
    "PS4",
    "BASH_SOURCE",
    "FUNCNAME",
    "PIPESTATUS",
];

/// The variables a task's `run` expands (`$NAME`, `${NAME…}`, outside single quotes) that are
/// neither set by the command itself, declared in `env`/`env_inputs`, set by wf (`WF_…`) nor
/// standard: their values reach the task without being part of its cache key.
pub(crate) fn unkeyed_vars(task: &crate::workflow::Task) -> Vec<String> {
    let (used, assigned) = expansions(&task.run);
    let mut out: Vec<String> = used
        .into_iter()
        .filter(|n| {
            !n.starts_with("WF_")
                && !task.env.contains_key(n)
                && !task.env_inputs.contains(n)
                && !assigned.contains(n)
                && !STANDARD_VARS.contains(&n.as_str())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `WF_PARAM_<NAME>` variables a task's `run` expands that no `[params]` entry provides.
pub(crate) fn undeclared_params(wf: &Workflow, task: &crate::workflow::Task) -> Vec<String> {
    let (used, _) = expansions(&task.run);
    let mut out: Vec<String> = used
        .into_iter()
        .filter(|n| {
            n.strip_prefix("WF_PARAM_")
                .is_some_and(|p| !wf.params.keys().any(|k| k.to_ascii_uppercase() == p))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The variables a command expands (`$NAME`, `${NAME…}`, outside single quotes) and those it sets
/// itself (`NAME=…`, `for NAME`, `read NAME`, `local NAME`, `export NAME`).
fn expansions(run: &str) -> (Vec<String>, Vec<String>) {
    let bytes = run.as_bytes();
    let name_at = |i: usize| -> String {
        run[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut used: Vec<String> = Vec::new();
    let mut assigned: Vec<String> = Vec::new();
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if !quoted => i += 1,
            b'\'' => quoted = !quoted,
            b'$' if !quoted => {
                let start = if bytes.get(i + 1) == Some(&b'{') {
                    i + 2
                } else {
                    i + 1
                };
                let name = name_at(start.min(run.len()));
                if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                    used.push(name);
                }
            }
            c if !quoted && (c.is_ascii_alphabetic() || c == b'_') => {
                // A word: `NAME=` assigns; `for NAME`, `read [-r] NAME`, `local NAME` too.
                let at_word = i == 0
                    || !(bytes[i - 1].is_ascii_alphanumeric()
                        || bytes[i - 1] == b'_'
                        || bytes[i - 1] == b'$'
                        || bytes[i - 1] == b'{');
                if at_word {
                    let word = name_at(i);
                    let after = i + word.len();
                    if bytes.get(after) == Some(&b'=') {
                        assigned.push(word.clone());
                    } else if matches!(word.as_str(), "for" | "read" | "local" | "export" | "unset")
                    {
                        let rest = run[after..].split_whitespace();
                        for w in rest.take(3) {
                            if !w.starts_with('-') {
                                let name: String = w
                                    .chars()
                                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                                    .collect();
                                assigned.push(name);
                            }
                        }
                    }
                    i = after;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    (used, assigned)
}

/// True when the paths are equal or one is a directory containing the other.
fn overlaps(a: &str, b: &str) -> bool {
    fn under(child: &str, dir: &str) -> bool {
        child
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    }
    a == b || under(a, b) || under(b, a)
}

/// Tasks whose outputs overlap `input`: the same path, a directory containing it, or files inside it.
fn writers_of(producers: &BTreeMap<&str, Vec<usize>>, input: &str) -> Vec<usize> {
    let mut found: Vec<usize> = Vec::new();
    let mut add = |ts: &Vec<usize>| found.extend_from_slice(ts);
    if let Some(ts) = producers.get(input) {
        add(ts);
    }
    for (i, _) in input.match_indices('/') {
        if let Some(ts) = input.get(..i).and_then(|dir| producers.get(dir)) {
            add(ts);
        }
    }
    // Everything strictly inside `input/`: keys from "input/" up to "input0" ('0' follows '/').
    let lo = format!("{input}/");
    let hi = format!("{input}0");
    for (_, ts) in
        producers.range::<str, _>((Bound::Included(lo.as_str()), Bound::Excluded(hi.as_str())))
    {
        add(ts);
    }
    found.sort_unstable();
    found.dedup();
    found
}

/// A warning for each task with a `memory_limit` when this machine cannot enforce it with a
/// cgroup (`enforced` is false): wf then sets an address-space limit (RLIMIT_AS), which counts
/// virtual memory, not resident memory, and makes an allocation fail rather than kill the task.
pub fn memory_limits(wf: &Workflow, enforced: bool) -> Vec<Diagnostic> {
    if enforced {
        return Vec::new();
    }
    wf.tasks
        .iter()
        .filter_map(|t| {
            let limit = t.memory_limit?;
            let pos = Pos {
                line: t.line,
                col: 0,
            };
            Some(
                Diagnostic::warning(
                    &wf.file,
                    pos,
                    format!(
                        "`memory_limit` of `{}` ({}) cannot be enforced with a cgroup here; it is applied as an address-space limit (ulimit -v), which counts virtual memory and makes allocations fail instead of killing the task",
                        t.name,
                        crate::workflow::show_size(limit)
                    ),
                )
                .with_help(Some(
                    "run wf as root or in a cgroup v2 that delegates the memory controller for a resident-memory limit".to_string(),
                )),
            )
        })
        .collect()
}

#[cfg(test)]
mod env_tests {
    use super::*;

    fn vars(run: &str, extra: &str) -> Vec<String> {
        let src = format!("[task.t]\nrun = '''{run}'''\n{extra}\n");
        match crate::workflow::parse_str(&src, std::path::Path::new("/tmp/x/wf.toml"), false) {
            Ok(wf) => wf.task("t").map(unkeyed_vars).unwrap_or_default(),
            Err(d) => panic!("{d:?}"),
        }
    }

    #[test]
    fn variables_a_task_reads_without_declaring_them_are_found() {
        assert_eq!(vars("python train.py --alpha $ALPHA", ""), vec!["ALPHA"]);
        assert_eq!(
            vars("echo ${ALPHA:-1} ${BETA}x $GAMMA_2", ""),
            vec!["ALPHA", "BETA", "GAMMA_2"]
        );
        // Declared, set by wf, standard, assigned by the command, quoted or escaped: fine.
        assert!(vars("echo $ALPHA", "env_inputs = [\"ALPHA\"]").is_empty());
        assert!(vars("echo $ALPHA", "env = { ALPHA = \"1\" }").is_empty());
        assert!(vars("echo $WF_PARAM_DAY $WF_RUN_ID $HOME $PATH", "").is_empty());
        assert!(vars("X=1; echo $X; for f in a b; do echo $f; done", "").is_empty());
        assert!(vars("read -r line; echo $line", "").is_empty());
        assert!(vars("echo '$ALPHA' \\$BETA $1 $? $$ $@", "").is_empty());
        assert!(vars("echo é$ALPHAé", "").contains(&"ALPHA".to_string()));
    }

    #[test]
    fn parameters_a_task_reads_must_be_declared() {
        let src =
            "[params]\nday = \"today\"\n[task.t]\nrun = 'echo $WF_PARAM_DAY ${WF_PARAM_MODE}'\n";
        let wf =
            match crate::workflow::parse_str(src, std::path::Path::new("/tmp/x/wf.toml"), false) {
                Ok(wf) => wf,
                Err(d) => panic!("{d:?}"),
            };
        let Some(t) = wf.task("t") else { panic!() };
        assert_eq!(undeclared_params(&wf, t), vec!["WF_PARAM_MODE"]);
        let warnings = lint(&wf);
        assert!(warnings
            .iter()
            .any(|w| w.to_string().contains("declares no `mode`")));
        assert!(unkeyed_vars(t).is_empty());
    }
}
