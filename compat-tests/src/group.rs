//! Consumer-group helpers: group consumer configurations, a consumer context that records every
//! rebalance callback, group members that always close within a deadline, a driver that polls
//! several members from one thread (optionally committing every message synchronously) until a
//! condition holds, and the exactly-once check that consumption against committed offsets must
//! pass.
//!
//! Everything runs on the test's thread: rdkafka's [`BaseConsumer`] runs rebalance callbacks
//! inside `poll()`, so polling the members round-robin from one thread gives a single, total order
//! of consumptions, commits and rebalances, which is what the exactly-once check reasons about.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::Value;

use crate::kafka::{self, patterned_payload, ConsumedRecord, TestRecord};
use crate::process::DistlogProcess;

/// The broker's minimum session timeout (Kafka's `group.min.session.timeout.ms` is 6000 too); the
/// group consumers here use it so an expelled member is noticed as fast as the broker allows.
pub const SESSION_TIMEOUT_MS: u64 = 6000;

/// How long closing a member may take before the harness gives up on it.
pub const CLOSE_DEADLINE: Duration = Duration::from_secs(20);

/// A consumer configuration for group members of `group`: subscribe-based, manual commits only
/// (no auto commit, no auto offset store), `earliest` reset, the broker's minimum session
/// timeout with 500 ms heartbeats, a 30 s poll interval (librdkafka's rebalance timeout) and
/// 100 ms fetch waits so polls return promptly.
pub fn group_consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = kafka::base_config(bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", "100")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", "500")
        .set("max.poll.interval.ms", "30000");
    config
}

/// What a rebalance callback reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceKind {
    /// Partitions assigned (all of them with the eager protocol, the added ones with cooperative).
    Assign,
    /// Partitions revoked (all of them with the eager protocol, the removed ones with cooperative).
    Revoke,
    /// librdkafka reported a rebalance error.
    Error,
}

/// One rebalance callback, as the application saw it.
#[derive(Debug, Clone)]
pub struct RebalanceEvent {
    /// Assign, revoke or error.
    pub kind: RebalanceKind,
    /// The partitions in the callback, sorted (topic, partition).
    pub partitions: Vec<(String, i32)>,
    /// True when the client is configured for the cooperative (incremental) protocol.
    pub cooperative: bool,
    /// The member's whole assignment right after the callback was applied, sorted.
    pub assignment_after: Vec<(String, i32)>,
    /// The error text of a [`RebalanceKind::Error`].
    pub error: Option<String>,
    /// When the callback ran.
    pub at: Instant,
}

/// A consumer context that applies rebalances the standard way (assign/unassign, or their
/// incremental forms under the cooperative protocol), keeps track of the resulting assignment,
/// and records every callback.
///
/// It overrides rdkafka's default `rebalance` because that one asks librdkafka for the rebalance
/// protocol (and a recorder would ask for the assignment) from inside the callback: both are
/// requests to librdkafka's group thread with no timeout, which hang forever when the callback
/// runs while the consumer is closing. The protocol comes from the configuration instead.
#[derive(Debug, Default)]
pub struct RecordingConsumerContext {
    cooperative: bool,
    events: Mutex<Vec<RebalanceEvent>>,
    assignment: Mutex<BTreeSet<(String, i32)>>,
}

impl RecordingConsumerContext {
    /// A context for a consumer configured with the cooperative (incremental) protocol or not.
    pub fn new(cooperative: bool) -> RecordingConsumerContext {
        RecordingConsumerContext {
            cooperative,
            ..RecordingConsumerContext::default()
        }
    }

