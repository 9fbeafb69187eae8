//! `--bookie-listen`: the broker's segment store served to other nodes. Records produced through
//! Kafka are read back as ledger entries over the bookie protocol from outside the process, byte
//! for byte the record batches the broker stored.

use std::time::Duration;

use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::{DistlogOptions, DistlogProcess, OrPanic};
use distlog_metadata::NodeId;
use distlog_storage::bookie_net::{ClientConfig, RemoteBookie};
use distlog_storage::ledger::BookieClient;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn produced_entries_are_readable_over_the_bookie_service() {
    let bookie_port = free_port();
    let broker = DistlogProcess::start(DistlogOptions {
        extra_args: vec!["--bookie-listen".into(), format!("127.0.0.1:{bookie_port}")],
        ..DistlogOptions::default()
    })
    .or_panic("start distlog");
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "served", 1).or_panic("create topic");
    let records: Vec<TestRecord> = (0..50)
        .map(|i| TestRecord::value(format!("entry-{i:03}")))
        .collect();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "served",
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce");
    assert!(deliveries.iter().all(|d| d.result.is_ok()), "all delivered");

    let topics = broker.http_get("/admin/topics").or_panic("GET /admin/topics");
    let json: serde_json::Value = serde_json::from_str(&topics.body).expect("JSON");
    let segment = &json["topics"][0]["partitions"][0]["segments"][0];
    let ledger = segment["ledger_id"].as_u64().expect("a ledger id");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let payload = runtime.block_on(async {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{bookie_port}").parse().expect("addr");
        let bookie = RemoteBookie::new(NodeId::new(1), addr, ClientConfig::default());
        let last = tokio::time::timeout(Duration::from_secs(10), bookie.last_entry(ledger))
            .await
            .expect("answered in time")
            .expect("last entry")
            .expect("the ledger has entries");
        let entries = tokio::time::timeout(
            Duration::from_secs(10),
            bookie.read_entries(ledger, 0, last.entry_id, 16 << 20),
        )
        .await
        .expect("answered in time")
        .expect("read entries");
        assert_eq!(entries.len() as u64, last.entry_id + 1, "every entry 0..=last");
        let records: u32 = entries.iter().map(|e| e.row.record_count).sum();
        assert_eq!(records, 50, "the entries hold the 50 records");
        assert_eq!(entries[0].row.first_seq, 0);
        entries
            .iter()
            .flat_map(|e| e.payload.to_vec())
            .collect::<Vec<u8>>()
    });
    // Every value appears in the stored record batches, in produce order.
    let mut from = 0;
    for i in 0..50 {
        let needle = format!("entry-{i:03}");
        let at = payload[from..]
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap_or_else(|| panic!("{needle} not found after byte {from}"));
        from += at + needle.len();
    }
}

#[test]
fn a_topic_wanting_more_bookies_than_exist_is_refused_not_under_replicated() {
    // One node has one bookie: a 3/3/2 topic could never place a segment, so CreateTopics refuses
    // it with INVALID_REPLICATION_FACTOR (as Kafka refuses a replication factor above its broker
    // count) and says why; nothing is created. A 1/1/1 topic works. (Bookies lost after creation
    // make produce fail with the retriable NOT_ENOUGH_REPLICAS: see tests/cluster.rs.)
    let broker = DistlogProcess::start(DistlogOptions::default()).or_panic("start distlog");
    let bootstrap = broker.bootstrap();
    let replication = |e: &'static str, w: &'static str, a: &'static str| {
        [
            ("distlog.ensemble.size", e),
            ("distlog.write.quorum", w),
            ("distlog.ack.quorum", a),
        ]
    };
    let err = kafka::create_topic_with_config(&bootstrap, "wants-three", 1, &replication("3", "3", "2"))
        .expect_err("a 3-bookie ensemble on a 1-bookie node is refused");
    let text = format!("{err:#}");
    assert!(text.contains("InvalidReplicationFactor"), "{text}");
    let md = kafka::fetch_metadata(&bootstrap, None).or_panic("metadata");
    assert!(
        md.topics().iter().all(|t| t.name() != "wants-three"),
        "the refused topic does not exist"
    );

    kafka::create_topic_with_config(&bootstrap, "fits-one", 1, &replication("1", "1", "1"))
        .or_panic("a 1/1/1 topic");
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "fits-one",
        Some(0),
        &[TestRecord::value("stored")],
        Duration::from_secs(30),
    )
    .or_panic("produce");
    assert_eq!(deliveries[0].result.clone().expect("acknowledged"), 0);
}
