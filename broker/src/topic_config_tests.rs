//! Tests of the topic config table: validation, effective configs and the
//! typed stream settings.

use super::*;

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
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
    let eff = effective_topic_configs(&cfg, &map(&[("segment.ms", "5")]));
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
    let sc = stream_config(&cfg, &map(&[("segment.bytes", "4096")]));
    assert_eq!(sc.max_segment_bytes, 4096);
    assert_eq!(sc.segment_rolling_interval, Duration::from_millis(cfg.segment_ms));
}
