//! Tests of the broker configs: dynamic layers, validation, and what
//! DescribeConfigs reports for broker resources.

use super::*;

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn the_table_is_sorted_and_dynamic_keys_name_a_topic_row() {
    let names: Vec<&str> = BROKER_CONFIGS.iter().map(|k| k.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted);
    assert_eq!(
        dynamic_names(),
        vec![
            "log.retention.bytes",
            "log.retention.ms",
            "log.roll.ms",
            "log.segment.bytes",
            "message.max.bytes"
        ]
    );
    for k in BROKER_CONFIGS.iter().filter(|k| k.dynamic()) {
        let row = k.topic.and_then(topic_config::key).expect("a topic row");
        assert_eq!(
            row.broker_synonym,
            Some(k.name),
            "{} is {}'s synonym",
            k.name,
            row.name
        );
        // The node's own value is valid for the row.
        assert_eq!(
            row.validator.check(k.name, &(k.value)(&BrokerConfig::default())),
            Ok(())
        );
    }
}

#[test]
fn broker_configs_validate_against_the_topic_rows() {
    assert_eq!(validate_broker_configs(&map(&[])), Ok(()));
    assert_eq!(
        validate_broker_configs(&map(&[("log.retention.ms", "-1"), ("log.segment.bytes", "4096")])),
        Ok(())
    );
    for (k, v, needle) in [
        (
            "advertised.listeners",
            "PLAINTEXT://x:1",
            "Cannot update these configs dynamically: advertised.listeners",
        ),
        (
            "broker.id",
            "7",
            "Cannot update these configs dynamically: broker.id",
        ),
        ("no.such.config", "1", "unknown broker config 'no.such.config'"),
        (
            "log.segment.bytes",
            "1",
            "config 'log.segment.bytes': 1 is outside [14, 2147483647]",
        ),
        (
            "log.retention.ms",
            "soon",
            "config 'log.retention.ms': 'soon' is not an integer",
        ),
    ] {
        let err = validate_broker_configs(&map(&[(k, v)])).expect_err(k);
        assert!(err.contains(needle), "{k}={v}: {err}");
    }
}

#[test]
fn dynamic_values_win_over_static_ones_most_specific_first() {
    let cfg = BrokerConfig::default();
    let dynamic = DynamicDefaults {
        broker: map(&[("log.retention.ms", "1000")]),
        cluster: map(&[("log.retention.ms", "2000"), ("log.segment.bytes", "4096")]),
    };
    let v = broker_configs(&cfg, &dynamic);
    let get = |n: &str| v.iter().find(|e| e.name == n).cloned().expect("listed");
    let ret = get("log.retention.ms");
    assert_eq!(
        (ret.value.as_str(), ret.source),
        ("1000", config_source::DYNAMIC_BROKER_CONFIG)
    );
    let sources: Vec<(&str, i8)> = ret
        .synonyms
        .iter()
        .map(|s| (s.value.as_str(), s.source))
        .collect();
    assert_eq!(
        sources,
        vec![
            ("1000", config_source::DYNAMIC_BROKER_CONFIG),
            ("2000", config_source::DYNAMIC_DEFAULT_BROKER_CONFIG),
            ("604800000", config_source::STATIC_BROKER_CONFIG),
        ]
    );
    let seg = get("log.segment.bytes");
    assert_eq!(
        (seg.value.as_str(), seg.source),
        ("4096", config_source::DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    assert_eq!(
        get("message.max.bytes").source,
        config_source::STATIC_BROKER_CONFIG
    );
    assert!(get("listeners").read_only);
    assert!(!get("log.roll.ms").read_only);

    // Resource "": only the cluster-wide values.
    let cluster = cluster_default_configs(&dynamic);
    let names: Vec<(&str, &str, i8)> = cluster
        .iter()
        .map(|e| (e.name, e.value.as_str(), e.source))
        .collect();
    assert_eq!(
        names,
        vec![
            (
                "log.retention.ms",
                "2000",
                config_source::DYNAMIC_DEFAULT_BROKER_CONFIG
            ),
            (
                "log.segment.bytes",
                "4096",
                config_source::DYNAMIC_DEFAULT_BROKER_CONFIG
            ),
        ]
    );
    assert!(cluster_default_configs(&DynamicDefaults::default()).is_empty());
}

#[test]
fn stored_values_of_read_only_names_are_never_used() {
    let dynamic = DynamicDefaults {
        broker: map(&[("broker.id", "9")]),
        cluster: map(&[("listeners", "x")]),
    };
    assert_eq!(dynamic.layers("broker.id").count(), 0);
    assert_eq!(dynamic.layers("listeners").count(), 0);
    let v = broker_configs(&BrokerConfig::default(), &dynamic);
    assert!(v.iter().all(|e| e.source == config_source::STATIC_BROKER_CONFIG));
}

#[test]
fn dynamic_defaults_come_from_metadata_state() {
    let mut st = MetaState::default();
    st.broker_configs.cluster = map(&[("log.roll.ms", "5")]);
    st.broker_configs
        .brokers
        .insert(NodeId::new(2), map(&[("message.max.bytes", "100")]));
    let d = DynamicDefaults::of(&st, NodeId::new(2));
    assert_eq!(d.broker, map(&[("message.max.bytes", "100")]));
    assert_eq!(d.cluster, map(&[("log.roll.ms", "5")]));
    assert!(DynamicDefaults::of(&st, NodeId::new(1)).broker.is_empty());
}
