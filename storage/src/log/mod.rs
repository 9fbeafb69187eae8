//! Log streams: the DistributedLog core library.
//!
//! A [`Namespace`] holds this node's log streams. Each stream is a totally
//! ordered sequence of records stored as segments (ledgers); the owner
//! writes through a `LogWriter` (transmit buffer batching concurrent appends
//! into one entry, segment rolling, tail cache) and anyone reads through a
//! `LogReader` (committed entries only).

pub mod namespace;

pub use namespace::{
    AppendRequest, AppendResult, Namespace, NamespaceConfig, ReadEntry, ReadResult, StampFn, StreamConfig,
    TxidLookup,
};
