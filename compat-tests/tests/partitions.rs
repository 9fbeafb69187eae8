//! CreatePartitions and ElectLeaders against real `distlog` processes: a
//! single node and a 3-node cluster (scripts/local-cluster.sh).
//!
//! CreatePartitions: rdkafka's AdminClient grows a topic (and `validate_only`
//! changes nothing); every node's Metadata shows the new count; the new
//! partitions take and serve records; every refusal has Kafka's error code
//! (hand-built frames at every version); a subscribed group consumer picks
//! up the new partition. ElectLeaders: on a single node nothing is ever
//! needed; on a cluster, a partition moved off its preferred broker (that
//! broker was paused past its lease) goes back with a fenced handoff while
//! an acks=all producer writes to it, losing nothing, and stays there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::chaos::{acknowledged, verify_zero_loss, ContinuousProducer};
use distlog_compat_tests::cluster::LocalCluster;
use distlog_compat_tests::group::{self, CommitPolicy, GroupMember, GroupRun};
use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::raw::Conn;
use distlog_compat_tests::{start_broker, OrPanic};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse,
    ElectLeadersRequest, ElectLeadersResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

/// One cluster at a time (three processes on a 2-core machine).
static SERIAL: Mutex<()> = Mutex::new(());

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const ELECTION_NOT_NEEDED: i16 = 84;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Grow topics through rdkafka's AdminClient; one result per topic.
fn admin_grow(
    bootstrap: &str,
    wanted: &[(&str, usize)],
    validate_only: bool,
) -> Vec<Result<String, (String, RDKafkaErrorCode)>> {
    let client: AdminClient<DefaultClientContext> =
        kafka::base_config(bootstrap).create().expect("admin client");
    let options = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .validate_only(validate_only);
    let parts: Vec<NewPartitions> = wanted.iter().map(|(t, n)| NewPartitions::new(t, *n)).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(client.create_partitions(&parts, &options))
        .expect("CreatePartitions answered")
}

/// Partition count and (leader, replicas) per partition of `topic` as
/// node `addr` itself answers Metadata.
fn partitions_at(addr: SocketAddr, topic: &str) -> Vec<(i16, i32, Vec<i32>)> {
    let mut conn = Conn::open(addr, "partitions-test").expect("connect");
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req).expect("Metadata");
    let t = &resp.topics[0];
    assert_eq!(t.error_code, NONE, "{topic} at {addr}");
    t.partitions
        .iter()
        .map(|p| {
            (
                p.error_code,
                p.leader_id.0,
                p.replica_nodes.iter().map(|b| b.0).collect(),
            )
        })
        .collect()
}

fn grow_raw(
    conn: &mut Conn,
    version: i16,
    topics: Vec<CreatePartitionsTopic>,
    validate_only: bool,
) -> Vec<(String, i16, Option<String>)> {
    let req = CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only);
    let resp: CreatePartitionsResponse = conn
        .call(ApiKey::CreatePartitions, version, &req)
        .expect("CreatePartitions");
    resp.results
        .into_iter()
        .map(|r| {
            (
                r.name.0.to_string(),
                r.error_code,
                r.error_message.map(|m| m.to_string()),
            )
        })
        .collect()
}

fn grow_topic(topic: &str, count: i32) -> CreatePartitionsTopic {
    CreatePartitionsTopic::default()
        .with_name(name(topic))
        .with_count(count)
        .with_assignments(None)
}

/// ElectLeaders at `version`: per (topic, partition), the error code.
fn elect(
    conn: &mut Conn,
    version: i16,
    election_type: i8,
    wanted: Option<&[(&str, &[i32])]>,
) -> (i16, BTreeMap<(String, i32), i16>) {
    let req = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(10_000)
        .with_topic_partitions(wanted.map(|w| {
            w.iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic(name(t))
                        .with_partitions(ps.to_vec())
                })
                .collect()
        }));
    let resp: ElectLeadersResponse = conn
        .call(ApiKey::ElectLeaders, version, &req)
        .expect("ElectLeaders");
    let mut out = BTreeMap::new();
    for t in resp.replica_election_results {
        for p in t.partition_result {
            out.insert((t.topic.0.to_string(), p.partition_id), p.error_code);
        }
    }
    (resp.error_code, out)
}

