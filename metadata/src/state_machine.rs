//! The pure, deterministic command semantics of the metadata state machine.
//!
//! [`apply`] is the only place a [`Command`] changes a [`MetaState`]. It does
//! no I/O and reads no clock, so every replica that applies the same log
//! reaches the same state and the same outcome (including refusals, which are
//! part of the replicated result). The Raft glue in [`crate::store`] calls it
//! for every normal log entry.

use crate::model::{
    ApplyError, ApplyResult, BrokerInfo, Command, CommandResponse, LedgerId, MetaEvent, MetaState,
    ReleasedLedger, SegmentMeta, SegmentSeal, SegmentState, StreamId, StreamMeta,
};

/// Apply one command to `state`.
///
/// Returns the replicated outcome and the change notifications to publish.
/// A refused command leaves `state` untouched and yields no event.
pub fn apply(state: &mut MetaState, cmd: &Command) -> (ApplyResult, Vec<MetaEvent>) {
    let mut events = Vec::new();
    let result = apply_inner(state, cmd, &mut events);
    if result.is_err() {
        events.clear();
    }
    (result, events)
}

fn apply_inner(state: &mut MetaState, cmd: &Command, events: &mut Vec<MetaEvent>) -> ApplyResult {
    match cmd {
        Command::InitCluster { cluster_id } => {
            if state.cluster_id.is_empty() {
                state.cluster_id = cluster_id.clone();
            }
            Ok(CommandResponse::Ok)
        }
        Command::RegisterBroker(info) => register_broker(state, info, events),
        Command::CreateTopic {
            name,
            id,
            partitions,
            configs,
            created_ms,
        } => {
            if name.is_empty() {
                return Err(ApplyError::Invalid("topic name must not be empty".into()));
            }
            if *partitions == 0 {
                return Err(ApplyError::Invalid(format!(
                    "topic '{name}' must have at least one partition"
                )));
            }
            if state.topics.contains_key(name) {
                return Err(ApplyError::TopicExists(name.clone()));
            }
            if let Some(other) = state.topic_by_id(id) {
                return Err(ApplyError::Invalid(format!(
                    "topic id {id} is already used by topic '{}'",
                    other.name
                )));
            }
            let topic = crate::model::TopicMeta {
                name: name.clone(),
                id: *id,
                partitions: *partitions,
                configs: configs.clone(),
                created_ms: *created_ms,
            };
            add_streams(state, &topic, 0..*partitions);
            state.topics.insert(name.clone(), topic);
            events.push(MetaEvent::TopicCreated {
                name: name.clone(),
                id: *id,
            });
            Ok(CommandResponse::Ok)
        }
        Command::DeleteTopic { name } => {
            let topic = state
                .topics
                .remove(name)
                .ok_or_else(|| ApplyError::UnknownTopic(name.clone()))?;
            let mut released = Vec::new();
            for partition in 0..topic.partitions {
                if let Some(stream) = state.streams.remove(&topic.stream(partition)) {
                    released.extend(
                        stream
                            .segments
                            .iter()
                            .map(|s| ReleasedLedger::of(s, stream.owner)),
                    );
                }
            }
            crate::consumer_group::forget_topic(state, name);
            let gone: Vec<StreamId> = (0..topic.partitions).map(|p| topic.stream(p)).collect();
            crate::transaction::forget_streams(state, &gone, events);
            let ledgers = released.iter().map(|r| r.ledger_id).collect();
            events.push(MetaEvent::TopicDeleted {
                name: name.clone(),
                id: topic.id,
                ledgers: released,
            });
            Ok(CommandResponse::ReleasedLedgers(ledgers))
        }
        Command::AlterTopicConfigs { name, configs } => {
            let topic = state
                .topics
                .get_mut(name)
                .ok_or_else(|| ApplyError::UnknownTopic(name.clone()))?;
            topic.configs = configs.clone();
            events.push(MetaEvent::TopicConfigsChanged { name: name.clone() });
            Ok(CommandResponse::Ok)
        }
        Command::AllocateLedgerId => {
            let id: LedgerId = state.next_ledger_id.max(1);
            state.next_ledger_id = id
                .checked_add(1)
                .ok_or_else(|| ApplyError::Invalid("ledger id space exhausted".into()))?;
            Ok(CommandResponse::LedgerId(id))
        }
        Command::AllocateProducerIds { count } => {
            if *count == 0 {
                return Err(ApplyError::Invalid(
                    "producer id block size must be positive".into(),
                ));
            }
            let first = state.next_producer_id;
            state.next_producer_id = first
                .checked_add(*count)
                .ok_or_else(|| ApplyError::Invalid("producer id space exhausted".into()))?;
            Ok(CommandResponse::ProducerId(first))
        }
        Command::AcquireStream {
            stream,
            owner,
            expected_epoch,
        } => {
            let meta = stream_mut(state, stream)?;
            if let Some(given) = expected_epoch {
                check_epoch(meta, *given)?;
            }
            meta.owner_epoch += 1;
            meta.owner = Some(*owner);
            events.push(MetaEvent::StreamOwnerChanged {
                stream: *stream,
                owner: *owner,
                epoch: meta.owner_epoch,
            });
            Ok(CommandResponse::Epoch(meta.owner_epoch))
        }
        Command::AddSegment {
            stream,
            owner_epoch,
            segment,
        } => add_segment(state, stream, *owner_epoch, segment, events),
        Command::CompleteSegment {
            stream,
            owner_epoch,
            seal:
                SegmentSeal {
                    lssn,
                    last_offset,
                    end_txid,
                    last_entry_id,
                    size_bytes,
                },
        } => {
            let meta = stream_mut(state, stream)?;
            check_epoch(meta, *owner_epoch)?;
            let seg = meta
                .segments
                .iter_mut()
                .find(|s| s.lssn == *lssn)
                .ok_or_else(|| conflict(stream, format!("no segment with lssn {lssn}")))?;
            if seg.state != SegmentState::InProgress {
                return Err(conflict(stream, format!("segment {lssn} is already completed")));
            }
            seg.last_offset = *last_offset;
            seg.end_txid = *end_txid;
            seg.last_entry_id = *last_entry_id;
            seg.size_bytes = *size_bytes;
            seg.state = SegmentState::Completed;
            events.push(MetaEvent::SegmentCompleted {
                stream: *stream,
                lssn: *lssn,
            });
            Ok(CommandResponse::Ok)
        }
        Command::RollSegment {
            stream,
            owner_epoch,
            seal,
            next,
        } => {
            let lssn = &seal.lssn;
            // Check every precondition of both halves before changing
            // anything, so a refusal leaves the state untouched.
            {
                let meta = stream_mut(state, stream)?;
                check_epoch(meta, *owner_epoch)?;
                match meta.segments.last() {
                    Some(last) if last.lssn == *lssn && last.state == SegmentState::InProgress => {}
                    _ => {
                        return Err(conflict(
                            stream,
                            format!("segment {lssn} is not the in-progress last segment"),
                        ))
                    }
                }
                check_new_segment(meta, stream, next)?;
            }
            apply_inner(
                state,
                &Command::CompleteSegment {
                    stream: *stream,
                    owner_epoch: *owner_epoch,
                    seal: *seal,
                },
                events,
            )?;
            add_segment(state, stream, *owner_epoch, next, events)
        }
        Command::TruncateStream {
            stream,
            log_start_offset,
        } => {
            let meta = stream_mut(state, stream)?;
            let new_start = meta.log_start_offset.max(*log_start_offset);
            let drop_count = meta
                .segments
                .iter()
                .take_while(|s| s.state == SegmentState::Completed && s.next_offset() <= new_start)
                .count();
            let owner = meta.owner;
            let released: Vec<ReleasedLedger> = meta
                .segments
                .drain(..drop_count)
                .map(|s| ReleasedLedger::of(&s, owner))
                .collect();
            let ledgers: Vec<LedgerId> = released.iter().map(|r| r.ledger_id).collect();
            let moved = new_start != meta.log_start_offset;
            meta.log_start_offset = new_start;
            if moved || !released.is_empty() {
                events.push(MetaEvent::StreamTruncated {
                    stream: *stream,
                    log_start_offset: new_start,
                    ledgers: released,
                });
            }
            Ok(CommandResponse::ReleasedLedgers(ledgers))
        }
        Command::Groups(ops) => {
            crate::consumer_group::apply_group_ops(state, ops);
            Ok(CommandResponse::Ok)
        }
        Command::ClaimGroup { group, node } => Ok(CommandResponse::GroupClaim(
            crate::consumer_group::claim_group(state, group, *node),
        )),
        Command::ClaimedGroups(ops) => Ok(CommandResponse::GroupsFenced(
            crate::consumer_group::apply_claimed_group_ops(state, ops),
        )),
        Command::Txn(op) => crate::transaction::apply_txn_op(state, op, events).map_err(ApplyError::Txn),
        Command::CreatePartitions { name, id, partitions } => {
            let topic = match state.topics.get(name) {
                Some(t) if t.id == *id => t.clone(),
                _ => return Err(ApplyError::UnknownTopic(name.clone())),
            };
            if *partitions <= topic.partitions {
                return Err(ApplyError::Invalid(format!(
                    "topic '{name}' has {} partition(s); {partitions} would not be an increase",
                    topic.partitions
                )));
            }
            add_streams(state, &topic, topic.partitions..*partitions);
            if let Some(t) = state.topics.get_mut(name) {
                t.partitions = *partitions;
            }
            events.push(MetaEvent::PartitionsCreated {
                name: name.clone(),
                id: *id,
                from: topic.partitions,
                to: *partitions,
            });
            Ok(CommandResponse::Ok)
        }
        Command::AlterBrokerConfigs { broker, configs } => {
            let dynamic = &mut state.broker_configs;
            match broker {
                None => dynamic.cluster = configs.clone(),
                Some(id) if configs.is_empty() => {
                    dynamic.brokers.remove(id);
                }
                Some(id) => {
                    dynamic.brokers.insert(*id, configs.clone());
                }
            }
            events.push(MetaEvent::BrokerConfigsChanged { broker: *broker });
            Ok(CommandResponse::Ok)
        }
    }
}

