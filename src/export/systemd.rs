//! `wf export --to systemd`: a oneshot service that runs `wf -q run --resume`, and a timer whose
//! `OnCalendar=` is the workflow's cron `schedule`, converted.

use std::collections::BTreeSet;

use super::{
    file_stem, hash_comment, header, local_workdir, one_line, params_note, Options, Target,
};
use crate::workflow::Workflow;

pub(crate) fn export(wf: &Workflow, opts: &Options) -> Result<Vec<(String, String)>, String> {
    let schedule = wf
        .schedule
        .as_deref()
        .ok_or("the workflow has no `schedule`; add one under [workflow] to export to systemd")?;
    let calendar = on_calendar(schedule)?;
    let dir = local_workdir(wf, opts)?;
    if !dir.starts_with('/') {
        return Err(format!(
            "systemd needs an absolute WorkingDirectory, not `{dir}`; pass an absolute --workdir"
        ));
    }
    one_line("--wf-bin", &opts.wf_bin)?;
    let unit = format!("wf-{}", file_stem(&wf.name));
    // One line: a control character would end the setting early.
    let name: String = wf
        .name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let name = unit_escape(&name);

    let mut c = header(wf, Target::Systemd);
    c.extend([
        String::new(),
        "The service starts wf itself, so nothing is translated: wf's journal, checkpoints,".into(),
        format!("retention and crash-exact resume stay in {dir}/.wf on this machine."),
        "Install system-wide (or as a user unit: ~/.config/systemd/user/ and `systemctl --user`):"
            .into(),
        format!("  cp {unit}.service {unit}.timer /etc/systemd/system/"),
        format!("  systemctl daemon-reload && systemctl enable --now {unit}.timer"),
        format!("wf's errors: `journalctl -u {unit}.service`; the run: `cd {dir} && wf status`."),
        "Without a full path, ExecStart= finds wf only in /usr/local/bin, /usr/bin and the like:"
            .into(),
        "install it there or export with --wf-bin /full/path/wf.".into(),
    ]);
    c.extend(params_note(wf));
    let mut service = hash_comment(&c);
    service.push_str(&format!(
        "\n[Unit]\nDescription=wf workflow {name} (wf run --resume)\nWants=network-online.target\nAfter=network-online.target\n\n[Service]\nType=oneshot\nWorkingDirectory={}\n",
        unit_escape(&dir)
    ));
    service.push_str(&hash_comment(&[
        "Resumes the run that a crash, reboot or stop interrupted, else starts a new one.".into(),
    ]));
    service.push_str(&format!(
        "ExecStart={} -q run --resume\n",
        unit_escape(&opts.wf_bin).replace('$', "$$")
    ));
    let mut codes = vec![
        "Exit 0: the run is done, or waiting at a manual gate. Exit 1: a task failed.".to_string(),
    ];
    for t in wf.tasks.iter().filter(|t| t.manual) {
        codes.push(format!(
            "  The manual task `{}` waits for: cd {dir} && wf approve {}",
            t.name, t.name
        ));
    }
    codes.extend([
        "Exit 3: another wf holds the state (a run started by hand is still going); not a failure"
            .into(),
        "of this start. Exit 130: stopped by SIGTERM (systemctl stop, shutdown); the next start"
            .into(),
        "resumes the run.".into(),
    ]);
    service.push_str(&hash_comment(&codes));
    service.push_str("SuccessExitStatus=3 130\n");
    service.push_str(&hash_comment(&[
        "SIGTERM to wf alone: wf stops its tasks' process groups itself (SIGTERM, then SIGKILL"
            .into(),
        "5 s later) and journals the stop; systemd kills what is left when TimeoutStopSec ends."
            .into(),
    ]));
    service.push_str("KillMode=mixed\n");
    service.push_str(&hash_comment(&[
        "A system unit runs as root unless it names a user:".into(),
    ]));
    service.push_str("#User=someone\n");

    let mut timer = hash_comment(&header(wf, Target::Systemd));
    timer.push_str(&format!(
        "\n[Unit]\nDescription=Schedule of wf workflow {name}\n\n[Timer]\n"
    ));
    timer.push_str(&hash_comment(&[format!(
        "cron `{schedule}`, in the machine's local time zone as cron reads it."
    )]));
    timer.push_str(&format!("OnCalendar={calendar}\n"));
    timer.push_str(&hash_comment(&[
        "A start missed while the machine was off happens at the next boot.".into(),
    ]));
    timer.push_str(&format!(
        "Persistent=true\nUnit={unit}.service\n\n[Install]\nWantedBy=timers.target\n"
    ));
    Ok(vec![
        (format!("{unit}.service"), service),
        (format!("{unit}.timer"), timer),
    ])
}

