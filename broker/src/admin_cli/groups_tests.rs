//! Unit tests of `admin_cli::groups`: request building at every version, answer reading, output.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::protocol::Encodable;

use super::*;

/// Every request this module builds encodes at every version the client
/// may negotiate (a field set that a version lacks fails to encode).
#[test]
fn requests_encode_at_every_client_version() {
    use kafka_protocol::messages::ApiKey;

    use crate::admin_cli::client::client_versions;
    use crate::admin_cli::reset::{commit_request, PlannedReset};
    let versions = |api| {
        let (lo, hi) = client_versions(api).expect("implemented");
        lo..=hi
    };
    let tps = vec![("t".to_string(), 0)];
    for v in versions(ApiKey::OffsetFetch) {
        let mut buf = BytesMut::new();
        offset_fetch_request("g", Some(&tps), v)
            .encode(&mut buf, v)
            .expect("offset fetch");
        offset_fetch_request("g", None, v)
            .encode(&mut buf, v)
            .expect("offset fetch all");
    }
    let topics: BTreeMap<String, Vec<i32>> = [("t".to_string(), vec![0, 1])].into_iter().collect();
    for v in versions(ApiKey::ListOffsets) {
        list_offsets_request(&topics, LATEST)
            .encode(&mut BytesMut::new(), v)
            .expect("list offsets");
    }
    let plan = vec![PlannedReset {
        topic: "t".into(),
        partition: 0,
        previous_offset: None,
        new_offset: 5,
    }];
    for v in versions(ApiKey::OffsetCommit) {
        commit_request("g", &plan)
            .encode(&mut BytesMut::new(), v)
            .expect("offset commit");
    }
    for v in versions(ApiKey::DescribeGroups) {
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str("g"))])
            .encode(&mut BytesMut::new(), v)
            .expect("describe groups");
    }
    for v in versions(ApiKey::DeleteGroups) {
        DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(StrBytes::from_static_str("g"))])
            .encode(&mut BytesMut::new(), v)
            .expect("delete groups");
    }
    for v in versions(ApiKey::ListGroups) {
        ListGroupsRequest::default()
            .encode(&mut BytesMut::new(), v)
            .expect("list groups");
    }
}

#[test]
fn decodes_consumer_assignments() {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![AssignedTopic::default()
            .with_topic(topic_name("t"))
            .with_partitions(vec![2, 0])])
        .encode(&mut buf, 1)
        .expect("encodes");
    let parts = decode_assignment(&buf.freeze()).expect("decodes");
    assert_eq!(
        parts,
        vec![
            PartitionRef {
                topic: "t".into(),
                partition: 0
            },
            PartitionRef {
                topic: "t".into(),
                partition: 2
            }
        ]
    );
    assert_eq!(decode_assignment(&Bytes::new()), None);
}

#[test]
fn offset_fetch_by_version() {
    let tps = vec![("t".to_string(), 0), ("t".to_string(), 1)];
    let v9 = offset_fetch_request("g", Some(&tps), 9);
    assert_eq!(&*v9.groups[0].group_id.0, "g");
    assert_eq!(
        v9.groups[0].topics.as_ref().expect("topics")[0].partition_indexes,
        vec![0, 1]
    );
    let v7 = offset_fetch_request("g", None, 7);
    assert_eq!(&*v7.group_id.0, "g");
    assert!(v7.topics.is_none());
    assert!(v7.groups.is_empty());
}

#[test]
fn committed_offsets_skip_unset_partitions() {
    let v7 = OffsetFetchResponse::default().with_topics(vec![OffsetFetchResponseTopic::default()
        .with_name(topic_name("t"))
        .with_partitions(vec![
            OffsetFetchResponsePartition::default()
                .with_partition_index(0)
                .with_committed_offset(5),
            OffsetFetchResponsePartition::default()
                .with_partition_index(1)
                .with_committed_offset(-1),
        ])]);
    let c = committed_of("g", 7, &v7).expect("offsets");
    assert_eq!(c.into_iter().collect::<Vec<_>>(), vec![(("t".to_string(), 0), 5)]);
    let v9 = OffsetFetchResponse::default().with_groups(vec![OffsetFetchResponseGroup::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_topics(vec![OffsetFetchResponseTopics::default()
            .with_name(topic_name("t"))
            .with_partitions(vec![OffsetFetchResponsePartitions::default()
                .with_partition_index(3)
                .with_committed_offset(7)])])]);
    let c = committed_of("g", 9, &v9).expect("offsets");
    assert_eq!(c.get(&("t".to_string(), 3)), Some(&7));
    let failed = OffsetFetchResponse::default().with_groups(vec![OffsetFetchResponseGroup::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_error_code(16)]);
    assert!(committed_of("g", 9, &failed).is_err());
}

#[test]
fn renders_a_group() {
    let g = GroupDescription {
        group: "g".into(),
        state: "Empty".into(),
        protocol_type: "consumer".into(),
        protocol: String::new(),
        coordinator: 1,
        members: vec![],
        offsets: vec![PartitionOffsets {
            topic: "t".into(),
            partition: 0,
            current_offset: Some(5),
            log_end_offset: Some(10),
            lag: Some(5),
            member_id: None,
        }],
    };
    assert_eq!(
        describe_text(&[g]),
        "Group: g  State: Empty  Protocol: -  Members: 0\n\
         Consumer group 'g' has no active members.\n\
         GROUP  TOPIC  PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID\n\
         g      t      0          5               10              5    -            -     -\n"
    );
}
