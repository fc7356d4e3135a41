//! Run parameters (`[params]` in wf.toml, `wf run --param KEY=VALUE`): resolving them against the
//! workflow's declarations, the `WF_PARAM_<NAME>` variables tasks see, and what they and a task's
//! `env_inputs` add to its cache key.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::error::{Error, Result};
use crate::workflow::Workflow;

/// The environment variable a task sees a parameter as.
pub fn env_name(param: &str) -> String {
    format!("WF_PARAM_{}", param.to_ascii_uppercase())
}

/// `today` and `yesterday` become a UTC date (`2026-12-01`); any other value is kept as written.
fn resolve_value(value: &str, today: NaiveDate) -> String {
    match value {
        "today" => today.format("%Y-%m-%d").to_string(),
        "yesterday" => today
            .pred_opt()
            .unwrap_or(today)
            .format("%Y-%m-%d")
            .to_string(),
        _ => value.to_string(),
    }
}

/// Split `KEY=VALUE` arguments of `--param`.
pub fn parse_args(given: &[String]) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for arg in given {
        let Some((k, v)) = arg.split_once('=') else {
            return Err(Error::Usage(format!(
                "--param `{}` has no `=`; write --param NAME=VALUE",
                crate::workflow::shorten(arg)
            )));
        };
        if out.iter().any(|(o, _)| o == k) {
            return Err(Error::Usage(format!(
                "--param `{}` is given twice; give each parameter once",
                crate::workflow::shorten(k)
            )));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// The run's parameters: every declared one, with its value from `given` (`--param`) or its
/// default; `today`/`yesterday` resolved against `today`. A name the workflow does not declare is
/// refused, with the closest declared name.
pub fn resolve(
    wf: &Workflow,
    given: &[(String, String)],
    today: NaiveDate,
) -> Result<Vec<(String, String)>> {
    for (k, _) in given {
        if !wf.params.contains_key(k) {
            let declared: Vec<&str> = wf.params.keys().map(String::as_str).collect();
            let hint = crate::workflow::suggest(k, declared.iter().copied())
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            let list = if declared.is_empty() {
                format!("{} declares no [params]", wf.file.display())
            } else {
                format!(
                    "the parameters of {} are: {}",
                    wf.file.display(),
                    declared.join(", ")
                )
            };
            return Err(Error::Usage(format!(
                "there is no parameter `{}`; {hint}{list}",
                crate::workflow::shorten(k)
            )));
        }
    }
    let mut out: BTreeMap<String, String> = wf.params.clone();
    for (k, v) in given {
        out.insert(k.clone(), v.clone());
    }
    Ok(out
        .into_iter()
        .map(|(k, v)| {
            let v = resolve_value(&v, today);
            (k, v)
        })
        .collect())
}

/// The value of an `env_inputs` variable as the cache key sees it: an unset variable differs
/// from an empty one.
pub fn env_input_value(name: &str) -> String {
    match std::env::var_os(name) {
        Some(v) => format!("={}", v.to_string_lossy()),
        None => "unset".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(src: &str) -> Workflow {
        match crate::workflow::parse_str(src, std::path::Path::new("/tmp/x/wf.toml"), false) {
            Ok(w) => w,
            Err(d) => panic!("{d:?}"),
        }
    }

    const SRC: &str = "[params]\nday = \"today\"\nmode = \"score\"\n[task.a]\nrun = \"true\"\n";

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 3).unwrap_or_default()
    }

    #[test]
    fn defaults_given_values_and_dates() -> Result<()> {
        let w = wf(SRC);
        let p = resolve(&w, &[], date())?;
        assert_eq!(
            p,
            vec![
                ("day".into(), "2026-12-03".into()),
                ("mode".into(), "score".into())
            ]
        );
        let given = parse_args(&["mode=train".into(), "day=yesterday".into()])?;
        let p = resolve(&w, &given, date())?;
        assert_eq!(p[0].1, "2026-12-02");
        assert_eq!(p[1].1, "train");
        // A value may hold `=`; an empty value is a value.
        let given = parse_args(&["mode=a=b".into(), "day=".into()])?;
        let p = resolve(&w, &given, date())?;
        assert_eq!(p[0].1, "");
        assert_eq!(p[1].1, "a=b");
        Ok(())
    }

    #[test]
    fn undeclared_duplicated_and_malformed_are_refused() {
        let w = wf(SRC);
        let given = parse_args(&["dya=1".into()]).unwrap_or_default();
        let e = resolve(&w, &given, date()).err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(e.contains("no parameter `dya`"), "{e}");
        assert!(e.contains("did you mean `day`?"), "{e}");
        assert!(parse_args(&["day".into()]).is_err());
        assert!(parse_args(&["day=1".into(), "day=2".into()]).is_err());
        let none = wf("[task.a]\nrun = \"true\"\n");
        let e = resolve(&none, &[("x".into(), "1".into())], date())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("declares no [params]"), "{e}");
    }

    #[test]
    fn an_unset_env_input_differs_from_an_empty_one() {
        assert_eq!(
            env_input_value("WF_TEST_SURELY_UNSET_VARIABLE_XYZ"),
            "unset"
        );
        assert_eq!(env_input_value("PATH").chars().next(), Some('='));
    }
}
