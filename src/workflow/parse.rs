//! Syntax layer: turns TOML or JSON text into one position-annotated value tree, so validation is format-blind.

use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::workflow::diag::{shorten, Diagnostic, LineIndex, Pos};

/// Most syntax errors reported from one file.
const MAX_SYNTAX_ERRORS: usize = 20;

/// A parsed value with the position where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub val: Val,
    pub pos: Pos,
}

/// A key/value pair of a table, in file order.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

#[derive(Debug, Clone)]
pub(crate) enum Val {
    Str(String),
    /// `None` when the integer does not fit in an `i128`.
    Int(Option<i128>),
    Float,
    Bool(bool),
    Datetime,
    Null,
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

impl Val {
    /// "a string", "an integer", ... for "found ..." messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::Int(_) => "an integer",
            Val::Float => "a float",
            Val::Bool(_) => "a boolean",
            Val::Datetime => "a datetime",
            Val::Null => "null",
            Val::Array(_) => "an array",
            Val::Table(_) => "a table",
        }
    }
}

/// Parses TOML (or JSON when `json`) into a tree whose root is a table.
pub(crate) fn parse(src: &str, file: &Path, json: bool) -> Result<Node, Vec<Diagnostic>> {
    if json {
        parse_json(src, file)
    } else {
        parse_toml(src, file)
    }
}

fn parse_toml(src: &str, file: &Path) -> Result<Node, Vec<Diagnostic>> {
    let index = LineIndex::new(src);
    let (doc, errors) = DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        let mut diags: Vec<Diagnostic> = Vec::new();
        for e in errors.iter().take(MAX_SYNTAX_ERRORS) {
            let span = e.span();
            let pos = span.clone().map(|s| index.pos(s.start)).unwrap_or_default();
            let mut msg = e.message().trim().trim_end_matches('.').replace('\n', "; ");
            // "duplicate key" alone does not say which one.
            if msg.starts_with("duplicate") {
                let culprit = span.and_then(|s| src.get(s)).unwrap_or_default().trim();
                if !culprit.is_empty() && !culprit.contains('\n') {
                    msg = format!("{msg} `{}`", shorten(culprit));
                }
            }
            diags.push(Diagnostic::error(
                file,
                pos,
                format!("TOML syntax error: {msg}"),
            ));
        }
        return Err(diags);
    }
    let span = doc.span();
    let table = toml_table(doc.get_ref(), &index);
    Ok(Node {
        val: Val::Table(table),
        pos: index.pos(span.start),
    })
}

fn toml_table(t: &DeTable<'_>, index: &LineIndex<'_>) -> Vec<Entry> {
    let mut entries: Vec<(&Spanned<std::borrow::Cow<'_, str>>, &Spanned<DeValue<'_>>)> =
        t.iter().collect();
    // The map may be sorted by key; file order is what users expect.
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
        .into_iter()
        .map(|(k, v)| Entry {
            key: k.get_ref().to_string(),
            key_pos: index.pos(k.span().start),
            value: toml_node(v, index),
        })
        .collect()
}

/// Recursion is bounded: the toml parser refuses nesting deeper than its own limit.
fn toml_node(v: &Spanned<DeValue<'_>>, index: &LineIndex<'_>) -> Node {
    let val = match v.get_ref() {
        DeValue::String(s) => Val::Str(s.to_string()),
        DeValue::Integer(i) => Val::Int(i128::from_str_radix(i.as_str(), i.radix()).ok()),
        DeValue::Float(_) => Val::Float,
        DeValue::Boolean(b) => Val::Bool(*b),
        DeValue::Datetime(_) => Val::Datetime,
        DeValue::Array(a) => Val::Array(a.iter().map(|e| toml_node(e, index)).collect()),
        DeValue::Table(t) => Val::Table(toml_table(t, index)),
    };
    Node {
        val,
        pos: index.pos(v.span().start),
    }
}

fn parse_json(src: &str, file: &Path) -> Result<Node, Vec<Diagnostic>> {
    // serde_json refuses nesting deeper than 128 levels, which bounds the recursion below.
    let mut root: Node = match serde_json::from_str(src) {
        Ok(n) => n,
        Err(e) => {
            let pos = Pos {
                line: e.line(),
                col: e.column(),
            };
            let msg = e.to_string();
            // serde_json appends " at line L column C"; we print the position ourselves.
            let msg = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            return Err(vec![Diagnostic::error(
                file,
                pos,
                format!("JSON syntax error: {}", shorten(&msg)),
            )]);
        }
    };
    let index = LineIndex::new(src);
    let (keys, values) = json_positions(src);
    let mut k = keys.into_iter().map(|o| index.pos(o));
    let mut v = values.into_iter().map(|o| index.pos(o));
    assign_positions(&mut root, &mut k, &mut v);
    Ok(root)
}

