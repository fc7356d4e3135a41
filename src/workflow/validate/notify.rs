//! `[notify]`: the alert channels, checked so that no alert text can ever reach a shell parser and
//! no secret (a webhook URL, an SMTP server with its password) is ever echoed in a diagnostic.

use std::time::Duration;

use super::{Dec, NOTIFY_KEYS};
use crate::workflow::diag::{shorten, Pos};
use crate::workflow::fields::{check_webhook, valid_env_name};
use crate::workflow::parse::{Entry, Val};
use crate::workflow::{AlertCommand, Channels, Email, Notify, StartTls};

/// The placeholders a notify command's arguments may carry.
pub const PLACEHOLDERS: [&str; 9] = [
    "run",
    "task",
    "owner",
    "error",
    "workflow",
    "attempt",
    "exit_code",
    "kind",
    "text",
];

/// Keys of an owner's route, `[notify.owner.NAME]`.
const OWNER_KEYS: [&str; 3] = ["webhook", "command", "email"];
/// Keys of `[notify.email]`.
const EMAIL_KEYS: [&str; 4] = ["to", "from", "server", "starttls"];

/// The default time one delivery call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest time one delivery call may be given.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The placeholders (`{run}`, …) that `s` contains.
pub fn placeholders_in(s: &str) -> Vec<&'static str> {
    PLACEHOLDERS
        .iter()
        .copied()
        .filter(|p| s.contains(&format!("{{{p}}}")))
        .collect()
}

/// Programs that run their arguments (or a file their arguments name) as code.
const SHELLS: [&str; 14] = [
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "yash", "pwsh",
    "rbash", "posh",
];
const INTERPRETERS: [&str; 12] = [
    "perl",
    "ruby",
    "node",
    "nodejs",
    "php",
    "lua",
    "luajit",
    "rscript",
    "tclsh",
    "wish",
    "deno",
    "osascript",
];
/// Programs that run the command their remaining arguments form.
const WRAPPERS: [&str; 17] = [
    "env", "nohup", "nice", "timeout", "stdbuf", "setsid", "sudo", "doas", "xargs", "ionice",
    "chrt", "taskset", "flock", "time", "unbuffer", "chronic", "busybox",
];
/// Programs that hand their arguments to a shell (here or on another host) as one string.
const SHELL_RUNNERS: [&str; 9] = [
    "watch", "ssh", "su", "script", "eval", "parallel", "at", "batch", "runuser",
];

fn base(program: &str) -> String {
    let b = program
        .rsplit('/')
        .next()
        .unwrap_or(program)
        .to_ascii_lowercase();
    // python3.11, perl5.36, …: the family decides.
    if b.starts_with("python") || b.starts_with("pypy") {
        return "python".into();
    }
    b.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
        .to_string()
}

/// Whether a word names a program that runs code (a shell, an interpreter, a wrapper, …).
fn runs_code(word: &str) -> bool {
    let b = base(word);
    let b = b.as_str();
    SHELLS.contains(&b)
        || INTERPRETERS.contains(&b)
        || WRAPPERS.contains(&b)
        || SHELL_RUNNERS.contains(&b)
        || b == "python"
        || SCRIPTED.contains(&b)
}

/// Programs whose first operand (or `-e` argument) is a program of their own language.
const SCRIPTED: [&str; 7] = ["awk", "gawk", "mawk", "nawk", "sed", "gsed", "jq"];
/// Options of shells and interpreters that take the next word as their value.
const OPTIONS_WITH_VALUE: [&str; 8] = ["-o", "+o", "-O", "+O", "-W", "-X", "-I", "-v"];

