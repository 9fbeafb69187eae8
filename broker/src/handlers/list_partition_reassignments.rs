//! ListPartitionReassignments (v0): distlog never has a reassignment in
//! progress, so the answer is always empty.
//!
//! A partition's data is not moved between brokers: a stream's segments
//! stay on the bookies of their ensembles and ownership moves with a fenced
//! handoff, not a replica copy. Kafka answers only partitions with an
//! ongoing reassignment and leaves out unknown topics and partitions
//! without an error, so every request, for all partitions (null) or for
//! named ones, gets no topics and error code 0.

use kafka_protocol::messages::{ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse};

use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 0);

/// Handle a ListPartitionReassignments request: nothing is in progress.
pub async fn handle(
    _broker: &Broker,
    _version: i16,
    _req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_topics(Vec::new())
}
