//! `wf export --to github-actions`: a GitHub Actions workflow with one job per task, `needs:`
//! mirroring the DAG, retries as a shell loop, and outputs passed between runners as artifacts.

use std::path::Path;

use super::yaml::{self, MapB, Y};
use super::{
    ceil_secs, file_stem, hash_comment, header, human, not_carried, sh_quote, task_notes,
    task_script, Options, Target,
};
use crate::workflow::{Task, Workflow};

pub(crate) fn export(wf: &Workflow, opts: &Options) -> Result<Vec<(String, String)>, String> {
    let dir = checkout_dir(wf, opts);
    let file = format!("wf-{}.yml", file_stem(&wf.name));

    let mut c = header(wf, Target::GithubActions);
    c.extend(not_carried("GitHub Actions"));
    c.extend([
        String::new(),
        format!("Put this file in .github/workflows/ of the repository; the workflow directory is `{dir}`"),
        "in the checkout (override with --workdir).".into(),
        "Each job runs on its own runner, so files do not flow from task to task by themselves:".into(),
        "a task's declared `outputs` are uploaded with actions/upload-artifact, and every task".into(),
        "downstream downloads them with actions/download-artifact. Files a task writes without".into(),
        "declaring them are lost when its job ends.".into(),
        "A manual task's job waits in a GitHub environment with required reviewers (see that job).".into(),
    ]);
    let mut out = hash_comment(&c);

    let mut on = MapB::new();
    if let Some(s) = &wf.schedule {
        on = on.put_c(
            vec![
                format!(
                    "wf's schedule `{s}`. GitHub reads it in UTC (cron: local time), runs it on"
                ),
                "the default branch only, and may start it late when runners are busy.".into(),
            ],
            "schedule",
            Y::Seq(vec![MapB::new().put("cron", Y::str(s)).build()]),
        );
    }
    let dispatch = if wf.params.is_empty() {
        Y::Null
    } else {
        let mut inputs = MapB::new();
        for (k, v) in &wf.params {
            inputs = inputs.put(
                k,
                MapB::new()
                    .put(
                        "description",
                        Y::str(format!(
                            "wf parameter {k} (WF_PARAM_{}); `today`/`yesterday` become a UTC date",
                            k.to_ascii_uppercase()
                        )),
                    )
                    .put("required", Y::Raw("false".into()))
                    .put("type", Y::str("string"))
                    .put("default", Y::str(gha(v)))
                    .build(),
            );
        }
        MapB::new().put("inputs", inputs.build()).build()
    };
    on = on.put_c(
        vec![if wf.params.is_empty() {
            "Run by hand from the Actions tab.".into()
        } else {
            "Run by hand from the Actions tab, with wf's [params] as inputs (a scheduled run takes the defaults).".into()
        }],
        "workflow_dispatch",
        dispatch,
    );

    let mut root = MapB::new()
        .put("name", Y::str(gha(&format!("wf {}", wf.name))))
        .put("on", on.build())
        .put(
            "permissions",
            MapB::new().put("contents", Y::str("read")).build(),
        )
        .put_c(
            vec!["One run at a time, like wf's lock on its state directory.".into()],
            "concurrency",
            MapB::new()
                .put("group", Y::str(gha(&format!("wf-{}", wf.name))))
                .put("cancel-in-progress", Y::Raw("false".into()))
                .build(),
        );
    if dir != "." {
        root = root.put(
            "defaults",
            MapB::new()
                .put(
                    "run",
                    MapB::new()
                        .put("working-directory", Y::str(gha(&dir)))
                        .build(),
                )
                .build(),
        );
    }

    let mut jobs = MapB::new();
    for (i, t) in wf.tasks.iter().enumerate() {
        jobs = jobs.put_c(job_comment(t), &job_id(&t.name), job(wf, i, t, &dir));
    }
    root = root.put("jobs", jobs.build());
    out.push_str(&yaml::render(&root.build()));
    Ok(vec![(file, out)])
}

/// A GitHub job id: task names are already `[A-Za-z0-9_-]`, but a job id may not start with a
/// digit; those get a `_` prefix (no task name starts with `_`, so no collision).
pub(crate) fn job_id(task: &str) -> String {
    if task.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{task}")
    } else {
        task.to_string()
    }
}

/// GitHub evaluates `${{ … }}` in most strings; `${{ '${{' }}` writes a literal `${{`.
pub(crate) fn gha(s: &str) -> String {
    s.replace("${{", "${{ '${{' }}")
}

/// A warning when `run` starts with a program path that exists only on this machine (an absolute
/// path, or a virtualenv that is not usually committed).
fn local_program(t: &Task) -> Option<String> {
    let first = t.run.split_whitespace().next()?;
    let local =
        first.starts_with('/') && !first.starts_with("/usr/") && !first.starts_with("/bin/")
            || first.contains("venv/")
            || first.starts_with("~/");
    local.then(|| {
        format!(
            "`run` starts with `{first}`, a path on the machine that wrote wf.toml: on a runner it exists only if [export] setup creates it (e.g. `python -m venv .venv && .venv/bin/pip install -r requirements.txt`)"
        )
    })
}

