//! Retention, scenario 10 (issue 13): how long retention takes to free a large, expired topic
//! (by default 10 GiB over 100 partitions), and what a running truncation does to the ack
//! latency of a steady acks=all produce load, measured in the same run.
//!
//! The scenario runs its own single-node broker (the `distlog` binary next to this one, or
//! `$DISTLOG_BIN`), with `--log-level info --log-format json`:
//!
//! 1. starts it with `--log-retention-check-interval-ms 3600000` (no check during the fill);
//!    creates the fill topic (`partitions` partitions, `segment.bytes`, `retention.ms`) and the
//!    load topic;
//! 2. fills the fill topic with hand-built acks=all Produce requests (one batch per request,
//!    pipelined over a few raw connections) whose records are `age` old: every segment is
//!    expired from the start;
//! 3. stops the broker with SIGTERM and starts it again on the same data dir and ports with
//!    `--log-retention-check-interval-ms check_interval`; right after the spawn it starts the
//!    steady load ([`crate::steady_load`]) and writes one fresh record to every fill partition
//!    (the "touch"). Retention never drops a stream's last segment, and after a restart the last
//!    one is the sealed segment the fill ended in; the touch opens a new segment after it, so the
//!    whole fill is expired and droppable, as in a topic that keeps being written;
//! 4. polls `/metrics` (`distlog_log_truncated_bytes_total{cause="retention"}`, segments) and the
//!    disk (allocated bytes of the ledger files that held the fill, and of the whole bookie dir)
//!    every `poll` until the fill's ledger files are gone (at most 1% of their bytes left) and the
//!    truncated-bytes counter covers the fill;
//! 5. keeps the load running for as long again after that, stops it, and stops the broker;
//! 6. reads the broker's log: the first and last "retention truncated the stream's oldest
//!    segments" lines (the metadata step) and the last "deleted released ledgers on their
//!    bookies" line (the ledger step).
//!
//! The truncation window starts at the first truncation line and ends when the poll saw the fill
//! freed; the "after" window is as long and starts where it ends. The load's ack latency is
//! reported for the messages sent in each window, and in the window before the first check
//! (from the load's first acknowledgement plus one second, when there is one).
//!
//! The data dir is removed at the end, on success and on failure, unless `keep_data`.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{produce_request, ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use serde_json::{json, Value};

use crate::json_log::log_lines;
use crate::probe::{metric_sum, BrokerProbe};
use crate::raw_produce::{pipeline_calls, spread, PRODUCE_VERSION};
use crate::rebuild::Incarnation;
use crate::steady_load::{SteadyLoad, SteadyLoadOptions};
use distlog_compat_tests::process::{DistlogOptions, DistlogProcess};
use distlog_compat_tests::{http, kafka, raw};

/// The topic that is filled and then expires.
const FILL_TOPIC: &str = "retention-fill";
/// The topic of the steady load.
pub const LOAD_TOPIC: &str = "retention-load";
/// Kafka error codes a produce to a partition that is still opening may get, retried.
const RETRIABLE: &[i16] = &[3, 5, 6, 7, 14, 15, 19, 20];
/// The truncated-bytes counter of retention.
const TRUNCATED_BYTES: &str = "distlog_log_truncated_bytes_total{cause=\"retention\"}";
/// The truncated-segments counter of retention.
const TRUNCATED_SEGMENTS: &str = "distlog_log_truncated_segments_total{cause=\"retention\"}";

/// What to fill and how to load the broker while retention frees it.
#[derive(Debug, Clone)]
pub struct RetentionOptions {
    /// Bytes of record batches to write to the fill topic.
    pub fill_bytes: u64,
    /// Partitions of the fill topic.
    pub partitions: i32,
    /// The fill topic's `segment.bytes`.
    pub segment_bytes: u64,
    /// The fill topic's `retention.ms`.
    pub retention_ms: u64,
    /// How old the fill's record timestamps are (more than `retention_ms`).
    pub age_ms: u64,
    /// Value bytes per fill record.
    pub value_bytes: usize,
    /// Records per fill batch (one batch per Produce request).
    pub records_per_batch: u32,
    /// Raw connections the fill partitions are spread over.
    pub connections: usize,
    /// Fill requests in flight per connection.
    pub pipeline: usize,
    /// `--log-retention-check-interval-ms` of the restarted broker (the first check comes one
    /// interval after it starts).
    pub check_interval_ms: u64,
    /// The steady load during and after the truncation (its bootstrap is filled in here).
    pub load: SteadyLoadOptions,
    /// How often the disk and `/metrics` are polled.
    pub poll: Duration,
    /// The broker's data dir; its log goes next to it. Must not hold data yet.
    pub data_dir: PathBuf,
    /// Keep the data dir at the end (it is removed by default, also on failure).
    pub keep_data: bool,
    /// Give up on a step (fill, restart, freeing) after this long.
    pub timeout: Duration,
}

