//! A small Kafka client connection: one TCP stream to one broker, the
//! ApiVersions handshake, and typed request/response round trips with the
//! `kafka-protocol` crate's messages.
//!
//! Each request is sent at the highest version both sides support: the
//! broker's range from its ApiVersions answer intersected with the range
//! this client implements ([`client_versions`]). An API the broker does not
//! list is refused before anything is sent ([`AdminError::Unsupported`]),
//! naming the API, so a command against an older broker says exactly what
//! is missing. Requests are strictly one at a time per connection; the
//! correlation id of each answer is checked.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::{AdminError, Result};

/// The client id every request carries (it shows in the broker's logs and
/// in `groups describe` for members; admin requests never join a group).
pub const CLIENT_ID: &str = "distlog-admin";

/// The largest answer accepted (a broker never sends more to an admin
/// request; a larger size prefix means a corrupt stream).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// The versions of each API this client implements: the request fields it
/// fills and the answer fields it reads are correct over the whole range.
pub fn client_versions(api: ApiKey) -> Option<(i16, i16)> {
    Some(match api {
        ApiKey::ApiVersions => (0, 3),
        ApiKey::Metadata => (1, 12),
        ApiKey::CreateTopics => (2, 7),
        ApiKey::DeleteTopics => (1, 6),
        ApiKey::DescribeConfigs => (1, 4),
        ApiKey::IncrementalAlterConfigs => (0, 1),
        ApiKey::CreatePartitions => (0, 3),
        ApiKey::DeleteRecords => (0, 2),
        ApiKey::DescribeLogDirs => (1, 4),
        ApiKey::DescribeCluster => (0, 1),
        ApiKey::ListGroups => (0, 4),
        ApiKey::DescribeGroups => (0, 5),
        ApiKey::DeleteGroups => (0, 2),
        ApiKey::FindCoordinator => (1, 6),
        ApiKey::OffsetFetch => (2, 9),
        ApiKey::OffsetCommit => (2, 9),
        ApiKey::ListOffsets => (1, 7),
        _ => return None,
    })
}

/// The highest version in both ranges, if they overlap.
pub fn negotiate(client: (i16, i16), broker: (i16, i16)) -> Option<i16> {
    let lo = client.0.max(broker.0);
    let hi = client.1.min(broker.1);
    (lo <= hi).then_some(hi)
}

/// The API's name as Kafka spells it (`IncrementalAlterConfigs`).
pub fn api_name(api: ApiKey) -> String {
    format!("{api:?}")
}

/// One connection to one broker, after the ApiVersions handshake.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    stream: TcpStream,
    next_correlation_id: i32,
    broker_versions: HashMap<i16, (i16, i16)>,
    timeout: Duration,
}

impl Connection {
    /// Connects to `addr` (`HOST:PORT`) and asks for its API versions.
    /// `flag` names where the address came from, for the error message.
    pub async fn connect(addr: &str, timeout: Duration, flag: &str) -> Result<Connection> {
        let connect_error = |reason: String| AdminError::Connect {
            addr: addr.to_string(),
            reason,
            flag: flag.to_string(),
        };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(connect_error(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )))
            }
            Ok(Err(e)) => return Err(connect_error(io_reason(&e))),
            Ok(Ok(s)) => s,
        };
        // Request/response round trips: Nagle would only add latency.
        let _ = stream.set_nodelay(true);
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            next_correlation_id: 1,
            broker_versions: HashMap::new(),
            timeout,
        };
        conn.handshake().await?;
        Ok(conn)
    }

    /// The address this connection dialled.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// ApiVersions v3 (KIP-511), falling back to v0 when the broker
    /// answers UNSUPPORTED_VERSION (it then answers in v0's format).
    async fn handshake(&mut self) -> Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let answer: ApiVersionsResponse = match self.round_trip(ApiKey::ApiVersions, 3, &request).await {
            Ok(a) => a,
            // A broker without v3 answers a v0 body, which need not decode as v3.
            Err(AdminError::Protocol { .. }) => self.round_trip(ApiKey::ApiVersions, 0, &request).await?,
            Err(e) => return Err(e),
        };
        let answer = if answer.error_code == ResponseError::UnsupportedVersion.code() {
            self.round_trip(ApiKey::ApiVersions, 0, &request).await?
        } else {
            answer
        };
        if answer.error_code != 0 {
            return Err(AdminError::kafka(
                format!("ApiVersions at {}", self.addr),
                answer.error_code,
                None,
            ));
        }
        self.broker_versions = answer
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The version `api` would be sent at, or why it cannot be sent.
    pub fn version_for(&self, api: ApiKey) -> Result<i16> {
        let name = api_name(api);
        let client = client_versions(api).ok_or_else(|| AdminError::Protocol {
            addr: self.addr.clone(),
            api: name.clone(),
            reason: "this client does not implement the API".to_string(),
        })?;
        let broker = *self
            .broker_versions
            .get(&(api as i16))
            .ok_or_else(|| AdminError::Unsupported {
                addr: self.addr.clone(),
                api: name.clone(),
            })?;
        negotiate(client, broker).ok_or(AdminError::NoCommonVersion {
            addr: self.addr.clone(),
            api: name,
            broker_min: broker.0,
            broker_max: broker.1,
            client_min: client.0,
            client_max: client.1,
        })
    }

    /// Whether the broker serves `api` at all.
    pub fn supports(&self, api: ApiKey) -> bool {
        self.broker_versions.contains_key(&(api as i16))
    }

    /// Sends `request` at the negotiated version and returns that version
    /// (the caller reads version-dependent fields by it) and the answer.
    pub async fn send<R: Request>(&mut self, request: &R) -> Result<(i16, R::Response)> {
        let api = ApiKey::try_from(R::KEY).map_err(|()| AdminError::Protocol {
            addr: self.addr.clone(),
            api: format!("API key {}", R::KEY),
            reason: "unknown API key".to_string(),
        })?;
        let version = self.version_for(api)?;
        let answer = self.round_trip(api, version, request).await?;
        Ok((version, answer))
    }

    /// Writes one request frame and reads its answer, under the timeout.
    async fn round_trip<Q: Encodable, A: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Q,
    ) -> Result<A> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame =
            encode_request(api, version, correlation_id, request).map_err(|reason| AdminError::Encode {
                api: api_name(api),
                version,
                reason,
            })?;
        let timeout = self.timeout;
        let body = match tokio::time::timeout(timeout, self.exchange(&frame)).await {
            Err(_) => {
                return Err(AdminError::Timeout {
                    addr: self.addr.clone(),
                    api: api_name(api),
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })
            }
            Ok(Err(e)) => {
                return Err(AdminError::Io {
                    addr: self.addr.clone(),
                    api: api_name(api),
                    reason: io_reason(&e),
                })
            }
            Ok(Ok(body)) => body,
        };
        decode_response(api, version, correlation_id, body).map_err(|reason| AdminError::Protocol {
            addr: self.addr.clone(),
            api: api_name(api),
            reason,
        })
    }

    async fn exchange(&mut self, frame: &[u8]) -> std::io::Result<Bytes> {
        self.stream.write_all(frame).await?;
        let size = self.stream.read_i32().await?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad frame size {size}"))
            })?;
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body).await?;
        Ok(Bytes::from(body))
    }
}

