//! InitProducerId (v0–5) for idempotent and transactional producers.
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
//! With a transactional id, the answer comes from the replicated
//! transaction state ([`TxnOp::Init`]): the id's producer id at a bumped
//! epoch, which fences every older producer of the same transactional id
//! (a new id gets a fresh producer id at epoch 0). A v3+ producer naming
//! its current id and epoch (KIP-360) must name the current ones. A
//! transaction left open by the previous producer is aborted first and the
//! caller told CONCURRENT_TRANSACTIONS, so it retries once the abort
//! completes, as Kafka does. An empty transactional id is INVALID_REQUEST
//! and a timeout outside (0, `transaction.max.timeout.ms`]
//! INVALID_TRANSACTION_TIMEOUT, as in Kafka.

use distlog_metadata::{CommandResponse, TxnOp};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::{debug, warn, Instrument};

use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 5);

fn refused(code: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// Handle an InitProducerId request.
pub async fn handle(broker: &Broker, version: i16, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let Some(transactional_id) = req.transactional_id.as_ref().map(|t| t.to_string()) else {
        return idempotent(broker, &req).await;
    };
    let span = tracing::debug_span!("init_producer_id", transactional_id = %transactional_id);
    transactional(broker, version, &req, transactional_id)
        .instrument(span)
        .await
}

/// A producer id for an idempotent-only producer (no transactional id).
async fn idempotent(broker: &Broker, req: &InitProducerIdRequest) -> InitProducerIdResponse {
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

/// The producer id and epoch of a transactional id.
async fn transactional(
    broker: &Broker,
    version: i16,
    req: &InitProducerIdRequest,
    transactional_id: String,
) -> InitProducerIdResponse {
    if transactional_id.is_empty() {
        debug!("InitProducerId with an empty transactional id refused");
        return refused(ResponseError::InvalidRequest);
    }
    let max = broker.config.transaction_max_timeout_ms;
    if req.transaction_timeout_ms <= 0 || req.transaction_timeout_ms as u64 > max {
        debug!(
            timeout_ms = req.transaction_timeout_ms,
            max_ms = max,
            "transaction timeout outside (0, transaction.max.timeout.ms]"
        );
        return refused(ResponseError::InvalidTransactionTimeout);
    }
    let fresh = match broker.producer_ids.next_id().await {
        Ok(id) => id,
        Err(e) => {
            warn!(error = %e, "no producer id block from the metadata store; the client retries");
            return refused(ResponseError::CoordinatorLoadInProgress);
        }
    };
    let expected =
        (version >= 3 && req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let op = TxnOp::Init {
        transactional_id,
        fresh_producer_id: fresh,
        timeout_ms: req.transaction_timeout_ms,
        expected,
        now_ms: distlog_metadata::now_ms(),
    };
    match broker.meta.txn(op).await {
        Ok(CommandResponse::Producer {
            producer_id,
            producer_epoch,
        }) => {
            debug!(producer_id, producer_epoch, "transactional producer initialised");
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(producer_epoch)
        }
        Ok(CommandResponse::TxnAborting) => {
            debug!("the previous producer's open transaction is being aborted; the client retries");
            refused(ResponseError::ConcurrentTransactions)
        }
        Ok(other) => {
            warn!(response = ?other, "unexpected metadata answer to a transactional InitProducerId");
            refused(ResponseError::CoordinatorNotAvailable)
        }
        Err(e) => {
            let code = crate::txn::write_error(ApiKey::InitProducerId, version, &e);
            debug!(error = %e, code = ?code, "InitProducerId refused");
            refused(code)
        }
    }
}
