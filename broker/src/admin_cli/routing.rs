//! Finding the right broker for a request: bootstrap to any reachable
//! address, learn the brokers from Metadata, then connect on demand to a
//! partition's leader, a group's coordinator (FindCoordinator) or the
//! controller, as Kafka's AdminClient routes each API.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Connection;
use super::error::{check, AdminError, Result};

/// How often a retriable coordinator error (COORDINATOR_NOT_AVAILABLE…) is
/// retried before giving up.
const COORDINATOR_ATTEMPTS: usize = 10;

/// The cluster as the CLI sees it: one bootstrap connection plus one
/// connection per broker asked so far.
#[derive(Debug)]
pub struct Cluster {
    bootstrap: Connection,
    brokers: BTreeMap<i32, String>,
    controller: i32,
    connections: HashMap<i32, Connection>,
    coordinators: HashMap<String, i32>,
    timeout: Duration,
}

/// Splits `--bootstrap` into addresses.
pub fn parse_bootstrap(list: &str) -> Result<Vec<String>> {
    let addrs: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    if addrs.is_empty() {
        return Err(AdminError::usage(
            "--bootstrap",
            "give at least one HOST:PORT (e.g. 127.0.0.1:9092)",
        ));
    }
    for a in &addrs {
        let ok = a
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(AdminError::usage(
                "--bootstrap",
                format!("'{a}' is not HOST:PORT (e.g. 127.0.0.1:9092)"),
            ));
        }
    }
    Ok(addrs)
}

/// A topic name as the protocol's type.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

impl Cluster {
    /// Connects to the first reachable bootstrap address and reads the
    /// broker list from Metadata. When none is reachable, the error of the
    /// last one is returned.
    pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Cluster> {
        let addrs = parse_bootstrap(bootstrap)?;
        let mut last = None;
        for addr in &addrs {
            match Connection::connect(addr, timeout, "--bootstrap").await {
                Ok(conn) => {
                    let mut cluster = Cluster {
                        bootstrap: conn,
                        brokers: BTreeMap::new(),
                        controller: -1,
                        connections: HashMap::new(),
                        coordinators: HashMap::new(),
                        timeout,
                    };
                    cluster.metadata(Some(&[])).await?;
                    return Ok(cluster);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| AdminError::usage("--bootstrap", "no address given")))
    }

    /// The bootstrap connection (any broker serves cluster-wide reads).
    pub fn any(&mut self) -> &mut Connection {
        &mut self.bootstrap
    }

    /// Metadata for `topics` (`None`: every topic), never creating one.
    /// Refreshes the broker list and controller.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let version = self.bootstrap.version_for(ApiKey::Metadata)?;
        let request = metadata_request(topics, version);
        let (_, answer) = self.bootstrap.send(&request).await?;
        self.brokers = answer
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        self.controller = answer.controller_id.0;
        Ok(answer)
    }

