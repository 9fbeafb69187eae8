//! Tests of configuration resolution: flags, environment, TOML file,
//! and the checks on roles and addresses.

use super::*;
use clap::Parser;

/// Serialises tests that read or write `DISTLOG_*` variables.
static ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn parse(argv: &[&str]) -> ServerArgs {
    let mut full = vec!["distlog", "server"];
    full.extend_from_slice(argv);
    match Cli::try_parse_from(full).expect("valid command line").command {
        CliCommand::Server(a) => a,
        CliCommand::Version | CliCommand::Admin(_) => panic!("expected server"),
    }
}

#[test]
fn defaults_without_flags() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let c = BrokerConfig::resolve(None, &parse(&[])).expect("resolves");
    assert_eq!(c, BrokerConfig::default());
    assert_eq!(c.kafka_listen, "127.0.0.1:9092");
    assert_eq!(
        (c.advertised_kafka_host.as_str(), c.advertised_kafka_port),
        ("127.0.0.1", 9092)
    );
    assert_eq!(c.max_request_bytes, 104_857_600);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.data_dir, PathBuf::from("./distlog-data"));
}

#[test]
fn all_flags_parse() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let a = parse(&[
        "--node-id",
        "7",
        "--data-dir",
        "/tmp/x",
        "--kafka-listen",
        "127.0.0.1:19092",
        "--advertised-kafka",
        "kafka.example:29092",
        "--http-listen",
        "127.0.0.1:19644",
        "--raft-listen",
        "127.0.0.1:19093",
        "--auto-create-topics",
        "false",
        "--num-partitions",
        "3",
        "--segment-bytes",
        "1000",
        "--segment-ms",
        "2000",
        "--log-format",
        "json",
    ]);
    let c = BrokerConfig::resolve(None, &a).expect("resolves");
    assert_eq!(c.node_id, NodeId::new(7));
    assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(c.kafka_listen, "127.0.0.1:19092");
    assert_eq!(c.advertised_kafka_host, "kafka.example");
    assert_eq!(c.advertised_kafka_port, 29092);
    assert_eq!(c.http_listen, "127.0.0.1:19644");
    assert_eq!(c.raft_listen, "127.0.0.1:19093");
    assert!(!c.auto_create_topics);
    assert_eq!(c.num_partitions, 3);
    assert_eq!(c.segment_bytes, 1000);
    assert_eq!(c.segment_ms, 2000);
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn precedence_defaults_file_env_flags() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let file = FileConfig::parse(
        "node_id = 2\nnum_partitions = 4\nsegment_ms = 11\nkafka_listen = \"127.0.0.1:1111\"\n",
        Path::new("test.toml"),
    )
    .expect("valid toml");
    // SAFETY of the test: env access is serialised by ENV_LOCK.
    std::env::set_var("DISTLOG_NUM_PARTITIONS", "5");
    std::env::set_var("DISTLOG_SEGMENT_MS", "12");
    let args = parse(&["--segment-ms", "13"]);
    std::env::remove_var("DISTLOG_NUM_PARTITIONS");
    std::env::remove_var("DISTLOG_SEGMENT_MS");
    let c = BrokerConfig::resolve(Some(file), &args).expect("resolves");
    assert_eq!(c.node_id, NodeId::new(2), "file beats default");
    assert_eq!(c.num_partitions, 5, "env beats file");
    assert_eq!(c.segment_ms, 13, "flag beats env and file");
    assert_eq!(c.segment_bytes, 134_217_728, "default when nothing set");
    assert_eq!(
        c.advertised_kafka_port, 1111,
        "advertised follows the listen address"
    );
}

#[test]
fn unknown_file_key_and_bad_address_are_errors() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    assert!(FileConfig::parse("nodeid = 1", Path::new("t.toml")).is_err());
    let a = parse(&["--kafka-listen", "nonsense"]);
    let err = BrokerConfig::resolve(None, &a).expect_err("bad address");
    assert!(err.to_string().contains("--kafka-listen"), "{err}");
    let a = parse(&["--num-partitions", "0"]);
    assert!(BrokerConfig::resolve(None, &a).is_err());
}

#[test]
fn node_id_must_fit_a_kafka_broker_id() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let top = i32::MAX.to_string();
    let c = BrokerConfig::resolve(None, &parse(&["--node-id", &top])).expect("int32 max is a broker id");
    assert_eq!(i32::try_from(c.node_id), Ok(i32::MAX));
    let err = BrokerConfig::resolve(None, &parse(&["--node-id", "2147483648"])).expect_err("beyond int32");
    assert!(err.to_string().contains("--node-id 2147483648"), "{err}");
}

