//! The Raft state machine: the in-memory [`MetaState`] shared with the
//! client, plus snapshots persisted in sled.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, Snapshot};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{blocking, decode, encode, io_err, SledStore};
use crate::error::MetadataError;
use crate::metrics;
use crate::model::{
    ApplyResult, BrokerInfo, CommandResponse, DynamicBrokerConfigs, MetaEvent, MetaState, StreamMeta,
    TopicMeta,
};
use crate::typ::{LogId, NodeId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

const KEY_SNAPSHOT: &[u8] = b"snapshot";

type Entry = openraft::Entry<TypeConfig>;

/// A snapshot as persisted: openraft's metadata plus the serialised
/// [`MetaState`] (JSON).
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

impl StoredSnapshot {
    fn into_snapshot(self) -> Snapshot<TypeConfig> {
        Snapshot {
            meta: self.meta,
            snapshot: Box::new(Cursor::new(self.data)),
        }
    }
}

/// The JSON form of a [`MetaState`] in a snapshot. JSON map keys must be
/// strings, so the streams map (keyed by a struct) is stored as a list; each
/// [`StreamMeta`] carries its own id.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    cluster_id: String,
    brokers: BTreeMap<NodeId, BrokerInfo>,
    topics: BTreeMap<String, TopicMeta>,
    streams: Vec<StreamMeta>,
    next_ledger_id: u64,
    next_producer_id: u64,
    #[serde(default)]
    groups: BTreeMap<String, crate::consumer_group::GroupMeta>,
    /// Absent from snapshots written before dynamic broker configs existed
    /// (and from any without one).
    #[serde(default, skip_serializing_if = "DynamicBrokerConfigs::is_empty")]
    broker_configs: DynamicBrokerConfigs,
    /// Absent from snapshots written before transactions existed (and from
    /// any without one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    transactions: BTreeMap<String, crate::transaction::TxnMeta>,
    /// Absent from snapshots written before group claims existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    group_claims: BTreeMap<String, crate::consumer_group::GroupClaim>,
    #[serde(default)]
    last_group_claim: u64,
}

fn encode_state(state: &MetaState) -> Result<Vec<u8>, StorageError> {
    let body = SnapshotBody {
        cluster_id: state.cluster_id.clone(),
        brokers: state.brokers.clone(),
        topics: state.topics.clone(),
        streams: state.streams.values().cloned().collect(),
        next_ledger_id: state.next_ledger_id,
        next_producer_id: state.next_producer_id,
        groups: state.groups.clone(),
        broker_configs: state.broker_configs.clone(),
        transactions: state.transactions.clone(),
        group_claims: state.group_claims.clone(),
        last_group_claim: state.last_group_claim,
    };
    encode(ErrorSubject::Snapshot(None), &body)
}

fn decode_state(bytes: &[u8]) -> Result<MetaState, StorageError> {
    let body: SnapshotBody = decode(ErrorSubject::Snapshot(None), bytes)?;
    Ok(MetaState {
        cluster_id: body.cluster_id,
        brokers: body.brokers,
        topics: body.topics,
        streams: body.streams.into_iter().map(|s| (s.id, s)).collect(),
        next_ledger_id: body.next_ledger_id,
        next_producer_id: body.next_producer_id,
        groups: body.groups,
        broker_configs: body.broker_configs,
        transactions: body.transactions,
        group_claims: body.group_claims,
        last_group_claim: body.last_group_claim,
    })
}

/// A state through its snapshot encoding and back (tests of what
/// snapshots keep).
#[cfg(test)]
pub(crate) fn roundtrip_state_for_tests(state: &MetaState) -> MetaState {
    let bytes = encode_state(state).expect("state encodes");
    decode_state(&bytes).expect("state decodes")
}

fn snap_err<E: std::error::Error + 'static>(verb: ErrorVerb, e: &E) -> StorageError {
    io_err(ErrorSubject::Snapshot(None), verb, e)
}

fn load_snapshot(sled: &SledStore) -> Result<Option<StoredSnapshot>, StorageError> {
    match sled
        .state_machine
        .get(KEY_SNAPSHOT)
        .map_err(|e| snap_err(ErrorVerb::Read, &e))?
    {
        Some(bytes) => Ok(Some(decode(ErrorSubject::Snapshot(None), &bytes)?)),
        None => Ok(None),
    }
}

/// Persist `snap` (fsynced) unless a snapshot at least as recent is stored.
fn store_snapshot(sled: &SledStore, snap: &StoredSnapshot) -> Result<(), StorageError> {
    if let Some(existing) = load_snapshot(sled)? {
        if existing.meta.last_log_id > snap.meta.last_log_id {
            return Ok(());
        }
    }
    let bytes = encode(ErrorSubject::Snapshot(None), snap)?;
    sled.state_machine
        .insert(KEY_SNAPSHOT, bytes)
        .map_err(|e| snap_err(ErrorVerb::Write, &e))?;
    sled.flush().map_err(|e| snap_err(ErrorVerb::Write, &e))
}

