//! CreateTopics: validated topic creation (names, partitions, replication
//! factor, configs), honouring `validate_only`.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::kafka_broker_id;
use crate::broker_config::DynamicDefaults;
use crate::cluster::Replication;
use crate::config::BrokerConfig;
use crate::topic_config::{effective_topic_configs, keys, replication};
use crate::topics::{validate_new_topic, TopicError};
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (2, 7);

/// Handle a create-topics request.
pub async fn handle(broker: &Broker, version: i16, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.as_str()))
        .map(|t| t.name.0.as_str().to_string())
        .collect();
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.as_str().to_string();
        let outcome = if duplicates.contains(&name) {
            Err(TopicError {
                code: ResponseError::InvalidRequest,
                message: format!("topic '{name}' appears more than once in the request"),
            })
        } else {
            create_one(broker, &topic, req.validate_only).await
        };
        let dynamic = DynamicDefaults::read(&broker.meta, broker.config.node_id);
        results.push(result_entry(
            &broker.config,
            &dynamic,
            version,
            topic.name,
            outcome,
        ));
    }
    CreateTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(results)
}

/// Check the request's partition/replica fields and create (or validate).
async fn create_one(
    broker: &Broker,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<distlog_metadata::TopicMeta, TopicError> {
    let (partitions, mut configs) = requested(t, kafka_broker_id(broker.config.node_id).0)?;
    if t.replication_factor > 0 {
        // A Kafka replication factor RF becomes RF copies on RF bookies,
        // acknowledged by a majority; explicit distlog.* configs win, and
        // the node default needs no override.
        let r = Replication::for_replication_factor(t.replication_factor as u8);
        if r != broker.config.default_replication {
            for (key, v) in [
                (keys::ENSEMBLE_SIZE, r.ensemble),
                (keys::WRITE_QUORUM, r.write),
                (keys::ACK_QUORUM, r.ack),
            ] {
                configs.entry(key.into()).or_insert_with(|| v.to_string());
            }
        }
    }
    // As Kafka: a bad name, partition count or config first (INVALID_CONFIG
    // for quorum sizes that break E >= Qw >= Qa >= 1), then replication the
    // cluster cannot give (INVALID_REPLICATION_FACTOR).
    validate_new_topic(&broker.config, t.name.0.as_str(), partitions, &configs)?;
    let now = distlog_metadata::now_ms();
    let live = broker.meta.read(|s| s.live_bookies(now).count());
    // A single node always has its own bookie, registered or not.
    let live = if broker.config.is_cluster() { live } else { 1 };
    check_bookies(
        t.replication_factor,
        &configs,
        broker.config.default_replication,
        live,
    )?;
    broker
        .create_topic(t.name.0.as_str(), partitions, configs, validate_only)
        .await
}

/// The cluster must have as many live bookies as the replication factor
/// asks for, and as the topic's ensemble size E (every segment is placed
/// on E distinct bookies; with striping E can exceed the copies of an
/// entry, Qw, but every bookie of the ensemble holds its share).
fn check_bookies(
    replication_factor: i16,
    configs: &BTreeMap<String, String>,
    defaults: Replication,
    live: usize,
) -> Result<(), TopicError> {
    let refuse = |message: String| {
        Err(TopicError {
            code: ResponseError::InvalidReplicationFactor,
            message,
        })
    };
    if replication_factor > 0 && replication_factor as usize > live {
        return refuse(format!(
            "replication factor {replication_factor} is larger than the {live} live bookie(s) of this cluster"
        ));
    }
    let ensemble = usize::from(replication(configs, defaults).ensemble);
    if ensemble > live {
        return refuse(format!(
            "distlog.ensemble.size {ensemble} needs {ensemble} live bookies; this cluster has {live}"
        ));
    }
    Ok(())
}

/// The partition count (`None` = node default) and configs a request entry
/// asks for, or why it is refused (manual assignments must place every
/// partition on this node only; the replication factor must be 1 or -1;
/// config values must not be null).
fn requested(t: &CreatableTopic, node: i32) -> Result<(Option<u32>, BTreeMap<String, String>), TopicError> {
    let err = |code, message: String| Err(TopicError { code, message });
    let partitions = if t.assignments.is_empty() {
        match t.num_partitions {
            -1 => None,
            n if n >= 1 => Some(n as u32),
            n => {
                return err(
                    ResponseError::InvalidPartitions,
                    format!("number of partitions {n} is below 1"),
                )
            }
        }
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return err(
                ResponseError::InvalidRequest,
                "both manual assignments and a partition count or replication factor were given".into(),
            );
        }
        for (i, a) in t.assignments.iter().enumerate() {
            if a.partition_index != i as i32 || a.broker_ids.iter().map(|b| b.0).ne([node]) {
                return err(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "partition {} must be assigned to broker {node} only",
                        a.partition_index
                    ),
                );
            }
        }
        Some(t.assignments.len() as u32)
    };
    if t.assignments.is_empty() && (t.replication_factor == 0 || t.replication_factor < -1) {
        return err(
            ResponseError::InvalidReplicationFactor,
            format!("replication factor {} is below 1", t.replication_factor),
        );
    }
    if t.replication_factor > u8::MAX as i16 {
        return err(
            ResponseError::InvalidReplicationFactor,
            format!("replication factor {} is too large", t.replication_factor),
        );
    }
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(value) = &c.value else {
            return err(
                ResponseError::InvalidConfig,
                format!("config '{}' has a null value", c.name.as_str()),
            );
        };
        configs.insert(c.name.as_str().to_string(), value.as_str().to_string());
    }
    Ok((partitions, configs))
}

