//! Idempotent producers, scenario 8 (issue 12): the produce throughput an idempotent producer
//! gets compared with a plain one.
//!
//! One run measures both, back to back against the same broker, each on its own fresh topic with
//! the same options; the only difference is `enable.idempotence` (true: librdkafka asks the broker
//! for a producer id with InitProducerId, stamps every batch with producer id, epoch and sequence,
//! and the partition's producer state checks each batch before it is written). Measuring the two
//! legs within seconds of each other keeps a drift of the machine's throughput out of the
//! comparison; alternating which leg goes first over the runs keeps the order out of it.
//!
//! Two client-side differences are not the broker's: librdkafka's idempotent producer asks for
//! its producer id on a 500 ms timer after it starts (its first acknowledgement comes ~0.5 s
//! late, reported as `first_ack_ms`; a warm-up, `ProduceOptions::warmup`, keeps it out of the
//! throughput), and it caps requests in flight per connection at 5 where a plain producer has no
//! cap by default (`max_in_flight`, applied to both legs, takes that difference out too).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use distlog_compat_tests::{http, kafka};

use crate::ensure_topic_replicated;
use crate::probe::BrokerProbe;
use crate::produce::{self, ProduceOptions};

/// Pause after deleting a leg's topic, so freeing its files is not part of the next leg.
pub const DELETE_SETTLE: Duration = Duration::from_secs(3);

/// Which leg of a run goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// Idempotent first on odd run numbers, plain first on even ones.
    Alternate,
    /// The idempotent producer first.
    IdemFirst,
    /// The plain producer first.
    PlainFirst,
}

impl Order {
    /// Whether the idempotent leg goes first in run number `run`.
    pub fn idem_first(self, run: u32) -> bool {
        match self {
            Order::Alternate => run % 2 == 1,
            Order::IdemFirst => true,
            Order::PlainFirst => false,
        }
    }
}

/// One leg's throughput and every figure of it as JSON fields.
struct Leg {
    mb_per_s: f64,
    msgs_per_s: f64,
    fields: Vec<(String, Value)>,
}

/// Runs one leg: throughput, ack latency, the broker's costs.
fn leg(
    base: &ProduceOptions,
    idempotent: bool,
    topic: &str,
    replication_factor: i32,
    probe: &BrokerProbe,
) -> anyhow::Result<Leg> {
    ensure_topic_replicated(&base.bootstrap, topic, base.partitions, replication_factor)?;
    let loadavg = loadavg_1m();
    let opts = ProduceOptions {
        topic: topic.to_string(),
        idempotent,
        ..base.clone()
    };
    let duplicates_before = probe.metric("distlog_producer_duplicate_batches_total");
    let requests_before = produce_requests(probe);
    let before = probe.sample();
    let outcome = produce::run(&opts, Instant::now())
        .with_context(|| format!("{} producer", if idempotent { "idempotent" } else { "plain" }))?;
    let after = probe.sample();
    let duplicates_after = probe.metric("distlog_producer_duplicate_batches_total");
    let requests_after = produce_requests(probe);
    let secs = outcome.elapsed.as_secs_f64().max(1e-9);
    let msgs_per_s = outcome.acked as f64 / secs;
    let mb_per_s = crate::mb_per_s(outcome.acked_bytes, secs);
    let bytes = outcome.acked_bytes;
    let all_bytes = outcome.all_acked_bytes;
    let mut fields = outcome.fields();
    fields.extend(probe.delta(&before, &after, bytes));
    if let (Some(a), Some(b)) = (duplicates_after, duplicates_before) {
        fields.push(("duplicate_batches".to_string(), json!(a - b)));
    }
    if let (Some(a), Some(b)) = (requests_after, requests_before) {
        // Warm-up included, on both sides of the ratio.
        let requests = a - b;
        fields.push(("produce_requests".to_string(), json!(requests)));
        if requests > 0.0 {
            fields.push((
                "bytes_per_request".to_string(),
                json!(all_bytes as f64 / requests),
            ));
        }
    }
    fields.push(("topic".to_string(), json!(topic)));
    fields.push(("loadavg_1m".to_string(), json!(loadavg)));
    Ok(Leg {
        mb_per_s,
        msgs_per_s,
        fields,
    })
}

/// Runs the plain and the idempotent producer with `base`'s options (its `topic` is the prefix
/// of the two legs' topics, `<topic>-plain` and `<topic>-idem`), in the order `order` gives run
/// number `run`. Every figure of a leg is in the line with the prefix `plain_` or `idem_`;
/// `overhead_pct` is `(plain - idem) / plain` of MB/s, in percent (negative: the idempotent leg
/// was faster). With `delete_after` each leg's topic is deleted as soon as it is measured, and the
/// broker gets [`DELETE_SETTLE`] to free it before the next leg: a leg writes gigabytes, and the
/// page cache they fill would make the kernel reclaim memory during the next leg (on this machine
/// that halves the next leg's throughput and triples the broker's CPU per MB), so without the
/// deletion whichever leg runs second loses.
pub fn overhead(
    base: &ProduceOptions,
    replication_factor: i32,
    order: Order,
    run: u32,
    delete_after: bool,
    probe: &BrokerProbe,
) -> anyhow::Result<Vec<(String, Value)>> {
    let idem_first = order.idem_first(run);
    let legs: [bool; 2] = if idem_first { [true, false] } else { [false, true] };
    let mut out = base.describe();
    out.retain(|(k, _)| k != "idempotent");
    out.push((
        "order".to_string(),
        json!(if idem_first { "idem-first" } else { "plain-first" }),
    ));
    let (mut plain, mut idem) = (None, None);
    for idempotent in legs {
        let name = if idempotent { "idem" } else { "plain" };
        let topic = format!("{}-{name}", base.topic);
        eprintln!("distlog-bench: {name} leg on {topic}");
        let l = leg(base, idempotent, &topic, replication_factor, probe)?;
        if delete_after {
            if let Err(e) = kafka::delete_topic(&base.bootstrap, &topic) {
                eprintln!("distlog-bench: delete {topic}: {e:#}");
            }
            std::thread::sleep(DELETE_SETTLE);
        }
        out.extend(l.fields.into_iter().map(|(k, v)| (format!("{name}_{k}"), v)));
        if idempotent {
            idem = Some((l.mb_per_s, l.msgs_per_s));
        } else {
            plain = Some((l.mb_per_s, l.msgs_per_s));
        }
    }
    if let (Some((plain_mb, plain_msgs)), Some((idem_mb, idem_msgs))) = (plain, idem) {
        if plain_mb > 0.0 {
            out.push((
                "overhead_pct".to_string(),
                json!((plain_mb - idem_mb) / plain_mb * 100.0),
            ));
        }
        if plain_msgs > 0.0 {
            out.push((
                "overhead_msgs_pct".to_string(),
                json!((plain_msgs - idem_msgs) / plain_msgs * 100.0),
            ));
        }
    }
    Ok(out)
}

/// The 1-minute load average (other work on the machine shows up here), if /proc has it.
fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Produce requests the broker has answered so far (`distlog_request_seconds_count{api="Produce"}`).
fn produce_requests(probe: &BrokerProbe) -> Option<f64> {
    let text = http::get(probe.http?, "/metrics", Duration::from_secs(5))
        .ok()?
        .body;
    // No series yet: no produce request answered since the broker started.
    text.lines()
        .find_map(|l| l.strip_prefix("distlog_request_seconds_count{api=\"Produce\"}"))
        .map_or(Some(0.0), |v| v.trim().parse().ok())
}
