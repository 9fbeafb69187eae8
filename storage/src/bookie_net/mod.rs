//! The bookie network service: ledger clients reach bookies in other
//! processes over a framed binary protocol on TCP.
//!
//! * [`protocol`]: the frame format, strict encode/decode of requests and
//!   answers (payloads are never re-encoded or copied).
//! * `budget`: the per-connection in-flight limits (backpressure).
//! * `connection`: one pipelined connection (ordered queue, budget,
//!   matching answers by id, failing waiters when it ends).
//! * `frame`: reading frames off a stream, vectored writing of frames.
//! * [`server`]: [`BookieServer`] serves a bookie on a TCP listener.
//! * [`client`]: [`RemoteBookie`] implements [`crate::ledger::BookieClient`]
//!   over one pipelined connection, so a ledger's ensemble can mix the
//!   local bookie ([`crate::bookie::LocalBookie`]) and remote ones.

mod budget;
pub mod client;
mod connection;
mod frame;
mod net_metrics;
pub mod protocol;
pub mod server;

#[cfg(test)]
#[path = "bookie_net_tests.rs"]
mod tests;

pub use client::{BookieAddr, ClientConfig, RemoteBookie};

/// The bookie service's conventional port (BookKeeper's), as suggested in
/// the design for `--bookie-listen`.
pub const DEFAULT_PORT: u16 = 3181;
pub use server::{BookieServer, ServerConfig};
