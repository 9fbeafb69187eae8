//! Log streams: the DistributedLog core library.
//!
//! A [`Namespace`] holds this node's log streams. Each stream is a totally
//! ordered sequence of records stored as segments (ledgers); the owner
//! writes through a `LogWriter` (transmit buffer batching concurrent appends
//! into one entry, pipelined adds, segment rolling, tail cache) and readers
//! go through a `LogReader` (committed entries only). A caller that uses a
//! stream several times resolves it once into a [`StreamHandle`].
//!
//! The modules form a DAG, bottom up: `api` (value types),
//! `stream_state` (the embedder's per-stream state), `config` (settings), `segment`, `tail_cache`, `epochs`, `bookies`,
//! `new_ensemble`; `context` (state shared by a namespace's streams and by
//! one stream's writer and readers); `writer`, `reader`, `replicas`,
//! `release`, `retention`; `stream` (opening a stream); `handle`; `namespace`.

pub mod api;
mod bookies;
pub mod config;
mod context;
pub mod epochs;
pub mod gc;
pub mod handle;
pub mod namespace;
mod new_ensemble;
mod reader;
pub mod release;
pub mod replicas;
mod retention;
pub mod segment;
mod state_rebuild;
mod stream;
pub mod stream_state;
pub mod tail_cache;
mod writer;

pub use api::{AppendRequest, AppendResult, AppendTicket, ReadEntry, ReadResult, TxidLookup};
pub use config::{NamespaceConfig, Ownership, Retention, StampFn, StreamConfig, StreamConfigFn};
pub use epochs::{EpochHistory, EpochStart};
pub use handle::StreamHandle;
pub use namespace::Namespace;
pub use replicas::{BookieReplica, SegmentReplicas};
pub use stream_state::{
    snapshot_due, Admission, StateError, StreamState, StreamStateFn, SNAPSHOT_INTERVAL_BYTES,
};
