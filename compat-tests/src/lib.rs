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
//!   recording producer and an assign-based consumer (group members that subscribe and commit
//!   live in [`group`]).
//! - [`http`]: a dependency-free HTTP/1.0 GET for `/health`, `/metrics` and `/admin/*`.
//! - [`group`]: consumer-group members (subscribe, commit) with recorded rebalance callbacks, a
//!   driver polling several members until a condition holds, and the exactly-once check.
//! - [`raw`]: hand-built Kafka protocol frames for tests that must send what no client would.
//! - [`command`]: run an external program (kcat) with a hard deadline.
//! - [`txn`]: transactional producers, reading under an isolation level, the last stable offset
//!   and the transaction coordinator.
//! - [`txn_checker`]: the transaction history checker (lost committed writes, aborted reads, torn
//!   transactions, duplicates).
//! - [`txn_app`]: the consume-transform-produce application as a child process and its
//!   exactly-once check.
//! - [`nemesis`]: randomized fault schedules (kill, pause, partitions, a full disk) drawn from a
//!   seed, applied to a cluster whose nodes live in their own network namespaces.
//! - [`queue`]: the reliability campaign's trial: the queue workload (idempotent producers,
//!   assign-mode readers, a committing group member) under a nemesis schedule, and its checker.

pub mod chaos;
pub mod cluster;
pub mod command;
pub mod group;
pub mod http;
pub mod kafka;
pub mod nemesis;
pub mod process;
pub mod queue;
pub mod raw;
pub mod txn;
pub mod txn_app;
pub mod txn_broker;
pub mod txn_checker;
pub mod txn_cluster;

pub use process::{DistlogOptions, DistlogProcess};

/// Errors surfaced by the harness. Tests usually turn them into panics with `{:#}` so the message,
/// including any broker log tail, lands in the test output.
pub type Result<T> = anyhow::Result<T>;

/// Unwraps a harness result in a test, panicking with the whole error chain (`{:#}`), which
/// includes the broker's log tail when the harness attached one.
pub trait OrPanic<T> {
    /// Returns the value or panics with `what` and the full error.
    fn or_panic(self, what: &str) -> T;
}

impl<T> OrPanic<T> for anyhow::Result<T> {
    fn or_panic(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: {e:#}"),
        }
    }
}

/// Starts a broker with default options for a test, panicking with a clear message (how to build
/// the binary, or the broker's log tail) if it cannot be started.
pub fn start_broker() -> DistlogProcess {
    DistlogProcess::start(DistlogOptions::default()).or_panic("start distlog")
}

/// The current wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the system clock is after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds since 1970 fit in i64")
}
