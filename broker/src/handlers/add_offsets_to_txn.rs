//! AddOffsetsToTxn (v0–4): a consumer group joins a producer's
//! transaction, so the offsets it commits with TxnOffsetCommit become the
//! group's committed offsets if, and only if, the transaction commits.
//! One [`TxnOp::Add`] with the group and no partitions; it opens a
//! transaction when none is.

use distlog_metadata::TxnOp;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};
use tracing::{debug, Instrument};

use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 4);

/// Handle an AddOffsetsToTxn request.
pub async fn handle(broker: &Broker, version: i16, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let span = tracing::debug_span!(
        "add_offsets_to_txn",
        transactional_id = %req.transactional_id.as_str(),
        group = %req.group_id.as_str()
    );
    let error = async {
        if req.transactional_id.is_empty() || req.group_id.is_empty() {
            debug!("empty transactional id or group id");
            return Some(ResponseError::InvalidRequest);
        }
        let op = TxnOp::Add {
            transactional_id: req.transactional_id.to_string(),
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            partitions: Vec::new(),
            groups: vec![req.group_id.to_string()],
            now_ms: distlog_metadata::now_ms(),
        };
        match broker.meta.txn(op).await {
            Ok(_) => {
                debug!(producer_id = req.producer_id.0, "group added");
                None
            }
            Err(e) => {
                let code = crate::txn::write_error(ApiKey::AddOffsetsToTxn, version, &e);
                debug!(error = %e, code = ?code, "AddOffsetsToTxn refused");
                Some(code)
            }
        }
    }
    .instrument(span)
    .await;
    AddOffsetsToTxnResponse::default().with_error_code(error.map_or(0, |e| e.code()))
}
