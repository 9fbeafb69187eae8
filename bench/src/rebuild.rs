//! Idempotent producers, scenario 9 (issue 12): how long a partition takes to rebuild its producer
//! state when a new incarnation of its owner opens it, with many producers, and how soon the
//! first idempotent produce is acknowledged after a restart.
//!
//! The scenario runs its own single-node broker (the `distlog` binary next to this one, or
//! `$DISTLOG_BIN`), with `--log-level info --log-format json`:
//!
//! 1. creates a one-partition topic (with `segment.bytes` when given);
//! 2. gets `producers` producer ids with InitProducerId and writes `batches` batches per producer
//!    in rounds (batch 0 of every producer, then batch 1, …) with hand-built Produce requests
//!    (acks=all, producer id, epoch 0, sequences from 0) pipelined over a few raw connections —
//!    the fastest real way to make that many producers;
//! 3. stops the broker with SIGTERM and starts it again on the same data dir and ports;
//! 4. right after the spawn, produces the next batch of producer 0 (sequence `batches ×
//!    records`) until it is acknowledged: that opens the partition, which rebuilds the state
//!    before the writer starts; a partition that had lost the state would refuse the batch
//!    (UNKNOWN_PRODUCER_ID / OUT_OF_ORDER_SEQUENCE_NUMBER) and the run fails;
//! 5. retries the last batch of the last producer verbatim and checks it is answered as a
//!    duplicate (its original offset, nothing written);
//! 6. reads the rebuild from the new incarnation's log line "stream state rebuilt" (`took_ms`,
//!    `snapshot_bytes`, `replayed_entries`) and from `/metrics`
//!    (`distlog_log_state_rebuild_seconds` sum and count, `distlog_producer_ids_active`).
//!
//! With the default segment size every batch is in the first segment, which has no snapshot (the
//! state was empty when it started): the rebuild replays every entry. With a small
//! `segment.bytes` the segments roll during the fill and the last one starts with a snapshot of
//! every producer (all of them exist after the first round); only the entries after it are
//! replayed.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, InitProducerIdResponse, ProduceRequest, ProduceResponse};
use serde_json::{json, Value};

use crate::probe::BrokerProbe;
use crate::raw_produce::{
    init_pid_request, pipeline_calls, produce, produce_result, seq, spread, INIT_PID_VERSION, PRODUCE_VERSION,
};
use distlog_compat_tests::process::{locate_binary, DistlogOptions, DistlogProcess};
use distlog_compat_tests::{kafka, raw};

/// The scenario's topic (each run has a broker of its own).
const TOPIC: &str = "state-rebuild";
/// Kafka error codes a produce to a partition that is still opening may get, retried.
const RETRIABLE: &[i16] = &[3, 5, 6, 7, 14, 15, 19, 20];

/// What to build and measure.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Distinct idempotent producers.
    pub producers: usize,
    /// Batches per producer.
    pub batches: u32,
    /// Records per batch.
    pub records_per_batch: u32,
    /// Value bytes per record.
    pub value_bytes: usize,
    /// The topic's `segment.bytes` (the broker's default, 128 MiB, when `None`).
    pub segment_bytes: Option<u64>,
    /// Raw connections the producers are spread over.
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// The broker's data dir (a fresh temporary one when `None`); its log goes next to it.
    pub data_dir: Option<PathBuf>,
    /// Give up on a step (restart, first produce) after this long.
    pub timeout: Duration,
}

