//! Unit tests of `admin_cli::topics`: request building at every version, answer reading, output.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};

use kafka_protocol::messages::DescribeConfigsResponse;

use super::*;
use crate::admin_cli::topic_configs::{alter_request, configs_of};

/// Every request this module builds encodes at every version the client
/// may negotiate.
#[test]
fn requests_encode_at_every_client_version() {
    use bytes::BytesMut;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::Encodable;

    use crate::admin_cli::client::client_versions;
    use crate::admin_cli::log_dirs;
    use crate::admin_cli::records::{self, DeleteTarget};
    let versions = |api| {
        let (lo, hi) = client_versions(api).expect("implemented");
        lo..=hi
    };
    for v in versions(ApiKey::CreateTopics) {
        create_request("t", 3, 1, &[("a".into(), "b".into())], true)
            .encode(&mut BytesMut::new(), v)
            .expect("create topics");
    }
    for v in versions(ApiKey::DeleteTopics) {
        delete_request(&["t".to_string()], v)
            .encode(&mut BytesMut::new(), v)
            .expect("delete topics");
    }
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        alter_request("t", &[("a".into(), "1".into())], &["b".into()], true)
            .encode(&mut BytesMut::new(), v)
            .expect("incremental alter configs");
    }
    for v in versions(ApiKey::CreatePartitions) {
        add_partitions_request("t", 4, true)
            .encode(&mut BytesMut::new(), v)
            .expect("create partitions");
    }
    for v in versions(ApiKey::DescribeConfigs) {
        DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_configuration_keys(None)])
            .encode(&mut BytesMut::new(), v)
            .expect("describe configs");
    }
    let target = DeleteTarget {
        topic: "t".into(),
        partition: 0,
        offset: 5,
    };
    for v in versions(ApiKey::DeleteRecords) {
        records::delete_request(std::slice::from_ref(&target), 1000)
            .encode(&mut BytesMut::new(), v)
            .expect("delete records");
    }
    for v in versions(ApiKey::DescribeLogDirs) {
        log_dirs::describe_request(None)
            .encode(&mut BytesMut::new(), v)
            .expect("describe log dirs");
        log_dirs::describe_request(Some(vec![("t".into(), vec![0])]))
            .encode(&mut BytesMut::new(), v)
            .expect("describe log dirs of a topic");
    }
    for v in versions(ApiKey::DescribeCluster) {
        kafka_protocol::messages::DescribeClusterRequest::default()
            .with_endpoint_type(1)
            .encode(&mut BytesMut::new(), v)
            .expect("describe cluster");
    }
}

#[test]
fn create_carries_counts_and_configs() {
    let r = create_request("t", 3, 1, &[("retention.ms".into(), "1000".into())], true);
    let t = &r.topics[0];
    assert_eq!(&*t.name.0, "t");
    assert_eq!((t.num_partitions, t.replication_factor), (3, 1));
    assert_eq!(&*t.configs[0].name, "retention.ms");
    assert_eq!(t.configs[0].value.as_deref(), Some("1000"));
    assert!(r.validate_only);
}

#[test]
fn delete_names_topics_by_version() {
    let topics = vec!["a".to_string(), "b".to_string()];
    let v6 = delete_request(&topics, 6);
    assert_eq!(v6.topics.len(), 2);
    assert!(v6.topic_names.is_empty());
    let v5 = delete_request(&topics, 5);
    assert_eq!(v5.topic_names.len(), 2);
    assert!(v5.topics.is_empty());
}

#[test]
fn delete_outcomes_report_each_topic() {
    let answer = DeleteTopicsResponse::default().with_responses(vec![
        DeletableTopicResult::default().with_name(Some(topic_name("a"))),
        DeletableTopicResult::default()
            .with_name(Some(topic_name("b")))
            .with_error_code(3),
    ]);
    let out = delete_outcomes(&["a".to_string(), "b".to_string()], &answer);
    assert_eq!(out[0].error, None);
    assert_eq!(out[1].error.as_deref(), Some("UNKNOWN_TOPIC_OR_PARTITION"));
}

#[test]
fn alter_sets_then_deletes() {
    let r = alter_request("t", &[("a".into(), "1".into())], &["b".into()], false);
    let res = &r.resources[0];
    assert_eq!(res.resource_type, RESOURCE_TOPIC);
    assert_eq!(&*res.resource_name, "t");
    assert_eq!(
        (res.configs[0].config_operation, res.configs[0].value.as_deref()),
        (0, Some("1"))
    );
    assert_eq!(
        (res.configs[1].config_operation, res.configs[1].value.as_deref()),
        (1, None)
    );
}

#[test]
fn add_partitions_asks_for_the_total() {
    let r = add_partitions_request("t", 6, false);
    assert_eq!(r.topics[0].count, 6);
    assert!(r.topics[0].assignments.is_none());
}

#[test]
fn describe_renders_partitions_and_configs() {
    let answer = DescribeConfigsResponse::default().with_results(vec![DescribeConfigsResult::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(StrBytes::from_static_str("t"))
        .with_configs(vec![
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("1000")))
                .with_config_source(1),
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str("cleanup.policy"))
                .with_value(Some(StrBytes::from_static_str("delete")))
                .with_config_source(5),
        ])]);
    let configs = configs_of(&answer, "t").expect("configs");
    assert_eq!(configs[0].name, "cleanup.policy");
    assert_eq!(configs[1].source, "DYNAMIC_TOPIC_CONFIG");
    let topic = DescribedTopic {
        name: "t".into(),
        topic_id: "id".into(),
        internal: false,
        partitions: vec![DescribedPartition {
            partition: 0,
            leader: 1,
            leader_epoch: 2,
            replicas: vec![1],
            isr: vec![1],
        }],
        configs,
    };
    assert_eq!(
        describe_text(&[topic]),
        "Topic: t  TopicId: id  PartitionCount: 1  ReplicationFactor: 1\n\
         PARTITION  LEADER  EPOCH  REPLICAS  ISR\n\
         0          1       2      1         1\n\
         \n\
         CONFIG          VALUE   SOURCE                READ-ONLY\n\
         cleanup.policy  delete  DEFAULT_CONFIG        false\n\
         retention.ms    1000    DYNAMIC_TOPIC_CONFIG  false\n"
    );
}
