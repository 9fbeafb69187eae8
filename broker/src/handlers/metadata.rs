//! Metadata: brokers, the controller, and topics with their partitions'
//! leaders. Unknown topics are auto-created when the node allows it
//! (`auto.create.topics.enable`) and the request does too.

use distlog_metadata::{MetaState, NodeId, TopicMeta};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;
use uuid::Uuid;

use super::kafka_broker_id;
use crate::listeners::KafkaListener;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 12);

/// What the request asks about.
#[derive(Debug, PartialEq)]
enum Wanted {
    All,
    Some(Vec<(Option<String>, Uuid)>),
}

/// Which topics a request asks about. In v0 an empty list means every
/// topic (there is no null); from v1 null means every topic and an empty
/// list none.
fn wanted(version: i16, topics: Option<Vec<MetadataRequestTopic>>) -> Wanted {
    match topics {
        None => Wanted::All,
        Some(t) if t.is_empty() && version == 0 => Wanted::All,
        Some(t) => Wanted::Some(
            t.into_iter()
                .map(|t| (t.name.map(|n| n.0.as_str().to_string()), t.topic_id))
                .collect(),
        ),
    }
}

/// Handle a metadata request that arrived through `listener`: brokers are
/// listed with their addresses on that listener.
pub async fn handle(
    broker: &Broker,
    version: i16,
    req: MetadataRequest,
    listener: &KafkaListener,
) -> MetadataResponse {
    let node = Leadership {
        node: kafka_broker_id(broker.config.node_id).0,
        cluster: broker.config.is_cluster(),
    };
    let allow_create = broker.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let wanted = wanted(version, req.topics);

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

    broker
        .meta
        .read(|s| build_response(s, broker.config.node_id, listener, topics))
}

