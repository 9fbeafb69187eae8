//! The admin commands: `Command::CreatePartitions` (new streams empty and
//! unowned, refusals, the serialized form) and `Command::AlterBrokerConfigs`.

use super::*;

fn grow(name: &str, id: Uuid, partitions: u32) -> Command {
    Command::CreatePartitions {
        name: name.into(),
        id,
        partitions,
    }
}

#[test]
fn create_partitions_adds_empty_unowned_streams_and_leaves_the_others() {
    let (mut st, s0) = owned_stream();
    let id = s0.topic_id;
    let (r, ev) = ok(&mut st, grow("t", id, 3));
    assert_eq!(r, CommandResponse::Ok);
    assert_eq!(
        ev,
        vec![MetaEvent::PartitionsCreated {
            name: "t".into(),
            id,
            from: 1,
            to: 3
        }]
    );
    assert_eq!(st.topic("t").map(|t| t.partitions), Some(3));
    assert_eq!(st.streams.len(), 3);
    // The existing stream keeps its owner and epoch.
    let old = st.stream(&s0).expect("stream 0");
    assert_eq!((old.owner, old.owner_epoch), (Some(NodeId::new(5)), 1));
    for p in 1..3 {
        let s = st.stream(&sid(id, p)).expect("new stream exists");
        assert_eq!(
            (
                s.owner,
                s.owner_epoch,
                s.next_lssn,
                s.log_start_offset,
                s.topic.as_str()
            ),
            (None, 0, 1, 0, "t")
        );
        assert!(s.segments.is_empty());
    }
    // Deleting the topic removes the new streams too.
    ok(&mut st, Command::DeleteTopic { name: "t".into() });
    assert!(st.streams.is_empty());
}

#[test]
fn create_partitions_refusals() {
    let mut st = MetaState::default();
    let id = topic_id(1);
    ok(&mut st, create("t", id, 2));
    assert_eq!(
        refused(&mut st, grow("u", id, 3)),
        ApplyError::UnknownTopic("u".into())
    );
    // Another topic id under the same name (deleted and re-created since).
    assert_eq!(
        refused(&mut st, grow("t", topic_id(2), 3)),
        ApplyError::UnknownTopic("t".into())
    );
    for n in [0, 1, 2] {
        match refused(&mut st, grow("t", id, n)) {
            ApplyError::Invalid(m) => assert_eq!(
                m,
                format!("topic 't' has 2 partition(s); {n} would not be an increase")
            ),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn create_partitions_serialized_form_round_trips() {
    let cmd = grow("t", topic_id(1), 4);
    let json = serde_json::to_string(&cmd).expect("encode");
    assert_eq!(
        json,
        r#"{"CreatePartitions":{"name":"t","id":"00000000-0000-0000-0000-000000000001","partitions":4}}"#
    );
    assert_eq!(serde_json::from_str::<Command>(&json).expect("decode"), cmd);
}

#[test]
fn alter_broker_configs_replaces_one_scope() {
    let mut st = MetaState::default();
    let kv = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
    let (_, ev) = ok(
        &mut st,
        Command::AlterBrokerConfigs {
            broker: None,
            configs: kv("log.retention.ms", "1000"),
        },
    );
    assert_eq!(ev, vec![MetaEvent::BrokerConfigsChanged { broker: None }]);
    let b2 = NodeId::new(2);
    ok(
        &mut st,
        Command::AlterBrokerConfigs {
            broker: Some(b2),
            configs: kv("log.segment.bytes", "4096"),
        },
    );
    assert_eq!(st.broker_configs.cluster, kv("log.retention.ms", "1000"));
    assert_eq!(
        st.broker_configs.of(Some(b2)),
        Some(&kv("log.segment.bytes", "4096"))
    );
    assert_eq!(st.broker_configs.of(Some(NodeId::new(3))), None);
    // Replacing with an empty set removes the broker's entry.
    let (_, ev) = ok(
        &mut st,
        Command::AlterBrokerConfigs {
            broker: Some(b2),
            configs: BTreeMap::new(),
        },
    );
    assert_eq!(ev, vec![MetaEvent::BrokerConfigsChanged { broker: Some(b2) }]);
    assert!(st.broker_configs.brokers.is_empty());
    assert!(!st.broker_configs.is_empty());
}