fn result_entry(
    cfg: &BrokerConfig,
    dynamic: &DynamicDefaults,
    version: i16,
    name: TopicName,
    outcome: Result<distlog_metadata::TopicMeta, TopicError>,
) -> CreatableTopicResult {
    let base = CreatableTopicResult::default().with_name(name);
    match outcome {
        Ok(topic) => {
            let mut r = base
                .with_error_code(0)
                .with_error_message(None)
                .with_topic_id(topic.id);
            if version >= 5 {
                let configs = effective_topic_configs(cfg, dynamic, &topic.configs)
                    .into_iter()
                    .map(|c| {
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_static_str(c.name))
                            .with_value(Some(StrBytes::from_string(c.value)))
                            .with_read_only(c.read_only)
                            .with_config_source(c.source)
                            .with_is_sensitive(false)
                    })
                    .collect();
                r = r
                    .with_num_partitions(topic.partitions as i32)
                    .with_replication_factor(
                        replication(&topic.configs, cfg.default_replication).ensemble as i16,
                    )
                    .with_configs(Some(configs));
            }
            r
        }
        Err(e) => {
            let mut r = base.with_error_code(e.code.code());
            r.error_message = Some(StrBytes::from_string(e.message));
            if version >= 5 {
                r.topic_config_error_code = 0;
                r.configs = Some(Vec::new());
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopicConfig};
    use kafka_protocol::messages::BrokerId;

    use super::*;

    fn topic(partitions: i32, rf: i16) -> CreatableTopic {
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
    }

    fn code(r: Result<(Option<u32>, BTreeMap<String, String>), TopicError>) -> Option<ResponseError> {
        r.err().map(|e| e.code)
    }

    #[test]
    fn partitions_and_replication_factor() {
        assert_eq!(requested(&topic(-1, -1), 1).expect("ok").0, None);
        assert_eq!(requested(&topic(3, 1), 1).expect("ok").0, Some(3));
        assert_eq!(
            code(requested(&topic(0, 1), 1)),
            Some(ResponseError::InvalidPartitions)
        );
        assert_eq!(
            code(requested(&topic(-5, 1), 1)),
            Some(ResponseError::InvalidPartitions)
        );
        assert_eq!(
            requested(&topic(1, 3), 1)
                .expect("checked against live bookies later")
                .0,
            Some(1)
        );
        assert_eq!(
            code(requested(&topic(1, 0), 1)),
            Some(ResponseError::InvalidReplicationFactor)
        );
    }

    #[test]
    fn the_ensemble_needs_as_many_live_bookies() {
        let cfg = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let striped = cfg(&[
            ("distlog.ensemble.size", "3"),
            ("distlog.write.quorum", "2"),
            ("distlog.ack.quorum", "2"),
        ]);
        let refused = |r: Result<(), TopicError>| r.expect_err("refused");
        assert!(check_bookies(3, &striped, Replication::CLUSTER, 3).is_ok());
        assert!(check_bookies(-1, &striped, Replication::SINGLE, 3).is_ok());
        let e = refused(check_bookies(-1, &striped, Replication::CLUSTER, 2));
        assert_eq!(e.code, ResponseError::InvalidReplicationFactor);
        assert_eq!(
            e.message,
            "distlog.ensemble.size 3 needs 3 live bookies; this cluster has 2"
        );
        // The node default counts when the topic sets no ensemble size.
        let e = refused(check_bookies(-1, &cfg(&[]), Replication::CLUSTER, 2));
        assert_eq!(e.code, ResponseError::InvalidReplicationFactor);
        assert!(check_bookies(-1, &cfg(&[]), Replication::SINGLE, 1).is_ok());
        // The replication factor itself.
        let e = refused(check_bookies(4, &striped, Replication::CLUSTER, 3));
        assert_eq!(e.code, ResponseError::InvalidReplicationFactor);
        assert!(e.message.contains("replication factor 4"), "{}", e.message);
    }

    #[test]
    fn manual_assignments_must_use_this_node() {
        let a = |p: i32, b: Vec<i32>| {
            CreatableReplicaAssignment::default()
                .with_partition_index(p)
                .with_broker_ids(b.into_iter().map(BrokerId).collect())
        };
        let ok = topic(-1, -1).with_assignments(vec![a(0, vec![1]), a(1, vec![1])]);
        assert_eq!(requested(&ok, 1).expect("ok").0, Some(2));
        let other = topic(-1, -1).with_assignments(vec![a(0, vec![2])]);
        assert_eq!(
            code(requested(&other, 1)),
            Some(ResponseError::InvalidReplicaAssignment)
        );
        let both = topic(2, -1).with_assignments(vec![a(0, vec![1])]);
        assert_eq!(code(requested(&both, 1)), Some(ResponseError::InvalidRequest));
    }

    #[test]
    fn results_encode_at_every_version() {
        use bytes::BytesMut;
        use kafka_protocol::protocol::{Decodable, Encodable};
        let cfg = BrokerConfig::default();
        let name = || TopicName(StrBytes::from_static_str("t"));
        let ok = distlog_metadata::TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::new_v4(),
            partitions: 3,
            configs: BTreeMap::new(),
            created_ms: 0,
        };
        for v in VERSIONS.0..=VERSIONS.1 {
            let refused = TopicError {
                code: ResponseError::TopicAlreadyExists,
                message: "exists".into(),
            };
            let resp = CreateTopicsResponse::default().with_topics(vec![
                result_entry(&cfg, &DynamicDefaults::default(), v, name(), Ok(ok.clone())),
                result_entry(&cfg, &DynamicDefaults::default(), v, name(), Err(refused)),
            ]);
            let mut buf = BytesMut::new();
            resp.encode(&mut buf, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
            let back = CreateTopicsResponse::decode(&mut buf.freeze(), v).expect("decodes");
            assert_eq!(back.topics[0].error_code, 0, "v{v}");
            assert_eq!(back.topics[1].error_code, 36, "v{v}");
            if v >= 5 {
                assert_eq!(back.topics[0].num_partitions, 3);
                assert_eq!(back.topics[0].replication_factor, 1);
                assert!(back.topics[0].configs.as_ref().is_some_and(|c| !c.is_empty()));
            }
            if v >= 7 {
                assert_eq!(back.topics[0].topic_id, ok.id);
            }
        }
    }

    #[test]
    fn configs_are_collected_and_nulls_refused() {
        let c = |n: &'static str, v: Option<&'static str>| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str(n))
                .with_value(v.map(StrBytes::from_static_str))
        };
        let t = topic(1, 1).with_configs(vec![c("segment.ms", Some("10"))]);
        let (_, configs) = requested(&t, 1).expect("ok");
        assert_eq!(configs.get("segment.ms").map(String::as_str), Some("10"));
        let t = topic(1, 1).with_configs(vec![c("segment.ms", None)]);
        assert_eq!(code(requested(&t, 1)), Some(ResponseError::InvalidConfig));
    }
}
