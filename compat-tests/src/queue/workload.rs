//! The queue workload, after Jepsen's Kafka workload: idempotent acks=all
//! producers writing unique values to every partition, assign-mode
//! consumers reading everything from the start, and one consumer-group
//! member committing as it goes. Each client runs on its own thread and
//! records what it saw into a [`History`](super::checker::History).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::checker::{Commit, ReadSession, Send, SendOutcome, SessionStart};
use crate::group::{group_consumer_config, RebalanceKind, RecordingConsumerContext};
use crate::kafka::{self, RecordingProducer};

/// The workload's shape.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Kafka bootstrap list.
    pub bootstrap: String,
    /// The topic (created beforehand with `partitions` partitions).
    pub topic: String,
    /// Its partition count.
    pub partitions: i32,
    /// Producers (each writes to every partition in turn).
    pub producers: usize,
    /// Assign-mode consumers (each reads every partition from 0).
    pub readers: usize,
    /// The pause between two sends of one producer.
    pub interval: Duration,
    /// The consumer group of the committing member.
    pub group: String,
}

/// When a value was sent and acknowledged (for the recovery measure).
#[derive(Debug, Clone, Copy)]
struct Timing {
    sent: Instant,
    acked: Option<Instant>,
}

/// What the clients recorded, shared with their threads.
#[derive(Default)]
struct Shared {
    sends: Vec<Send>,
    timings: Vec<Timing>,
    sessions: Vec<ReadSession>,
    commits: Vec<Commit>,
    /// Client errors seen (not anomalies by themselves), by kind.
    errors: BTreeMap<String, usize>,
    /// The producers' librdkafka `eos` log (drains, epoch bumps, producer
    /// id resets): why a producer resent what it resent.
    client_log: Vec<String>,
}

/// The running workload.
pub struct Workload {
    cfg: WorkloadConfig,
    shared: Arc<Mutex<Shared>>,
    stop_sending: Arc<AtomicBool>,
    stop_reading: Arc<AtomicBool>,
    producers: Vec<JoinHandle<()>>,
    readers: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn count_error(shared: &Mutex<Shared>, kind: impl Into<String>) {
    *lock(shared).errors.entry(kind.into()).or_default() += 1;
}

impl Workload {
    /// Start every client.
    pub fn start(cfg: WorkloadConfig) -> anyhow::Result<Workload> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop_sending = Arc::new(AtomicBool::new(false));
        let stop_reading = Arc::new(AtomicBool::new(false));
        let mut producers = Vec::new();
        for i in 0..cfg.producers {
            let (cfg, shared, stop) = (cfg.clone(), shared.clone(), stop_sending.clone());
            producers.push(thread::spawn(move || produce(i, &cfg, &shared, &stop)));
        }
        let mut readers = Vec::new();
        for i in 0..cfg.readers {
            let (cfg, shared, stop) = (cfg.clone(), shared.clone(), stop_reading.clone());
            let mut config = kafka::consumer_config(&cfg.bootstrap);
            if let Ok(contexts) = std::env::var(READER_DEBUG_ENV) {
                // The client's own level filter (from the `log` crate's
                // level unless set) would drop the debug lines.
                config
                    .set("debug", contexts)
                    .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
            }
            let consumer = config
                .create_with_context::<_, BaseConsumer<ReaderLog>>(ReaderLog(i))
                .context("create a reader")?;
            readers.push(thread::spawn(move || {
                read_assigned(i, consumer, &cfg, &shared, &stop);
            }));
        }
        {
            let (cfg, shared, stop) = (cfg.clone(), shared.clone(), stop_reading.clone());
            readers.push(thread::spawn(move || read_group(&cfg, &shared, &stop)));
        }
        Ok(Workload {
            cfg,
            shared,
            stop_sending,
            stop_reading,
            producers,
            readers,
        })
    }

    /// Values acknowledged so far.
    pub fn acked(&self) -> usize {
        lock(&self.shared)
            .timings
            .iter()
            .filter(|t| t.acked.is_some())
            .count()
    }

    /// The time from `after` to the first acknowledgement of a value sent
    /// at or after it, if one came.
    pub fn first_ack_after(&self, after: Instant) -> Option<Duration> {
        lock(&self.shared)
            .timings
            .iter()
            .filter(|t| t.sent >= after)
            .filter_map(|t| t.acked)
            .min()
            .map(|a| a.saturating_duration_since(after))
    }

