//! `[export]`: setup commands and per-target knobs for the translated exports (docs/export.md).

use super::Dec;
use crate::workflow::diag::shorten;
use crate::workflow::parse::Entry;
use crate::workflow::ExportSettings;

pub(crate) const EXPORT_KEYS: [&str; 2] = ["setup", "github_actions"];
pub(crate) const GITHUB_KEYS: [&str; 3] = ["runs-on", "python-version", "uses"];

impl Dec<'_> {
    pub(super) fn export(&mut self, t: &[Entry]) -> ExportSettings {
        let ctx = "[export]";
        let mut x = ExportSettings::default();
        for e in t {
            match e.key.as_str() {
                "setup" => {
                    for (cmd, pos) in self.string_list(e, ctx).unwrap_or_default() {
                        if cmd.trim().is_empty() {
                            self.error(pos, format!("a `setup` command in {ctx} is empty"), None);
                        } else if cmd.contains('\0') {
                            self.error(
                                pos,
                                format!("a `setup` command in {ctx} contains a NUL character"),
                                None,
                            );
                        } else {
                            x.setup.push(cmd);
                        }
                    }
                }
                "github_actions" => {
                    if let Some(g) = self.table(e, ctx) {
                        self.github(g, &mut x);
                    }
                }
                _ => self.unknown_key(
                    e,
                    &EXPORT_KEYS,
                    &[
                        ("github", "github_actions"),
                        ("github-actions", "github_actions"),
                        ("before", "setup"),
                        ("install", "setup"),
                    ],
                    ctx,
                    ctx,
                ),
            }
        }
        x
    }

    fn github(&mut self, t: &[Entry], x: &mut ExportSettings) {
        let ctx = "[export.github_actions]";
        for e in t {
            match e.key.as_str() {
                "runs-on" => {
                    if let Some(s) = self.nonempty_string(e, ctx) {
                        if s.chars().any(char::is_control) {
                            let msg = format!("`runs-on` in {ctx} contains a control character");
                            self.error(e.value.pos, msg, None);
                        } else {
                            x.github.runs_on = Some(s);
                        }
                    }
                }
                "python-version" => {
                    if let Some(s) = self.nonempty_string(e, ctx) {
                        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
                            let msg = format!("`python-version` in {ctx} must be one version like \"3.12\", found `{}`", shorten(&s));
                            self.error(e.value.pos, msg, None);
                        } else {
                            x.github.python_version = Some(s);
                        }
                    }
                }
                "uses" => {
                    for (u, pos) in self.string_list(e, ctx).unwrap_or_default() {
                        let ok = !u.is_empty()
                            && !u.chars().any(|c| c.is_control() || c.is_whitespace())
                            && (u.starts_with("./")
                                || u.starts_with("docker://")
                                || (u.contains('/') && u.contains('@')));
                        if ok {
                            x.github.uses.push(u);
                        } else {
                            let msg = format!("`uses` in {ctx} names an action like `owner/repo@v1`, `./path` or `docker://image`, found `{}`", shorten(&u));
                            self.error(pos, msg, None);
                        }
                    }
                }
                _ => self.unknown_key(
                    e,
                    &GITHUB_KEYS,
                    &[
                        ("runs_on", "runs-on"),
                        ("python_version", "python-version"),
                        ("python", "python-version"),
                        ("steps", "uses"),
                    ],
                    ctx,
                    ctx,
                ),
            }
        }
    }
}
