//! DeleteTopics: delete topics by name (v1+) or by topic id (v6). The
//! namespace reacts to the resulting metadata event (closing streams,
//! releasing ledgers); this handler only writes the command.

use distlog_metadata::Command;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::error::metadata_error;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (1, 6);

/// Handle a delete-topics request.
pub async fn handle(broker: &Broker, version: i16, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.as_str().to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.as_str().to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        responses.push(delete_one(broker, name, id).await);
    }
    DeleteTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}

/// One topic's entry in the response; `err` is the refusal, if any.
fn result(name: Option<String>, id: Uuid, err: Option<(ResponseError, String)>) -> DeletableTopicResult {
    let r = DeletableTopicResult::default()
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id);
    match err {
        None => r.with_error_code(0).with_error_message(None),
        Some((e, m)) => r
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(m))),
    }
}

async fn delete_one(broker: &Broker, name: Option<String>, id: Uuid) -> DeletableTopicResult {
    let found = broker.meta.read(|s| match &name {
        Some(n) => s.topic(n).map(|t| (t.name.clone(), t.id)),
        None => s.topic_by_id(&id).map(|t| (t.name.clone(), t.id)),
    });
    let Some((topic, topic_id)) = found else {
        let (code, msg) = match &name {
            Some(n) => (
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{n}' does not exist"),
            ),
            None => (
                ResponseError::UnknownTopicId,
                format!("topic id {id} does not exist"),
            ),
        };
        return result(name, id, Some((code, msg)));
    };
    match broker
        .meta
        .write(Command::DeleteTopic { name: topic.clone() })
        .await
    {
        Ok(_) => {
            tracing::info!(topic = %topic, id = %topic_id, "topic deleted");
            result(Some(topic), topic_id, None)
        }
        Err(e) => result(Some(topic), topic_id, Some((metadata_error(&e), e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    #[test]
    fn responses_encode_at_every_version() {
        for v in VERSIONS.0..=VERSIONS.1 {
            let mut rs = vec![
                result(Some("a".into()), Uuid::new_v4(), None),
                result(
                    Some("b".into()),
                    Uuid::nil(),
                    Some((
                        ResponseError::UnknownTopicOrPartition,
                        "topic 'b' does not exist".into(),
                    )),
                ),
            ];
            if v >= 6 {
                rs.push(result(
                    None,
                    Uuid::new_v4(),
                    Some((ResponseError::UnknownTopicId, "x".into())),
                ));
            }
            let resp = DeleteTopicsResponse::default().with_responses(rs);
            let mut buf = BytesMut::new();
            resp.encode(&mut buf, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
            let back = DeleteTopicsResponse::decode(&mut buf.freeze(), v).expect("decodes");
            assert_eq!(back.responses[0].error_code, 0, "v{v}");
            assert_eq!(back.responses[1].error_code, 3, "v{v}");
            if v >= 6 {
                assert_eq!(back.responses[2].error_code, 100);
                assert_eq!(back.responses[2].name, None);
            }
        }
    }
}