/// Removes the data dir when dropped (after the brokers, which are declared later and so
/// dropped first).
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                eprintln!("distlog-bench: could not remove {}: {e}", dir.display());
            }
        }
    }
}

/// Runs the scenario (see the module docs) and returns its figures.
pub fn run(opts: &RetentionOptions) -> anyhow::Result<Vec<(String, Value)>> {
    ensure!(
        opts.partitions >= 1 && opts.records_per_batch >= 1 && opts.fill_bytes > 0,
        "nothing to fill"
    );
    ensure!(
        opts.age_ms > opts.retention_ms,
        "the fill must be older than retention.ms"
    );
    if opts.data_dir.exists() && std::fs::read_dir(&opts.data_dir)?.next().is_some() {
        bail!("{} already holds data", opts.data_dir.display());
    }
    let _cleanup = RemoveOnDrop((!opts.keep_data).then(|| opts.data_dir.clone()));
    let mut out: Vec<(String, Value)> = Vec::new();
    let loadavg = |out: &mut Vec<(String, Value)>, when: &str| {
        out.push((format!("loadavg_{when}"), json!(loadavg())));
    };
    loadavg(&mut out, "start");

    let mut broker = DistlogProcess::start(DistlogOptions {
        data_dir: Some(opts.data_dir.clone()),
        extra_args: [
            "--log-level",
            "info",
            "--log-format",
            "json",
            "--log-retention-check-interval-ms",
            "3600000",
        ]
        .map(String::from)
        .to_vec(),
        ..DistlogOptions::default()
    })?;
    let bootstrap = broker.bootstrap();
    let segment_bytes = opts.segment_bytes.to_string();
    let retention_ms = opts.retention_ms.to_string();
    kafka::create_topic_with_config(
        &bootstrap,
        FILL_TOPIC,
        opts.partitions,
        &[
            ("segment.bytes", segment_bytes.as_str()),
            ("retention.ms", retention_ms.as_str()),
        ],
    )?;
    kafka::create_topic(&bootstrap, &opts.load.topic, opts.load.partitions)?;
    let addr = broker.kafka_addr();

    // The fill: one batch, encoded once, sent to every partition again and again (a producer
    // without idempotence; the broker assigns the offsets).
    let now = i64::try_from(distlog_metadata::now_ms())?;
    let ts = now - i64::try_from(opts.age_ms)?;
    let batch = old_batch(opts.records_per_batch, opts.value_bytes, ts)?;
    let batch_len = batch.len() as u64;
    let per_partition = opts.fill_bytes.div_ceil(u64::try_from(opts.partitions)?);
    let batches_per_partition = per_partition.div_ceil(batch_len);
    let partitions = usize::try_from(opts.partitions)?;
    let connections = opts.connections.clamp(1, partitions);
    let pipeline = opts.pipeline.max(1);
    let started = Instant::now();
    let written = spread(partitions, connections, |mine| {
        let mut conn = raw::Conn::open(addr, "distlog-bench")?;
        let n = mine.len() as u64;
        let reqs = (0..batches_per_partition * n).map(|i| {
            let p = mine[usize::try_from(i % n)?];
            let req =
                raw::produce_request(FILL_TOPIC, i32::try_from(p)?, batch.clone()).with_timeout_ms(30_000);
            Ok((p, req))
        });
        let mut acked = 0u64;
        pipeline_calls(
            &mut conn,
            ApiKey::Produce,
            PRODUCE_VERSION,
            reqs,
            pipeline,
            |p, r: ProduceResponse| {
                let code = first_code(&r)?;
                ensure!(code == 0, "fill produce to partition {p}: error {code}");
                acked += 1;
                Ok(())
            },
        )?;
        Ok(vec![acked])
    })?;
    let fill_secs = started.elapsed().as_secs_f64();
    let fill_batches: u64 = written.iter().sum();
    let fill_bytes = fill_batches * batch_len;
    loadavg(&mut out, "after_fill");

    let probe = BrokerProbe {
        pid: broker.pid().and_then(|p| i32::try_from(p).ok()),
        http: Some(broker.http_addr()),
    };
    let rolls = probe.metric("distlog_segment_rolls_total");
    let bookie_dir = opts.data_dir.join("bookie");
    let ledger_files = ledger_files(&bookie_dir.join("ledgers"))?;
    let fill_disk_bytes = allocated(&ledger_files);
    let bookie_bytes_before = dir_allocated(&bookie_dir);

    // SIGTERM, then a new incarnation that checks retention every `check_interval_ms`.
    broker.terminate(Duration::from_secs(120))?;
    let log_path = broker.log_path().to_path_buf();
    let log_offset = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    let origin = Instant::now();
    let origin_wall_ms = wall_ms();
    let mut child = Incarnation::spawn_with(
        &broker,
        &[
            "--log-retention-check-interval-ms".to_string(),
            opts.check_interval_ms.to_string(),
        ],
    )?;
    let load = SteadyLoad::start(
        &SteadyLoadOptions {
            bootstrap: bootstrap.clone(),
            ..opts.load.clone()
        },
        origin,
    )?;
    let touch_ms = touch(addr, opts.partitions, origin, opts.timeout, &mut child)?;

    // Poll until the fill is freed.
    let http_addr = broker.http_addr();
    let mut first_seen_ms: Option<f64> = None;
    let freed_ms;
    let mut last = (0.0, 0.0, fill_disk_bytes);
    loop {
        if let Some(status) = child.child.try_wait()? {
            bail!("the restarted broker exited ({status})");
        }
        let at_ms = origin.elapsed().as_secs_f64() * 1e3;
        if at_ms > opts.timeout.as_secs_f64() * 1e3 {
            bail!(
                "the fill was not freed within {:?} of the restart: truncated {} bytes in {} segments, \
                 {} of {} bytes of its ledger files left",
                opts.timeout,
                last.0,
                last.1,
                last.2,
                fill_disk_bytes
            );
        }
        if let Some(text) = metrics(http_addr) {
            let bytes = metric_sum(&text, TRUNCATED_BYTES);
            let segments = metric_sum(&text, TRUNCATED_SEGMENTS);
            let left = allocated(&ledger_files);
            last = (bytes, segments, left);
            if bytes > 0.0 && first_seen_ms.is_none() {
                first_seen_ms = Some(at_ms);
            }
            if bytes >= 0.99 * fill_bytes as f64 && left * 100 <= fill_disk_bytes {
                freed_ms = at_ms;
                break;
            }
        }
        thread::sleep(opts.poll);
    }
    loadavg(&mut out, "freed");
    let bookie_bytes_freed = dir_allocated(&bookie_dir);
    let text = metrics(http_addr).unwrap_or_default();
    let truncated_bytes = metric_sum(&text, TRUNCATED_BYTES);
    let truncated_segments = metric_sum(&text, TRUNCATED_SEGMENTS);
    let check_count = metric_sum(&text, "distlog_log_retention_check_seconds_count");
    let check_sum = metric_sum(&text, "distlog_log_retention_check_seconds_sum");

    // The log: when the metadata step started and ended, when the last ledger went.
    let lines = log_lines(&log_path, log_offset)?;
    let rel = |wall: f64| wall - origin_wall_ms;
    let truncations: Vec<f64> = lines
        .iter()
        .filter(|l| l.message == "retention truncated the stream's oldest segments")
        .map(|l| rel(l.at_ms))
        .collect();
    let deletions: Vec<f64> = lines
        .iter()
        .filter(|l| {
            l.message == "deleted released ledgers on their bookies"
                && l.fields.get("reason").and_then(Value::as_str) == Some("truncated")
        })
        .map(|l| rel(l.at_ms))
        .collect();
    let first_trunc_ms = truncations.iter().copied().fold(f64::INFINITY, f64::min);
    let last_trunc_ms = truncations.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let last_delete_ms = deletions.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Check rounds: truncation lines more than half an interval apart belong to different checks.
    let mut sorted = truncations.clone();
    sorted.sort_by(f64::total_cmp);
    let rounds = if sorted.is_empty() {
        0
    } else {
        1 + sorted
            .windows(2)
            .filter(|w| w[1] - w[0] > opts.check_interval_ms as f64 / 2.0)
            .count()
    };
    // The window starts at the first truncation the log shows (the poll's first sight otherwise).
    let start_ms = if first_trunc_ms.is_finite() {
        first_trunc_ms.min(first_seen_ms.unwrap_or(f64::INFINITY))
    } else {
        first_seen_ms.unwrap_or(freed_ms)
    };
    let window_ms = (freed_ms - start_ms).max(0.0);

    // The same load for as long again, then stop it.
    let after_end_ms = freed_ms + window_ms;
    while origin.elapsed().as_secs_f64() * 1e3 < after_end_ms + 50.0 {
        thread::sleep(Duration::from_millis(20));
    }
    let load_sent_at_stop = load.sent();
    let record = load.stop()?;
    loadavg(&mut out, "end");
    child.stop()?;

    let ns = |ms: f64| (ms.max(0.0) * 1e6) as u64;
    let freed_secs = window_ms / 1e3;
    let gib = fill_bytes as f64 / f64::from(1u32 << 30);
    out.extend([
        ("partitions".into(), json!(opts.partitions)),
        ("segment_bytes".into(), json!(opts.segment_bytes)),
        ("retention_ms".into(), json!(opts.retention_ms)),
        ("record_age_ms".into(), json!(opts.age_ms)),
        ("value_bytes".into(), json!(opts.value_bytes)),
        ("records_per_batch".into(), json!(opts.records_per_batch)),
        ("batch_bytes".into(), json!(batch_len)),
        ("check_interval_ms".into(), json!(opts.check_interval_ms)),
        ("fill_bytes".into(), json!(fill_bytes)),
        ("fill_gib".into(), json!(gib)),
        ("fill_secs".into(), json!(fill_secs)),
        (
            "fill_mb_per_s".into(),
            json!(crate::mb_per_s(fill_bytes, fill_secs)),
        ),
        ("segment_rolls_during_fill".into(), json!(rolls)),
        ("fill_ledger_files".into(), json!(ledger_files.len())),
        ("fill_ledger_disk_bytes".into(), json!(fill_disk_bytes)),
        ("bookie_disk_bytes_before".into(), json!(bookie_bytes_before)),
        ("bookie_disk_bytes_when_freed".into(), json!(bookie_bytes_freed)),
        ("touch_done_ms".into(), json!(touch_ms)),
        ("first_truncation_ms".into(), json!(finite(first_trunc_ms))),
        ("first_truncation_seen_ms".into(), json!(first_seen_ms)),
        ("last_truncation_ms".into(), json!(finite(last_trunc_ms))),
        ("last_ledger_delete_ms".into(), json!(finite(last_delete_ms))),
        ("freed_seen_ms".into(), json!(freed_ms)),
        ("free_secs".into(), json!(freed_secs)),
        (
            "metadata_step_secs".into(),
            json!(finite((last_trunc_ms - first_trunc_ms) / 1e3)),
        ),
        (
            "free_secs_log".into(),
            json!(finite((last_delete_ms - first_trunc_ms) / 1e3)),
        ),
        ("freed_gib_per_s".into(), json!(gib / freed_secs.max(1e-9))),
        ("truncated_bytes".into(), json!(truncated_bytes)),
        ("truncated_segments".into(), json!(truncated_segments)),
        ("truncation_log_lines".into(), json!(truncations.len())),
        ("ledger_delete_log_lines".into(), json!(deletions.len())),
        ("check_rounds_that_truncated".into(), json!(rounds)),
        ("retention_checks".into(), json!(check_count)),
        ("retention_check_secs_total".into(), json!(check_sum)),
    ]);
    out.extend(opts.load.describe());
    out.extend([
        ("load_sent".into(), json!(load_sent_at_stop.max(record.sent))),
        ("load_acked".into(), json!(record.acks.len())),
        ("load_failures".into(), json!(record.failures)),
        ("load_first_failure".into(), json!(record.first_failure)),
        (
            "load_first_ack_ms".into(),
            json!(record.first_ack_ns().map(|n| n as f64 / 1e6)),
        ),
    ]);
    if let Some(first) = record.first_ack_ns() {
        let from = first + 1_000_000_000;
        if from < ns(start_ms) {
            out.extend(record.window("before", from, ns(start_ms)));
        }
    }
    out.extend(record.window("during", ns(start_ms), ns(freed_ms)));
    out.extend(record.window("after", ns(freed_ms), ns(after_end_ms)));
    Ok(out)
}

