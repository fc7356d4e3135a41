//! Argo export, checked against the v4.1.2 JSON schema and Argo's own rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

// ---------------------------------------------------------------- Argo

fn schema() -> Option<Value> {
    // shared/ sits beside the repository (CI, scratch crates) or at /work/shared.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = "shared/data/argo-workflows-v4.1.2-schema.json";
    let text = [
        root.join("..").join(name),
        root.join("../..").join(name),
        Path::new("/work").join(name),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())?;
    serde_json::from_str(&text).ok()
}

/// A small JSON-schema checker for what the exporter writes: `$ref`, `type`, `const`,
/// `required`, `properties` (a key the schema does not define is an error unless the schema
/// allows `additionalProperties`), `additionalProperties` and `items`.
fn check(schema: &Value, defs: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        match defs.get(name) {
            Some(s) => check(s, defs, v, at, errors),
            None => errors.push(format!("{at}: unknown $ref {r}")),
        }
        return;
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            errors.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let (Some(req), Some(obj)) = (
        schema.get("required").and_then(Value::as_array),
        v.as_object(),
    ) {
        for r in req {
            if !obj.contains_key(r.as_str().unwrap_or_default()) {
                errors.push(format!("{at}: missing required {r}"));
            }
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties");
        for (k, val) in obj {
            let here = format!("{at}.{k}");
            match (props.and_then(|p| p.get(k)), extra) {
                (Some(s), _) => check(s, defs, val, &here, errors),
                (None, Some(s)) if s.is_object() => check(s, defs, val, &here, errors),
                (None, Some(Value::Bool(true))) => {}
                (None, _) if props.is_some() => errors.push(format!("{here}: not in the schema")),
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(items, defs, item, &format!("{at}[{i}]"), errors);
        }
    }
}

pub(super) fn argo_schema_errors(doc: &Value) -> Option<Vec<String>> {
    let schema = schema()?;
    let defs = &schema["definitions"];
    let kind = doc["kind"].as_str().unwrap();
    let root = &defs[format!("io.argoproj.workflow.v1alpha1.{kind}")];
    assert!(root.is_object(), "no schema for {kind}");
    let mut errors = Vec::new();
    check(root, defs, doc, kind, &mut errors);
    Some(errors)
}

/// Argo's own rules the schema leaves out: valid names, known templates, resolvable
/// dependencies, a known entrypoint, mounted volumes that exist.
pub(super) fn argo_semantics(doc: &Value) {
    let spec = if doc["kind"] == "CronWorkflow" {
        &doc["spec"]["workflowSpec"]
    } else {
        &doc["spec"]
    };
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() <= 63
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let templates: BTreeSet<&str> = spec["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(templates.contains(spec["entrypoint"].as_str().unwrap()));
    let volumes: BTreeSet<&str> = spec["volumeClaimTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["metadata"]["name"].as_str().unwrap())
        .collect();
    for t in spec["templates"].as_array().unwrap() {
        assert!(
            valid(t["name"].as_str().unwrap()),
            "template name {}",
            t["name"]
        );
        for m in t["container"]["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(volumes.contains(m["name"].as_str().unwrap()));
        }
        let Some(tasks) = t["dag"]["tasks"].as_array() else {
            continue;
        };
        let names: BTreeSet<&str> = tasks.iter().map(|x| x["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), tasks.len(), "duplicate DAG task names");
        for x in tasks {
            assert!(
                valid(x["name"].as_str().unwrap()),
                "task name {}",
                x["name"]
            );
            assert!(templates.contains(x["template"].as_str().unwrap()));
            for d in x["dependencies"].as_array().into_iter().flatten() {
                assert!(
                    names.contains(d.as_str().unwrap()),
                    "unknown dependency {d}"
                );
            }
        }
    }
}

/// (edges between real tasks, tasks behind a suspend gate), by original wf names.
fn argo_dag(doc: &Value) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let spec = if doc["kind"] == "CronWorkflow" {
        &doc["spec"]["workflowSpec"]
    } else {
        &doc["spec"]
    };
    let templates: BTreeMap<&str, &Value> = spec["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    let main = templates[spec["entrypoint"].as_str().unwrap()];
    let tasks = main["dag"]["tasks"].as_array().unwrap();
    // DAG task name -> Some(wf name) for a real task, None for a suspend gate.
    let real: BTreeMap<&str, Option<String>> = tasks
        .iter()
        .map(|x| {
            let t = templates[x["template"].as_str().unwrap()];
            let orig = if t.get("suspend").is_some() {
                None
            } else {
                Some(
                    t["metadata"]["annotations"]["wf/task"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            };
            (x["name"].as_str().unwrap(), orig)
        })
        .collect();
    let mut edges = BTreeSet::new();
    let mut gated = BTreeSet::new();
    for x in tasks {
        let Some(me) = &real[x["name"].as_str().unwrap()] else {
            continue;
        };
        for d in x["dependencies"].as_array().into_iter().flatten() {
            match &real[d.as_str().unwrap()] {
                Some(from) => {
                    edges.insert((from.clone(), me.clone()));
                }
                None => {
                    gated.insert(me.clone());
                }
            }
        }
    }
    (edges, gated)
}

#[test]
fn argo_homework() {
    let wf = homework();
    let (name, body) = one(&wf, Target::Argo, &Options::default());
    assert_eq!(name, "wf-homework.argo.yaml");
    let doc = yaml(&body);
    assert_eq!(doc["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(doc["kind"], "CronWorkflow");
    assert_eq!(doc["spec"]["schedules"], serde_json::json!(["0 6 * * *"]));
    let spec = &doc["spec"]["workflowSpec"];
    assert_eq!(spec["entrypoint"], "main");
    assert_eq!(spec["volumeClaimTemplates"][0]["metadata"]["name"], "work");
    argo_semantics(&doc);
    let (got, gated) = argo_dag(&doc);
    assert_eq!(got, edges(&wf));
    assert_eq!(gated, BTreeSet::from(["report".to_string()]));

    let t = spec["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "train-or-score")
        .unwrap();
    assert_eq!(t["metadata"]["annotations"]["wf/task"], "train_or_score");
    assert_eq!(t["metadata"]["labels"]["wf/owner"], "ml_eng");
    assert_eq!(t["activeDeadlineSeconds"], "600");
    let c = &t["container"];
    assert_eq!(c["image"], "debian:bookworm-slim");
    assert_eq!(
        c["command"],
        serde_json::json!(["sh", "-c", "sh tasks/train_or_score.sh"])
    );
    assert_eq!(c["workingDir"], "/work");
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/work");
    assert!(c["env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"name": "MODE", "value": "train"})));
    let ingest = spec["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ingest")
        .unwrap();
    assert_eq!(
        ingest["retryStrategy"],
        serde_json::json!({"limit": "2", "backoff": {"duration": "1s"}})
    );
    let gate = spec["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "approve-report")
        .unwrap();
    assert_eq!(gate["suspend"], serde_json::json!({}));
    assert!(body.contains("argo resume"));

    match argo_schema_errors(&doc) {
        Some(errors) => assert!(errors.is_empty(), "{errors:#?}"),
        None => eprintln!("skipped the schema check: no argo-workflows-v4.1.2-schema.json"),
    }
    let mut unscheduled = wf.clone();
    unscheduled.schedule = None;
    let doc = yaml(&one(&unscheduled, Target::Argo, &Options::default()).1);
    argo_semantics(&doc);
    if let Some(errors) = argo_schema_errors(&doc) {
        assert!(errors.is_empty(), "{errors:#?}");
    }
}

#[test]
fn argo_schema_checker_catches_mistakes() {
    let Some(_) = schema() else {
        eprintln!("skipped: no schema");
        return;
    };
    let wf = homework();
    let mut doc = yaml(&one(&wf, Target::Argo, &Options::default()).1);
    let tpl = &mut doc["spec"]["workflowSpec"]["templates"][1];
    tpl["retryStrategy"]["limit"] = serde_json::json!(2);
    tpl["container"]["workdir"] = serde_json::json!("/x");
    doc["spec"]["schedule"] = serde_json::json!("0 6 * * *");
    let errors = argo_schema_errors(&doc).unwrap();
    let text = errors.join("\n");
    assert!(text.contains("limit: 2 is not of type string"), "{text}");
    assert!(
        text.contains("container.workdir: not in the schema"),
        "{text}"
    );
    assert!(text.contains("spec.schedule: not in the schema"), "{text}");
}

#[test]
fn argo_names_are_valid_and_distinct() {
    let wf = from_toml(
        "[task.a_b]\nrun = \"x\"\n[task.a-b]\nrun = \"x\"\n[task.9lives]\nrun = \"x\"\nneeds = [\"a_b\"]\n\
         [task.Main]\nrun = \"x\"\n[task.approve-gate]\nrun = \"x\"\n[task.gate]\nrun = \"x\"\nmanual = true\n\
         needs = [\"9lives\", \"a-b\"]\nowner = \"Ann Smith <ann@example.com>\"\n",
    );
    assert_eq!(
        argo::argo_names(&wf),
        ["a-b", "a-b-2", "t-9lives", "main-2", "approve-gate", "gate"]
    );
    let doc = yaml(&one(&wf, Target::Argo, &Options::default()).1);
    argo_semantics(&doc);
    let (got, gated) = argo_dag(&doc);
    assert_eq!(got, edges(&wf));
    assert_eq!(gated, BTreeSet::from(["gate".to_string()]));
    let body = one(&wf, Target::Argo, &Options::default()).1;
    assert!(body.contains("name: approve-gate-2"), "{body}");
    assert_eq!(
        argo::label_value("Ann Smith <ann@example.com>").as_deref(),
        Some("Ann-Smith--ann-example.com")
    );
    assert_eq!(argo::label_value("--"), None);
    if let Some(errors) = argo_schema_errors(&doc) {
        assert!(errors.is_empty(), "{errors:#?}");
    }
}

#[test]
fn argo_quoting_round_trips() {
    for run in tricky_runs() {
        let wf = single(&run, 1);
        let doc = yaml(&one(&wf, Target::Argo, &Options::default()).1);
        let t = &doc["spec"]["workflowSpec"]["templates"][1];
        assert_eq!(t["container"]["command"][2], run.as_str());
        let env = t["container"]["env"].as_array().unwrap();
        let odd = env.iter().find(|e| e["name"] == "ODD").unwrap();
        assert_eq!(odd["value"], run.as_str());
        assert_eq!(t["retryStrategy"]["limit"], "1");
    }
    let wf = single("echo {{workflow.name}}", 0);
    let err = export(&wf, Target::Argo, &Options::default()).unwrap_err();
    assert!(err.contains("{{"), "{err}");
}
