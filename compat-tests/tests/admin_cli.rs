//! `distlog admin …` against a real broker: the real `distlog` binary's `admin` subcommand, run
//! as an operator runs it (a process with a deadline), each subcommand in human and `--json`
//! form, with the JSON parsed and its values asserted exactly, and the effects checked with
//! independent clients (rdkafka, hand-built frames, the HTTP admin API).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use distlog_compat_tests::command::{run_with_deadline, CommandOutput};
use distlog_compat_tests::group::{committed_for_group, group_consumer_config, GroupMember, CLOSE_DEADLINE};
use distlog_compat_tests::process::locate_binary;
use distlog_compat_tests::{kafka, now_ms, raw, start_broker, DistlogProcess, OrPanic};
use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, DescribeClusterResponse};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

/// How long one CLI invocation may take.
const CLI_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `distlog admin <args>` against `broker` (its Kafka and HTTP ports).
fn admin(broker: &DistlogProcess, args: &[&str]) -> CommandOutput {
    let mut cmd = Command::new(locate_binary().or_panic("find the distlog binary"));
    cmd.arg("admin")
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .arg("--http")
        .arg(broker.http_addr().to_string())
        .arg("--timeout-ms")
        .arg("15000")
        .args(args);
    run_with_deadline(cmd, None, CLI_DEADLINE).or_panic("run distlog admin")
}

/// Runs a command that must succeed; returns its stdout.
fn admin_ok(broker: &DistlogProcess, args: &[&str]) -> String {
    let out = admin(broker, args);
    assert!(
        out.status.success(),
        "distlog admin {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        out.stdout_text(),
        out.stderr
    );
    out.stdout_text()
}

/// Runs a command with `--json` that must succeed; returns the parsed document.
fn admin_json(broker: &DistlogProcess, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let text = admin_ok(broker, &with_json);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("distlog admin {args:?} --json printed non-JSON ({e}): {text}"))
}

/// Runs a command that must fail with exit status 1; returns (stdout, stderr).
fn admin_fails(broker: &DistlogProcess, args: &[&str]) -> (String, String) {
    let out = admin(broker, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "distlog admin {args:?} should fail:\nstdout: {}\nstderr: {}",
        out.stdout_text(),
        out.stderr
    );
    (out.stdout_text(), out.stderr)
}

