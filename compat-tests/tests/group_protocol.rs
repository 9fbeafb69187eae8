//! The group coordinator at the protocol level: each group API at the versions clients use, with
//! the exact error codes Kafka answers (MEMBER_ID_REQUIRED, UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID, INVALID_SESSION_TIMEOUT,
//! NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC, OFFSET_METADATA_TOO_LARGE, …)
//! and what ApiVersions advertises. Requests are encoded with the kafka-protocol crate and sent
//! over a plain socket to a real broker, so every field is under the test's control.

use std::io::Write;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use distlog_compat_tests::raw;
use distlog_compat_tests::{kafka, DistlogOptions, DistlogProcess, OrPanic};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection speaking typed requests; any transport or codec failure panics.
struct Conn(raw::Conn);

impl Conn {
    fn open(broker: &DistlogProcess) -> Conn {
        Conn(raw::Conn::open(broker.kafka_addr(), "group-protocol-test").or_panic("connect"))
    }

    fn call<Req: Encodable, Resp: Decodable>(&mut self, key: ApiKey, version: i16, req: &Req) -> Resp {
        self.0.call(key, version, req).or_panic("request")
    }

    /// Sends without reading the answer (pipelining); returns the correlation id.
    fn send<Req: Encodable>(&mut self, key: ApiKey, version: i16, req: &Req) -> i32 {
        self.0.send(key, version, req).or_panic("send request")
    }

    /// Reads the answer to the request sent as `correlation`.
    fn receive<Resp: Decodable>(&mut self, key: ApiKey, version: i16, correlation: i32) -> Resp {
        self.0.receive(key, version, correlation).or_panic("response")
    }
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn gid(text: &str) -> GroupId {
    GroupId(s(text))
}

fn err(code: i16) -> Option<ResponseError> {
    ResponseError::try_from_code(code)
}

fn subscription(topics: &[&str]) -> Bytes {
    let sub = ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    sub.encode(&mut buf, 1).or_panic("encode subscription");
    buf.freeze()
}

fn join_request(
    group: &str,
    member: &str,
    instance: Option<&str>,
    session_ms: i32,
    topics: &[&str],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(subscription(topics))])
}

fn start() -> DistlogProcess {
    DistlogProcess::start(DistlogOptions {
        extra_args: vec!["--group-initial-rebalance-delay-ms".into(), "0".into()],
        ..DistlogOptions::default()
    })
    .or_panic("start distlog")
}

/// A member that joined (two-step, KIP-394) and synced `assignment`; returns (member id, generation).
fn join_and_sync(c: &mut Conn, group: &str, topics: &[&str]) -> (String, i32) {
    let first: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_request(group, "", None, 6000, topics));
    assert_eq!(err(first.error_code), Some(ResponseError::MemberIdRequired));
    assert_eq!(first.generation_id, -1);
    let member = first.member_id.to_string();
    assert!(member.starts_with("group-protocol-test-"), "{member}");
    let joined: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        5,
        &join_request(group, &member, None, 6000, topics),
    );
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader.as_str(), member);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, subscription(topics));
    let generation = joined.generation_id;
    let synced: SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        3,
        &SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(s(&member))
            .with_assignments(vec![sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"assignment-bytes"))]),
    );
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, Bytes::from_static(b"assignment-bytes"));
    (member, generation)
}

fn commit(
    c: &mut Conn,
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    offset: i64,
    metadata: &str,
) -> i16 {
    let resp: OffsetCommitResponse = c.call(
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(7)
                        .with_committed_metadata(Some(s(metadata))),
                ])]),
    );
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].partitions.len(), 1);
    resp.topics[0].partitions[0].error_code
}

fn fetch_v7(c: &mut Conn, group: &str, topic: &str) -> offset_fetch_response::OffsetFetchResponsePartition {
    let resp: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(gid(group))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(vec![0]),
            ]))
            .with_require_stable(true),
    );
    assert_eq!(resp.error_code, 0);
    resp.topics[0].partitions[0].clone()
}

