//! The classic consumer-group protocol through librdkafka: subscribe-based consumers sharing
//! partitions, rebalances when members join and leave, synchronous commits surviving consumer and
//! broker restarts (kill -9), expulsion of a member that stops heartbeating, static membership,
//! and the cooperative-sticky (incremental) protocol.
//!
//! Every test starts its own broker and polls all of its consumers from the test thread (see
//! `distlog_compat_tests::group`), so consumptions, commits and rebalance callbacks have one total
//! order and the exactly-once checks can be exact.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use distlog_compat_tests::group::{
    self, admin_generation, admin_group, assignments_cover, committed_for_group, describe_group,
    group_consumer_config, produce_spread, wait_until, CommitPolicy, GroupMember, GroupRun, MemberProcess,
    Produced, RebalanceKind, CLOSE_DEADLINE,
};
use distlog_compat_tests::{http, kafka, raw, DistlogOptions, DistlogProcess, OrPanic};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, RebalanceProtocol};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// Starts a broker whose groups wait `delay_ms` for more members before their first rebalance
/// (Kafka's `group.initial.rebalance.delay.ms`).
fn broker_with_initial_delay(delay_ms: u64) -> DistlogProcess {
    DistlogProcess::start(DistlogOptions {
        extra_args: vec![
            "--group-initial-rebalance-delay-ms".to_string(),
            delay_ms.to_string(),
        ],
        ..DistlogOptions::default()
    })
    .or_panic("start distlog")
}

/// A broker (see [`broker_with_initial_delay`]) with `topic` created over `partitions` partitions
/// and `records` records produced spread over them.
fn broker_with_records(
    delay_ms: u64,
    topic: &str,
    partitions: i32,
    records: usize,
) -> (DistlogProcess, String, Produced) {
    let broker = broker_with_initial_delay(delay_ms);
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, topic, partitions).or_panic("create topic");
    let produced = produce_spread(&bootstrap, topic, partitions, 0, records).or_panic("produce");
    (broker, bootstrap, produced)
}

/// The members of a group as the admin API lists them: (client_id, group_instance_id, partitions).
fn admin_members(group_json: &Value) -> Vec<(String, Option<String>, Vec<i64>)> {
    let members = group_json["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members array in {group_json}"));
    members
        .iter()
        .map(|m| {
            let mut partitions: Vec<i64> = m["assignment"]
                .as_array()
                .map(|topics| {
                    topics
                        .iter()
                        .flat_map(|t| t["partitions"].as_array().cloned().unwrap_or_default())
                        .filter_map(|p| p.as_i64())
                        .collect()
                })
                .unwrap_or_default();
            partitions.sort_unstable();
            (
                m["client_id"].as_str().unwrap_or_default().to_string(),
                m["group_instance_id"].as_str().map(str::to_string),
                partitions,
            )
        })
        .collect()
}

/// The committed offsets the admin API reports for `topic`, by partition.
fn admin_offsets(group_json: &Value, topic: &str) -> BTreeMap<i64, i64> {
    group_json["offsets"]
        .as_array()
        .unwrap_or_else(|| panic!("no offsets array in {group_json}"))
        .iter()
        .filter(|o| o["topic"] == topic)
        .map(|o| {
            (
                o["partition"].as_i64().expect("partition"),
                o["committed_offset"].as_i64().expect("committed_offset"),
            )
        })
        .collect()
}

/// DescribeGroups (through librdkafka's ListGroups + DescribeGroups) shows a Stable consumer
/// group running `protocol` whose members are exactly `members`, each with the assignment its
/// client reports.
fn assert_described(bootstrap: &str, group_id: &str, protocol: &str, members: &[&GroupMember]) {
    let described = describe_group(bootstrap, group_id).or_panic("DescribeGroups");
    assert_eq!(
        (
            described.state.as_str(),
            described.protocol_type.as_str(),
            described.protocol.as_str()
        ),
        ("Stable", "consumer", protocol),
        "{described:?}"
    );
    let got: Vec<(String, Vec<(String, i32)>)> = described
        .members
        .iter()
        .map(|m| (m.client_id.clone(), m.assignment.clone()))
        .collect();
    let mut want: Vec<(String, Vec<(String, i32)>)> = members
        .iter()
        .map(|m| (m.name().to_string(), m.assignment()))
        .collect();
    want.sort();
    assert_eq!(got, want, "DescribeGroups members and assignments: {described:?}");
}