    /// Every rebalance callback so far, in order.
    pub fn events(&self) -> Vec<RebalanceEvent> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The assignment as the rebalance callbacks left it, sorted.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.assignment
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

impl ClientContext for RecordingConsumerContext {}

impl ConsumerContext for RecordingConsumerContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let partitions = tpl_partitions(tpl);
        let kind = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => RebalanceKind::Assign,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => RebalanceKind::Revoke,
            _ => RebalanceKind::Error,
        };
        let applied = match (kind, self.cooperative) {
            (RebalanceKind::Assign, true) => consumer.incremental_assign(tpl),
            (RebalanceKind::Assign, false) => consumer.assign(tpl),
            (_, true) => consumer.incremental_unassign(tpl),
            (_, false) => consumer.unassign(),
        };
        let assignment_after = {
            let mut assignment = self.assignment.lock().unwrap_or_else(|e| e.into_inner());
            match (kind, self.cooperative) {
                (RebalanceKind::Assign, true) => assignment.extend(partitions.iter().cloned()),
                (RebalanceKind::Assign, false) => *assignment = partitions.iter().cloned().collect(),
                (_, true) => partitions.iter().for_each(|p| {
                    assignment.remove(p);
                }),
                (_, false) => assignment.clear(),
            }
            assignment.iter().cloned().collect()
        };
        let error = match (kind, applied) {
            (RebalanceKind::Error, _) => Some(format!("rebalance error {err:?}")),
            (_, Err(e)) => Some(format!("applying the rebalance failed: {e}")),
            (_, Ok(())) => None,
        };
        let event = RebalanceEvent {
            kind,
            partitions,
            cooperative: self.cooperative,
            assignment_after,
            error,
            at: Instant::now(),
        };
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    }
}

/// The (topic, partition) pairs of a partition list, sorted.
pub fn tpl_partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    let mut out: Vec<(String, i32)> = tpl
        .elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect();
    out.sort();
    out
}

/// The consumer type of a [`GroupMember`].
pub type GroupConsumer = BaseConsumer<RecordingConsumerContext>;

/// A named, subscribed group consumer that records its rebalances and is closed within
/// [`CLOSE_DEADLINE`] when dropped (rdkafka's own drop would wait for the close forever).
pub struct GroupMember {
    name: String,
    consumer: Option<GroupConsumer>,
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember").field("name", &self.name).finish()
    }
}

impl GroupMember {
    /// Creates a consumer from `config` (with `client.id` = `name`) and subscribes it to `topics`.
    pub fn subscribe(config: &ClientConfig, name: &str, topics: &[&str]) -> anyhow::Result<GroupMember> {
        let mut config = config.clone();
        config.set("client.id", name);
        let cooperative = config
            .get("partition.assignment.strategy")
            .is_some_and(|s| s.contains("cooperative"));
        let consumer: GroupConsumer = config
            .create_with_context(RecordingConsumerContext::new(cooperative))
            .with_context(|| format!("create group consumer {name}"))?;
        consumer
            .subscribe(topics)
            .with_context(|| format!("{name}: subscribe to {topics:?}"))?;
        Ok(GroupMember {
            name: name.to_string(),
            consumer: Some(consumer),
        })
    }

    /// The member's name (its `client.id`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying consumer.
    pub fn consumer(&self) -> &GroupConsumer {
        self.consumer.as_ref().expect("a live member has a consumer")
    }

    /// Every rebalance callback this member has seen, in order.
    pub fn events(&self) -> Vec<RebalanceEvent> {
        self.consumer().context().events()
    }

    /// The partitions currently assigned to this member (as its rebalance callbacks applied
    /// them), sorted.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.consumer().context().assignment()
    }

    /// The partition numbers currently assigned, sorted.
    pub fn partitions(&self) -> Vec<i32> {
        self.assignment().into_iter().map(|(_, p)| p).collect()
    }

    /// The group's committed offsets of `partitions` of `topic`, asked of the coordinator
    /// (OffsetFetch); `None` where nothing is committed.
    pub fn committed(&self, topic: &str, partitions: &[i32]) -> anyhow::Result<BTreeMap<i32, Option<i64>>> {
        committed_offsets(self.consumer(), topic, partitions)
    }

    /// Closes the consumer (LeaveGroup for a dynamic member, revocation callbacks), polling it
    /// until librdkafka reports it closed, within `deadline`.
    pub fn close(mut self, deadline: Duration) -> anyhow::Result<()> {
        let consumer = self.consumer.take().expect("a live member has a consumer");
        close_consumer(consumer, deadline).with_context(|| format!("close member {}", self.name))
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            if let Err(e) = close_consumer(consumer, CLOSE_DEADLINE) {
                eprintln!("group member {}: {e:#}", self.name);
            }
        }
    }
}