/// Add the empty, unowned streams of `topic`'s partitions in `range`.
fn add_streams(state: &mut MetaState, topic: &crate::model::TopicMeta, range: std::ops::Range<u32>) {
    for partition in range {
        let sid = topic.stream(partition);
        state.streams.insert(
            sid,
            StreamMeta {
                id: sid,
                topic: topic.name.clone(),
                owner: None,
                owner_epoch: 0,
                log_start_offset: 0,
                segments: Vec::new(),
                next_lssn: 1,
            },
        );
    }
}

fn register_broker(state: &mut MetaState, info: &BrokerInfo, events: &mut Vec<MetaEvent>) -> ApplyResult {
    state.brokers.insert(info.id, info.clone());
    events.push(MetaEvent::BrokerRegistered { id: info.id });
    Ok(CommandResponse::Ok)
}

fn add_segment(
    state: &mut MetaState,
    stream: &StreamId,
    owner_epoch: u64,
    segment: &SegmentMeta,
    events: &mut Vec<MetaEvent>,
) -> ApplyResult {
    let meta = stream_mut(state, stream)?;
    check_epoch(meta, owner_epoch)?;
    check_new_segment(meta, stream, segment)?;
    if let Some(last) = meta.segments.last() {
        if last.state != SegmentState::Completed {
            return Err(conflict(
                stream,
                format!("previous segment {} is still in progress", last.lssn),
            ));
        }
    }
    // The segment belongs to the epoch that added it, whatever the caller
    // put in the field: the epoch was just checked to be current.
    meta.segments.push(SegmentMeta {
        owner_epoch,
        ..segment.clone()
    });
    meta.next_lssn += 1;
    events.push(MetaEvent::SegmentAdded {
        stream: *stream,
        lssn: segment.lssn,
    });
    Ok(CommandResponse::Ok)
}