#[test]
fn api_versions_advertise_the_group_apis() {
    let broker = start();
    let mut stream = raw::connect(broker.kafka_addr(), IO_TIMEOUT).or_panic("connect");
    stream
        .write_all(&raw::api_versions_request(0, 1, "versions"))
        .expect("send");
    let decoded =
        raw::decode_api_versions_v0(&raw::read_frame(&mut stream).or_panic("read")).or_panic("decode");
    let range = |key: ApiKey| {
        decoded
            .api_keys
            .iter()
            .find(|a| a.api_key == key as i16)
            .map(|a| (a.min_version, a.max_version))
    };
    assert_eq!(range(ApiKey::FindCoordinator), Some((0, 6)));
    assert_eq!(range(ApiKey::JoinGroup), Some((0, 9)));
    assert_eq!(range(ApiKey::SyncGroup), Some((0, 5)));
    assert_eq!(range(ApiKey::Heartbeat), Some((0, 4)));
    assert_eq!(range(ApiKey::LeaveGroup), Some((0, 5)));
    assert_eq!(range(ApiKey::OffsetCommit), Some((2, 9)));
    assert_eq!(range(ApiKey::OffsetFetch), Some((1, 9)));
    assert_eq!(range(ApiKey::ListGroups), Some((0, 5)));
    assert_eq!(range(ApiKey::DescribeGroups), Some((0, 6)));
    assert_eq!(range(ApiKey::DeleteGroups), Some((0, 2)));
    assert_eq!(range(ApiKey::OffsetDelete), Some((0, 0)));
}

#[test]
fn find_coordinator_answers_single_and_batched_keys() {
    let broker = start();
    let mut c = Conn::open(&broker);
    let port = broker.kafka_addr().port() as i32;
    let one: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(s("g1"))
            .with_key_type(0),
    );
    assert_eq!((one.error_code, one.node_id.0, one.port), (0, 1, port));
    assert_eq!(one.host.as_str(), "127.0.0.1");
    let v0: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        0,
        &FindCoordinatorRequest::default().with_key(s("g1")),
    );
    assert_eq!((v0.error_code, v0.node_id.0, v0.port), (0, 1, port));
    let txn: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        2,
        &FindCoordinatorRequest::default()
            .with_key(s("tx"))
            .with_key_type(1),
    );
    assert_eq!((txn.error_code, txn.node_id.0, txn.port), (0, 1, port));
    let batch: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![s("a"), s("b"), s("")]),
    );
    let got: Vec<(String, i16, i32, i32)> = batch
        .coordinators
        .iter()
        .map(|c| (c.key.to_string(), c.error_code, c.node_id.0, c.port))
        .collect();
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(
        got,
        vec![
            ("a".into(), 0, 1, port),
            ("b".into(), 0, 1, port),
            ("".into(), invalid, -1, -1)
        ]
    );
}

