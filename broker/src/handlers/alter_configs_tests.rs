//! Tests of the config edits of AlterConfigs / IncrementalAlterConfigs.

use super::*;

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn edit(ops: &[(&str, Op)]) -> Change {
    Change::Edit(ops.iter().map(|(k, op)| (k.to_string(), op.clone())).collect())
}

#[test]
fn ops_decode_as_kafka_numbers_them() {
    assert_eq!(Op::decode(0, Some("1")), Ok(Op::Set("1".into())));
    assert_eq!(Op::decode(1, None), Ok(Op::Delete));
    assert_eq!(Op::decode(1, Some("x")), Ok(Op::Delete));
    assert_eq!(Op::decode(2, Some("a")), Ok(Op::Append("a".into())));
    assert_eq!(Op::decode(3, Some("a")), Ok(Op::Subtract("a".into())));
    assert_eq!(Op::decode(4, Some("a")), Err("Unknown operations type 4".into()));
    assert_eq!(
        Op::decode(-1, Some("a")),
        Err("Unknown operations type -1".into())
    );
    assert!(Op::decode(0, None).is_err());
}

#[test]
fn replace_sets_exactly_the_given_values() {
    let current = map(&[("retention.ms", "1"), ("segment.ms", "2")]);
    let next = Change::Replace(map(&[("segment.bytes", "4096")]))
        .apply(&current, &topic_list_default)
        .expect("applies");
    assert_eq!(next, map(&[("segment.bytes", "4096")]));
}

#[test]
fn set_and_delete_edit_the_current_values() {
    let current = map(&[("retention.ms", "1"), ("segment.ms", "2")]);
    let next = edit(&[
        ("retention.ms", Op::Set("5".into())),
        ("segment.ms", Op::Delete),
        ("flush.ms", Op::Set("10".into())),
        ("not.set", Op::Delete),
    ])
    .apply(&current, &topic_list_default)
    .expect("applies");
    assert_eq!(next, map(&[("flush.ms", "10"), ("retention.ms", "5")]));
}

#[test]
fn append_and_subtract_work_on_lists_from_their_default() {
    let none = BTreeMap::new();
    let next = edit(&[(
        "leader.replication.throttled.replicas",
        Op::Append("0:1,1:2".into()),
    )])
    .apply(&none, &topic_list_default)
    .expect("applies");
    assert_eq!(next, map(&[("leader.replication.throttled.replicas", "0:1,1:2")]));
    let next = edit(&[
        (
            "leader.replication.throttled.replicas",
            Op::Append("1:2,2:3".into()),
        ),
        (
            "leader.replication.throttled.replicas",
            Op::Subtract("0:1".into()),
        ),
    ])
    .apply(&next, &topic_list_default)
    .expect("applies");
    assert_eq!(next, map(&[("leader.replication.throttled.replicas", "1:2,2:3")]));
    // An unset list starts from its default: cleanup.policy is "delete".
    let next = edit(&[("cleanup.policy", Op::Append("compact".into()))])
        .apply(&none, &topic_list_default)
        .expect("applies");
    assert_eq!(next, map(&[("cleanup.policy", "delete,compact")]));
    let next = edit(&[("cleanup.policy", Op::Subtract("delete".into()))])
        .apply(&none, &topic_list_default)
        .expect("applies");
    assert_eq!(next, map(&[("cleanup.policy", "")]));
}

#[test]
fn append_to_a_non_list_is_invalid_config() {
    for (name, op) in [
        ("retention.ms", Op::Append("1".into())),
        ("retention.ms", Op::Subtract("1".into())),
        ("no.such.config", Op::Append("1".into())),
    ] {
        let err = edit(&[(name, op.clone())])
            .apply(&BTreeMap::new(), &topic_list_default)
            .expect_err(name);
        assert_eq!(
            err,
            (
                ResponseError::InvalidConfig,
                format!("Can't {} to key {name} because its type is not LIST.", op.name())
            )
        );
    }
    // Broker configs have no lists.
    let err = edit(&[("log.retention.ms", Op::Append("1".into()))])
        .apply(&BTreeMap::new(), &|_| None)
        .expect_err("not a list");
    assert_eq!(err.0, ResponseError::InvalidConfig);
}

#[test]
fn edited_sets_are_then_validated_by_the_table() {
    // What the handler checks after applying the edits.
    let next = edit(&[("cleanup.policy", Op::Append("compact".into()))])
        .apply(&BTreeMap::new(), &topic_list_default)
        .expect("applies");
    let err = validate_topic_configs(&next, crate::cluster::Replication::SINGLE).expect_err("compact");
    assert!(err.contains("cleanup.policy"), "{err}");
}

#[test]
fn request_level_checks() {
    assert_eq!(no_duplicates(&["a", "b"]), Ok(()));
    assert_eq!(
        no_duplicates(&["a", "b", "a"]),
        Err((
            ResponseError::InvalidRequest,
            "Error due to duplicate config keys".into()
        ))
    );
    assert_eq!(
        null_values(&["a", "b"]),
        (
            ResponseError::InvalidRequest,
            "Null value not supported for : a, b".into()
        )
    );
    assert_eq!(outcome(Ok(())), (0, None));
}

#[test]
fn every_topic_config_may_change_on_a_live_topic() {
    // All of Kafka's topic configs are dynamic; a row that is not would be refused here.
    let current = map(&[("retention.ms", "1")]);
    let next = map(&[("retention.ms", "2"), ("segment.bytes", "4096")]);
    assert_eq!(fixed_config_changed(&current, &next), None);
    assert!(topic_config::TOPIC_CONFIGS.iter().all(|k| k.dynamic));
}
