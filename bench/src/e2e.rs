//! End-to-end latency: a producer at a fixed rate stamps its send instant into every value; a
//! consumer in the same process (same clock) records `now − sent` for every message it reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::Message;
use serde_json::{json, Value};

use super::stats::Latencies;
use crate::consume::{assigned, ReadOptions};
use crate::probe::BrokerProbe;
use crate::produce::{self, nanos_since, ProduceOptions};
use crate::watermarks;

/// Runs `produce` (which must have `rate` set and `stamp_values` on) against partition 0 of its
/// topic while a consumer reads from the high watermark, and reports the end-to-end latency
/// percentiles, the achieved rate and the producer's ack latency.
pub fn run(
    opts: &ReadOptions,
    produce: &ProduceOptions,
    probe: &BrokerProbe,
) -> anyhow::Result<Vec<(String, Value)>> {
    if produce.rate.is_none() || !produce.stamp_values || produce.partitions != 1 {
        bail!("end-to-end latency needs a fixed rate, stamped values and one partition");
    }
    let (_, high) = watermarks(&opts.bootstrap, &produce.topic, 0)?;
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Latencies::with_capacity(1 << 20)));
    let reader = {
        let (opts, topic, stop, ready, latencies) = (
            opts.clone(),
            produce.topic.clone(),
            stop.clone(),
            ready.clone(),
            latencies.clone(),
        );
        thread::spawn(move || -> anyhow::Result<u64> {
            let consumer = assigned(&opts, "bench-e2e", &topic, 0, high)?;
            let mut read = 0u64;
            let started = Instant::now();
            let mut first = true;
            while !stop.load(Ordering::Acquire) {
                if started.elapsed() > opts.timeout {
                    bail!("end-to-end reader timed out after {:?}", opts.timeout);
                }
                let polled = consumer.poll(Duration::from_millis(50));
                if first {
                    ready.store(true, Ordering::Release);
                    first = false;
                }
                match polled {
                    Some(Ok(msg)) => {
                        let now_ns = nanos_since(origin);
                        let stamp = msg
                            .payload()
                            .and_then(|p| p.get(..8))
                            .and_then(|b| <[u8; 8]>::try_from(b).ok())
                            .map(u64::from_le_bytes)
                            .context("message without an 8-byte send stamp")?;
                        latencies
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record_ns(now_ns.saturating_sub(stamp));
                        read += 1;
                    }
                    Some(Err(e)) => return Err(e).context("consume"),
                    None => {}
                }
            }
            Ok(read)
        })
    };
    let wait_from = Instant::now();
    while !ready.load(Ordering::Acquire) && wait_from.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(10));
    }
    let before = probe.sample();
    let produced = produce::run(produce, origin);
    let after = probe.sample();
    // Give the consumer time to read the tail, then stop it.
    let acked = produced.as_ref().map_or(0, |p| p.acked);
    let drain_from = Instant::now();
    while drain_from.elapsed() < Duration::from_secs(10)
        && (latencies.lock().unwrap_or_else(|e| e.into_inner()).len() as u64) < acked
    {
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Release);
    let read = reader
        .join()
        .map_err(|_| anyhow::anyhow!("end-to-end reader panicked"))??;
    let produced = produced?;
    if read < produced.acked {
        bail!(
            "the consumer read {read} of {} acknowledged messages",
            produced.acked
        );
    }
    let e2e = std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    let bytes = produced.acked_bytes;
    let secs = produced.elapsed.as_secs_f64().max(1e-9);
    let mut out = vec![
        ("target_rate".to_string(), json!(produce.rate)),
        ("achieved_rate".to_string(), json!(produced.acked as f64 / secs)),
    ];
    out.extend(e2e.summary("e2e"));
    out.extend(produced.latencies.summary("ack"));
    out.extend(probe.delta(&before, &after, bytes));
    Ok(out)
}
