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

mod to_airflow;
mod to_argo;
mod to_github;
mod yaml_graph;

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