/// The first argument from which `argv[from..]` may carry placeholders as plain data, or `None`
/// when no argument of it may (every argument could be run as code). Arguments before the returned
/// index are the program, its options, and any argument it would run as code or as a script file.
/// Conservative on purpose: a false refusal costs a rewrite; a false pass could run alert text.
fn data_from(argv: &[String], from: usize) -> Option<usize> {
    let program = argv.get(from)?;
    let b = base(program);
    let b = b.as_str();
    let rest = from + 1;
    if SHELL_RUNNERS.contains(&b) {
        return None;
    }
    if WRAPPERS.contains(&b) {
        // Whatever runs behind the wrapper decides; `env -S` splits a string into a command.
        for i in rest..argv.len() {
            let a = argv[i].as_str();
            if a == "-S" || a.starts_with("--split-string") || (a.starts_with("-S") && b == "env") {
                return None;
            }
            if runs_code(a) {
                return data_from(argv, i);
            }
        }
        return Some(rest);
    }
    let code_flags: &[&str] = if SHELLS.contains(&b) {
        &["-c"]
    } else if b == "python" {
        &["-c", "-m"]
    } else if INTERPRETERS.contains(&b) {
        &["-e", "-E", "-r", "-p", "--eval", "--print", "-x"]
    } else if SCRIPTED.contains(&b) {
        &["-e", "--expression", "--source", "-f"]
    } else {
        return Some(rest);
    };
    // A code flag anywhere (a shell's option cluster such as `-lc` too): its value is code.
    let is_code_flag = |a: &str| {
        code_flags.contains(&a)
            || (SHELLS.contains(&b)
                && a.starts_with('-')
                && !a.starts_with("--")
                && a.contains('c'))
    };
    if let Some(k) = (rest..argv.len()).rev().find(|&k| is_code_flag(&argv[k])) {
        return Some(k + 2);
    }
    // Else options, then the first operand: a script file (or awk's and sed's program).
    let mut i = rest;
    while let Some(a) = argv.get(i) {
        if a == "--" {
            return Some(i + 2);
        }
        if OPTIONS_WITH_VALUE.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 {
            i += 1;
            continue;
        }
        return Some(i + 1);
    }
    Some(argv.len())
}

/// Why an argv notify command may not carry a placeholder where it does, if it may not.
pub fn argv_problem(argv: &[String]) -> Option<String> {
    let first = data_from(argv, 0).unwrap_or(usize::MAX);
    argv.iter().enumerate().find_map(|(i, a)| {
        let found = placeholders_in(a);
        (i < first && !found.is_empty()).then(|| {
            let what = if i == 0 {
                "the program name".to_string()
            } else {
                format!(
                    "argument {} (`{}`), which a shell or interpreter would run as code",
                    i + 1,
                    shorten(a)
                )
            };
            format!("placeholder {{{}}} in {what}", found[0])
        })
    })
}

const COMMAND_HELP: &str = "write the command as a list run without a shell, e.g. `command = [\"notify-team\", \"wf {run}: {task} failed\"]`, or keep a script and read the values from $WF_ALERT_RUN, $WF_ALERT_TASK, $WF_ALERT_ERROR, $WF_ALERT_TEXT (`wf init --reference`)";

