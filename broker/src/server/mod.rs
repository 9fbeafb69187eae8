//! The Kafka network front: [`listener`] (accept loop), [`connection`]
//! (pipelined requests answered in order) and [`framing`] (size-prefixed
//! frames with a maximum size).

pub mod connection;
pub mod framing;
pub mod listener;

pub use connection::{Dispatcher, Outcome, RawRequest};

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