/// Create `topic` with `partitions` partitions and write records "r0".."r{n-1}" to partition 0.
fn topic_with_records(bootstrap: &str, topic: &str, partitions: i32, n: usize) {
    kafka::create_topic(bootstrap, topic, partitions).or_panic("create topic");
    let records: Vec<kafka::TestRecord> = (0..n)
        .map(|i| kafka::TestRecord::value(format!("r{i}")))
        .collect();
    kafka::produce_records(
        &kafka::producer_config(bootstrap, "all"),
        topic,
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce");
}

#[test]
fn topics_create_list_describe_delete() {
    let broker = start_broker();
    let out = admin_ok(
        &broker,
        &[
            "topics",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=86400000",
        ],
    );
    assert_eq!(
        out,
        "Created topic orders (3 partitions, replication factor 1).\n"
    );
    let created = admin_json(&broker, &["topics", "create", "events", "--partitions", "2"]);
    let events_id = created["topic_id"].as_str().expect("topic_id").to_string();
    assert_eq!(events_id.len(), 36, "{created}");
    assert_eq!(
        created,
        json!({"topic": "events", "topic_id": events_id, "partitions": 2, "replication_factor": 1, "validate_only": false})
    );
    let validated = admin_json(
        &broker,
        &["topics", "create", "dry", "--partitions", "4", "--validate-only"],
    );
    assert_eq!(validated["validate_only"], json!(true));

    // The topics exist for an independent client, with the asked partition counts.
    let meta = kafka::fetch_metadata(&broker.bootstrap(), None).or_panic("metadata");
    let mut seen: Vec<(String, usize)> = meta
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect();
    seen.sort();
    assert_eq!(seen, vec![("events".to_string(), 2), ("orders".to_string(), 3)]);

    let (_, err) = admin_fails(&broker, &["topics", "create", "orders", "--partitions", "1"]);
    assert!(
        err.starts_with("distlog admin: create topic 'orders': TOPIC_ALREADY_EXISTS"),
        "{err}"
    );
    assert!(
        err.contains("— choose another name, or delete the topic first"),
        "{err}"
    );

    assert_eq!(
        admin_ok(&broker, &["topics", "list"]),
        "TOPIC   PARTITIONS  REPLICATION-FACTOR\nevents  2           1\norders  3           1\n"
    );
    let listed = admin_json(&broker, &["topics", "list"]);
    let orders_id = listed["topics"][1]["topic_id"].as_str().expect("id").to_string();
    assert_eq!(
        listed,
        json!({"topics": [
            {"name": "events", "topic_id": events_id, "partitions": 2, "replication_factor": 1, "internal": false},
            {"name": "orders", "topic_id": orders_id, "partitions": 3, "replication_factor": 1, "internal": false},
        ]})
    );

    let described = admin_json(&broker, &["topics", "describe", "orders"]);
    let topic = &described["topics"][0];
    assert_eq!(described["topics"].as_array().map(Vec::len), Some(1));
    assert_eq!(topic["name"], "orders");
    assert_eq!(topic["topic_id"], json!(orders_id));
    let partitions = topic["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 3);
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], json!(i), "{p}");
        assert_eq!(p["leader"], json!(1), "{p}");
        assert_eq!(p["replicas"], json!([1]), "{p}");
        assert_eq!(p["isr"], json!([1]), "{p}");
        assert!(p["leader_epoch"].as_i64().is_some_and(|e| e >= 0), "{p}");
    }
    let configs: BTreeMap<String, Value> = topic["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .map(|c| (c["name"].as_str().expect("name").to_string(), c.clone()))
        .collect();
    assert_eq!(
        configs["retention.ms"],
        json!({"name": "retention.ms", "value": "86400000", "source": "DYNAMIC_TOPIC_CONFIG", "read_only": false, "sensitive": false})
    );
    assert_eq!(configs["cleanup.policy"]["value"], "delete");
    assert_eq!(configs["cleanup.policy"]["source"], "DEFAULT_CONFIG");

    let text = admin_ok(&broker, &["topics", "describe", "orders"]);
    let epoch0 = partitions[0]["leader_epoch"].as_i64().expect("epoch");
    assert!(
        text.starts_with(&format!(
            "Topic: orders  TopicId: {orders_id}  PartitionCount: 3  ReplicationFactor: 1\n\
             PARTITION  LEADER  EPOCH  REPLICAS  ISR\n\
             0          1       {epoch0}      1         1\n"
        )),
        "{text}"
    );
    let retention_line = text
        .lines()
        .find(|l| l.starts_with("retention.ms "))
        .unwrap_or_else(|| panic!("no retention.ms line in {text}"));
    assert_eq!(
        retention_line.split_whitespace().collect::<Vec<_>>(),
        vec!["retention.ms", "86400000", "DYNAMIC_TOPIC_CONFIG", "false"]
    );

    let (_, err) = admin_fails(&broker, &["topics", "describe", "nope"]);
    assert!(
        err.starts_with("distlog admin: describe topic 'nope': UNKNOWN_TOPIC_OR_PARTITION"),
        "{err}"
    );

    assert_eq!(
        admin_ok(&broker, &["topics", "delete", "orders", "events"]),
        "TOPIC   RESULT\norders  deleted\nevents  deleted\n"
    );
    assert_eq!(admin_json(&broker, &["topics", "list"]), json!({"topics": []}));
    assert!(kafka::fetch_metadata(&broker.bootstrap(), None)
        .or_panic("metadata")
        .topics()
        .is_empty());

    let (out, err) = admin_fails(&broker, &["topics", "delete", "orders", "--json"]);
    let doc: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(doc["topics"][0]["topic"], "orders");
    assert_eq!(doc["topics"][0]["error"], "UNKNOWN_TOPIC_OR_PARTITION");
    assert!(err.contains("1 of 1 operations failed"), "{err}");
}

/// The cluster id as DescribeCluster answers it to a hand-built request.
fn cluster_id(broker: &DistlogProcess) -> String {
    let mut conn = raw::Conn::open(broker.kafka_addr(), "admin-cli-test").or_panic("connect");
    let answer: DescribeClusterResponse = conn
        .call(ApiKey::DescribeCluster, 0, &DescribeClusterRequest::default())
        .or_panic("DescribeCluster");
    answer.cluster_id.to_string()
}