#[test]
fn wildcard_listen_advertises_loopback() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let c = BrokerConfig::resolve(None, &parse(&["--kafka-listen", "0.0.0.0:9999"])).expect("ok");
    assert_eq!(
        (c.advertised_kafka_host.as_str(), c.advertised_kafka_port),
        ("127.0.0.1", 9999)
    );
}

#[test]
fn named_listeners_replace_the_single_kafka_listener() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    std::env::set_var(
        "DISTLOG_ADVERTISED_LISTENERS",
        "INTERNAL://node1:9092,EXTERNAL://localhost:19092",
    );
    let args = parse(&["--listeners", "INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:19092"]);
    std::env::remove_var("DISTLOG_ADVERTISED_LISTENERS");
    let c = BrokerConfig::resolve(None, &args).expect("resolves");
    let urls: Vec<String> = c.listeners.iter().map(KafkaListener::advertised_url).collect();
    assert_eq!(urls, ["INTERNAL://node1:9092", "EXTERNAL://localhost:19092"]);
    assert_eq!(
        c.kafka_listen, "0.0.0.0:9092",
        "the first listener is the primary one"
    );
    assert_eq!(
        (c.advertised_kafka_host.as_str(), c.advertised_kafka_port),
        ("node1", 9092)
    );
    let single = BrokerConfig::resolve(None, &parse(&["--advertised-kafka", "h:1"])).expect("ok");
    assert_eq!(single.listeners.len(), 1);
    assert_eq!(single.listeners[0].advertised_url(), "PLAINTEXT://h:1");
    for bad in [
        &["--listeners", "A://127.0.0.1:1", "--kafka-listen", "127.0.0.1:2"][..],
        &["--listeners", "A://127.0.0.1:1", "--advertised-kafka", "h:2"],
        &["--advertised-listeners", "A://h:1"],
    ] {
        let err = BrokerConfig::resolve(None, &parse(bad)).expect_err("conflicting flags");
        assert!(err.to_string().contains("listeners"), "{err}");
    }
}

#[test]
fn advertised_raft_and_bookie_addresses_default_to_the_bound_ones() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let c = BrokerConfig::resolve(None, &parse(&[])).expect("ok");
    assert_eq!((c.advertised_raft, c.advertised_bookie), (None, None));
    let a = parse(&[
        "--advertised-raft",
        "node4:9093",
        "--advertised-bookie",
        "node4:3181",
    ]);
    let c = BrokerConfig::resolve(None, &a).expect("ok");
    assert_eq!(c.advertised_raft.as_deref(), Some("node4:9093"));
    assert_eq!(c.advertised_bookie.as_deref(), Some("node4:3181"));
    let err = BrokerConfig::resolve(None, &parse(&["--advertised-raft", "node4"])).expect_err("no port");
    assert!(err.to_string().contains("--advertised-raft"), "{err}");
}

#[test]
fn version_subcommand_parses() {
    let cli = Cli::try_parse_from(["distlog", "version"]).expect("parses");
    assert!(matches!(cli.command, CliCommand::Version));
}

const VOTERS: &str = "1=127.0.0.1:19093,2=127.0.0.2:19093,3=127.0.0.3:19093";

#[test]
fn broker_only_roles_parse_without_a_bookie() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let a = parse(&["--node-id", "4", "--roles", "broker", "--meta-voters", VOTERS]);
    let c = BrokerConfig::resolve(None, &a).expect("a broker without a bookie is valid");
    assert_eq!(
        (c.roles.meta, c.roles.bookie, c.roles.broker),
        (false, false, true)
    );
    assert_eq!(c.roles.to_string(), "broker");
    assert!(c.is_cluster());
    assert_eq!(c.bookie_listen, None);
    assert_eq!(c.default_replication, Replication::CLUSTER);

    // The same from the environment, joining through seeds.
    std::env::set_var("DISTLOG_ROLES", "broker");
    std::env::set_var("DISTLOG_META_SEEDS", "127.0.0.1:19093");
    let a = parse(&["--node-id", "5"]);
    std::env::remove_var("DISTLOG_ROLES");
    std::env::remove_var("DISTLOG_META_SEEDS");
    let c = BrokerConfig::resolve(None, &a).expect("broker-only from env");
    assert_eq!(
        (c.roles.meta, c.roles.bookie, c.roles.broker),
        (false, false, true)
    );

    // And from a TOML file.
    let file = FileConfig::parse(
        &format!("node_id = 6\nroles = \"broker\"\nmeta_voters = \"{VOTERS}\"\n"),
        Path::new("broker.toml"),
    )
    .expect("valid toml");
    let c = BrokerConfig::resolve(Some(file), &parse(&[])).expect("broker-only from file");
    assert!(c.roles.broker && !c.roles.bookie && !c.roles.meta);
}

