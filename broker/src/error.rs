//! The one place where DL (storage/metadata) errors become Kafka error codes.

use distlog_metadata::{ApplyError, MetadataError, TxnRefusal};
use distlog_storage::StorageError;
use kafka_protocol::error::ResponseError;

use crate::producer::ProducerStateError;

/// Failures of the broker crate itself (startup, configuration, I/O).
/// Per-request failures are not errors of this type: they become Kafka
/// error codes in responses (see [`storage_error`], [`metadata_error`]).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The configuration is invalid; the message names the flag to fix.
    #[error("configuration error: {0}")]
    Config(String),
    /// A listener could not bind its address.
    #[error("cannot listen on {addr} ({error}); choose another address with --{flag}")]
    Bind {
        /// The address that failed.
        addr: String,
        /// The flag that sets it.
        flag: &'static str,
        /// The OS error (shown in the message, so not a `source`).
        error: std::io::Error,
    },
    /// Other I/O failure (data directory, sockets).
    #[error("I/O error: {context}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl BrokerError {
    /// Wrap an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BrokerError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The Kafka error a read (Fetch, ListOffsets, OffsetForLeaderEpoch)
/// answers for a storage failure. As [`storage_error`], except that bookies
/// out of reach are KAFKA_STORAGE_ERROR: NOT_ENOUGH_REPLICAS is a produce
/// error, which consumers do not expect (the Java consumer treats it as an
/// unexpected error), while every client answers KAFKA_STORAGE_ERROR on a
/// read by refreshing metadata and retrying.
pub fn read_storage_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::NotEnoughBookies(_) => ResponseError::KafkaStorageError,
        other => storage_error(other),
    }
}

/// A read error code as ListOffsets answers it: librdkafka retries a
/// ListOffsets on LEADER_NOT_AVAILABLE but, on KAFKA_STORAGE_ERROR, only
/// refreshes metadata and fails the query (a watermark lookup while a
/// restarted cluster recovers its streams); the Java client retries both.
pub fn list_offsets_code(code: ResponseError) -> ResponseError {
    match code {
        ResponseError::KafkaStorageError => ResponseError::LeaderNotAvailable,
        other => other,
    }
}

/// The Kafka error a broker answers for a storage failure.
pub fn storage_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::Io { .. } | StorageError::Corrupt { .. } => ResponseError::KafkaStorageError,
        StorageError::Fenced(_) | StorageError::NotOwner(_) | StorageError::ShuttingDown => {
            ResponseError::NotLeaderOrFollower
        }
        StorageError::NoSuchLedger(_) | StorageError::NoSuchEntry { .. } => ResponseError::KafkaStorageError,
        StorageError::OutOfOrder { .. } => ResponseError::UnknownServerError,
        StorageError::InvalidAppend(_) => ResponseError::InvalidRecord,
        StorageError::NoSuchStream(_) => ResponseError::UnknownTopicOrPartition,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::NotEnoughBookies(_) => ResponseError::NotEnoughReplicas,
        // Kafka's "written, but not to enough replicas": retriable, and
        // clients count it as possibly persisted (librdkafka spends a retry
        // on it instead of resending for free as after NOT_LEADER).
        StorageError::Unconfirmed(_) => ResponseError::NotEnoughReplicasAfterAppend,
        StorageError::Metadata(m) => metadata_error(m),
        StorageError::Refused(e) => match e.downcast_ref::<ProducerStateError>() {
            Some(ProducerStateError::OutOfOrderSequence { .. }) => ResponseError::OutOfOrderSequenceNumber,
            Some(ProducerStateError::InvalidProducerEpoch { .. }) => ResponseError::InvalidProducerEpoch,
            Some(ProducerStateError::UnknownProducerId { .. }) => ResponseError::UnknownProducerId,
            Some(ProducerStateError::InvalidTxnState { .. }) => ResponseError::InvalidTxnState,
            None => ResponseError::InvalidRecord,
        },
    }
}

/// The Kafka error a broker answers for a metadata-store failure.
pub fn metadata_error(e: &MetadataError) -> ResponseError {
    match e {
        MetadataError::Rejected(a) => match a {
            ApplyError::TopicExists(_) => ResponseError::TopicAlreadyExists,
            ApplyError::UnknownTopic(_) | ApplyError::UnknownStream(_) => {
                ResponseError::UnknownTopicOrPartition
            }
            ApplyError::EpochMismatch { .. } => ResponseError::NotLeaderOrFollower,
            ApplyError::SegmentConflict { .. } => ResponseError::NotLeaderOrFollower,
            ApplyError::Invalid(_) => ResponseError::InvalidRequest,
            ApplyError::Txn(t) => txn_refusal(t),
        },
        MetadataError::NoLeader | MetadataError::ForwardToLeader { .. } => ResponseError::RequestTimedOut,
        MetadataError::Storage(_) | MetadataError::Codec(_) => ResponseError::KafkaStorageError,
        // The write's outcome is unknown (the leader went away mid-call) or
        // the metadata group is unavailable: a timeout to the client, which
        // retries as it would against a Kafka controller failover.
        MetadataError::Raft(_) => ResponseError::RequestTimedOut,
        // A reply of the wrong kind (a node of another version, or a bug):
        // the metadata store cannot be trusted with this write right now.
        // Kafka answers KAFKA_STORAGE_ERROR when a log cannot be written for
        // a reason on the broker's side; it is retriable and makes the
        // client refresh metadata, where INVALID_RECORD would drop the batch.
        MetadataError::UnexpectedResponse { .. } => ResponseError::KafkaStorageError,
    }
}

