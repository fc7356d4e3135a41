//! Airflow export, read back with Python's parser; and what every translated target carries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::to_argo::{argo_schema_errors, argo_semantics};
use super::to_github::gha_step;
use super::*;

// ---------------------------------------------------------------- Airflow

/// Reads the DAG file with Python's own parser and prints what it defines as JSON.
const PY_EXTRACT: &str = r#"
import ast, json, re, sys
src = sys.stdin.read()
tree = ast.parse(src)
def lit(node):
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "timedelta":
        return {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    if isinstance(node, ast.Call):
        d = {"call": node.func.id, "args": [lit(a) for a in node.args]}
        d.update({k.arg: lit(k.value) for k in node.keywords})
        return d
    if isinstance(node, ast.Dict):
        return {lit(k): lit(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Name):
        return "$" + node.id
    return ast.literal_eval(node)
def key(sub):
    s = sub.slice
    if hasattr(ast, "Index") and isinstance(s, ast.Index):
        s = s.value
    return ast.literal_eval(s)
dags = []
for node in tree.body:
    if not isinstance(node, ast.With):
        continue
    call = node.items[0].context_expr
    if getattr(call.func, "id", "") != "DAG":
        continue
    dag = {k.arg: lit(k.value) for k in call.keywords}
    dag["tasks"] = {}
    dag["edges"] = []
    for st in node.body:
        if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call) and getattr(st.value.func, "id", "") in ("BashOperator", "HITLOperator"):
            kw = {k.arg: lit(k.value) for k in st.value.keywords}
            kw["operator"] = st.value.func.id
            assert key(st.targets[0]) == kw["task_id"]
            dag["tasks"][kw["task_id"]] = kw
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.BinOp) and isinstance(st.value.op, ast.RShift):
            dag["edges"].append([key(st.value.left), key(st.value.right)])
    dags.append(dag)
cross = re.findall(r"^\s*# (\S+) >> (\S+): across DAGs", src, re.M)
print(json.dumps({"dags": dags, "cross": cross}))
"#;

