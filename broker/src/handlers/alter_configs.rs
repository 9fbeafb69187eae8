//! AlterConfigs (v0–2) and IncrementalAlterConfigs (v0–1): topic config
//! overrides and dynamic broker configs.
//!
//! As in Kafka, AlterConfigs replaces a resource's whole set of values
//! (keys it does not name are removed) and IncrementalAlterConfigs edits it
//! (SET, DELETE, APPEND and SUBTRACT, the last two on list configs only).
//! Each resource succeeds or fails as a whole; `validate_only` checks
//! without storing.
//!
//! - TOPIC (2): validated by the table of [`crate::topic_config`]
//!   (INVALID_CONFIG naming the config and the reason), then the topic must
//!   exist (UNKNOWN_TOPIC_OR_PARTITION), stored with `AlterTopicConfigs`.
//! - BROKER (4), "" (cluster-wide) or this broker's id: only the dynamic
//!   broker configs of [`crate::broker_config`]; anything else is
//!   INVALID_REQUEST, as Kafka answers for broker configs (KAFKA-13609),
//!   and so is another broker's id (clients send a broker's resource to
//!   that broker). Stored with `AlterBrokerConfigs`.
//!
//! A stored change applies at once: storage recomputes the settings of the
//! open streams concerned, and produce reads `max.message.bytes` for each
//! request. Read-modify-write of one resource is serialised on this broker;
//! two brokers editing the same resource at the same instant may lose one
//! of the edits (the last write wins).

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use crate::broker_config::validate_broker_configs;
use crate::error::metadata_error;
use crate::handlers::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::metrics;
use crate::topic_config::{self, replication, validate_topic_configs};
use crate::Broker;

/// AlterConfigs versions implemented (advertised in ApiVersions).
pub const ALTER_VERSIONS: (i16, i16) = (0, 2);
/// IncrementalAlterConfigs versions implemented (advertised in ApiVersions).
pub const INCREMENTAL_VERSIONS: (i16, i16) = (0, 1);

/// Kafka's resource type of broker log levels (KIP-412), which distlog
/// does not serve.
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

/// One edit of IncrementalAlterConfigs (Kafka's `AlterConfigOp.OpType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// 0: set the value.
    Set(String),
    /// 1: remove the value (back to the default).
    Delete,
    /// 2: add list items not yet present.
    Append(String),
    /// 3: remove list items.
    Subtract(String),
}

impl Op {
    /// The op of a request entry; the error is Kafka's message.
    pub fn decode(code: i8, value: Option<&str>) -> Result<Op, String> {
        let v = || value.map(str::to_string);
        match (code, v()) {
            (1, _) => Ok(Op::Delete),
            (0 | 2 | 3, None) => Err("Null value not supported".into()),
            (0, Some(v)) => Ok(Op::Set(v)),
            (2, Some(v)) => Ok(Op::Append(v)),
            (3, Some(v)) => Ok(Op::Subtract(v)),
            (other, _) => Err(format!("Unknown operations type {other}")),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Op::Set(_) => "SET",
            Op::Delete => "DELETE",
            Op::Append(_) => "APPEND",
            Op::Subtract(_) => "SUBTRACT",
        }
    }
}

/// What a request asks of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// AlterConfigs: exactly these values.
    Replace(BTreeMap<String, String>),
    /// IncrementalAlterConfigs: these edits, in order.
    Edit(Vec<(String, Op)>),
}

/// A resource's failure: the Kafka error and its message.
pub type Refusal = (ResponseError, String);

/// How a resource kind reads list configs for APPEND/SUBTRACT: `Some(default)`
/// for a list config (its value when unset), `None` for any other.
pub type ListDefault<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Change {
    /// The resource's new set of values from its `current` one.
    /// APPEND/SUBTRACT on a config that is not a list is INVALID_CONFIG,
    /// as in Kafka; an unset list starts from its default.
    pub fn apply(
        &self,
        current: &BTreeMap<String, String>,
        list: ListDefault<'_>,
    ) -> Result<BTreeMap<String, String>, Refusal> {
        let edits = match self {
            Change::Replace(values) => return Ok(values.clone()),
            Change::Edit(edits) => edits,
        };
        let mut next = current.clone();
        for (name, op) in edits {
            match op {
                Op::Set(v) => {
                    next.insert(name.clone(), v.clone());
                }
                Op::Delete => {
                    next.remove(name);
                }
                Op::Append(v) | Op::Subtract(v) => {
                    let Some(default) = list(name) else {
                        return Err((
                            ResponseError::InvalidConfig,
                            format!("Can't {} to key {name} because its type is not LIST.", op.name()),
                        ));
                    };
                    let base = next.get(name).cloned().unwrap_or(default);
                    let mut items: Vec<String> = split(&base);
                    for item in split(v) {
                        match op {
                            Op::Append(_) if !items.contains(&item) => items.push(item),
                            Op::Subtract(_) => items.retain(|i| *i != item),
                            _ => {}
                        }
                    }
                    next.insert(name.clone(), items.join(","));
                }
            }
        }
        Ok(next)
    }
}