#[test]
fn cluster_describe() {
    let broker = start_broker();
    let id = cluster_id(&broker);
    assert!(!id.is_empty());
    let port = broker.kafka_addr().port();
    assert_eq!(
        admin_json(&broker, &["cluster", "describe"]),
        json!({"cluster_id": id, "controller_id": 1,
            "brokers": [{"id": 1, "host": "127.0.0.1", "port": port, "rack": null}]})
    );
    assert_eq!(
        admin_ok(&broker, &["cluster", "describe"]),
        format!("Cluster ID: {id}\nController: 1\n\nID  HOST       PORT   RACK\n1   127.0.0.1  {port}  -\n")
    );
}

/// Consumes `n` records of `topic` as a member of `group` (subscribe), returning the member still
/// in the group and the offsets read, in order.
fn consume_in_group(broker: &DistlogProcess, group: &str, topic: &str, n: usize) -> (GroupMember, Vec<i64>) {
    let member = GroupMember::subscribe(
        &group_consumer_config(&broker.bootstrap(), group),
        "cli-member",
        &[topic],
    )
    .or_panic("subscribe");
    let mut offsets = Vec::new();
    let started = Instant::now();
    while offsets.len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {offsets:?} consumed within 60 s"
        );
        match member.consumer().poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => offsets.push(msg.offset()),
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    (member, offsets)
}

/// Commits `offset` for `topic`/0 through `member`.
fn commit(member: &GroupMember, topic: &str, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("offset");
    member.consumer().commit(&tpl, CommitMode::Sync).expect("commit");
}

fn committed(broker: &DistlogProcess, group: &str, topic: &str) -> Option<i64> {
    committed_for_group(&broker.bootstrap(), group, topic, &[0]).or_panic("committed")[&0]
}

