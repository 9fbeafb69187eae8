//! Log streams: the DistributedLog core library.
//!
//! A [`Namespace`] holds this node's log streams. Each stream is a totally
//! ordered sequence of records stored as segments (ledgers); the owner
//! writes through a `LogWriter` (transmit buffer batching concurrent appends
//! into one entry, pipelined adds, segment rolling, tail cache) and readers
//! go through a `LogReader` (committed entries only).

mod bookies;
pub mod config;
pub mod epochs;
pub mod gc;
pub mod namespace;
mod new_ensemble;
mod reader;
pub mod release;
pub mod replicas;
pub mod segment;
mod stream;
pub mod tail_cache;
mod writer;

pub use config::{Retention, StreamConfig, StreamConfigFn};
pub use epochs::{EpochHistory, EpochStart};
pub use namespace::{
    AppendRequest, AppendResult, AppendTicket, Namespace, NamespaceConfig, Ownership, ReadEntry, ReadResult,
    StampFn, TxidLookup,
};
pub use replicas::{BookieReplica, SegmentReplicas};