/// `%` starts a specifier in unit files; `%%` is a literal `%`.
fn unit_escape(s: &str) -> String {
    s.replace('%', "%%")
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const SYSTEMD_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Converts a 5-field cron expression to a systemd `OnCalendar=` expression with the same
/// times. Every field form wf accepts converts (numbers, names, `*`, `a,b`, `a-b`, steps);
/// the one thing that does not is a schedule restricting both the day of month and the day of
/// week: cron runs when *either* matches, systemd only when both do.
pub(crate) fn on_calendar(cron: &str) -> Result<String, String> {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields[..] else {
        return Err(format!(
            "`{cron}` is not a 5-field cron expression (minute hour day month weekday)"
        ));
    };
    if !dom.starts_with('*') && !dow.starts_with('*') {
        return Err(format!(
            "cron `{cron}` restricts both the day of month (`{dom}`) and the day of week (`{dow}`): \
             cron runs when either matches, a systemd timer only when both do, so it has no \
             OnCalendar= equivalent; use `*` in one of them, or write two timers by hand"
        ));
    }
    let minutes = field(minute, "minute", 0, 59, &[])?;
    let hours = field(hour, "hour", 0, 23, &[])?;
    let doms = field(dom, "day of month", 1, 31, &[])?;
    let months = field(month, "month", 1, 12, &MONTHS)?;
    let dows: BTreeSet<u32> = field(dow, "day of week", 0, 7, &DAYS)?
        .into_iter()
        .map(|d| d % 7)
        .collect();
    let mut out = String::new();
    if dows.len() < 7 {
        out.push_str(&days(&dows));
        out.push(' ');
    }
    out.push_str(&format!(
        "*-{}-{} {}:{}:00",
        component(&months, 1, 12),
        component(&doms, 1, 31),
        component(&hours, 0, 23),
        component(&minutes, 0, 59)
    ));
    Ok(out)
}

/// The set of values a cron field matches. `N/S` means `N-max/S`, as in cronie.
fn field(f: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<BTreeSet<u32>, String> {
    let bad = || format!("invalid cron {what} field `{f}`");
    let value = |v: &str| -> Result<u32, String> {
        if let Ok(n) = v.parse::<u32>() {
            return if (lo..=hi).contains(&n) {
                Ok(n)
            } else {
                Err(bad())
            };
        }
        let base = if names.len() == 12 { 1 } else { 0 };
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(v))
            .map(|p| p as u32 + base)
            .ok_or_else(bad)
    };
    let mut set = BTreeSet::new();
    for item in f.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s.parse::<u32>().map_err(|_| bad())?)),
            None => (item, None),
        };
        let has_step = step.is_some();
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err(bad());
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let a = value(range)?;
            (a, if has_step { hi } else { a })
        };
        if a > b {
            return Err(bad());
        }
        set.extend((a..=b).step_by(step as usize));
    }
    Ok(set)
}

/// One OnCalendar component: `*`, `START/STEP` (every STEP from START to the maximum),
/// or a list of values and `a..b` ranges; two digits each.
fn component(set: &BTreeSet<u32>, lo: u32, hi: u32) -> String {
    let v: Vec<u32> = set.iter().copied().collect();
    if v.len() as u32 == hi - lo + 1 {
        return "*".into();
    }
    if v.len() >= 3 {
        let step = v[1] - v[0];
        let progression = step >= 2 && v.windows(2).all(|w| w[1] - w[0] == step);
        if progression && v[v.len() - 1] + step > hi {
            return format!("{:02}/{step}", v[0]);
        }
    }
    runs(&v)
        .into_iter()
        .map(|(a, b)| match b - a {
            0 => format!("{a:02}"),
            1 => format!("{a:02},{b:02}"),
            _ => format!("{a:02}..{b:02}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Days of week: `Mon..Fri`, `Sat,Sun`.
fn days(set: &BTreeSet<u32>) -> String {
    let v: Vec<u32> = set.iter().copied().collect();
    let name = |d: u32| SYSTEMD_DAYS[d as usize % 7];
    runs(&v)
        .into_iter()
        .map(|(a, b)| match b - a {
            0 => name(a).to_string(),
            1 => format!("{},{}", name(a), name(b)),
            _ => format!("{}..{}", name(a), name(b)),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Maximal runs of consecutive values, as (first, last).
fn runs(v: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &x in v {
        match out.last_mut() {
            Some((_, b)) if *b + 1 == x => *b = x,
            _ => out.push((x, x)),
        }
    }
    out
}