#[test]
fn groups_list_describe_reset_delete() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "events", 1).or_panic("create topic");
    let records: Vec<kafka::TestRecord> = (0..10)
        .map(|i| kafka::TestRecord::value(format!("r{i}")))
        .collect();
    let before_produce = now_ms();
    kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "events",
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce");

    // An active member that read and committed everything.
    let (member, offsets) = consume_in_group(&broker, "g1", "events", 10);
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());
    commit(&member, "events", 10);

    let listed = admin_json(&broker, &["groups", "list"]);
    assert_eq!(
        listed,
        json!({"groups": [{"group": "g1", "state": "Stable", "protocol_type": "consumer", "coordinator": 1}]})
    );
    assert_eq!(
        admin_ok(&broker, &["groups", "list"]),
        "GROUP  STATE   PROTOCOL-TYPE  COORDINATOR\ng1     Stable  consumer       1\n"
    );
    let described = admin_json(&broker, &["groups", "describe", "g1"]);
    let g = &described["groups"][0];
    let member_id = g["members"][0]["member_id"]
        .as_str()
        .expect("member id")
        .to_string();
    assert!(!member_id.is_empty());
    assert_eq!(g["state"], "Stable");
    assert_eq!(g["protocol_type"], "consumer");
    assert_eq!(g["coordinator"], 1);
    assert_eq!(g["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(g["members"][0]["client_id"], "cli-member");
    assert_eq!(
        g["members"][0]["assignment"],
        json!([{"topic": "events", "partition": 0}])
    );
    assert_eq!(
        g["offsets"],
        json!([{"topic": "events", "partition": 0, "current_offset": 10, "log_end_offset": 10, "lag": 0, "member_id": member_id}])
    );

    // Kafka refuses to reset (and to delete) a group with active members.
    let (_, err) = admin_fails(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "g1",
            "--topic",
            "events",
            "--to-offset",
            "5",
        ],
    );
    assert!(
        err.starts_with(
            "distlog admin: Assignments can only be reset if the group 'g1' is inactive, but the current state is Stable"
        ),
        "{err}"
    );
    let (_, err) = admin_fails(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "g1",
            "--topic",
            "events",
            "--to-earliest",
            "--dry-run",
        ],
    );
    assert!(
        err.contains("is inactive, but the current state is Stable"),
        "{err}"
    );
    let (out, err) = admin_fails(&broker, &["groups", "delete", "g1"]);
    assert!(
        out.starts_with("GROUP  RESULT\ng1     NON_EMPTY_GROUP — stop the group's consumers first"),
        "{out}"
    );
    assert!(err.contains("1 of 1 operations failed"), "{err}");
    assert_eq!(committed(&broker, "g1", "events"), Some(10));

    member.close(CLOSE_DEADLINE).or_panic("close member");

    let text = admin_ok(&broker, &["groups", "describe", "g1"]);
    assert_eq!(
        text,
        "Group: g1  State: Empty  Protocol: -  Members: 0\n\
         Consumer group 'g1' has no active members.\n\
         GROUP  TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID\n\
         g1     events  0          10              10              0    -            -     -\n"
    );

    // --dry-run shows the plan and changes nothing.
    let plan = admin_json(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "g1",
            "--topic",
            "events",
            "--to-offset",
            "5",
            "--dry-run",
        ],
    );
    assert_eq!(
        plan,
        json!({"group": "g1", "dry_run": true,
            "partitions": [{"topic": "events", "partition": 0, "previous_offset": 10, "new_offset": 5}]})
    );
    assert_eq!(committed(&broker, "g1", "events"), Some(10));

    // The reset commits, and the group resumes there.
    assert_eq!(
        admin_ok(&broker, &["groups", "reset-offsets", "--group", "g1", "--topic", "events:0", "--to-offset", "5"]),
        "GROUP  TOPIC   PARTITION  PREVIOUS-OFFSET  NEW-OFFSET\ng1     events  0          10               5\n"
    );
    assert_eq!(committed(&broker, "g1", "events"), Some(5));
    let (member, offsets) = consume_in_group(&broker, "g1", "events", 5);
    assert_eq!(offsets, vec![5, 6, 7, 8, 9]);
    member.close(CLOSE_DEADLINE).or_panic("close member");

    // The other targets.
    let reset = |args: &[&str]| -> i64 {
        let mut all = vec!["groups", "reset-offsets", "--group", "g1", "--topic", "events"];
        all.extend_from_slice(args);
        let doc = admin_json(&broker, &all);
        assert_eq!(doc["dry_run"], json!(false), "{doc}");
        doc["partitions"][0]["new_offset"].as_i64().expect("new offset")
    };
    assert_eq!(reset(&["--to-earliest"]), 0);
    assert_eq!(committed(&broker, "g1", "events"), Some(0));
    assert_eq!(reset(&["--to-latest"]), 10);
    assert_eq!(committed(&broker, "g1", "events"), Some(10));
    assert_eq!(
        reset(&["--to-datetime", &(before_produce - 60_000).to_string()]),
        0
    );
    assert_eq!(reset(&["--to-datetime", "2999-01-01T00:00:00Z"]), 10);
    let out = admin(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "g1",
            "--topic",
            "events",
            "--to-offset",
            "50",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("New offset (50) is higher than latest offset. Value will be set to 10"),
        "{}",
        out.stderr
    );
    assert_eq!(committed(&broker, "g1", "events"), Some(10));
    let (_, err) = admin_fails(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "g1",
            "--topic",
            "events:7",
            "--to-latest",
        ],
    );
    assert!(
        err.contains("UNKNOWN_TOPIC_OR_PARTITION: the topic has 1 partitions"),
        "{err}"
    );

    // Delete, then the group is gone.
    assert_eq!(
        admin_ok(&broker, &["groups", "delete", "g1"]),
        "GROUP  RESULT\ng1     deleted\n"
    );
    assert_eq!(admin_json(&broker, &["groups", "list"]), json!({"groups": []}));
    let (_, err) = admin_fails(&broker, &["groups", "describe", "g1"]);
    assert!(
        err.starts_with("distlog admin: describe group 'g1': GROUP_ID_NOT_FOUND"),
        "{err}"
    );
}

