//! `distlog admin streams locate TOPIC PARTITION OFFSET`: where a record
//! is in its DL stream (offset → DLSN → txid), from the HTTP admin API's
//! `/admin/locate`.

use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use super::error::Result;
use super::http::{encode_component, get_json, ok_body};
use super::output::Report;

/// `distlog admin streams` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum StreamsCommand {
    /// A record's DLSN (segment lssn, entry id, slot) and txid.
    Locate {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Kafka offset of the record.
        offset: u64,
    },
}

/// The `/admin/locate` path for a record.
pub fn locate_path(topic: &str, partition: i32, offset: u64) -> String {
    format!(
        "/admin/locate?topic={}&partition={partition}&offset={offset}",
        encode_component(topic)
    )
}

/// Runs a `streams` subcommand. `--json` prints the endpoint's document
/// (`topic`, `partition`, `offset`, `dlsn {lssn, entry_id, slot_id}`,
/// `txid`) unchanged.
pub async fn run(cmd: &StreamsCommand, http: &str, timeout: Duration) -> Result<Report> {
    let StreamsCommand::Locate {
        topic,
        partition,
        offset,
    } = cmd;
    let path = locate_path(topic, *partition, *offset);
    let response = get_json(http, &path, timeout).await?;
    let body = ok_body(
        http,
        &path,
        response,
        "check the topic, partition and offset (`distlog admin topics describe`); the offset must be below the high watermark",
    )?;
    let text = locate_text(&body);
    Ok(Report {
        json: body,
        text,
        failed: 0,
        total: 1,
    })
}

/// The human form of a locate answer.
pub fn locate_text(body: &Value) -> String {
    let n = |v: &Value| v.as_i64().map_or_else(|| v.to_string(), |n| n.to_string());
    format!(
        "topic {} partition {} offset {} → DLSN (lssn {}, entry {}, slot {}) → txid {}\n",
        body["topic"].as_str().unwrap_or_default(),
        n(&body["partition"]),
        n(&body["offset"]),
        n(&body["dlsn"]["lssn"]),
        n(&body["dlsn"]["entry_id"]),
        n(&body["dlsn"]["slot_id"]),
        n(&body["txid"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_path_and_renders() {
        assert_eq!(
            locate_path("a b", 2, 7),
            "/admin/locate?topic=a%20b&partition=2&offset=7"
        );
        let body = serde_json::json!({"topic": "t", "partition": 0, "offset": 5,
            "dlsn": {"lssn": 1, "entry_id": 2, "slot_id": 3}, "txid": 1700000000000_i64});
        assert_eq!(
            locate_text(&body),
            "topic t partition 0 offset 5 → DLSN (lssn 1, entry 2, slot 3) → txid 1700000000000\n"
        );
    }
}