impl Dec<'_> {
    pub(super) fn notify(&mut self, t: &[Entry]) -> Notify {
        let ctx = "[notify]";
        let mut n = Notify {
            timeout: DEFAULT_TIMEOUT,
            ..Notify::default()
        };
        let mut email_list: Option<(Vec<String>, Pos)> = None;
        for e in t {
            match e.key.as_str() {
                "webhook" => n.channels.webhook = self.webhook(e, ctx),
                "command" => n.channels.command = self.alert_command(e, ctx),
                "email" => match &e.value.val {
                    Val::Table(body) => n.channels.email = self.email(body, "[notify.email]", None),
                    _ => {
                        let msg = "`email` in [notify] must be a table like [notify.email] with `to`, `from` and `server`".to_string();
                        self.error(e.value.pos, msg, Some("see `wf init --reference`".into()));
                    }
                },
                "owner" => {
                    if let Some(owners) = self.table(e, ctx) {
                        for o in owners {
                            let octx = format!("[notify.owner.{}]", shorten(&o.key));
                            if o.key.chars().any(char::is_control) {
                                let msg =
                                    format!("owner name in {octx} contains a control character");
                                self.error(o.key_pos, msg, None);
                                continue;
                            }
                            if let Some(body) = self.table(o, ctx) {
                                let (ch, list) = self.owner(body, &octx);
                                if let Some(l) = list {
                                    email_list.get_or_insert(l);
                                }
                                n.owners.insert(o.key.clone(), ch);
                            }
                        }
                    }
                }
                "timeout" => {
                    if let Some(d) = self.duration(e, ctx) {
                        if d.is_zero() || d > MAX_TIMEOUT {
                            let msg =
                                "`timeout` in [notify] must be between 1s and 60s".to_string();
                            self.error(e.value.pos, msg, None);
                        } else {
                            n.timeout = d;
                        }
                    }
                }
                _ => self.unknown_key(
                    e,
                    &NOTIFY_KEYS,
                    &[("mail", "email"), ("owners", "owner")],
                    ctx,
                    ctx,
                ),
            }
        }
        // An owner's `email = [addresses]` goes through the workflow's server and sender.
        let default_email = n.channels.email.clone();
        for ch in n.owners.values_mut() {
            if let Some(e) = ch.email.as_mut() {
                if e.server.is_empty() {
                    match &default_email {
                        Some(d) => {
                            e.server = d.server.clone();
                            e.from = d.from.clone();
                            e.starttls = d.starttls;
                        }
                        None => {
                            if let Some((_, pos)) = email_list.take() {
                                let msg = "an owner's `email` list needs [notify.email] with `from` and `server`".to_string();
                                self.error(pos, msg, Some("add [notify.email], or give the owner a table `email = { to = [...], from = \"...\", server = \"...\" }`".into()));
                            }
                        }
                    }
                }
            }
        }
        n
    }

    fn owner(&mut self, body: &[Entry], ctx: &str) -> (Channels, Option<(Vec<String>, Pos)>) {
        let mut ch = Channels::default();
        let mut list = None;
        for e in body {
            match e.key.as_str() {
                "webhook" => ch.webhook = self.webhook(e, ctx),
                "command" => ch.command = self.alert_command(e, ctx),
                "email" => match &e.value.val {
                    Val::Table(t) => ch.email = self.email(t, &format!("`email` in {ctx}"), None),
                    _ => {
                        let to = self.addresses(e, ctx);
                        if !to.is_empty() {
                            list = Some((to.clone(), e.value.pos));
                            ch.email = Some(Email {
                                to,
                                from: String::new(),
                                server: String::new(),
                                starttls: StartTls::Opportunistic,
                            });
                        }
                    }
                },
                _ => self.unknown_key(e, &OWNER_KEYS, &[], ctx, ctx),
            }
        }
        if ch.is_empty() {
            let msg = format!("{ctx} names no channel");
            self.error(
                Pos::default(),
                msg,
                Some("give it `email`, `webhook` or `command`".into()),
            );
        }
        (ch, list)
    }

    /// A webhook target; its value is never echoed (a URL is a secret).
    fn webhook(&mut self, e: &Entry, ctx: &str) -> Option<String> {
        let w = self.string(e, ctx)?;
        match check_webhook(&w) {
            Ok(()) => Some(w),
            Err(why) => {
                let why = why.trim_end_matches(", found").trim_end_matches(':');
                let msg = format!(
                    "`webhook` in {ctx} {why} (the value is not shown: it may be a secret)"
                );
                let help = "e.g. `env:WF_SLACK_WEBHOOK` or `https://hooks.example.com/...`";
                self.error(e.value.pos, msg, Some(help.to_string()));
                None
            }
        }
    }

    fn alert_command(&mut self, e: &Entry, ctx: &str) -> Option<AlertCommand> {
        match &e.value.val {
            Val::Str(_) => {
                let s = self.nonempty_string(e, ctx)?;
                let found = placeholders_in(&s);
                if let Some(p) = found.first() {
                    let msg = format!(
                        "`command` in {ctx} is a shell script with placeholder {{{p}}}: a shell would parse the alert text as code"
                    );
                    self.error(e.value.pos, msg, Some(COMMAND_HELP.into()));
                    return None;
                }
                Some(AlertCommand::Script(s))
            }
            Val::Array(_) => {
                let argv: Vec<String> = self.string_list_keep_dups(e, ctx)?.into_iter().collect();
                if argv.first().is_none_or(|p| p.trim().is_empty()) {
                    let msg = format!("`command` in {ctx} must start with a program name");
                    self.error(e.value.pos, msg, None);
                    return None;
                }
                if let Some(why) = argv_problem(&argv) {
                    let msg = format!("`command` in {ctx} has a {why}");
                    let help = "pass values as separate arguments after the script (`[\"sh\", \"-c\", \"echo \\\"$1\\\" >> alerts.txt\", \"sh\", \"{error}\"]`) or read $WF_ALERT_* in it";
                    self.error(e.value.pos, msg, Some(help.into()));
                    return None;
                }
                Some(AlertCommand::Argv(argv))
            }
            _ => {
                self.type_error(
                    e,
                    ctx,
                    "a list of strings (program and arguments) or a string",
                );
                None
            }
        }
    }

    /// Every item, in order, duplicates kept (argv may repeat a word).
    fn string_list_keep_dups(&mut self, e: &Entry, ctx: &str) -> Option<Vec<String>> {
        let Val::Array(items) = &e.value.val else {
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match &item.val {
                Val::Str(s) if !s.contains('\0') => out.push(s.clone()),
                other => {
                    let msg = format!(
                        "item {} of `{}` in {ctx} must be a string without NUL, found {}",
                        i + 1,
                        e.key,
                        other.kind()
                    );
                    self.error(item.pos, msg, None);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A list of e-mail addresses (or one address as a string).
    fn addresses(&mut self, e: &Entry, ctx: &str) -> Vec<String> {
        let list: Vec<(String, Pos)> = match &e.value.val {
            Val::Str(s) => vec![(s.clone(), e.value.pos)],
            _ => self.string_list(e, ctx).unwrap_or_default(),
        };
        let mut out = Vec::new();
        for (a, pos) in list {
            if valid_address(&a) {
                out.push(a);
            } else {
                let msg = format!(
                    "`{}` in {ctx} is not an e-mail address: `{}`",
                    e.key,
                    shorten(&a)
                );
                self.error(pos, msg, Some("e.g. `data-team@example.com`".into()));
            }
        }
        if out.is_empty() && matches!(&e.value.val, Val::Array(v) if v.is_empty()) {
            let msg = format!("`{}` in {ctx} is empty", e.key);
            self.error(e.value.pos, msg, None);
        }
        out
    }

    fn email(&mut self, body: &[Entry], ctx: &str, _pos: Option<Pos>) -> Option<Email> {
        let mut to = None;
        let mut from = None;
        let mut server = None;
        let mut starttls = StartTls::Opportunistic;
        let mut ok = true;
        for e in body {
            match e.key.as_str() {
                "to" => to = Some(self.addresses(e, ctx)),
                "from" => {
                    if let Some(f) = self.string(e, ctx) {
                        if valid_address(&f) {
                            from = Some(f);
                        } else {
                            let msg = format!(
                                "`from` in {ctx} is not an e-mail address: `{}`",
                                shorten(&f)
                            );
                            self.error(e.value.pos, msg, Some("e.g. `wf@example.com`".into()));
                            ok = false;
                        }
                    }
                }
                "server" => {
                    if let Some(s) = self.string(e, ctx) {
                        match check_server(&s) {
                            Ok(()) => server = Some(s),
                            Err(why) => {
                                let msg = format!("`server` in {ctx} {why} (the value is not shown: it may hold a password)");
                                let help = "e.g. `env:WF_SMTP_URL`, `smtp://smtp.example.com:587` or `smtps://user:password@smtp.example.com`";
                                self.error(e.value.pos, msg, Some(help.into()));
                                ok = false;
                            }
                        }
                    }
                }
                "starttls" => {
                    if let Some(s) = self.string(e, ctx) {
                        starttls = match s.as_str() {
                            "required" => StartTls::Required,
                            "opportunistic" => StartTls::Opportunistic,
                            "never" => StartTls::Never,
                            _ => {
                                let msg = format!("`starttls` in {ctx} must be `required`, `opportunistic` or `never`, found `{}`", shorten(&s));
                                self.error(e.value.pos, msg, None);
                                ok = false;
                                StartTls::Opportunistic
                            }
                        };
                    }
                }
                _ => self.unknown_key(
                    e,
                    &EMAIL_KEYS,
                    &[
                        ("host", "server"),
                        ("url", "server"),
                        ("sender", "from"),
                        ("recipients", "to"),
                    ],
                    ctx,
                    ctx,
                ),
            }
        }
        let mut missing = Vec::new();
        if to.as_ref().is_none_or(Vec::is_empty) {
            missing.push("`to`");
        }
        if from.is_none() {
            missing.push("`from`");
        }
        if server.is_none() {
            missing.push("`server`");
        }
        if !missing.is_empty() {
            if ok {
                let msg = format!("{ctx} needs {}", missing.join(", "));
                self.error(Pos::default(), msg, Some("e.g. to = [\"team@example.com\"], from = \"wf@example.com\", server = \"env:WF_SMTP_URL\"".into()));
            }
            return None;
        }
        Some(Email {
            to: to.unwrap_or_default(),
            from: from.unwrap_or_default(),
            server: server.unwrap_or_default(),
            starttls,
        })
    }
}

/// A plausible address: one `@`, something on each side, no spaces, controls or header syntax.
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && a.len() <= 254
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;:\"()[]\\".contains(c))
}

/// `env:NAME`, or an `smtp://`/`smtps://` URL with a host.
pub fn check_server(s: &str) -> Result<(), &'static str> {
    if let Some(name) = s.strip_prefix("env:") {
        return if valid_env_name(name) {
            Ok(())
        } else {
            Err("names an invalid environment variable")
        };
    }
    match crate::workflow::ServerUrl::parse(s) {
        Ok(_) => Ok(()),
        Err(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn placeholders_are_data_only_where_no_program_runs_them() {
        let ok = [
            &["notify-team", "wf {run}: {task} failed"][..],
            &["mail", "-s", "wf {run}: {task}", "team@example.com"],
            &["sh", "-c", "echo \"$1\" >> alerts.txt", "sh", "{error}"],
            &["sh", "notify.sh", "{error}"],
            &["env", "A=1", "notify-team", "{error}"],
            &["timeout", "5", "notify-team", "{error}"],
            &["python3", "notify.py", "{text}"],
            &["awk", "{print}", "{error}"],
        ];
        for argv in ok {
            assert_eq!(argv_problem(&v(argv)), None, "{argv:?}");
        }
        let bad = [
            &["{task}"][..],
            &["sh", "-c", "echo '{error}' >> alerts.txt"],
            &["bash", "-xc", "echo {error}"],
            &["/bin/dash", "-e", "-c", "echo \"{error}\""],
            &["sh", "{error}"],
            &["env", "A=1", "sh", "-c", "echo {error}"],
            &["env", "-S", "echo {error}"],
            &["nice", "-n", "5", "bash", "-c", "{text}"],
            &["timeout", "3", "sh", "-c", "x {task}"],
            &["python3", "-c", "print('{error}')"],
            &["perl", "-e", "print '{error}'"],
            &["awk", "BEGIN{print \"{error}\"}"],
            &["sed", "-e", "s/x/{error}/e", "f"],
            &["watch", "echo", "{error}"],
            &["ssh", "host", "echo", "{error}"],
            &["xargs", "sh", "-c", "{error}"],
            &["busybox", "sh", "-c", "{error}"],
            &["bash", "-o", "pipefail", "-c", "echo {error}"],
            &["python3", "-W", "ignore", "-c", "print('{error}')"],
            &["env", "-u", "HOME", "sh", "-c", "echo {error}"],
            &["sudo", "-u", "bob", "bash", "-c", "echo {error}"],
            &["sh", "-o", "errexit", "{error}"],
        ];
        for argv in bad {
            assert!(argv_problem(&v(argv)).is_some(), "{argv:?}");
        }
    }

    #[test]
    fn addresses() {
        assert!(valid_address("a@b.c"));
        for a in [
            "",
            "a",
            "a@",
            "@b",
            "a@b@c",
            "a b@c",
            "a@b\r\nBcc: x@y",
            "<a@b>",
            "a,b@c",
        ] {
            assert!(!valid_address(a), "{a:?}");
        }
    }
}