/// Closes `consumer` within `deadline`. A consumer that does not close in time is leaked (its
/// drop would block until it closes) and an error is returned.
pub fn close_consumer<C: ConsumerContext>(
    consumer: BaseConsumer<C>,
    deadline: Duration,
) -> anyhow::Result<()> {
    consumer.close_queue().context("start closing the consumer")?;
    let started = Instant::now();
    while !consumer.closed() {
        if started.elapsed() >= deadline {
            std::mem::forget(consumer);
            bail!("the consumer did not close within {deadline:?} (leaked)");
        }
        let _ = consumer.poll(Duration::from_millis(50));
    }
    drop(consumer);
    Ok(())
}

/// The committed offsets of `partitions` of `topic` for `consumer`'s group (OffsetFetch through
/// the coordinator, 10 s timeout); `None` where nothing is committed.
pub fn committed_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .context("OffsetFetch (committed offsets)")?;
    let mut out = BTreeMap::new();
    for e in committed.elements() {
        if let Err(err) = e.error() {
            bail!("committed offset of {}/{}: {err}", e.topic(), e.partition());
        }
        let offset = match e.offset() {
            Offset::Offset(o) => Some(o),
            Offset::Invalid => None,
            other => bail!("committed offset of {}/{} is {other:?}", e.topic(), e.partition()),
        };
        out.insert(e.partition(), offset);
    }
    Ok(out)
}

/// The committed offsets of `partitions` of `topic` for `group`, asked by a fresh consumer of
/// that group that does not subscribe (so it does not join the group and change it).
pub fn committed_for_group(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, Option<i64>>> {
    let consumer: BaseConsumer = group_consumer_config(bootstrap, group)
        .create()
        .context("create consumer")?;
    let result = committed_offsets(&consumer, topic, partitions);
    close_consumer(consumer, CLOSE_DEADLINE)?;
    result
}

/// Whether the driver commits what it consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPolicy {
    /// Never commit.
    Never,
    /// Commit every message synchronously (`commit_message(.., CommitMode::Sync)`) right after
    /// it is received, before the member is polled again.
    EachSync,
}

/// One consumed message: who got it, what it was, and how its commit went.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// The member's name.
    pub member: String,
    /// The topic.
    pub topic: String,
    /// The record.
    pub record: ConsumedRecord,
    /// The synchronous commit of this message (`offset + 1`): `None` when not committed,
    /// `Some(Err(..))` with the error text when the commit failed.
    pub commit: Option<Result<(), String>>,
}

/// Everything consumed by a set of members over one or more [`GroupRun::drive`] calls, in the
/// order it happened, plus the consumer errors seen meanwhile.
#[derive(Debug, Default)]
pub struct GroupRun {
    /// Every consumption, in order (duplicates included).
    pub consumed: Vec<Consumed>,
    /// Consumer errors reported by `poll`, as `member: error`.
    pub errors: Vec<String>,
    /// The librdkafka error codes of those errors, with the member's name.
    pub error_codes: Vec<(String, Option<RDKafkaErrorCode>)>,
    unique: HashSet<(String, i32, i64)>,
}

impl GroupRun {
    /// An empty run.
    pub fn new() -> GroupRun {
        GroupRun::default()
    }

    /// Distinct (topic, partition, offset) consumed so far.
    pub fn unique_count(&self) -> usize {
        self.unique.len()
    }

    /// Messages consumed by `member` (duplicates included).
    pub fn count_by(&self, member: &str) -> usize {
        self.consumed.iter().filter(|c| c.member == member).count()
    }