/// The response around `topics`: every live broker plus this node (present
/// even before its registration is visible), each at its address on
/// `listener` (a broker without that listener is left out, as Kafka does),
/// the cluster id, and this node as controller (as a KRaft cluster answers:
/// the controller quorum is not reachable by clients, any broker forwards
/// admin requests).
pub fn build_response(
    s: &MetaState,
    node_id: NodeId,
    listener: &KafkaListener,
    topics: Vec<MetadataResponseTopic>,
) -> MetadataResponse {
    let node = kafka_broker_id(node_id);
    let now = distlog_metadata::now_ms();
    let mut brokers: Vec<MetadataResponseBroker> = s
        .live_brokers(now)
        .filter(|b| b.id != node_id)
        .filter_map(|b| {
            let (host, port) = b.kafka_addr(&listener.name)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(kafka_broker_id(b.id))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(port as i32)
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect();
    let rack = s.brokers.get(&node_id).and_then(|b| b.rack.clone());
    brokers.push(
        MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(StrBytes::from_string(listener.advertised_host.clone()))
            .with_port(listener.advertised_port as i32)
            .with_rack(rack.map(StrBytes::from_string)),
    );
    brokers.sort_by_key(|b| b.node_id.0);
    let cluster_id = (!s.cluster_id.is_empty()).then(|| StrBytes::from_string(s.cluster_id.clone()));
    MetadataResponse::default()
        .with_throttle_time_ms(0)
        .with_brokers(brokers)
        .with_cluster_id(cluster_id)
        .with_controller_id(node)
        .with_topics(topics)
}

/// The entry of one requested topic, auto-creating it if allowed.
async fn one_topic(
    broker: &Broker,
    name: Option<String>,
    id: Uuid,
    allow_create: bool,
    node: Leadership,
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

/// Who leads a partition whose stream has no owner yet.
#[derive(Debug, Clone, Copy)]
pub struct Leadership {
    /// This node's id.
    pub node: i32,
    /// In a cluster the controller assigns owners, so an unowned stream has
    /// no leader yet (LEADER_NOT_AVAILABLE); a single node owns whatever
    /// it is asked to serve, so it is the leader.
    pub cluster: bool,
}

/// A live topic's entry: every partition led by its stream's owner, with
/// the owner epoch as leader epoch (see [`Leadership`] for unowned ones).
/// In a cluster the replica list starts with the partition's preferred
/// owner (see [`crate::preferred`]) when that is not the leader, so
/// clients that take the first replica as the preferred leader (Kafka's
/// admin tools) see the broker ElectLeaders would move it to. The
/// preferred owner is in the ISR while its lease is valid: every live
/// broker can take a stream over at once (its data is on the bookies), as
/// an in-sync Kafka replica can.
pub fn topic_entry(s: &MetaState, t: &TopicMeta, node: Leadership) -> MetadataResponseTopic {
    let candidates = if node.cluster {
        crate::preferred::candidate_brokers(s)
    } else {
        Vec::new()
    };
    let now = distlog_metadata::now_ms();
    let live = |b: i32| {
        s.brokers
            .values()
            .any(|i| kafka_broker_id(i.id).0 == b && i.is_live(now))
    };
    let partitions = (0..t.partitions)
        .map(|p| {
            let stream = s.stream(&t.stream(p));
            let owner = stream.and_then(|st| st.owner).map(|o| kafka_broker_id(o).0);
            let (leader, error) = match owner {
                Some(o) => (o, 0),
                None if node.cluster => (-1, ResponseError::LeaderNotAvailable.code()),
                None => (node.node, 0),
            };
            let epoch = stream.map_or(0, |st| st.owner_epoch.min(i32::MAX as u64) as i32);
            let preferred = crate::preferred::preferred_owner(t.stream(p), &candidates)
                .map(|b| kafka_broker_id(b).0)
                .filter(|b| *b != leader);
            let leader_replica = (leader >= 0 || preferred.is_none()).then_some(leader);
            let replicas: Vec<BrokerId> = preferred
                .into_iter()
                .chain(leader_replica)
                .map(BrokerId)
                .collect();
            let isr: Vec<BrokerId> = replicas
                .iter()
                .copied()
                .filter(|b| b.0 == leader || live(b.0))
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch)
                .with_replica_nodes(replicas)
                .with_isr_nodes(isr)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(false)
        .with_partitions(partitions)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use distlog_metadata::{BrokerInfo, ListenerAddr, StreamMeta};
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    fn state() -> (MetaState, TopicMeta) {
        let t = TopicMeta {
            name: "orders".into(),
            id: Uuid::new_v4(),
            partitions: 2,
            configs: BTreeMap::new(),
            created_ms: 1,
        };
        let mut s = MetaState {
            cluster_id: "c1".into(),
            ..MetaState::default()
        };
        s.brokers.insert(
            NodeId::new(2),
            BrokerInfo {
                id: NodeId::new(2),
                kafka_host: "other".into(),
                kafka_port: 9000,
                listeners: Default::default(),
                rack: Some("r2".into()),
                bookie_addr: None,
                lease_expires_ms: u64::MAX,
            },
        );
        s.brokers.insert(
            NodeId::new(3),
            BrokerInfo {
                id: NodeId::new(3),
                kafka_host: "expired".into(),
                kafka_port: 9000,
                listeners: Default::default(),
                rack: None,
                bookie_addr: None,
                lease_expires_ms: 1,
            },
        );
        s.streams.insert(
            t.stream(1),
            StreamMeta {
                id: t.stream(1),
                topic: t.name.clone(),
                owner: Some(NodeId::new(1)),
                owner_epoch: 4,
                log_start_offset: 0,
                segments: Vec::new(),
                next_lssn: 1,
            },
        );
        s.topics.insert(t.name.clone(), t.clone());
        (s, t)
    }

    #[test]
    fn topic_entry_reports_leaders_and_epochs() {
        let (s, t) = state();
        let single = Leadership {
            node: 1,
            cluster: false,
        };
        let e = topic_entry(&s, &t, single);
        assert_eq!(e.error_code, 0);
        assert_eq!(e.topic_id, t.id);
        assert_eq!(e.name.as_ref().map(|n| n.0.as_str()), Some("orders"));
        let parts: Vec<(i32, i32, i32)> = e
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0, p.leader_epoch))
            .collect();
        assert_eq!(parts, vec![(0, 1, 0), (1, 1, 4)]);
        assert_eq!(e.partitions[1].replica_nodes, vec![BrokerId(1)]);
        assert_eq!(e.partitions[1].isr_nodes, vec![BrokerId(1)]);
        // In a cluster an unowned stream has no leader until the controller
        // assigns one.
        let cluster = topic_entry(
            &s,
            &t,
            Leadership {
                node: 1,
                cluster: true,
            },
        );
        let parts: Vec<(i16, i32, i32)> = cluster
            .partitions
            .iter()
            .map(|p| (p.error_code, p.leader_id.0, p.leader_epoch))
            .collect();
        assert_eq!(parts, vec![(5, -1, 0), (0, 1, 4)]);
        // The preferred owner (broker 2 or 3, the registered ones) comes
        // first in the replicas of partitions it does not lead.
        let pref = |p: u32| {
            let b = crate::preferred::preferred_owner(t.stream(p), &[NodeId::new(2), NodeId::new(3)]);
            BrokerId(kafka_broker_id(b.expect("preferred")).0)
        };
        let replicas: Vec<Vec<BrokerId>> = cluster
            .partitions
            .iter()
            .map(|p| p.replica_nodes.clone())
            .collect();
        assert_eq!(replicas, vec![vec![pref(0)], vec![pref(1), BrokerId(1)]]);
        // The preferred owner is in the ISR while live (broker 2's lease is
        // valid, broker 3's expired).
        let isr = |p: BrokerId| {
            if p == BrokerId(2) {
                vec![p, BrokerId(1)]
            } else {
                vec![BrokerId(1)]
            }
        };
        assert_eq!(cluster.partitions[1].isr_nodes, isr(pref(1)));
    }

    #[test]
    fn response_lists_brokers_and_encodes_at_every_version() {
        let (s, t) = state();
        let resp = build_response(
            &s,
            NodeId::new(1),
            &KafkaListener::from_bind("PLAINTEXT", "localhost:19092", "test").unwrap(),
            vec![topic_entry(
                &s,
                &t,
                Leadership {
                    node: 1,
                    cluster: false,
                },
            )],
        );
        let brokers: Vec<(i32, &str, i32)> = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.as_str(), b.port))
            .collect();
        assert_eq!(
            brokers,
            vec![(1, "localhost", 19092), (2, "other", 9000)],
            "live brokers only: 3's lease expired"
        );
        assert_eq!(resp.controller_id, BrokerId(1));
        assert_eq!(resp.cluster_id.as_ref().map(|c| c.as_str()), Some("c1"));
        for v in VERSIONS.0..=VERSIONS.1 {
            let mut buf = BytesMut::new();
            resp.encode(&mut buf, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
            let back = MetadataResponse::decode(&mut buf.freeze(), v).expect("decodes");
            assert_eq!(back.topics.len(), 1, "v{v}");
            assert_eq!(back.topics[0].partitions.len(), 2, "v{v}");
        }
        let unknown = error_entry(
            Some("x".into()),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition,
        );
        assert_eq!(unknown.error_code, 3);
    }

    #[test]
    fn brokers_are_listed_at_their_address_on_the_request_s_listener() {
        let (mut s, _) = state();
        let named = |host: &str, port: u16| ListenerAddr {
            host: host.into(),
            port,
        };
        let b2 = s.brokers.get_mut(&NodeId::new(2)).unwrap();
        b2.listeners = [
            ("INTERNAL".to_string(), named("node2", 9092)),
            ("EXTERNAL".to_string(), named("localhost", 19093)),
        ]
        .into();
        let mut b4 = b2.clone();
        b4.id = NodeId::new(4);
        b4.listeners = [("INTERNAL".to_string(), named("node4", 9092))].into();
        s.brokers.insert(NodeId::new(4), b4);
        let listed = |l: KafkaListener| -> Vec<(i32, String, i32)> {
            build_response(&s, NodeId::new(1), &l, Vec::new())
                .brokers
                .iter()
                .map(|b| (b.node_id.0, b.host.to_string(), b.port))
                .collect()
        };
        let external = KafkaListener {
            name: "EXTERNAL".into(),
            bind: "0.0.0.0:19092".into(),
            advertised_host: "localhost".into(),
            advertised_port: 19092,
        };
        assert_eq!(
            listed(external),
            vec![(1, "localhost".into(), 19092), (2, "localhost".into(), 19093)],
            "broker 4 has no EXTERNAL listener"
        );
        let internal = KafkaListener {
            name: "INTERNAL".into(),
            bind: "0.0.0.0:9092".into(),
            advertised_host: "node1".into(),
            advertised_port: 9092,
        };
        assert_eq!(
            listed(internal),
            vec![
                (1, "node1".into(), 9092),
                (2, "node2".into(), 9092),
                (4, "node4".into(), 9092)
            ]
        );
    }

    #[test]
    fn which_topics_a_request_wants() {
        assert_eq!(wanted(0, Some(vec![])), Wanted::All);
        assert_eq!(wanted(1, Some(vec![])), Wanted::Some(vec![]));
        assert_eq!(wanted(5, None), Wanted::All);
        let t = MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("a"))));
        assert_eq!(
            wanted(9, Some(vec![t])),
            Wanted::Some(vec![(Some("a".into()), Uuid::nil())])
        );
    }
}
