//! Aligned plain-text tables for the terminal (comfy-table without borders): columns
//! `gap` spaces apart, every line indented alike, no trailing spaces, a newline after
//! each line.

use comfy_table::{CellAlignment, ColumnConstraint, Table, Width, presets};

/// A table being filled row by row; the first row is usually the header.
#[derive(Debug)]
pub(crate) struct TextTable {
    table: Table,
    indent: u16,
    gap: u16,
    wide_gaps: Vec<(usize, u16)>,
    right: Vec<usize>,
    min_widths: Vec<u16>,
}

impl TextTable {
    /// An empty table whose lines start with `indent` spaces.
    pub(crate) fn new(indent: u16, gap: u16) -> TextTable {
        let mut table = Table::new();
        table.load_preset(presets::NOTHING);
        TextTable {
            table,
            indent,
            gap,
            wide_gaps: Vec::new(),
            right: Vec::new(),
            min_widths: Vec::new(),
        }
    }

    /// Puts `spaces` instead of the usual gap before column `column`.
    pub(crate) fn gap_before(mut self, column: usize, spaces: u16) -> TextTable {
        self.wide_gaps.push((column, spaces));
        self
    }

    /// Aligns `columns` (0-based) to the right; the others align left.
    pub(crate) fn right(mut self, columns: impl IntoIterator<Item = usize>) -> TextTable {
        self.right.extend(columns);
        self
    }

    /// Makes column `i` at least `widths[i]` characters wide.
    pub(crate) fn min_widths(mut self, widths: &[u16]) -> TextTable {
        self.min_widths = widths.to_vec();
        self
    }

    /// Adds a row.
    pub(crate) fn row<S: ToString>(&mut self, cells: impl IntoIterator<Item = S>) {
        let cells: Vec<String> = cells.into_iter().map(|c| c.to_string()).collect();
        self.table.add_row(cells);
    }

    /// The table as text.
    pub(crate) fn render(mut self) -> String {
        for (i, column) in self.table.column_iter_mut().enumerate() {
            let gap = self
                .wide_gaps
                .iter()
                .find(|g| g.0 == i)
                .map_or(self.gap, |g| g.1);
            let left = if i == 0 { self.indent } else { gap };
            column.set_padding((left, 0));
            if self.right.contains(&i) {
                column.set_cell_alignment(CellAlignment::Right);
            }
            if let Some(&min) = self.min_widths.get(i) {
                let min = Width::Fixed(min + left);
                column.set_constraint(ColumnConstraint::LowerBoundary(min));
            }
        }
        self.table
            .lines()
            .map(|l| l.trim_end().to_string() + "\n")
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::TextTable;

    #[test]
    fn columns_align_with_indent_gap_and_minimum_widths() {
        let mut t = TextTable::new(2, 2)
            .right([1])
            .min_widths(&[0, 3])
            .gap_before(2, 1);
        t.row(["name", "n", "note"]);
        t.row(["ufl-0", "12", ""]);
        t.row(["a", "3", "x"]);
        assert_eq!(
            t.render(),
            "  name     n note\n  ufl-0   12\n  a        3 x\n"
        );
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut t = TextTable::new(0, 1);
        t.row(["0.99–1.11×", "a"]);
        t.row(["x", "b"]);
        assert_eq!(t.render(), "0.99–1.11× a\nx          b\n");
    }
}