/// A size-prefixed request frame: header (at the API's header version)
/// and body.
pub fn encode_request<Q: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Q,
) -> std::result::Result<Vec<u8>, String> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api.request_header_version(version))
        .map_err(|e| format!("cannot encode the request header: {e}"))?;
    request
        .encode(&mut buf, version)
        .map_err(|e| format!("cannot encode the v{version} request: {e}"))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| "request too large".to_string())?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.to_vec())
}

/// Decodes an answer body (after the size prefix), checking its
/// correlation id and that nothing is left over.
pub fn decode_response<A: Decodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    mut body: Bytes,
) -> std::result::Result<A, String> {
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
        .map_err(|e| format!("bad response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "correlation id {} answers a request other than {correlation_id}",
            header.correlation_id
        ));
    }
    let answer = A::decode(&mut body, version).map_err(|e| format!("bad v{version} body: {e}"))?;
    if body.has_remaining() {
        return Err(format!(
            "{} bytes left after the v{version} body",
            body.remaining()
        ));
    }
    Ok(answer)
}

/// An I/O error as an operator reads it ("connection refused").
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::ConnectionReset => "connection reset by the broker".to_string(),
        std::io::ErrorKind::UnexpectedEof => "the broker closed the connection".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

    use super::*;

    #[test]
    fn picks_the_highest_common_version() {
        assert_eq!(negotiate((1, 12), (0, 9)), Some(9));
        assert_eq!(negotiate((1, 4), (2, 7)), Some(4));
        assert_eq!(negotiate((0, 1), (2, 3)), None);
        assert_eq!(negotiate((2, 2), (2, 2)), Some(2));
    }

    #[test]
    fn every_client_range_is_within_the_crates_message_versions() {
        for api in [
            ApiKey::Metadata,
            ApiKey::CreateTopics,
            ApiKey::DeleteTopics,
            ApiKey::DescribeConfigs,
            ApiKey::IncrementalAlterConfigs,
            ApiKey::CreatePartitions,
            ApiKey::DeleteRecords,
            ApiKey::DescribeLogDirs,
            ApiKey::DescribeCluster,
            ApiKey::ListGroups,
            ApiKey::DescribeGroups,
            ApiKey::DeleteGroups,
            ApiKey::FindCoordinator,
            ApiKey::OffsetFetch,
            ApiKey::OffsetCommit,
            ApiKey::ListOffsets,
        ] {
            let (lo, hi) = client_versions(api).expect("implemented");
            let crate_range = api.valid_versions();
            assert!(lo >= crate_range.min && hi <= crate_range.max, "{api:?}");
        }
    }

    #[test]
    fn frames_carry_size_header_and_client_id() {
        let frame = encode_request(ApiKey::Metadata, 12, 7, &MetadataRequest::default()).expect("encodes");
        let size = i32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
        assert_eq!(usize::try_from(size).expect("positive"), frame.len() - 4);
        assert_eq!(&frame[4..6], &3i16.to_be_bytes()); // api key
        assert_eq!(&frame[6..8], &12i16.to_be_bytes()); // version
        assert_eq!(&frame[8..12], &7i32.to_be_bytes()); // correlation id
        assert_eq!(&frame[12..14], &13i16.to_be_bytes()); // client id length
        assert_eq!(&frame[14..27], CLIENT_ID.as_bytes());
    }

    #[test]
    fn a_mismatched_correlation_id_is_refused() {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(9)
            .encode(&mut buf, 1)
            .expect("header");
        MetadataResponse::default().encode(&mut buf, 12).expect("body");
        let err =
            decode_response::<MetadataResponse>(ApiKey::Metadata, 12, 8, buf.freeze()).expect_err("mismatch");
        assert!(err.contains("correlation id 9"), "{err}");
    }
}
