//! GitHub Actions export.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

// ---------------------------------------------------------------- GitHub Actions

/// Job id → task name (from its WF_TASK).
fn gha_tasks(doc: &Value) -> BTreeMap<String, String> {
    doc["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, j)| {
            (
                id.clone(),
                j["env"]["WF_TASK"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub(super) fn gha_step<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

/// What GitHub does to `${{ '${{' }}` before the shell sees it.
fn gha_eval(s: &str) -> String {
    s.replace("${{ '${{' }}", "${{")
}

#[test]
fn github_actions_homework() {
    let wf = homework();
    let (name, body) = one(&wf, Target::GithubActions, &Options::default());
    assert_eq!(name, "wf-homework.yml");
    let doc = yaml(&body);
    assert_eq!(doc["on"]["schedule"][0]["cron"], "0 6 * * *");
    assert!(doc["on"].get("workflow_dispatch").is_some());
    let tasks = gha_tasks(&doc);
    assert_eq!(tasks.len(), 4);
    let mut got = BTreeSet::new();
    for (id, job) in doc["jobs"].as_object().unwrap() {
        assert!(
            id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "job id {id}"
        );
        for n in job["needs"].as_array().into_iter().flatten() {
            got.insert((tasks[n.as_str().unwrap()].clone(), tasks[id].clone()));
        }
        assert_eq!(job["steps"][0]["uses"], "actions/checkout@v4");
    }
    assert_eq!(got, edges(&wf));

    let jobs = &doc["jobs"];
    assert_eq!(jobs["report"]["environment"], "wf-approval-report");
    assert!(body.contains("required reviewers"));
    assert!(jobs["ingest"].get("environment").is_none());
    assert_eq!(jobs["ingest"]["name"], "ingest (data_eng)");
    assert_eq!(jobs["train_or_score"]["env"]["MODE"], "train");

    // ingest: 2 retries, 1 s apart, 5 min per attempt.
    let run = gha_step(&jobs["ingest"], "Run ingest");
    assert_eq!(run["shell"], "sh");
    assert_eq!(run["timeout-minutes"], 16);
    let script = run["run"].as_str().unwrap();
    assert!(
        script.contains("timeout -k 5 300 sh -c 'sh tasks/ingest.sh'"),
        "{script}"
    );
    assert!(
        script.contains("-ge 3 ]") && script.contains("sleep 1"),
        "{script}"
    );
    assert_eq!(command_seen_by_sh(script), "sh tasks/ingest.sh");
    assert_eq!(
        gha_step(&jobs["clean"], "Run clean")["run"],
        "timeout -k 5 300 sh -c 'sh tasks/clean.sh'"
    );

    // Outputs go up as artifacts and come down where upload-artifact rooted them.
    let up = gha_step(
        &jobs["train_or_score"],
        "Upload the outputs of train_or_score",
    );
    assert_eq!(up["uses"], "actions/upload-artifact@v4");
    assert_eq!(up["with"]["name"], "wf-train_or_score");
    assert_eq!(up["with"]["path"], "model/model.json\ndata/scores.json\n");
    assert_eq!(up["with"]["if-no-files-found"], "error");
    assert_eq!(up["with"]["retention-days"], 30);
    let down = gha_step(&jobs["report"], "Download the outputs of train_or_score");
    assert_eq!(down["uses"], "actions/download-artifact@v4");
    assert_eq!(down["with"]["name"], "wf-train_or_score");
    assert_eq!(down["with"]["path"], ".");
    let down = gha_step(&jobs["clean"], "Download the outputs of ingest");
    assert_eq!(down["with"]["path"], "data");
    assert!(body.contains("its own runner"));
}

#[test]
fn github_actions_paths_below_the_checkout() {
    let wf = homework();
    let opts = Options {
        workdir: Some("examples/homework/".into()),
        ..Options::default()
    };
    let doc = yaml(&one(&wf, Target::GithubActions, &opts).1);
    assert_eq!(
        doc["defaults"]["run"]["working-directory"],
        "examples/homework"
    );
    let jobs = &doc["jobs"];
    let up = gha_step(&jobs["ingest"], "Upload the outputs of ingest");
    assert_eq!(up["with"]["path"], "examples/homework/data/raw.json");
    let down = gha_step(&jobs["report"], "Download the outputs of train_or_score");
    assert_eq!(down["with"]["path"], "examples/homework");
    assert_eq!(
        github::common_dir(&["a/b/c".into(), "a/b/d/e".into()]),
        "a/b"
    );
    assert_eq!(github::common_dir(&["/x/y".into(), "/z".into()]), "/");
}

#[test]
fn github_actions_quoting_round_trips() {
    let mut runs = tricky_runs();
    runs.push("echo ${{ secrets.TOKEN }} '${{' x".into());
    for run in &runs {
        for retries in [0, 1] {
            let wf = single(run, retries);
            let body = one(&wf, Target::GithubActions, &Options::default()).1;
            let doc = yaml(&body);
            let job = &doc["jobs"]["t_1"];
            assert_eq!(gha_eval(job["env"]["ODD"].as_str().unwrap()), *run);
            let script = gha_eval(gha_step(job, "Run t_1")["run"].as_str().unwrap());
            assert_eq!(
                command_seen_by_sh(&script),
                *run,
                "retries {retries}:\n{body}"
            );
        }
    }
    assert_eq!(github::job_id("9lives"), "_9lives");
}
