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
    for (b, task) in wf.tasks.iter().enumerate() {
        let pos = Pos {
            line: task.line,
            col: 0,
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
                        None,
                    ));
                }
            }
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
                None,
            ));
        }
    }
    out
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