/// Runs the scenario (see the module docs) and returns its figures.
pub fn run(opts: &RebuildOptions) -> anyhow::Result<Vec<(String, Value)>> {
    ensure!(
        opts.producers >= 1 && opts.batches >= 1 && opts.records_per_batch >= 1,
        "nothing to write"
    );
    let mut broker = DistlogProcess::start(DistlogOptions {
        data_dir: opts.data_dir.clone(),
        extra_args: ["--log-level", "info", "--log-format", "json"]
            .map(String::from)
            .to_vec(),
        ..DistlogOptions::default()
    })?;
    let bootstrap = broker.bootstrap();
    let segment_bytes = opts.segment_bytes.map(|b| b.to_string());
    let configs: Vec<(&str, &str)> = segment_bytes
        .iter()
        .map(|b| ("segment.bytes", b.as_str()))
        .collect();
    kafka::create_topic_with_config(&bootstrap, TOPIC, 1, &configs)?;
    let addr = broker.kafka_addr();
    let connections = opts.connections.clamp(1, opts.producers);
    let pipeline = opts.pipeline.max(1);

    // Producer ids from the broker, pipelined over the connections.
    let started = Instant::now();
    let ids = spread(opts.producers, connections, |mine| {
        let mut conn = raw::Conn::open(addr, "distlog-bench")?;
        let mut got = Vec::with_capacity(mine.len());
        let reqs = mine.iter().map(|&p| Ok((p, init_pid_request())));
        pipeline_calls(
            &mut conn,
            ApiKey::InitProducerId,
            INIT_PID_VERSION,
            reqs,
            pipeline,
            |p, r| {
                let r: InitProducerIdResponse = r;
                ensure!(r.error_code == 0, "InitProducerId: error {}", r.error_code);
                got.push((p, r.producer_id.0));
                Ok(())
            },
        )?;
        Ok(got)
    })?;
    let init_secs = started.elapsed().as_secs_f64();
    ensure!(
        ids.len() == opts.producers,
        "{} producer ids for {} producers",
        ids.len(),
        opts.producers
    );
    let ids: Vec<i64> = ids.into_iter().map(|(_, id)| id).collect();
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    ensure!(
        distinct.len() == ids.len(),
        "InitProducerId handed out the same id twice"
    );

    // The fill: round r writes batch r of every producer; a producer's batches share a connection,
    // so they arrive in sequence order.
    let value = Bytes::from(kafka::patterned_payload(0, opts.value_bytes));
    let ts = i64::try_from(distlog_metadata::now_ms()).unwrap_or(0);
    let rpb = opts.records_per_batch;
    let last = opts.producers - 1;
    let started = Instant::now();
    let offsets = spread(opts.producers, connections, |mine| {
        let mut conn = raw::Conn::open(addr, "distlog-bench")?;
        let mut last_offsets = Vec::new();
        let reqs = (0..opts.batches).flat_map(|r| mine.iter().map(move |&p| (p, r)));
        let reqs = reqs.map(|(p, r)| {
            let req = produce(TOPIC, ids[p], seq(r, rpb), rpb, &value, ts + i64::from(r))?;
            Ok((p * opts.batches as usize + r as usize, req))
        });
        pipeline_calls(
            &mut conn,
            ApiKey::Produce,
            PRODUCE_VERSION,
            reqs,
            pipeline,
            |i, resp| {
                let (code, offset) = produce_result(&resp)?;
                ensure!(code == 0, "produce of batch {i}: error {code}");
                if i + 1 == (last + 1) * opts.batches as usize {
                    last_offsets.push(offset);
                }
                Ok(())
            },
        )?;
        Ok(last_offsets)
    })?;
    let fill_secs = started.elapsed().as_secs_f64();
    let last_offset = *offsets.first().context("no answer for the last batch")?;
    let batches_written = opts.producers as u64 * u64::from(opts.batches);

    let probe = BrokerProbe {
        pid: broker.pid().and_then(|p| i32::try_from(p).ok()),
        http: Some(broker.http_addr()),
    };
    let rolls = probe.metric("distlog_segment_rolls_total");
    let snapshots = probe.metric("distlog_log_state_snapshots_total");
    let active_before = probe.metric("distlog_producer_ids_active");
    let rss_before = probe.rss_mib();

    // SIGTERM, then a new incarnation on the same data dir and ports.
    let stopping = Instant::now();
    broker.terminate(Duration::from_secs(60))?;
    let stop_ms = stopping.elapsed().as_secs_f64() * 1e3;
    let log_path = broker.log_path().to_path_buf();
    let log_offset = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    let restarted = Instant::now();
    let mut child = Incarnation::spawn(&broker)?;
    let next = produce(
        TOPIC,
        ids[0],
        seq(opts.batches, rpb),
        rpb,
        &value,
        ts + i64::from(opts.batches),
    )?;
    let (attempts, first_offset) = first_produce(addr, &next, restarted, opts.timeout, &mut child)?;
    let first_produce_ms = restarted.elapsed().as_secs_f64() * 1e3;
    let end = i64::try_from(batches_written * u64::from(rpb))?;
    ensure!(
        first_offset == end,
        "the first produce after the restart landed at {first_offset}, not at the log end {end}"
    );

    // A retry of the last batch written before the restart: a duplicate, answered with its offset.
    let mut conn = raw::Conn::open(addr, "distlog-bench")?;
    let retry = produce(
        TOPIC,
        ids[last],
        seq(opts.batches - 1, rpb),
        rpb,
        &value,
        ts + i64::from(opts.batches - 1),
    )?;
    let resp: ProduceResponse = conn.call(ApiKey::Produce, PRODUCE_VERSION, &retry)?;
    let (code, dup_offset) = produce_result(&resp)?;
    ensure!(
        code == 0 && dup_offset == last_offset,
        "the retried last batch was answered with error {code} at offset {dup_offset}, \
         not as the duplicate at {last_offset}"
    );

    let probe = BrokerProbe {
        pid: i32::try_from(child.child.id()).ok(),
        http: Some(broker.http_addr()),
    };
    let rebuild_sum = probe.metric("distlog_log_state_rebuild_seconds_sum");
    let rebuild_count = probe.metric("distlog_log_state_rebuild_seconds_count");
    let active_after = probe.metric("distlog_producer_ids_active");
    let duplicates = probe.metric("distlog_producer_duplicate_batches_total");
    let rss_after = probe.rss_mib();
    child.stop()?;
    let rebuilt = rebuild_lines(&log_path, log_offset)?;
    // The scenario's partition is the one stream with entries; take the largest rebuild anyway.
    let main = rebuilt
        .iter()
        .max_by_key(|f| f.get("took_ms").and_then(Value::as_u64).unwrap_or(0))
        .context("no \"stream state rebuilt\" line in the new incarnation's log")?;
    let field = |k: &str| main.get(k).cloned().unwrap_or(Value::Null);

    Ok(vec![
        ("producers".into(), json!(opts.producers)),
        ("batches_per_producer".into(), json!(opts.batches)),
        ("records_per_batch".into(), json!(rpb)),
        ("value_bytes".into(), json!(opts.value_bytes)),
        ("segment_bytes".into(), json!(opts.segment_bytes)),
        ("connections".into(), json!(connections)),
        ("pipeline".into(), json!(pipeline)),
        ("init_producer_ids_secs".into(), json!(init_secs)),
        ("fill_secs".into(), json!(fill_secs)),
        ("fill_batches".into(), json!(batches_written)),
        (
            "fill_batches_per_s".into(),
            json!(batches_written as f64 / fill_secs.max(1e-9)),
        ),
        ("segment_rolls".into(), json!(rolls)),
        ("state_snapshots_written".into(), json!(snapshots)),
        ("producers_active_before".into(), json!(active_before)),
        ("rss_before_mib".into(), json!(rss_before)),
        ("stop_ms".into(), json!(stop_ms)),
        ("restart_to_first_produce_ms".into(), json!(first_produce_ms)),
        ("first_produce_attempts".into(), json!(attempts)),
        ("rebuild_took_ms".into(), field("took_ms")),
        ("rebuild_snapshot_bytes".into(), field("snapshot_bytes")),
        ("rebuild_replayed_entries".into(), field("replayed_entries")),
        ("rebuild_lssn".into(), field("lssn")),
        ("rebuild_lines".into(), json!(rebuilt.len())),
        ("rebuild_metric_ms".into(), json!(rebuild_sum.map(|s| s * 1e3))),
        ("rebuild_metric_count".into(), json!(rebuild_count)),
        ("producers_active_after".into(), json!(active_after)),
        ("duplicate_batches_after".into(), json!(duplicates)),
        ("rss_after_rebuild_mib".into(), json!(rss_after)),
    ])
}

