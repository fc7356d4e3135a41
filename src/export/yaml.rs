//! A tiny YAML writer for the exporters: a value tree, and scalars quoted so any string round-trips.
//!
//! wf has no YAML dependency; what the exporters need is small: maps, sequences, strings, numbers
//! and comments. Every string goes through [`scalar`], which picks a plain scalar only for a
//! conservative set of characters and otherwise single-quotes, double-quotes (with escapes) or,
//! for multi-line text, writes a literal block — so a parser gives back the exact string.

/// A YAML value. Map entries carry an optional comment written above them.
#[derive(Debug, Clone)]
pub(crate) enum Y {
    /// A string, quoted as needed.
    Str(String),
    /// Written verbatim: numbers and booleans built by the exporter itself.
    Raw(String),
    /// `key:` with no value (null).
    Null,
    Map(Vec<Entry>),
    Seq(Vec<Y>),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub comment: Vec<String>,
    pub key: String,
    pub value: Y,
}

impl Y {
    pub(crate) fn str(s: impl Into<String>) -> Y {
        Y::Str(s.into())
    }

    pub(crate) fn int(n: u64) -> Y {
        Y::Raw(n.to_string())
    }

    pub(crate) fn strs<I, S>(items: I) -> Y
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Y::Seq(items.into_iter().map(|s| Y::Str(s.into())).collect())
    }
}

/// Builds a map entry by entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct MapB(Vec<Entry>);

impl MapB {
    pub(crate) fn new() -> Self {
        MapB(Vec::new())
    }

    pub(crate) fn put(mut self, key: &str, value: Y) -> Self {
        self.0.push(Entry {
            comment: Vec::new(),
            key: key.to_string(),
            value,
        });
        self
    }

    /// An entry with comment lines above it.
    pub(crate) fn put_c(mut self, comment: Vec<String>, key: &str, value: Y) -> Self {
        self.0.push(Entry {
            comment,
            key: key.to_string(),
            value,
        });
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn build(self) -> Y {
        Y::Map(self.0)
    }
}

/// Renders a value as a YAML document body (no `---`), ending with a newline.
pub(crate) fn render(y: &Y) -> String {
    let mut out = String::new();
    match y {
        Y::Map(entries) => map(&mut out, entries, 0),
        Y::Seq(items) => seq(&mut out, items, 0),
        other => {
            out.push_str(&inline(other).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// The inline text of a scalar, an empty collection, or None for a collection or block.
fn inline(y: &Y) -> Option<String> {
    match y {
        Y::Str(s) if block(s, 0).is_some() => None,
        Y::Str(s) => Some(scalar(s)),
        Y::Raw(r) => Some(r.clone()),
        Y::Null => Some(String::new()),
        Y::Map(e) if e.is_empty() => Some("{}".into()),
        Y::Seq(i) if i.is_empty() => Some("[]".into()),
        Y::Map(_) | Y::Seq(_) => None,
    }
}

fn comments(out: &mut String, lines: &[String], indent: usize) {
    for l in lines {
        out.push_str(&" ".repeat(indent));
        out.push_str(&comment_text(l));
        out.push('\n');
    }
}

/// `# text`, with anything that could end the comment line replaced.
pub(crate) fn comment_text(l: &str) -> String {
    let clean: String = l
        .chars()
        .map(|c| {
            if is_break(c) || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim_end();
    if clean.is_empty() {
        "#".into()
    } else {
        format!("# {clean}")
    }
}

/// Writes `key: value` (or `key:` + nested lines) at `indent`, the key already placed.
fn value_after_key(out: &mut String, v: &Y, indent: usize) {
    if let Some(text) = inline(v) {
        if !text.is_empty() {
            out.push(' ');
            out.push_str(&text);
        }
        out.push('\n');
        return;
    }
    match v {
        Y::Str(s) => {
            // inline() returned None: a block scalar.
            out.push(' ');
            out.push_str(&block(s, indent + 2).unwrap_or_else(|| scalar(s)));
            out.push('\n');
        }
        Y::Map(entries) => {
            out.push('\n');
            map(out, entries, indent + 2);
        }
        Y::Seq(items) => {
            out.push('\n');
            seq(out, items, indent + 2);
        }
        Y::Raw(_) | Y::Null => {}
    }
}

fn map(out: &mut String, entries: &[Entry], indent: usize) {
    for (i, e) in entries.iter().enumerate() {
        comments(out, &e.comment, indent);
        // The first key of a map inside a sequence item is already indented by `- `.
        if i > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&scalar(&e.key));
        out.push(':');
        value_after_key(out, &e.value, indent);
    }
}

fn seq(out: &mut String, items: &[Y], indent: usize) {
    for item in items {
        match item {
            Y::Map(entries) if !entries.is_empty() => {
                // Comments of the first entry go above the dash.
                comments(out, &entries[0].comment, indent);
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                let mut first = entries[0].clone();
                first.comment.clear();
                let mut rest = vec![first];
                rest.extend(entries[1..].iter().cloned());
                map(out, &rest, indent + 2);
            }
            Y::Seq(inner) if !inner.is_empty() => {
                out.push_str(&" ".repeat(indent));
                out.push_str("-\n");
                seq(out, inner, indent + 2);
            }
            other => {
                out.push_str(&" ".repeat(indent));
                out.push('-');
                value_after_key(out, other, indent);
            }
        }
    }
}

/// Line breaks for YAML 1.1 parsers (libyaml, go-yaml v2) as well as 1.2.
fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Printable in YAML and harmless inside a quoted or block scalar (no breaks, no BOM).
fn printable(c: char) -> bool {
    matches!(c, '\t' | ' '..='~')
        || (c >= '\u{a0}' && !is_break(c) && !matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}'))
}

const RESERVED: [&str; 12] = [
    "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "nan", "inf",
];

/// A plain scalar is used only for these: letters, digits and `_ . / @ + -`, inner single
/// spaces, and `:` not followed by a space; starting with a letter, `_` or `/`; not a YAML 1.1
/// boolean or null. Everything else is quoted.
fn plain_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b'/') {
        return false;
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s)) {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'/' | b'@' | b'+' | b'-' => {
                true
            }
            b' ' => i + 1 < b.len() && b[i + 1] != b' ',
            b':' => i + 1 < b.len() && b[i + 1] != b' ',
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A one-line scalar for `s`: plain, single-quoted, or double-quoted with escapes.
pub(crate) fn scalar(s: &str) -> String {
    if plain_ok(s) {
        return s.to_string();
    }
    if s.chars().all(|c| c != '\t' && printable(c)) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    double_quoted(s)
}

/// A double-quoted scalar; every non-printable character escaped.
pub(crate) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c != '\t' && printable(c) => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A literal block scalar (`|`, `|-` or `|+` header, then the lines indented by `indent`) for
/// multi-line text, or None when the text is one line or a block could not carry it exactly
/// (leading whitespace or break, a carriage return, a non-printable character).
pub(crate) fn block(s: &str, indent: usize) -> Option<String> {
    let body = s.trim_end_matches('\n');
    if !body.contains('\n') {
        return None;
    }
    if body.starts_with([' ', '\t']) || !s.chars().all(|c| c == '\n' || printable(c)) {
        return None;
    }
    let trailing = s.len() - body.len();
    let header = match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    };
    let pad = " ".repeat(indent.max(1));
    let mut out = String::from(header);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    Some(out)
}