/// `GET /admin/groups/<group>` shows a Stable group whose members are exactly `members` (by
/// client id), each with the assignment its client reports.
fn assert_admin_members(broker: &DistlogProcess, group_id: &str, members: &[&GroupMember]) {
    let group_json = admin_group(broker, group_id)
        .or_panic("admin")
        .unwrap_or_else(|| panic!("GET /admin/groups/{group_id} answered 404"));
    assert_eq!(group_json["state"], "Stable", "{group_json}");
    assert_eq!(group_json["protocol_type"], "consumer", "{group_json}");
    let mut got: Vec<(String, Vec<i64>)> = admin_members(&group_json)
        .into_iter()
        .map(|(client, _, parts)| (client, parts))
        .collect();
    got.sort();
    let mut want: Vec<(String, Vec<i64>)> = members
        .iter()
        .map(|m| {
            (
                m.name().to_string(),
                m.partitions().into_iter().map(i64::from).collect(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(
        got, want,
        "members and assignments in /admin/groups/{group_id}: {group_json}"
    );
}

/// Every consumption of `run` was committed successfully.
fn assert_all_commits_ok(run: &GroupRun) {
    let failed: Vec<String> = run
        .consumed
        .iter()
        .filter_map(|c| match &c.commit {
            Some(Ok(())) => None,
            other => Some(format!(
                "{}/{}@{} by {}: {other:?}",
                c.topic, c.record.partition, c.record.offset, c.member
            )),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} commits did not succeed, first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

/// Per partition, the offsets consumed are 0, 1, 2, … in order (one owner, no rebalance).
fn assert_in_order_from_zero(run: &GroupRun, produced: &Produced) {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for c in &run.consumed {
        let expected = next.entry(c.record.partition).or_insert(0);
        assert_eq!(
            c.record.offset, *expected,
            "partition {} consumed out of order (by {})",
            c.record.partition, c.member
        );
        *expected += 1;
    }
    let per_partition: BTreeMap<i32, i64> = produced
        .per_partition()
        .into_iter()
        .map(|(p, n)| (p, n as i64))
        .collect();
    assert_eq!(next, per_partition, "messages consumed per partition");
}

#[test]
fn two_members_split_four_partitions_and_consume_20000_exactly_once() {
    // The default initial rebalance delay (3 s): both members join before the first rebalance,
    // so the group forms once, with both, and nothing is consumed twice without commits.
    let (broker, bootstrap, produced) = broker_with_records(3000, "split", 4, 20_000);
    let topic = "split";

    let config = group_consumer_config(&bootstrap, "split-group");
    let c1 = GroupMember::subscribe(&config, "c1", &[topic]).or_panic("c1");
    let c2 = GroupMember::subscribe(&config, "c2", &[topic]).or_panic("c2");
    let members = [&c1, &c2];
    let mut run = GroupRun::new();
    run.drive(
        &members,
        CommitPolicy::Never,
        Duration::from_secs(45),
        "consume 20,000",
        |r, _| r.unique_count() >= 20_000,
    )
    .or_panic("consume");
    run.settle(&members, CommitPolicy::Never, Duration::from_secs(1))
        .or_panic("settle");

    assert!(
        assignments_cover(&members, 4),
        "assignments {:?} and {:?} must be non-empty, disjoint and cover 0..4",
        c1.partitions(),
        c2.partitions()
    );
    assert_eq!(run.consumed.len(), 20_000, "{}", run.describe(&members));
    run.verify_exactly_once(&produced, false).or_panic("exactly once");
    assert_in_order_from_zero(&run, &produced);
    for m in members {
        let owned = m.partitions();
        let expected: usize = produced
            .per_partition()
            .iter()
            .filter(|(p, _)| owned.contains(p))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            run.count_by(m.name()),
            expected,
            "{} consumed its partitions' messages",
            m.name()
        );
        assert!(
            run.by_member(m.name())
                .all(|c| owned.contains(&c.record.partition)),
            "{} consumed only from its own partitions {owned:?}",
            m.name()
        );
        let events = m.events();
        assert_eq!(
            events
                .iter()
                .map(|e| (e.kind, e.partitions.clone()))
                .collect::<Vec<_>>(),
            vec![(RebalanceKind::Assign, m.assignment())],
            "{}: one assignment, no rebalance afterwards",
            m.name()
        );
    }

    assert_described(&bootstrap, "split-group", "range", &members);
    assert_admin_members(&broker, "split-group", &members);
}

/// A third member `c3` subscribes to `topic` (4 partitions) while `members` consume with
/// synchronous commits: wait until the three cover every partition and 800 records are in, produce
/// 800 more, and consume them with `c3` taking part. Returns `c3` and when it subscribed.
fn third_member_joins(
    run: &mut GroupRun,
    members: [&GroupMember; 2],
    config: &rdkafka::ClientConfig,
    bootstrap: &str,
    topic: &str,
    produced: &mut Produced,
) -> (GroupMember, Instant) {
    let (each, deadline) = (CommitPolicy::EachSync, Duration::from_secs(30));
    let joined = Instant::now();
    let c3 = GroupMember::subscribe(config, "c3", &[topic]).or_panic("c3");
    let all = [members[0], members[1], &c3];
    run.drive(&all, each, deadline, "three members assigned", |r, m| {
        assignments_cover(m, 4) && r.unique_count() >= 800
    })
    .or_panic("phase 2");
    produced.extend(produce_spread(bootstrap, topic, 4, 800, 800).or_panic("produce 2"));
    run.drive(&all, each, deadline, "three members consume", |r, _| {
        r.unique_count() >= 1600 && r.count_by("c3") > 0
    })
    .or_panic("phase 3");
    (c3, joined)
}

#[test]
fn third_member_joins_then_one_leaves_and_sync_commits_keep_it_exactly_once() {
    let (broker, bootstrap, mut produced) = broker_with_records(1000, "rebalance", 4, 800);
    let topic = "rebalance";
    let group_id = "rebalance-group";

    let config = group_consumer_config(&bootstrap, group_id);
    let c1 = GroupMember::subscribe(&config, "c1", &[topic]).or_panic("c1");
    let c2 = GroupMember::subscribe(&config, "c2", &[topic]).or_panic("c2");
    let mut run = GroupRun::new();
    let each = CommitPolicy::EachSync;
    let deadline = Duration::from_secs(30);
    run.drive(&[&c1, &c2], each, deadline, "two members consume 300", |r, _| {
        r.unique_count() >= 300
    })
    .or_panic("phase 1");

    // A third member joins while the first batch is being consumed.
    let (c3, c3_joined) = third_member_joins(&mut run, [&c1, &c2], &config, &bootstrap, topic, &mut produced);

    // c1 leaves (LeaveGroup) while the third batch is being consumed.
    produced.extend(produce_spread(&bootstrap, topic, 4, 1600, 800).or_panic("produce 3"));
    run.drive(&[&c1, &c2, &c3], each, deadline, "part of batch 3", |r, _| {
        r.unique_count() >= 1700
    })
    .or_panic("phase 4");
    let c1_partitions = c1.partitions();
    let c1_left = Instant::now();
    c1.close(CLOSE_DEADLINE).or_panic("close c1");
    run.drive(&[&c2, &c3], each, deadline, "two members take over", |r, m| {
        assignments_cover(m, 4) && r.unique_count() >= 2400
    })
    .or_panic("phase 5");
    run.settle(&[&c2, &c3], each, Duration::from_secs(1))
        .or_panic("settle");

    let redelivered = run.verify_exactly_once(&produced, true).or_panic("exactly once");
    let failed_commits = run
        .consumed
        .iter()
        .filter(|c| matches!(c.commit, Some(Err(_))))
        .count();
    assert!(
        redelivered <= failed_commits,
        "{redelivered} redeliveries but only {failed_commits} failed commits"
    );
    eprintln!("{redelivered} messages redelivered after failed commits ({failed_commits} failed)");

    // The assignment changes were observed by the members.
    let c3_events = c3.events();
    assert!(
        c3_events
            .iter()
            .any(|e| e.kind == RebalanceKind::Assign && !e.partitions.is_empty()),
        "c3 was assigned partitions: {c3_events:?}"
    );
    let c2_events = c2.events();
    let after =
        |t: Instant, kind: RebalanceKind| c2_events.iter().filter(move |e| e.at > t && e.kind == kind);
    assert!(
        after(c3_joined, RebalanceKind::Revoke).count() >= 1
            && after(c3_joined, RebalanceKind::Assign).count() >= 1,
        "c2 saw the rebalance for c3's join: {c2_events:?}"
    );
    assert!(
        after(c1_left, RebalanceKind::Assign).count() >= 1,
        "c2 saw the rebalance for c1's leave: {c2_events:?}"
    );
    assert!(
        c3_events
            .iter()
            .any(|e| e.at > c1_left && e.kind == RebalanceKind::Assign),
        "c3 saw the rebalance for c1's leave: {c3_events:?}"
    );
    assert!(!c1_partitions.is_empty(), "c1 had partitions before it left");
    let final_union: BTreeSet<i32> = c2.partitions().into_iter().chain(c3.partitions()).collect();
    assert!(
        c1_partitions.iter().all(|p| final_union.contains(p)),
        "c1's partitions {c1_partitions:?} moved to c2/c3 ({final_union:?})"
    );

    // Every message was committed: the group's offsets are the partitions' ends.
    let ends: BTreeMap<i32, Option<i64>> = produced
        .per_partition()
        .into_iter()
        .map(|(p, n)| (p, Some(n as i64)))
        .collect();
    assert_eq!(c2.committed(topic, &[0, 1, 2, 3]).or_panic("committed"), ends);
    assert_described(&bootstrap, group_id, "range", &[&c2, &c3]);
    assert_admin_members(&broker, group_id, &[&c2, &c3]);

    // The coordinator's metrics counted the commits and the rebalances (forming the group, c3's
    // join, c1's leave; more if c2 joined after c1's first rebalance).
    let metrics = broker.http_get("/metrics").or_panic("/metrics").body;
    let ok_commits = run.consumed.len() - failed_commits;
    let commits = http::metric_sum(&metrics, "distlog_group_offset_commits_total").unwrap_or(-1.0);
    assert!(
        commits >= ok_commits as f64 && commits <= run.consumed.len() as f64,
        "distlog_group_offset_commits_total = {commits}, {ok_commits} commits succeeded"
    );
    let rebalances = http::metric_sum(&metrics, "distlog_group_rebalances_total").unwrap_or(-1.0);
    assert!(
        (3.0..=6.0).contains(&rebalances),
        "distlog_group_rebalances_total = {rebalances}"
    );
    let stable = http::metric_sum(&metrics, "distlog_groups{state=\"Stable\"}").unwrap_or(-1.0);
    assert_eq!(stable, 1.0, "one Stable group in distlog_groups");
}

#[test]
fn committed_offsets_survive_a_consumer_restart_and_a_broker_kill9() {
    let mut broker = broker_with_initial_delay(300);
    let bootstrap = broker.bootstrap();
    let topic = "durable";
    let group_id = "durable-group";
    let partitions = [0, 1];
    kafka::create_topic(&bootstrap, topic, 2).or_panic("create topic");
    let produced = produce_spread(&bootstrap, topic, 2, 0, 1000).or_panic("produce");
    let config = group_consumer_config(&bootstrap, group_id);
    let mut run = GroupRun::new();
    let deadline = Duration::from_secs(30);

    // First consumer: 300 messages, each committed synchronously, then a clean close.
    let c1 = GroupMember::subscribe(&config, "c1", &[topic]).or_panic("c1");
    run.drive(
        &[&c1],
        CommitPolicy::EachSync,
        deadline,
        "c1 consumes 300",
        |r, _| r.unique_count() >= 300,
    )
    .or_panic("c1");
    c1.close(CLOSE_DEADLINE).or_panic("close c1");
    assert_all_commits_ok(&run);
    let as_committed = |next: BTreeMap<i32, i64>| -> BTreeMap<i32, Option<i64>> {
        partitions.iter().map(|p| (*p, next.get(p).copied())).collect()
    };
    let expected = as_committed(run.next_offsets());
    assert_eq!(
        committed_for_group(&bootstrap, group_id, topic, &partitions).or_panic("committed"),
        expected,
        "committed offsets after the first consumer"
    );

    // A new consumer of the group resumes exactly at the committed offsets.
    let mark = run.consumed.len();
    let c2 = GroupMember::subscribe(&config, "c2", &[topic]).or_panic("c2");
    run.drive(
        &[&c2],
        CommitPolicy::EachSync,
        deadline,
        "c2 consumes 300 more",
        |r, _| r.unique_count() >= 600,
    )
    .or_panic("c2");
    let resumed = run.first_offsets("c2", mark);
    for (p, first) in &resumed {
        assert_eq!(
            *first,
            expected[p].unwrap_or(0),
            "c2 resumed partition {p} at the committed offset"
        );
    }
    c2.close(CLOSE_DEADLINE).or_panic("close c2");
    assert_all_commits_ok(&run);
    let expected = as_committed(run.next_offsets());

    // kill -9 and restart on the same data: the commits are durable.
    broker.kill9().or_panic("kill -9");
    broker.restart().or_panic("restart");
    let bootstrap = broker.bootstrap();
    assert_eq!(
        committed_for_group(&bootstrap, group_id, topic, &partitions).or_panic("committed after restart"),
        expected,
        "committed offsets after kill -9 and restart"
    );
    // Checked at the end, after the Kafka-level checks.
    let admin_after_restart = admin_group(&broker, group_id);

    let mark = run.consumed.len();
    let config = group_consumer_config(&bootstrap, group_id);
    let c3 = GroupMember::subscribe(&config, "c3", &[topic]).or_panic("c3");
    run.drive(
        &[&c3],
        CommitPolicy::EachSync,
        deadline,
        "c3 consumes the rest",
        |r, _| r.unique_count() >= 1000,
    )
    .or_panic("c3");
    run.settle(&[&c3], CommitPolicy::EachSync, Duration::from_secs(1))
        .or_panic("settle");
    for (p, first) in run.first_offsets("c3", mark) {
        assert_eq!(
            first,
            expected[&p].unwrap_or(0),
            "c3 resumed partition {p} at the offset committed before the crash"
        );
    }
    assert_all_commits_ok(&run);
    // Nothing was delivered twice across both restarts.
    run.verify_exactly_once(&produced, false).or_panic("exactly once");
    assert_eq!(run.consumed.len(), 1000);

    // The admin API read the durable offsets back after the restart.
    let group_json = admin_after_restart
        .or_panic("admin")
        .expect("the group survives the restart (GET /admin/groups/durable-group answered 404)");
    let admin_committed: BTreeMap<i64, i64> = expected
        .iter()
        .filter_map(|(p, o)| o.map(|o| (i64::from(*p), o)))
        .collect();
    assert_eq!(admin_offsets(&group_json, topic), admin_committed, "{group_json}");
}

#[test]
fn a_member_that_stops_heartbeating_is_expelled_and_its_partitions_move() {
    // The dead member must hold its connections open but never send another heartbeat. An
    // in-process rdkafka consumer cannot do that (librdkafka heartbeats from its own background
    // thread whether or not the application polls), so member A runs in a child process
    // (`distlog-group-member`) that is frozen with SIGSTOP: a real librdkafka member that simply
    // goes silent, exactly like a hung or partitioned consumer.
    let (broker, bootstrap, produced) = broker_with_records(300, "expel", 4, 2000);
    let topic = "expel";
    let group_id = "expel-group";

    let binary = Path::new(env!("CARGO_BIN_EXE_distlog-group-member"));
    let args: Vec<String> = [
        "--bootstrap",
        &bootstrap,
        "--topic",
        topic,
        "--group",
        group_id,
        "--messages",
        "500",
        "--name",
        "a",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut a = MemberProcess::spawn(binary, &args).or_panic("spawn member A");
    a.wait_event("done", Duration::from_secs(45)).or_panic("member A");
    let a_assigned: Vec<Value> = a
        .events
        .iter()
        .filter(|e| e["event"] == "assigned")
        .cloned()
        .collect();
    assert_eq!(
        a_assigned.last().map(|e| e["partitions"].clone()),
        Some(serde_json::json!([0, 1, 2, 3])),
        "A alone was assigned all four partitions: {a_assigned:?}"
    );
    let a_consumed: BTreeSet<(i32, i64)> = a
        .events
        .iter()
        .filter(|e| e["event"] == "consumed")
        .map(|e| {
            (
                e["partition"].as_i64().expect("partition") as i32,
                e["offset"].as_i64().expect("offset"),
            )
        })
        .collect();
    assert_eq!(a_consumed.len(), 500, "A consumed 500 distinct messages");
    let mut a_next: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in &a_consumed {
        let e = a_next.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }

    a.freeze().or_panic("SIGSTOP member A");
    let frozen = Instant::now();
    let config = group_consumer_config(&bootstrap, group_id);
    let b = GroupMember::subscribe(&config, "b", &[topic]).or_panic("b");
    let mut run = GroupRun::new();
    run.drive(
        &[&b],
        CommitPolicy::EachSync,
        Duration::from_secs(40),
        "B takes over",
        |r, m| m[0].partitions() == [0, 1, 2, 3] && r.unique_count() >= 1500,
    )
    .or_panic("B consumes the rest");
    run.settle(&[&b], CommitPolicy::EachSync, Duration::from_secs(1))
        .or_panic("settle");

    let took_over = b
        .events()
        .iter()
        .find(|e| e.kind == RebalanceKind::Assign && e.assignment_after.len() == 4)
        .map(|e| e.at.duration_since(frozen))
        .expect("B was assigned all four partitions");
    // A's last heartbeat was at most one heartbeat interval (500 ms) before the freeze, so the
    // broker may expel it no earlier than ~5.5 s after; a broker that hands A's partitions over
    // sooner is not honouring the session timeout.
    assert!(
        took_over >= Duration::from_millis(group::SESSION_TIMEOUT_MS - 1500),
        "B got A's partitions {took_over:?} after A froze, before A's session could expire"
    );
    eprintln!("B owned all partitions {took_over:?} after A froze");

    // B resumed at A's commits and consumed exactly the rest.
    for (p, first) in run.first_offsets("b", 0) {
        assert_eq!(
            first,
            a_next.get(&p).copied().unwrap_or(0),
            "B resumed partition {p}"
        );
    }
    let rest = Produced {
        topic: topic.to_string(),
        records: produced
            .records
            .iter()
            .filter(|(k, _)| !a_consumed.contains(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
    };
    run.verify_exactly_once(&rest, false)
        .or_panic("B consumed the rest exactly once");
    assert_eq!(run.consumed.len(), 1500);
    assert_all_commits_ok(&run);

    // A is gone from the group; B alone owns everything.
    assert_described(&bootstrap, group_id, "range", &[&b]);
    assert_admin_members(&broker, group_id, &[&b]);
}

#[test]
fn a_static_member_rejoins_within_its_session_without_a_rebalance() {
    let (broker, bootstrap, mut produced) = broker_with_records(1000, "static", 4, 400);
    let topic = "static";
    let group_id = "static-group";

    let config = group_consumer_config(&bootstrap, group_id);
    let mut static_config = config.clone();
    // A longer session than the other member's, so the restart below is well within it.
    static_config
        .set("group.instance.id", "static-x")
        .set("session.timeout.ms", "15000");
    let x = GroupMember::subscribe(&static_config, "x", &[topic]).or_panic("x");
    let y = GroupMember::subscribe(&config, "y", &[topic]).or_panic("y");
    let mut run = GroupRun::new();
    let each = CommitPolicy::EachSync;
    run.drive(
        &[&x, &y],
        each,
        Duration::from_secs(30),
        "x and y consume",
        |r, m| assignments_cover(m, 4) && r.unique_count() >= 400,
    )
    .or_panic("consume");
    // The admin API's view is checked at the end, after the Kafka-level checks.
    let generation_before = admin_generation(&broker, group_id);
    let x_partitions = x.partitions();
    let y_partitions = y.partitions();
    let y_events = y.events().len();
    let described = describe_group(&bootstrap, group_id).or_panic("DescribeGroups");
    let member_ids = |d: &group::DescribedGroup| -> Vec<(String, String)> {
        d.members
            .iter()
            .map(|m| (m.client_id.clone(), m.member_id.clone()))
            .collect()
    };
    let ids_before = member_ids(&described);
    assert_eq!(
        ids_before.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["x", "y"],
        "{described:?}"
    );

    // librdkafka sends no LeaveGroup when a static member closes: the broker keeps it.
    x.close(CLOSE_DEADLINE).or_panic("close x");
    let described = describe_group(&bootstrap, group_id).or_panic("DescribeGroups");
    assert_eq!(
        member_ids(&described),
        ids_before,
        "x is still a member after closing: {described:?}"
    );

    // The same group.instance.id comes back within the session timeout.
    let x2 = GroupMember::subscribe(&static_config, "x2", &[topic]).or_panic("x2");
    run.drive(
        &[&x2, &y],
        each,
        Duration::from_secs(10),
        "x2 assigned",
        |_, m| !m[0].partitions().is_empty(),
    )
    .or_panic("x2 rejoins");
    run.settle(&[&x2, &y], each, Duration::from_secs(2))
        .or_panic("settle");
    assert_eq!(x2.partitions(), x_partitions, "x2 got x's assignment back");
    assert_eq!(y.partitions(), y_partitions, "y kept its assignment");
    assert_eq!(
        y.events().len(),
        y_events,
        "y saw no rebalance callback: {:?}",
        &y.events()[y_events..]
    );
    let described = describe_group(&bootstrap, group_id).or_panic("DescribeGroups");
    assert_eq!(described.state, "Stable", "{described:?}");
    let ids_after = member_ids(&described);
    assert_eq!(
        ids_after.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["x2", "y"],
        "x2 replaced x: {described:?}"
    );
    assert_eq!(ids_after[1], ids_before[1], "y kept its member id");
    assert_ne!(ids_after[0].1, ids_before[0].1, "x2 got a new member id");

    // x2 consumes its partitions from where x committed.
    let mark = run.consumed.len();
    produced.extend(produce_spread(&bootstrap, topic, 4, 400, 400).or_panic("produce 2"));
    run.drive(
        &[&x2, &y],
        each,
        Duration::from_secs(30),
        "consume batch 2",
        |r, _| r.unique_count() >= 800,
    )
    .or_panic("consume 2");
    run.settle(&[&x2, &y], each, Duration::from_secs(1))
        .or_panic("settle");
    let before: BTreeMap<i32, i64> = run.consumed[..mark].iter().fold(BTreeMap::new(), |mut acc, c| {
        let e = acc.entry(c.record.partition).or_insert(0);
        *e = (*e).max(c.record.offset + 1);
        acc
    });
    for (p, first) in run.first_offsets("x2", mark) {
        assert!(x_partitions.contains(&p), "x2 consumed only x's partitions");
        assert_eq!(first, before[&p], "x2 resumed partition {p} at x's commit");
    }
    assert_all_commits_ok(&run);
    run.verify_exactly_once(&produced, false).or_panic("exactly once");
    assert_eq!(y.events().len(), y_events, "still no rebalance for y");

    // The admin API: same generation as before x left, and x2 holds the static instance id.
    assert_eq!(
        admin_generation(&broker, group_id).or_panic("generation after"),
        generation_before.or_panic("generation before"),
        "the static member's return did not start a new generation"
    );
    let group_json = admin_group(&broker, group_id)
        .or_panic("admin")
        .expect("known group");
    let mut members = admin_members(&group_json);
    members.sort();
    assert_eq!(
        members
            .iter()
            .map(|(client, instance, _)| (client.as_str(), instance.as_deref()))
            .collect::<Vec<_>>(),
        [("x2", Some("static-x")), ("y", None)],
        "x2 replaced x: {group_json}"
    );
}

#[test]
fn cooperative_sticky_moves_only_what_it_must_and_consumes_exactly_once() {
    let (_broker, bootstrap, mut produced) = broker_with_records(1000, "coop", 4, 800);
    let topic = "coop";

    let mut config = group_consumer_config(&bootstrap, "coop-group");
    config.set("partition.assignment.strategy", "cooperative-sticky");
    let c1 = GroupMember::subscribe(&config, "c1", &[topic]).or_panic("c1");
    let c2 = GroupMember::subscribe(&config, "c2", &[topic]).or_panic("c2");
    let mut run = GroupRun::new();
    let each = CommitPolicy::EachSync;
    let deadline = Duration::from_secs(30);
    run.drive(&[&c1, &c2], each, deadline, "two members consume", |r, m| {
        assignments_cover(m, 4) && r.unique_count() >= 400
    })
    .or_panic("phase 1");
    let before: Vec<Vec<i32>> = vec![c1.partitions(), c2.partitions()];

    let (c3, c3_joined) = third_member_joins(&mut run, [&c1, &c2], &config, &bootstrap, topic, &mut produced);
    run.settle(&[&c1, &c2, &c3], each, Duration::from_secs(1))
        .or_panic("settle");
    let redelivered = run.verify_exactly_once(&produced, true).or_panic("exactly once");
    let failed_commits = run
        .consumed
        .iter()
        .filter(|c| matches!(c.commit, Some(Err(_))))
        .count();
    assert!(redelivered <= failed_commits);

    for m in [&c1, &c2, &c3] {
        let events = m.events();
        assert!(
            matches!(m.consumer().rebalance_protocol(), RebalanceProtocol::Cooperative),
            "{} runs the cooperative protocol",
            m.name()
        );
        assert!(!events.is_empty(), "{} saw rebalances", m.name());
        assert!(
            events.iter().all(|e| e.kind != RebalanceKind::Error),
            "{}: {events:?}",
            m.name()
        );
    }
    // Incremental: c1 and c2 kept partitions through c3's join (never revoked everything), and
    // exactly what they gave up went to c3.
    let mut revoked = BTreeSet::new();
    for (m, had) in [&c1, &c2].into_iter().zip(&before) {
        for e in m.events().iter().filter(|e| e.at > c3_joined) {
            // librdkafka ends every cooperative round with an assign callback, empty here.
            if e.kind == RebalanceKind::Assign {
                assert!(e.partitions.is_empty(), "{} gained nothing: {e:?}", m.name());
            }
            if e.kind == RebalanceKind::Revoke {
                assert!(
                    !e.assignment_after.is_empty(),
                    "{} kept some partitions through the revocation: {e:?}",
                    m.name()
                );
                revoked.extend(e.partitions.iter().map(|(_, p)| *p));
            }
        }
        let now: BTreeSet<i32> = m.partitions().into_iter().collect();
        assert!(
            now.is_subset(&had.iter().copied().collect()),
            "{} kept a subset of {had:?}, has {now:?}",
            m.name()
        );
    }
    let c3_now: BTreeSet<i32> = c3.partitions().into_iter().collect();
    assert!(!revoked.is_empty(), "someone gave a partition to c3");
    assert_eq!(revoked, c3_now, "c3 got exactly the revoked partitions");
    let c3_assigned: BTreeSet<i32> = c3
        .events()
        .iter()
        .filter(|e| e.kind == RebalanceKind::Assign)
        .flat_map(|e| e.partitions.iter().map(|(_, p)| *p))
        .collect();
    assert_eq!(
        c3_assigned, c3_now,
        "c3's incremental assignments add up to its assignment"
    );
    assert_described(&bootstrap, "coop-group", "cooperative-sticky", &[&c1, &c2, &c3]);

    // c1 leaves: c2 and c3 only gain (its partitions), revoking nothing of their own.
    let c1_partitions: BTreeSet<i32> = c1.partitions().into_iter().collect();
    let kept: Vec<BTreeSet<i32>> = [&c2, &c3]
        .iter()
        .map(|m| m.partitions().into_iter().collect())
        .collect();
    let c1_left = Instant::now();
    c1.close(CLOSE_DEADLINE).or_panic("close c1");
    produced.extend(produce_spread(&bootstrap, topic, 4, 1600, 400).or_panic("produce 3"));
    run.drive(&[&c2, &c3], each, deadline, "two members take over", |r, m| {
        assignments_cover(m, 4) && r.unique_count() >= 2000
    })
    .or_panic("phase 4");
    run.settle(&[&c2, &c3], each, Duration::from_secs(1))
        .or_panic("settle");
    let mut gained = BTreeSet::new();
    for (m, kept) in [&c2, &c3].into_iter().zip(&kept) {
        for e in m.events().iter().filter(|e| e.at > c1_left) {
            assert_ne!(
                e.kind,
                RebalanceKind::Revoke,
                "{} revoked nothing: {e:?}",
                m.name()
            );
            gained.extend(e.partitions.iter().map(|(_, p)| *p));
        }
        let now: BTreeSet<i32> = m.partitions().into_iter().collect();
        assert!(now.is_superset(kept), "{} kept {kept:?}, has {now:?}", m.name());
    }
    assert_eq!(gained, c1_partitions, "c1's partitions, and only those, moved");
    let redelivered = run.verify_exactly_once(&produced, true).or_panic("exactly once");
    let failed_commits = run
        .consumed
        .iter()
        .filter(|c| matches!(c.commit, Some(Err(_))))
        .count();
    assert!(redelivered <= failed_commits);
    assert_described(&bootstrap, "coop-group", "cooperative-sticky", &[&c2, &c3]);
}

/// Whether `group` is absent from ListGroups (or listed as `Dead`, as Kafka describes a group that
/// does not exist).
fn group_is_gone(bootstrap: &str, group_id: &str) -> bool {
    let client: BaseConsumer = kafka::consumer_config(bootstrap).create().expect("client");
    let list = client
        .fetch_group_list(None, Duration::from_secs(10))
        .or_panic_kafka("ListGroups");
    list.groups()
        .iter()
        .filter(|g| g.name() == group_id)
        .all(|g| g.state() == "Dead")
}

/// `.or_panic` for rdkafka results.
trait OrPanicKafka<T> {
    fn or_panic_kafka(self, what: &str) -> T;
}

impl<T> OrPanicKafka<T> for Result<T, rdkafka::error::KafkaError> {
    fn or_panic_kafka(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

#[test]
fn list_describe_commit_metadata_offset_delete_and_delete_groups() {
    let broker = broker_with_initial_delay(300);
    let bootstrap = broker.bootstrap();
    let group_id = "admin-group";
    kafka::create_topic(&bootstrap, "adm", 2).or_panic("create adm");
    kafka::create_topic(&bootstrap, "other", 1).or_panic("create other");
    produce_spread(&bootstrap, "adm", 2, 0, 10).or_panic("produce");

    let member = GroupMember::subscribe(&group_consumer_config(&bootstrap, group_id), "m", &["adm"])
        .or_panic("subscribe");
    let mut run = GroupRun::new();
    run.drive(
        &[&member],
        CommitPolicy::Never,
        Duration::from_secs(20),
        "consume 10",
        |r, _| r.unique_count() >= 10,
    )
    .or_panic("consume");

    // Explicit commits with metadata, including a topic the group does not subscribe to.
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset, metadata) in
        [("adm", 0, 5, "m-0"), ("adm", 1, 3, "m-1"), ("other", 0, 0, "o-0")]
    {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .expect("add partition");
        tpl.find_partition(topic, partition)
            .expect("just added")
            .set_metadata(metadata);
    }
    member
        .consumer()
        .commit(&tpl, CommitMode::Sync)
        .or_panic_kafka("commit with metadata");
    let mut query = TopicPartitionList::new();
    query.add_partition("adm", 0);
    query.add_partition("adm", 1);
    query.add_partition("other", 0);
    let committed = member
        .consumer()
        .committed_offsets(query, Duration::from_secs(10))
        .or_panic_kafka("OffsetFetch");
    let got: Vec<(String, i32, Offset, String)> = committed
        .elements()
        .iter()
        .map(|e| {
            (
                e.topic().to_string(),
                e.partition(),
                e.offset(),
                e.metadata().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("adm".to_string(), 0, Offset::Offset(5), "m-0".to_string()),
            ("adm".to_string(), 1, Offset::Offset(3), "m-1".to_string()),
            ("other".to_string(), 0, Offset::Offset(0), "o-0".to_string()),
        ],
        "committed offsets and metadata read back"
    );

    // ListGroups lists it as a consumer group; DescribeGroups shows the member.
    let client: BaseConsumer = kafka::consumer_config(&bootstrap).create().expect("client");
    let list = client
        .fetch_group_list(None, Duration::from_secs(10))
        .or_panic_kafka("ListGroups");
    assert!(
        list.groups()
            .iter()
            .any(|g| g.name() == group_id && g.protocol_type() == "consumer"),
        "ListGroups lists {group_id}: {:?}",
        list.groups().iter().map(|g| g.name()).collect::<Vec<_>>()
    );
    assert_described(&bootstrap, group_id, "range", &[&member]);

    // A group with members cannot be deleted.
    let results = group::delete_groups(&bootstrap, &[group_id]).or_panic("DeleteGroups");
    assert_eq!(
        results,
        [Err((group_id.to_string(), RDKafkaErrorCode::NonEmptyGroup))],
        "DeleteGroups of a group with a member"
    );

    // OffsetDelete: refused for the subscribed topic, done for the other one.
    let response =
        raw::offset_delete(broker.kafka_addr(), group_id, "adm", &[0]).or_panic("OffsetDelete adm");
    assert_eq!(
        (response.error_code, response.partitions),
        (0, vec![("adm".to_string(), 0, raw::GROUP_SUBSCRIBED_TO_TOPIC)]),
        "OffsetDelete of a subscribed topic"
    );
    let response =
        raw::offset_delete(broker.kafka_addr(), group_id, "other", &[0]).or_panic("OffsetDelete other");
    assert_eq!(
        (response.error_code, response.partitions),
        (0, vec![("other".to_string(), 0, 0)]),
        "OffsetDelete of a topic the group does not consume"
    );
    assert_eq!(
        committed_for_group(&bootstrap, group_id, "other", &[0]).or_panic("committed other"),
        BTreeMap::from([(0, None)]),
        "the deleted offset is gone"
    );
    assert_eq!(
        committed_for_group(&bootstrap, group_id, "adm", &[0, 1]).or_panic("committed adm"),
        BTreeMap::from([(0, Some(5)), (1, Some(3))]),
        "the refused deletion kept the offset"
    );

    // Once the member leaves, the group is Empty and can be deleted, offsets and all.
    member.close(CLOSE_DEADLINE).or_panic("close");
    let described = describe_group(&bootstrap, group_id).or_panic("DescribeGroups");
    assert_eq!(
        (described.state.as_str(), described.members.len()),
        ("Empty", 0),
        "{described:?}"
    );
    let results = group::delete_groups(&bootstrap, &[group_id]).or_panic("DeleteGroups");
    assert_eq!(
        results,
        [Ok(group_id.to_string())],
        "DeleteGroups of an empty group"
    );
    assert!(
        group_is_gone(&bootstrap, group_id),
        "the deleted group is not listed"
    );
    assert_eq!(
        committed_for_group(&bootstrap, group_id, "adm", &[0, 1]).or_panic("committed after delete"),
        BTreeMap::from([(0, None), (1, None)]),
        "deleting the group deleted its offsets"
    );
    assert_eq!(
        admin_group(&broker, group_id).or_panic("admin"),
        None,
        "GET /admin/groups/{group_id} answers 404 after the deletion"
    );
}

#[test]
fn session_timeouts_outside_the_broker_limits_are_refused() {
    let broker = DistlogProcess::start(DistlogOptions {
        extra_args: [
            "--group-initial-rebalance-delay-ms",
            "300",
            "--group-min-session-timeout-ms",
            "6000",
            "--group-max-session-timeout-ms",
            "20000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..DistlogOptions::default()
    })
    .or_panic("start distlog");
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "limits", 2).or_panic("create topic");
    let member = |group: &str, name: &str, session_ms: &str| {
        let mut config = group_consumer_config(&bootstrap, group);
        config.set("session.timeout.ms", session_ms);
        GroupMember::subscribe(&config, name, &["limits"]).or_panic(name)
    };

    for (group, name, session_ms) in [("short-group", "short", "5000"), ("long-group", "long", "25000")] {
        let m = member(group, name, session_ms);
        let mut run = GroupRun::new();
        run.drive(
            &[&m],
            CommitPolicy::Never,
            Duration::from_secs(15),
            "JoinGroup refused",
            |r, _| !r.error_codes.is_empty(),
        )
        .or_panic(name);
        assert_eq!(
            run.error_codes[0],
            (name.to_string(), Some(RDKafkaErrorCode::InvalidSessionTimeout)),
            "session.timeout.ms={session_ms}: {:?}",
            run.errors
        );
        assert!(m.partitions().is_empty(), "{name} was never assigned anything");
        assert!(m.events().is_empty(), "{name} saw no rebalance: {:?}", m.events());
    }

    // The limits themselves are accepted.
    for (group, name, session_ms) in [("min-group", "min", "6000"), ("max-group", "max", "20000")] {
        let m = member(group, name, session_ms);
        let mut run = GroupRun::new();
        run.drive(
            &[&m],
            CommitPolicy::Never,
            Duration::from_secs(15),
            "assigned",
            |_, m| assignments_cover(m, 2),
        )
        .or_panic(name);
        assert!(run.errors.is_empty(), "{name}: {:?}", run.errors);
    }
}

#[test]
fn assign_based_consumers_commit_for_a_group_without_members() {
    // Simple consumers (assign(), no subscribe) commit with generation -1 and no member id, as
    // kcat, Flink and Spark do; Kafka accepts that for a group that has no members.
    let (_broker, bootstrap, produced) = broker_with_records(300, "simple", 1, 20);
    let topic = "simple";
    let group_id = "simple-group";

    let consumer: BaseConsumer = group_consumer_config(&bootstrap, group_id)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).or_panic_kafka("assign");
    let records = kafka::poll_n(&consumer, 12, Duration::from_secs(20)).or_panic("consume 12");
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..12).collect::<Vec<i64>>()
    );
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(topic, 0, Offset::Offset(12))
        .expect("tpl");
    consumer
        .commit(&commit, CommitMode::Sync)
        .or_panic_kafka("commit without group membership");
    group::close_consumer(consumer, CLOSE_DEADLINE).or_panic("close");
    assert_eq!(
        committed_for_group(&bootstrap, group_id, topic, &[0]).or_panic("committed"),
        BTreeMap::from([(0, Some(12))])
    );

    // A subscribing member of the same group resumes there.
    let m = GroupMember::subscribe(&group_consumer_config(&bootstrap, group_id), "m", &[topic]).or_panic("m");
    let mut run = GroupRun::new();
    run.drive(
        &[&m],
        CommitPolicy::EachSync,
        Duration::from_secs(20),
        "the rest",
        |r, _| r.unique_count() >= 8,
    )
    .or_panic("consume the rest");
    run.settle(&[&m], CommitPolicy::EachSync, Duration::from_secs(1))
        .or_panic("settle");
    let rest = Produced {
        topic: topic.to_string(),
        records: produced
            .records
            .range((0, 12)..)
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
    };
    run.verify_exactly_once(&rest, false).or_panic("exactly the rest");
    assert_eq!(run.consumed.len(), 8);
    assert_eq!(
        run.consumed[0].record.offset, 12,
        "resumed at the simple consumer's commit"
    );
}

#[test]
fn members_ride_through_a_broker_kill9_without_redelivery_below_committed_offsets() {
    let mut broker = broker_with_initial_delay(500);
    let bootstrap = broker.bootstrap();
    let topic = "crashgroup";
    let group_id = "crash-group";
    kafka::create_topic(&bootstrap, topic, 4).or_panic("create topic");
    let produced = produce_spread(&bootstrap, topic, 4, 0, 4000).or_panic("produce");

    let config = group_consumer_config(&bootstrap, group_id);
    let c1 = GroupMember::subscribe(&config, "c1", &[topic]).or_panic("c1");
    let c2 = GroupMember::subscribe(&config, "c2", &[topic]).or_panic("c2");
    let members = [&c1, &c2];
    let each = CommitPolicy::EachSync;
    let mut run = GroupRun::new();
    run.drive(&members, each, Duration::from_secs(30), "consume 600", |r, m| {
        assignments_cover(m, 4) && r.unique_count() >= 600
    })
    .or_panic("before the crash");

    // kill -9 the broker from another thread while the members consume and commit, then bring
    // it back on the same ports and data.
    let crasher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        broker.kill9().or_panic("kill -9");
        broker.restart().or_panic("restart");
        broker
    });
    run.drive(
        &members,
        each,
        Duration::from_secs(20),
        "consume during the crash",
        |r, _| crasher.is_finished() || r.unique_count() >= 4000,
    )
    .or_panic("during the crash");
    let broker = crasher.join().expect("crasher thread");
    assert_eq!(
        broker.bootstrap(),
        bootstrap,
        "the restarted broker is on the old ports (the members cannot follow a port change)"
    );
    let at_crash = run.unique_count();
    assert!(
        at_crash < 4000,
        "the crash happened mid-consumption ({at_crash} consumed)"
    );
    run.drive(
        &members,
        each,
        Duration::from_secs(45),
        "consume the rest",
        |r, m| assignments_cover(m, 4) && r.unique_count() >= 4000,
    )
    .or_panic("after the crash");
    run.settle(&members, each, Duration::from_secs(1))
        .or_panic("settle");

    let redelivered = run
        .verify_exactly_once(&produced, true)
        .or_panic("exactly once past commits");
    let failed_commits = run
        .consumed
        .iter()
        .filter(|c| matches!(c.commit, Some(Err(_))))
        .count();
    eprintln!(
        "{redelivered} redelivered, {failed_commits} failed commits, errors: {:?}",
        run.errors
    );
    assert!(
        redelivered <= failed_commits,
        "{redelivered} redeliveries but only {failed_commits} failed commits"
    );
    // Every message is committed in the end.
    let ends: BTreeMap<i32, Option<i64>> = produced
        .per_partition()
        .into_iter()
        .map(|(p, n)| (p, Some(n as i64)))
        .collect();
    wait_until(Duration::from_secs(10), "final commits visible", || {
        Ok(c1.committed(topic, &[0, 1, 2, 3])? == ends)
    })
    .or_panic("committed offsets at the end");
}

#[test]
fn a_static_member_that_does_not_return_is_expelled_after_its_session_timeout() {
    let broker = broker_with_initial_delay(1000);
    let bootstrap = broker.bootstrap();
    let topic = "static-expiry";
    let group_id = "static-expiry-group";
    kafka::create_topic(&bootstrap, topic, 4).or_panic("create topic");

    let config = group_consumer_config(&bootstrap, group_id);
    let mut static_config = config.clone();
    static_config.set("group.instance.id", "gone");
    let x = GroupMember::subscribe(&static_config, "x", &[topic]).or_panic("x");
    let y = GroupMember::subscribe(&config, "y", &[topic]).or_panic("y");
    let mut run = GroupRun::new();
    run.drive(
        &[&x, &y],
        CommitPolicy::Never,
        Duration::from_secs(20),
        "both assigned",
        |_, m| assignments_cover(m, 4),
    )
    .or_panic("form the group");

    // No LeaveGroup from a closing static member: its partitions stay with it until its session
    // (6 s) expires, then y gets everything.
    x.close(CLOSE_DEADLINE).or_panic("close x");
    let closed = Instant::now();
    run.drive(
        &[&y],
        CommitPolicy::Never,
        Duration::from_secs(30),
        "y owns all",
        |_, m| m[0].partitions() == [0, 1, 2, 3],
    )
    .or_panic("y takes over");
    let took = closed.elapsed();
    assert!(
        took >= Duration::from_millis(group::SESSION_TIMEOUT_MS - 1500),
        "x's partitions moved {took:?} after it closed, before its session could expire"
    );
    assert_described(&bootstrap, group_id, "range", &[&y]);
}

#[test]
fn a_second_consumer_with_the_same_group_instance_id_fences_the_first() {
    let broker = broker_with_initial_delay(300);
    let bootstrap = broker.bootstrap();
    let topic = "fence";
    let group_id = "fence-group";
    kafka::create_topic(&bootstrap, topic, 2).or_panic("create topic");
    let mut static_config = group_consumer_config(&bootstrap, group_id);
    static_config.set("group.instance.id", "twin");

    let first = GroupMember::subscribe(&static_config, "first", &[topic]).or_panic("first");
    let mut run = GroupRun::new();
    run.drive(
        &[&first],
        CommitPolicy::Never,
        Duration::from_secs(20),
        "first assigned",
        |_, m| assignments_cover(m, 2),
    )
    .or_panic("first joins");

    let second = GroupMember::subscribe(&static_config, "second", &[topic]).or_panic("second");
    run.drive(
        &[&first, &second],
        CommitPolicy::Never,
        Duration::from_secs(20),
        "second takes over, first fenced",
        |_, _| second.partitions() == [0, 1] && first.consumer().client().fatal_error().is_some(),
    )
    .or_panic("fencing");
    let (code, message) = first.consumer().client().fatal_error().expect("fatal error");
    assert_eq!(code, RDKafkaErrorCode::FencedInstanceId, "{message}");
    assert!(second.consumer().client().fatal_error().is_none());
    let described = describe_group(&bootstrap, group_id).or_panic("DescribeGroups");
    assert_eq!(
        described
            .members
            .iter()
            .map(|m| (m.client_id.as_str(), m.assignment.len()))
            .collect::<Vec<_>>(),
        [("second", 2)],
        "{described:?}"
    );
}

/// A cooperative-sticky consumer subscribed to two topics, one of which is deleted under it, then
/// closed: every JoinGroup and SyncGroup the coordinator parked for it is answered when the group
/// moves on (the member's LeaveGroup may arrive in the middle of the rebalance the deletion
/// starts), so the close completes promptly and the group ends Empty.
#[test]
fn cooperative_consumer_closes_promptly_after_one_of_its_topics_is_deleted() {
    let broker = broker_with_initial_delay(0);
    let bootstrap = broker.bootstrap();
    let group_id = "coop-delete-group";
    for topic in ["kept", "deleted"] {
        kafka::create_topic(&bootstrap, topic, 2).or_panic("create topic");
    }
    let mut config = group_consumer_config(&bootstrap, group_id);
    config.set("partition.assignment.strategy", "cooperative-sticky");
    // Notice the deletion soon (librdkafka rejoins when a subscribed topic disappears).
    config.set("topic.metadata.refresh.interval.ms", "500");
    let member = GroupMember::subscribe(&config, "c", &["kept", "deleted"]).or_panic("subscribe");
    let mut run = GroupRun::new();
    run.drive(
        &[&member],
        CommitPolicy::Never,
        Duration::from_secs(30),
        "the member owns both topics",
        |_, m| m[0].assignment().len() == 4,
    )
    .or_panic("assignment");
    assert_eq!(
        member.assignment(),
        vec![
            ("deleted".to_string(), 0),
            ("deleted".to_string(), 1),
            ("kept".to_string(), 0),
            ("kept".to_string(), 1)
        ]
    );
    kafka::delete_topic(&bootstrap, "deleted").or_panic("delete topic");
    // Let the consumer notice the deletion (and start the rebalance it causes).
    run.settle(&[&member], CommitPolicy::Never, Duration::from_secs(2))
        .or_panic("settle");
    let started = Instant::now();
    member.close(Duration::from_secs(5)).or_panic("close");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "close took {took:?}: well under the session timeout"
    );
    wait_until(Duration::from_secs(3), "the group is Empty", || {
        let described = describe_group(&bootstrap, group_id)?;
        Ok(described.state == "Empty" && described.members.is_empty())
    })
    .or_panic("group Empty after the close");
}
