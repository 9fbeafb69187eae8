//! The Raft log, vote and commit point, persisted in sled.
//!
//! Durability: `append` fsyncs before signalling the flush callback, and
//! `save_vote` fsyncs before returning, as Raft's safety requires.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader, Vote};

use super::{blocking, decode, encode, io_err, SledStore};
use crate::typ::{LogId, NodeId, StorageError, TypeConfig};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

type Entry = openraft::Entry<TypeConfig>;

/// Log storage of the metadata quorum; also its own log reader
/// (cloning is cheap and shares the database).
#[derive(Clone)]
pub struct LogStore {
    sled: Arc<SledStore>,
}

impl LogStore {
    /// A log store over the given database.
    pub fn new(sled: Arc<SledStore>) -> Self {
        Self { sled }
    }

    async fn read_meta<T>(
        &self,
        key: &'static [u8],
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<T>, StorageError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let sled = self.sled.clone();
        blocking(subject.clone(), ErrorVerb::Read, move || {
            match sled
                .raft_meta
                .get(key)
                .map_err(|e| io_err(subject.clone(), ErrorVerb::Read, &e))?
            {
                Some(bytes) => Ok(Some(decode(subject, &bytes)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn write_meta<T: serde::Serialize>(
        &self,
        key: &'static [u8],
        value: &T,
        subject: ErrorSubject<NodeId>,
        durable: bool,
    ) -> Result<(), StorageError> {
        let bytes = encode(subject.clone(), value)?;
        let sled = self.sled.clone();
        blocking(subject.clone(), ErrorVerb::Write, move || {
            let werr = |e: sled::Error| io_err(subject.clone(), ErrorVerb::Write, &e);
            sled.raft_meta.insert(key, bytes).map_err(werr)?;
            if durable {
                sled.flush().map_err(werr)?;
            }
            Ok(())
        })
        .await
    }
}

fn index_bound(b: Bound<&u64>) -> Bound<[u8; 8]> {
    match b {
        Bound::Included(i) => Bound::Included(i.to_be_bytes()),
        Bound::Excluded(i) => Bound::Excluded(i.to_be_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds = (index_bound(range.start_bound()), index_bound(range.end_bound()));
        let sled = self.sled.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Read, move || {
            let mut out = Vec::new();
            for item in sled.log.range::<[u8; 8], _>(bounds) {
                let (_, value) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
                out.push(decode::<Entry>(ErrorSubject::Logs, &value)?);
            }
            Ok(out)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.read_meta(KEY_LAST_PURGED, ErrorSubject::Logs).await?;
        let sled = self.sled.clone();
        let last_entry = blocking(ErrorSubject::Logs, ErrorVerb::Read, move || {
            match sled
                .log
                .last()
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?
            {
                Some((_, value)) => Ok(Some(decode::<Entry>(ErrorSubject::Logs, &value)?.log_id)),
                None => Ok(None),
            }
        })
        .await?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last_entry.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.write_meta(KEY_VOTE, vote, ErrorSubject::Vote, true).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.read_meta(KEY_VOTE, ErrorSubject::Vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsynced: a lost commit point is re-established by the leader.
        self.write_meta(KEY_COMMITTED, &committed, ErrorSubject::Store, false)
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .read_meta::<Option<LogId>>(KEY_COMMITTED, ErrorSubject::Store)
            .await?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            batch.insert(
                &entry.log_id.index.to_be_bytes(),
                encode(ErrorSubject::Logs, &entry)?,
            );
        }
        let sled = self.sled.clone();
        let res = blocking(ErrorSubject::Logs, ErrorVerb::Write, move || {
            let werr = |e: sled::Error| io_err(ErrorSubject::Logs, ErrorVerb::Write, &e);
            sled.log.apply_batch(batch).map_err(werr)?;
            sled.flush().map_err(werr)
        })
        .await;
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating metadata raft log");
        let sled = self.sled.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || {
            let derr = |e: sled::Error| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e);
            let mut batch = sled::Batch::default();
            for item in sled.log.range(log_id.index.to_be_bytes()..) {
                batch.remove(item.map_err(derr)?.0);
            }
            sled.log.apply_batch(batch).map_err(derr)?;
            sled.flush().map_err(derr)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging metadata raft log");
        // Record the purge point first: a crash between the two steps leaves
        // extra entries below it, which are ignored.
        self.write_meta(KEY_LAST_PURGED, &log_id, ErrorSubject::Logs, true)
            .await?;
        let sled = self.sled.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || {
            let derr = |e: sled::Error| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e);
            let mut batch = sled::Batch::default();
            for item in sled.log.range(..=log_id.index.to_be_bytes()) {
                batch.remove(item.map_err(derr)?.0);
            }
            sled.log.apply_batch(batch).map_err(derr)
        })
        .await
    }
}