    /// Stop sending and wait for the delivery reports (each producer
    /// flushes for at most 35 s; a send still unanswered then is
    /// indeterminate to the checker).
    pub fn stop_sending(&mut self) {
        self.stop_sending.store(true, Ordering::Release);
        for p in self.producers.drain(..) {
            let _ = p.join();
        }
    }

    /// Let the readers catch up to `ends` (partition → high watermark) for
    /// at most `within`, then stop them. Returns the partitions some
    /// reader had not reached: (reader, partition, its position, the end).
    pub fn stop_reading(
        &mut self,
        ends: &BTreeMap<i32, i64>,
        within: Duration,
    ) -> Vec<(String, i32, i64, i64)> {
        let deadline = Instant::now() + within;
        let behind = || -> Vec<(String, i32, i64, i64)> {
            let s = lock(&self.shared);
            // Each reader's position per partition: after its last read.
            let mut pos: BTreeMap<(String, i32), i64> = BTreeMap::new();
            for session in &s.sessions {
                let at = session.reads.last().map_or(0, |(o, _)| o + 1);
                let e = pos
                    .entry((session.consumer.clone(), session.partition))
                    .or_insert(at);
                *e = (*e).max(at);
            }
            let mut out = Vec::new();
            for r in 0..self.cfg.readers {
                let name = format!("reader-{r}");
                for (p, end) in ends {
                    let at = pos.get(&(name.clone(), *p)).copied().unwrap_or(0);
                    if at < *end {
                        out.push((name.clone(), *p, at, *end));
                    }
                }
            }
            out
        };
        while Instant::now() < deadline && !behind().is_empty() {
            thread::sleep(Duration::from_millis(100));
        }
        let left = behind();
        self.stop_reading.store(true, Ordering::Release);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        left
    }

    /// The producers' librdkafka `eos` log lines so far.
    pub fn client_log(&self) -> Vec<String> {
        lock(&self.shared).client_log.clone()
    }

    /// Everything recorded: (sends, sessions, commits, client errors).
    pub fn take(&self) -> (Vec<Send>, Vec<ReadSession>, Vec<Commit>, BTreeMap<String, usize>) {
        let mut s = lock(&self.shared);
        (
            std::mem::take(&mut s.sends),
            std::mem::take(&mut s.sessions),
            std::mem::take(&mut s.commits),
            std::mem::take(&mut s.errors),
        )
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop_sending.store(true, Ordering::Release);
        self.stop_reading.store(true, Ordering::Release);
    }
}

