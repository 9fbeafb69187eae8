//! Shared helpers of the transaction tests on a 3-node cluster (`cluster_transactions`,
//! `cluster_txn_checker`, `cluster_txn_faults`): the cluster and its replicated topics, `kill -9`
//! of a node that survives pid reuse, transactional producers initialised and ended the way
//! librdkafka's documentation prescribes (retrying what is retriable), waiting until no
//! transaction is open, what read_committed shows, and the node coordinating a transactional id.
//!
//! Each test file runs its cluster tests one at a time under its own lock; test files run as
//! separate binaries, one after the other, and every test starts its own cluster.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use crate::cluster::LocalCluster;
use crate::group::wait_until;
use crate::kafka;
use crate::txn::{
    end_offsets, find_transaction_coordinator, offsets_and_values, read_to_end, transactional_config,
    Isolation, TxnFailure, TxnProducer,
};
use crate::txn_checker::{Anomaly, TxnOutcome};
use crate::OrPanic;

/// Session timeout (lease) of these clusters; failover takes about this long plus a tick.
pub const SESSION_MS: u64 = 6000;

/// The transaction timeout of the producers here: long enough to ride out a failover, short
/// enough that a transaction whose producer gave up is aborted by the coordinator in the test.
pub const TXN_TIMEOUT_MS: u64 = 30_000;

/// The partitions of every topic these tests create ([`replicated_topic`]).
pub const PARTITIONS: [i32; 3] = [0, 1, 2];

/// A 3-node cluster (all roles on every node) with a [`SESSION_MS`] lease, 1.5 s heartbeats and
/// timed-out transactions aborted within about a second of their timeout; panics if it does not
/// come up.
pub fn cluster() -> LocalCluster {
    LocalCluster::up(
        3,
        &format!(
            "--broker-session-timeout-ms {SESSION_MS} --broker-heartbeat-interval-ms 1500 \
             --transaction-abort-timed-out-transaction-cleanup-interval-ms 1000"
        ),
    )
    .expect("3-node cluster up")
}

/// A 3-partition 3/3/2 topic whose partitions all have an owner.
pub fn replicated_topic(c: &LocalCluster, name: &str) {
    kafka::create_topic_replicated(c.bootstrap(), name, 3, 3, &[]).expect("create 3/3/2 topic");
    for p in PARTITIONS {
        c.wait_owner(&[1, 2, 3], name, p as u64, Duration::from_secs(20))
            .expect("owner");
    }
}

