//! distlog-broker: the Kafka protocol front end of distlog.
//!
//! Only this crate speaks Kafka. It decodes requests with the
//! `kafka-protocol` crate, maps topics/partitions onto DL log streams, and
//! turns storage errors into Kafka error codes in one place ([`error`]).

pub mod admin_cli;
pub mod broker_config;
pub mod cluster;
pub mod config;
pub mod context;
pub mod error;
pub mod group;
pub mod handlers;
pub mod http;
pub mod lease;
pub mod listeners;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod ownership;
pub mod preferred;
pub mod producer;
pub mod records;
pub mod server;
pub mod server_args;
pub mod topic_config;
pub mod topics;
pub mod txn;
pub mod txn_markers;

pub use context::Broker;