fn python(src: &str) -> Option<Value> {
    if !have("python3") {
        return None;
    }
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PY_EXTRACT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(src.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    assert!(
        out.status.success(),
        "python could not read the DAG file: {}\n{src}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// What Jinja and then `sh` make of a bash_command: `sh -c CMD` runs CMD.
fn airflow_command(bash_command: &str) -> String {
    let c = bash_command
        .strip_prefix("{% raw %}")
        .and_then(|c| c.strip_suffix("{% endraw %}"))
        .unwrap_or(bash_command);
    command_seen_by_sh(c)
}

/// The DAG's edges with each approval task folded into the task it gates (wf's own edges).
fn airflow_edges(dag: &Value) -> BTreeSet<(String, String)> {
    let tasks = dag["tasks"].as_object().unwrap();
    let gate_of = |id: &str| -> Option<String> {
        (tasks[id]["operator"] == "HITLOperator").then(|| {
            dag["edges"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e[0] == id)
                .map(|e| e[1].as_str().unwrap().to_string())
                .unwrap()
        })
    };
    let mut got = BTreeSet::new();
    for e in dag["edges"].as_array().unwrap() {
        let (a, b) = (e[0].as_str().unwrap(), e[1].as_str().unwrap());
        if gate_of(a).is_some() {
            continue;
        }
        let b = gate_of(b).unwrap_or_else(|| b.to_string());
        got.insert((a.to_string(), b));
    }
    got
}

#[test]
fn airflow_homework() {
    let wf = example();
    let opts = Options {
        workdir: Some("/srv/homework".into()),
        ..Options::default()
    };
    let (name, body) = one(&wf, Target::Airflow, &opts);
    assert_eq!(name, "wf_homework.py");
    for needle in [
        "from airflow.sdk import DAG, Param\n",
        "from airflow.providers.standard.operators.bash import BashOperator",
        "from airflow.providers.standard.operators.hitl import HITLOperator",
        "Needs Airflow 3.1 or later",
        "start_date=datetime(2026, 1, 1)",
        "catchup=False",
        "schedule=\"0 6 * * *\"",
    ] {
        assert!(body.contains(needle), "{needle}");
    }
    let Some(doc) = python(&body) else {
        eprintln!("skipped the Python checks: no python3");
        return;
    };
    let dags = doc["dags"].as_array().unwrap();
    assert_eq!(dags.len(), 1, "one DAG per workflow");
    let main = &dags[0];
    assert_eq!(main["dag_id"], "homework");
    assert_eq!(main["schedule"], "0 6 * * *");
    assert_eq!(
        main["tags"],
        serde_json::json!(["wf", "analyst", "data_eng", "ml_eng"])
    );
    assert_eq!(main["params"]["day"]["args"], serde_json::json!(["today"]));
    let tasks: BTreeSet<&String> = main["tasks"].as_object().unwrap().keys().collect();
    assert_eq!(tasks.len(), 5);
    let gate = &main["tasks"]["approve_report"];
    assert_eq!(gate["operator"], "HITLOperator");
    assert_eq!(gate["options"], serde_json::json!(["Approve", "Reject"]));
    assert_eq!(gate["owner"], "analyst");
    assert!(gate["subject"].as_str().unwrap().contains("report"));
    assert_eq!(airflow_edges(main), edges(&wf));

    let ingest = &main["tasks"]["ingest"];
    assert_eq!(ingest["retries"], 2);
    assert_eq!(ingest["retry_delay"], serde_json::json!({"seconds": 1}));
    assert_eq!(
        ingest["execution_timeout"],
        serde_json::json!({"seconds": 300})
    );
    assert_eq!(ingest["owner"], "data_eng");
    assert_eq!(ingest["cwd"], "$WORKDIR");
    assert_eq!(ingest["append_env"], true);
    assert_eq!(
        airflow_command(ingest["bash_command"].as_str().unwrap()),
        "sh tasks/ingest.sh"
    );
    assert!(ingest["env"]["WF_PARAM_DAY"]
        .as_str()
        .unwrap()
        .contains("params['day']"));
    assert_eq!(main["tasks"]["train_or_score"]["env"]["MODE"], "train");
    let report = &main["tasks"]["report"];
    assert_eq!(report["owner"], "analyst");
    let cmd = report["bash_command"].as_str().unwrap();
    assert!(
        cmd.contains("task_ids='approve_report'") && cmd.contains("'Reject'"),
        "{cmd}"
    );
}

#[test]
fn airflow_manual_gates_stay_in_one_dag() {
    let wf = from_toml(
        "[workflow]\nname = \"g\"\n[task.a]\nrun = \"x\"\n[task.g1]\nrun = \"x\"\nmanual = true\nneeds = [\"a\"]\n\
         approval_timeout = \"2d\"\n[task.b]\nrun = \"x\"\nneeds = [\"g1\"]\n[task.g2]\nrun = \"x\"\nmanual = true\nneeds = [\"a\"]\n\
         [task.c]\nrun = \"x\"\nneeds = [\"b\", \"g2\"]\n[task.approve_g2]\nrun = \"x\"\n",
    );
    let body = one(&wf, Target::Airflow, &Options::default()).1;
    let Some(doc) = python(&body) else {
        assert!(body.contains("task_id=\"approve_g1\""));
        return;
    };
    let dags = doc["dags"].as_array().unwrap();
    assert_eq!(dags.len(), 1);
    let tasks: BTreeSet<String> = dags[0]["tasks"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    // A task already named approve_g2 keeps its name; the gate's id steps aside.
    let want: BTreeSet<String> = [
        "a",
        "g1",
        "approve_g1",
        "b",
        "g2",
        "approve_g2_",
        "approve_g2",
        "c",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(tasks, want);
    assert_eq!(
        dags[0]["tasks"]["approve_g1"]["execution_timeout"],
        serde_json::json!({"seconds": 172800})
    );
    assert_eq!(dags[0]["tasks"]["approve_g2_"]["operator"], "HITLOperator");
    assert_eq!(airflow_edges(&dags[0]), edges(&wf));
}

#[test]
fn airflow_quoting_round_trips() {
    let mut runs = tricky_runs();
    runs.push("echo '{{ ds }}' {% if x %} {# c #}".into());
    assert_eq!(
        airflow::bash_command("tasks/run.sh").unwrap(),
        "sh -c tasks/run.sh "
    );
    assert_eq!(
        airflow::bash_command("echo {{ x }}").unwrap(),
        "{% raw %}sh -c 'echo {{ x }}'{% endraw %}"
    );
    assert!(airflow::bash_command("echo {{ x }} endraw").is_err());
    for run in &runs {
        let wf = single(run, 1);
        let body = one(&wf, Target::Airflow, &Options::default()).1;
        let Some(doc) = python(&body) else {
            eprintln!("skipped: no python3");
            return;
        };
        let t = &doc["dags"][0]["tasks"]["t_1"];
        let cmd = t["bash_command"].as_str().unwrap();
        assert!(!cmd.ends_with(".sh") && !cmd.ends_with(".bash"), "{cmd}");
        assert_eq!(airflow_command(cmd.trim_end_matches(' ')), *run, "{body}");
        let odd = t["env"]["ODD"].as_str().unwrap();
        let odd = odd
            .strip_prefix("{% raw %}")
            .and_then(|o| o.strip_suffix("{% endraw %}"))
            .unwrap_or(odd);
        assert_eq!(odd, run);
    }
}

/// A workflow with everything a translated export must carry: parameters, setup, GitHub knobs.
fn full() -> Workflow {
    from_toml(
        r#"
[workflow]
name = "full"
schedule = "0 6 * * *"

[params]
day = "yesterday"
mode = "it's \"score\""

[export]
setup = ["pip install -r requirements.txt", "echo ready > setup.txt"]

[export.github_actions]
runs-on = "ubuntu-24.04"
python-version = "3.12"
uses = ["astral-sh/setup-uv@v5"]

[task.fit]
run = ".venv/bin/python fit.py"
retries = 2
retry_delay = "5s"
timeout = "10m"
env = { ALPHA = "0.5" }

[task.review]
run = "echo ok"
needs = ["fit"]
manual = true
owner = "analyst"
approval_timeout = "7d"
"#,
    )
}

#[test]
fn exports_carry_parameters_and_setup() {
    let wf = full();
    // GitHub Actions: inputs with defaults, WF_PARAM_* from them, the knobs, a setup step.
    let gh = yaml(&one(&wf, Target::GithubActions, &Options::default()).1);
    let inputs = &gh["on"]["workflow_dispatch"]["inputs"];
    assert_eq!(inputs["day"]["default"], "yesterday");
    assert_eq!(inputs["mode"]["default"], "it's \"score\"");
    let fit = &gh["jobs"]["fit"];
    assert_eq!(fit["runs-on"], "ubuntu-24.04");
    assert_eq!(fit["env"]["WF_PARAM_DAY"], "${{ inputs.day }}");
    let steps = fit["steps"].as_array().unwrap();
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert_eq!(
        uses[..3],
        [
            "actions/checkout@v4",
            "actions/setup-python@v5",
            "astral-sh/setup-uv@v5"
        ]
    );
    assert_eq!(steps[1]["with"]["python-version"], "3.12");
    let setup = gha_step(fit, "Set up");
    assert_eq!(
        setup["run"],
        "pip install -r requirements.txt\necho ready > setup.txt\n"
    );
    let body = one(&wf, Target::GithubActions, &Options::default()).1;
    assert!(
        body.contains("a path on the machine that wrote wf.toml"),
        "{body}"
    );
    // The run step resolves parameters as wf does: run it with sh and look.
    let script = gha_step(fit, "Run fit")["run"].as_str().unwrap();
    let probe = script.replace(
        ".venv/bin/python fit.py",
        "echo \"$WF_PARAM_DAY|$WF_PARAM_MODE\"",
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&probe)
        .env_remove("WF_PARAM_DAY")
        .env("WF_PARAM_MODE", "")
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    assert_eq!(got, format!("{yesterday}|it's \"score\""), "{probe}");

    // Argo: arguments with defaults, env from workflow parameters, setup in the prologue.
    let argo = yaml(&one(&wf, Target::Argo, &Options::default()).1);
    let spec = &argo["spec"]["workflowSpec"];
    let params = spec["arguments"]["parameters"].as_array().unwrap();
    assert_eq!(params[0]["name"], "day");
    assert_eq!(params[0]["value"], "yesterday");
    let tpl = spec["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "fit")
        .unwrap();
    let env = tpl["container"]["env"].as_array().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "WF_PARAM_DAY" && e["value"] == "{{workflow.parameters.day}}"));
    let cmd = tpl["container"]["command"][2].as_str().unwrap();
    assert!(cmd.contains("pip install -r requirements.txt\necho ready > setup.txt\nexec sh -c '.venv/bin/python fit.py'"), "{cmd}");
    if let Some(errors) = argo_schema_errors(&argo) {
        assert!(errors.is_empty(), "{errors:?}");
    }
    argo_semantics(&argo);

    // crontab and systemd run wf itself: they say how parameters are set.
    for target in [Target::Crontab, Target::Systemd] {
        let text = export(&wf, target, &Options::default()).unwrap()[0]
            .1
            .clone();
        assert!(text.contains("--param NAME=VALUE"), "{target}: {text}");
    }
    // Airflow: params, and the approval with its timeout.
    let af = one(&wf, Target::Airflow, &Options::default()).1;
    if let Some(doc) = python(&af) {
        let dag = &doc["dags"][0];
        assert_eq!(
            dag["params"]["mode"]["args"],
            serde_json::json!(["it's \"score\""])
        );
        assert_eq!(
            dag["tasks"]["approve_review"]["execution_timeout"],
            serde_json::json!({"seconds": 604800})
        );
    }
}

#[test]
fn export_settings_are_checked() {
    for (src, want) in [
        (
            "[export]\nsetup = \"pip install\"\n",
            "must be an array of strings",
        ),
        ("[export]\nsetpu = []\n", "did you mean `setup`"),
        (
            "[export.github_actions]\nruns_on = \"x\"\n",
            "did you mean `runs-on`",
        ),
        (
            "[export.github_actions]\nuses = [\"checkout\"]\n",
            "names an action",
        ),
        (
            "[export.github_actions]\npython-version = \"3.12 && rm\"\n",
            "one version",
        ),
    ] {
        let text = format!("{src}[task.a]\nrun = \"x\"\n");
        let err = parse_str(&text, Path::new("/srv/x/wf.toml"), false).unwrap_err();
        let msg: Vec<String> = err.iter().map(|d| d.to_string()).collect();
        assert!(msg.join("\n").contains(want), "{src}: {msg:?}");
    }
}