/// A new segment must be InProgress and carry the stream's next LSSN.
fn check_new_segment(meta: &StreamMeta, stream: &StreamId, segment: &SegmentMeta) -> Result<(), ApplyError> {
    if segment.state != SegmentState::InProgress {
        return Err(ApplyError::Invalid(format!(
            "stream {stream}: a new segment must be InProgress"
        )));
    }
    if segment.lssn != meta.next_lssn {
        return Err(conflict(
            stream,
            format!(
                "segment lssn {} but the next lssn is {}",
                segment.lssn, meta.next_lssn
            ),
        ));
    }
    Ok(())
}

fn stream_mut<'a>(state: &'a mut MetaState, stream: &StreamId) -> Result<&'a mut StreamMeta, ApplyError> {
    state
        .streams
        .get_mut(stream)
        .ok_or(ApplyError::UnknownStream(*stream))
}

fn check_epoch(meta: &StreamMeta, given: u64) -> Result<(), ApplyError> {
    if given != meta.owner_epoch {
        return Err(ApplyError::EpochMismatch {
            stream: meta.id,
            given,
            current: meta.owner_epoch,
        });
    }
    Ok(())
}

fn conflict(stream: &StreamId, reason: String) -> ApplyError {
    ApplyError::SegmentConflict {
        stream: *stream,
        reason,
    }
}

#[cfg(test)]
#[path = "state_machine_tests.rs"]
mod tests;