/// The Kafka error of a refused transaction-state change.
pub fn txn_refusal(r: &TxnRefusal) -> ResponseError {
    match r {
        TxnRefusal::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnRefusal::ProducerFenced { .. } => ResponseError::ProducerFenced,
        TxnRefusal::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnRefusal::InvalidTxnState(_) => ResponseError::InvalidTxnState,
    }
}

/// The Kafka error a group coordinator answers when the metadata store
/// could not store group state (offsets, a generation): clients retry
/// after looking up the coordinator again.
pub fn group_store_error(e: &MetadataError) -> ResponseError {
    match e {
        MetadataError::ForwardToLeader { .. } => ResponseError::NotCoordinator,
        MetadataError::Rejected(ApplyError::Invalid(_)) => ResponseError::InvalidRequest,
        _ => ResponseError::CoordinatorNotAvailable,
    }
}

/// Why a topic name breaks Kafka's naming rules (answered with
/// INVALID_TOPIC_EXCEPTION), or
/// `None` when the name is valid: non-empty, at most 249 characters of
/// `[a-zA-Z0-9._-]`, and neither `.` nor `..`.
pub fn topic_name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("topic name is empty".to_string());
    }
    if name == "." || name == ".." {
        return Some(format!("topic name cannot be '{name}'"));
    }
    if name.len() > 249 {
        return Some(format!(
            "topic name is {} characters long, the maximum is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "topic name '{name}' contains the illegal character {c:?}; allowed are [a-zA-Z0-9._-]"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "orders", "a.b_c-D9", &"x".repeat(249), "..."] {
            assert_eq!(topic_name_error(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", &"x".repeat(250), "a b", "a/b", "é", "t:1"] {
            assert!(topic_name_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn storage_errors_map_to_kafka_codes() {
        let io = StorageError::io("/x", std::io::Error::other("disk full"));
        assert_eq!(storage_error(&io), ResponseError::KafkaStorageError);
        assert_eq!(
            storage_error(&StorageError::Fenced(3)),
            ResponseError::NotLeaderOrFollower
        );
        assert_eq!(
            storage_error(&StorageError::OffsetOutOfRange {
                offset: 9,
                start: 0,
                end: 3
            }),
            ResponseError::OffsetOutOfRange
        );
        // A read with the bookies out of reach: an error consumers retry.
        assert_eq!(
            read_storage_error(&StorageError::NotEnoughBookies("2 of 3 down".into())),
            ResponseError::KafkaStorageError
        );
        assert_eq!(
            list_offsets_code(read_storage_error(&StorageError::NotEnoughBookies(
                "2 of 3 down".into()
            ))),
            ResponseError::LeaderNotAvailable
        );
        assert_eq!(
            read_storage_error(&StorageError::Fenced(3)),
            ResponseError::NotLeaderOrFollower
        );
        // Issued but unconfirmed: "maybe written", whatever stopped it.
        assert_eq!(
            storage_error(&StorageError::Unconfirmed(Box::new(StorageError::NotOwner(
                distlog_metadata::StreamId {
                    topic_id: uuid::Uuid::nil(),
                    partition: 0
                }
            )))),
            ResponseError::NotEnoughReplicasAfterAppend
        );
        let m = StorageError::Metadata(MetadataError::Rejected(ApplyError::TopicExists("t".into())));
        assert_eq!(storage_error(&m), ResponseError::TopicAlreadyExists);
        assert_eq!(
            metadata_error(&MetadataError::NoLeader),
            ResponseError::RequestTimedOut
        );
        let unexpected = StorageError::Metadata(MetadataError::UnexpectedResponse {
            command: "AllocateLedgerId",
            response: "Ok".into(),
        });
        assert_eq!(storage_error(&unexpected), ResponseError::KafkaStorageError);
    }

    #[test]
    fn bind_error_names_the_flag() {
        let e = BrokerError::Bind {
            addr: "127.0.0.1:9092".into(),
            flag: "kafka-listen",
            error: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        let s = e.to_string();
        assert!(
            s.contains("--kafka-listen") && s.contains("127.0.0.1:9092"),
            "{s}"
        );
    }
}
