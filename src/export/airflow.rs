//! `wf export --to airflow`: one Python DAG file for Airflow 3.1 or later, one `BashOperator` per
//! task; a manual task gets a human-in-the-loop approval task (`HITLOperator`, Approve/Reject)
//! right before it in the same DAG run, and a rejection fails the gated task as in wf.

use std::time::Duration;

use super::{
    file_stem, hash_comment, header, human, local_workdir, not_carried, sh_quote, task_notes,
    Options, Target,
};
use crate::workflow::{Task, Workflow};

/// The approval task in front of each manual task: its id, unique among the task ids.
fn approval_ids(wf: &Workflow) -> Vec<Option<String>> {
    let taken: std::collections::HashSet<&str> = wf.tasks.iter().map(|t| t.name.as_str()).collect();
    wf.tasks
        .iter()
        .map(|t| {
            t.manual.then(|| {
                let mut id = format!("approve_{}", t.name);
                while taken.contains(id.as_str()) {
                    id.push('_');
                }
                id
            })
        })
        .collect()
}

pub(crate) fn export(wf: &Workflow, opts: &Options) -> Result<Vec<(String, String)>, String> {
    let workdir = local_workdir(wf, opts)?;
    let dag_id = file_stem(&wf.name);
    let approvals = approval_ids(wf);
    let gated = approvals.iter().any(Option::is_some);

    let mut c = header(wf, Target::Airflow);
    c.extend(not_carried("Airflow"));
    c.extend([
        String::new(),
        "Needs Airflow 3.1 or later (the standard provider's human-in-the-loop operators,".into(),
        "`airflow.sdk`). Every task runs `sh -c RUN` in WORKDIR, which must exist on the workers."
            .into(),
    ]);
    if !wf.export.setup.is_empty() {
        c.extend([
            "[export] setup is not run here: Airflow workers keep their own environment; install"
                .into(),
            "what the tasks need on the workers (or in their image).".into(),
        ]);
    }
    if gated {
        c.extend([
            String::new(),
            "Manual gates: each manual task waits behind an approval task (`approve_TASK`) in the"
                .into(),
            "same DAG run. A reviewer answers it under Browse → Required Actions (or through the"
                .into(),
            "REST API): Approve runs the task; Reject fails it, as `wf reject` does. An".into(),
            "`approval_timeout` is the approval task's execution_timeout: no answer in time fails"
                .into(),
            "it, and the gated task does not run. Marking the approval task successful by hand"
                .into(),
            "approves.".into(),
        ]);
    }
    if !wf.params.is_empty() {
        c.extend([
            String::new(),
            "Parameters are DAG params (Trigger DAG w/ config); tasks see WF_PARAM_<NAME>. As in wf,"
                .into(),
            "`today` and `yesterday` become a date: the run's logical date (ds), or the day before."
                .into(),
        ]);
    }
    let mut out = hash_comment(&c);
    out.push_str("from datetime import datetime, timedelta\n\n");
    out.push_str("from airflow.providers.standard.operators.bash import BashOperator\n");
    if gated {
        out.push_str("from airflow.providers.standard.operators.hitl import HITLOperator\n");
    }
    out.push_str(if wf.params.is_empty() {
        "from airflow.sdk import DAG\n\n"
    } else {
        "from airflow.sdk import DAG, Param\n\n"
    });
    out.push_str(&hash_comment(&[
        "The workflow directory on the workers; every task runs there, as in wf.".into(),
    ]));
    out.push_str(&format!("WORKDIR = {}\n", py_str(&jinja_safe(&workdir)?)));
    out.push_str("\nt = {}\n\n");

    let mut owners: Vec<&str> = wf.tasks.iter().filter_map(|t| t.owner.as_deref()).collect();
    owners.sort_unstable();
    owners.dedup();
    let mut tags = vec![py_str("wf")];
    tags.extend(owners.iter().map(|o| py_str(o)));
    let schedule = wf
        .schedule
        .as_deref()
        .map(py_str)
        .unwrap_or_else(|| "None".into());
    out.push_str(&format!(
        "with DAG(\n    dag_id={},\n    schedule={schedule},\n    start_date=datetime(2026, 1, 1),\n    catchup=False,\n    max_active_runs=1,\n    tags=[{}],\n",
        py_str(&dag_id),
        tags.join(", ")
    ));
    if !wf.params.is_empty() {
        out.push_str("    params={\n");
        for (k, v) in &wf.params {
            out.push_str(&format!(
                "        {}: Param({}, type=\"string\"),\n",
                py_str(k),
                py_str(&jinja_safe(v)?)
            ));
        }
        out.push_str("    },\n");
    }
    out.push_str(") as dag:\n");
    for (i, t) in wf.tasks.iter().enumerate() {
        if let Some(a) = &approvals[i] {
            out.push_str(&approval(wf, t, a)?);
        }
        out.push_str(&operator(wf, t, approvals[i].as_deref())?);
    }
    let mut edges = String::new();
    for (i, t) in wf.tasks.iter().enumerate() {
        let to = approvals[i].as_deref().unwrap_or(&t.name);
        for &n in &t.needs_idx {
            edges.push_str(&format!(
                "    t[{}] >> t[{}]\n",
                py_str(&wf.tasks[n].name),
                py_str(to)
            ));
        }
        if let Some(a) = &approvals[i] {
            edges.push_str(&format!("    t[{}] >> t[{}]\n", py_str(a), py_str(&t.name)));
        }
    }
    if !edges.is_empty() {
        out.push('\n');
        out.push_str(&edges);
    }
    Ok(vec![(
        format!("wf_{}.py", dag_id.replace(['-', '.'], "_")),
        out,
    )])
}