#[test]
fn membership_errors_are_kafkas() {
    let broker = start();
    kafka::create_topic(&broker.bootstrap(), "t", 1).or_panic("create topic");
    let mut c = Conn::open(&broker);
    let bad: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_request("g", "", None, 1000, &["t"]));
    assert_eq!(err(bad.error_code), Some(ResponseError::InvalidSessionTimeout));
    let unknown: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        5,
        &join_request("g", "nobody", None, 6000, &["t"]),
    );
    assert_eq!(err(unknown.error_code), Some(ResponseError::UnknownMemberId));
    let empty_group: JoinGroupResponse =
        c.call(ApiKey::JoinGroup, 5, &join_request("", "", None, 6000, &["t"]));
    assert_eq!(err(empty_group.error_code), Some(ResponseError::InvalidGroupId));

    let (member, generation) = join_and_sync(&mut c, "g", &["t"]);
    let hb = |c: &mut Conn, member: &str, generation: i32, instance: Option<&str>| -> i16 {
        let r: HeartbeatResponse = c.call(
            ApiKey::Heartbeat,
            4,
            &HeartbeatRequest::default()
                .with_group_id(gid("g"))
                .with_generation_id(generation)
                .with_member_id(s(member))
                .with_group_instance_id(instance.map(s)),
        );
        r.error_code
    };
    assert_eq!(hb(&mut c, &member, generation, None), 0);
    assert_eq!(
        err(hb(&mut c, &member, generation + 1, None)),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        err(hb(&mut c, "stranger", generation, None)),
        Some(ResponseError::UnknownMemberId)
    );

    let stale_sync: SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        5,
        &SyncGroupRequest::default()
            .with_group_id(gid("g"))
            .with_generation_id(generation - 1)
            .with_member_id(s(&member))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range"))),
    );
    assert_eq!(err(stale_sync.error_code), Some(ResponseError::IllegalGeneration));

    // A second member (JoinGroup v3: no member id round trip) starts a rebalance; its join waits
    // for the first member, who learns of it from its heartbeat and rejoins.
    let mut c2 = Conn::open(&broker);
    let second = std::thread::spawn(move || -> JoinGroupResponse {
        c2.call(ApiKey::JoinGroup, 3, &join_request("g", "", None, 6000, &["t"]))
    });
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    loop {
        let code = hb(&mut c, &member, generation, None);
        if err(code) == Some(ResponseError::RebalanceInProgress) {
            break;
        }
        assert_eq!(code, 0);
        assert!(std::time::Instant::now() < deadline, "no rebalance signalled");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rejoined: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        5,
        &join_request("g", &member, None, 6000, &["t"]),
    );
    let second = second.join().expect("second member thread");
    assert_eq!((rejoined.error_code, second.error_code), (0, 0));
    assert_eq!(rejoined.generation_id, generation + 1);
    assert_eq!(second.generation_id, generation + 1);
    assert_eq!(rejoined.leader.as_str(), member, "the leader stays");
    assert_eq!(second.leader.as_str(), member);
    assert_eq!(rejoined.members.len(), 2);
    assert!(second.members.is_empty());
    // Before the leader's assignment arrives, commits are told to wait.
    assert_eq!(
        err(commit(&mut c, "g", &member, generation + 1, "t", 1, "")),
        Some(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn static_members_fence_their_old_incarnation() {
    let broker = start();
    let mut c = Conn::open(&broker);
    let first: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        5,
        &join_request("sg", "", Some("inst"), 6000, &["t"]),
    );
    assert_eq!(first.error_code, 0, "static members skip MEMBER_ID_REQUIRED");
    let old = first.member_id.to_string();
    let synced: SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        3,
        &SyncGroupRequest::default()
            .with_group_id(gid("sg"))
            .with_generation_id(first.generation_id)
            .with_member_id(s(&old))
            .with_group_instance_id(Some(s("inst")))
            .with_assignments(vec![sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&old))
                .with_assignment(Bytes::from_static(b"mine"))]),
    );
    assert_eq!(synced.error_code, 0);
    // The instance restarts and rejoins without its member id: same generation, same assignment.
    let again: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        5,
        &join_request("sg", "", Some("inst"), 6000, &["t"]),
    );
    assert_eq!(again.error_code, 0);
    assert_eq!(again.generation_id, first.generation_id);
    let new = again.member_id.to_string();
    assert_ne!(new, old);
    let resync: SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        3,
        &SyncGroupRequest::default()
            .with_group_id(gid("sg"))
            .with_generation_id(again.generation_id)
            .with_member_id(s(&new))
            .with_group_instance_id(Some(s("inst"))),
    );
    assert_eq!(
        (resync.error_code, resync.assignment.clone()),
        (0, Bytes::from_static(b"mine"))
    );
    let fenced: HeartbeatResponse = c.call(
        ApiKey::Heartbeat,
        3,
        &HeartbeatRequest::default()
            .with_group_id(gid("sg"))
            .with_generation_id(first.generation_id)
            .with_member_id(s(&old))
            .with_group_instance_id(Some(s("inst"))),
    );
    assert_eq!(err(fenced.error_code), Some(ResponseError::FencedInstanceId));
    // Batched leave: the fenced id is refused, the unknown instance is unknown, the live one leaves.
    let leave: LeaveGroupResponse = c.call(
        ApiKey::LeaveGroup,
        4,
        &LeaveGroupRequest::default()
            .with_group_id(gid("sg"))
            .with_members(vec![
                leave_group_request::MemberIdentity::default()
                    .with_member_id(s(&old))
                    .with_group_instance_id(Some(s("inst"))),
                leave_group_request::MemberIdentity::default()
                    .with_member_id(s(""))
                    .with_group_instance_id(Some(s("ghost"))),
                leave_group_request::MemberIdentity::default()
                    .with_member_id(s(&new))
                    .with_group_instance_id(Some(s("inst"))),
            ]),
    );
    let codes: Vec<Option<ResponseError>> = leave.members.iter().map(|m| err(m.error_code)).collect();
    assert_eq!(
        codes,
        vec![
            Some(ResponseError::FencedInstanceId),
            Some(ResponseError::UnknownMemberId),
            None
        ]
    );
    let described: DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![gid("sg")]),
    );
    assert_eq!(described.groups[0].group_state.as_str(), "Empty");
}