#[test]
fn storage_only_roles_still_need_a_bookie_address() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let a = parse(&[
        "--roles",
        "meta,bookie",
        "--meta-voters",
        VOTERS,
        "--bookie-listen",
        "127.0.0.1:19094",
    ]);
    let c = BrokerConfig::resolve(None, &a).expect("storage node");
    assert!(c.roles.meta && c.roles.bookie && !c.roles.broker);
    let a = parse(&["--roles", "meta,bookie", "--meta-voters", VOTERS]);
    let err = BrokerConfig::resolve(None, &a).expect_err("bookie without an address");
    assert!(err.to_string().contains("--bookie-listen"), "{err}");
}

#[test]
fn a_bookie_address_without_the_bookie_role_is_refused() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let a = parse(&[
        "--node-id",
        "4",
        "--roles",
        "broker",
        "--meta-voters",
        VOTERS,
        "--bookie-listen",
        "127.0.0.4:19094",
    ]);
    let err = BrokerConfig::resolve(None, &a).expect_err("bookie address without a bookie");
    let msg = err.to_string();
    assert!(
        msg.contains("--bookie-listen") && msg.contains("add bookie to --roles"),
        "{msg}"
    );
    let a = parse(&[
        "--node-id",
        "4",
        "--roles",
        "broker",
        "--meta-voters",
        VOTERS,
        "--advertised-bookie",
        "node4:19094",
    ]);
    let err = BrokerConfig::resolve(None, &a).expect_err("advertised bookie without a bookie");
    assert!(err.to_string().contains("--advertised-bookie"), "{err}");
}

#[test]
fn roles_other_than_all_need_a_cluster() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let err = BrokerConfig::resolve(None, &parse(&["--roles", "broker"])).expect_err("single node");
    assert!(err.to_string().contains("--meta-voters"), "{err}");
    let err = BrokerConfig::resolve(
        None,
        &parse(&[
            "--node-id",
            "4",
            "--roles",
            "broker,meta",
            "--meta-voters",
            VOTERS,
        ]),
    )
    .expect_err("meta role but not a voter");
    assert!(err.to_string().contains("not in --meta-voters"), "{err}");
}

#[test]
fn retention_flags_take_kafkas_defaults_and_minus_one() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let c = BrokerConfig::resolve(None, &parse(&[])).expect("resolves");
    assert_eq!(
        (
            c.log_retention_ms,
            c.log_retention_bytes,
            c.log_retention_check_interval_ms
        ),
        (604_800_000, -1, 300_000)
    );
    let a = parse(&[
        "--log-retention-ms",
        "-1",
        "--log-retention-bytes",
        "1000",
        "--log-retention-check-interval-ms",
        "1000",
    ]);
    let c = BrokerConfig::resolve(None, &a).expect("resolves");
    assert_eq!(
        (
            c.log_retention_ms,
            c.log_retention_bytes,
            c.log_retention_check_interval_ms
        ),
        (-1, 1000, 1000)
    );
    for bad in [
        &["--log-retention-ms", "-2"][..],
        &["--log-retention-bytes", "-5"][..],
        &["--log-retention-check-interval-ms", "0"][..],
    ] {
        assert!(BrokerConfig::resolve(None, &parse(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn transaction_flags_take_kafkas_defaults_file_env_and_flags() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let c = BrokerConfig::resolve(None, &parse(&[])).expect("resolves");
    assert_eq!(
        (
            c.transaction_max_timeout_ms,
            c.transaction_abort_timed_out_transaction_cleanup_interval_ms
        ),
        (900_000, 10_000)
    );
    let file = FileConfig::parse(
        "transaction_max_timeout_ms = 1000\ntransaction_abort_timed_out_transaction_cleanup_interval_ms = 7\n",
        Path::new("test.toml"),
    )
    .expect("valid toml");
    std::env::set_var("DISTLOG_TRANSACTION_MAX_TIMEOUT_MS", "2000");
    let args = parse(&[
        "--transaction-abort-timed-out-transaction-cleanup-interval-ms",
        "500",
    ]);
    std::env::remove_var("DISTLOG_TRANSACTION_MAX_TIMEOUT_MS");
    let c = BrokerConfig::resolve(Some(file), &args).expect("resolves");
    assert_eq!(c.transaction_max_timeout_ms, 2000, "env beats file");
    assert_eq!(
        c.transaction_abort_timed_out_transaction_cleanup_interval_ms, 500,
        "flag beats file"
    );
    for bad in [
        &["--transaction-max-timeout-ms", "0"][..],
        &["--transaction-max-timeout-ms", "2147483648"][..],
        &[
            "--transaction-abort-timed-out-transaction-cleanup-interval-ms",
            "0",
        ][..],
    ] {
        assert!(BrokerConfig::resolve(None, &parse(bad)).is_err(), "{bad:?}");
    }
}