    /// The consumptions of `member`, in order.
    pub fn by_member<'a>(&'a self, member: &'a str) -> impl Iterator<Item = &'a Consumed> + 'a {
        self.consumed.iter().filter(move |c| c.member == member)
    }

    /// Polls every member in turn (each until its local queue is momentarily empty, at most 100
    /// messages a turn), applying `policy` to every message, until `done` holds or `deadline`
    /// passes (an error describing the state). `done` is checked before the first poll and after
    /// every member's turn.
    pub fn drive(
        &mut self,
        members: &[&GroupMember],
        policy: CommitPolicy,
        deadline: Duration,
        what: &str,
        mut done: impl FnMut(&GroupRun, &[&GroupMember]) -> bool,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if done(self, members) {
                return Ok(());
            }
            if started.elapsed() >= deadline {
                bail!(
                    "{what}: not reached within {deadline:?}; {}",
                    self.describe(members)
                );
            }
            for member in members {
                self.turn(member, policy);
                if done(self, members) {
                    return Ok(());
                }
            }
        }
    }

    /// Keeps polling `members` (with `policy`) for `period`, e.g. to show nothing more arrives
    /// or that no rebalance happens.
    pub fn settle(
        &mut self,
        members: &[&GroupMember],
        policy: CommitPolicy,
        period: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        self.drive(
            members,
            policy,
            period + Duration::from_secs(5),
            "settle",
            |_, _| started.elapsed() >= period,
        )
    }

    fn turn(&mut self, member: &GroupMember, policy: CommitPolicy) {
        let consumer = member.consumer();
        for i in 0..100 {
            let wait = if i == 0 {
                Duration::from_millis(10)
            } else {
                Duration::ZERO
            };
            match consumer.poll(wait) {
                Some(Ok(msg)) => {
                    let commit = match policy {
                        CommitPolicy::Never => None,
                        CommitPolicy::EachSync => Some(
                            consumer
                                .commit_message(&msg, CommitMode::Sync)
                                .map_err(|e| e.to_string()),
                        ),
                    };
                    let record = ConsumedRecord::from_message(&msg);
                    let topic = rdkafka::Message::topic(&msg).to_string();
                    self.unique
                        .insert((topic.clone(), record.partition, record.offset));
                    self.consumed.push(Consumed {
                        member: member.name().to_string(),
                        topic,
                        record,
                        commit,
                    });
                }
                Some(Err(e)) => {
                    self.errors.push(format!("{}: {e}", member.name()));
                    self.error_codes
                        .push((member.name().to_string(), e.rdkafka_error_code()));
                    return;
                }
                None => return,
            }
        }
    }

    /// A one-paragraph summary for failure messages: counts, assignments, recent errors.
    pub fn describe(&self, members: &[&GroupMember]) -> String {
        let per_member: Vec<String> = members
            .iter()
            .map(|m| {
                format!(
                    "{} consumed {} (assigned {:?}, {} rebalance callbacks)",
                    m.name(),
                    self.count_by(m.name()),
                    m.partitions(),
                    m.events().len()
                )
            })
            .collect();
        let failed_commits = self
            .consumed
            .iter()
            .filter(|c| matches!(c.commit, Some(Err(_))))
            .count();
        format!(
            "{} consumed ({} distinct, {failed_commits} failed commits); {}; last errors: {:?}",
            self.consumed.len(),
            self.unique_count(),
            per_member.join("; "),
            &self.errors[self.errors.len().saturating_sub(5)..]
        )
    }

    /// Checks the run against what was produced: every produced message consumed with its exact
    /// key and value, nothing consumed that was not produced, and no message delivered again
    /// below an offset the group had successfully committed. With [`CommitPolicy::Never`]
    /// (`commits_allowed_redelivery = false`) no message may be consumed twice at all.
    ///
    /// A message can legitimately come twice only when the member that first got it lost its
    /// partition before its commit succeeded (e.g. the commit failed with REBALANCE_IN_PROGRESS);
    /// returns how many such redeliveries there were.
    pub fn verify_exactly_once(
        &self,
        expected: &Produced,
        commits_allowed_redelivery: bool,
    ) -> anyhow::Result<usize> {
        let mut problems = Vec::new();
        // Highest successfully committed offset (exclusive) per (topic, partition), in time order.
        let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let mut seen: BTreeMap<(String, i32, i64), usize> = BTreeMap::new();
        let mut redeliveries = 0usize;
        for (i, c) in self.consumed.iter().enumerate() {
            let r = &c.record;
            let tp = (c.topic.clone(), r.partition);
            match expected.records.get(&(r.partition, r.offset)) {
                Some(sent) if c.topic == expected.topic => {
                    if r.key != sent.key || r.payload != sent.payload {
                        problems.push(format!(
                            "#{i} {}/{}@{} by {}: key/value differ from what was produced there \
                             (got key {:?})",
                            c.topic,
                            r.partition,
                            r.offset,
                            c.member,
                            r.key.as_deref().map(String::from_utf8_lossy)
                        ));
                    }
                }
                _ => problems.push(format!(
                    "#{i} {}/{}@{} by {} was never produced",
                    c.topic, r.partition, r.offset, c.member
                )),
            }
            let count = seen.entry((c.topic.clone(), r.partition, r.offset)).or_default();
            *count += 1;
            if *count > 1 {
                redeliveries += 1;
                if !commits_allowed_redelivery {
                    problems.push(format!(
                        "#{i} {}/{}@{} consumed again (by {}) with no commits involved",
                        c.topic, r.partition, r.offset, c.member
                    ));
                }
            }
            if let Some(&upto) = committed.get(&tp) {
                if r.offset < upto {
                    problems.push(format!(
                        "#{i} {}/{}@{} delivered to {} although the group had committed offset {upto}",
                        c.topic, r.partition, r.offset, c.member
                    ));
                }
            }
            if let Some(Ok(())) = c.commit {
                let next = r.offset + 1;
                let entry = committed.entry(tp).or_insert(next);
                *entry = (*entry).max(next);
            }
        }
        let missing: Vec<(i32, i64)> = expected
            .records
            .keys()
            .filter(|(p, o)| !seen.contains_key(&(expected.topic.clone(), *p, *o)))
            .copied()
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{} produced messages never consumed, first (partition, offset): {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            ));
        }
        ensure!(
            problems.is_empty(),
            "{} problems, first ones:\n  {}",
            problems.len(),
            problems[..problems.len().min(15)].join("\n  ")
        );
        Ok(redeliveries)
    }

    /// The offset of the first message `member` consumed from each partition, in consumption
    /// order of this run (only the consumptions from index `from` on).
    pub fn first_offsets(&self, member: &str, from: usize) -> BTreeMap<i32, i64> {
        let mut out = BTreeMap::new();
        for c in self.consumed[from..].iter().filter(|c| c.member == member) {
            out.entry(c.record.partition).or_insert(c.record.offset);
        }
        out
    }

    /// One past the highest offset consumed per partition (the committed offsets after every
    /// message was committed).
    pub fn next_offsets(&self) -> BTreeMap<i32, i64> {
        let mut out = BTreeMap::new();
        for c in &self.consumed {
            let e = out.entry(c.record.partition).or_insert(0);
            *e = (*e).max(c.record.offset + 1);
        }
        out
    }
}

