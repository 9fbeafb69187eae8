//! ListOffsets (CONTRACT; implemented by the produce/fetch work).

use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (1, 7);

/// Handle a list-offsets request (earliest, latest, by timestamp via txid).
pub async fn handle(broker: &Broker, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let _ = (broker, version, req);
    unimplemented!("list_offsets contract")
}