/// An idempotent acks=all producer (librdkafka's defaults otherwise: it
/// retries until the message timeout, 300 s, which no trial reaches).
///
/// The message timeout is left at its default on purpose. With a short one
/// (the campaign ran with 30 s until seeds 1137 and 1139), messages queued
/// through an outage of that length time out; librdkafka then drains and
/// bumps its producer epoch and resends every message it still holds under
/// new sequence numbers, including ones whose earlier send timed out on the
/// client while the broker wrote it. Those duplicates are the client's
/// renumbering, which happens against Kafka too; the checker is here to find
/// the broker's.
fn new_producer(bootstrap: &str) -> anyhow::Result<RecordingProducer> {
    let mut config = kafka::base_config(bootstrap);
    config
        .set("debug", "eos")
        .set("log_level", "7")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("request.timeout.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        // Else the client's level filter (the `log` crate's level) drops the eos lines.
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    config
        .create_with_context(kafka::RecordingContext::with_client_log())
        .context("create producer")
}

/// Producer `i`: send `p{i}-{n}` to partition `n % partitions` every
/// interval until told to stop; record every delivery report.
fn produce(i: usize, cfg: &WorkloadConfig, shared: &Mutex<Shared>, stop: &AtomicBool) {
    let record = |shared: &Mutex<Shared>, producer: &RecordingProducer| {
        let log = producer.context().take_log();
        if !log.is_empty() {
            let t = crate::now_ms();
            lock(shared)
                .client_log
                .extend(log.into_iter().map(|l| format!("{t} p{i} {l}")));
        }
        for d in producer.context().take() {
            let mut s = lock(shared);
            let now = Instant::now();
            match d.result {
                Ok(offset) => {
                    s.sends[d.id].outcome = SendOutcome::Acked(offset);
                    s.timings[d.id].acked = Some(now);
                }
                Err(e) => {
                    s.sends[d.id].outcome = SendOutcome::Failed(e.message);
                    *s.errors.entry("produce".into()).or_default() += 1;
                }
            }
        }
    };
    let mut producer = match new_producer(&cfg.bootstrap) {
        Ok(p) => p,
        Err(e) => {
            count_error(shared, format!("create producer: {e:#}"));
            return;
        }
    };
    let mut n = 0u64;
    while !stop.load(Ordering::Acquire) {
        // A fatal error (the idempotent producer lost its sequence state)
        // ends this producer; a fresh one (a new producer id) goes on.
        if let Some((code, reason)) = producer.client().fatal_error() {
            count_error(shared, format!("fatal producer error {code:?}: {reason}"));
            let _ = producer.flush(Duration::from_secs(5));
            record(shared, &producer);
            match new_producer(&cfg.bootstrap) {
                Ok(p) => producer = p,
                Err(e) => {
                    count_error(shared, format!("create producer: {e:#}"));
                    return;
                }
            }
        }
        let partition = (n % cfg.partitions as u64) as i32;
        let value = format!("p{i}-{n}");
        let id = {
            let mut s = lock(shared);
            s.sends.push(Send {
                value: value.clone(),
                partition,
                outcome: SendOutcome::Unknown,
            });
            s.timings.push(Timing {
                sent: Instant::now(),
                acked: None,
            });
            s.sends.len() - 1
        };
        let rec = BaseRecord::<(), String, Box<usize>>::with_opaque_to(&cfg.topic, Box::new(id))
            .partition(partition)
            .payload(&value);
        if let Err((e, _)) = producer.send(rec) {
            let mut s = lock(shared);
            s.sends[id].outcome = SendOutcome::Failed(format!("enqueue: {e}"));
        }
        n += 1;
        producer.poll(Duration::ZERO);
        record(shared, &producer);
        thread::sleep(cfg.interval);
    }
    let _ = producer.flush(Duration::from_secs(35));
    producer.poll(Duration::ZERO);
    record(shared, &producer);
}

/// Reader `i`: every partition from offset 0, one session per partition
/// for its whole life.
/// Set to librdkafka debug contexts (e.g. `fetch,topic,metadata`) to have
/// the assign-mode readers log them to stderr, with the time and reader:
/// for replaying a trial whose readers got stuck (`scripts/chaos.sh --seed S`).
pub const READER_DEBUG_ENV: &str = "DISTLOG_CHAOS_READER_DEBUG";

/// An assign-mode reader's client context: its librdkafka log goes to
/// stderr, tagged with the reader (only debug lines when
/// [`READER_DEBUG_ENV`] asks for them; warnings and errors otherwise).
struct ReaderLog(usize);

impl rdkafka::ClientContext for ReaderLog {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        eprintln!("{} reader-{} {level:?} {fac} {message}", crate::now_ms(), self.0);
    }
}

impl rdkafka::consumer::ConsumerContext for ReaderLog {}

fn read_assigned(
    i: usize,
    consumer: BaseConsumer<ReaderLog>,
    cfg: &WorkloadConfig,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
) {
    let name = format!("reader-{i}");
    let mut tpl = TopicPartitionList::new();
    let mut index = BTreeMap::new();
    {
        let mut s = lock(shared);
        for p in 0..cfg.partitions {
            if tpl
                .add_partition_offset(&cfg.topic, p, Offset::Offset(0))
                .is_err()
            {
                return;
            }
            index.insert(p, s.sessions.len());
            s.sessions.push(ReadSession {
                consumer: name.clone(),
                partition: p,
                start: SessionStart::Assigned(0),
                reads: Vec::new(),
            });
        }
    }
    if let Err(e) = consumer.assign(&tpl) {
        count_error(shared, format!("assign: {e}"));
        return;
    }
    while !stop.load(Ordering::Acquire) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                if let Some(&k) = index.get(&m.partition()) {
                    lock(shared).sessions[k].reads.push((m.offset(), value));
                }
            }
            Some(Err(e)) => count_error(shared, format!("{name}: {e}")),
            None => {}
        }
    }
}

