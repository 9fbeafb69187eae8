//! TxnOffsetCommit (v0–4): a transactional producer commits a consumer
//! group's offsets as part of its transaction (`sendOffsetsToTransaction`).
//!
//! Sent to the group's coordinator, which checks the group as OffsetCommit
//! does (NOT_COORDINATOR elsewhere; from v3 the member, static instance and
//! generation the consumer had, when given). The offsets are then staged in
//! the transaction with one [`TxnOp::CommitOffsets`] in the replicated
//! transaction state, which checks the producer id, epoch and that the
//! group was added to the open transaction (AddOffsetsToTxn). Staged
//! offsets are invisible to OffsetFetch (and answered
//! UNSTABLE_OFFSET_COMMIT to `require_stable` fetches) until EndTxn commits
//! them in the same step that prepares the transaction, or drops them on
//! abort.
//!
//! Unlike OffsetCommit, the write does not go through the group store's
//! batching: the staged offsets are not the group's offsets yet, so there
//! is no ordering with plain commits to keep; EndTxn orders the commit.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use tracing::debug;

use super::group_offsets::{commit_rows, CommitPartition};
use crate::error::{group_store_error, txn_refusal};
use crate::Broker;
use distlog_metadata::{ApplyError, MetadataError, OffsetCommitEntry, TxnOp};

/// Versions implemented (advertised in ApiVersions). v3 adds the
/// consumer's generation, member id and group instance id (KIP-447); v4
/// is v3 with KIP-890's client-side semantics (no format change).
pub const VERSIONS: (i16, i16) = (0, 4);

/// The Kafka error of a failed staging write. A refused transaction op is
/// answered with its own error, except that clients before v3 do not know
/// PRODUCER_FENCED and get INVALID_PRODUCER_EPOCH instead (KIP-588); any
/// other failure is a coordinator failure, as for OffsetCommit.
pub fn write_error(version: i16, e: &MetadataError) -> ResponseError {
    match e {
        MetadataError::Rejected(ApplyError::Txn(r)) => match txn_refusal(r) {
            ResponseError::ProducerFenced if version < 3 => ResponseError::InvalidProducerEpoch,
            other => other,
        },
        other => group_store_error(other),
    }
}

fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

/// Handle a TxnOffsetCommit: partitions of unknown topics and oversized
/// metadata are refused one by one; the rest are staged together and
/// share the outcome of the group check and the transaction write.
pub async fn handle(broker: &Broker, version: i16, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let (rows, entries) = commit_rows(
        broker,
        req.topics.iter().map(|t| {
            let parts = t.partitions.iter().map(|p| CommitPartition {
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_deref(),
            });
            (&t.name, parts.collect())
        }),
    );
    // Kafka answers only the per-partition errors when nothing is left to
    // commit, without looking at the group or the transaction.
    let outcome = if entries.is_empty() {
        None
    } else {
        stage(broker, version, &req, entries).await
    };
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for (name, partition, error) in rows {
        let error = error.or(outcome);
        let row = TxnOffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(code(error));
        match topics.last_mut() {
            Some(t) if t.name == name => t.partitions.push(row),
            _ => topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(vec![row]),
            ),
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// Check the group, then stage `entries` in the transaction: the error
/// every staged partition is answered with, `None` when they are staged.
async fn stage(
    broker: &Broker,
    version: i16,
    req: &TxnOffsetCommitRequest,
    entries: Vec<OffsetCommitEntry>,
) -> Option<ResponseError> {
    let group = req.group_id.0.as_str();
    // Before v3 the request carries no member identity: an anonymous commit.
    let (member_id, instance, generation) = if version >= 3 {
        (
            req.member_id.as_str(),
            req.group_instance_id.as_ref().map(|s| s.as_str()),
            req.generation_id,
        )
    } else {
        ("", None, -1)
    };
    if let Some(e) = broker
        .groups
        .check_txn_commit(group, member_id, instance, generation)
        .await
    {
        return Some(e);
    }
    let op = TxnOp::CommitOffsets {
        transactional_id: req.transactional_id.0.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        group: group.to_string(),
        offsets: entries,
    };
    match broker.meta.txn(op).await {
        Ok(_) => None,
        Err(e) => {
            let error = write_error(version, &e);
            debug!(
                transactional_id = %req.transactional_id.0.as_str(),
                group = %group,
                error = ?error,
                reason = %e,
                "transactional offset commit refused"
            );
            Some(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlog_metadata::{TxnRefusal, TxnState};

    fn refused(r: TxnRefusal) -> MetadataError {
        MetadataError::Rejected(ApplyError::Txn(r))
    }

    #[test]
    fn refusals_map_to_kafka_errors_with_kip_588_for_old_versions() {
        let fenced = refused(TxnRefusal::ProducerFenced { given: 0, current: 1 });
        assert_eq!(write_error(3, &fenced), ResponseError::ProducerFenced);
        assert_eq!(write_error(4, &fenced), ResponseError::ProducerFenced);
        for v in 0..3 {
            assert_eq!(write_error(v, &fenced), ResponseError::InvalidProducerEpoch);
        }
        assert_eq!(
            write_error(0, &refused(TxnRefusal::InvalidProducerIdMapping)),
            ResponseError::InvalidProducerIdMapping
        );
        assert_eq!(
            write_error(4, &refused(TxnRefusal::InvalidTxnState(TxnState::Empty))),
            ResponseError::InvalidTxnState
        );
        assert_eq!(
            write_error(4, &refused(TxnRefusal::ConcurrentTransactions)),
            ResponseError::ConcurrentTransactions
        );
        assert_eq!(
            write_error(4, &MetadataError::NoLeader),
            ResponseError::CoordinatorNotAvailable
        );
    }
}
