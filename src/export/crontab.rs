//! `wf export --to crontab`: one crontab line that starts `wf -q run --resume` on the schedule.

use super::{
    hash_comment, header, local_workdir, one_line, params_note, sh_quote, Options, Target,
};
use crate::workflow::Workflow;

/// The log file, in the workflow directory, that the cron line appends wf's output to.
pub(crate) const LOG: &str = "wf-cron.log";

pub(crate) fn export(wf: &Workflow, opts: &Options) -> Result<Vec<(String, String)>, String> {
    let schedule = wf
        .schedule
        .as_deref()
        .ok_or("the workflow has no `schedule`; add one under [workflow] to export to crontab")?;
    let dir = local_workdir(wf, opts)?;
    one_line("--wf-bin", &opts.wf_bin)?;
    let file = format!("wf-{}.crontab", super::file_stem(&wf.name));
    let cd = format!("cd {}", sh_quote(&dir));

    let mut c = header(wf, Target::Crontab);
    c.extend([
        String::new(),
        "This line starts wf itself, so nothing is translated: wf's journal, checkpoints,".into(),
        format!("retention and crash-exact resume stay in {dir}/.wf on this machine."),
        "`run --resume` continues the run that a crash or reboot interrupted (last night's),".into(),
        "else starts a new run. With -q wf prints only errors; they are appended to".into(),
        format!("{LOG} in the workflow directory. To be mailed by cron instead, drop `>> {LOG} 2>&1`."),
        "Exit codes: 0 the run is done, or waiting at a manual gate; 1 a task failed (`wf status`);".into(),
        "3 another wf holds the state (the previous run is still going; this start did nothing);".into(),
        "2 invalid wf.toml; 4 wf itself failed (I/O); 5 damaged state; 130 stopped (resumable).".into(),
        "cron's PATH is short (/usr/bin:/bin): if wf lives elsewhere, export with --wf-bin /full/path/wf.".into(),
        format!("Install: `crontab -e` and paste, or `(crontab -l; cat {file}) | crontab -`."),
    ]);
    c.extend(params_note(wf));
    let mut out = hash_comment(&c);
    for (what, v) in [
        ("the workflow directory", dir.as_str()),
        ("--wf-bin", opts.wf_bin.as_str()),
    ] {
        if v.contains('\\') {
            // cron reads `\%` as `%`, and implementations differ on other backslashes.
            return Err(format!(
                "{what} `{v}` contains a backslash, which cron implementations read differently; use one without"
            ));
        }
    }
    let command = format!("{cd} && {} -q run --resume >> {LOG} 2>&1", opts.wf_bin);
    out.push_str(&format!("{schedule} {}\n", cron_escape(&command)));

    for t in wf.tasks.iter().filter(|t| t.manual) {
        let who = t
            .owner
            .as_deref()
            .map(|o| format!(" (owner {o})"))
            .unwrap_or_default();
        out.push_str(&hash_comment(&[
            String::new(),
            format!("Manual gate: `{}`{who} waits for a human. After review, approve it and finish the run:", t.name),
            format!("  {cd} && {} approve {}", opts.wf_bin, sh_quote(&t.name)),
        ]));
    }
    Ok(vec![(file, out)])
}

/// cron turns an unescaped `%` of a command into a newline; `\%` is a literal `%`.
pub(crate) fn cron_escape(command: &str) -> String {
    command.replace('%', "\\%")
}
