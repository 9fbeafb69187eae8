//! EndTxn (v0–4): the producer commits or aborts its open transaction.
//!
//! One [`TxnOp::End`] makes the decision durable (PrepareCommit or
//! PrepareAbort) and settles the transaction's group offsets; the
//! partitions' owners then write the markers and the transaction
//! completes. A retry of an EndTxn already applied is answered NONE (or
//! CONCURRENT_TRANSACTIONS while its markers are being written). v5 belongs
//! to transaction version 2 (KIP-890 part 2), which is not implemented.

use distlog_metadata::TxnOp;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse, ProducerId};
use tracing::{debug, Instrument};

use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 4);

/// Handle an EndTxn request.
pub async fn handle(broker: &Broker, version: i16, req: EndTxnRequest) -> EndTxnResponse {
    let span = tracing::debug_span!(
        "end_txn",
        transactional_id = %req.transactional_id.as_str(),
        commit = req.committed
    );
    let error = async {
        if req.transactional_id.is_empty() {
            debug!("empty transactional id");
            return Some(ResponseError::InvalidRequest);
        }
        let op = TxnOp::End {
            transactional_id: req.transactional_id.to_string(),
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            commit: req.committed,
            now_ms: distlog_metadata::now_ms(),
        };
        match broker.meta.txn(op).await {
            Ok(_) => {
                let outcome = if req.committed { "commit" } else { "abort" };
                crate::metrics::TRANSACTIONS.with_label_values(&[outcome]).inc();
                debug!(producer_id = req.producer_id.0, "transaction ending");
                None
            }
            Err(e) => {
                let code = crate::txn::write_error(ApiKey::EndTxn, version, &e);
                debug!(error = %e, code = ?code, "EndTxn refused");
                Some(code)
            }
        }
    }
    .instrument(span)
    .await;
    EndTxnResponse::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}
