//! Diagnostics (errors and warnings with file:line:col) and the small text helpers that build them.

use std::fmt;
use std::path::{Path, PathBuf};

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Severity {
    /// The workflow cannot be used.
    Error,
    /// The workflow can run but probably does not do what its author meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in a workflow file, located by 1-based line and column (0 = unknown).
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// One sentence naming the culprit (key, task, path).
    pub message: String,
    /// A suggestion, e.g. "did you mean `retries`?".
    pub help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(
        severity: Severity,
        file: &Path,
        pos: Pos,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity,
            file: file.to_path_buf(),
            line: pos.line,
            col: if pos.line == 0 { 0 } else { pos.col },
            message: message.into(),
            help: None,
        }
    }

    pub(crate) fn error(file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, file, pos, message)
    }

    pub(crate) fn warning(file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, file, pos, message)
    }

    pub(crate) fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.col > 0 {
                write!(f, ":{}", self.col)?;
            }
        }
        write!(f, ": {}: {}", self.severity, self.message)?;
        if let Some(help) = &self.help {
            write!(f, "; {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// A 1-based line and column in the source text; `0` means unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

/// Maps byte offsets to line/column positions.
pub(crate) struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
    /// Whether each line is pure ASCII, so columns are byte offsets (keeps long lines linear).
    ascii: Vec<bool>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        let ascii = src.split('\n').map(str::is_ascii).collect();
        LineIndex { src, starts, ascii }
    }

    /// Position of a byte offset; the column counts characters, not bytes.
    pub(crate) fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.src.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let bytes = offset.saturating_sub(start);
        let col = if self.ascii.get(line - 1).copied().unwrap_or(false) {
            bytes
        } else {
            self.src
                .get(start..offset)
                .map_or(bytes, |s| s.chars().count())
        };
        Pos { line, col: col + 1 }
    }
}

/// Levenshtein edit distance between two strings, counted in characters.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate within edit distance 2 of `word`, if any (first one wins ties).
pub(crate) fn closest<'c, I>(word: &str, candidates: I) -> Option<&'c str>
where
    I: IntoIterator<Item = &'c str>,
{
    let len = word.chars().count();
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        let clen = cand.chars().count();
        if clen.abs_diff(len) > 2 || cand == word {
            continue;
        }
        let d = levenshtein(&word.to_lowercase(), &cand.to_lowercase());
        // A distance equal to the candidate's length means nothing in common.
        if d <= 2 && d < clen && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// "did you mean `x`?" for the closest candidate, if any.
pub(crate) fn did_you_mean<'c, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'c str>,
{
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Shortens a user-supplied value for display inside a message.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::new();
    for c in s.chars().take(MAX) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_basics() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("retires", "retries"), 2);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("abc", ""), 3);
        assert_eq!(levenshtein("ünï", "uni"), 2);
    }

    #[test]
    fn closest_picks_nearest_within_two() {
        let keys = ["run", "retries", "retry_delay", "retention"];
        assert_eq!(closest("retires", keys), Some("retries"));
        assert_eq!(closest("Run", keys), Some("run"));
        assert_eq!(closest("completely_else", keys), None);
        assert_eq!(closest("x", keys), None);
    }

    #[test]
    fn line_index_counts_chars() {
        let idx = LineIndex::new("ab\nçd = 1\n");
        assert_eq!(idx.pos(0), Pos { line: 1, col: 1 });
        assert_eq!(idx.pos(3), Pos { line: 2, col: 1 });
        assert_eq!(idx.pos(6), Pos { line: 2, col: 3 });
        assert_eq!(idx.pos(10_000), Pos { line: 3, col: 1 });
        // Not a char boundary: falls back to bytes, no panic.
        let _ = idx.pos(4);
    }

    #[test]
    fn display_formats() {
        let d = Diagnostic::error(
            Path::new("wf.toml"),
            Pos { line: 12, col: 3 },
            "unknown key `retires` in [task.ingest]",
        )
        .with_help(Some("did you mean `retries`?".into()));
        assert_eq!(
            d.to_string(),
            "wf.toml:12:3: error: unknown key `retires` in [task.ingest]; did you mean `retries`?"
        );
        let d = Diagnostic::warning(Path::new("wf.toml"), Pos::default(), "x");
        assert_eq!(d.to_string(), "wf.toml: warning: x");
    }
}
