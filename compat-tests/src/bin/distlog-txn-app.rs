//! `distlog-txn-app`: an exactly-once consume-transform-produce application, in its own process so
//! a test can kill it with SIGKILL in the middle of a transaction and start it again.
//!
//! It takes a producer id for `--transactional-id` first (`init_transactions`, which aborts a
//! transaction an earlier incarnation left open), then joins `--group` on `--input` as a
//! read_committed consumer without automatic commits. For each batch of up to `--batch-size`
//! records it begins a transaction, writes `out-<value>` with the same key to the same partition
//! of `--output` (so partition order carries over), sends the next input offsets to the
//! transaction (`send_offsets_to_transaction`) and commits. It ends when the group's committed
//! offsets reach the input's end offsets (taken at start; the input must be complete by then).
//!
//! Progress goes to stdout as JSON lines: `{"event":"ready"}`, `{"event":"produced","batch":N,
//! "records":K}` once a batch's records are written (followed by a `--pause-before-commit-ms`
//! pause, the window in which a kill leaves a transaction open), `{"event":"committed",
//! "batches":N,"records":K,"total":T}` after each commit, `{"event":"aborted",...}` when a batch
//! had to be aborted (its records are then processed again), `{"event":"rebalance",...}`,
//! `{"event":"consumer-error",...}` for transient consumer errors (it goes on), and finally
//! `{"event":"done","total":T}`. A failure prints `{"event":"error","error":...}` and
//! exits 1.

use std::collections::BTreeMap;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use distlog_compat_tests::group::{group_consumer_config, GroupMember, CLOSE_DEADLINE};
use distlog_compat_tests::kafka;
use distlog_compat_tests::txn::{transactional_config, TxnFailure, TxnProducer, TXN_CALL_TIMEOUT};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "distlog-txn-app", about = "Exactly-once consume-transform-produce")]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    /// Topic to consume.
    #[arg(long)]
    input: String,
    /// Topic to produce to (as many partitions as the input).
    #[arg(long)]
    output: String,
    /// Consumer group.
    #[arg(long)]
    group: String,
    /// `transactional.id` of the producer (the same across restarts).
    #[arg(long)]
    transactional_id: String,
    /// Records per transaction, at most.
    #[arg(long)]
    batch_size: usize,
    /// Pause between writing a batch and committing it (the open-transaction window).
    #[arg(long, default_value_t = 0)]
    pause_before_commit_ms: u64,
    /// Give up (exit 1) if not done within this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