#[test]
fn offsets_commit_fetch_delete_with_kafka_errors() {
    let broker = start();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "t", 1).or_panic("create topic");
    kafka::create_topic(&bootstrap, "other", 1).or_panic("create topic");
    let mut c = Conn::open(&broker);

    // Standalone (assign-based) commits: generation -1, no member id.
    assert_eq!(commit(&mut c, "solo", "", -1, "t", 42, "meta"), 0);
    let got = fetch_v7(&mut c, "solo", "t");
    assert_eq!(
        (
            got.committed_offset,
            got.committed_leader_epoch,
            got.metadata.as_deref(),
            got.error_code
        ),
        (42, 7, Some("meta"), 0)
    );
    assert_eq!(
        err(commit(&mut c, "solo", "", -1, "missing", 1, "")),
        Some(ResponseError::UnknownTopicOrPartition)
    );
    assert_eq!(
        err(commit(&mut c, "solo", "", -1, "t", 1, &"x".repeat(4097))),
        Some(ResponseError::OffsetMetadataTooLarge)
    );

    // A live group: only its members, at the current generation, may commit.
    let (member, generation) = join_and_sync(&mut c, "live", &["t"]);
    assert_eq!(commit(&mut c, "live", &member, generation, "t", 10, ""), 0);
    assert_eq!(
        err(commit(&mut c, "live", &member, generation + 1, "t", 11, "")),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        err(commit(&mut c, "live", "", -1, "t", 11, "")),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        err(commit(&mut c, "never-seen", "m", 3, "t", 11, "")),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(fetch_v7(&mut c, "live", "t").committed_offset, 10);

    // OffsetFetch v8: several groups at once, all topics (null).
    let multi: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(gid("solo"))
                .with_topics(None),
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(gid("live"))
                .with_topics(None),
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(gid("unknown"))
                .with_topics(None),
        ]),
    );
    let summary: Vec<(String, Vec<(String, i64)>)> = multi
        .groups
        .iter()
        .map(|g| {
            let rows = g
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| (t.name.to_string(), p.committed_offset))
                })
                .collect();
            (g.group_id.to_string(), rows)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("solo".into(), vec![("t".into(), 42)]),
            ("live".into(), vec![("t".into(), 10)]),
            ("unknown".into(), vec![]),
        ]
    );

    // OffsetDelete: refused for a subscribed topic of a live group, allowed otherwise.
    assert_eq!(commit(&mut c, "live", &member, generation, "other", 5, ""), 0);
    let deleted: OffsetDeleteResponse = c.call(
        ApiKey::OffsetDelete,
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(gid("live"))
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default(),
                    ]),
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("other")))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default(),
                    ]),
            ]),
    );
    assert_eq!(deleted.error_code, 0);
    let codes: Vec<Option<ResponseError>> = deleted
        .topics
        .iter()
        .map(|t| err(t.partitions[0].error_code))
        .collect();
    assert_eq!(codes, vec![Some(ResponseError::GroupSubscribedToTopic), None]);
    assert_eq!(fetch_v7(&mut c, "live", "other").committed_offset, -1);

    // DeleteGroups: a live group is refused, an unknown one is not found, an empty one goes.
    let del: DeleteGroupsResponse = c.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![gid("live"), gid("nope"), gid("solo")]),
    );
    let codes: Vec<(String, Option<ResponseError>)> = del
        .results
        .iter()
        .map(|r| (r.group_id.to_string(), err(r.error_code)))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("live".into(), Some(ResponseError::NonEmptyGroup)),
            ("nope".into(), Some(ResponseError::GroupIdNotFound)),
            ("solo".into(), None),
        ]
    );
    assert_eq!(fetch_v7(&mut c, "solo", "t").committed_offset, -1);

    // ListGroups with a state filter, DescribeGroups of a live and an unknown group.
    let listed: ListGroupsResponse = c.call(
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default().with_states_filter(vec![s("Stable")]),
    );
    let names: Vec<(String, String)> = listed
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect();
    assert_eq!(names, vec![("live".to_string(), "Stable".to_string())]);
    let described: DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        6,
        &DescribeGroupsRequest::default().with_groups(vec![gid("live"), gid("nope")]),
    );
    let live = &described.groups[0];
    assert_eq!(
        (
            live.error_code,
            live.group_state.as_str(),
            live.protocol_type.as_str(),
            live.protocol_data.as_str()
        ),
        (0, "Stable", "consumer", "range")
    );
    assert_eq!(live.members.len(), 1);
    assert_eq!(live.members[0].member_id.as_str(), member);
    assert_eq!(live.members[0].client_id.as_str(), "group-protocol-test");
    assert_eq!(live.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(
        live.members[0].member_assignment,
        Bytes::from_static(b"assignment-bytes")
    );
    assert_eq!(
        err(described.groups[1].error_code),
        Some(ResponseError::GroupIdNotFound)
    );

    // Deleting the topic drops its offsets.
    kafka::delete_topic(&bootstrap, "t").or_panic("delete topic");
    assert_eq!(fetch_v7(&mut c, "live", "t").committed_offset, -1);
}

