//! AddPartitionsToTxn (v0–5): partitions join a producer's transaction.
//!
//! v0–3 is the client's form: one transactional id and its partitions. If
//! any partition does not exist, nothing is added: that partition is
//! UNKNOWN_TOPIC_OR_PARTITION and every other OPERATION_NOT_ATTEMPTED (as
//! in Kafka). Otherwise all are added in one [`TxnOp::Add`] and share its
//! outcome.
//!
//! v4+ is the brokers' batched form (KIP-890): several transactional ids,
//! each either added as above or, with `verify_only`, checked: a partition
//! owner asks whether a transactional batch's partition is in the
//! producer's open transaction before accepting it. The check reads this
//! node's replica after a Raft barrier, so it sees every add acknowledged
//! before it.

use distlog_metadata::{TxnMeta, TxnOp, TxnState};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TransactionalId,
};
use tracing::{debug, Instrument};

use crate::txn::{fenced_error, txn_partition, write_error};
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handle an AddPartitionsToTxn request.
pub async fn handle(
    broker: &Broker,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let results = add(
            broker,
            version,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id,
            req.v3_and_below_producer_epoch,
            &req.v3_and_below_topics,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let topic_results = if t.verify_only {
            verify(
                broker,
                version,
                &t.transactional_id,
                t.producer_id,
                t.producer_epoch,
                &t.topics,
            )
            .await
        } else {
            add(
                broker,
                version,
                &t.transactional_id,
                t.producer_id,
                t.producer_epoch,
                &t.topics,
            )
            .await
        };
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topic_results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// The answer for every requested partition, each with the error
/// `error_of` gives it (`None`: NONE).
fn answer(
    topics: &[AddPartitionsToTxnTopic],
    mut error_of: impl FnMut(&str, i32) -> Option<ResponseError>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(error_of(&t.name, p).map_or(0, |e| e.code()))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect()
}

/// Add the partitions to the transaction, all or none.
async fn add(
    broker: &Broker,
    version: i16,
    transactional_id: &TransactionalId,
    producer_id: ProducerId,
    producer_epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let span = tracing::debug_span!("add_partitions_to_txn", transactional_id = %transactional_id.as_str());
    async {
        if transactional_id.is_empty() {
            debug!("empty transactional id");
            return answer(topics, |_, _| Some(ResponseError::InvalidRequest));
        }
        let mut partitions = Vec::new();
        let mut unknown = Vec::new();
        for t in topics {
            for &p in &t.partitions {
                match txn_partition(broker, &t.name, p) {
                    Ok(tp) => partitions.push(tp),
                    Err(e) => unknown.push((t.name.to_string(), p, e)),
                }
            }
        }
        if !unknown.is_empty() {
            debug!(unknown = ?unknown, "unknown partitions: nothing added");
            return answer(topics, |name, p| {
                Some(
                    unknown
                        .iter()
                        .find(|(n, q, _)| n == name && *q == p)
                        .map_or(ResponseError::OperationNotAttempted, |(_, _, e)| *e),
                )
            });
        }
        let count = partitions.len();
        let op = TxnOp::Add {
            transactional_id: transactional_id.to_string(),
            producer_id: producer_id.0,
            producer_epoch,
            partitions,
            groups: Vec::new(),
            now_ms: distlog_metadata::now_ms(),
        };
        let error = match broker.meta.txn(op).await {
            Ok(_) => {
                debug!(
                    producer_id = producer_id.0,
                    producer_epoch,
                    partitions = count,
                    "partitions added"
                );
                None
            }
            Err(e) => {
                let code = write_error(ApiKey::AddPartitionsToTxn, version, &e);
                debug!(error = %e, code = ?code, "AddPartitionsToTxn refused");
                Some(code)
            }
        };
        answer(topics, |_, _| error)
    }
    .instrument(span)
    .await
}

/// Check, without changing anything, that each partition is in the
/// producer's open transaction (KIP-890's verification).
async fn verify(
    broker: &Broker,
    version: i16,
    transactional_id: &TransactionalId,
    producer_id: ProducerId,
    producer_epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let span =
        tracing::debug_span!("verify_partitions_in_txn", transactional_id = %transactional_id.as_str());
    async {
        if let Err(e) = broker.meta.barrier().await {
            let code = write_error(ApiKey::AddPartitionsToTxn, version, &e);
            debug!(error = %e, "no barrier: cannot verify");
            return answer(topics, |_, _| Some(code));
        }
        let txn: Option<TxnMeta> = broker
            .meta
            .read(|s| s.transactions.get(transactional_id.as_str()).cloned());
        let txn_error = match &txn {
            None => Some(ResponseError::InvalidProducerIdMapping),
            Some(t) if t.producer_id != producer_id.0 => Some(ResponseError::InvalidProducerIdMapping),
            Some(t) if t.producer_epoch != producer_epoch => {
                Some(fenced_error(ApiKey::AddPartitionsToTxn, version))
            }
            Some(t) if t.state != TxnState::Ongoing => Some(ResponseError::InvalidTxnState),
            Some(_) => None,
        };
        let results = answer(topics, |name, p| {
            if txn_error.is_some() {
                return txn_error;
            }
            let Ok(tp) = txn_partition(broker, name, p) else {
                return Some(ResponseError::UnknownTopicOrPartition);
            };
            let added = txn
                .as_ref()
                .is_some_and(|t| t.partitions.iter().any(|q| q.stream == tp.stream));
            (!added).then_some(ResponseError::InvalidTxnState)
        });
        debug!(error = ?txn_error, "partitions verified");
        results
    }
    .instrument(span)
    .await
}