/// Sets an environment variable of this process (inherited by the nodes the cluster script
/// starts) until dropped. The environment is the whole test binary's: use it only while the
/// test holds its file's lock that runs the cluster tests one at a time.
pub struct EnvVar(&'static str);

impl EnvVar {
    /// Sets `key` to `value` until the returned guard is dropped.
    pub fn set(key: &'static str, value: &str) -> EnvVar {
        std::env::set_var(key, value);
        EnvVar(key)
    }
}

impl Drop for EnvVar {
    fn drop(&mut self) {
        std::env::remove_var(self.0);
    }
}

/// `kill -9` node `k` and, once it is gone, remove its pid file. The machine's pid space is
/// small and busy (pid_max 32768, wrapping within minutes), and local-cluster.sh's `start`
/// refuses to start a node whose recorded pid is alive, which a reused pid (any process's or
/// thread's) looks like.
pub fn kill9(c: &LocalCluster, k: usize) -> anyhow::Result<()> {
    c.kill9(k)?;
    let node_dir = c.data_dir(k);
    let pid_file = node_dir
        .parent()
        .ok_or_else(|| anyhow::anyhow!("node {k}'s data directory has no parent"))?
        .join("pid");
    std::fs::remove_file(&pid_file).map_err(|e| anyhow::anyhow!("remove {}: {e}", pid_file.display()))
}

/// Creates a transactional producer and initialises it, retrying retriable failures (a
/// coordinator moving or loading) for up to 60 s.
pub fn init_producer(bootstrap: &str, id: &str) -> Result<TxnProducer, String> {
    let producer = TxnProducer::create(&transactional_config(bootstrap, id, TXN_TIMEOUT_MS))
        .map_err(|e| format!("{e:#}"))?;
    let started = Instant::now();
    loop {
        match producer.init(Duration::from_secs(30)) {
            Ok(()) => return Ok(producer),
            Err(e) if !e.fatal && started.elapsed() < Duration::from_secs(60) => {
                eprintln!("{id}: init_transactions: {e}; retrying");
                thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("{id}: init_transactions: {e}")),
        }
    }
}

/// Enqueues every value of `values` (partition, value) into the open transaction.
pub fn send_all(producer: &mut TxnProducer, topic: &str, values: &[(i32, String)]) -> anyhow::Result<()> {
    for (p, v) in values {
        producer.send(topic, *p, Some(format!("k{p}").as_bytes()), v.as_bytes())?;
    }
    Ok(())
}

/// How a transaction ended, as its producer was told, with the errors met on the way.
#[derive(Debug)]
pub struct Ending {
    /// What the producer was told.
    pub outcome: TxnOutcome,
    /// Every failed call on the way, in order.
    pub errors: Vec<TxnFailure>,
    /// The producer is unusable (a fatal error): make a new one with the same id.
    pub replace_producer: bool,
}

/// Ends the open transaction the way librdkafka's documentation prescribes: `commit` (or abort
/// when `abort`), repeating the call while it is retriable (up to 90 s); after an abortable
/// error, `abort_transaction`.
pub fn end_transaction(producer: &TxnProducer, abort: bool) -> Ending {
    let started = Instant::now();
    let mut errors = Vec::new();
    let mut abort = abort;
    let mut aborting_after_error = false;
    loop {
        let result = if abort {
            producer.abort(Duration::from_secs(30))
        } else {
            producer.commit(Duration::from_secs(30))
        };
        match result {
            Ok(()) if abort => {
                return Ending {
                    outcome: TxnOutcome::Aborted,
                    errors,
                    replace_producer: false,
                }
            }
            Ok(()) => {
                return Ending {
                    outcome: TxnOutcome::Committed,
                    errors,
                    replace_producer: false,
                }
            }
            Err(e) => {
                let fatal = e.fatal;
                let retriable = e.retriable;
                let abortable = e.abortable;
                errors.push(e);
                if fatal || started.elapsed() >= Duration::from_secs(90) {
                    return Ending {
                        outcome: TxnOutcome::Unknown,
                        errors,
                        replace_producer: true,
                    };
                }
                if retriable {
                    continue;
                }
                if abortable && !aborting_after_error {
                    abort = true;
                    aborting_after_error = true;
                    continue;
                }
                return Ending {
                    outcome: TxnOutcome::Unknown,
                    errors,
                    replace_producer: true,
                };
            }
        }
    }
}

/// Waits until no transaction is open on `topic`: the last stable offset is the high watermark
/// on every partition.
pub fn wait_no_open_transaction(c: &LocalCluster, topic: &str, within: Duration) {
    wait_until(
        within,
        "every transaction is resolved (LSO = high watermark)",
        || {
            let stable = end_offsets(c.bootstrap(), topic, &PARTITIONS, Isolation::ReadCommitted)?;
            let high = end_offsets(c.bootstrap(), topic, &PARTITIONS, Isolation::ReadUncommitted)?;
            if stable != high {
                anyhow::bail!("LSO {stable:?} / high watermark {high:?}");
            }
            Ok(true)
        },
    )
    .or_panic("transactions resolved");
}

/// Everything read_committed shows of `topic`: (partition, offset, value).
pub fn visible(c: &LocalCluster, topic: &str) -> Vec<(i32, i64, String)> {
    read_to_end(
        c.bootstrap(),
        topic,
        &PARTITIONS,
        Isolation::ReadCommitted,
        Duration::from_secs(60),
    )
    .or_panic("read read_committed to the end")
    .into_iter()
    .flat_map(|(p, records)| {
        offsets_and_values(&records)
            .into_iter()
            .map(move |(o, v)| (p, o, v))
    })
    .collect()
}

/// Panics naming every anomaly, if there is any.
pub fn assert_no_anomaly(anomalies: &[Anomaly]) {
    if anomalies.is_empty() {
        return;
    }
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for a in anomalies {
        eprintln!("ANOMALY {a}");
        *by_name.entry(a.name()).or_default() += 1;
    }
    panic!(
        "{} anomalies: {by_name:?}; first: {}",
        anomalies.len(),
        anomalies[0]
    );
}

/// The node (1-based) whose Kafka address is `host:port` in the bootstrap list.
pub fn node_of(c: &LocalCluster, host: &str, port: i32) -> usize {
    let addr = format!("{host}:{port}");
    let index = c
        .bootstrap()
        .split(',')
        .position(|a| a == addr)
        .unwrap_or_else(|| panic!("{addr} is not in the bootstrap list {}", c.bootstrap()));
    index + 1
}

/// The node coordinating `transactional_id`, as the first node that answers FindCoordinator
/// says (`None` when none answers).
pub fn coordinator_of(c: &LocalCluster, transactional_id: &str) -> Option<usize> {
    c.bootstrap().split(',').find_map(|addr| {
        let (_, host, port) = find_transaction_coordinator(addr.parse().ok()?, transactional_id).ok()?;
        Some(node_of(c, &host, port))
    })
}