#[test]
fn a_truncated_join_group_closes_the_connection() {
    let broker = start();
    let mut stream = raw::connect(broker.kafka_addr(), IO_TIMEOUT).or_panic("connect");
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::JoinGroup as i16)
        .with_request_api_version(5)
        .with_correlation_id(9)
        .with_client_id(Some(s("hostile")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, ApiKey::JoinGroup.request_header_version(5))
        .or_panic("encode header");
    let mut body = BytesMut::new();
    join_request("g", "", None, 6000, &["t"])
        .encode(&mut body, 5)
        .or_panic("encode body");
    buf.extend_from_slice(&body[..body.len() / 2]);
    let received = raw::send_and_expect_close(&mut stream, &raw::frame(&buf), IO_TIMEOUT).or_panic("closed");
    assert!(received.is_empty(), "no response to an undecodable request");
}

fn leave_request(group: &str, member: &str) -> LeaveGroupRequest {
    LeaveGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
}

fn sync_request(group: &str, member: &str, generation: i32) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
}

/// Parked JoinGroup and SyncGroup requests are answered as soon as the group moves on, as Kafka's
/// GroupCoordinator answers them, and a parked request never holds back a later request on its
/// connection: a LeaveGroup pipelined behind its member's parked JoinGroup is handled at once
/// (the join is answered UNKNOWN_MEMBER_ID), and a follower's parked SyncGroup is answered
/// REBALANCE_IN_PROGRESS when the leader leaves. Rebalances here time out after 10 s; every
/// answer must come well before.
#[test]
fn parked_join_and_sync_are_answered_when_the_group_moves_on() {
    let broker = start();
    kafka::create_topic(&broker.bootstrap(), "t", 1).or_panic("create topic");
    let prompt = Duration::from_secs(3);
    let mut a = Conn::open(&broker);
    let mut b = Conn::open(&broker);
    let (member_a, generation) = join_and_sync(&mut a, "parked", &["t"]);

    // b joins (two-step): its second JoinGroup parks, waiting for a to rejoin; b's LeaveGroup
    // goes right behind it on the same connection.
    let first: JoinGroupResponse = b.call(
        ApiKey::JoinGroup,
        5,
        &join_request("parked", "", None, 6000, &["t"]),
    );
    assert_eq!(err(first.error_code), Some(ResponseError::MemberIdRequired));
    let member_b = first.member_id.to_string();
    let started = std::time::Instant::now();
    let join = b.send(
        ApiKey::JoinGroup,
        5,
        &join_request("parked", &member_b, None, 6000, &["t"]),
    );
    let leave = b.send(ApiKey::LeaveGroup, 1, &leave_request("parked", &member_b));
    let joined: JoinGroupResponse = b.receive(ApiKey::JoinGroup, 5, join);
    let left: LeaveGroupResponse = b.receive(ApiKey::LeaveGroup, 1, leave);
    let took = started.elapsed();
    assert_eq!(
        (err(joined.error_code), joined.generation_id, left.error_code),
        (Some(ResponseError::UnknownMemberId), -1, 0),
        "the parked join of the member that left, then its leave"
    );
    assert!(took < prompt, "answered after {took:?}");

    // a rejoins alone: the rebalance b started completes at once, with a only.
    let rejoined: JoinGroupResponse = a.call(
        ApiKey::JoinGroup,
        5,
        &join_request("parked", &member_a, None, 6000, &["t"]),
    );
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(rejoined.generation_id, generation + 1);
    assert_eq!(rejoined.members.len(), 1);

    // b joins again; its join parks until a rejoins, then both are in CompletingRebalance.
    let first: JoinGroupResponse = b.call(
        ApiKey::JoinGroup,
        5,
        &join_request("parked", "", None, 6000, &["t"]),
    );
    let member_b = first.member_id.to_string();
    let join_b = b.send(
        ApiKey::JoinGroup,
        5,
        &join_request("parked", &member_b, None, 6000, &["t"]),
    );
    // b's join starts a new round once the broker has it; a's join completes that round (a join
    // of a that arrives first is answered with the current generation again: retry).
    let mut tries = 0;
    let join_a: JoinGroupResponse = loop {
        let r: JoinGroupResponse = a.call(
            ApiKey::JoinGroup,
            5,
            &join_request("parked", &member_a, None, 6000, &["t"]),
        );
        if r.generation_id > rejoined.generation_id || tries == 50 {
            break r;
        }
        tries += 1;
        std::thread::sleep(Duration::from_millis(50));
    };
    let joined_b: JoinGroupResponse = b.receive(ApiKey::JoinGroup, 5, join_b);
    assert_eq!((join_a.error_code, joined_b.error_code), (0, 0));
    assert_eq!(join_a.generation_id, joined_b.generation_id);
    assert_eq!(join_a.leader.as_str(), member_a, "a leads");
    let generation = join_a.generation_id;

    // b (a follower) syncs and parks waiting for the leader's assignment; the leader leaves.
    let started = std::time::Instant::now();
    let sync_b = b.send(
        ApiKey::SyncGroup,
        3,
        &sync_request("parked", &member_b, generation),
    );
    // Give the sync time to park (were it not parked yet, it would get the same answer).
    std::thread::sleep(Duration::from_millis(200));
    let left: LeaveGroupResponse = a.call(ApiKey::LeaveGroup, 1, &leave_request("parked", &member_a));
    assert_eq!(left.error_code, 0);
    let synced: SyncGroupResponse = b.receive(ApiKey::SyncGroup, 3, sync_b);
    let took = started.elapsed();
    assert_eq!(
        err(synced.error_code),
        Some(ResponseError::RebalanceInProgress),
        "the follower's parked sync when the leader left"
    );
    assert!(took < prompt, "answered after {took:?}");
}
