//! DescribeCluster (v0–1): the cluster id, the controller and the live
//! brokers, as admin clients (`describe_cluster`) ask for them.
//!
//! The same view Metadata gives (see [`super::metadata::build_response`]):
//! every live broker at its address on the listener the request came
//! through, and this node as controller (the metadata Raft group is not
//! reachable by clients; any broker serves admin requests, as a KRaft
//! cluster's brokers do). Only broker endpoints exist: a v1 request for the
//! controller endpoints gets UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker
//! answers it. There are no ACLs yet, so authorized operations are never
//! reported (`i32::MIN`, Kafka's "not provided").

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::build_response;
use crate::listeners::KafkaListener;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 1);

/// `endpointType` of the brokers' endpoints (v1+; v0 means brokers).
const BROKERS: i8 = 1;

/// Handle a DescribeCluster request that arrived through `listener`.
pub async fn handle(
    broker: &Broker,
    version: i16,
    req: DescribeClusterRequest,
    listener: &KafkaListener,
) -> DescribeClusterResponse {
    let endpoint_type = if version >= 1 { req.endpoint_type } else { BROKERS };
    let base = DescribeClusterResponse::default()
        .with_endpoint_type(endpoint_type)
        .with_cluster_authorized_operations(i32::MIN);
    if endpoint_type != BROKERS {
        return base
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "only broker endpoints are served (endpoint type 1)",
            )))
            .with_controller_id(kafka_protocol::messages::BrokerId(-1));
    }
    let meta = broker
        .meta
        .read(|s| build_response(s, broker.config.node_id, listener, Vec::new()));
    let brokers = meta
        .brokers
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(b.node_id)
                .with_host(b.host)
                .with_port(b.port)
                .with_rack(b.rack)
        })
        .collect();
    base.with_cluster_id(meta.cluster_id.unwrap_or_default())
        .with_controller_id(meta.controller_id)
        .with_brokers(brokers)
}
