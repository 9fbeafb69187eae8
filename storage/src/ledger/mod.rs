//! The ledger client side: the one interface through which log writers and
//! readers reach bookies.
//!
//! [`BookieClient`] is implemented in-process by [`crate::bookie::LocalBookie`]
//! and, for clusters, by a network transport speaking the bookie protocol.
//! Writers never touch a `Bookie` directly, so replication slots in behind
//! this trait without changing the log layer.
//!
//! * [`ensemble`]: an ensemble, its quorums, and the striping arithmetic
//!   (which bookies hold which entries).
//! * [`handle`]: the single writer of a ledger ([`handle::LedgerWriter`]),
//!   and (re-exported there) the quorum reads and ledger recovery.
//! * [`read`]: range reads, merging the bookies' stripes in entry order.
//! * [`lookup`]: lookups by sequence id and txid combining every bookie's
//!   answer, and per-bookie ledger infos.
//! * [`recovery`]: fencing and recovering a ledger whose writer died.
//! * [`placement`]: which bookies a new ledger goes to.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use distlog_metadata::{LedgerId, NodeId};

use crate::error::Result;

/// Completion of an add: resolves once the entry is durable on the bookie.
pub type AddFuture = futures::future::BoxFuture<'static, Result<()>>;

pub mod ensemble;
pub mod handle;
pub mod lookup;
pub mod placement;
pub mod read;
pub mod recovery;

/// Index row of one entry: where it sits in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRow {
    /// Entry id (dense from 0 within the ledger; one bookie holds only the
    /// entries of its stripe, see [`ensemble`]).
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
/// A bookie holds the entries of its stripe (the entries whose write set
/// contains it, see [`ensemble`]), and of those always a prefix: every
/// entry of its stripe up to `last_entry_id` and none after (an add that
/// does not follow the bookie's last entry of the stripe is refused). With
/// E = Qw the stripe is the whole ledger, so it holds `0..entries`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerInfo {
    /// Whether the bookie has the ledger at all (an add or a fence
    /// created it).
    pub exists: bool,
    /// How many durable entries it holds (at most `last_entry_id + 1`).
    pub entries: u64,
    /// The highest durable entry id it holds (None when it holds none).
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
    /// Index row; `row.len` must equal the sum of chunk lengths, and
    /// `row.entry_id` must be below `u64::MAX`.
    pub row: IndexRow,
    /// The entry of this ledger the target bookie must hold last for this
    /// add to be accepted: the previous entry of the bookie's stripe
    /// ([`ensemble::Ensemble::prev_in_stripe`]; `entry_id - 1` when E = Qw),
    /// `None` when this is the first entry of its stripe. The bookie
    /// refuses the add with `OutOfOrder` when its last entry differs — the
    /// way a bookie that missed entries it should hold is detected
    /// ([`handle::BookieFault::Behind`]). Always `< row.entry_id`.
    pub prev_entry_id: Option<u64>,
    /// The writer's last-add-confirmed, piggybacked (None before any).
    pub lac: Option<u64>,
    /// Payload chunks.
    pub payload: Vec<Bytes>,
    /// A recovery add: the new owner re-replicating an entry during ledger
    /// recovery ([`recovery`]). Accepted by a fenced ledger (fencing stops
    /// the old writer, not recovery), and acknowledged without writing when
    /// the bookie already holds the entry; otherwise it must follow the
    /// bookie's last entry (`prev_entry_id`) like any add.
    pub recovery: bool,
}

/// What is impossible about an add's ordering fields, if anything: entry
/// ids stay below `u64::MAX` (the wire's "no entry"), and the previous
/// entry of the bookie's stripe is below the entry. The one check of the
/// encoder, the decoder and the bookie, so all three refuse the same adds.
pub fn order_problem(entry_id: u64, prev_entry_id: Option<u64>) -> Option<String> {
    if entry_id == u64::MAX {
        Some(format!("entry id {entry_id} is reserved"))
    } else if prev_entry_id.is_some_and(|p| p >= entry_id) {
        Some(format!(
            "entry {entry_id} cannot follow entry {prev_entry_id:?} (the previous entry must be lower)"
        ))
    } else {
        None
    }
}

/// Operations a bookie offers to ledger clients. All adds to one ledger
/// come from one writer, in entry-id order; an add's future resolves only
/// after the entry is durable (fsync'd).
#[async_trait]
pub trait BookieClient: Send + Sync + 'static {
    /// The bookie's node id (as recorded in segment ensembles).
    fn bookie_id(&self) -> NodeId;

    /// Add one entry. NOT an `async fn` on purpose: the add is enqueued
    /// (handed to the bookie's group committer, or written to the connection) before
    /// this returns, so adds issued in entry-id order reach the bookie in
    /// that order even while many are in flight (pipelining). The returned
    /// future resolves once the entry is durable. Fails with `Fenced` if the
    /// ledger was fenced, `OutOfOrder` if the bookie's last entry of the
    /// ledger is not `req.prev_entry_id`.
    fn add_entry(&self, req: AddRequest) -> AddFuture;

    /// Read the entries this bookie holds among `first..=last`, in entry-id
    /// order, stopping early once `max_bytes` is reached (at least one
    /// entry is returned when the bookie holds any in the range). Entries
    /// it does not hold (other stripes, past its end) are simply not
    /// returned; [`read::read_entries`] merges the bookies' answers.
    async fn read_entries(
        &self,
        ledger: LedgerId,
        first: u64,
        last: u64,
        max_bytes: usize,
    ) -> Result<Vec<Entry>>;

    /// Among the entries this bookie holds, the last whose
    /// `first_seq <= seq` (None if every one starts after `seq` or it holds
    /// none). [`lookup::entry_for_seq`] combines the bookies' answers.
    async fn entry_for_seq(&self, ledger: LedgerId, seq: u64) -> Result<Option<IndexRow>>;

    /// Among the entries this bookie holds, the first whose txid is
    /// `>= txid` (None if there is none). [`lookup::entry_for_txid`]
    /// combines the bookies' answers.
    async fn entry_for_txid(&self, ledger: LedgerId, txid: u64) -> Result<Option<IndexRow>>;

    /// The last entry this bookie stores (None if it holds none). With
    /// striping this is the last entry of its stripe, not necessarily the
    /// ledger's last entry.
    async fn last_entry(&self, ledger: LedgerId) -> Result<Option<IndexRow>>;

    /// Fence the ledger durably: every later add fails with `Fenced`.
    /// Returns the last entry this bookie stores (see `last_entry`).
    /// Fencing an unknown ledger creates it empty and fenced.
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