fn split(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// One resource of either request, as decoded and checked for the
/// request-level mistakes Kafka refuses before looking at values.
struct Resource {
    ty: i8,
    name: StrBytes,
    change: Result<Change, Refusal>,
}

/// Serialises read-modify-write of config sets on this broker.
static ALTER_LOCK: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Handle an AlterConfigs request.
pub async fn alter(broker: &Broker, _version: i16, req: AlterConfigsRequest) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let resources = req
        .resources
        .into_iter()
        .map(|r| {
            let keys: Vec<&str> = r.configs.iter().map(|c| c.name.as_str()).collect();
            let change = no_duplicates(&keys).and_then(|()| {
                let nulls: Vec<&str> = r
                    .configs
                    .iter()
                    .filter(|c| c.value.is_none())
                    .map(|c| c.name.as_str())
                    .collect();
                if !nulls.is_empty() {
                    return Err(null_values(&nulls));
                }
                Ok(Change::Replace(
                    r.configs
                        .iter()
                        .map(|c| {
                            let v = c.value.as_ref().map_or("", |v| v.as_str());
                            (c.name.to_string(), v.to_string())
                        })
                        .collect(),
                ))
            });
            Resource {
                ty: r.resource_type,
                name: r.resource_name,
                change,
            }
        })
        .collect();
    let responses = run(broker, resources, req.validate_only)
        .await
        .into_iter()
        .map(|(ty, name, res)| {
            let (code, msg) = outcome(res);
            AlterConfigsResourceResponse::default()
                .with_resource_type(ty)
                .with_resource_name(name)
                .with_error_code(code)
                .with_error_message(msg)
        })
        .collect();
    AlterConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}

