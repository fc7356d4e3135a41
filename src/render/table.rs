//! Aligned columns for the terminal. A column's width is what the text takes on screen once made
//! safe for the terminal (`safe`: a control character shows as `\u{1b}`), counted in terminal
//! cells (a CJK character or an emoji takes two, a combining mark none) — never `str::len`, which
//! counts bytes and puts every column after a non-ASCII name out of line.

use unicode_width::UnicodeWidthStr;

use crate::safe::safe;

/// How many terminal cells `s` takes when printed through the console.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(safe(s).as_ref())
}

/// The width of a column holding `cells` and its heading (at least `min`).
pub fn column<'a>(cells: impl IntoIterator<Item = &'a str>, min: usize) -> usize {
    cells.into_iter().map(width).max().unwrap_or(0).max(min)
}

/// `s` followed by spaces up to `w` cells (left-aligned).
pub fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// Spaces, then `s`, up to `w` cells (right-aligned).
pub fn pad_left(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(width(s))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_terminal_cells() {
        assert_eq!(width("train"), 5);
        assert_eq!(width("データ"), 6);
        assert_eq!(width("e\u{301}"), 1);
        assert_eq!(width("a\u{1b}b"), "a\\x1bb".len());
        assert_eq!(pad("データ", 8), "データ  ");
        assert_eq!(pad("toolong", 3), "toolong");
        assert_eq!(pad_left("7", 3), "  7");
        assert_eq!(column(["a", "データ"], 4), 6);
        assert_eq!(column([], 4), 4);
    }

    #[test]
    fn padded_cells_line_up_on_screen() {
        let names = ["ingest", "清理数据", "naïve"];
        let w = column(names, 4);
        let widths: Vec<usize> = names.iter().map(|n| width(&pad(n, w))).collect();
        assert!(widths.iter().all(|x| *x == w), "{widths:?}");
    }
}
