//! `wf export --to airflow`: a Python DAG file, one `BashOperator` per task; each manual task
//! (with what depends on it) goes into a separate DAG that a human triggers after review.

use std::time::Duration;

use super::{
    file_stem, gates_of, hash_comment, header, human, local_workdir, not_carried, sh_quote,
    task_notes, Options, Target,
};
use crate::workflow::{Task, Workflow};

pub(crate) fn export(wf: &Workflow, opts: &Options) -> Result<Vec<(String, String)>, String> {
    let workdir = local_workdir(wf, opts)?;
    let dag_id = file_stem(&wf.name);
    let gates = gates_of(wf);

    // Groups: the main DAG (no gate upstream), then one DAG per distinct set of gates.
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    let mut keys: Vec<Vec<usize>> = vec![Vec::new()];
    let mut group_of = vec![0usize; wf.tasks.len()];
    for (i, g) in gates.iter().enumerate() {
        let k = match keys.iter().position(|k| k == g) {
            Some(k) => k,
            None => {
                keys.push(g.clone());
                groups.push(Vec::new());
                keys.len() - 1
            }
        };
        groups[k].push(i);
        group_of[i] = k;
    }

    let mut c = header(wf, Target::Airflow);
    c.extend(not_carried("Airflow"));
    c.extend([
        String::new(),
        "Needs Airflow 2.4 or later (`schedule=`, BashOperator's `cwd` and `append_env`).".into(),
        format!("Every task runs `sh -c RUN` in {workdir}, which must exist on the workers."),
    ]);
    if groups.len() > 1 {
        c.extend([
            String::new(),
            "Manual gates: Airflow has no step that waits for a human inside a run (a".into(),
            "trigger_rule only reacts to upstream task states; a sensor needs something to poll)."
                .into(),
            "So each manual task, with everything downstream of it, is in a DAG of its own with"
                .into(),
            "schedule=None: after reviewing the scheduled run, a human triggers it (the ▶ button,"
                .into(),
            "or `airflow dags trigger DAG_ID`). That is the approval; Airflow does not check that"
                .into(),
            "the upstream run succeeded first: the reviewer does.".into(),
        ]);
    }
    let mut out = hash_comment(&c);
    out.push_str(
        "from datetime import datetime, timedelta\n\nfrom airflow import DAG\n\n\
         try:  # Airflow 3\n    from airflow.providers.standard.operators.bash import BashOperator\n\
         except ImportError:  # Airflow 2\n    from airflow.operators.bash import BashOperator\n\n",
    );
    out.push_str(&hash_comment(&[
        "The workflow directory on the workers; every task runs there, as in wf.".into(),
    ]));
    out.push_str(&format!("WORKDIR = {}\n", py_str(&jinja_safe(&workdir)?)));
    out.push_str("\nt = {}\n");

    for (k, members) in groups.iter().enumerate() {
        if members.is_empty() {
            continue;
        }
        let (id, schedule, var) = if k == 0 {
            (
                dag_id.clone(),
                wf.schedule
                    .as_deref()
                    .map(py_str)
                    .unwrap_or_else(|| "None".into()),
                "dag".to_string(),
            )
        } else {
            let names: Vec<&str> = keys[k].iter().map(|&g| wf.tasks[g].name.as_str()).collect();
            let mut id = format!("{dag_id}__{}", names.join("__"));
            if id.len() > 250 {
                id = format!("{dag_id}__manual_{k}");
            }
            (id, "None".to_string(), format!("dag_manual_{k}"))
        };
        let mut owners: Vec<&str> = members
            .iter()
            .filter_map(|&i| wf.tasks[i].owner.as_deref())
            .collect();
        owners.sort_unstable();
        owners.dedup();
        let mut tags = vec![py_str("wf")];
        if k > 0 {
            tags.push(py_str("manual"));
        }
        tags.extend(owners.iter().map(|o| py_str(o)));

        out.push('\n');
        if k > 0 {
            let names: Vec<String> = keys[k]
                .iter()
                .map(|&g| format!("`wf approve {}`", wf.tasks[g].name))
                .collect();
            out.push_str(&hash_comment(&[format!(
                "Triggered by hand once reviewed: the gate {} in wf.",
                names.join(" and ")
            )]));
        }
        out.push_str(&format!(
            "with DAG(\n    dag_id={},\n    schedule={schedule},\n    start_date=datetime(2026, 1, 1),\n    catchup=False,\n    max_active_runs=1,\n    tags=[{}],\n) as {var}:\n",
            py_str(&id),
            tags.join(", ")
        ));
        for &i in members {
            out.push_str(&operator(wf, &wf.tasks[i])?);
        }
        let mut edges = String::new();
        for &i in members {
            let t = &wf.tasks[i];
            for &n in &t.needs_idx {
                let a = py_str(&wf.tasks[n].name);
                let b = py_str(&t.name);
                if group_of[n] == k {
                    edges.push_str(&format!("    t[{a}] >> t[{b}]\n"));
                } else {
                    edges.push_str(&format!(
                        "    {}",
                        hash_comment(&[format!(
                            "{} >> {}: across DAGs; this DAG is triggered after reviewing that run",
                            wf.tasks[n].name, t.name
                        )])
                    ));
                }
            }
        }
        if !edges.is_empty() {
            out.push('\n');
            out.push_str(&edges);
        }
    }
    Ok(vec![(
        format!("wf_{}.py", dag_id.replace(['-', '.'], "_")),
        out,
    )])
}

fn operator(wf: &Workflow, t: &Task) -> Result<String, String> {
    let mut s = String::from("\n");
    for l in hash_comment(&task_notes(t)).lines() {
        s.push_str(&format!("    {l}\n"));
    }
    s.push_str(&format!("    t[{}] = BashOperator(\n", py_str(&t.name)));
    s.push_str(&format!("        task_id={},\n", py_str(&t.name)));
    s.push_str("        # As wf runs it: `sh -c RUN` in the workflow directory.\n");
    s.push_str(&format!(
        "        bash_command={},\n",
        py_str(&bash_command(&t.run)?)
    ));
    s.push_str("        cwd=WORKDIR,\n        env={\n");
    let mut env = vec![
        ("WF_WORKFLOW".to_string(), jinja_safe(&wf.name)?),
        ("WF_TASK".to_string(), t.name.clone()),
        ("WF_RUN_ID".to_string(), "{{ run_id }}".to_string()),
        ("WF_ATTEMPT".to_string(), "{{ ti.try_number }}".to_string()),
        ("WF_METRICS".to_string(), "/dev/null".to_string()),
    ];
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