/// Handle an IncrementalAlterConfigs request.
pub async fn incremental(
    broker: &Broker,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let resources = req
        .resources
        .into_iter()
        .map(|r| {
            let keys: Vec<&str> = r.configs.iter().map(|c| c.name.as_str()).collect();
            let change = no_duplicates(&keys).and_then(|()| {
                let nulls: Vec<&str> = r
                    .configs
                    .iter()
                    .filter(|c| c.config_operation != 1 && c.value.is_none())
                    .map(|c| c.name.as_str())
                    .collect();
                if !nulls.is_empty() {
                    return Err(null_values(&nulls));
                }
                r.configs
                    .iter()
                    .map(|c| {
                        Op::decode(c.config_operation, c.value.as_deref())
                            .map(|op| (c.name.to_string(), op))
                            .map_err(|m| (ResponseError::InvalidRequest, m))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Change::Edit)
            });
            Resource {
                ty: r.resource_type,
                name: r.resource_name,
                change,
            }
        })
        .collect();
    let responses = run(broker, resources, req.validate_only)
        .await
        .into_iter()
        .map(|(ty, name, res)| {
            let (code, msg) = outcome(res);
            AlterConfigsResourceResponse::default()
                .with_resource_type(ty)
                .with_resource_name(name)
                .with_error_code(code)
                .with_error_message(msg)
        })
        .collect();
    IncrementalAlterConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}

fn no_duplicates(keys: &[&str]) -> Result<(), Refusal> {
    let mut seen = HashSet::new();
    match keys.iter().all(|k| seen.insert(*k)) {
        true => Ok(()),
        false => Err((
            ResponseError::InvalidRequest,
            "Error due to duplicate config keys".into(),
        )),
    }
}

fn null_values(names: &[&str]) -> Refusal {
    (
        ResponseError::InvalidRequest,
        format!("Null value not supported for : {}", names.join(", ")),
    )
}

fn outcome(res: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match res {
        Ok(()) => (0, None),
        Err((e, m)) => (e.code(), Some(StrBytes::from_string(m))),
    }
}

/// Apply each resource's change in request order; a resource named twice
/// is refused both times (INVALID_REQUEST), as Kafka does.
async fn run(
    broker: &Broker,
    resources: Vec<Resource>,
    validate_only: bool,
) -> Vec<(i8, StrBytes, Result<(), Refusal>)> {
    let mut count: BTreeMap<(i8, String), usize> = BTreeMap::new();
    for r in &resources {
        *count.entry((r.ty, r.name.to_string())).or_default() += 1;
    }
    let mut out = Vec::with_capacity(resources.len());
    for r in resources {
        let res = if count[&(r.ty, r.name.to_string())] > 1 {
            Err((
                ResponseError::InvalidRequest,
                "Each resource must appear at most once.".to_string(),
            ))
        } else {
            match r.change {
                Ok(change) => alter_resource(broker, r.ty, r.name.as_str(), &change, validate_only).await,
                Err(e) => Err(e),
            }
        };
        let kind = match r.ty {
            RESOURCE_TOPIC => "topic",
            RESOURCE_BROKER => "broker",
            _ => "other",
        };
        let label = match &res {
            Ok(()) if validate_only => "validated".to_string(),
            Ok(()) => "applied".to_string(),
            Err((e, _)) => format!("{e:?}"),
        };
        metrics::CONFIG_ALTERATIONS
            .with_label_values(&[kind, &label])
            .inc();
        out.push((r.ty, r.name, res));
    }
    out
}

/// Validate and (unless `validate_only`) store one resource's change.
async fn alter_resource(
    broker: &Broker,
    ty: i8,
    name: &str,
    change: &Change,
    validate_only: bool,
) -> Result<(), Refusal> {
    let _serial = ALTER_LOCK.lock().await;
    match ty {
        RESOURCE_TOPIC => {
            if name.is_empty() {
                return Err((
                    ResponseError::InvalidRequest,
                    "Default topic resources are not allowed.".into(),
                ));
            }
            let current = broker.meta.read(|s| s.topic(name).map(|t| t.configs.clone()));
            let next = change.apply(current.as_ref().unwrap_or(&BTreeMap::new()), &topic_list_default)?;
            let defaults = broker.config.default_replication;
            validate_topic_configs(&next, defaults).map_err(|m| (ResponseError::InvalidConfig, m))?;
            let empty = BTreeMap::new();
            if let Some(name) = fixed_config_changed(current.as_ref().unwrap_or(&empty), &next) {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("config '{name}' cannot be changed on an existing topic"),
                ));
            }
            // A larger ensemble must be placeable, as CreateTopics checks (an unchanged one is
            // not re-checked: a bookie being down must not block other config changes).
            let ensemble = |c: &BTreeMap<String, String>| usize::from(replication(c, defaults).ensemble);
            let was = current.as_ref().map_or(0, ensemble);
            if ensemble(&next) > was {
                let now = distlog_metadata::now_ms();
                let live = match broker.config.is_cluster() {
                    true => broker.meta.read(|s| s.live_bookies(now).count()),
                    // A single node always has its own bookie, registered or not.
                    false => 1,
                };
                if ensemble(&next) > live {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!(
                            "distlog.ensemble.size {} needs {} live bookies; this cluster has {live}",
                            ensemble(&next),
                            ensemble(&next)
                        ),
                    ));
                }
            }
            if current.is_none() {
                return Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic '{name}' does not exist"),
                ));
            }
            if validate_only {
                return Ok(());
            }
            broker
                .meta
                .alter_topic_configs(name, next.clone())
                .await
                .map_err(|e| (metadata_error(&e), e.to_string()))?;
            info!(topic = name, configs = ?next, "topic configs altered");
            Ok(())
        }
        RESOURCE_BROKER => {
            let me = broker.config.node_id;
            let scope = match name {
                "" => None,
                n => {
                    let id: i32 = n.parse().map_err(|_| {
                        (
                            ResponseError::InvalidRequest,
                            format!("Node id must be an integer, but it is: {n}"),
                        )
                    })?;
                    if i64::from(id) != i64::try_from(me.get()).unwrap_or(-1) {
                        return Err((
                            ResponseError::InvalidRequest,
                            format!("Unexpected broker id, expected {me}, but received {n}"),
                        ));
                    }
                    Some(me)
                }
            };
            let current = broker
                .meta
                .read(|s| s.broker_configs.of(scope).cloned().unwrap_or_default());
            let next = change.apply(&current, &|_| None)?;
            validate_broker_configs(&next).map_err(|m| (ResponseError::InvalidRequest, m))?;
            if validate_only {
                return Ok(());
            }
            broker
                .meta
                .alter_broker_configs(scope, next.clone())
                .await
                .map_err(|e| (metadata_error(&e), e.to_string()))?;
            info!(broker = ?scope.map(|b| b.get()), configs = ?next, "dynamic broker configs altered");
            Ok(())
        }
        RESOURCE_BROKER_LOGGER => Err((
            ResponseError::InvalidRequest,
            "BROKER_LOGGER resources are not supported: set log levels with --log-level or RUST_LOG".into(),
        )),
        other => Err((
            ResponseError::InvalidRequest,
            format!("Unknown resource type {other}"),
        )),
    }
}

/// The first topic config that is not [`topic_config::TopicConfigKey::dynamic`]
/// whose value differs between `current` and `next`, if any.
fn fixed_config_changed(
    current: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
) -> Option<&'static str> {
    topic_config::TOPIC_CONFIGS
        .iter()
        .filter(|k| !k.dynamic)
        .find(|k| current.get(k.name) != next.get(k.name))
        .map(|k| k.name)
}

/// The value of an unset topic list config (APPEND/SUBTRACT start from
/// it); `None` for a config that is not a list or is unknown.
fn topic_list_default(name: &str) -> Option<String> {
    topic_config::key(name)
        .filter(|k| k.is_list())
        .and_then(|k| match k.default {
            topic_config::DefaultValue::Fixed(v) => Some(v.to_string()),
            _ => None,
        })
}

#[cfg(test)]
#[path = "alter_configs_tests.rs"]
mod tests;
