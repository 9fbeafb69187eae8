//! Tests of the topic config table: validation, effective configs and the
//! typed stream settings.

use super::*;

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn none() -> DynamicDefaults {
    DynamicDefaults::default()
}

#[test]
fn known_configs_validate() {
    assert_eq!(validate_topic_configs(&map(&[]), Replication::SINGLE), Ok(()));
    let ok = map(&[
        ("segment.bytes", "1048576"),
        ("segment.ms", "60000"),
        ("retention.ms", "-1"),
        ("retention.bytes", "1000"),
        ("cleanup.policy", "delete"),
        ("max.message.bytes", "2000000"),
        ("message.timestamp.type", "CreateTime"),
        ("compression.type", "producer"),
        ("distlog.ensemble.size", "3"),
        ("distlog.write.quorum", "3"),
        ("distlog.ack.quorum", "2"),
    ]);
    assert_eq!(validate_topic_configs(&ok, Replication::SINGLE), Ok(()));
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    for (k, v, needle) in [
        ("no.such.config", "1", "unknown"),
        ("segment.bytes", "abc", "not an integer"),
        ("segment.bytes", "1", "outside"),
        ("cleanup.policy", "compact", "not supported"),
        ("retention.ms", "-2", "outside"),
        ("distlog.ack.quorum", "2", "got ensemble 1, write 1, ack 2"),
        ("distlog.write.quorum", "2", "got ensemble 1, write 2, ack 1"),
        ("distlog.ack.quorum", "0", "outside [1, 16]"),
        ("distlog.ensemble.size", "17", "outside [1, 16]"),
    ] {
        let err = validate_topic_configs(&map(&[(k, v)]), Replication::SINGLE).expect_err(k);
        assert!(err.contains(needle), "{k}={v}: {err}");
    }
}

#[test]
fn quorum_sizes_need_ensemble_at_least_write_at_least_ack() {
    let q = |e: &str, w: &str, a: &str| {
        validate_topic_configs(
            &map(&[
                ("distlog.ensemble.size", e),
                ("distlog.write.quorum", w),
                ("distlog.ack.quorum", a),
            ]),
            Replication::CLUSTER,
        )
    };
    // Striped (E > Qw) and unstriped shapes are valid.
    for (e, w, a) in [
        ("3", "2", "2"),
        ("5", "3", "2"),
        ("4", "2", "1"),
        ("3", "3", "2"),
        ("1", "1", "1"),
    ] {
        assert_eq!(q(e, w, a), Ok(()), "{e}/{w}/{a}");
    }
    for (e, w, a) in [("2", "3", "2"), ("3", "2", "3"), ("3", "4", "4"), ("2", "2", "3")] {
        let err = q(e, w, a).expect_err("invalid shape");
        assert_eq!(
            err,
            format!(
                "quorum sizes must satisfy distlog.ensemble.size >= distlog.write.quorum >= \
                 distlog.ack.quorum >= 1, got ensemble {e}, write {w}, ack {a}"
            )
        );
    }
    // Unset quorums take the node default (3/3/2): write 3 > ensemble 2.
    let err = validate_topic_configs(&map(&[("distlog.ensemble.size", "2")]), Replication::CLUSTER)
        .expect_err("default write quorum exceeds the ensemble");
    assert!(err.contains("got ensemble 2, write 3, ack 2"), "{err}");
}

#[test]
fn effective_configs_mix_overrides_and_defaults() {
    let cfg = BrokerConfig::default();
    let eff = effective_topic_configs(&cfg, &none(), &map(&[("segment.ms", "5")]));
    let get = |n: &str| eff.iter().find(|e| e.name == n).cloned().expect("present");
    let seg_ms = get("segment.ms");
    assert_eq!(
        (seg_ms.value.as_str(), seg_ms.source),
        ("5", config_source::DYNAMIC_TOPIC_CONFIG)
    );
    assert!(!seg_ms.is_default());
    let seg_b = get("segment.bytes");
    assert_eq!(seg_b.value, "134217728");
    assert!(seg_b.is_default());
    assert_eq!(get("max.message.bytes").value, "1048588");
    assert_eq!(eff.len(), TOPIC_CONFIGS.len());
}