/// The approval task in front of manual task `t`.
fn approval(wf: &Workflow, t: &Task, id: &str) -> Result<String, String> {
    let mut s = String::from("\n");
    s.push_str(&format!(
        "    # The manual gate of {} (`manual = true`; in wf: `wf approve {}` / `wf reject {}`).\n",
        t.name, t.name, t.name
    ));
    s.push_str(&format!("    t[{}] = HITLOperator(\n", py_str(id)));
    s.push_str(&format!("        task_id={},\n", py_str(id)));
    let owner = t
        .owner
        .as_deref()
        .map(|o| format!(" (owner {o})"))
        .unwrap_or_default();
    s.push_str(&format!(
        "        subject={},\n",
        py_str(&jinja_safe(&format!(
            "Approve {} of {}{owner}?",
            t.name, wf.name
        ))?)
    ));
    let mut body = vec![format!(
        "wf task `{}` of workflow `{}` waits for a review before it runs.",
        t.name, wf.name
    )];
    body.extend(task_notes(t).into_iter().map(|n| format!("- {n}")));
    body.push("Approve runs it; Reject fails it.".into());
    s.push_str(&format!(
        "        body={},\n",
        py_str(&jinja_safe(&body.join("\n"))?)
    ));
    s.push_str("        options=[\"Approve\", \"Reject\"],\n");
    if let Some(o) = &t.owner {
        s.push_str(&format!("        owner={},\n", py_str(o)));
    }
    if let Some(d) = t.approval_timeout {
        s.push_str(&format!(
            "        execution_timeout=timedelta(seconds={}),  # approval_timeout: {}\n",
            seconds(d),
            human(d)
        ));
    }
    s.push_str("    )\n");
    Ok(s)
}

/// `today`/`yesterday` resolved as wf does, from the run's logical date.
fn param_value(name: &str) -> String {
    format!(
        "{{% if params['{name}'] == 'today' %}}{{{{ ds }}}}{{% elif params['{name}'] == 'yesterday' %}}{{{{ macros.ds_add(ds, -1) }}}}{{% else %}}{{{{ params['{name}'] }}}}{{% endif %}}"
    )
}

