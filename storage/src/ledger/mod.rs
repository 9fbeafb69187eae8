//! The ledger client side: the one interface through which log writers and
//! readers reach bookies.
//!
//! [`BookieClient`] is implemented in-process by [`crate::bookie::LocalBookie`]
//! and, for clusters, by a network transport speaking the bookie protocol.
//! Writers never touch a `Bookie` directly, so replication slots in behind
//! this trait without changing the log layer.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use distlog_metadata::LedgerId;

use crate::error::Result;

/// Completion of an add: resolves once the entry is durable on the bookie.
pub type AddFuture = futures::future::BoxFuture<'static, Result<()>>;

pub mod handle;
pub mod placement;

/// Index row of one entry: where it sits in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRow {
    /// Entry id (dense from 0 within the ledger).
    pub entry_id: u64,
    /// Sequence id (offset) of the entry's first record.
    pub first_seq: u64,
    /// Number of records in the entry.
    pub record_count: u32,
    /// The stream txid after this entry (non-decreasing).
    pub txid: u64,
    /// Payload length in bytes.
    pub len: u32,
}

/// One stored entry with its payload, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's index row.
    pub row: IndexRow,
    /// The payload, byte-for-byte as added.
    pub payload: Bytes,
}

/// What one bookie holds of one ledger (the unit of a replica report).
///
/// A bookie stores a ledger's entries densely from entry 0 (an add that is
/// not the next entry id is refused), so it holds exactly the entries
/// `0..entries`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerInfo {
    /// Whether the bookie has the ledger at all (an add or a fence
    /// created it).
    pub exists: bool,
    /// Durable entries held: entry ids `0..entries`.
    pub entries: u64,
    /// The last durable entry id (`entries - 1`; None when empty).
    pub last_entry_id: Option<u64>,
    /// Bytes of the ledger's record file covered by durable entries
    /// (payloads plus record headers).
    pub bytes: u64,
    /// Whether the ledger is fenced on this bookie.
    pub fenced: bool,
    /// The LAC the writer last piggybacked to this bookie, if known.
    pub lac: Option<u64>,
}

/// An entry to add: the index row plus the payload in one or more chunks
/// (written with vectored I/O, never concatenated).
#[derive(Debug, Clone)]
pub struct AddRequest {
    /// Target ledger (created implicitly by the add of entry 0).
    pub ledger_id: LedgerId,
    /// Index row; `row.len` must equal the sum of chunk lengths.
    pub row: IndexRow,
    /// The writer's last-add-confirmed, piggybacked (None before any).
    pub lac: Option<u64>,
    /// Payload chunks.
    pub payload: Vec<Bytes>,
    /// A recovery add: the new owner re-replicating an entry past the LAC
    /// during ledger recovery. Accepted by a fenced ledger (fencing stops
    /// the old writer, not recovery), and acknowledged without writing when
    /// the entry is already durable.
    pub recovery: bool,
}

/// Operations a bookie offers to ledger clients. All adds to one ledger
/// come from one writer, in entry-id order; an add's future resolves only
/// after the entry is durable (fsync'd).
#[async_trait]
pub trait BookieClient: Send + Sync + 'static {
    /// The bookie's node id (as recorded in segment ensembles).
    fn bookie_id(&self) -> u32;

    /// Add one entry. NOT an `async fn` on purpose: the add is enqueued
    /// (handed to the bookie's journal, or written to the connection) before
    /// this returns, so adds issued in entry-id order reach the bookie in
    /// that order even while many are in flight (pipelining). The returned
    /// future resolves once the entry is durable. Fails with `Fenced` if the
    /// ledger was fenced, `OutOfOrder` if the entry id is not the next.
    fn add_entry(&self, req: AddRequest) -> AddFuture;

    /// Read entries `first..=last`, stopping early once `max_bytes` is
    /// reached (at least one entry is returned when `first` exists).
    /// Entries past the ledger's end are simply not returned.
    async fn read_entries(
        &self,
        ledger: LedgerId,
        first: u64,
        last: u64,
        max_bytes: usize,
    ) -> Result<Vec<Entry>>;

    /// The entry holding sequence id `seq`: the last entry whose
    /// `first_seq <= seq` (None if every entry starts after `seq` or the
    /// ledger is empty).
    async fn entry_for_seq(&self, ledger: LedgerId, seq: u64) -> Result<Option<IndexRow>>;

    /// The first entry whose txid is `>= txid` (None if there is none).
    async fn entry_for_txid(&self, ledger: LedgerId, txid: u64) -> Result<Option<IndexRow>>;

    /// The last entry stored (None if the ledger is empty or unknown).
    async fn last_entry(&self, ledger: LedgerId) -> Result<Option<IndexRow>>;

    /// Fence the ledger durably: every later add fails with `Fenced`.
    /// Returns the last entry stored. Fencing an unknown ledger creates it
    /// empty and fenced.
    async fn fence(&self, ledger: LedgerId) -> Result<Option<IndexRow>>;

    /// Delete the ledger and free its space. Deleting an unknown ledger is Ok.
    async fn delete(&self, ledger: LedgerId) -> Result<()>;

    /// Long-poll read of the ledger's last-add-confirmed as its writer
    /// piggybacked it on durable adds: returns as soon as the bookie knows a
    /// LAC greater than `known` (any LAC counts when `known` is None), or
    /// after `wait` with the LAC it knows then (possibly None; a zero `wait`
    /// answers at once). Tailing readers use it to learn of new entries
    /// without polling. An unknown ledger is waited on like an empty one.
    async fn read_lac(&self, ledger: LedgerId, known: Option<u64>, wait: Duration) -> Result<Option<u64>>;

    /// What the bookie holds of `ledger` (an unknown ledger is reported
    /// with `exists: false`, not as an error). Cheap: answered from the
    /// in-memory index, no disk read.
    async fn ledger_info(&self, ledger: LedgerId) -> Result<LedgerInfo>;
}
