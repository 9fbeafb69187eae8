//! `distlog admin cluster describe`: DescribeCluster's cluster id,
//! controller and brokers.

use clap::Subcommand;
use kafka_protocol::messages::DescribeClusterRequest;
use serde::Serialize;

use super::error::{check, Result};
use super::output::{or_dash, table, Report};
use super::routing::Cluster;

/// `distlog admin cluster` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers.
    Describe,
}

/// A broker in `cluster describe --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClusterBroker {
    /// Broker (node) id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
}

/// `cluster describe --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's broker id (-1: none).
    pub controller_id: i32,
    /// Live brokers by id.
    pub brokers: Vec<ClusterBroker>,
}

/// Runs a `cluster` subcommand.
pub async fn run(cmd: &ClusterCommand, cluster: &mut Cluster) -> Result<Report> {
    match cmd {
        ClusterCommand::Describe => {
            let request = DescribeClusterRequest::default().with_endpoint_type(1);
            let (_, answer) = cluster.any().send(&request).await?;
            check(
                || "describe the cluster".to_string(),
                answer.error_code,
                answer.error_message.as_deref(),
            )?;
            let mut brokers: Vec<ClusterBroker> = answer
                .brokers
                .iter()
                .map(|b| ClusterBroker {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(ToString::to_string),
                })
                .collect();
            brokers.sort_by_key(|b| b.id);
            let description = ClusterDescription {
                cluster_id: answer.cluster_id.to_string(),
                controller_id: answer.controller_id.0,
                brokers,
            };
            let text = describe_text(&description);
            Report::new(&description, text)
        }
    }
}

/// The human form of `cluster describe`.
pub fn describe_text(d: &ClusterDescription) -> String {
    let rows: Vec<Vec<String>> = d
        .brokers
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                b.host.clone(),
                b.port.to_string(),
                or_dash(b.rack.as_ref()),
            ]
        })
        .collect();
    format!(
        "Cluster ID: {}\nController: {}\n\n{}",
        d.cluster_id,
        d.controller_id,
        table(&["ID", "HOST", "PORT", "RACK"], &rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_cluster() {
        let d = ClusterDescription {
            cluster_id: "abc".into(),
            controller_id: 1,
            brokers: vec![ClusterBroker {
                id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
            }],
        };
        assert_eq!(
            describe_text(&d),
            "Cluster ID: abc\nController: 1\n\nID  HOST       PORT  RACK\n1   127.0.0.1  9092  -\n"
        );
        assert_eq!(
            serde_json::to_value(&d).expect("json"),
            serde_json::json!({"cluster_id": "abc", "controller_id": 1,
                "brokers": [{"id": 1, "host": "127.0.0.1", "port": 9092, "rack": null}]})
        );
    }
}