fn operator(wf: &Workflow, t: &Task, approval: Option<&str>) -> Result<String, String> {
    let mut s = String::from("\n");
    for l in hash_comment(&task_notes(t)).lines() {
        s.push_str(&format!("    {l}\n"));
    }
    s.push_str(&format!("    t[{}] = BashOperator(\n", py_str(&t.name)));
    s.push_str(&format!("        task_id={},\n", py_str(&t.name)));
    let mut cmd = bash_command(&t.run)?;
    if let Some(a) = approval {
        s.push_str("        # Fails, without running, when the reviewer chose Reject.\n");
        cmd = format!(
            "{{% if ((ti.xcom_pull(task_ids='{a}') or {{}}).get('chosen_options') or ['Approve'])[0] == 'Reject' %}}echo {} >&2; exit 1{{% else %}}{}{{% endif %}}",
            sh_quote(&format!("wf: {} was rejected in Airflow", t.name)),
            cmd.trim_end()
        );
    } else {
        s.push_str("        # As wf runs it: `sh -c RUN` in the workflow directory.\n");
    }
    s.push_str(&format!("        bash_command={},\n", py_str(&cmd)));
    s.push_str("        cwd=WORKDIR,\n        env={\n");
    let mut env = vec![
        ("WF_WORKFLOW".to_string(), jinja_safe(&wf.name)?),
        ("WF_TASK".to_string(), t.name.clone()),
        ("WF_RUN_ID".to_string(), "{{ run_id }}".to_string()),
        ("WF_ATTEMPT".to_string(), "{{ ti.try_number }}".to_string()),
        ("WF_METRICS".to_string(), "/dev/null".to_string()),
    ];
    for k in wf.params.keys() {
        env.push((crate::params::env_name(k), param_value(k)));
    }
    for (k, v) in &t.env {
        env.push((k.clone(), jinja_safe(v)?));
    }
    for (k, v) in env {
        s.push_str(&format!("            {}: {},\n", py_str(&k), py_str(&v)));
    }
    s.push_str("        },\n");
    s.push_str("        # Add to the worker's environment, as wf does, instead of replacing it.\n");
    s.push_str("        append_env=True,\n");
    if let Some(o) = &t.owner {
        s.push_str(&format!("        owner={},\n", py_str(o)));
    }
    if t.retries > 0 {
        s.push_str(&format!("        retries={},\n", t.retries));
        s.push_str(&format!(
            "        retry_delay=timedelta(seconds={}),\n",
            seconds(t.retry_delay)
        ));
    }
    if let Some(d) = t.timeout {
        s.push_str(&format!(
            "        execution_timeout=timedelta(seconds={}),  # {} per attempt, as in wf\n",
            seconds(d),
            human(d)
        ));
    }
    s.push_str("    )\n");
    Ok(s)
}

/// `sh -c RUN`, safe from Jinja, and not ending in `.sh`/`.bash` (Airflow would read a
/// bash_command ending so as the path of a template file; a trailing space prevents it).
pub(crate) fn bash_command(run: &str) -> Result<String, String> {
    let mut cmd = jinja_safe(&format!("sh -c {}", sh_quote(run)))?;
    if cmd.ends_with(".sh") || cmd.ends_with(".bash") {
        cmd.push(' ');
    }
    Ok(cmd)
}

/// Airflow renders bash_command, env and cwd with Jinja: text with Jinja delimiters is wrapped
/// in `{% raw %}…{% endraw %}` so it reaches the shell unchanged.
pub(crate) fn jinja_safe(s: &str) -> Result<String, String> {
    if !(s.contains("{{") || s.contains("{%") || s.contains("{#")) {
        return Ok(s.to_string());
    }
    if s.contains("endraw") {
        return Err(format!(
            "`{}` contains both Jinja delimiters and `endraw`, which cannot be escaped for Airflow's templates",
            s.escape_debug()
        ));
    }
    Ok(format!("{{% raw %}}{s}{{% endraw %}}"))
}

/// Seconds as a Python number: `300`, or `1.5`.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}", d.as_secs_f64())
    }
}

/// A Python string literal (double quotes) that evaluates to exactly `s`.
pub(crate) fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
