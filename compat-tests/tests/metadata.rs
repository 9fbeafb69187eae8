//! Metadata as librdkafka sees it: the single broker at its advertised address, a cluster id,
//! topics with their partitions, auto-creation, and unknown topics; and DescribeCluster, built by
//! hand, agreeing with Metadata.

use std::time::Duration;

use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::raw::Conn;
use distlog_compat_tests::{start_broker, DistlogOptions, DistlogProcess, OrPanic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeClusterRequest, DescribeClusterResponse,
    MetadataRequest, MetadataResponse,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaRespErr;

#[test]
fn metadata_lists_the_single_broker_at_its_advertised_port_and_a_cluster_id() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let md = kafka::fetch_metadata(&bootstrap, None).or_panic("metadata");
    assert_eq!(md.brokers().len(), 1, "exactly one broker");
    let b = &md.brokers()[0];
    assert_eq!(b.host(), "127.0.0.1");
    assert_eq!(b.port(), i32::from(broker.ports().kafka));

    let consumer: BaseConsumer = kafka::consumer_config(&bootstrap).create().expect("consumer");
    let cluster_id = consumer.client().fetch_cluster_id(Duration::from_secs(10));
    match cluster_id {
        Some(id) => assert!(!id.trim().is_empty(), "cluster id is blank"),
        None => panic!("no cluster id in Metadata"),
    }
}

#[test]
fn broker_id_is_the_configured_node_id() {
    let broker = DistlogProcess::start(DistlogOptions {
        node_id: Some(7),
        ..Default::default()
    })
    .or_panic("start distlog --node-id 7");
    let md = kafka::fetch_metadata(&broker.bootstrap(), None).or_panic("metadata");
    let ids: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    assert_eq!(ids, vec![7]);
}

#[test]
fn created_topic_is_listed_with_its_partitions_led_by_the_broker() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "orders", 3).or_panic("create topic");

    let md = kafka::fetch_metadata(&bootstrap, Some("orders")).or_panic("metadata");
    let broker_id = md.brokers()[0].id();
    assert_eq!(md.topics().len(), 1);
    let topic = &md.topics()[0];
    assert_eq!(topic.name(), "orders");
    assert_eq!(topic.error(), None);
    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());
    assert_eq!(
        partitions.iter().map(|p| p.id()).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    for p in partitions {
        assert_eq!(p.error(), None, "partition {}", p.id());
        assert_eq!(p.leader(), broker_id, "partition {} leader", p.id());
        assert_eq!(p.replicas(), &[broker_id], "partition {} replicas", p.id());
        assert_eq!(p.isr(), &[broker_id], "partition {} isr", p.id());
    }

    let all = kafka::fetch_metadata(&bootstrap, None).or_panic("metadata for all topics");
    let listed: Vec<&str> = all.topics().iter().map(|t| t.name()).collect();
    assert!(
        listed.contains(&"orders"),
        "all-topics metadata lists orders: {listed:?}"
    );
}

#[test]
fn producing_to_an_unknown_topic_auto_creates_it_with_one_partition() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "auto-created",
        None,
        &[TestRecord::value("first")],
        Duration::from_secs(30),
    )
    .or_panic("produce");
    assert_eq!(deliveries[0].result, Ok(0));
    assert_eq!(deliveries[0].partition, 0);

    let md = kafka::fetch_metadata(&bootstrap, Some("auto-created")).or_panic("metadata");
    assert_eq!(md.topics()[0].error(), None);
    assert_eq!(md.topics()[0].partitions().len(), 1);
}

#[test]
fn unknown_topic_without_auto_create_reports_unknown_topic_or_partition() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    // The consumer config sets allow.auto.create.topics=false: the broker must not create it.
    let md = kafka::fetch_metadata(&bootstrap, Some("never-created")).or_panic("metadata");
    assert_eq!(md.topics().len(), 1);
    assert_eq!(
        md.topics()[0].error(),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    );
    let all = kafka::fetch_metadata(&bootstrap, None).or_panic("metadata for all topics");
    assert!(
        all.topics().iter().all(|t| t.name() != "never-created"),
        "looking created the topic"
    );
}