#[test]
fn create_partitions_grows_a_topic_whose_new_partitions_serve_records() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "grow", 1).or_panic("create");

    // validate_only: accepted, nothing changes.
    let r = admin_grow(&bootstrap, &[("grow", 3)], true);
    assert_eq!(r, vec![Ok("grow".to_string())]);
    assert_eq!(
        partitions_at(broker.kafka_addr(), "grow").len(),
        1,
        "validate_only changed nothing"
    );

    let r = admin_grow(&bootstrap, &[("grow", 3)], false);
    assert_eq!(r, vec![Ok("grow".to_string())]);
    let parts = partitions_at(broker.kafka_addr(), "grow");
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert!(
        parts.iter().all(|(e, leader, _)| *e == NONE && *leader >= 0),
        "{parts:?}"
    );

    // The new partition takes records and serves them back; the others are untouched.
    let records: Vec<TestRecord> = (0..5).map(|i| TestRecord::value(format!("new-{i}"))).collect();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "grow",
        Some(2),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce to partition 2");
    assert!(deliveries.iter().all(|d| d.result.is_ok()), "{deliveries:?}");
    let got = kafka::consume_n(&bootstrap, "grow", 2, 0, 5, Duration::from_secs(20)).or_panic("consume");
    let payloads: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).to_string())
        .collect();
    assert_eq!(payloads, (0..5).map(|i| format!("new-{i}")).collect::<Vec<_>>());
    assert_eq!(
        kafka::watermarks(&bootstrap, "grow", 1).or_panic("watermarks"),
        (0, 0)
    );

    // Refusals through the admin client.
    assert_eq!(
        admin_grow(&bootstrap, &[("grow", 3)], false),
        vec![Err(("grow".to_string(), RDKafkaErrorCode::InvalidPartitions))]
    );
    assert_eq!(
        admin_grow(&bootstrap, &[("grow", 2)], false),
        vec![Err(("grow".to_string(), RDKafkaErrorCode::InvalidPartitions))]
    );
    assert_eq!(
        admin_grow(&bootstrap, &[("missing", 2)], false),
        vec![Err((
            "missing".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
    assert_eq!(partitions_at(broker.kafka_addr(), "grow").len(), 3);
}

#[test]
fn create_partitions_refusals_have_kafka_error_codes_at_every_version() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "bad", 2).or_panic("create");
    let mut conn = Conn::open(broker.kafka_addr(), "partitions-test").expect("connect");

    // ApiVersions advertises exactly the implemented versions.
    let av: ApiVersionsResponse = conn
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .expect("ApiVersions");
    let range = |k: ApiKey| {
        av.api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map(|a| (a.min_version, a.max_version))
    };
    assert_eq!(range(ApiKey::CreatePartitions), Some((0, 3)));
    assert_eq!(range(ApiKey::ElectLeaders), Some((0, 2)));

    let node = partitions_at(broker.kafka_addr(), "bad")[0].1;
    let mut count = 2;
    for v in 0..=3 {
        for (requested, message) in [
            (count, format!("Topic already has {count} partition(s).")),
            (
                count - 1,
                format!(
                    "The topic bad currently has {count} partition(s); {} would not be an increase.",
                    count - 1
                ),
            ),
            (
                0,
                format!("The topic bad currently has {count} partition(s); 0 would not be an increase."),
            ),
            (
                -4,
                format!("The topic bad currently has {count} partition(s); -4 would not be an increase."),
            ),
        ] {
            let r = grow_raw(&mut conn, v, vec![grow_topic("bad", requested)], false);
            assert_eq!(
                r,
                vec![("bad".to_string(), INVALID_PARTITIONS, Some(message))],
                "v{v}"
            );
        }
        let r = grow_raw(&mut conn, v, vec![grow_topic("nope", 5)], false);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].0.as_str(), r[0].1),
            ("nope", UNKNOWN_TOPIC_OR_PARTITION),
            "v{v}"
        );

        // A topic named twice: one INVALID_REQUEST answer for the name; the
        // other topics of the request are still served.
        let r = grow_raw(
            &mut conn,
            v,
            vec![
                grow_topic("bad", count + 1),
                grow_topic("nope", 3),
                grow_topic("bad", count + 2),
            ],
            false,
        );
        assert_eq!(
            r,
            vec![
                (
                    "nope".to_string(),
                    UNKNOWN_TOPIC_OR_PARTITION,
                    Some("topic 'nope' does not exist".to_string())
                ),
                (
                    "bad".to_string(),
                    INVALID_REQUEST,
                    Some("Duplicate topic name.".to_string())
                ),
            ],
            "v{v}"
        );

        // Manual assignments: distlog places no replicas per partition.
        let assign = |lists: &[Vec<i32>]| {
            Some(
                lists
                    .iter()
                    .map(|l| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(l.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            )
        };
        for (lists, fragment) in [
            (
                vec![vec![node]; 2],
                "Attempted to add 1 additional partition(s), but only 2 assignment(s) were specified.",
            ),
            (vec![vec![node + 1]], "can only be assigned to broker"),
            (vec![vec![node, node + 1]], "can only be assigned to broker"),
            (vec![vec![]], "can only be assigned to broker"),
        ] {
            let t = grow_topic("bad", count + 1).with_assignments(assign(&lists));
            let r = grow_raw(&mut conn, v, vec![t], false);
            assert_eq!(
                (r[0].1, r.len()),
                (INVALID_REPLICA_ASSIGNMENT, 1),
                "v{v} {lists:?}: {r:?}"
            );
            assert!(
                r[0].2.as_deref().is_some_and(|m| m.contains(fragment)),
                "v{v}: {r:?}"
            );
        }
        assert_eq!(
            partitions_at(broker.kafka_addr(), "bad").len(),
            count as usize,
            "nothing changed"
        );

        // validate_only with a valid request: no error, no change.
        let r = grow_raw(&mut conn, v, vec![grow_topic("bad", count + 3)], true);
        assert_eq!(r, vec![("bad".to_string(), NONE, None)], "v{v}");
        assert_eq!(partitions_at(broker.kafka_addr(), "bad").len(), count as usize);

        // The one assignment distlog honours: the new partition on the
        // broker that owns it anyway (this node).
        let t = grow_topic("bad", count + 1).with_assignments(assign(&[vec![node]]));
        let r = grow_raw(&mut conn, v, vec![t], false);
        assert_eq!(r, vec![("bad".to_string(), NONE, None)], "v{v}");
        count += 1;
        assert_eq!(partitions_at(broker.kafka_addr(), "bad").len(), count as usize);
    }
    // A deleted topic is gone at once (one metadata step, as in KRaft): unknown.
    kafka::delete_topic(&bootstrap, "bad").or_panic("delete");
    let r = grow_raw(&mut conn, 3, vec![grow_topic("bad", count + 1)], false);
    assert_eq!(
        r,
        vec![(
            "bad".to_string(),
            UNKNOWN_TOPIC_OR_PARTITION,
            Some("topic 'bad' does not exist".to_string())
        )]
    );
}