#[test]
fn stream_config_prefers_overrides() {
    let cfg = BrokerConfig::default();
    let sc = stream_config(&cfg, &none(), &map(&[("segment.bytes", "4096")]));
    assert_eq!(sc.max_segment_bytes, 4096);
    assert_eq!(sc.segment_rolling_interval, Duration::from_millis(cfg.segment_ms));
}

#[test]
fn the_table_is_sorted_and_every_default_is_valid() {
    let mut names: Vec<&str> = TOPIC_CONFIGS.iter().map(|k| k.name).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "each name once");
    let listed: Vec<&str> = effective_topic_configs(&BrokerConfig::default(), &none(), &map(&[]))
        .iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, names, "listed sorted by name");
    let cluster = BrokerConfig {
        default_replication: Replication::CLUSTER,
        ..BrokerConfig::default()
    };
    for cfg in [BrokerConfig::default(), cluster] {
        for k in TOPIC_CONFIGS {
            let v = k.default_value(&cfg);
            assert_eq!(k.validate(&v), Ok(()), "default of {}", k.name);
            assert!(!k.doc.is_empty(), "{} is documented", k.name);
        }
        assert_eq!(validate_topic_configs(&map(&[]), cfg.default_replication), Ok(()));
    }
}

#[test]
fn stream_config_is_in_distributedlog_terms() {
    let cfg = BrokerConfig {
        default_replication: Replication::CLUSTER,
        ..BrokerConfig::default()
    };
    let d = stream_config(&cfg, &none(), &map(&[]));
    assert_eq!(d.max_segment_bytes, cfg.segment_bytes);
    assert_eq!(d.segment_rolling_interval, Duration::from_millis(cfg.segment_ms));
    assert_eq!((d.ensemble_size, d.write_quorum, d.ack_quorum), (3, 3, 2));
    assert_eq!(d.retention.period, Some(Duration::from_millis(604_800_000)));
    assert_eq!(d.retention.max_bytes, None, "retention.bytes -1 is unlimited");
    assert_eq!(d.max_entry_bytes, StreamConfig::default().max_entry_bytes);

    let o = stream_config(
        &cfg,
        &none(),
        &map(&[
            ("segment.bytes", "4096"),
            ("segment.ms", "60000"),
            ("distlog.ensemble.size", "5"),
            ("distlog.write.quorum", "3"),
            ("distlog.ack.quorum", "2"),
            ("retention.ms", "-1"),
            ("retention.bytes", "1000000"),
        ]),
    );
    assert_eq!(o.max_segment_bytes, 4096);
    assert_eq!(o.segment_rolling_interval, Duration::from_secs(60));
    assert_eq!((o.ensemble_size, o.write_quorum, o.ack_quorum), (5, 3, 2));
    assert_eq!(o.retention.period, None, "retention.ms -1 is unlimited");
    assert_eq!(o.retention.max_bytes, Some(1_000_000));

    // An invalid stored value (never accepted by validation) falls back
    // to the default rather than reaching storage.
    let bad = stream_config(
        &cfg,
        &none(),
        &map(&[("segment.bytes", "1"), ("distlog.ensemble.size", "x")]),
    );
    assert_eq!(bad.max_segment_bytes, cfg.segment_bytes);
    assert_eq!(bad.ensemble_size, 3);
}

