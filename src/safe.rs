//! Text that is safe to put in front of a terminal. Everything wf prints for people that came from
//! a workflow file, a note, a metric, an error or a path goes through [`safe`] (the console does it
//! for every line it writes), so a value can never clear the screen, set the window title, write
//! the clipboard or move the cursor: control characters are shown escaped (`\x1b`, `\n`,
//! `\u{9b}`). A task's own output goes through [`task_output`] instead, which keeps its colours
//! (SGR sequences, `ESC [ … m`) and escapes every other control. JSON output escapes by JSON's own
//! rules (plus `\uXXXX` for what JSON leaves raw but a terminal acts on, [`json`]).
//!
//! What writes to stdout without the console, on purpose: `wf logs --raw` (the exact bytes asked
//! for), `wf state export` (a byte-exact JSON backup), `wf export`/`wf graph` (generated files, whose
//! serializers quote what they print) and `wf completions`.

use std::borrow::Cow;
use std::fmt::{self, Display, Write};

/// True for a character that must not reach a terminal as it is: C0 controls, DEL, C1 controls,
/// and the invisible format characters that reorder or hide text (bidirectional overrides and
/// isolates, zero-width characters, line and paragraph separators, byte-order mark).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}')
}

/// Write `c` as the escape people read: `\n`, `\r`, `\t`, `\x1b` for the other ASCII controls,
/// `\u{9b}` beyond ASCII.
fn escape_char<W: Write + ?Sized>(c: char, out: &mut W) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// `s` with every unsafe character escaped; borrowed when there is nothing to escape.
pub fn safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let _ = Escaper(&mut out).write_str(s);
    Cow::Owned(out)
}

/// A `Display` wrapper that escapes whatever its value displays: `Safe(&error)`, `Safe(path.display())`.
pub struct Safe<T>(pub T);

impl<T: Display> Display for Safe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaper(f), "{}", self.0)
    }
}

/// A `fmt::Write` that escapes unsafe characters on their way to the inner writer.
struct Escaper<'a, W: Write + ?Sized>(&'a mut W);

impl<W: Write + ?Sized> Write for Escaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(is_unsafe) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            escape_char(c, self.0)?;
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// A serialized JSON text with the characters JSON leaves raw but a terminal acts on (DEL, C1
/// controls, bidirectional overrides) written as `\uXXXX` escapes: outside strings JSON holds only
/// ASCII, so this never changes what the text means.
pub fn json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{:04x}", u);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// What to do with a task's colour sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Pass SGR sequences (`ESC [ 1;31 m`) through: the output goes to a terminal with colour.
    Keep,
    /// Drop them: plain text (piped, `NO_COLOR`).
    Strip,
}

/// A task's output (a line of the live echo, or a whole log for `wf logs`) made safe for a
/// terminal: SGR colour sequences are kept (or stripped), newlines and tabs pass, a carriage return
/// passes only before a newline (CRLF); every other control — OSC (title, clipboard, hyperlinks),
/// DCS, CSI sequences that clear, scroll or move the cursor, C1 controls, bidirectional overrides —
/// is shown escaped, and bytes that are not UTF-8 are shown as `\xNN`. When a colour was kept, the
/// text ends with a reset so it cannot bleed into what wf prints next.
pub fn task_output(input: &[u8], colour: Colour) -> String {
    let mut out = String::with_capacity(input.len() + 16);
    let mut coloured = false;
    let mut rest = input;
    while !rest.is_empty() {
        // The longest valid UTF-8 prefix, then at most one bad byte.
        let (text, bad) = match std::str::from_utf8(rest) {
            Ok(t) => (t, None),
            Err(e) => {
                let (good, after) = rest.split_at(e.valid_up_to());
                let text = std::str::from_utf8(good).unwrap_or_default();
                let n = e.error_len().unwrap_or(after.len()).max(1);
                (text, Some(&after[..n.min(after.len())]))
            }
        };
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\n' | '\t' => out.push(c),
                '\r' if text[i + 1..].starts_with('\n') => out.push(c),
                '\x1b' => match sgr_len(&text.as_bytes()[i..]) {
                    Some(n) => {
                        if colour == Colour::Keep {
                            out.push_str(&text[i..i + n]);
                            coloured = true;
                        }
                        // Skip the rest of the sequence (all ASCII, so whole chars).
                        for _ in 1..n {
                            chars.next();
                        }
                    }
                    None => out.push_str("\\x1b"),
                },
                c if is_unsafe(c) => {
                    let _ = escape_char(c, &mut out);
                }
                c => out.push(c),
            }
        }
        let consumed = text.len() + bad.map_or(0, <[u8]>::len);
        for b in bad.unwrap_or_default() {
            let _ = write!(out, "\\x{b:02x}");
        }
        rest = &rest[consumed..];
    }
    if coloured {
        out.push_str("\x1b[0m");
    }
    out
}