fn job_comment(t: &Task) -> Vec<String> {
    let mut c = task_notes(t);
    if let Some(w) = local_program(t) {
        c.push(w);
    }
    if t.manual {
        c.extend([
            format!(
                "Manual gate (`manual = true`; in wf: `wf approve {}`). This job waits for",
                t.name
            ),
            format!(
                "approval in the environment `{}`: create it under Settings →",
                env_name(t)
            ),
            "Environments and add required reviewers. Without reviewers GitHub creates it".into(),
            "unprotected and the job runs at once.".into(),
        ]);
    }
    c
}

fn env_name(t: &Task) -> String {
    format!("wf-approval-{}", t.name)
}

fn job(wf: &Workflow, i: usize, t: &Task, dir: &str) -> Y {
    let name = match &t.owner {
        Some(o) => format!("{} ({o})", t.name),
        None => t.name.clone(),
    };
    let mut j = MapB::new().put("name", Y::str(gha(&name))).put(
        "runs-on",
        Y::str(gha(wf
            .export
            .github
            .runs_on
            .as_deref()
            .unwrap_or("ubuntu-latest"))),
    );
    if !t.needs.is_empty() {
        j = j.put("needs", Y::strs(t.needs.iter().map(|n| job_id(n))));
    }
    if t.manual {
        j = j.put("environment", Y::str(env_name(t)));
    }
    let mut env = MapB::new()
        .put("WF_WORKFLOW", Y::str(gha(&wf.name)))
        .put("WF_TASK", Y::str(t.name.clone()))
        .put("WF_RUN_ID", Y::str("${{ github.run_id }}"))
        .put("WF_METRICS", Y::str("/dev/null"));
    if t.retries == 0 {
        env = env.put("WF_ATTEMPT", Y::str("1"));
    }
    for k in wf.params.keys() {
        env = env.put(
            &crate::params::env_name(k),
            Y::str(format!("${{{{ inputs.{k} }}}}")),
        );
    }
    for (k, v) in &t.env {
        env = env.put(k, Y::str(gha(v)));
    }
    j = j.put("env", env.build());

    let mut steps = vec![MapB::new()
        .put("uses", Y::str("actions/checkout@v4"))
        .build()];
    let g = &wf.export.github;
    if let Some(v) = &g.python_version {
        steps.push(
            MapB::new()
                .put("uses", Y::str("actions/setup-python@v5"))
                .put(
                    "with",
                    MapB::new().put("python-version", Y::str(gha(v))).build(),
                )
                .build(),
        );
    }
    for u in &g.uses {
        steps.push(MapB::new().put("uses", Y::str(gha(u))).build());
    }
    for (a, up) in wf.tasks.iter().enumerate() {
        if up.outputs.is_empty() || !wf.is_ancestor(a, i) {
            continue;
        }
        let paths: Vec<String> = up.outputs.iter().map(|o| join(dir, o)).collect();
        steps.push(
            MapB::new()
                .put(
                    "name",
                    Y::str(format!("Download the outputs of {}", up.name)),
                )
                .put("uses", Y::str("actions/download-artifact@v4"))
                .put(
                    "with",
                    MapB::new()
                        .put("name", Y::str(artifact(up)))
                        .put_c(
                            vec![
                                "upload-artifact stored the paths relative to this directory."
                                    .into(),
                            ],
                            "path",
                            Y::str(gha(&common_dir(&paths))),
                        )
                        .build(),
                )
                .build(),
        );
    }
    if !wf.export.setup.is_empty() {
        steps.push(
            MapB::new()
                .put_c(
                    vec!["[export] setup of wf.toml, before each task.".into()],
                    "name",
                    Y::str("Set up"),
                )
                .put("shell", Y::str("sh"))
                .put("run", Y::str(gha(&(wf.export.setup.join("\n") + "\n"))))
                .build(),
        );
    }
    let mut run = MapB::new()
        .put("name", Y::str(format!("Run {}", t.name)))
        .put("shell", Y::str("sh"));
    if let Some(d) = t.timeout {
        let attempts = u64::from(t.retries) + 1;
        let budget =
            attempts * (ceil_secs(d) + 5) + u64::from(t.retries) * ceil_secs(t.retry_delay);
        let note = if attempts == 1 {
            vec![format!(
                "Stopped after {} (`timeout`: SIGTERM, then SIGKILL 5 s later, as in wf).",
                human(d)
            )]
        } else {
            vec![
                format!(
                    "Each attempt is stopped after {} (`timeout`: SIGTERM, then SIGKILL 5 s",
                    human(d)
                ),
                format!(
                    "later, as in wf); timeout-minutes bounds all {attempts} attempts together."
                ),
            ]
        };
        run = run.put_c(note, "timeout-minutes", Y::int(budget.div_ceil(60)));
    }
    let retry_note = if t.retries > 0 {
        vec![format!(
            "GitHub has no step retry: the loop makes the {} retries (retry_delay {}).",
            t.retries,
            human(t.retry_delay)
        )]
    } else {
        Vec::new()
    };
    run = run.put_c(
        retry_note,
        "run",
        Y::str(gha(&task_script(wf, &run_script(t), false))),
    );
    steps.push(run.build());

    if !t.outputs.is_empty() {
        let paths: Vec<String> = t.outputs.iter().map(|o| gha(&join(dir, o))).collect();
        let days = ceil_secs(t.retention).div_ceil(86_400).clamp(1, 90);
        steps.push(
            MapB::new()
                .put("name", Y::str(format!("Upload the outputs of {}", t.name)))
                .put("uses", Y::str("actions/upload-artifact@v4"))
                .put(
                    "with",
                    MapB::new()
                        .put("name", Y::str(artifact(t)))
                        .put("path", Y::str(lines(&paths)))
                        .put_c(
                            vec![
                                "wf fails an attempt whose outputs are missing; so does this."
                                    .into(),
                            ],
                            "if-no-files-found",
                            Y::str("error"),
                        )
                        .put("include-hidden-files", Y::Raw("true".into()))
                        .put("overwrite", Y::Raw("true".into()))
                        .put_c(
                            vec![format!(
                                "The task's retention ({}), in days; GitHub keeps 90 at most.",
                                human(t.retention)
                            )],
                            "retention-days",
                            Y::int(days),
                        )
                        .build(),
                )
                .build(),
        );
    }
    j.put("steps", Y::Seq(steps)).build()
}

