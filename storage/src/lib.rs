//! distlog-storage: the DistributedLog core.
//!
//! * [`bookie`]: the segment store — append-only ledgers, group-commit
//!   thread, crc per entry, index by sequence id and txid, crash recovery.
//! * [`bookie_net`]: the bookie network service — [`bookie_net::BookieServer`]
//!   serves a bookie over TCP, [`bookie_net::RemoteBookie`] reaches it.
//! * [`ledger`]: the ledger client — the one interface ([`ledger::BookieClient`])
//!   through which writers and readers reach bookies, local or remote.
//! * [`log`]: log streams — `LogWriter`, `LogReader`, segments, the
//!   offset ↔ DLSN ↔ txid mapping, the tail cache, and the [`log::Namespace`]
//!   that the broker uses.

pub mod bookie;
pub mod bookie_net;
pub mod dlsn;
pub mod error;
pub mod ledger;
pub mod log;
pub mod metrics;

pub use dlsn::Dlsn;
pub use error::{Result, StorageError};
