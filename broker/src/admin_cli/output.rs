//! What a command prints: a human-readable table by default, or one JSON
//! document with `--json` (field names are part of the CLI's interface,
//! documented in the README's `distlog admin` section).

use serde::Serialize;
use serde_json::Value;

use super::error::{AdminError, Result};

/// A command's result, ready to print either way.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The JSON document printed with `--json`.
    pub json: Value,
    /// The text printed otherwise (ends with a newline unless empty).
    pub text: String,
    /// How many of the command's operations failed (each shown in the
    /// output); non-zero makes the command exit 1.
    pub failed: usize,
    /// How many operations there were.
    pub total: usize,
}

impl Report {
    /// A report of `value` rendered as `text`, with no failures.
    pub fn new(value: &impl Serialize, text: String) -> Result<Report> {
        let json = serde_json::to_value(value).map_err(|e| AdminError::Output(e.to_string()))?;
        Ok(Report {
            json,
            text,
            failed: 0,
            total: 0,
        })
    }

    /// The same report, counting `failed` failures out of `total`.
    pub fn with_failures(mut self, failed: usize, total: usize) -> Report {
        self.failed = failed;
        self.total = total;
        self
    }

    /// The text to print for the chosen format.
    pub fn render(&self, json: bool) -> String {
        if json {
            // A `Value` always serializes.
            format!(
                "{}\n",
                serde_json::to_string_pretty(&self.json).unwrap_or_default()
            )
        } else {
            self.text.clone()
        }
    }
}

/// A left-aligned text table: a header row and data rows, columns
/// separated by two spaces, trailing spaces trimmed (like Kafka's tools).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            l.push_str(cell);
            for _ in cell.chars().count()..w + 2 {
                l.push(' ');
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `-` for a missing value, the value otherwise.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["TOPIC", "PARTITIONS"],
            &[
                vec!["a".into(), "3".into()],
                vec!["longer-name".into(), "12".into()],
            ],
        );
        assert_eq!(t, "TOPIC        PARTITIONS\na            3\nlonger-name  12\n");
    }

    #[test]
    fn renders_json_or_text() {
        let r = Report::new(&serde_json::json!({"a": 1}), "text\n".into()).expect("report");
        assert_eq!(r.render(false), "text\n");
        assert_eq!(r.render(true), "{\n  \"a\": 1\n}\n");
        assert_eq!(or_dash(None::<i32>), "-");
        assert_eq!(or_dash(Some(4)), "4");
    }
}