/// One path as is; several as lines (a literal block).
fn lines(paths: &[String]) -> String {
    match paths {
        [one] => one.clone(),
        many => many.join("\n") + "\n",
    }
}

fn artifact(t: &Task) -> String {
    format!("wf-{}", t.name)
}

/// The step's shell script: `sh -c RUN` (wf's own invocation), under `timeout` when the task
/// has one, in a retry loop when it has retries.
pub(crate) fn run_script(t: &Task) -> String {
    let timeout = t
        .timeout
        .map(|d| format!("timeout -k 5 {} ", ceil_secs(d)))
        .unwrap_or_default();
    let invoke = format!("{timeout}sh -c {}", sh_quote(&t.run));
    if t.retries == 0 {
        return invoke;
    }
    let attempts = t.retries + 1;
    let delay = ceil_secs(t.retry_delay);
    let mut s = String::from("n=0\nwhile :; do\n  n=$((n + 1))\n  export WF_ATTEMPT=\"$n\"\n");
    s.push_str(&format!("  if {invoke}; then exit 0; else status=$?; fi\n"));
    s.push_str(&format!(
        "  if [ \"$n\" -ge {attempts} ]; then exit \"$status\"; fi\n"
    ));
    s.push_str(&format!(
        "  echo \"wf: attempt $n of {attempts} failed (exit $status); retrying in {delay}s\" >&2\n"
    ));
    if delay > 0 {
        s.push_str(&format!("  sleep {delay}\n"));
    }
    s.push_str("done\n");
    s
}

/// The workflow directory in the checkout: --workdir, else the path of `wf.dir` below the
/// enclosing git work tree, else `.`.
fn checkout_dir(wf: &Workflow, opts: &Options) -> String {
    if let Some(d) = &opts.workdir {
        let d = d.trim_end_matches('/');
        return if d.is_empty() {
            ".".into()
        } else {
            d.to_string()
        };
    }
    let root = wf
        .dir
        .ancestors()
        .find(|a| a.join(".git").exists())
        .unwrap_or(&wf.dir);
    let rel: Vec<String> = wf
        .dir
        .strip_prefix(root)
        .unwrap_or(Path::new(""))
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if rel.is_empty() {
        ".".into()
    } else {
        rel.join("/")
    }
}

fn join(dir: &str, path: &str) -> String {
    if dir == "." {
        path.to_string()
    } else {
        format!("{dir}/{path}")
    }
}

/// The least common ancestor directory of some file paths: upload-artifact stores files
/// relative to it, so download-artifact must extract there.
pub(crate) fn common_dir(paths: &[String]) -> String {
    let mut common: Option<Vec<&str>> = None;
    for p in paths {
        let mut parts: Vec<&str> = p.split('/').collect();
        parts.pop();
        common = Some(match common {
            None => parts,
            Some(c) => c
                .iter()
                .zip(&parts)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| *a)
                .collect(),
        });
    }
    let c = common.unwrap_or_default();
    match c.join("/") {
        s if s.is_empty() && paths.iter().any(|p| p.starts_with('/')) => "/".into(),
        s if s.is_empty() => ".".into(),
        s => s,
    }
}
