//! `wf export --to argo`: an Argo `CronWorkflow` (or `Workflow` when unscheduled) whose `dag`
//! template mirrors the tasks, one container template per task on a shared `work` volume.

use std::collections::HashSet;

use super::yaml::{self, MapB, Y};
use super::{
    ceil_secs, file_stem, hash_comment, header, human, not_carried, sh_quote, task_notes,
    task_script, Options, Target,
};
use crate::workflow::{Task, Workflow};

/// Where the shared volume is mounted in every task's container.
const MOUNT: &str = "/work";

pub(crate) fn export(wf: &Workflow, opts: &Options) -> Result<Vec<(String, String)>, String> {
    check_braces("--image", &opts.image)?;
    check_braces("the workflow name", &wf.name)?;
    for t in &wf.tasks {
        check_braces(&format!("the `run` of task `{}`", t.name), &t.run)?;
        for (k, v) in &t.env {
            check_braces(&format!("env {k} of task `{}`", t.name), v)?;
        }
        if let Some(o) = &t.owner {
            check_braces(&format!("the owner of task `{}`", t.name), o)?;
        }
    }
    for (k, v) in &wf.params {
        check_braces(&format!("the default of parameter `{k}`"), v)?;
    }
    for cmd in &wf.export.setup {
        check_braces("an [export] setup command", cmd)?;
    }
    let workdir = opts.workdir.clone().unwrap_or_else(|| MOUNT.to_string());
    check_braces("--workdir", &workdir)?;
    let names = argo_names(wf);
    let gates = gate_names(wf, &names);

    let mut c = header(wf, Target::Argo);
    c.extend(not_carried("Argo Workflows"));
    c.extend([
        String::new(),
        "Task names become Argo names (`_` is not allowed there: `train_or_score` becomes".into(),
        "`train-or-score`); the annotation wf/task keeps the original.".into(),
        match wf.schedule {
            Some(_) => format!(
                "Install: argo cron create wf-{}.argo.yaml",
                file_stem(&wf.name)
            ),
            None => format!(
                "Run: argo submit --watch wf-{}.argo.yaml",
                file_stem(&wf.name)
            ),
        },
    ]);
    let mut out = hash_comment(&c);

    let mut templates = vec![dag(wf, &names, &gates)];
    for (i, t) in wf.tasks.iter().enumerate() {
        templates.push(container_template(wf, t, &names[i], &workdir, opts));
    }
    for (i, t) in wf.tasks.iter().enumerate() {
        if let Some(g) = &gates[i] {
            templates.push(
                MapB::new()
                    .put_c(
                        vec![
                            format!("The manual gate of `{}` (`manual = true`; in wf: `wf approve {}`):", t.name, t.name),
                            "the DAG stops here until someone resumes it after review, with".into(),
                            format!("  argo resume WORKFLOW --node-field-selector displayName={g}"),
                            "or RESUME in the Argo UI (plain `argo resume WORKFLOW` resumes every gate).".into(),
                        ],
                        "name",
                        Y::str(g.clone()),
                    )
                    .put("suspend", MapB::new().build())
                    .build(),
            );
        }
    }

    let volume = MapB::new()
        .put("metadata", MapB::new().put("name", Y::str("work")).build())
        .put(
            "spec",
            MapB::new()
                .put_c(
                    vec!["ReadWriteMany if tasks may run on different nodes at once.".into()],
                    "accessModes",
                    Y::strs(["ReadWriteOnce"]),
                )
                .put(
                    "resources",
                    MapB::new()
                        .put(
                            "requests",
                            MapB::new().put("storage", Y::str("1Gi")).build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build();
    let mut spec = MapB::new().put("entrypoint", Y::str("main"));
    if !wf.params.is_empty() {
        let params: Vec<Y> = wf
            .params
            .iter()
            .map(|(k, v)| {
                MapB::new()
                    .put("name", Y::str(k.clone()))
                    .put("value", Y::str(v.clone()))
                    .build()
            })
            .collect();
        spec = spec.put_c(
            vec![
                "wf's [params] with their defaults (`argo submit -p NAME=VALUE`); tasks see".into(),
                "WF_PARAM_<NAME>, and `today`/`yesterday` become a UTC date as in wf.".into(),
            ],
            "arguments",
            MapB::new().put("parameters", Y::Seq(params)).build(),
        );
    }
    let spec = spec
        .put_c(
            vec![
                format!("The shared volume `work`, mounted at {MOUNT} in every task: files flow from task to"),
                "task through it. It starts empty and lives as long as the run: put the workflow".into(),
                "directory (its scripts and inputs) on it, e.g. bake them into --image and copy them in".into(),
                "a first task, or replace this with an existing claim under `volumes:`.".into(),
            ],
            "volumeClaimTemplates",
            Y::Seq(vec![volume]),
        )
        .put("templates", Y::Seq(templates))
        .build();

    let mut labels = MapB::new();
    if let Some(v) = label_value(&wf.name) {
        labels = labels.put("wf/workflow", Y::str(v));
    }
    let annotations = MapB::new()
        .put("wf/workflow", Y::str(wf.name.clone()))
        .put("wf/source", Y::str(wf.file.display().to_string()));
    let mut metadata = MapB::new();
    let root = match &wf.schedule {
        Some(s) => {
            metadata = metadata.put("name", Y::str(object_name(&wf.name, 52)));
            if !labels.is_empty() {
                metadata = metadata.put("labels", labels.build());
            }
            metadata = metadata.put("annotations", annotations.build());
            MapB::new()
                .put("apiVersion", Y::str("argoproj.io/v1alpha1"))
                .put("kind", Y::str("CronWorkflow"))
                .put("metadata", metadata.build())
                .put(
                    "spec",
                    MapB::new()
                        .put_c(
                            vec!["wf's schedule; in the controller's time zone unless `timezone:` is set.".into()],
                            "schedules",
                            Y::strs([s.clone()]),
                        )
                        .put_c(
                            vec!["One run at a time, like wf's lock on its state directory.".into()],
                            "concurrencyPolicy",
                            Y::str("Forbid"),
                        )
                        .put("workflowSpec", spec)
                        .build(),
                )
        }
        None => {
            metadata = metadata.put(
                "generateName",
                Y::str(format!("{}-", object_name(&wf.name, 57))),
            );
            if !labels.is_empty() {
                metadata = metadata.put("labels", labels.build());
            }
            metadata = metadata.put("annotations", annotations.build());
            MapB::new()
                .put("apiVersion", Y::str("argoproj.io/v1alpha1"))
                .put("kind", Y::str("Workflow"))
                .put("metadata", metadata.build())
                .put("spec", spec)
        }
    };
    out.push_str(&yaml::render(&root.build()));
    Ok(vec![(format!("wf-{}.argo.yaml", file_stem(&wf.name)), out)])
}

/// Argo substitutes `{{…}}` everywhere in a template, and has no escape for it.
fn check_braces(what: &str, s: &str) -> Result<(), String> {
    if s.contains("{{") {
        return Err(format!(
            "{what} contains `{{{{`, which Argo would take for one of its `{{{{…}}}}` variables (it has no escape); \
             write it differently (e.g. `{{ {{`) or move it into a script file"
        ));
    }
    Ok(())
}

/// The main DAG: one task per wf task, plus one suspend step before each manual task.
fn dag(wf: &Workflow, names: &[String], gates: &[Option<String>]) -> Y {
    let mut tasks = Vec::new();
    for (i, t) in wf.tasks.iter().enumerate() {
        let deps: Vec<String> = t.needs_idx.iter().map(|&n| names[n].clone()).collect();
        if let Some(g) = &gates[i] {
            let mut gate = MapB::new()
                .put("name", Y::str(g.clone()))
                .put("template", Y::str(g.clone()));
            if !deps.is_empty() {
                gate = gate.put("dependencies", Y::strs(deps.clone()));
            }
            tasks.push(gate.build());
        }
        let mut all = deps;
        all.extend(gates[i].iter().cloned());
        let mut task = MapB::new()
            .put("name", Y::str(names[i].clone()))
            .put("template", Y::str(names[i].clone()));
        if !all.is_empty() {
            task = task.put("dependencies", Y::strs(all));
        }
        tasks.push(task.build());
    }
    MapB::new()
        .put("name", Y::str("main"))
        .put("dag", MapB::new().put("tasks", Y::Seq(tasks)).build())
        .build()
}

fn container_template(wf: &Workflow, t: &Task, name: &str, workdir: &str, opts: &Options) -> Y {
    let mut labels = MapB::new();
    let mut annotations = MapB::new().put("wf/task", Y::str(t.name.clone()));
    if let Some(o) = &t.owner {
        if let Some(v) = label_value(o) {
            labels = labels.put("wf/owner", Y::str(v));
        }
        annotations = annotations.put("wf/owner", Y::str(o.clone()));
    }
    let mut metadata = MapB::new();
    if !labels.is_empty() {
        metadata = metadata.put("labels", labels.build());
    }
    metadata = metadata.put("annotations", annotations.build());

    let mut tpl = MapB::new()
        .put_c(task_notes(t), "name", Y::str(name))
        .put("metadata", metadata.build());
    if t.retries > 0 {
        let mut rs = MapB::new().put_c(
            vec!["A string: the schema types this int-or-string field as string.".into()],
            "limit",
            Y::str(t.retries.to_string()),
        );
        if !t.retry_delay.is_zero() {
            let d = t.retry_delay;
            let duration = if d.subsec_nanos() == 0 {
                format!("{}s", d.as_secs())
            } else {
                format!("{}ms", d.as_millis().max(1))
            };
            rs = rs.put(
                "backoff",
                MapB::new().put("duration", Y::str(duration)).build(),
            );
        }
        tpl = tpl.put("retryStrategy", rs.build());
    }
    if let Some(d) = t.timeout {
        tpl = tpl.put_c(
            vec![format!("timeout {} per attempt, as in wf.", human(d))],
            "activeDeadlineSeconds",
            Y::str(ceil_secs(d).to_string()),
        );
    }
    let mut env = vec![
        env_var("WF_WORKFLOW", &wf.name),
        env_var("WF_TASK", &t.name),
        env_var("WF_RUN_ID", "{{workflow.name}}"),
        env_var("WF_METRICS", "/dev/null"),
    ];
    for k in wf.params.keys() {
        env.push(env_var(
            &crate::params::env_name(k),
            &format!("{{{{workflow.parameters.{k}}}}}"),
        ));
    }
    env.extend(t.env.iter().map(|(k, v)| env_var(k, v)));
    let (note, script) = if super::prologue(wf, true).is_empty() {
        (
            "As wf runs it: `sh -c RUN` in the workflow directory.",
            t.run.clone(),
        )
    } else {
        (
            "Parameters resolved and [export] setup run first, then `sh -c RUN` as wf runs it.",
            task_script(wf, &format!("exec sh -c {}", sh_quote(&t.run)), true),
        )
    };
    let container = MapB::new()
        .put("image", Y::str(opts.image.clone()))
        .put_c(
            vec![note.into()],
            "command",
            Y::strs(["sh".to_string(), "-c".to_string(), script]),
        )
        .put("workingDir", Y::str(workdir))
        .put("env", Y::Seq(env))
        .put(
            "volumeMounts",
            Y::Seq(vec![MapB::new()
                .put("name", Y::str("work"))
                .put("mountPath", Y::str(MOUNT))
                .build()]),
        )
        .build();
    tpl.put("container", container).build()
}

fn env_var(name: &str, value: &str) -> Y {
    MapB::new()
        .put("name", Y::str(name))
        .put("value", Y::str(value))
        .build()
}

/// Argo names of the tasks, in workflow order: lower case, `_` → `-`, a `t-` prefix before a
/// leading digit, and `-2`, `-3`… when two tasks would get the same name. Deterministic.
pub(crate) fn argo_names(wf: &Workflow) -> Vec<String> {
    let mut used: HashSet<String> = HashSet::from(["main".to_string()]);
    wf.tasks
        .iter()
        .map(|t| {
            let mut base: String = t.name.to_ascii_lowercase().replace('_', "-");
            if base.starts_with(|c: char| c.is_ascii_digit()) {
                base = format!("t-{base}");
            }
            unique(&mut used, base)
        })
        .collect()
}

/// The suspend step of each manual task (`approve-NAME`), None for the others.
fn gate_names(wf: &Workflow, names: &[String]) -> Vec<Option<String>> {
    let mut used: HashSet<String> = names.iter().cloned().collect();
    used.insert("main".into());
    wf.tasks
        .iter()
        .zip(names)
        .map(|(t, n)| t.manual.then(|| unique(&mut used, format!("approve-{n}"))))
        .collect()
}

fn unique(used: &mut HashSet<String>, base: String) -> String {
    let mut name = base.clone();
    let mut k = 2;
    while used.contains(&name) {
        name = format!("{base}-{k}");
        k += 1;
    }
    used.insert(name.clone());
    name
}

/// A Kubernetes label value: at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
pub(crate) fn label_value(s: &str) -> Option<String> {
    let v = super::dashed(s);
    let v = v.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let v: String = v.chars().take(63).collect();
    let v = v.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    (!v.is_empty()).then(|| v.to_string())
}

/// A Kubernetes object name (DNS-1123): lower case `[a-z0-9-]`, at most `max` characters.
fn object_name(s: &str, max: usize) -> String {
    let v: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let v: String = v.trim_matches('-').chars().take(max).collect();
    let v = v.trim_end_matches('-');
    if v.is_empty() {
        "wf".into()
    } else {
        v.to_string()
    }
}