    /// The broker ids known from the last Metadata, ascending.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers.keys().copied().collect()
    }

    /// A connection to broker `id` (opened on first use).
    pub async fn broker(&mut self, id: i32) -> Result<&mut Connection> {
        if !self.connections.contains_key(&id) {
            let addr = self.brokers.get(&id).cloned().ok_or_else(|| AdminError::Kafka {
                what: format!("connect to broker {id}"),
                code: "BROKER_NOT_AVAILABLE".to_string(),
                message: String::new(),
                hint: "the broker is not in the cluster's Metadata; check `distlog admin cluster describe`"
                    .to_string(),
            })?;
            let flag = format!("broker {id}'s advertised address from Metadata");
            let conn = Connection::connect(&addr, self.timeout, &flag).await?;
            self.connections.insert(id, conn);
        }
        self.connections.get_mut(&id).ok_or_else(|| AdminError::Io {
            addr: String::new(),
            api: "connect".to_string(),
            reason: "connection vanished".to_string(),
        })
    }

    /// A connection to the controller (the bootstrap broker when Metadata
    /// names none).
    pub async fn controller(&mut self) -> Result<&mut Connection> {
        if self.controller >= 0 && self.brokers.contains_key(&self.controller) {
            let id = self.controller;
            self.broker(id).await
        } else {
            Ok(&mut self.bootstrap)
        }
    }

    /// A connection to the coordinator of consumer group `group`.
    pub async fn coordinator(&mut self, group: &str) -> Result<&mut Connection> {
        let id = self.coordinator_id(group).await?;
        self.broker(id).await
    }

    /// The broker id of `group`'s coordinator, found with FindCoordinator
    /// (retried while the broker says it is loading or moving) and
    /// remembered.
    pub async fn coordinator_id(&mut self, group: &str) -> Result<i32> {
        if let Some(id) = self.coordinators.get(group) {
            return Ok(*id);
        }
        let mut attempt = 0;
        let id = loop {
            attempt += 1;
            let version = self.bootstrap.version_for(ApiKey::FindCoordinator)?;
            let request = find_coordinator_request(group, version);
            let (version, answer) = self.bootstrap.send(&request).await?;
            match coordinator_of(version, &answer) {
                Ok(id) => break id,
                Err((code, message)) => {
                    let retriable = [
                        E::CoordinatorLoadInProgress,
                        E::CoordinatorNotAvailable,
                        E::NotCoordinator,
                    ]
                    .iter()
                    .any(|e| e.code() == code);
                    if !retriable || attempt >= COORDINATOR_ATTEMPTS {
                        return Err(AdminError::kafka(
                            format!("find the coordinator of group '{group}'"),
                            code,
                            message.as_deref(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        if !self.brokers.contains_key(&id) {
            self.metadata(Some(&[])).await?;
        }
        self.coordinators.insert(group.to_string(), id);
        Ok(id)
    }

    /// Each partition's leader of `topic` (partition → broker id, -1 when
    /// it has none), or UNKNOWN_TOPIC_OR_PARTITION.
    pub async fn leaders(&mut self, topic: &str) -> Result<BTreeMap<i32, i32>> {
        let answer = self.metadata(Some(&[topic.to_string()])).await?;
        let t = answer
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .ok_or_else(|| {
                AdminError::kafka(
                    format!("look up topic '{topic}'"),
                    E::UnknownTopicOrPartition.code(),
                    None,
                )
            })?;
        check(|| format!("look up topic '{topic}'"), t.error_code, None)?;
        Ok(t.partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect())
    }
}

/// The Metadata request for `topics` (`None`: all) at `version`: never
/// creating a topic (the flag exists from v4; older brokers only create
/// topics when configured to).
pub fn metadata_request(topics: Option<&[String]>, version: i16) -> MetadataRequest {
    let request = MetadataRequest::default().with_topics(topics.map(|names| {
        names
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
            .collect()
    }));
    if version >= 4 {
        request.with_allow_auto_topic_creation(false)
    } else {
        request
    }
}

/// The FindCoordinator request for consumer group `group` at `version`
/// (v4+ asks for a list of keys, older versions for one).
pub fn find_coordinator_request(group: &str, version: i16) -> FindCoordinatorRequest {
    let key = StrBytes::from_string(group.to_string());
    if version >= 4 {
        FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![key])
    } else {
        FindCoordinatorRequest::default().with_key_type(0).with_key(key)
    }
}

/// The coordinator's id from a FindCoordinator answer of `version`
/// (v4+ answers per key), or its error code and message.
pub fn coordinator_of(
    version: i16,
    answer: &FindCoordinatorResponse,
) -> std::result::Result<i32, (i16, Option<String>)> {
    let (code, message, id) = if version >= 4 {
        match answer.coordinators.first() {
            Some(c) => (
                c.error_code,
                c.error_message.as_ref().map(ToString::to_string),
                c.node_id,
            ),
            None => (
                E::CoordinatorNotAvailable.code(),
                Some("no coordinator in the answer".to_string()),
                BrokerId(-1),
            ),
        }
    } else {
        (
            answer.error_code,
            answer.error_message.as_ref().map(ToString::to_string),
            answer.node_id,
        )
    };
    if code == 0 {
        Ok(id.0)
    } else {
        Err((code, message.filter(|m| !m.is_empty())))
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::find_coordinator_response::Coordinator;

    use super::*;

    #[test]
    fn bootstrap_lists_are_checked() {
        assert_eq!(
            parse_bootstrap("a:1, b:2").expect("valid"),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert!(matches!(parse_bootstrap(""), Err(AdminError::Usage { .. })));
        let err = parse_bootstrap("localhost").expect_err("no port");
        assert!(err.to_string().contains("'localhost' is not HOST:PORT"), "{err}");
    }

    #[test]
    fn requests_encode_at_every_client_version() {
        use kafka_protocol::protocol::Encodable;
        let (lo, hi) = super::super::client::client_versions(ApiKey::Metadata).expect("metadata");
        for v in lo..=hi {
            let mut buf = bytes::BytesMut::new();
            metadata_request(Some(&["t".to_string()]), v)
                .encode(&mut buf, v)
                .expect("metadata encodes");
            metadata_request(None, v)
                .encode(&mut buf, v)
                .expect("metadata encodes");
        }
        let (lo, hi) = super::super::client::client_versions(ApiKey::FindCoordinator).expect("find");
        for v in lo..=hi {
            let mut buf = bytes::BytesMut::new();
            find_coordinator_request("g", v)
                .encode(&mut buf, v)
                .expect("find coordinator encodes");
        }
        assert!(!metadata_request(None, 4).allow_auto_topic_creation);
        assert_eq!(find_coordinator_request("g", 4).coordinator_keys.len(), 1);
        assert_eq!(&*find_coordinator_request("g", 3).key, "g");
    }

    #[test]
    fn reads_the_coordinator_of_old_and_new_versions() {
        let old = FindCoordinatorResponse::default().with_node_id(BrokerId(3));
        assert_eq!(coordinator_of(3, &old), Ok(3));
        let new = FindCoordinatorResponse::default()
            .with_coordinators(vec![Coordinator::default().with_node_id(BrokerId(2))]);
        assert_eq!(coordinator_of(4, &new), Ok(2));
        let failed = FindCoordinatorResponse::default()
            .with_coordinators(vec![Coordinator::default().with_error_code(15)]);
        assert_eq!(coordinator_of(6, &failed), Err((15, None)));
    }
}