#[test]
fn dynamic_broker_defaults_apply_to_topics_that_set_none() {
    let cfg = BrokerConfig::default();
    let dynamic = DynamicDefaults {
        broker: map(&[("log.segment.bytes", "8192")]),
        cluster: map(&[
            ("log.segment.bytes", "4096"),
            ("log.roll.ms", "60000"),
            ("message.max.bytes", "5000"),
            // Invalid stored values are never used.
            ("log.retention.ms", "-7"),
        ]),
    };
    let sc = stream_config(&cfg, &dynamic, &map(&[]));
    assert_eq!(sc.max_segment_bytes, 8192, "this broker's value wins");
    assert_eq!(sc.segment_rolling_interval, Duration::from_secs(60));
    assert_eq!(sc.retention.period, Some(Duration::from_millis(604_800_000)));
    // A topic override wins over both.
    let sc = stream_config(&cfg, &dynamic, &map(&[("segment.bytes", "100")]));
    assert_eq!(sc.max_segment_bytes, 100);
    assert_eq!(max_message_bytes(&cfg, &dynamic, &map(&[])), 5000);
    assert_eq!(
        max_message_bytes(&cfg, &dynamic, &map(&[("max.message.bytes", "7")])),
        7
    );
    assert_eq!(max_message_bytes(&cfg, &none(), &map(&[])), cfg.message_max_bytes);

    let eff = effective_topic_configs(&cfg, &dynamic, &map(&[]));
    let get = |n: &str| eff.iter().find(|e| e.name == n).cloned().expect("present");
    let seg = get("segment.bytes");
    assert_eq!(
        (seg.value.as_str(), seg.source),
        ("8192", config_source::DYNAMIC_BROKER_CONFIG)
    );
    let layers: Vec<(&str, &str, i8)> = seg
        .synonyms
        .iter()
        .map(|s| (s.name, s.value.as_str(), s.source))
        .collect();
    assert_eq!(
        layers,
        vec![
            ("log.segment.bytes", "8192", config_source::DYNAMIC_BROKER_CONFIG),
            (
                "log.segment.bytes",
                "4096",
                config_source::DYNAMIC_DEFAULT_BROKER_CONFIG
            ),
            (
                "log.segment.bytes",
                "134217728",
                config_source::STATIC_BROKER_CONFIG
            ),
        ]
    );
    let roll = get("segment.ms");
    assert_eq!(
        (roll.value.as_str(), roll.source),
        ("60000", config_source::DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    assert_eq!(get("retention.ms").source, config_source::STATIC_BROKER_CONFIG);
}

#[test]
fn kafka_configs_are_known_with_honest_validators() {
    // Kafka 4.x topic configs (TopicConfig / LogConfig) beyond the ones
    // distlog implements; message.timestamp.{before,after}.max.ms aside.
    for name in [
        "cleanup.policy",
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.type",
        "compression.zstd.level",
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "follower.replication.throttled.replicas",
        "index.interval.bytes",
        "leader.replication.throttled.replicas",
        "local.retention.bytes",
        "local.retention.ms",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "message.downconversion.enable",
        "message.timestamp.type",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "preallocate",
        "remote.log.copy.disable",
        "remote.log.delete.on.disable",
        "remote.storage.enable",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.index.bytes",
        "segment.jitter.ms",
        "segment.ms",
        "unclean.leader.election.enable",
    ] {
        assert!(key(name).is_some(), "{name} is known");
    }
    // Values that cannot change distlog's behaviour are accepted
    // (librdkafka's admin test creates a topic with delete.retention.ms=900).
    let ok = map(&[
        ("delete.retention.ms", "900"),
        ("file.delete.delay.ms", "0"),
        ("flush.messages", "1"),
        ("flush.ms", "1000"),
        ("index.interval.bytes", "100"),
        ("segment.index.bytes", "4096"),
        ("min.cleanable.dirty.ratio", "0.1"),
        ("min.compaction.lag.ms", "5"),
        ("max.compaction.lag.ms", "5"),
        ("local.retention.ms", "-2"),
        ("local.retention.bytes", "100"),
        ("message.downconversion.enable", "FALSE"),
        ("remote.log.copy.disable", "true"),
        ("remote.log.delete.on.disable", "true"),
        ("follower.replication.throttled.replicas", "0:1,1:2"),
        ("leader.replication.throttled.replicas", "*"),
        ("preallocate", "False"),
        ("remote.storage.enable", "false"),
        ("unclean.leader.election.enable", "false"),
        ("segment.jitter.ms", "0"),
        ("compression.gzip.level", "-1"),
        ("compression.lz4.level", "9"),
        ("compression.zstd.level", "3"),
    ]);
    assert_eq!(validate_topic_configs(&ok, Replication::SINGLE), Ok(()));
    // Values distlog cannot honour are refused, saying why.
    for (k, v, needle) in [
        (
            "remote.storage.enable",
            "true",
            "'true' is not supported, only 'false' is: distlog has no tiered storage",
        ),
        ("preallocate", "true", "only 'false' is"),
        (
            "unclean.leader.election.enable",
            "true",
            "never loses acknowledged records",
        ),
        ("segment.jitter.ms", "100", "segments roll exactly at segment.ms"),
        ("compression.gzip.level", "5", "default level only"),
        ("compression.zstd.level", "99", "outside [-131072, 22]"),
        ("compression.gzip.level", "0", "is outside [1, 9] and is not -1"),
        ("delete.retention.ms", "-1", "outside [0, "),
        ("min.cleanable.dirty.ratio", "1.5", "outside [0, 1]"),
        ("min.cleanable.dirty.ratio", "x", "not a number"),
        ("preallocate", "yes", "not a boolean"),
        (
            "leader.replication.throttled.replicas",
            "0-1",
            "must be the literal '*'",
        ),
        ("flush.messages", "0", "outside [1, "),
    ] {
        let err = validate_topic_configs(&map(&[(k, v)]), Replication::SINGLE).expect_err(k);
        assert!(err.contains(needle), "{k}={v}: {err}");
        assert!(err.contains(k), "{k}={v}: the message names the config: {err}");
    }
    // Lists and their default.
    assert!(key("follower.replication.throttled.replicas").is_some_and(TopicConfigKey::is_list));
    assert!(!key("retention.ms").is_some_and(TopicConfigKey::is_list));
}

#[test]
fn retention_defaults_come_from_the_node_flags() {
    let cfg = BrokerConfig {
        log_retention_ms: 1000,
        log_retention_bytes: 5000,
        ..BrokerConfig::default()
    };
    let sc = stream_config(&cfg, &none(), &map(&[]));
    assert_eq!(sc.retention.period, Some(Duration::from_secs(1)));
    assert_eq!(sc.retention.max_bytes, Some(5000));
    let eff = effective_topic_configs(&cfg, &none(), &map(&[]));
    let ret = eff.iter().find(|e| e.name == "retention.ms").expect("present");
    assert_eq!(
        ret.synonyms,
        vec![ConfigSynonym {
            name: "log.retention.ms",
            value: "1000".into(),
            source: config_source::STATIC_BROKER_CONFIG,
        }]
    );
}

#[test]
fn synonyms_name_the_override_then_the_default() {
    let cfg = BrokerConfig::default();
    let eff = effective_topic_configs(&cfg, &none(), &map(&[("segment.ms", "5")]));
    let get = |n: &str| eff.iter().find(|e| e.name == n).cloned().expect("present");
    let seg_ms = get("segment.ms");
    assert_eq!(
        seg_ms.synonyms,
        vec![
            ConfigSynonym {
                name: "segment.ms",
                value: "5".into(),
                source: config_source::DYNAMIC_TOPIC_CONFIG,
            },
            ConfigSynonym {
                name: "log.roll.ms",
                value: cfg.segment_ms.to_string(),
                source: config_source::STATIC_BROKER_CONFIG,
            },
        ]
    );
    assert_eq!(
        get("retention.ms").synonyms,
        vec![ConfigSynonym {
            name: "log.retention.ms",
            value: "604800000".into(),
            source: config_source::STATIC_BROKER_CONFIG,
        }]
    );
    assert_eq!(
        get("distlog.ensemble.size").synonyms[0].name,
        "distlog.ensemble.size"
    );
    assert!(eff.iter().all(|e| !e.read_only && e.documentation.is_some()));
    assert_eq!(get("retention.bytes").config_type, config_type::LONG);
    assert_eq!(get("cleanup.policy").config_type, config_type::LIST);
}

#[test]
fn max_message_bytes_override_must_be_valid() {
    assert_eq!(max_message_bytes_override(&map(&[])), None);
    assert_eq!(
        max_message_bytes_override(&map(&[("max.message.bytes", "2048")])),
        Some(2048)
    );
    assert_eq!(
        max_message_bytes_override(&map(&[("max.message.bytes", "-5")])),
        None
    );
}