#[test]
fn a_group_consumer_picks_up_a_new_partition() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "grow-group", 1).or_panic("create");
    let produce = |partition: i32, prefix: &str, n: usize| {
        let records: Vec<TestRecord> = (0..n)
            .map(|i| TestRecord::value(format!("{prefix}-{i}")))
            .collect();
        let d = kafka::produce_records(
            &kafka::producer_config(&bootstrap, "all"),
            "grow-group",
            Some(partition),
            &records,
            Duration::from_secs(30),
        )
        .or_panic("produce");
        assert!(d.iter().all(|d| d.result.is_ok()), "{d:?}");
    };
    produce(0, "old", 2);
    let mut config = group::group_consumer_config(&bootstrap, "grow-group-g");
    config.set("topic.metadata.refresh.interval.ms", "1000");
    let member = GroupMember::subscribe(&config, "m1", &["grow-group"]).or_panic("subscribe");
    let mut run = GroupRun::new();
    run.drive(
        &[&member],
        CommitPolicy::Never,
        Duration::from_secs(30),
        "consume partition 0",
        |r, _| r.unique_count() == 2,
    )
    .or_panic("first records");

    assert_eq!(
        admin_grow(&bootstrap, &[("grow-group", 2)], false),
        vec![Ok("grow-group".to_string())]
    );
    produce(1, "new", 3);
    run.drive(
        &[&member],
        CommitPolicy::Never,
        Duration::from_secs(30),
        "consume the new partition",
        |r, _| r.consumed.iter().filter(|c| c.record.partition == 1).count() >= 3,
    )
    .or_panic("records of the new partition");
    assert_eq!(member.partitions(), vec![0, 1]);
    let new: Vec<String> = run
        .consumed
        .iter()
        .filter(|c| c.record.partition == 1)
        .map(|c| String::from_utf8_lossy(c.record.payload.as_deref().unwrap_or_default()).to_string())
        .collect();
    assert_eq!(new, vec!["new-0", "new-1", "new-2"]);
    member.close(group::CLOSE_DEADLINE).or_panic("close");
}