/// Messages produced to one topic, by (partition, offset).
#[derive(Debug, Clone, Default)]
pub struct Produced {
    /// The topic.
    pub topic: String,
    /// What was stored where, from the delivery reports.
    pub records: BTreeMap<(i32, i64), TestRecord>,
}

impl Produced {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Adds everything of `other` (same topic).
    pub fn extend(&mut self, other: Produced) {
        self.records.extend(other.records);
    }

    /// Messages per partition.
    pub fn per_partition(&self) -> BTreeMap<i32, usize> {
        let mut out = BTreeMap::new();
        for (p, _) in self.records.keys() {
            *out.entry(*p).or_default() += 1;
        }
        out
    }
}

/// Produces messages `first..first + count` to `topic` (acks=all): message `i` goes to partition
/// `i % partitions` with key `key-<i>` and a 100-byte patterned value. Every delivery must
/// succeed; the result maps each (partition, offset) to what was stored there.
pub fn produce_spread(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    first: usize,
    count: usize,
) -> anyhow::Result<Produced> {
    let config = kafka::producer_config(bootstrap, "all");
    let mut produced = Produced {
        topic: topic.to_string(),
        records: BTreeMap::new(),
    };
    for p in 0..partitions {
        let ids: Vec<usize> = (first..first + count)
            .filter(|i| i % partitions as usize == p as usize)
            .collect();
        let records: Vec<TestRecord> = ids
            .iter()
            .map(|&i| TestRecord {
                key: Some(format!("key-{i}").into_bytes()),
                payload: Some(patterned_payload(i, 100)),
                ..TestRecord::default()
            })
            .collect();
        let deliveries = kafka::produce_records(&config, topic, Some(p), &records, Duration::from_secs(60))
            .with_context(|| format!("produce to {topic}/{p}"))?;
        for d in deliveries {
            let offset = d
                .result
                .map_err(|e| anyhow::anyhow!("message {} to {topic}/{p} failed: {e:?}", ids[d.id]))?;
            ensure!(
                d.partition == p,
                "message {} landed on partition {}",
                ids[d.id],
                d.partition
            );
            produced.records.insert((p, offset), records[d.id].clone());
        }
    }
    ensure!(
        produced.len() == count,
        "{} distinct offsets for {count} messages",
        produced.len()
    );
    Ok(produced)
}

