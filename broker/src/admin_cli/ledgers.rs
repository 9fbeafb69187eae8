//! `distlog admin ledgers describe ID`: which segment references a ledger
//! and what every bookie holds of it, from the HTTP admin API's
//! `/admin/ledgers/{id}`.

use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use super::error::Result;
use super::http::{get_json, ok_body};
use super::output::{table, Report};

/// `distlog admin ledgers` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum LedgersCommand {
    /// The ledger's segment and its copy on every bookie.
    Describe {
        /// Ledger id.
        ledger: u64,
    },
}

/// Runs a `ledgers` subcommand. `--json` prints the endpoint's document
/// (`ledger_id`, `segment {topic, partition, lssn, ensemble}` or `null`,
/// `bookies [{bookie, reachable, exists, entries, last_entry_id, bytes,
/// fenced, lac, error, …}]`) unchanged.
pub async fn run(cmd: &LedgersCommand, http: &str, timeout: Duration) -> Result<Report> {
    let LedgersCommand::Describe { ledger } = cmd;
    let path = format!("/admin/ledgers/{ledger}");
    let response = get_json(http, &path, timeout).await?;
    let body = ok_body(http, &path, response, "check the ledger id and the broker's log")?;
    let text = describe_text(&body);
    Ok(Report {
        json: body,
        text,
        failed: 0,
        total: 1,
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The human form of a ledger answer.
pub fn describe_text(body: &Value) -> String {
    let segment = &body["segment"];
    let segment_line = if segment.is_null() {
        "no segment (its topic was deleted or its stream truncated past it)".to_string()
    } else {
        format!(
            "topic {} partition {} segment lssn {} ensemble {}",
            cell(&segment["topic"]),
            cell(&segment["partition"]),
            cell(&segment["lssn"]),
            cell(&segment["ensemble"]),
        )
    };
    let rows: Vec<Vec<String>> = body["bookies"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|b| {
            vec![
                cell(&b["bookie"]),
                cell(&b["reachable"]),
                cell(&b["exists"]),
                cell(&b["entries"]),
                cell(&b["last_entry_id"]),
                cell(&b["bytes"]),
                cell(&b["fenced"]),
                cell(&b["error"]),
            ]
        })
        .collect();
    format!(
        "Ledger {}: {segment_line}\n\n{}",
        cell(&body["ledger_id"]),
        table(
            &[
                "BOOKIE",
                "REACHABLE",
                "EXISTS",
                "ENTRIES",
                "LAST-ENTRY",
                "BYTES",
                "FENCED",
                "ERROR"
            ],
            &rows
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_segment_and_bookies() {
        let body = serde_json::json!({"ledger_id": 4,
            "segment": {"topic": "t", "partition": 0, "lssn": 1, "ensemble": [1]},
            "bookies": [{"bookie": 1, "reachable": true, "exists": true, "entries": 3,
                "last_entry_id": 2, "bytes": 100, "fenced": false, "error": null}]});
        assert_eq!(
            describe_text(&body),
            "Ledger 4: topic t partition 0 segment lssn 1 ensemble [1]\n\n\
             BOOKIE  REACHABLE  EXISTS  ENTRIES  LAST-ENTRY  BYTES  FENCED  ERROR\n\
             1       true       true    3        2           100    false   -\n"
        );
        let gone = serde_json::json!({"ledger_id": 9, "segment": null, "bookies": []});
        assert!(describe_text(&gone).starts_with("Ledger 9: no segment"));
    }
}
