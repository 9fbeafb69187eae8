//! The model's bounds and its striping tables. The tables are computed once
//! from the real [`Ensemble`] (`storage/src/ledger/ensemble.rs`), so the
//! model uses the production write-set, `prev_in_stripe`, stripe and
//! coverage arithmetic rather than a re-derivation of it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use distlog_metadata::{LedgerId, NodeId};
use distlog_storage::ledger::ensemble::Ensemble;
use distlog_storage::ledger::{AddFuture, AddRequest, BookieClient, Entry, IndexRow, LedgerInfo};
use distlog_storage::{Result, StorageError};

/// Bookies in the ensemble (E).
pub const BOOKIES: usize = 3;
/// Owner processes (nodes that can acquire the stream).
pub const PROCS: usize = 2;
/// Most segments (one ledger each) the model can hold.
pub const MAX_LEDGERS: usize = 3;
/// Most entries per ledger (entry bitmasks are `u8`).
pub const MAX_ENTRIES: usize = 4;

/// A deliberately broken rule, to show the checker finds what it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// The protocol as implemented.
    None,
    /// Recovery proceeds with one fenced member per write set fewer than
    /// `coverage_quorum` (`Qw - Qa`, at least one bookie overall).
    FenceTooFew,
    /// Bookies ignore the fence for writer adds (`GroupCommitter::validate`
    /// without its `fenced && !recovery` check).
    AcceptAfterFence,
    /// Recovery never re-replicates: it seals at the candidate end without
    /// copying entries to lacking fenced members or checking `Qa`.
    NoReReplication,
}

/// Bounds and quorum sizes of one model run.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Write quorum (E is always 3).
    pub qw: usize,
    /// Ack quorum.
    pub qa: usize,
    /// Entries a writer may issue in the first ledger.
    pub entries: u8,
    /// Entries a writer may issue in each later ledger.
    pub later_entries: u8,
    /// Most owner epochs (acquisitions) in a run.
    pub epochs: u8,
    /// Most segments (ledgers) in a run.
    pub ledgers: u8,
    /// Fault budget: message drops, late answers (timeouts while the
    /// request or answer is still in flight), bookie crashes.
    pub faults: u8,
    /// Requests of one process to one bookie arrive in issue order (one TCP
    /// connection) when true; any order when false.
    pub fifo: bool,
    /// BFS depth bound (transitions from the initial state).
    pub max_depth: u32,
    /// The broken rule, if any.
    pub broken: Broken,
}

/// Per-shape tables, from the real `Ensemble`.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The run's bounds.
    pub cfg: Config,
    /// Write set of each entry, as a bookie bitmask.
    pub ws: [u8; MAX_ENTRIES],
    /// `prev_in_stripe(bookie, entry)`.
    pub prev: [[Option<u8>; MAX_ENTRIES]; BOOKIES],
    /// For a fenced bookie whose last entry is `last` (index 0 = none,
    /// `k + 1` = entry k): the lowest entry of its stripe it lacks.
    pub first_lack: [[u8; MAX_ENTRIES + 1]; BOOKIES],
    /// `covers_every_write_set(coverage_quorum, fenced)` per fenced mask.
    pub covers: [bool; 1 << BOOKIES],
    /// Failures an add survives: `Qw - Qa`.
    pub can_fail: u32,
}

/// A bookie that is never called: only its place in the ensemble counts.
struct Slot(NodeId);

#[async_trait]
impl BookieClient for Slot {
    fn bookie_id(&self) -> NodeId {
        self.0
    }
    fn add_entry(&self, _req: AddRequest) -> AddFuture {
        Box::pin(async { Err(StorageError::ShuttingDown) })
    }
    async fn read_entries(&self, _l: LedgerId, _f: u64, _t: u64, _m: usize) -> Result<Vec<Entry>> {
        Err(StorageError::ShuttingDown)
    }
    async fn entry_for_seq(&self, _l: LedgerId, _s: u64) -> Result<Option<IndexRow>> {
        Err(StorageError::ShuttingDown)
    }
    async fn entry_for_txid(&self, _l: LedgerId, _t: u64) -> Result<Option<IndexRow>> {
        Err(StorageError::ShuttingDown)
    }
    async fn last_entry(&self, _l: LedgerId) -> Result<Option<IndexRow>> {
        Err(StorageError::ShuttingDown)
    }
    async fn fence(&self, _l: LedgerId) -> Result<Option<IndexRow>> {
        Err(StorageError::ShuttingDown)
    }
    async fn delete(&self, _l: LedgerId) -> Result<()> {
        Err(StorageError::ShuttingDown)
    }
    async fn read_lac(&self, _l: LedgerId, _k: Option<u64>, _w: Duration) -> Result<Option<u64>> {
        Err(StorageError::ShuttingDown)
    }
    async fn ledger_info(&self, _l: LedgerId) -> Result<LedgerInfo> {
        Err(StorageError::ShuttingDown)
    }
}

fn small(v: u64) -> u8 {
    u8::try_from(v.min(u64::from(u8::MAX))).expect("clamped")
}

impl Shape {
    /// The tables for `cfg` (E = 3), from the real ensemble arithmetic.
    pub fn new(cfg: Config) -> Shape {
        assert!(usize::from(cfg.entries.max(cfg.later_entries)) <= MAX_ENTRIES);
        assert!(usize::from(cfg.ledgers) <= MAX_LEDGERS);
        let bookies = (1..=BOOKIES as u64)
            .map(|i| Arc::new(Slot(NodeId::new(i))) as Arc<dyn BookieClient>)
            .collect();
        let en = Ensemble::new(bookies, cfg.qw, cfg.qa).expect("valid ensemble");
        let mut ws = [0u8; MAX_ENTRIES];
        let mut prev = [[None; MAX_ENTRIES]; BOOKIES];
        for (e, w) in ws.iter_mut().enumerate() {
            *w = en.write_set(e as u64).fold(0, |m, i| m | 1 << i);
            for (b, p) in prev.iter_mut().enumerate() {
                p[e] = en.prev_in_stripe(b, e as u64).map(small);
            }
        }
        let mut first_lack = [[0u8; MAX_ENTRIES + 1]; BOOKIES];
        for (b, row) in first_lack.iter_mut().enumerate() {
            // As `Walk::run` computes `from`.
            row[0] = small(en.nth_in_stripe(b, 0));
            for last in 0..MAX_ENTRIES as u64 {
                row[last as usize + 1] = small(en.nth_in_stripe(b, en.stripe_count(b, last + 1)));
            }
        }
        let quorum = match cfg.broken {
            Broken::FenceTooFew => en.coverage_quorum().saturating_sub(1).max(1),
            _ => en.coverage_quorum(),
        };
        let mut covers = [false; 1 << BOOKIES];
        for (mask, c) in covers.iter_mut().enumerate() {
            *c = if cfg.broken == Broken::FenceTooFew && en.coverage_quorum() == 1 {
                mask != 0
            } else {
                en.covers_every_write_set(quorum, |i| mask & (1 << i) != 0)
            };
        }
        Shape {
            cfg,
            ws,
            prev,
            first_lack,
            covers,
            can_fail: (cfg.qw - cfg.qa) as u32,
        }
    }

    /// Entries a writer may issue in `ledger`.
    pub fn entries(&self, ledger: u8) -> u8 {
        if ledger == 0 {
            self.cfg.entries
        } else {
            self.cfg.later_entries
        }
    }

    /// Whether `bookie` is in the write set of `entry`.
    pub fn in_ws(&self, bookie: usize, entry: u8) -> bool {
        self.ws[usize::from(entry)] & (1 << bookie) != 0
    }
}