/// Sends `req` until it is acknowledged: connection refused while the broker starts, retriable
/// errors while the partition opens. Any other error fails (a lost state answers
/// UNKNOWN_PRODUCER_ID or OUT_OF_ORDER_SEQUENCE_NUMBER). Returns the attempts and the offset.
fn first_produce(
    addr: std::net::SocketAddr,
    req: &ProduceRequest,
    since: Instant,
    timeout: Duration,
    child: &mut Incarnation,
) -> anyhow::Result<(u32, i64)> {
    let mut attempts = 0;
    let mut last = String::new();
    let mut conn: Option<raw::Conn> = None;
    while since.elapsed() < timeout {
        if let Some(status) = child.child.try_wait()? {
            bail!("the restarted broker exited ({status})");
        }
        if conn.is_none() {
            conn = raw::Conn::open(addr, "distlog-bench")
                .map_err(|e| last = format!("{e:#}"))
                .ok();
        }
        if let Some(c) = conn.as_mut() {
            attempts += 1;
            match c.call::<_, ProduceResponse>(ApiKey::Produce, PRODUCE_VERSION, req) {
                Ok(resp) => match produce_result(&resp)? {
                    (0, offset) => return Ok((attempts, offset)),
                    (code, _) if RETRIABLE.contains(&code) => last = format!("error {code}"),
                    (code, _) => bail!("the first produce after the restart was refused with error {code}"),
                },
                Err(e) => {
                    last = format!("{e:#}");
                    conn = None;
                }
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    bail!("no produce acknowledged within {timeout:?} of the restart (last: {last})")
}

/// The broker's second incarnation, spawned directly (not through the harness, which would wait
/// for `/health` in 50 ms steps) so the first produce can start right after the spawn. Killed if
/// dropped before [`Incarnation::stop`].
pub(crate) struct Incarnation {
    pub(crate) child: Child,
}

impl Incarnation {
    /// Spawns the binary of `broker` with its data dir, ports and log file.
    fn spawn(broker: &DistlogProcess) -> anyhow::Result<Incarnation> {
        Self::spawn_with(broker, &[])
    }

    /// [`Incarnation::spawn`] with `extra_args` appended to the command line (scenario 10 sets
    /// the retention check interval of the new incarnation).
    pub(crate) fn spawn_with(broker: &DistlogProcess, extra_args: &[String]) -> anyhow::Result<Incarnation> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(broker.log_path())?;
        let ports = broker.ports();
        let kafka = format!("127.0.0.1:{}", ports.kafka);
        let mut cmd = Command::new(locate_binary()?);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DISTLOG_") {
                cmd.env_remove(&key);
            }
        }
        cmd.arg("server")
            .arg("--data-dir")
            .arg(broker.data_dir())
            .args(["--kafka-listen", &kafka, "--advertised-kafka", &kafka])
            .args(["--http-listen", &format!("127.0.0.1:{}", ports.http)])
            .args(["--raft-listen", &format!("127.0.0.1:{}", ports.raft)])
            .args(["--log-level", "info", "--log-format", "json"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        Ok(Incarnation {
            child: cmd.spawn().context("spawn distlog")?,
        })
    }

    /// SIGTERM and wait (SIGKILL after 30 s).
    pub(crate) fn stop(&mut self) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let started = Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                self.child.kill()?;
                self.child.wait()?;
                bail!("the restarted broker did not stop within 30 s of SIGTERM");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Incarnation {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The fields of every "stream state rebuilt" line of the JSON log after byte `from`.
fn rebuild_lines(log: &Path, from: u64) -> anyhow::Result<Vec<serde_json::Map<String, Value>>> {
    let mut file = std::fs::File::open(log).with_context(|| format!("open {}", log.display()))?;
    file.seek(SeekFrom::Start(from))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("fields").and_then(Value::as_object).cloned())
        .filter(|f| f.get("message").and_then(Value::as_str) == Some("stream state rebuilt"))
        .collect())
}
