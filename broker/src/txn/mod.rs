//! The transaction coordinator's shared pieces: the Kafka errors its
//! handlers answer (with KIP-588's rule for old request versions), turning
//! a requested topic partition into a [`TxnPartition`], and the sweeper
//! that aborts transactions which outlived their timeout ([`timeouts`]).
//!
//! Transaction state lives in the replicated metadata store
//! ([`distlog_metadata::transaction`]), so every broker can serve
//! InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn: each is
//! one compare-and-set there. FindCoordinator still names one broker per
//! transactional id, as clients expect.

pub mod timeouts;

use distlog_metadata::{ApplyError, MetadataError, TxnPartition, TxnRefusal};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

use crate::Broker;

/// The error a fenced producer gets at this API version. KIP-588 added
/// PRODUCER_FENCED; Kafka answers INVALID_PRODUCER_EPOCH instead to the
/// versions older clients send, which do not know the new code:
/// InitProducerId below v4, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn
/// below v2. Every other API and version gets PRODUCER_FENCED.
pub fn fenced_error(api: ApiKey, version: i16) -> ResponseError {
    let first_with_fenced = match api {
        ApiKey::InitProducerId => 4,
        ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn | ApiKey::EndTxn => 2,
        _ => 0,
    };
    if version < first_with_fenced {
        ResponseError::InvalidProducerEpoch
    } else {
        ResponseError::ProducerFenced
    }
}

/// The Kafka error for a refused transaction-state change, answered to
/// `api` at `version` (a fenced producer per [`fenced_error`]).
pub fn refusal_error(api: ApiKey, version: i16, r: &TxnRefusal) -> ResponseError {
    match r {
        TxnRefusal::ProducerFenced { .. } => fenced_error(api, version),
        other => crate::error::txn_refusal(other),
    }
}

/// The Kafka error for a failed transaction-state write. A refusal maps
/// through [`refusal_error`]; a metadata store that could not take the
/// write (no leader, a failover mid-write, a storage fault) is answered
/// COORDINATOR_NOT_AVAILABLE, which every transactional client retries
/// after looking the coordinator up again, as Kafka's coordinator answers
/// when its log cannot be written. Every write here is safe to repeat: an
/// add of what is added changes nothing, a repeated EndTxn is recognised.
pub fn write_error(api: ApiKey, version: i16, e: &MetadataError) -> ResponseError {
    match e {
        MetadataError::Rejected(ApplyError::Txn(r)) => refusal_error(api, version, r),
        MetadataError::Rejected(_) => crate::error::metadata_error(e),
        _ => ResponseError::CoordinatorNotAvailable,
    }
}

/// The partition `topic`/`partition` of a transaction, named by its
/// current stream; UNKNOWN_TOPIC_OR_PARTITION when either does not exist.
pub fn txn_partition(broker: &Broker, topic: &str, partition: i32) -> Result<TxnPartition, ResponseError> {
    let (_, stream) = broker.resolve(topic, partition)?;
    Ok(TxnPartition {
        stream,
        topic: topic.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_versions_get_invalid_producer_epoch_instead_of_producer_fenced() {
        let fenced = ResponseError::ProducerFenced;
        let old = ResponseError::InvalidProducerEpoch;
        for (api, first) in [
            (ApiKey::InitProducerId, 4),
            (ApiKey::AddPartitionsToTxn, 2),
            (ApiKey::AddOffsetsToTxn, 2),
            (ApiKey::EndTxn, 2),
        ] {
            for v in 0..first {
                assert_eq!(fenced_error(api, v), old, "{api:?} v{v}");
            }
            for v in first..=5 {
                assert_eq!(fenced_error(api, v), fenced, "{api:?} v{v}");
            }
        }
        assert_eq!(fenced_error(ApiKey::TxnOffsetCommit, 0), fenced);
    }

    #[test]
    fn refusals_and_unavailable_stores_map_to_kafka_errors() {
        let fenced = TxnRefusal::ProducerFenced { given: 0, current: 1 };
        assert_eq!(
            refusal_error(ApiKey::EndTxn, 1, &fenced),
            ResponseError::InvalidProducerEpoch
        );
        assert_eq!(
            refusal_error(ApiKey::EndTxn, 3, &fenced),
            ResponseError::ProducerFenced
        );
        assert_eq!(
            refusal_error(ApiKey::EndTxn, 0, &TxnRefusal::ConcurrentTransactions),
            ResponseError::ConcurrentTransactions
        );
        let rejected = MetadataError::Rejected(ApplyError::Txn(TxnRefusal::InvalidProducerIdMapping));
        assert_eq!(
            write_error(ApiKey::AddOffsetsToTxn, 3, &rejected),
            ResponseError::InvalidProducerIdMapping
        );
        assert_eq!(
            write_error(ApiKey::AddOffsetsToTxn, 3, &MetadataError::NoLeader),
            ResponseError::CoordinatorNotAvailable
        );
    }
}
