//! The harnesses of distlog's fuzz targets, one module per target; the files under
//! `fuzz_targets/` only hand libFuzzer's input to them. Each harness asserts (panics on) a
//! property the code promises, so a violation is a crash libFuzzer records.
//!
//! Expensive state (an in-process broker, a bookie, a tokio runtime) is built once per process
//! under a scratch directory (see [`scratch`]) and removed when the process exits.

pub mod bookie_wire;
pub mod kafka_request;
pub mod metadata_apply;
pub mod raft_frame;
pub mod record_batch;
pub mod scratch;