#[test]
fn streams_locate_and_ledgers_describe() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    topic_with_records(&bootstrap, "located", 1, 3);

    let endpoint: Value = serde_json::from_str(
        &broker
            .http_get("/admin/locate?topic=located&partition=0&offset=1")
            .or_panic("locate")
            .body,
    )
    .expect("JSON");
    let located = admin_json(&broker, &["streams", "locate", "located", "0", "1"]);
    assert_eq!(located, endpoint);
    assert_eq!(located["offset"], 1);
    assert_eq!(
        admin_ok(&broker, &["streams", "locate", "located", "0", "1"]),
        format!(
            "topic located partition 0 offset 1 → DLSN (lssn {}, entry {}, slot {}) → txid {}\n",
            located["dlsn"]["lssn"], located["dlsn"]["entry_id"], located["dlsn"]["slot_id"], located["txid"]
        )
    );
    let (_, err) = admin_fails(&broker, &["streams", "locate", "located", "0", "99"]);
    assert!(
        err.contains("/admin/locate?topic=located&partition=0&offset=99 answered HTTP 404"),
        "{err}"
    );

    let topics: Value =
        serde_json::from_str(&broker.http_get("/admin/topics").or_panic("topics").body).expect("JSON");
    let segment = &topics["topics"][0]["partitions"][0]["segments"][0];
    let ledger = segment["ledger_id"].as_u64().expect("ledger id");
    let described = admin_json(&broker, &["ledgers", "describe", &ledger.to_string()]);
    assert_eq!(described["ledger_id"], json!(ledger));
    assert_eq!(
        described["segment"],
        json!({"topic": "located", "partition": 0, "lssn": segment["lssn"], "ensemble": [1]})
    );
    assert_eq!(described["bookies"][0]["bookie"], 1);
    assert_eq!(described["bookies"][0]["exists"], true);
    let text = admin_ok(&broker, &["ledgers", "describe", &ledger.to_string()]);
    assert!(
        text.starts_with(&format!(
            "Ledger {ledger}: topic located partition 0 segment lssn {} ensemble [1]\n\n\
             BOOKIE  REACHABLE  EXISTS  ENTRIES",
            segment["lssn"]
        )),
        "{text}"
    );
    assert!(
        text.lines()
            .nth(3)
            .is_some_and(|l| l.starts_with("1       true       true")),
        "{text}"
    );
}

#[test]
fn errors_say_what_to_do_next() {
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr");
    drop(free);
    let mut cmd = Command::new(locate_binary().or_panic("binary"));
    cmd.args(["admin", "--bootstrap", &addr.to_string(), "topics", "list"]);
    let out = run_with_deadline(cmd, None, CLI_DEADLINE).or_panic("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        out.stderr,
        format!("distlog admin: cannot reach {addr}: connection refused — is a broker running there? (--bootstrap)\n")
    );
    let mut cmd = Command::new(locate_binary().or_panic("binary"));
    cmd.args(["admin", "--http", &addr.to_string(), "ledgers", "describe", "1"]);
    let out = run_with_deadline(cmd, None, CLI_DEADLINE).or_panic("run");
    assert_eq!(
        out.stderr,
        format!(
            "distlog admin: cannot reach {addr}: connection refused — is a broker running there? (--http)\n"
        )
    );
    let mut cmd = Command::new(locate_binary().or_panic("binary"));
    cmd.args(["admin", "--bootstrap", "nohost", "topics", "list"]);
    let out = run_with_deadline(cmd, None, CLI_DEADLINE).or_panic("run");
    assert_eq!(
        out.stderr,
        "distlog admin: invalid --bootstrap: 'nohost' is not HOST:PORT (e.g. 127.0.0.1:9092)\n"
    );
}

