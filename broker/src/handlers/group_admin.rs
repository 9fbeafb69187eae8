//! Finding and administering groups: FindCoordinator, ListGroups,
//! DescribeGroups and DeleteGroups.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::kafka_broker_id;
use crate::group::state::GroupState;
use crate::listeners::KafkaListener;
use crate::Broker;

/// FindCoordinator versions served (v4+: batched keys).
pub const FIND_COORDINATOR_VERSIONS: (i16, i16) = (0, 6);
/// ListGroups versions served (v4+: state filter; v5+: type filter).
pub const LIST_VERSIONS: (i16, i16) = (0, 5);
/// DescribeGroups versions served (v6: unknown groups are GROUP_ID_NOT_FOUND).
pub const DESCRIBE_VERSIONS: (i16, i16) = (0, 6);
/// DeleteGroups versions served.
pub const DELETE_VERSIONS: (i16, i16) = (0, 2);

/// FindCoordinator key type of consumer groups.
const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator key type of transactional ids.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The coordinator of one key: (node id, host, port on `listener`) or an
/// error with a message.
fn find(
    broker: &Broker,
    key: &str,
    key_type: i8,
    listener: &KafkaListener,
) -> Result<(i32, String, i32), (ResponseError, String)> {
    // Transaction state is replicated to every node, so any broker could
    // coordinate a transactional id; clients still want one name, and the
    // group placement spreads them the same way.
    let what = match key_type {
        KEY_TYPE_GROUP => "group id",
        KEY_TYPE_TRANSACTION => "transactional id",
        other => {
            return Err((
                ResponseError::InvalidRequest,
                format!("coordinator key type {other} is not supported"),
            ))
        }
    };
    if key.is_empty() {
        return Err((ResponseError::InvalidRequest, format!("the {what} is empty")));
    }
    let node = broker.config.node_id;
    match broker.groups.coordinator_for(key) {
        Some(b) if b.id != node => match b.kafka_addr(&listener.name) {
            Some((host, port)) => Ok((kafka_broker_id(b.id).0, host.to_string(), port as i32)),
            None => Err((
                ResponseError::CoordinatorNotAvailable,
                format!(
                    "the coordinator, broker {}, has no listener named {}; give every broker the same \
                     --listeners names",
                    b.id, listener.name
                ),
            )),
        },
        _ => Ok((
            kafka_broker_id(node).0,
            listener.advertised_host.clone(),
            listener.advertised_port as i32,
        )),
    }
}

/// Handle a FindCoordinator (v0–3: one key; v4+: a batch) that arrived
/// through `listener`: coordinators are named by their address on it.
pub async fn find_coordinator(
    broker: &Broker,
    version: i16,
    req: FindCoordinatorRequest,
    listener: &KafkaListener,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match find(broker, key, req.key_type, listener) {
                    Ok((id, host, port)) => c
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port),
                    Err((e, msg)) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(e.code())
                        .with_error_message(Some(StrBytes::from_string(msg))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let key_type = if version >= 1 {
        req.key_type
    } else {
        KEY_TYPE_GROUP
    };
    let mut resp = FindCoordinatorResponse::default();
    match find(broker, &req.key, key_type, listener) {
        Ok((id, host, port)) => {
            resp.node_id = BrokerId(id);
            resp.host = StrBytes::from_string(host);
            resp.port = port;
        }
        Err((e, msg)) => {
            resp.node_id = BrokerId(-1);
            resp.port = -1;
            resp.error_code = e.code();
            if version >= 1 {
                resp.error_message = Some(StrBytes::from_string(msg));
            }
        }
    }
    resp
}

/// Handle a ListGroups, with the v4 state and v5 type filters.
pub async fn list(broker: &Broker, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|g| {
            let mut out = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type));
            if version >= 4 {
                out.group_state = StrBytes::from_static_str(g.state.name());
            }
            if version >= 5 {
                out.group_type = StrBytes::from_static_str("classic");
            }
            out
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// Handle a DescribeGroups. An unknown group is reported Dead (v0–5) or
/// GROUP_ID_NOT_FOUND (v6), as Kafka does.
pub async fn describe(broker: &Broker, version: i16, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|group_id| {
            let mut out = DescribedGroup::default().with_group_id(group_id.clone());
            if let Some(e) = broker.groups.check_group(&group_id) {
                out.error_code = e.code();
                return out;
            }
            match broker.groups.describe(&group_id) {
                None => {
                    out.group_state = StrBytes::from_static_str(GroupState::Dead.name());
                    if version >= 6 {
                        out.error_code = ResponseError::GroupIdNotFound.code();
                        out.error_message =
                            Some(StrBytes::from_string(format!("group {} not found", &*group_id)));
                    }
                }
                Some(g) => {
                    out.group_state = StrBytes::from_static_str(g.state.name());
                    out.protocol_type = StrBytes::from_string(g.protocol_type);
                    out.protocol_data = StrBytes::from_string(g.protocol);
                    out.members = g
                        .members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_group_instance_id(
                                    m.instance_id.filter(|_| version >= 4).map(StrBytes::from_string),
                                )
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect();
                }
            }
            out
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// Handle a DeleteGroups.
pub async fn delete(broker: &Broker, _version: i16, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group_id in req.groups_names {
        let error = broker.groups.delete(&group_id).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(error.map_or(0, |e| e.code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