/// True when the members' assignments are pairwise disjoint, each non-empty, and together exactly
/// partitions `0..partitions`.
pub fn assignments_cover(members: &[&GroupMember], partitions: i32) -> bool {
    let mut all = BTreeSet::new();
    for m in members {
        let mine = m.partitions();
        if mine.is_empty() {
            return false;
        }
        for p in mine {
            if !all.insert(p) {
                return false;
            }
        }
    }
    all.into_iter().eq(0..partitions)
}

/// Deletes `groups` through DeleteGroups (rdkafka's admin client, 10 s timeout): per group, its
/// name, or its name and the error code the broker answered.
pub fn delete_groups(
    bootstrap: &str,
    groups: &[&str],
) -> anyhow::Result<Vec<Result<String, (String, RDKafkaErrorCode)>>> {
    let client: AdminClient<DefaultClientContext> = kafka::base_config(bootstrap)
        .create()
        .context("create AdminClient")?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(client.delete_groups(groups, &options))
        .context("DeleteGroups")
}

/// One member of a group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    /// The coordinator-assigned member id.
    pub member_id: String,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's host as the broker saw it.
    pub client_host: String,
    /// The member's assignment, decoded from the consumer protocol, sorted.
    pub assignment: Vec<(String, i32)>,
}

/// A group as ListGroups + DescribeGroups report it (through librdkafka's `list_groups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    /// The group state (`Stable`, `Empty`, `PreparingRebalance`, ...).
    pub state: String,
    /// The protocol type (`consumer` for consumer groups).
    pub protocol_type: String,
    /// The selected assignor (e.g. `range`, `cooperative-sticky`).
    pub protocol: String,
    /// The members, sorted by client id.
    pub members: Vec<DescribedMember>,
}

/// Describes `group` (ListGroups + DescribeGroups, 10 s timeout).
pub fn describe_group(bootstrap: &str, group: &str) -> anyhow::Result<DescribedGroup> {
    let client: BaseConsumer = kafka::consumer_config(bootstrap)
        .create()
        .context("create client")?;
    let list = client
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .with_context(|| format!("describe group {group}"))?;
    let info = list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .with_context(|| format!("group {group} not listed"))?;
    let mut members = Vec::new();
    for m in info.members() {
        members.push(DescribedMember {
            member_id: m.id().to_string(),
            client_id: m.client_id().to_string(),
            client_host: m.client_host().to_string(),
            assignment: match m.assignment() {
                Some(bytes) if !bytes.is_empty() => {
                    decode_assignment(bytes).with_context(|| format!("assignment of member {}", m.id()))?
                }
                _ => Vec::new(),
            },
        });
    }
    members.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok(DescribedGroup {
        state: info.state().to_string(),
        protocol_type: info.protocol_type().to_string(),
        protocol: info.protocol().to_string(),
        members,
    })
}

/// Decodes a consumer-protocol assignment (ConsumerProtocolAssignment: version, then topics with
/// their partitions; anything after the partitions, such as user data, is ignored), sorted.
pub fn decode_assignment(bytes: &[u8]) -> anyhow::Result<Vec<(String, i32)>> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> anyhow::Result<&[u8]> {
        let out = bytes.get(pos..pos + n).context("assignment truncated")?;
        pos += n;
        Ok(out)
    };
    let _version = i16::from_be_bytes(take(2)?.try_into()?);
    let topics = i32::from_be_bytes(take(4)?.try_into()?);
    ensure!((0..10_000).contains(&topics), "implausible topic count {topics}");
    let mut out = Vec::new();
    for _ in 0..topics {
        let len = i16::from_be_bytes(take(2)?.try_into()?);
        ensure!(len >= 0, "null topic name");
        let name = String::from_utf8(take(len as usize)?.to_vec()).context("topic name")?;
        let count = i32::from_be_bytes(take(4)?.try_into()?);
        ensure!(
            (0..1_000_000).contains(&count),
            "implausible partition count {count}"
        );
        for _ in 0..count {
            out.push((name.clone(), i32::from_be_bytes(take(4)?.try_into()?)));
        }
    }
    out.sort();
    Ok(out)
}

