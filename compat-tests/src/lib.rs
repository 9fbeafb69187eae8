//! Test harness for the distlog compatibility suite.
//!
//! The suite proves Kafka compatibility the only way that counts: real clients (librdkafka through
//! the `rdkafka` crate, and `kcat`) talking to a real `distlog` process over TCP. This library holds
//! what every test needs for that:
//!
//! - [`process`]: start a `distlog server` on free loopback ports with its own data directory, wait
//!   until it is healthy, kill it (SIGKILL or SIGTERM), restart it on the same data directory, and
//!   never leak it (its `Drop` kills and reaps the child).
//! - [`kafka`]: rdkafka client configurations with short timeouts, topic administration, a
//!   recording producer and an assign-based consumer (the broker has no group coordinator yet, so
//!   nothing here subscribes or commits).
//! - [`http`]: a dependency-free HTTP/1.0 GET for `/health`, `/metrics` and `/admin/*`.
//! - [`raw`]: hand-built Kafka protocol frames for tests that must send what no client would.
//! - [`command`]: run an external program (kcat) with a hard deadline.

pub mod command;
pub mod http;
pub mod kafka;
pub mod process;
pub mod raw;

pub use process::{DistlogOptions, DistlogProcess};

/// Errors surfaced by the harness. Tests usually turn them into panics with `{:#}` so the message,
/// including any broker log tail, lands in the test output.
pub type Result<T> = anyhow::Result<T>;
