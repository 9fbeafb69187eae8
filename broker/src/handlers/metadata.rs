//! Metadata: brokers, the controller, and topics with their partitions'
//! leaders. Unknown topics are auto-created when the node allows it
//! (`auto.create.topics.enable`) and the request does too.

use distlog_metadata::{MetaState, TopicMeta};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;
use uuid::Uuid;

use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 12);

/// What the request asks about.
enum Wanted {
    All,
    Some(Vec<(Option<String>, Uuid)>),
}

/// Handle a metadata request.
pub async fn handle(broker: &Broker, version: i16, req: MetadataRequest) -> MetadataResponse {
    let node = broker.config.node_id as i32;
    let wanted = match req.topics {
        None => Wanted::All,
        // v0 has no null: an empty list means every topic.
        Some(t) if t.is_empty() && version == 0 => Wanted::All,
        Some(t) => Wanted::Some(
            t.into_iter()
                .map(|t| (t.name.map(|n| n.0.as_str().to_string()), t.topic_id))
                .collect(),
        ),
    };
    let allow_create = broker.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);

    let topics = match wanted {
        Wanted::All => broker
            .meta
            .read(|s| s.topics.values().map(|t| topic_entry(s, t, node)).collect()),
        Wanted::Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (name, id) in list {
                out.push(one_topic(broker, name, id, allow_create, node).await);
            }
            out
        }
    };

    let (cluster_id, mut brokers) = broker.meta.read(|s| {
        let brokers: Vec<MetadataResponseBroker> = s
            .brokers
            .values()
            .map(|b| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id as i32))
                    .with_host(StrBytes::from_string(b.kafka_host.clone()))
                    .with_port(b.kafka_port as i32)
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
            })
            .collect();
        (s.cluster_id.clone(), brokers)
    });
    // This node answers even before its registration is visible.
    brokers.retain(|b| b.node_id.0 != node);
    brokers.push(
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(node))
            .with_host(StrBytes::from_string(broker.config.advertised_kafka_host.clone()))
            .with_port(broker.config.advertised_kafka_port as i32),
    );
    brokers.sort_by_key(|b| b.node_id.0);

    MetadataResponse::default()
        .with_throttle_time_ms(0)
        .with_brokers(brokers)
        .with_cluster_id((!cluster_id.is_empty()).then(|| StrBytes::from_string(cluster_id)))
        .with_controller_id(BrokerId(node))
        .with_topics(topics)
}

/// The entry of one requested topic, auto-creating it if allowed.
async fn one_topic(
    broker: &Broker,
    name: Option<String>,
    id: Uuid,
    allow_create: bool,
    node: i32,
) -> MetadataResponseTopic {
    let Some(name) = name else {
        // v10+: requested by topic id.
        return broker.meta.read(|s| match s.topic_by_id(&id) {
            Some(t) => topic_entry(s, t, node),
            None => error_entry(None, id, ResponseError::UnknownTopicId),
        });
    };
    if let Some(entry) = broker
        .meta
        .read(|s| s.topic(&name).map(|t| topic_entry(s, t, node)))
    {
        return entry;
    }
    if crate::error::topic_name_error(&name).is_some() {
        return error_entry(Some(name), Uuid::nil(), ResponseError::InvalidTopicException);
    }
    if !allow_create {
        return error_entry(Some(name), Uuid::nil(), ResponseError::UnknownTopicOrPartition);
    }
    match broker.create_topic(&name, None, Default::default(), false).await {
        Ok(_) => {}
        // Created concurrently by another request: fine, it exists.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => {}
        Err(e) => {
            debug!(topic = %name, error = %e.message, "auto-create failed");
            return error_entry(Some(name), Uuid::nil(), e.code);
        }
    }
    broker.meta.read(|s| match s.topic(&name) {
        Some(t) => topic_entry(s, t, node),
        None => error_entry(Some(name.clone()), Uuid::nil(), ResponseError::LeaderNotAvailable),
    })
}

fn error_entry(name: Option<String>, id: Uuid, e: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(e.code())
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
}

/// A live topic's entry: every partition led by its stream's owner (this
/// node while the stream is unowned), with the owner epoch as leader epoch.
pub fn topic_entry(s: &MetaState, t: &TopicMeta, node: i32) -> MetadataResponseTopic {
    let partitions = (0..t.partitions)
        .map(|p| {
            let stream = s.stream(&t.stream(p));
            let leader = stream.and_then(|st| st.owner).map_or(node, |o| o as i32);
            let epoch = stream.map_or(0, |st| st.owner_epoch.min(i32::MAX as u64) as i32);
            MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch)
                .with_replica_nodes(vec![BrokerId(leader)])
                .with_isr_nodes(vec![BrokerId(leader)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(false)
        .with_partitions(partitions)
}