/// Kafka's `listeners` / `advertised.listeners`: a client is told the addresses of the listener it
/// connected through (as a client on a Docker host and one inside the network need), in Metadata
/// and in FindCoordinator, and clients work through either listener.
#[test]
fn each_listener_advertises_its_own_address() {
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
    use kafka_protocol::protocol::StrBytes;

    let external_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("pick a port")
        .port();
    let broker = DistlogProcess::start(DistlogOptions {
        listeners: Some((
            format!("INTERNAL://127.0.0.1:{{kafka}},EXTERNAL://127.0.0.1:{external_port}"),
            format!("INTERNAL://127.0.0.1:{{kafka}},EXTERNAL://localhost:{external_port}"),
        )),
        ..Default::default()
    })
    .or_panic("start distlog with two listeners");
    let internal = broker.bootstrap();
    let external = format!("127.0.0.1:{external_port}");

    let seen = |bootstrap: &str| -> Vec<(i32, String, i32)> {
        let md = kafka::fetch_metadata(bootstrap, None).or_panic("metadata");
        md.brokers()
            .iter()
            .map(|b| (b.id(), b.host().to_string(), b.port()))
            .collect()
    };
    let kafka_port = i32::from(broker.ports().kafka);
    assert_eq!(seen(&internal), vec![(1, "127.0.0.1".to_string(), kafka_port)]);
    assert_eq!(
        seen(&external),
        vec![(1, "localhost".to_string(), i32::from(external_port))]
    );

    let addr: std::net::SocketAddr = external.parse().expect("address");
    let mut conn = distlog_compat_tests::raw::Conn::open(addr, "listeners-test").or_panic("connect");
    let resp: FindCoordinatorResponse = conn
        .call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g1")),
        )
        .or_panic("find coordinator");
    assert_eq!(resp.error_code, 0);
    assert_eq!(
        (resp.host.as_str(), resp.port),
        ("localhost", i32::from(external_port))
    );

    // Produce through one listener, read back through the other.
    kafka::create_topic(&external, "through-listeners", 1).or_panic("create topic");
    let records: Vec<TestRecord> = (0..20).map(|i| TestRecord::value(format!("v{i}"))).collect();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&external, "all"),
        "through-listeners",
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce through EXTERNAL");
    let offsets: Vec<i64> = deliveries
        .iter()
        .map(|d| *d.result.as_ref().expect("acknowledged"))
        .collect();
    assert_eq!(offsets, (0..20).collect::<Vec<i64>>());
    let back = kafka::consume_n(&internal, "through-listeners", 0, 0, 20, Duration::from_secs(30))
        .or_panic("consume through INTERNAL");
    let values: Vec<String> = back
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).to_string())
        .collect();
    assert_eq!(values, (0..20).map(|i| format!("v{i}")).collect::<Vec<_>>());
}

#[test]
fn describe_cluster_answers_what_metadata_says_and_refuses_controller_endpoints() {
    let broker = start_broker();
    let mut conn = Conn::open(broker.kafka_addr(), "describe-cluster").or_panic("connect");
    let versions: ApiVersionsResponse = conn
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .or_panic("ApiVersions");
    let advertised: Vec<(i16, i16)> = versions
        .api_keys
        .iter()
        .filter(|k| k.api_key == ApiKey::DescribeCluster as i16)
        .map(|k| (k.min_version, k.max_version))
        .collect();
    assert_eq!(advertised, vec![(0, 1)]);
    let meta: MetadataResponse = conn
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(Vec::new())),
        )
        .or_panic("Metadata");
    let cluster_id = meta.cluster_id.clone().expect("Metadata names a cluster id");
    for version in 0..=1 {
        let resp: DescribeClusterResponse = conn
            .call(
                ApiKey::DescribeCluster,
                version,
                &DescribeClusterRequest::default().with_endpoint_type(1),
            )
            .or_panic("DescribeCluster");
        assert_eq!(resp.error_code, 0, "v{version}: {resp:?}");
        assert_eq!(resp.cluster_id, cluster_id, "v{version}");
        assert_eq!(resp.controller_id, meta.controller_id, "v{version}");
        let brokers: Vec<(i32, String, i32)> = resp
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
            .collect();
        assert_eq!(
            brokers,
            vec![(1, "127.0.0.1".to_string(), i32::from(broker.kafka_addr().port()))],
            "v{version}"
        );
        assert_eq!(
            resp.cluster_authorized_operations,
            i32::MIN,
            "no ACLs: not provided"
        );
    }
    // v1 asking for the controllers' endpoints: a broker does not serve them.
    let controllers: DescribeClusterResponse = conn
        .call(
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default().with_endpoint_type(2),
        )
        .or_panic("DescribeCluster for controllers");
    assert_eq!((controllers.error_code, controllers.endpoint_type), (115, 2));
    assert!(controllers.brokers.is_empty());
}
