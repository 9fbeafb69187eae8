//! Fetch (CONTRACT; implemented by the produce/fetch work).

use kafka_protocol::messages::{FetchRequest, FetchResponse};

use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (4, 12);

/// Handle a fetch request (long poll up to max_wait_ms).
pub async fn handle(broker: &Broker, version: i16, req: FetchRequest) -> FetchResponse {
    let _ = (broker, version, req);
    unimplemented!("fetch contract")
}
