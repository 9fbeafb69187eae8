//! The segment store ("bookie"): durable, append-only ledgers.
//!
//! CONTRACT (implemented by the bookie work):
//! * `Bookie::open(config)` recovers every ledger (cutting torn/corrupt tails
//!   by crc) and starts the group-commit journal thread.
//! * `LocalBookie` wraps `Arc<Bookie>` and implements
//!   [`crate::ledger::BookieClient`] in-process.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use distlog_metadata::LedgerId;

use crate::error::Result;
use crate::ledger::{AddFuture, AddRequest, BookieClient, Entry, IndexRow};

/// How to open a bookie.
#[derive(Debug, Clone)]
pub struct BookieConfig {
    /// Directory for ledger files (created if missing).
    pub dir: PathBuf,
    /// This bookie's node id.
    pub bookie_id: u32,
}

/// The local segment store.
pub struct Bookie {
    _private: (),
}

impl Bookie {
    /// Open the store, recover all ledgers, start the journal thread.
    /// Blocking (does file I/O): call before serving or via spawn_blocking.
    pub fn open(config: BookieConfig) -> Result<Arc<Bookie>> {
        let _ = config;
        unimplemented!("bookie contract")
    }

    /// Ids of all ledgers on this bookie.
    pub fn ledgers(&self) -> Vec<LedgerId> {
        unimplemented!("bookie contract")
    }

    /// Flush and stop the journal thread; later adds fail with ShuttingDown.
    pub fn shutdown(&self) {
        unimplemented!("bookie contract")
    }
}

/// In-process [`BookieClient`] over a local [`Bookie`].
#[derive(Clone)]
pub struct LocalBookie(pub Arc<Bookie>);

#[async_trait]
impl BookieClient for LocalBookie {
    fn bookie_id(&self) -> u32 {
        unimplemented!("bookie contract")
    }
    fn add_entry(&self, req: AddRequest) -> AddFuture {
        let _ = req;
        unimplemented!("bookie contract")
    }
    async fn read_entries(
        &self,
        ledger: LedgerId,
        first: u64,
        last: u64,
        max_bytes: usize,
    ) -> Result<Vec<Entry>> {
        let _ = (ledger, first, last, max_bytes);
        unimplemented!("bookie contract")
    }
    async fn entry_for_seq(&self, ledger: LedgerId, seq: u64) -> Result<Option<IndexRow>> {
        let _ = (ledger, seq);
        unimplemented!("bookie contract")
    }
    async fn entry_for_txid(&self, ledger: LedgerId, txid: u64) -> Result<Option<IndexRow>> {
        let _ = (ledger, txid);
        unimplemented!("bookie contract")
    }
    async fn last_entry(&self, ledger: LedgerId) -> Result<Option<IndexRow>> {
        let _ = ledger;
        unimplemented!("bookie contract")
    }
    async fn fence(&self, ledger: LedgerId) -> Result<Option<IndexRow>> {
        let _ = ledger;
        unimplemented!("bookie contract")
    }
    async fn delete(&self, ledger: LedgerId) -> Result<()> {
        let _ = ledger;
        unimplemented!("bookie contract")
    }
}
