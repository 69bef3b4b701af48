//! The one table formatter of the benchmark reports: the summary table `cargo bench` prints
//! (aligned text, `report`) and the Markdown tables of `tools/bench-report`, which includes this
//! file.

use std::fmt::Write as _;

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table: a head, one alignment per column, and rows of cells.
pub struct Table {
    head: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns (name and alignment).
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            head: columns.iter().map(|(name, _)| (*name).to_owned()).collect(),
            align: columns.iter().map(|(_, align)| *align).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.head.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// Plain text: every column padded to its widest cell, a dashed rule under the head, one
    /// space between columns, no trailing spaces.
    pub fn text(&self) -> String {
        let mut width: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            for ((cell, w), align) in cells.iter().zip(&width).zip(&self.align) {
                let pad = " ".repeat(w - cell.chars().count());
                let _ = match align {
                    Align::Left => write!(out, "{cell}{pad} "),
                    Align::Right => write!(out, "{pad}{cell} "),
                };
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        };
        line(&self.head);
        line(&width.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
        for row in &self.rows {
            line(row);
        }
        out
    }

    /// GitHub Markdown: `| a | b |` lines, the rule under the head giving the alignment.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let rule: Vec<&str> =
            self.align.iter().map(|a| if *a == Align::Left { "---" } else { "---:" }).collect();
        let mut out = line(&self.head);
        let _ = writeln!(out, "|{}|", rule.join("|"));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}
