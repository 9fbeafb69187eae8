//! The membership half of the group protocol: JoinGroup, SyncGroup,
//! Heartbeat and LeaveGroup, translated between the wire and the
//! [`crate::group::GroupCoordinator`].

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::group::member::JoinRequest;
use crate::server::connection::Turn;
use crate::Broker;

/// JoinGroup versions served (v4+: KIP-394 member id required; v5+:
/// static membership; v7+: protocol type and name; v9: skip assignment).
pub const JOIN_VERSIONS: (i16, i16) = (0, 9);
/// SyncGroup versions served (v5+: protocol type and name checked).
pub const SYNC_VERSIONS: (i16, i16) = (0, 5);
/// Heartbeat versions served.
pub const HEARTBEAT_VERSIONS: (i16, i16) = (0, 4);
/// LeaveGroup versions served (v3+: batched member leave).
pub const LEAVE_VERSIONS: (i16, i16) = (0, 5);

fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

fn opt_str(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// Handle a JoinGroup. `client_id` and `client_host` come from the request
/// header and the connection. The connection's `turn` is released once the
/// join is registered with the group, before the rebalance is awaited.
pub async fn join(
    broker: &Broker,
    version: i16,
    req: JoinGroupRequest,
    client_id: &str,
    client_host: &str,
    mut turn: Turn,
) -> JoinGroupResponse {
    let session_ms = req.session_timeout_ms;
    // v0 has no rebalance timeout: it is the session timeout.
    let rebalance_ms = if version == 0 {
        session_ms
    } else {
        req.rebalance_timeout_ms
    };
    let group_id = req.group_id.0.to_string();
    let result = if session_ms < 0 || rebalance_ms < 0 {
        crate::group::member::JoinResult::error(&req.member_id, ResponseError::InvalidSessionTimeout)
    } else {
        let join = JoinRequest {
            member_id: req.member_id.to_string(),
            instance_id: if version >= 5 {
                opt_str(&req.group_instance_id)
            } else {
                None
            },
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
            session_timeout: Duration::from_millis(session_ms as u64),
            rebalance_timeout: Duration::from_millis(rebalance_ms as u64),
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            require_known_member_id: version >= 4,
        };
        broker.groups.join(&group_id, join, || turn.release()).await
    };
    let mut resp = JoinGroupResponse::default()
        .with_error_code(code(result.error))
        .with_generation_id(result.generation)
        .with_protocol_name(result.protocol.map(StrBytes::from_string))
        .with_leader(StrBytes::from_string(result.leader))
        .with_member_id(StrBytes::from_string(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_group_instance_id(instance.filter(|_| version >= 5).map(StrBytes::from_string))
                        .with_metadata(metadata)
                })
                .collect(),
        );
    if version >= 7 {
        resp.protocol_type = result.protocol_type.map(StrBytes::from_string);
    }
    if version >= 9 {
        resp.skip_assignment = result.skip_assignment;
    }
    if version < 7 && resp.protocol_name.is_none() {
        // Before v7 the protocol name is not nullable.
        resp.protocol_name = Some(StrBytes::default());
    }
    resp
}

/// Handle a SyncGroup. The connection's `turn` is released once the sync is
/// registered with the group, before the leader's assignment is awaited.
pub async fn sync(broker: &Broker, version: i16, req: SyncGroupRequest, mut turn: Turn) -> SyncGroupResponse {
    let instance = if version >= 3 {
        opt_str(&req.group_instance_id)
    } else {
        None
    };
    let (protocol_type, protocol) = if version >= 5 {
        (opt_str(&req.protocol_type), opt_str(&req.protocol_name))
    } else {
        (None, None)
    };
    let result = broker
        .groups
        .sync(
            || turn.release(),
            &req.group_id.0,
            &req.member_id,
            instance.as_deref(),
            req.generation_id,
            protocol_type.as_deref(),
            protocol.as_deref(),
            req.assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect(),
        )
        .await;
    let mut resp = SyncGroupResponse::default()
        .with_error_code(code(result.error))
        .with_assignment(result.assignment);
    if version >= 5 {
        resp.protocol_type = result.protocol_type.map(StrBytes::from_string);
        resp.protocol_name = result.protocol.map(StrBytes::from_string);
    }
    resp
}

/// Handle a Heartbeat.
pub async fn heartbeat(broker: &Broker, version: i16, req: HeartbeatRequest) -> HeartbeatResponse {
    let instance = if version >= 3 {
        opt_str(&req.group_instance_id)
    } else {
        None
    };
    let error = broker.groups.heartbeat(
        &req.group_id.0,
        &req.member_id,
        instance.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code(error))
}

/// Handle a LeaveGroup (v0–2: one member; v3+: a batch, answered per member).
pub async fn leave(broker: &Broker, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt_str(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match broker.groups.leave(&req.group_id.0, &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(results)
                .map(|((member, instance), error)| {
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(member))
                        .with_group_instance_id(instance.map(StrBytes::from_string))
                        .with_error_code(code(error))
                })
                .collect(),
        ),
        Ok(results) => {
            LeaveGroupResponse::default().with_error_code(code(results.into_iter().next().flatten()))
        }
    }
}
