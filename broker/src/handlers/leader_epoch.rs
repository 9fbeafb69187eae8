//! KIP-320 leader-epoch checks shared by Fetch, ListOffsets and
//! OffsetForLeaderEpoch.
//!
//! A partition's leader epoch is its stream's owner epoch. Requests that
//! carry the client's `current_leader_epoch` are checked as a Kafka
//! partition checks them (`Partition.getLocalLog`): the epoch first, then
//! leadership. On a node that does not own the stream the epoch is checked
//! against the owner epoch in the local metadata replica, as a Kafka
//! follower checks it against the epoch it knows.

use distlog_metadata::StreamId;
use distlog_storage::log::{EpochHistory, StreamHandle};
use distlog_storage::StorageError;
use kafka_protocol::error::ResponseError;

use crate::error::read_storage_error;
use crate::Broker;

/// Kafka's "no epoch" sentinel (UNDEFINED_EPOCH), also "not checked" in a
/// request's `current_leader_epoch`.
pub const UNDEFINED_EPOCH: i32 = -1;

/// Kafka's "no offset" sentinel (UNDEFINED_EPOCH_OFFSET).
pub const UNDEFINED_OFFSET: i64 = -1;

/// KIP-320 check of the client's view of the leader epoch: negative skips
/// it; newer than ours is UNKNOWN_LEADER_EPOCH (we are behind); older is
/// FENCED_LEADER_EPOCH (the client is behind).
pub fn check_leader_epoch(requested: i32, owner_epoch: u64) -> Result<(), ResponseError> {
    let Ok(requested) = u64::try_from(requested) else {
        return Ok(());
    };
    if requested > owner_epoch {
        Err(ResponseError::UnknownLeaderEpoch)
    } else if requested < owner_epoch {
        Err(ResponseError::FencedLeaderEpoch)
    } else {
        Ok(())
    }
}

/// How long a request waits for the read barrier that confirms ownership
/// ([`confirm_owner`]).
const OWNERSHIP_BARRIER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether, after a metadata read barrier, the metadata store still names
/// this node the stream's owner at the epoch its incarnation serves: `None`
/// when the barrier fails (this node may be cut off from the quorum and
/// serving a stream it lost). For the rare answers that would send a
/// consumer back to the start of the log, which a stale owner must not give.
pub async fn confirm_owner(broker: &Broker, stream: &StreamHandle) -> Option<bool> {
    let history = stream.epochs().ok()?;
    let barrier = tokio::time::timeout(OWNERSHIP_BARRIER_TIMEOUT, broker.meta.barrier()).await;
    if !matches!(barrier, Ok(Ok(()))) {
        return None;
    }
    let me = broker.config.node_id;
    Some(broker.meta.read(|s| {
        s.streams
            .get(&stream.id())
            .is_some_and(|m| m.owner == Some(me) && m.owner_epoch == history.current_epoch)
    }))
}

/// An owner epoch as the protocol's `int32` (saturating; epochs never get
/// near the limit).
pub fn to_wire(epoch: u64) -> i32 {
    i32::try_from(epoch).unwrap_or(i32::MAX)
}

/// The partition's stream, resolved once for the whole request (a
/// [`StreamHandle`]: later calls need no lookup); the partition's error
/// code when this node cannot serve it (see [`not_served`], which checks
/// `current_leader_epoch` against the owner epoch in metadata).
pub async fn open_stream(
    broker: &Broker,
    stream: StreamId,
    current_leader_epoch: i32,
) -> Result<StreamHandle, ResponseError> {
    broker
        .ns
        .open_stream(stream)
        .await
        .map_err(|e| not_served(broker, stream, current_leader_epoch, &e))
}

/// The stream's epoch history after checking the request's
/// `current_leader_epoch` (negative: unchecked) against the owner epoch;
/// the partition's error code otherwise (see [`not_served`]).
pub fn checked_history(
    broker: &Broker,
    stream: &StreamHandle,
    current_leader_epoch: i32,
) -> Result<EpochHistory, ResponseError> {
    let history = stream
        .epochs()
        .map_err(|e| not_served(broker, stream.id(), current_leader_epoch, &e))?;
    check_leader_epoch(current_leader_epoch, history.current_epoch)?;
    Ok(history)
}

/// The owner epoch after checking the request's `current_leader_epoch`
/// (negative: unchecked); the partition's error code otherwise.
pub fn checked_epoch(
    broker: &Broker,
    stream: &StreamHandle,
    current_leader_epoch: i32,
) -> Result<u64, ResponseError> {
    let epoch = stream
        .owner_epoch()
        .map_err(|e| not_served(broker, stream.id(), current_leader_epoch, &e))?;
    check_leader_epoch(current_leader_epoch, epoch)?;
    Ok(epoch)
}

/// The error for a partition whose stream could not be served here. When
/// this node does not own it, a `current_leader_epoch` that disagrees with
/// the owner epoch in metadata is reported first (FENCED_LEADER_EPOCH or
/// UNKNOWN_LEADER_EPOCH), as Kafka checks the epoch before leadership;
/// otherwise the storage error's code (NOT_LEADER_OR_FOLLOWER, …).
pub fn not_served(
    broker: &Broker,
    stream: StreamId,
    current_leader_epoch: i32,
    e: &StorageError,
) -> ResponseError {
    if matches!(e, StorageError::NotOwner(_)) && current_leader_epoch >= 0 {
        let known = broker.meta.read(|s| s.stream(&stream).map(|st| st.owner_epoch));
        if let Some(Err(code)) = known.map(|epoch| check_leader_epoch(current_leader_epoch, epoch)) {
            return code;
        }
    }
    read_storage_error(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epoch_rules() {
        assert_eq!(check_leader_epoch(-1, 5), Ok(()));
        assert_eq!(check_leader_epoch(i32::MIN, 5), Ok(()));
        assert_eq!(check_leader_epoch(5, 5), Ok(()));
        assert_eq!(check_leader_epoch(0, 0), Ok(()));
        assert_eq!(check_leader_epoch(6, 5), Err(ResponseError::UnknownLeaderEpoch));
        assert_eq!(check_leader_epoch(4, 5), Err(ResponseError::FencedLeaderEpoch));
    }

    #[test]
    fn epochs_saturate_on_the_wire() {
        assert_eq!(to_wire(7), 7);
        assert_eq!(to_wire(u64::MAX), i32::MAX);
    }
}