/// `GET /admin/groups/<group>` as JSON; `None` when the broker answers 404 (unknown group).
pub fn admin_group(broker: &DistlogProcess, group: &str) -> anyhow::Result<Option<Value>> {
    let response = broker.http_get(&format!("/admin/groups/{group}"))?;
    match response.status {
        200 => Ok(Some(serde_json::from_str(&response.body).with_context(|| {
            format!("parse /admin/groups/{group}: {}", response.body)
        })?)),
        404 => Ok(None),
        status => bail!("/admin/groups/{group} answered {status}: {}", response.body),
    }
}

/// The `generation` field of `GET /admin/groups/<group>`.
pub fn admin_generation(broker: &DistlogProcess, group: &str) -> anyhow::Result<i64> {
    let group_json = admin_group(broker, group)?.with_context(|| format!("group {group} is unknown"))?;
    group_json["generation"]
        .as_i64()
        .with_context(|| format!("no integer generation in {group_json}"))
}

/// Retries `check` every 100 ms until it returns `Ok(true)` or `deadline` passes (an error naming
/// `what` and the last error, if any).
pub fn wait_until(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let last = match check() {
            Ok(true) => return Ok(()),
            Ok(false) => String::from("condition false"),
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() >= deadline {
            bail!("{what}: not within {deadline:?} (last: {last})");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A group member running in a child process (the `distlog-group-member` binary), which the
/// test can freeze with SIGSTOP to make a member that holds its connections but never heartbeats
/// again. The child is killed and reaped when this is dropped.
#[derive(Debug)]
pub struct MemberProcess {
    child: Child,
    lines: Receiver<String>,
    /// Every JSON line read from the child so far.
    pub events: Vec<Value>,
}

impl MemberProcess {
    /// Starts `binary` with `args`; its stdout (JSON lines) is collected, its stderr inherited.
    pub fn spawn(binary: &Path, args: &[String]) -> anyhow::Result<MemberProcess> {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(MemberProcess {
            child,
            lines: rx,
            events: Vec::new(),
        })
    }

    /// Reads the child's lines until one has `"event": event`, within `deadline`; returns it.
    pub fn wait_event(&mut self, event: &str, deadline: Duration) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let remaining = deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                bail!(
                    "child member did not report {event:?} within {deadline:?}; it said: {:?}",
                    self.events
                );
            }
            match self.lines.recv_timeout(remaining.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let value: Value =
                        serde_json::from_str(&line).with_context(|| format!("child printed {line:?}"))?;
                    self.events.push(value.clone());
                    if value["event"] == event {
                        return Ok(value);
                    }
                    if value["event"] == "error" {
                        bail!("child member failed: {value}");
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!(
                        "child member exited before reporting {event:?} ({:?}); it said: {:?}",
                        self.child.try_wait(),
                        self.events
                    )
                }
            }
        }
    }

    /// Freezes the child with SIGSTOP: its sockets stay open, but it never sends another byte.
    pub fn freeze(&mut self) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid fits pid_t")?;
        // SAFETY: kill(2) on our own child, which has not been reaped (we hold its Child).
        let rc = unsafe { libc::kill(pid, libc::SIGSTOP) };
        ensure!(rc == 0, "SIGSTOP: {}", std::io::Error::last_os_error());
        Ok(())
    }
}

impl Drop for MemberProcess {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_consumer_protocol_assignment() {
        let mut b = Vec::new();
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&3i16.to_be_bytes());
        b.extend_from_slice(b"top");
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes()); // null user data
        assert_eq!(
            decode_assignment(&b).expect("valid"),
            vec![("top".to_string(), 1), ("top".to_string(), 3)]
        );
        assert!(decode_assignment(&b[..9]).is_err());
    }
}