/// The length of the SGR sequence at the start of `b` (`ESC [`, parameters made of digits, `;`
/// and `:`, then `m`), or `None` when `b` does not start with one.
fn sgr_len(b: &[u8]) -> Option<usize> {
    if b.len() < 3 || b[0] != 0x1b || b[1] != b'[' {
        return None;
    }
    for (i, &c) in b.iter().enumerate().skip(2).take(64) {
        match c {
            b'0'..=b'9' | b';' | b':' => continue,
            b'm' => return Some(i + 1),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(safe("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
        assert!(matches!(safe("plain"), Cow::Borrowed(_)));
        assert_eq!(safe("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(safe("x\ny\rz\tw"), "x\\ny\\rz\\tw");
        assert_eq!(safe("\u{7}\u{7f}\u{0}"), "\\x07\\x7f\\x00");
        assert_eq!(safe("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(safe("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(safe("\u{1b}]0;title\u{7}"), "\\x1b]0;title\\x07");
        assert_eq!(Safe("a\u{1b}b").to_string(), "a\\x1bb");
        let err = std::io::Error::other("bad\u{1b}[2J");
        assert_eq!(format!("wf: {}", Safe(&err)), "wf: bad\\x1b[2J");
    }

    #[test]
    fn escaped_text_has_no_control_left() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!safe(&all).chars().any(is_unsafe));
        let bytes: Vec<u8> = (0u8..=255).chain("\u{9b}\u{202e}".bytes()).collect();
        for colour in [Colour::Keep, Colour::Strip] {
            let out = task_output(&bytes, colour);
            assert!(!out.chars().any(|c| is_unsafe(c) && c != '\n' && c != '\t'));
        }
    }

    #[test]
    fn json_escapes_what_a_terminal_would_act_on() {
        let v = serde_json::json!({"note": "a\u{9b}b\u{202e}c\u{7f}\u{1b}"});
        let text = v.to_string();
        let shown = json(&text);
        assert!(!shown.chars().any(is_unsafe), "{shown}");
        let back: serde_json::Value = serde_json::from_str(&shown).expect("still JSON");
        assert_eq!(back, v);
        assert_eq!(json("{\"a\":1}"), "{\"a\":1}");
    }

    #[test]
    fn task_output_keeps_colour_and_nothing_else() {
        let red = b"\x1b[1;31merror\x1b[0m done";
        assert_eq!(
            task_output(red, Colour::Keep),
            "\x1b[1;31merror\x1b[0m done\x1b[0m"
        );
        assert_eq!(task_output(red, Colour::Strip), "error done");
        // Screen clear, cursor moves, title, clipboard, hyperlink, DCS, 8-bit CSI, scroll region.
        for (evil, shown) in [
            (&b"\x1b[2J"[..], "\\x1b[2J"),
            (b"\x1b[H", "\\x1b[H"),
            (b"\x1b[10;1H", "\\x1b[10;1H"),
            (b"\x1b[1A", "\\x1b[1A"),
            (b"\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
            (b"\x1b]52;c;ZXZpbA==\x07", "\\x1b]52;c;ZXZpbA==\\x07"),
            (b"\x1b]8;;http://x\x1b\\", "\\x1b]8;;http://x\\x1b\\"),
            (b"\x1bP1$r\x1b\\", "\\x1bP1$r\\x1b\\"),
            (b"\xc2\x9b2J", "\\u{9b}2J"),
            (b"\x9b2J", "\\x9b2J"),
            (b"\x1b[?1049h", "\\x1b[?1049h"),
            (b"\x1b[>4m", "\\x1b[>4m"),
            (b"\x1bc", "\\x1bc"),
        ] {
            assert_eq!(task_output(evil, Colour::Keep), shown);
        }
    }

    #[test]
    fn task_output_keeps_lines_and_crlf_but_not_a_lone_return() {
        assert_eq!(task_output(b"a\tb\r\nc\n", Colour::Keep), "a\tb\r\nc\n");
        assert_eq!(
            task_output(b"rm -rf /\rharmless", Colour::Keep),
            "rm -rf /\\rharmless"
        );
        assert_eq!(task_output(b"\x1b[", Colour::Keep), "\\x1b[");
        assert_eq!(
            task_output(b"ok \xff\xfe end", Colour::Keep),
            "ok \\xff\\xfe end"
        );
        assert_eq!(task_output("日本語".as_bytes(), Colour::Keep), "日本語");
    }
}
