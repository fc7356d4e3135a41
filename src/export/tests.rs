//! Tests of the exporters: each output parses, mirrors the DAG, keeps the manual gate, and
//! carries awkward commands through its quoting exactly (checked by parsing or running it back).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::workflow::{load, parse_str, Workflow};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// The example (as frozen in tests/data), loaded from a copy outside any git work tree (GitHub Actions paths are relative
/// to the checkout, so where the file sits matters).
fn homework() -> Workflow {
    let dir = std::env::temp_dir().join(format!("wf-export-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::copy(data("homework/wf.toml"), dir.join("wf.toml"))
        .unwrap_or_else(|e| panic!("copy: {e}"));
    load(&dir.join("wf.toml")).unwrap_or_else(|e| panic!("load homework: {e:?}"))
}

/// The example as it is today (examples/homework: with `[params]`).
fn example() -> Workflow {
    load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homework/wf.toml"))
        .unwrap_or_else(|e| panic!("load the example: {e:?}"))
}

fn from_toml(src: &str) -> Workflow {
    parse_str(src, Path::new("/srv/pipelines/demo/wf.toml"), false)
        .unwrap_or_else(|e| panic!("parse: {e:?}"))
}

/// (need, task) pairs of the workflow.
fn edges(wf: &Workflow) -> BTreeSet<(String, String)> {
    wf.tasks
        .iter()
        .flat_map(|t| t.needs.iter().map(|n| (n.clone(), t.name.clone())))
        .collect()
}

fn one(wf: &Workflow, target: Target, opts: &Options) -> (String, String) {
    let mut files = export(wf, target, opts).unwrap_or_else(|e| panic!("{target}: {e}"));
    assert_eq!(files.len(), 1, "{target}");
    files.remove(0)
}

fn yaml(s: &str) -> Value {
    serde_yaml_ng::from_str(s).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{s}"))
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a shell script in which `sh` and `timeout` are functions that write the command string
/// `sh -c CMD` was given into a file, and returns it: what the real shell would have run.
fn command_seen_by_sh(script: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmd");
    let prelude =
        "sh() { printf '%s' \"$2\" > \"$OUT\"; return 0; }\ntimeout() { shift 3; \"$@\"; }\n";
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .env("OUT", &out)
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "script failed: {script}");
    std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("no command run ({e}): {script}"))
}

/// Commands that are hard to quote, for every target.
fn tricky_runs() -> Vec<String> {
    [
        "echo 'single quoted' it's",
        r#"echo "double \"quoted\"" "$HOME""#,
        "echo $VAR ${VAR:-x} $(date +%Y-%m-%d) `id -u` 100%",
        "printf 'line 1\\n'\necho line 2\n  indented line\n\n\nlast",
        "echo not # a comment && echo 'key: value' key: value # x",
        "echo trailing newline\n",
        "echo two trailing\n\n",
        "echo\t'tab é ✓ \u{2028} sep'",
        "tasks/run.sh",
        "-n",
        "echo back\\\\slash \\n \\",
        "a=1; b='{}'; [ \"$a\" = 1 ] && echo ok",
        "cat <<'EOF'\n---\n...\n- x\nEOF",
        "echo cr\r\nnext",
        " leading space",
        "echo '\"'\"'\"' mixed",
        "true",
        "yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A one-task workflow running `run`, with `retries` retries.
fn single(run: &str, retries: u32) -> Workflow {
    let mut wf =
        from_toml("[workflow]\nname = \"q\"\nschedule = \"0 6 * * *\"\n[task.t_1]\nrun = \"x\"\n");
    wf.tasks[0].run = run.to_string();
    wf.tasks[0].retries = retries;
    wf.tasks[0].retry_delay = Duration::from_secs(0);
    wf.tasks[0].env.insert("ODD".into(), run.to_string());
    wf
}

// ---------------------------------------------------------------- targets and options

#[test]
fn target_names_round_trip() {
    for t in Target::ALL {
        assert_eq!(t.name().parse::<Target>(), Ok(t));
        assert_eq!(t.to_string(), t.name());
    }
    let err = "gha".parse::<Target>().unwrap_err();
    for t in Target::ALL {
        assert!(err.contains(t.name()), "{err}");
    }
    assert!(err.contains("`gha`"), "{err}");
    let o = Options::default();
    assert_eq!(o.image, "debian:bookworm-slim");
    assert_eq!(o.wf_bin, "wf");
    assert_eq!(o.workdir, None);
}

#[test]
fn every_output_has_the_header() {
    let wf = homework();
    for t in Target::ALL {
        for (name, body) in export(&wf, t, &Options::default()).unwrap() {
            let first = body.lines().next().unwrap();
            assert!(
                first.starts_with(&format!("# Generated by `wf export --to {t}` from ")),
                "{name}: {first}"
            );
            assert!(body.contains("wf.toml"), "{name}");
            if matches!(t, Target::GithubActions | Target::Argo | Target::Airflow) {
                for what in [
                    "journal",
                    "content-hash caching",
                    "retention",
                    "crash-exact resume",
                ] {
                    assert!(body.contains(what), "{name} does not mention {what}");
                }
            }
        }
    }
}

#[test]
fn unscheduled_workflows() {
    let mut wf = homework();
    wf.schedule = None;
    let opts = Options::default();
    assert_eq!(
        export(&wf, Target::Crontab, &opts).unwrap_err(),
        "the workflow has no `schedule`; add one under [workflow] to export to crontab"
    );
    assert!(export(&wf, Target::Systemd, &opts)
        .unwrap_err()
        .contains("no `schedule`"));
    let (_, gha) = one(&wf, Target::GithubActions, &opts);
    let on = &yaml(&gha)["on"];
    assert!(on.get("schedule").is_none());
    assert!(on.get("workflow_dispatch").is_some());
    let (_, argo) = one(&wf, Target::Argo, &opts);
    let a = yaml(&argo);
    assert_eq!(a["kind"], "Workflow");
    assert_eq!(a["metadata"]["generateName"], "homework-");
    assert_eq!(a["spec"]["entrypoint"], "main");
    let (_, py) = one(&wf, Target::Airflow, &opts);
    assert!(
        py.contains("    dag_id=\"homework\",\n    schedule=None,"),
        "{py}"
    );
}

// ---------------------------------------------------------------- crontab

#[test]
fn crontab_homework() {
    let wf = homework();
    let (name, body) = one(&wf, Target::Crontab, &Options::default());
    assert_eq!(name, "wf-homework.crontab");
    let lines: Vec<&str> = body
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(lines.len(), 1, "{body}");
    let fields: Vec<&str> = lines[0].splitn(6, ' ').collect();
    assert_eq!(fields.len(), 6);
    assert_eq!(fields[..5].join(" "), "0 6 * * *");
    let dir = wf.dir.display().to_string();
    assert_eq!(
        fields[5],
        format!(
            "cd {} && wf -q run --resume >> wf-cron.log 2>&1",
            sh_quote(&dir)
        )
    );
    for code in [
        "0 the run is done",
        "1 a task failed",
        "3 another wf holds the state",
    ] {
        assert!(body.contains(code), "{code}");
    }
    assert!(body.contains(&format!("#   cd {} && wf approve report", sh_quote(&dir))));
}

#[test]
fn crontab_line_runs_wf_in_an_awkward_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let odd = tmp.path().join("it's 100% \"odd\" $HOME #dir");
    std::fs::create_dir(&odd).unwrap();
    let fake = tmp.path().join("fakewf");
    std::fs::write(&fake, "#!/bin/sh\n{ pwd; echo \"$*\"; } > \"$OUT\"\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let mut wf = homework();
    wf.dir = odd.clone();
    let opts = Options {
        wf_bin: fake.display().to_string(),
        ..Options::default()
    };
    let (_, body) = one(&wf, Target::Crontab, &opts);
    let line = body
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap();
    let command = line.splitn(6, ' ').nth(5).unwrap();
    // What cron does: an unescaped % ends the command; \% is a literal %.
    assert!(!command.replace("\\%", "").contains('%'), "{command}");
    let command = command.replace("\\%", "%");
    let out = tmp.path().join("seen");
    let status = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("OUT", &out)
        .status()
        .unwrap();
    assert!(status.success());
    let seen = std::fs::read_to_string(&out).unwrap();
    assert_eq!(seen, format!("{}\n-q run --resume\n", odd.display()));
    assert!(odd.join("wf-cron.log").exists());

    wf.dir = PathBuf::from("/a\nb");
    assert!(export(&wf, Target::Crontab, &opts)
        .unwrap_err()
        .contains("line break"));
    wf.dir = PathBuf::from("/a\\b");
    assert!(export(&wf, Target::Crontab, &opts)
        .unwrap_err()
        .contains("backslash"));
}

// ---------------------------------------------------------------- systemd

/// `[Section]` → key → values, from a unit file.
fn unit(s: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for l in s.lines() {
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (k, v) = l
            .split_once('=')
            .unwrap_or_else(|| panic!("bad line {l:?}"));
        out.entry(section.clone())
            .or_default()
            .entry(k.to_string())
            .or_default()
            .push(v.to_string());
    }
    out
}

#[test]
fn systemd_homework() {
    let wf = homework();
    let files = export(&wf, Target::Systemd, &Options::default()).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["wf-homework.service", "wf-homework.timer"]);
    let service = unit(&files[0].1);
    let s = &service["Service"];
    assert_eq!(s["Type"], ["oneshot"]);
    assert_eq!(s["WorkingDirectory"], [wf.dir.display().to_string()]);
    assert_eq!(s["ExecStart"], ["wf -q run --resume"]);
    assert_eq!(s["SuccessExitStatus"], ["3 130"]);
    assert_eq!(s["KillMode"], ["mixed"]);
    let timer = unit(&files[1].1);
    let t = &timer["Timer"];
    assert_eq!(t["OnCalendar"], ["*-*-* 06:00:00"]);
    assert_eq!(t["Persistent"], ["true"]);
    assert_eq!(t["Unit"], ["wf-homework.service"]);
    assert_eq!(timer["Install"]["WantedBy"], ["timers.target"]);
    assert!(files[0].1.contains("wf approve report"));
}

#[test]
fn systemd_escapes_percent_and_needs_an_absolute_dir() {
    let mut wf = homework();
    wf.dir = PathBuf::from("/srv/100% odd dir");
    let files = export(&wf, Target::Systemd, &Options::default()).unwrap();
    let service = unit(&files[0].1);
    assert_eq!(
        service["Service"]["WorkingDirectory"],
        ["/srv/100%% odd dir"]
    );
    wf.name = "two\nlines 50%".into();
    let files = export(&wf, Target::Systemd, &Options::default()).unwrap();
    assert_eq!(
        unit(&files[0].1)["Unit"]["Description"],
        ["wf workflow two lines 50%% (wf run --resume)"]
    );
    assert_eq!(files[0].0, "wf-two-lines-50.service");
    let opts = Options {
        workdir: Some("relative/dir".into()),
        ..Options::default()
    };
    assert!(export(&wf, Target::Systemd, &opts)
        .unwrap_err()
        .contains("absolute"));
}

#[test]
fn cron_to_on_calendar() {
    let cases = [
        ("0 6 * * *", "*-*-* 06:00:00"),
        ("*/15 * * * *", "*-*-* *:00/15:00"),
        ("5 0-23/2 * * *", "*-*-* 00/2:05:00"),
        ("30 9 * * 1-5", "Mon..Fri *-*-* 09:30:00"),
        ("0 12 * * MON,wed,FRI", "Mon,Wed,Fri *-*-* 12:00:00"),
        ("0 0 1 1,7 *", "*-01,07-01 00:00:00"),
        ("0 0 1 jan-MAR *", "*-01..03-01 00:00:00"),
        ("0 0 * * 0", "Sun *-*-* 00:00:00"),
        ("0 0 * * 7", "Sun *-*-* 00:00:00"),
        ("0 0 * * 5-7", "Sun,Fri,Sat *-*-* 00:00:00"),
        ("0 8,12,16 * * *", "*-*-* 08,12,16:00:00"),
        ("0 9-17 * * *", "*-*-* 09..17:00:00"),
        ("0 0 */2 * *", "*-*-01/2 00:00:00"),
        ("10/20 * * * *", "*-*-* *:10/20:00"),
        ("0 0 * * */2", "Sun,Tue,Thu,Sat *-*-* 00:00:00"),
        ("0,1 0 * * *", "*-*-* 00:00,01:00"),
        ("59 23 31 12 *", "*-12-31 23:59:00"),
        ("0 0 */2 * 1", "Mon *-*-01/2 00:00:00"),
    ];
    for (cron, want) in cases {
        assert_eq!(systemd::on_calendar(cron).as_deref(), Ok(want), "{cron}");
    }
    let err = systemd::on_calendar("0 0 1 * 1").unwrap_err();
    assert!(err.contains("either matches"), "{err}");
    assert!(systemd::on_calendar("0 0 * *").is_err());
    assert!(systemd::on_calendar("61 0 * * *").is_err());
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// An independent cron matcher (Vixie semantics: day of month OR day of week when both are
/// restricted), for comparing with systemd's own reading of the converted expression.
fn cron_matches(cron: &str, min: u32, hour: u32, dom: u32, month: u32, dow: u32) -> bool {
    let f: Vec<&str> = cron.split_whitespace().collect();
    let names = |i: usize| -> Vec<&str> {
        match i {
            3 => vec![
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
            4 => vec!["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            _ => vec![],
        }
    };
    let m = |i: usize, v: u32, lo: u32, hi: u32| -> bool {
        let val = |s: &str| -> u32 {
            s.parse().unwrap_or_else(|_| {
                let p = names(i)
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(s))
                    .unwrap() as u32;
                if i == 3 {
                    p + 1
                } else {
                    p
                }
            })
        };
        f[i].split(',').any(|item| {
            let (r, step) = match item.split_once('/') {
                Some((r, s)) => (r, s.parse::<u32>().unwrap()),
                None => (item, 1),
            };
            let (a, b) = match r {
                "*" => (lo, hi),
                r => match r.split_once('-') {
                    Some((a, b)) => (val(a), val(b)),
                    None if item.contains('/') => (val(r), hi),
                    None => (val(r), val(r)),
                },
            };
            let hit = |v: u32| v >= a && v <= b && (v - a).is_multiple_of(step);
            hit(v) || (i == 4 && v == 0 && hit(7))
        })
    };
    let dom_ok = m(2, dom, 1, 31);
    let dow_ok = m(4, dow, 0, 7);
    let day = if f[2].starts_with('*') || f[4].starts_with('*') {
        dom_ok && dow_ok
    } else {
        dom_ok || dow_ok
    };
    m(0, min, 0, 59) && m(1, hour, 0, 23) && m(3, month, 1, 12) && day
}

#[test]
fn on_calendar_fires_when_cron_does() {
    if !have("systemd-analyze") {
        eprintln!("skipped: no systemd-analyze");
        return;
    }
    // 2026-01-01 00:00 UTC, in minutes since the epoch.
    let base: i64 = 20_454 * 1440;
    for cron in [
        "0 6 * * *",
        "*/15 * * * *",
        "5 0-23/2 * * *",
        "30 9 * * 1-5",
        "0 12 * * MON,wed,FRI",
        "0 0 1 1,7 *",
        "7 3 * * 5-7",
        "0 0 */2 * *",
        "10/20 * * * *",
        "0 0 * * */2",
        "0 0 */2 * 1",
        "15 14 1-7 * *",
    ] {
        let cal = systemd::on_calendar(cron).unwrap();
        let out = Command::new("systemd-analyze")
            .args([
                "calendar",
                "--iterations=10",
                "--base-time=2026-01-01 00:00:00 UTC",
                &cal,
            ])
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let got: Vec<String> = text
            .lines()
            .filter(|l| l.contains("Next elapse:") || l.contains("Iter. #"))
            .map(|l| {
                let v = l.split_once(": ").unwrap().1.trim();
                // "Thu 2026-01-01 06:00:00 UTC" -> "2026-01-01 06:00"
                v.split_whitespace()
                    .skip(1)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")[..16]
                    .to_string()
            })
            .collect();
        let mut want = Vec::new();
        let first_day = base / 1440;
        'days: for days in first_day..first_day + 12 * 366 {
            let (y, mo, d) = civil(days);
            let dow = (days + 4).rem_euclid(7) as u32;
            for mins in 0..1440 {
                if days * 1440 + mins <= base {
                    continue;
                }
                if cron_matches(cron, (mins % 60) as u32, (mins / 60) as u32, d, mo, dow) {
                    want.push(format!(
                        "{y:04}-{mo:02}-{d:02} {:02}:{:02}",
                        mins / 60,
                        mins % 60
                    ));
                    if want.len() == got.len() {
                        break 'days;
                    }
                }
            }
        }
        assert_eq!(got.len(), 10, "{cron} -> {cal}: {text}");
        assert_eq!(got, want, "{cron} -> {cal}");
    }
}

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

fn gha_step<'a>(job: &'a Value, name: &str) -> &'a Value {
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

fn argo_schema_errors(doc: &Value) -> Option<Vec<String>> {
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
fn argo_semantics(doc: &Value) {
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

// ---------------------------------------------------------------- YAML writer

#[test]
fn yaml_scalars_round_trip() {
    let mut cases = tricky_runs();
    cases.extend(
        [
            "",
            "on",
            "No",
            "null",
            "~",
            "1.5",
            "0x1F",
            "-",
            "- x",
            "? x",
            "*a",
            "&a",
            "!t",
            "%x",
            "@x",
            "a: b",
            "a #b",
            "a:b",
            "trailing ",
            "x\u{85}y",
            "bom\u{feff}",
            "nul\u{0}",
            "\u{7f}",
            "\u{1F600}",
            "\"",
            "'",
            "\\",
            "{a}",
            "[a]",
            "|",
            ">",
            "a\n",
            "\n",
            "\n\na",
            "a\n\n\n",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    for s in &cases {
        let doc = yaml::render(
            &yaml::MapB::new()
                .put("k", yaml::Y::str(s.clone()))
                .put("l", yaml::Y::Seq(vec![yaml::Y::str(s.clone())]))
                .put(s, yaml::Y::str("key"))
                .build(),
        );
        let v = yaml(&doc);
        assert_eq!(v["k"], s.as_str(), "{doc}");
        assert_eq!(v["l"][0], s.as_str(), "{doc}");
        assert_eq!(v[s.as_str()], "key", "{doc}");
    }
    assert_eq!(yaml::scalar("sh tasks/x.sh"), "sh tasks/x.sh");
    assert_eq!(yaml::scalar("yes"), "'yes'");
    assert_eq!(yaml::block("a\nb\n", 2).as_deref(), Some("|\n  a\n  b"));
}

// ---------------------------------------------------------------- graph

#[test]
fn graph_text_homework() {
    let text = graph_text(&homework());
    assert_eq!(
        text,
        "homework: 4 tasks, 3 edges, schedule `0 6 * * *`\n\
         ingest (data_eng)\n\
         └─▶ clean (data_eng)\n    └─▶ train_or_score (ml_eng)\n        \
         └─▶ ⏸ report (analyst)  manual: runs after `wf approve report`\n"
    );
}

#[test]
fn graph_text_diamond() {
    let wf = from_toml(
        "[workflow]\nname = \"d\"\n[task.a]\nrun = \"x\"\n[task.b]\nrun = \"x\"\nneeds = [\"a\"]\n\
         [task.c]\nrun = \"x\"\nneeds = [\"a\"]\n[task.d]\nrun = \"x\"\nneeds = [\"b\", \"c\"]\n",
    );
    assert_eq!(
        graph_text(&wf),
        "d: 4 tasks, 4 edges\na\n└─▶ b\n└─▶ c  ← a\n    └─▶ d  ← b, c\n"
    );
}

#[test]
fn graph_dot_homework() {
    let wf = homework();
    let dot = graph_dot(&wf);
    assert!(dot.starts_with("// Generated by `wf graph --dot`"));
    assert!(dot.contains("digraph \"homework\" {"));
    let got: BTreeSet<(String, String)> = dot
        .lines()
        .filter_map(|l| {
            let (a, b) = l.trim().strip_suffix(';')?.split_once(" -> ")?;
            Some((
                a.trim_matches('"').to_string(),
                b.trim_matches('"').to_string(),
            ))
        })
        .collect();
    assert_eq!(got, edges(&wf));
    let report = dot
        .lines()
        .find(|l| l.trim_start().starts_with("\"report\" ["))
        .unwrap();
    assert!(report.contains("shape=hexagon"), "{report}");
    assert!(dot.contains("[label=\"ingest\\nowner: data_eng\"]"));
    assert!(dot.trim_end().ends_with('}'));
    if have("dot") {
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
}