#[test]
fn topics_add_partitions() {
    let broker = start_broker();
    admin_ok(&broker, &["topics", "create", "grow", "--partitions", "2"]);
    assert_eq!(
        admin_ok(&broker, &["topics", "add-partitions", "grow", "--total", "4"]),
        "Topic grow now has 4 partitions.\n"
    );
    let described = admin_json(&broker, &["topics", "describe", "grow"]);
    assert_eq!(
        described["topics"][0]["partitions"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(
        kafka::fetch_metadata(&broker.bootstrap(), Some("grow"))
            .or_panic("metadata")
            .topics()[0]
            .partitions()
            .len(),
        4
    );
    assert_eq!(
        admin_json(
            &broker,
            &[
                "topics",
                "add-partitions",
                "grow",
                "--total",
                "6",
                "--validate-only"
            ]
        ),
        json!({"topic": "grow", "partitions": 6, "validate_only": true})
    );
    assert_eq!(
        admin_json(&broker, &["topics", "list"])["topics"][0]["partitions"],
        4
    );
    let (_, err) = admin_fails(&broker, &["topics", "add-partitions", "grow", "--total", "3"]);
    assert!(
        err.starts_with("distlog admin: add partitions to topic 'grow': INVALID_PARTITIONS"),
        "{err}"
    );
}

#[test]
fn topics_alter_config() {
    let broker = start_broker();
    admin_ok(&broker, &["topics", "create", "tuned", "--partitions", "1"]);
    let config = |name: &str| -> Value {
        let doc = admin_json(&broker, &["topics", "describe", "tuned"]);
        doc["topics"][0]["configs"]
            .as_array()
            .expect("configs")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {doc}"))
    };
    assert_eq!(
        admin_ok(
            &broker,
            &["topics", "alter-config", "tuned", "--set", "retention.ms=1000"]
        ),
        "Altered the configs of topic tuned:\n  set retention.ms=1000\n"
    );
    assert_eq!(config("retention.ms")["value"], "1000");
    assert_eq!(config("retention.ms")["source"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(
        admin_json(
            &broker,
            &["topics", "alter-config", "tuned", "--delete", "retention.ms"]
        ),
        json!({"topic": "tuned", "set": {}, "deleted": ["retention.ms"], "validate_only": false})
    );
    assert_ne!(config("retention.ms")["source"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(config("retention.ms")["value"], "604800000");
    let (_, err) = admin_fails(
        &broker,
        &["topics", "alter-config", "tuned", "--set", "no.such.key=1"],
    );
    assert!(
        err.starts_with("distlog admin: alter the configs of topic 'tuned': INVALID_CONFIG"),
        "{err}"
    );
}

#[test]
fn records_delete() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    topic_with_records(&bootstrap, "trimmed", 1, 10);
    assert_eq!(
        admin_ok(
            &broker,
            &[
                "records",
                "delete",
                "--topic",
                "trimmed",
                "--partition",
                "0",
                "--before-offset",
                "4"
            ]
        ),
        "TOPIC    PARTITION  LOW-WATERMARK  ERROR\ntrimmed  0          4              -\n"
    );
    assert_eq!(
        kafka::watermarks(&bootstrap, "trimmed", 0).or_panic("watermarks"),
        (4, 10)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("offsets.json");
    std::fs::write(
        &file,
        r#"{"partitions":[{"topic":"trimmed","partition":0,"offset":6}],"version":1}"#,
    )
    .expect("write");
    assert_eq!(
        admin_json(
            &broker,
            &[
                "records",
                "delete",
                "--offset-json-file",
                file.to_str().expect("utf-8")
            ]
        ),
        json!({"partitions": [{"topic": "trimmed", "partition": 0, "low_watermark": 6, "error": null}]})
    );
    assert_eq!(
        kafka::watermarks(&bootstrap, "trimmed", 0).or_panic("watermarks"),
        (6, 10)
    );

    let (out, _) = admin_fails(
        &broker,
        &[
            "records",
            "delete",
            "--topic",
            "trimmed",
            "--partition",
            "0",
            "--before-offset",
            "50",
            "--json",
        ],
    );
    let doc: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(doc["partitions"][0]["error"], "OFFSET_OUT_OF_RANGE");
}

#[test]
fn log_dirs_describe() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "sized", 2).or_panic("create topic");
    let records: Vec<kafka::TestRecord> = (0..10)
        .map(|i| kafka::TestRecord::value(vec![b'x'; 100 + i]))
        .collect();
    kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "sized",
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce");
    let doc = admin_json(&broker, &["log-dirs", "describe", "--topic", "sized"]);
    let brokers = doc["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1);
    assert_eq!(brokers[0]["broker"], 1);
    let dir = &brokers[0]["log_dirs"][0];
    assert_eq!(dir["error"], Value::Null);
    assert!(dir["total_bytes"].as_i64().is_some_and(|b| b > 0), "{dir}");
    assert!(dir["usable_bytes"].as_i64().is_some_and(|b| b > 0), "{dir}");
    // Partition 0 holds the ten records (over 1,000 payload bytes); partition 1, empty, is either
    // not listed (no segment stored yet) or listed with no bytes.
    let parts = dir["partitions"].as_array().expect("partitions");
    assert_eq!(
        (&parts[0]["topic"], &parts[0]["partition"]),
        (&json!("sized"), &json!(0)),
        "{dir}"
    );
    assert!(parts[0]["size_bytes"].as_i64().is_some_and(|s| s > 1000), "{dir}");
    assert_eq!(parts[0]["offset_lag"], 0, "{dir}");
    assert_eq!(parts[0]["is_future"], false, "{dir}");
    assert!(parts.len() <= 2, "{dir}");
    if let Some(p1) = parts.get(1) {
        assert_eq!(
            (&p1["partition"], &p1["size_bytes"]),
            (&json!(1), &json!(0)),
            "{dir}"
        );
    }
    let text = admin_ok(&broker, &["log-dirs", "describe"]);
    assert!(text.starts_with("BROKER  LOG-DIR"), "{text}");
    assert!(
        text.lines().any(|l| l.split_whitespace().nth(2) == Some("sized")),
        "{text}"
    );
}
