//! InitProducerId (v0–5) for idempotent producers.
//!
//! Without a transactional id, Kafka hands every caller a fresh producer id
//! at epoch 0, including a producer that names its current id and epoch
//! (v3+, KIP-360): an idempotent producer bumps its epoch on its own after
//! UNKNOWN_PRODUCER_ID or OUT_OF_ORDER_SEQUENCE_NUMBER (each partition
//! accepts a newer epoch starting at sequence 0) and asks for a new id only
//! when the epoch would overflow. Ids come from this node's block
//! ([`crate::producer::ids`]), so a call costs a Raft write only once per
//! block.
//!
//! Transactions are not implemented yet: a transactional id (an empty one
//! too, as in Kafka) is refused
//! with INVALID_REQUEST (and a log line saying so) rather than answered
//! with a producer id that would let a client believe its writes are
//! transactional.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::{debug, warn};

use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handle an InitProducerId request.
pub async fn handle(broker: &Broker, _version: i16, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let refused = |code: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // Only a null transactional id is idempotent-only: Kafka refuses an
    // empty one as it refuses any other (here: transactions do not exist yet).
    if req.transactional_id.is_some() {
        warn!(
            transactional_id = ?req.transactional_id,
            "InitProducerId with a transactional id refused: transactions are not supported yet; \
             use an idempotent producer without transactional.id"
        );
        return refused(ResponseError::InvalidRequest);
    }
    match broker.producer_ids.next_id().await {
        Ok(id) => {
            debug!(producer_id = id, previous = ?req.producer_id, "producer id handed out");
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0)
        }
        Err(e) => {
            warn!(error = %e, "no producer id block from the metadata store; the client retries");
            refused(ResponseError::CoordinatorLoadInProgress)
        }
    }
}