#[test]
fn elect_leaders_on_a_single_node_is_never_needed() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "solo", 2).or_panic("create");
    let mut conn = Conn::open(broker.kafka_addr(), "partitions-test").expect("connect");
    for v in 0..=2 {
        let (top, all) = elect(&mut conn, v, 0, None);
        assert_eq!(top, NONE);
        assert_eq!(
            all,
            BTreeMap::from([
                (("solo".to_string(), 0), ELECTION_NOT_NEEDED),
                (("solo".to_string(), 1), ELECTION_NOT_NEEDED)
            ]),
            "v{v}"
        );
        let (_, some) = elect(&mut conn, v, 0, Some(&[("solo", &[1, 2, -1]), ("ghost", &[0])]));
        assert_eq!(
            some,
            BTreeMap::from([
                (("solo".to_string(), 1), ELECTION_NOT_NEEDED),
                (("solo".to_string(), 2), UNKNOWN_TOPIC_OR_PARTITION),
                (("solo".to_string(), -1), UNKNOWN_TOPIC_OR_PARTITION),
                (("ghost".to_string(), 0), UNKNOWN_TOPIC_OR_PARTITION),
            ]),
            "v{v}"
        );
    }
    // Unclean election (v1+): a partition with a leader needs none.
    let (_, unclean) = elect(&mut conn, 1, 1, Some(&[("solo", &[0])]));
    assert_eq!(
        unclean,
        BTreeMap::from([(("solo".to_string(), 0), ELECTION_NOT_NEEDED)])
    );
    // An unknown election type is an invalid request.
    let (top, none) = elect(&mut conn, 2, 7, Some(&[("solo", &[0])]));
    assert_eq!((top, none.len()), (INVALID_REQUEST, 0));
}

/// The Kafka address of each node of `c`, node K at K-1.
fn node_addrs(c: &LocalCluster) -> Vec<SocketAddr> {
    c.bootstrap()
        .split(',')
        .map(|a| a.parse().expect("host:port"))
        .collect()
}

