//! The one place where DL (storage/metadata) errors become Kafka error codes.

use distlog_metadata::{ApplyError, MetadataError};
use distlog_storage::StorageError;
use kafka_protocol::error::ResponseError;

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
        StorageError::Metadata(m) => metadata_error(m),
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
        },
        MetadataError::NoLeader | MetadataError::ForwardToLeader { .. } => ResponseError::RequestTimedOut,
        MetadataError::Storage(_) | MetadataError::Codec(_) => ResponseError::KafkaStorageError,
        MetadataError::Raft(_) => ResponseError::UnknownServerError,
    }
}
