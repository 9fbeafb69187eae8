//! Produce (CONTRACT; implemented by the produce/fetch work).

use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (3, 9);

/// Handle a produce request. `None` when acks=0 (no response is sent).
pub async fn handle(broker: &Broker, version: i16, req: ProduceRequest) -> Option<ProduceResponse> {
    let _ = (broker, version, req);
    unimplemented!("produce contract")
}