/// Wait until node `addr` shows `count` partitions of `topic`, each led by
/// its preferred broker (the first replica); returns the leaders.
fn wait_led_by_preferred(addr: SocketAddr, topic: &str, count: usize, within: Duration) -> Vec<i32> {
    let deadline = Instant::now() + within;
    loop {
        let parts = partitions_at(addr, topic);
        let home = parts.len() == count
            && parts
                .iter()
                .all(|(e, leader, replicas)| *e == NONE && replicas.as_slice() == [*leader]);
        if home {
            return parts.iter().map(|p| p.1).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{topic} at {addr}: not {count} partitions on their preferred brokers within {within:?}: {parts:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

const CLUSTER_FLAGS: &str = "--broker-session-timeout-ms 4000 --broker-heartbeat-interval-ms 1000";

#[test]
fn cluster_create_partitions_is_seen_by_every_node_and_served() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = LocalCluster::up(3, CLUSTER_FLAGS).expect("3-node cluster up");
    let addrs = node_addrs(&c);
    kafka::create_topic_replicated(c.bootstrap(), "grow3", 1, 3, &[]).or_panic("create");
    wait_led_by_preferred(addrs[0], "grow3", 1, Duration::from_secs(20));

    assert_eq!(
        admin_grow(c.bootstrap(), &[("grow3", 4)], true),
        vec![Ok("grow3".to_string())]
    );
    for addr in &addrs {
        assert_eq!(
            partitions_at(*addr, "grow3").len(),
            1,
            "validate_only changed nothing at {addr}"
        );
    }
    assert_eq!(
        admin_grow(c.bootstrap(), &[("grow3", 4)], false),
        vec![Ok("grow3".to_string())]
    );
    // Every node shows the new count at once; the controller gives each new
    // stream its preferred owner.
    for addr in &addrs {
        assert_eq!(partitions_at(*addr, "grow3").len(), 4, "count at {addr}");
    }
    let leaders = wait_led_by_preferred(addrs[2], "grow3", 4, Duration::from_secs(20));
    for addr in &addrs {
        assert_eq!(
            wait_led_by_preferred(*addr, "grow3", 4, Duration::from_secs(10)),
            leaders
        );
    }

    let records: Vec<TestRecord> = (0..10).map(|i| TestRecord::value(format!("p3-{i}"))).collect();
    let d = kafka::produce_records(
        &kafka::producer_config(c.bootstrap(), "all"),
        "grow3",
        Some(3),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce to partition 3");
    assert!(d.iter().all(|d| d.result.is_ok()), "{d:?}");
    let got = kafka::consume_n(c.bootstrap(), "grow3", 3, 0, 10, Duration::from_secs(20)).or_panic("consume");
    assert_eq!(got.len(), 10);
    assert_eq!(got[9].payload.as_deref(), Some(&b"p3-9"[..]));
}

#[test]
fn cluster_elect_leaders_moves_partitions_home_without_loss() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = LocalCluster::up(3, CLUSTER_FLAGS).expect("3-node cluster up");
    let addrs = node_addrs(&c);
    // A topic whose partition 0 prefers a broker that is not the metadata
    // leader (pausing that one would also stall the controller).
    let raft_leader = c.raft_leader(1).or_panic("raft leader").expect("a raft leader") as i32;
    let mut chosen = None;
    for attempt in 0..8 {
        let topic = format!("home{attempt}");
        kafka::create_topic_replicated(c.bootstrap(), &topic, 6, 3, &[]).or_panic("create");
        let leaders = wait_led_by_preferred(addrs[0], &topic, 6, Duration::from_secs(20));
        if leaders[0] != raft_leader {
            chosen = Some((topic, leaders));
            break;
        }
    }
    let (topic, leaders) = chosen.expect("a topic whose partition 0 prefers a follower");
    let x = leaders[0];
    let other = addrs[if x == 1 { 1 } else { 0 }];
    let mut conn = Conn::open(other, "partitions-test").expect("connect");

    // Nothing to do while every partition is home.
    let (_, r) = elect(&mut conn, 2, 0, Some(&[(&topic, &[0, 1, 2, 3, 4, 5])]));
    assert!(r.values().all(|e| *e == ELECTION_NOT_NEEDED), "{r:?}");

    let producer =
        ContinuousProducer::start(c.bootstrap(), &topic, Duration::from_millis(10), &[]).or_panic("producer");
    producer
        .wait_ack_of_message_sent_after(Instant::now(), Duration::from_secs(20))
        .or_panic("first acks");

    // Broker x pauses past its lease: its partitions move elsewhere.
    c.signal(x as usize, "STOP").or_panic("SIGSTOP");
    let live: Vec<usize> = (1..=3).filter(|k| *k != x as usize).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let owner = c.owner(&live, &topic, 0).ok().flatten();
        if owner.is_some_and(|o| o != x as usize) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partition 0 did not leave paused broker {x}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let (_, r) = elect(&mut conn, 2, 0, Some(&[(&topic, &[0])]));
    assert_eq!(r[&(topic.clone(), 0)], PREFERRED_LEADER_NOT_AVAILABLE, "{r:?}");

    // Away from home, the preferred broker is listed first among replicas.
    let parts = partitions_at(other, &topic);
    assert_eq!((parts[0].2.first(), parts[0].2.len()), (Some(&x), 2), "{parts:?}");
    assert_ne!(parts[0].1, x);

    // Back: it is live again (its partitions still elsewhere, but for at
    // most one the controller may have moved home meanwhile).
    c.signal(x as usize, "CONT").or_panic("SIGCONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !live_brokers(other).contains(&x) {
        assert!(Instant::now() < deadline, "broker {x} not live again");
        thread::sleep(Duration::from_millis(20));
    }
    let elected_at = Instant::now();
    let (top, r) = elect(&mut conn, 2, 0, None);
    assert_eq!(top, NONE);
    let mine: Vec<i32> = (0..6).filter(|p| leaders[*p as usize] == x).collect();
    assert!(mine.len() >= 2, "{leaders:?}");
    for p in 0..6 {
        let code = r[&(topic.clone(), p)];
        if mine.contains(&p) {
            // Moved now, or (at most one per 5 s) by the controller's own
            // rebalancing just before.
            assert!(code == NONE || code == ELECTION_NOT_NEEDED, "p{p}: {r:?}");
        } else {
            assert_eq!(code, ELECTION_NOT_NEEDED, "p{p}: {r:?}");
        }
    }
    assert!(
        mine.iter().any(|p| r[&(topic.clone(), *p)] == NONE),
        "ElectLeaders moved none of {mine:?}: {r:?}"
    );
    // Every partition is home, on every node.
    for addr in &addrs {
        assert_eq!(
            wait_led_by_preferred(*addr, &topic, 6, Duration::from_secs(5)),
            leaders
        );
    }

    // The producer kept going through the handoff and lost nothing.
    producer
        .wait_ack_of_message_sent_after(elected_at, Duration::from_secs(20))
        .or_panic("acks after the election");
    thread::sleep(Duration::from_millis(500));
    let sent = producer.stop().or_panic("stop producer");
    let acked = acknowledged(&sent);
    assert!(acked.len() > 20, "only {} acknowledged", acked.len());
    verify_zero_loss(c.bootstrap(), &topic, &acked).or_panic("zero loss");

    // Nothing more to elect, and the controller leaves it so.
    let (_, r) = elect(&mut conn, 1, 0, Some(&[(&topic, &[0, 1, 2, 3, 4, 5])]));
    assert!(r.values().all(|e| *e == ELECTION_NOT_NEEDED), "{r:?}");
    thread::sleep(Duration::from_secs(6));
    for addr in &addrs {
        assert_eq!(wait_led_by_preferred(*addr, &topic, 6, Duration::ZERO), leaders);
    }
    // Unclean election: every partition has a live leader, none is needed.
    let (_, r) = elect(&mut conn, 2, 1, Some(&[(&topic, &[0])]));
    assert_eq!(r[&(topic.clone(), 0)], ELECTION_NOT_NEEDED);
}

/// The broker ids node `addr` lists in Metadata (live brokers).
fn live_brokers(addr: SocketAddr) -> Vec<i32> {
    let mut conn = Conn::open(addr, "partitions-test").expect("connect");
    let req = MetadataRequest::default().with_topics(Some(Vec::new()));
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req).expect("Metadata");
    resp.brokers.iter().map(|b| b.node_id.0).collect()
}