/// One v2 batch (no producer id) of `records` records of `value_bytes` bytes, all stamped
/// `timestamp` (CreateTime).
fn old_batch(records: u32, value_bytes: usize, timestamp: i64) -> anyhow::Result<Bytes> {
    let value = Bytes::from(kafka::patterned_payload(0, value_bytes));
    let recs: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            // No producer: the batch's base sequence is -1. The encoder starts a new batch where
            // offset − sequence changes, so the sequences follow the offsets.
            sequence: i32::try_from(i).unwrap_or(i32::MAX).wrapping_sub(1),
            timestamp,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut batch, &recs, &options).context("encode a record batch")?;
    Ok(batch.freeze())
}

/// The error code of the first partition of a produce response.
fn first_code(r: &ProduceResponse) -> anyhow::Result<i16> {
    r.responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .map(|p| p.error_code)
        .context("a produce response without a partition")
}

/// Writes one fresh record to every fill partition of the restarted broker (connecting as soon
/// as it listens, retrying partitions that are still opening), so each stream's fill segments are
/// followed by a new one. Returns when it was done, in ms since `origin`.
fn touch(
    addr: SocketAddr,
    partitions: i32,
    origin: Instant,
    timeout: Duration,
    child: &mut Incarnation,
) -> anyhow::Result<f64> {
    let mut pending: Vec<i32> = (0..partitions).collect();
    let mut conn: Option<raw::Conn> = None;
    let mut last = String::new();
    while origin.elapsed() < timeout {
        if let Some(status) = child.child.try_wait()? {
            bail!("the restarted broker exited ({status})");
        }
        if conn.is_none() {
            conn = raw::Conn::open(addr, "distlog-bench")
                .map_err(|e| last = format!("{e:#}"))
                .ok();
        }
        if let Some(c) = conn.as_mut() {
            let ts = i64::try_from(distlog_metadata::now_ms())?;
            let batch = raw::one_record_batch((-1, -1, -1), ts, Bytes::from_static(b"touch"))?;
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(FILL_TOPIC.to_string())))
                    .with_partition_data(
                        pending
                            .iter()
                            .map(|&p| {
                                produce_request::PartitionProduceData::default()
                                    .with_index(p)
                                    .with_records(Some(batch.clone()))
                            })
                            .collect(),
                    )]);
            match c.call::<_, ProduceResponse>(ApiKey::Produce, PRODUCE_VERSION, &req) {
                Ok(resp) => {
                    let mut still = Vec::new();
                    for p in resp.responses.iter().flat_map(|t| t.partition_responses.iter()) {
                        match p.error_code {
                            0 => {}
                            code if RETRIABLE.contains(&code) => {
                                last = format!("error {code}");
                                still.push(p.index);
                            }
                            code => bail!("the touch of partition {} was refused with error {code}", p.index),
                        }
                    }
                    pending = still;
                    if pending.is_empty() {
                        return Ok(origin.elapsed().as_secs_f64() * 1e3);
                    }
                }
                Err(e) => {
                    last = format!("{e:#}");
                    conn = None;
                }
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    bail!("the fill partitions were not all touched within {timeout:?} of the restart (last: {last})")
}

/// The broker's `/metrics` text, or `None` when it does not answer (yet).
fn metrics(addr: SocketAddr) -> Option<String> {
    http::get(addr, "/metrics", Duration::from_secs(5))
        .ok()
        .map(|r| r.body)
}

/// The ledger files (`*.log`) in `dir`.
fn ledger_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            files.push(path);
        }
    }
    Ok(files)
}

/// Disk bytes allocated to those of `files` that still exist.
fn allocated(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Disk bytes allocated to every file under `dir`.
fn dir_allocated(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_allocated(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// The 1-, 5- and 15-minute load averages of the machine.
fn loadavg() -> Vec<String> {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).map(String::from).collect())
        .unwrap_or_default()
}

/// Milliseconds since the epoch, now.
fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}