fn emit(value: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// One consumed input record.
struct Input {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

/// How a batch ended.
enum BatchEnd {
    Committed,
    /// Aborted after an abortable error; the batch must be processed again.
    Aborted(TxnFailure),
}

struct App {
    cli: Cli,
    producer: TxnProducer,
    member: GroupMember,
    partitions: Vec<i32>,
    ends: BTreeMap<i32, i64>,
}

impl App {
    fn start(cli: Cli) -> anyhow::Result<App> {
        let producer = TxnProducer::create(&transactional_config(
            &cli.bootstrap,
            &cli.transactional_id,
            60_000,
        ))?;
        // Fence and clean up after an earlier incarnation before reading committed offsets.
        let started = Instant::now();
        loop {
            match producer.init(TXN_CALL_TIMEOUT) {
                Ok(()) => break,
                Err(e) if e.retriable && started.elapsed() < Duration::from_secs(60) => {
                    emit(json!({"event": "retry", "call": "init_transactions", "error": e.to_string()}));
                }
                Err(e) => bail!("init_transactions: {e}"),
            }
        }
        let metadata = kafka::fetch_metadata(&cli.bootstrap, Some(&cli.input))?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == cli.input)
            .with_context(|| format!("topic {} not in metadata", cli.input))?;
        let partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
        let mut ends = BTreeMap::new();
        for p in &partitions {
            let (_, high) = kafka::watermarks(&cli.bootstrap, &cli.input, *p)?;
            ends.insert(*p, high);
        }
        let mut config = group_consumer_config(&cli.bootstrap, &cli.group);
        config.set("isolation.level", "read_committed");
        let member = GroupMember::subscribe(&config, "distlog-txn-app", &[&cli.input])?;
        emit(
            json!({"event": "ready", "ends": ends.iter().map(|(p, e)| (p.to_string(), *e)).collect::<BTreeMap<_, _>>()}),
        );
        Ok(App {
            cli,
            producer,
            member,
            partitions,
            ends,
        })
    }

    /// Whether the group's committed offsets are at the input's end on every partition.
    fn done(&self) -> anyhow::Result<bool> {
        let mut tpl = TopicPartitionList::new();
        for p in &self.partitions {
            tpl.add_partition(&self.cli.input, *p);
        }
        let committed = self
            .member
            .consumer()
            .committed_offsets(tpl, Duration::from_secs(10))
            .context("OffsetFetch")?;
        for e in committed.elements() {
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            if at < self.ends.get(&e.partition()).copied().unwrap_or(0) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Polls up to a batch of records. Records polled before a rebalance are dropped: after an
    /// (eager) reassignment the consumer fetches again from the committed offsets.
    fn collect(&self) -> anyhow::Result<Vec<Input>> {
        let mut batch = Vec::new();
        let started = Instant::now();
        let mut events = self.member.events().len();
        while batch.len() < self.cli.batch_size && started.elapsed() < Duration::from_millis(500) {
            let polled = self.member.consumer().poll(Duration::from_millis(100));
            let now = self.member.events();
            if now.len() != events {
                for e in &now[events..] {
                    emit(json!({"event": "rebalance", "kind": format!("{:?}", e.kind),
                        "partitions": e.partitions.iter().map(|(_, p)| *p).collect::<Vec<_>>()}));
                }
                events = now.len();
                batch.clear();
            }
            match polled {
                Some(Ok(msg)) => batch.push(Input {
                    partition: msg.partition(),
                    offset: msg.offset(),
                    key: msg.key().map(<[u8]>::to_vec),
                    value: msg.payload().unwrap_or_default().to_vec(),
                }),
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => bail!("fatal consumer error: {e}"),
                // Transient (a node restarting, a coordinator moving): librdkafka recovers and
                // fetches again from where the consumer is; nothing consumed is lost.
                Some(Err(e)) if kafka::is_transport_error(&e) => {}
                Some(Err(e)) => emit(json!({"event": "consumer-error", "error": e.to_string()})),
                None if !batch.is_empty() => break,
                None => {}
            }
        }
        Ok(batch)
    }

    /// Processes `batch` in one transaction.
    fn process(&mut self, batch: &[Input], number: u64) -> anyhow::Result<BatchEnd> {
        self.producer
            .begin()
            .map_err(|e| anyhow::anyhow!("begin_transaction: {e}"))?;
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for r in batch {
            let mut value = b"out-".to_vec();
            value.extend_from_slice(&r.value);
            self.producer
                .send(&self.cli.output, r.partition, r.key.as_deref(), &value)?;
            next.insert(r.partition, r.offset + 1);
        }
        self.producer.flush(Duration::from_secs(60))?;
        let failed: Vec<String> = self
            .producer
            .take_deliveries()
            .into_iter()
            .filter_map(|d| d.result.err().map(|e| e.message))
            .collect();
        emit(json!({"event": "produced", "batch": number, "records": batch.len(), "failed": failed}));
        if self.cli.pause_before_commit_ms > 0 {
            thread::sleep(Duration::from_millis(self.cli.pause_before_commit_ms));
        }
        let mut offsets = TopicPartitionList::new();
        for (p, o) in &next {
            offsets.add_partition_offset(&self.cli.input, *p, Offset::Offset(*o))?;
        }
        let group = self
            .member
            .consumer()
            .group_metadata()
            .context("the consumer has no group metadata")?;
        let result = self
            .producer
            .send_offsets(&offsets, &group, TXN_CALL_TIMEOUT)
            .and_then(|()| self.commit_retrying());
        match result {
            Ok(()) => Ok(BatchEnd::Committed),
            Err(e) if e.abortable && !e.fatal => {
                self.producer
                    .abort(TXN_CALL_TIMEOUT)
                    .map_err(|a| anyhow::anyhow!("abort_transaction after {e}: {a}"))?;
                Ok(BatchEnd::Aborted(e))
            }
            Err(e) => bail!("transaction {number}: {e}"),
        }
    }

    /// `commit_transaction`, repeated while librdkafka says the call may be retried.
    fn commit_retrying(&self) -> Result<(), TxnFailure> {
        let started = Instant::now();
        loop {
            match self.producer.commit(TXN_CALL_TIMEOUT) {
                Err(e) if e.retriable && started.elapsed() < Duration::from_secs(60) => {
                    emit(json!({"event": "retry", "call": "commit_transaction", "error": e.to_string()}));
                }
                other => return other,
            }
        }
    }

    /// Moves the consumer back to the first record of `batch` on each of its partitions.
    fn rewind(&self, batch: &[Input]) {
        let mut first: BTreeMap<i32, i64> = BTreeMap::new();
        for r in batch {
            first.entry(r.partition).or_insert(r.offset);
        }
        for (p, o) in first {
            if let Err(e) =
                self.member
                    .consumer()
                    .seek(&self.cli.input, p, Offset::Offset(o), Duration::from_secs(10))
            {
                emit(json!({"event": "seek-error", "partition": p, "offset": o, "error": e.to_string()}));
            }
        }
    }

    fn run(&mut self) -> anyhow::Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(self.cli.timeout_secs);
        let (mut batches, mut total) = (0u64, 0u64);
        let mut last_done_check = Instant::now();
        loop {
            if Instant::now() >= deadline {
                bail!(
                    "not done within {} s ({total} records committed)",
                    self.cli.timeout_secs
                );
            }
            let batch = self.collect()?;
            if batch.is_empty() {
                if last_done_check.elapsed() >= Duration::from_millis(300) {
                    last_done_check = Instant::now();
                    if self.done()? {
                        return Ok(total);
                    }
                }
                continue;
            }
            match self.process(&batch, batches + 1)? {
                BatchEnd::Committed => {
                    batches += 1;
                    total += batch.len() as u64;
                    emit(
                        json!({"event": "committed", "batches": batches, "records": batch.len(), "total": total}),
                    );
                }
                BatchEnd::Aborted(e) => {
                    emit(json!({"event": "aborted", "batch": batches + 1, "error": e.to_string()}));
                    self.rewind(&batch);
                }
            }
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let result = App::start(cli).and_then(|mut app| {
        let total = app.run()?;
        emit(json!({"event": "done", "total": total}));
        app.member.close(CLOSE_DEADLINE)
    });
    if let Err(e) = result {
        emit(json!({"event": "error", "error": format!("{e:#}")}));
        std::process::exit(1);
    }
}
