//! Topics as the broker manages them: topic creation — the one code path
//! used by both CreateTopics and Metadata auto-creation. Topic configs
//! (names, types, defaults, validation) live in [`crate::topic_config`].

use std::collections::BTreeMap;

use distlog_metadata::{Command, TopicMeta};
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::error::{metadata_error, topic_name_error};
use crate::topic_config::validate_topic_configs;
use crate::Broker;

/// Most partitions one topic may have (guards the metadata store against
/// absurd requests).
pub const MAX_PARTITIONS: u32 = 10_000;

/// A refused topic operation: the Kafka error and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError {
    /// The Kafka error code.
    pub code: ResponseError,
    /// Human-readable reason.
    pub message: String,
}

impl TopicError {
    fn new(code: ResponseError, message: impl Into<String>) -> Self {
        TopicError {
            code,
            message: message.into(),
        }
    }
}

/// Validate the parts of a topic creation that need no metadata: the name,
/// the partition count (`None` = node default) and the configs. Returns the
/// resolved partition count.
pub fn validate_new_topic(
    cfg: &BrokerConfig,
    name: &str,
    partitions: Option<u32>,
    configs: &BTreeMap<String, String>,
) -> Result<u32, TopicError> {
    if let Some(m) = topic_name_error(name) {
        return Err(TopicError::new(ResponseError::InvalidTopicException, m));
    }
    let partitions = partitions.unwrap_or(cfg.num_partitions);
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(TopicError::new(
            ResponseError::InvalidPartitions,
            format!("number of partitions must be within [1, {MAX_PARTITIONS}], got {partitions}"),
        ));
    }
    validate_topic_configs(configs, cfg.default_replication)
        .map_err(|m| TopicError::new(ResponseError::InvalidConfig, m))?;
    Ok(partitions)
}

impl Broker {
    /// Create a topic (or, with `validate_only`, only check that it could
    /// be created). `partitions: None` uses the node default. Returns the
    /// topic as stored (or as it would be).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: Option<u32>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicMeta, TopicError> {
        let partitions = validate_new_topic(&self.config, name, partitions, &configs)?;
        if self.meta.read(|s| s.topic(name).is_some()) {
            return Err(TopicError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        let topic = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
            created_ms: distlog_metadata::now_ms(),
        };
        if validate_only {
            return Ok(topic);
        }
        let cmd = Command::CreateTopic {
            name: topic.name.clone(),
            id: topic.id,
            partitions,
            configs: topic.configs.clone(),
            created_ms: topic.created_ms,
        };
        self.meta
            .write(cmd)
            .await
            .map_err(|e| TopicError::new(metadata_error(&e), e.to_string()))?;
        tracing::info!(topic = name, partitions, id = %topic.id, "topic created");
        Ok(self.meta.read(|s| s.topic(name).cloned()).unwrap_or(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn new_topic_validation() {
        let cfg = BrokerConfig::default();
        assert_eq!(validate_new_topic(&cfg, "t", None, &map(&[])), Ok(1));
        assert_eq!(validate_new_topic(&cfg, "t", Some(8), &map(&[])), Ok(8));
        let e = validate_new_topic(&cfg, "bad name", None, &map(&[])).expect_err("invalid");
        assert_eq!(e.code, ResponseError::InvalidTopicException);
        let e = validate_new_topic(&cfg, "t", Some(0), &map(&[])).expect_err("zero");
        assert_eq!(e.code, ResponseError::InvalidPartitions);
        let e = validate_new_topic(&cfg, "t", None, &map(&[("x", "1")])).expect_err("config");
        assert_eq!(e.code, ResponseError::InvalidConfig);
    }
}