/// The group member: subscribe, read, commit every 200 ms what it read.
/// Every assignment starts a session that must resume where the group
/// committed.
fn read_group(cfg: &WorkloadConfig, shared: &Mutex<Shared>, stop: &AtomicBool) {
    let consumer: BaseConsumer<RecordingConsumerContext> =
        match group_consumer_config(&cfg.bootstrap, &cfg.group)
            .create_with_context(RecordingConsumerContext::new(false))
        {
            Ok(c) => c,
            Err(e) => {
                count_error(shared, format!("create the group member: {e}"));
                return;
            }
        };
    if let Err(e) = consumer.subscribe(&[&cfg.topic]) {
        count_error(shared, format!("subscribe: {e}"));
        return;
    }
    let name = "group-member".to_string();
    let mut seen_events = 0;
    // partition -> (session index, next offset to commit if any new)
    let mut current: BTreeMap<i32, usize> = BTreeMap::new();
    let mut committed_upto: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::Acquire) {
        let polled = consumer.poll(Duration::from_millis(100));
        let events = consumer.context().events();
        for ev in &events[seen_events..] {
            let mut s = lock(shared);
            match ev.kind {
                RebalanceKind::Assign => {
                    current.clear();
                    for (_, p) in &ev.partitions {
                        let (acked, attempted) = commit_bounds(&s.commits, *p);
                        current.insert(*p, s.sessions.len());
                        s.sessions.push(ReadSession {
                            consumer: name.clone(),
                            partition: *p,
                            start: SessionStart::Group { acked, attempted },
                            reads: Vec::new(),
                        });
                    }
                }
                RebalanceKind::Revoke => current.clear(),
                RebalanceKind::Error => *s.errors.entry("rebalance error".into()).or_default() += 1,
            }
        }
        seen_events = events.len();
        match polled {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                if let Some(&k) = current.get(&m.partition()) {
                    lock(shared).sessions[k].reads.push((m.offset(), value));
                }
            }
            Some(Err(e)) => count_error(shared, format!("{name}: {e}")),
            None => {}
        }
        if last_commit.elapsed() >= Duration::from_millis(200) {
            last_commit = Instant::now();
            commit(&consumer, cfg, shared, &current, &mut committed_upto);
        }
    }
    commit(&consumer, cfg, shared, &current, &mut committed_upto);
}

/// (highest acknowledged, highest attempted) commit of partition `p`.
fn commit_bounds(commits: &[Commit], p: i32) -> (Option<i64>, Option<i64>) {
    let of_p = commits.iter().filter(|c| c.partition == p);
    let acked = of_p.clone().filter(|c| c.acked).map(|c| c.offset).max();
    let attempted = of_p.map(|c| c.offset).max();
    (acked, attempted)
}

/// Commit, synchronously, the position after the last record read in
/// each current session that moved since the last commit.
fn commit(
    consumer: &BaseConsumer<RecordingConsumerContext>,
    cfg: &WorkloadConfig,
    shared: &Mutex<Shared>,
    current: &BTreeMap<i32, usize>,
    committed_upto: &mut BTreeMap<i32, i64>,
) {
    let mut tpl = TopicPartitionList::new();
    let mut offsets = Vec::new();
    {
        let s = lock(shared);
        for (p, k) in current {
            let Some((last, _)) = s.sessions[*k].reads.last() else {
                continue;
            };
            let next = last + 1;
            if committed_upto.get(p) == Some(&next) {
                continue;
            }
            if tpl
                .add_partition_offset(&cfg.topic, *p, Offset::Offset(next))
                .is_err()
            {
                continue;
            }
            offsets.push((*p, next));
        }
    }
    if offsets.is_empty() {
        return;
    }
    let acked = consumer.commit(&tpl, CommitMode::Sync).is_ok();
    let mut s = lock(shared);
    for (p, offset) in offsets {
        s.commits.push(Commit {
            partition: p,
            offset,
            acked,
        });
        if acked {
            committed_upto.insert(p, offset);
        }
    }
    if !acked {
        *s.errors.entry("commit".into()).or_default() += 1;
    }
}