/// State machine storage of the metadata quorum.
pub struct StateMachineStore {
    sled: Arc<SledStore>,
    state: Arc<RwLock<MetaState>>,
    events: broadcast::Sender<MetaEvent>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

impl StateMachineStore {
    /// Load the latest snapshot (blocking: call from the blocking pool) and
    /// build the state machine over it. `state` is overwritten with the
    /// snapshot's state.
    pub fn open(
        sled: Arc<SledStore>,
        state: Arc<RwLock<MetaState>>,
        events: broadcast::Sender<MetaEvent>,
    ) -> Result<Self, MetadataError> {
        let snapshot = load_snapshot(&sled).map_err(|e| {
            MetadataError::Codec(format!(
                "cannot load the metadata snapshot ({e}); the data directory may be corrupt"
            ))
        })?;
        let (last_applied, membership) = match snapshot {
            Some(snap) => {
                let restored = decode_state(&snap.data).map_err(|e| {
                    MetadataError::Codec(format!(
                        "cannot decode the metadata snapshot ({e}); the data directory may be corrupt"
                    ))
                })?;
                tracing::info!(last_log_id = ?snap.meta.last_log_id, "metadata state restored from snapshot");
                *state.write() = restored;
                (snap.meta.last_log_id, snap.meta.last_membership)
            }
            None => (None, StoredMembership::default()),
        };
        metrics::LAST_APPLIED_INDEX.set(last_applied.map_or(0, |l| l.index as i64));
        Ok(Self {
            sled,
            state,
            events,
            last_applied,
            membership,
        })
    }
}

/// Builds a snapshot from a consistent copy of the state taken when the
/// builder was created.
pub struct SnapshotBuilder {
    sled: Arc<SledStore>,
    state: MetaState,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = encode_state(&self.state)?;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, uuid::Uuid::new_v4()),
            None => format!("empty-{}", uuid::Uuid::new_v4()),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            data,
        };
        let sled = self.sled.clone();
        let stored = blocking(ErrorSubject::Snapshot(None), ErrorVerb::Write, move || {
            store_snapshot(&sled, &stored)?;
            Ok(stored)
        })
        .await?;
        metrics::SNAPSHOTS_BUILT.inc();
        tracing::info!(last_log_id = ?stored.meta.last_log_id, bytes = stored.data.len(), "metadata snapshot built");
        Ok(stored.into_snapshot())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        for entry in entries {
            let result = match &entry.payload {
                EntryPayload::Blank => Ok(CommandResponse::Ok),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    Ok(CommandResponse::Ok)
                }
                EntryPayload::Normal(cmd) => {
                    let (result, events) = crate::state_machine::apply(&mut self.state.write(), cmd);
                    if let Err(e) = &result {
                        metrics::APPLY_REFUSALS.inc();
                        tracing::debug!(index = entry.log_id.index, error = %e, "metadata command refused");
                    }
                    for event in events {
                        // No subscriber is not an error.
                        let _ = self.events.send(event);
                    }
                    result
                }
            };
            self.last_applied = Some(entry.log_id);
            results.push(result);
        }
        metrics::LAST_APPLIED_INDEX.set(self.last_applied.map_or(0, |l| l.index as i64));
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            sled: self.sled.clone(),
            state: self.state.read().clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        let restored = decode_state(&stored.data)?;
        let sled = self.sled.clone();
        blocking(ErrorSubject::Snapshot(None), ErrorVerb::Write, move || {
            store_snapshot(&sled, &stored)
        })
        .await?;
        // Subscribers get no per-change events for a snapshot install; they
        // must re-read the state (only followers install snapshots).
        *self.state.write() = restored;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        metrics::LAST_APPLIED_INDEX.set(self.last_applied.map_or(0, |l| l.index as i64));
        tracing::info!(last_log_id = ?meta.last_log_id, "metadata snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let sled = self.sled.clone();
        let stored = blocking(ErrorSubject::Snapshot(None), ErrorVerb::Read, move || {
            load_snapshot(&sled)
        })
        .await?;
        Ok(stored.map(StoredSnapshot::into_snapshot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_keep_dynamic_broker_configs_and_omit_them_when_unset() {
        let mut st = MetaState::default();
        let empty = encode_state(&st).expect("encode");
        assert!(!String::from_utf8_lossy(&empty).contains("broker_configs"));
        assert_eq!(decode_state(&empty).expect("decode"), st);
        st.broker_configs
            .cluster
            .insert("log.retention.ms".into(), "1000".into());
        st.broker_configs.brokers.insert(
            crate::NodeId::new(2),
            BTreeMap::from([("log.segment.bytes".to_string(), "4096".to_string())]),
        );
        let bytes = encode_state(&st).expect("encode");
        assert_eq!(decode_state(&bytes).expect("decode"), st);
    }
}