/// Gives every key and value its position, walking the tree in the same pre-order as the source.
fn assign_positions(
    node: &mut Node,
    keys: &mut impl Iterator<Item = Pos>,
    values: &mut impl Iterator<Item = Pos>,
) {
    node.pos = values.next().unwrap_or_default();
    match &mut node.val {
        Val::Array(items) => {
            for item in items {
                assign_positions(item, keys, values);
            }
        }
        Val::Table(entries) => {
            for e in entries {
                e.key_pos = keys.next().unwrap_or_default();
                assign_positions(&mut e.value, keys, values);
            }
        }
        _ => {}
    }
}

/// Byte offsets of every object key and every value start in valid JSON text, in source order.
fn json_positions(src: &str) -> (Vec<usize>, Vec<usize>) {
    #[derive(PartialEq)]
    enum Expect {
        Value,
        Key,
        Other,
    }
    let bytes = src.as_bytes();
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut stack: Vec<u8> = Vec::new();
    let mut expect = Expect::Value;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'{' | b'[' => {
                if expect == Expect::Value {
                    values.push(i);
                }
                stack.push(b);
                expect = if b == b'{' {
                    Expect::Key
                } else {
                    Expect::Value
                };
            }
            b'}' | b']' => {
                stack.pop();
                expect = Expect::Other;
            }
            b',' => {
                expect = if stack.last() == Some(&b'{') {
                    Expect::Key
                } else {
                    Expect::Value
                };
            }
            b':' => expect = Expect::Value,
            b'"' => {
                match expect {
                    Expect::Key => keys.push(i),
                    Expect::Value => values.push(i),
                    Expect::Other => {}
                }
                expect = Expect::Other;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            _ => {
                if expect == Expect::Value {
                    values.push(i);
                }
                expect = Expect::Other;
                while i + 1 < bytes.len()
                    && !matches!(
                        bytes[i + 1],
                        b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    i += 1;
                }
            }
        }
        i += 1;
    }
    (keys, values)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

fn node(val: Val) -> Node {
    Node {
        val,
        pos: Pos::default(),
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(node(Val::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(node(Val::Int(Some(i128::from(v)))))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(node(Val::Int(Some(i128::from(v)))))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(node(Val::Float))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(node(Val::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(node(Val::Str(v)))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(node(Val::Null))
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(node(Val::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(node(Val::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        // Kept as a list, so duplicate keys survive to be reported.
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            entries.push(Entry {
                key,
                key_pos: Pos::default(),
                value,
            });
        }
        Ok(node(Val::Table(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: &Node) -> &[Entry] {
        match &n.val {
            Val::Table(t) => t,
            _ => &[],
        }
    }

    #[test]
    fn json_positions_are_exact() {
        let src = "{\n  \"a\": {\"b\": [1, \"x\\\"y\", {\"c\": null}]},\n  \"d\": true\n}";
        let root = parse(src, Path::new("wf.json"), true).unwrap_or_else(|_| node(Val::Null));
        let top = table(&root);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].key_pos, Pos { line: 2, col: 3 });
        assert_eq!(top[1].key, "d");
        assert_eq!(top[1].key_pos, Pos { line: 3, col: 3 });
        assert_eq!(top[1].value.pos, Pos { line: 3, col: 8 });
        let a = table(&top[0].value);
        assert_eq!(a[0].key_pos, Pos { line: 2, col: 9 });
        let Val::Array(items) = &a[0].value.val else {
            panic!("not an array")
        };
        assert_eq!(items[1].pos, Pos { line: 2, col: 18 });
        assert_eq!(table(&items[2])[0].key_pos, Pos { line: 2, col: 27 });
    }

    #[test]
    fn toml_keeps_file_order() {
        let src = "[task.zeta]\nrun='a'\n[task.alpha]\nrun='b'\n";
        let root = parse(src, Path::new("wf.toml"), false).unwrap_or_else(|_| node(Val::Null));
        let tasks = table(&table(&root)[0].value);
        assert_eq!(tasks[0].key, "zeta");
        assert_eq!(tasks[0].key_pos.line, 1);
        assert_eq!(tasks[1].key, "alpha");
        assert_eq!(tasks[1].key_pos.line, 3);
    }
}
