//! Scenario 11's commit-visibility measurement (see [`crate::transactions`]'s module doc): how soon
//! a committed message reaches a `read_committed` consumer, per message from its send and per
//! transaction from `commit_transaction`'s return.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value};

use distlog_compat_tests::kafka;

use crate::probe::BrokerProbe;
use crate::produce::nanos_since;
use crate::stats::Latencies;
use crate::transactions::{commit, send, Acks, TxnOptions, TxnProducer};
use crate::{bench_consumer_config, ensure_topic_replicated, watermarks};

/// The commit-visibility measurement (see the module doc); fields prefixed `lat_`.
pub(crate) fn commit_visibility(
    opts: &TxnOptions,
    probe: &BrokerProbe,
) -> anyhow::Result<Vec<(String, Value)>> {
    if opts.latency_size < 16 {
        bail!("commit-visibility values need at least 16 bytes");
    }
    let topic = format!("{}-lat", opts.topic);
    ensure_topic_replicated(&opts.bootstrap, &topic, 1, opts.replication_factor)?;
    let (_, high) = watermarks(&opts.bootstrap, &topic, 0)?;
    let txns = opts.latency_txns;
    let per_txn = opts.latency_txn_messages.max(1);
    let total = (txns * per_txn) as u64;
    let id = format!("{topic}-{}", std::process::id());
    let producer: TxnProducer = opts
        .producer_config(1, Some(&id))
        .create_with_context(Acks::default())
        .context("create transactional producer")?;
    producer
        .init_transactions(opts.timeout)
        .context("init_transactions")?;

    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    // Per transaction: when the consumer read its first message (ns since origin).
    let first_seen: Arc<Vec<AtomicU64>> = Arc::new((0..txns).map(|_| AtomicU64::new(u64::MAX)).collect());
    let reader = {
        let (stop, ready, first_seen, topic) =
            (stop.clone(), ready.clone(), first_seen.clone(), topic.clone());
        let mut config =
            bench_consumer_config(&opts.bootstrap, "bench-txn-visibility", opts.fetch_max_kbytes);
        config.set("isolation.level", "read_committed");
        let timeout = opts.timeout;
        thread::spawn(move || -> anyhow::Result<(Latencies, u64)> {
            let consumer: BaseConsumer = config.create().context("create consumer")?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, 0, Offset::Offset(high))?;
            consumer.assign(&tpl).context("assign")?;
            let mut e2e = Latencies::with_capacity(usize::try_from(total).unwrap_or(0));
            let mut read = 0u64;
            let started = Instant::now();
            while !stop.load(Ordering::Acquire) && read < total {
                if started.elapsed() > timeout {
                    bail!("read_committed consumer timed out after {timeout:?}");
                }
                let polled = consumer.poll(Duration::from_millis(50));
                ready.store(true, Ordering::Release);
                match polled {
                    Some(Ok(msg)) => {
                        let now_ns = nanos_since(origin);
                        let payload = msg.payload().unwrap_or_default();
                        let word = |at: usize| {
                            payload
                                .get(at..at + 8)
                                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                                .map(u64::from_le_bytes)
                        };
                        let (Some(sent), Some(txn)) = (word(0), word(8)) else {
                            bail!("message at offset {} without a stamp", msg.offset());
                        };
                        e2e.record_ns(now_ns.saturating_sub(sent));
                        let slot = usize::try_from(txn)
                            .ok()
                            .and_then(|t| first_seen.get(t))
                            .with_context(|| format!("transaction index {txn} out of range"))?;
                        slot.fetch_min(now_ns, Ordering::Relaxed);
                        read += 1;
                    }
                    Some(Err(e)) => return Err(e).context("consume"),
                    None => {}
                }
            }
            Ok((e2e, read))
        })
    };
    let wait_from = Instant::now();
    while !ready.load(Ordering::Acquire) && wait_from.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(10));
    }

    let before = probe.sample();
    let mut value = kafka::patterned_payload(0, opts.latency_size);
    let mut commit_call_ns = Vec::with_capacity(txns);
    let mut commit_return_ns = Vec::with_capacity(txns);
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let produced = (|| -> anyhow::Result<()> {
        for t in 0..txns {
            let due = start + opts.latency_interval * u32::try_from(t).unwrap_or(u32::MAX);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            producer.begin_transaction().context("begin_transaction")?;
            value[8..16].copy_from_slice(&(t as u64).to_le_bytes());
            for _ in 0..per_txn {
                value[..8].copy_from_slice(&nanos_since(origin).to_le_bytes());
                send(&producer, &topic, 0, &value, deadline)?;
            }
            commit_call_ns.push(nanos_since(origin));
            commit(&producer, deadline.saturating_duration_since(Instant::now()))?;
            commit_return_ns.push(nanos_since(origin));
        }
        producer.context().check()
    })();
    let producing_secs = start.elapsed().as_secs_f64();
    let after = probe.sample();
    // Give the consumer time to read the last transaction, then stop it.
    let drain_from = Instant::now();
    while produced.is_ok()
        && drain_from.elapsed() < Duration::from_secs(10)
        && first_seen.iter().any(|s| s.load(Ordering::Relaxed) == u64::MAX)
    {
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Release);
    let (e2e, read) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("read_committed consumer panicked"))??;
    produced?;
    if read != total {
        bail!("the read_committed consumer read {read} of {total} committed messages");
    }
    let mut after_return = Latencies::with_capacity(txns);
    let mut after_call = Latencies::with_capacity(txns);
    let mut commit_lat = Latencies::with_capacity(txns);
    let mut seen_before_return = 0u64;
    for (t, seen) in first_seen.iter().enumerate() {
        let seen = seen.load(Ordering::Relaxed);
        let (call, ret) = (commit_call_ns[t], commit_return_ns[t]);
        if seen < ret {
            seen_before_return += 1;
        }
        after_return.record_ns(seen.saturating_sub(ret));
        after_call.record_ns(seen.saturating_sub(call));
        commit_lat.record_ns(ret.saturating_sub(call));
    }
    let mut out = vec![
        ("lat_msgs".to_string(), json!(read)),
        (
            "lat_txns_per_s".to_string(),
            json!(txns as f64 / producing_secs.max(1e-9)),
        ),
    ];
    out.extend(e2e.summary("lat_e2e"));
    out.extend(after_return.summary("lat_visible_after_commit"));
    out.extend(after_call.summary("lat_visible_after_commit_call"));
    out.extend(commit_lat.summary("lat_commit"));
    out.push((
        "lat_seen_before_commit_returned".to_string(),
        json!(seen_before_return),
    ));
    out.extend(
        probe
            .delta(&before, &after, total * opts.latency_size as u64)
            .into_iter()
            .map(|(k, v)| (format!("lat_{k}"), v)),
    );
    out.push(("lat_topic".to_string(), json!(topic)));
    Ok(out)
}
