//! Hand-built Kafka protocol frames.
//!
//! Clients never send garbage, oversized frames or API versions from the future, so the tests that
//! check the broker's handling of those build the bytes themselves. Only what those tests need is
//! here: framing, an ApiVersions request at any version, a decoder for the v0 ApiVersions
//! response that KIP-511 prescribes for unsupported versions, and OffsetDelete v0 (which the
//! rdkafka crate cannot send). [`Conn`] sends any request the kafka-protocol crate encodes, for
//! tests that need every field under their control.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    list_offsets_request, produce_request, ApiKey, BrokerId, ListOffsetsRequest, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// Kafka's ApiVersions API key.
pub const API_VERSIONS_KEY: i16 = 18;

/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// Encodes an ApiVersions request at `version` with a size prefix.
///
/// Versions 3 and above use request header v2 (client id followed by an empty tagged-field
/// buffer) and a body with the client software name and version as compact strings, as
/// librdkafka sends it. Versions 0-2 use header v1 and an empty body.
pub fn api_versions_request(version: i16, correlation_id: i32, client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&API_VERSIONS_KEY.to_be_bytes());
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    let id_len = i16::try_from(client_id.len()).expect("test client ids are short");
    body.extend_from_slice(&id_len.to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    if version >= 3 {
        body.push(0); // header tagged fields
        for s in ["distlog-compat", "1.0"] {
            body.push(u8::try_from(s.len() + 1).expect("short compact string"));
            body.extend_from_slice(s.as_bytes());
        }
        body.push(0); // body tagged fields
    }
    frame(&body)
}

/// Prefixes `payload` with its 4-byte big-endian length, as every Kafka request is framed.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("test frames are small");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// One entry of an ApiVersions response: an API key and the versions the broker supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The Kafka API key.
    pub api_key: i16,
    /// Lowest supported version.
    pub min_version: i16,
    /// Highest supported version.
    pub max_version: i16,
}

/// A decoded v0 ApiVersions response (the format KIP-511 requires for unsupported versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionsV0Response {
    /// The correlation id echoed from the request.
    pub correlation_id: i32,
    /// The top-level error code.
    pub error_code: i16,
    /// The supported API ranges.
    pub api_keys: Vec<ApiRange>,
}

/// Decodes `payload` (a response frame without its size prefix) as a v0 ApiVersions response:
/// response header v0, error code, then an INT32-counted array of (key, min, max).
///
/// Fails if any byte is left over: the v0 format has no throttle time or tagged fields.
pub fn decode_api_versions_v0(payload: &[u8]) -> anyhow::Result<ApiVersionsV0Response> {
    let mut cur = Cursor { buf: payload, pos: 0 };
    let correlation_id = cur.i32()?;
    let error_code = cur.i16()?;
    let count = cur.i32()?;
    ensure!((0..=1000).contains(&count), "implausible api_keys count {count}");
    let mut api_keys = Vec::new();
    for _ in 0..count {
        api_keys.push(ApiRange {
            api_key: cur.i16()?,
            min_version: cur.i16()?,
            max_version: cur.i16()?,
        });
    }
    ensure!(
        cur.pos == payload.len(),
        "{} unexpected trailing bytes after a v0 ApiVersions response",
        payload.len() - cur.pos
    );
    Ok(ApiVersionsV0Response {
        correlation_id,
        error_code,
        api_keys,
    })
}

/// Kafka's OffsetDelete API key.
pub const OFFSET_DELETE_KEY: i16 = 47;

/// Kafka's GROUP_SUBSCRIBED_TO_TOPIC error code (OffsetDelete of a topic the group consumes).
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// Appends a non-nullable INT16-length string.
fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&i16::try_from(s.len()).expect("short test strings").to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Encodes an OffsetDelete v0 request (request header v1) for `partitions` of `topic` in
/// `group`, with a size prefix. No client sends OffsetDelete on its own (the rdkafka crate has no
/// binding for it), so the tests build it.
pub fn offset_delete_request(
    correlation_id: i32,
    client_id: &str,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&OFFSET_DELETE_KEY.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    put_string(&mut body, client_id);
    put_string(&mut body, group);
    body.extend_from_slice(&1i32.to_be_bytes());
    put_string(&mut body, topic);
    let count = i32::try_from(partitions.len()).expect("few partitions");
    body.extend_from_slice(&count.to_be_bytes());
    for p in partitions {
        body.extend_from_slice(&p.to_be_bytes());
    }
    frame(&body)
}

/// A decoded OffsetDelete v0 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    /// The correlation id echoed from the request.
    pub correlation_id: i32,
    /// The top-level error code.
    pub error_code: i16,
    /// Per partition: (topic, partition, error code).
    pub partitions: Vec<(String, i32, i16)>,
}

/// Decodes `payload` (without its size prefix) as an OffsetDelete v0 response: header v0, error
/// code, throttle time, then topics with their partitions' error codes. Fails on leftover bytes.
pub fn decode_offset_delete_v0(payload: &[u8]) -> anyhow::Result<OffsetDeleteResponse> {
    let mut cur = Cursor { buf: payload, pos: 0 };
    let correlation_id = cur.i32()?;
    let error_code = cur.i16()?;
    let _throttle_ms = cur.i32()?;
    let topics = cur.i32()?;
    ensure!((0..=1000).contains(&topics), "implausible topic count {topics}");
    let mut partitions = Vec::new();
    for _ in 0..topics {
        let name = cur.string()?;
        let count = cur.i32()?;
        ensure!(
            (0..=100_000).contains(&count),
            "implausible partition count {count}"
        );
        for _ in 0..count {
            let partition = cur.i32()?;
            partitions.push((name.clone(), partition, cur.i16()?));
        }
    }
    ensure!(
        cur.pos == payload.len(),
        "{} unexpected trailing bytes after an OffsetDelete v0 response",
        payload.len() - cur.pos
    );
    Ok(OffsetDeleteResponse {
        correlation_id,
        error_code,
        partitions,
    })
}

/// Sends OffsetDelete v0 for `partitions` of `topic` in `group` to the broker at `addr` (which
/// must be the group's coordinator; a single node always is) and decodes the answer.
pub fn offset_delete(
    addr: SocketAddr,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<OffsetDeleteResponse> {
    let mut stream = connect(addr, Duration::from_secs(10))?;
    stream
        .write_all(&offset_delete_request(
            7,
            "distlog-compat",
            group,
            topic,
            partitions,
        ))
        .context("send OffsetDelete")?;
    let response = decode_offset_delete_v0(&read_frame(&mut stream)?)?;
    ensure!(
        response.correlation_id == 7,
        "correlation id {} in the response to 7",
        response.correlation_id
    );
    Ok(response)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> anyhow::Result<[u8; N]> {
        let end = self.pos + N;
        let bytes = self.buf.get(self.pos..end).context("response truncated")?;
        self.pos = end;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }
    fn i16(&mut self) -> anyhow::Result<i16> {
        Ok(i16::from_be_bytes(self.take::<2>()?))
    }
    fn i32(&mut self) -> anyhow::Result<i32> {
        Ok(i32::from_be_bytes(self.take::<4>()?))
    }
    fn string(&mut self) -> anyhow::Result<String> {
        let len = self.i16()?;
        ensure!(len >= 0, "unexpected null string");
        let end = self.pos + len as usize;
        let bytes = self.buf.get(self.pos..end).context("response truncated")?;
        self.pos = end;
        Ok(String::from_utf8(bytes.to_vec())?)
    }
}

/// Connects to a Kafka listener with read/write timeouts set.
pub fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One connection speaking typed requests (encoded with the kafka-protocol crate), one at a time.
pub struct Conn {
    stream: TcpStream,
    client_id: &'static str,
    correlation: i32,
}

impl Conn {
    /// Connects to the Kafka listener at `addr`; requests carry `client_id`.
    pub fn open(addr: SocketAddr, client_id: &'static str) -> anyhow::Result<Conn> {
        Ok(Conn {
            stream: connect(addr, Duration::from_secs(10))?,
            client_id,
            correlation: 0,
        })
    }

    /// Sends `req` as API `key` at `version` and decodes the response, checking the correlation id.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> anyhow::Result<Resp> {
        Ok(self.call_sized(key, version, req)?.0)
    }

    /// [`Conn::call`], also returning the response frame's size as its size prefix gives it (the
    /// bytes after the prefix: response header and body), which is what a client compares with
    /// its receive limit.
    pub fn call_sized<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> anyhow::Result<(Resp, usize)> {
        let correlation = self.send(key, version, req)?;
        self.receive_sized(key, version, correlation)
    }

    /// Sends `req` as API `key` at `version` without reading the response (for pipelining);
    /// returns its correlation id, to pass to [`Conn::receive`] in the same order.
    pub fn send<Req: Encodable>(&mut self, key: ApiKey, version: i16, req: &Req) -> anyhow::Result<i32> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .context("encode request header")?;
        req.encode(&mut buf, version)
            .with_context(|| format!("encode {key:?} v{version} request"))?;
        self.stream
            .write_all(&frame(&buf))
            .with_context(|| format!("send {key:?} request"))?;
        Ok(self.correlation)
    }

    /// Reads and decodes the next response, which must answer the request sent as `correlation`
    /// (API `key` at `version`).
    pub fn receive<Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        correlation: i32,
    ) -> anyhow::Result<Resp> {
        Ok(self.receive_sized(key, version, correlation)?.0)
    }

    /// [`Conn::receive`], also returning the response frame's size (see [`Conn::call_sized`]).
    pub fn receive_sized<Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        correlation: i32,
    ) -> anyhow::Result<(Resp, usize)> {
        let mut payload = Bytes::from(read_frame(&mut self.stream)?);
        let size = payload.len();
        let resp_header = ResponseHeader::decode(&mut payload, key.response_header_version(version))
            .context("decode response header")?;
        ensure!(
            resp_header.correlation_id == correlation,
            "correlation id {} in the response to {}",
            resp_header.correlation_id,
            correlation
        );
        let resp = Resp::decode(&mut payload, version)
            .with_context(|| format!("decode {key:?} v{version} response"))?;
        Ok((resp, size))
    }
}

/// Reads one size-prefixed response frame and returns its payload.
pub fn read_frame(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).context("read response size")?;
    let len = i32::from_be_bytes(len);
    ensure!(
        (0..=16 * 1024 * 1024).contains(&len),
        "implausible response size {len}"
    );
    let mut payload = vec![0u8; usize::try_from(len).context("size is non-negative")?];
    stream.read_exact(&mut payload).context("read response payload")?;
    Ok(payload)
}

/// Sends `bytes` and asserts the broker closes the connection within `deadline`.
///
/// Whatever the broker writes before closing is drained and returned. A write failure because the
/// peer already closed counts as closed. Fails if the connection is still open at the deadline.
pub fn send_and_expect_close(
    stream: &mut TcpStream,
    bytes: &[u8],
    deadline: Duration,
) -> anyhow::Result<Vec<u8>> {
    if let Err(e) = stream.write_all(bytes).and_then(|()| stream.flush()) {
        if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) {
            return Ok(Vec::new());
        }
        return Err(e).context("write to broker");
    }
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                return Ok(received)
            }
            Err(e) => return Err(e).context("read from broker"),
        }
        if started.elapsed() >= deadline {
            bail!(
                "broker kept the connection open for {deadline:?} after the bad input ({} bytes received)",
                received.len()
            );
        }
    }
}

/// A Produce request (acks=all, 10 s timeout) of `records` (encoded record batches) to
/// `partition` of `topic`.
pub fn produce_request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// A ListOffsets request (v1+) for the latest offset (high watermark) of `partition` of `topic`.
pub fn latest_offset_request(topic: &str, partition: i32) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(-1),
            ])])
}

/// Who wrote a hand-built batch: (producer id, epoch, first sequence); `(-1, -1, -1)` for a
/// producer without idempotence.
pub type BatchProducer = (i64, i16, i32);

/// One v2 record batch holding one record (CreateTime `timestamp`, no key, `value`) from
/// `producer`, encoded with its CRC by the kafka-protocol crate.
pub fn one_record_batch(producer: BatchProducer, timestamp: i64, value: Bytes) -> anyhow::Result<Bytes> {
    let (producer_id, producer_epoch, sequence) = producer;
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence,
        timestamp,
        key: None,
        value: Some(value),
        headers: Default::default(),
    };
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &[record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .context("encode record batch")?;
    Ok(batch.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_api_versions_v3_like_librdkafka() {
        let req = api_versions_request(3, 7, "c");
        // size, key 18, version 3, correlation 7, client id "c", tags, "distlog-compat", "1.0", tags
        let expected_len = 2 + 2 + 4 + 2 + 1 + 1 + 15 + 4 + 1;
        assert_eq!(&req[..4], &(expected_len as u32).to_be_bytes());
        assert_eq!(&req[4..8], &[0, 18, 0, 3]);
        assert_eq!(req.len(), 4 + expected_len);
        let v0 = api_versions_request(0, 1, "");
        assert_eq!(v0.len(), 4 + 10);
    }

    #[test]
    fn encodes_offset_delete_and_decodes_its_response() {
        let req = offset_delete_request(7, "c", "g", "t", &[0, 2]);
        let body_len = 2 + 2 + 4 + (2 + 1) + (2 + 1) + 4 + (2 + 1) + 4 + 8;
        assert_eq!(&req[..4], &(body_len as u32).to_be_bytes());
        assert_eq!(&req[4..8], &[0, 47, 0, 0]);
        assert_eq!(req.len(), 4 + body_len);

        let mut p = Vec::new();
        p.extend_from_slice(&7i32.to_be_bytes());
        p.extend_from_slice(&0i16.to_be_bytes());
        p.extend_from_slice(&0i32.to_be_bytes());
        p.extend_from_slice(&1i32.to_be_bytes());
        p.extend_from_slice(&[0, 1, b't']);
        p.extend_from_slice(&1i32.to_be_bytes());
        p.extend_from_slice(&2i32.to_be_bytes());
        p.extend_from_slice(&86i16.to_be_bytes());
        let r = decode_offset_delete_v0(&p).expect("valid");
        assert_eq!(r.partitions, vec![("t".to_string(), 2, 86)]);
        p.push(0);
        assert!(decode_offset_delete_v0(&p).is_err());
    }

    #[test]
    fn decodes_v0_response_and_rejects_trailing_bytes() {
        let mut p = Vec::new();
        p.extend_from_slice(&5i32.to_be_bytes());
        p.extend_from_slice(&35i16.to_be_bytes());
        p.extend_from_slice(&1i32.to_be_bytes());
        p.extend_from_slice(&[0, 18, 0, 0, 0, 3]);
        let r = decode_api_versions_v0(&p).expect("valid");
        assert_eq!(r.correlation_id, 5);
        assert_eq!(r.error_code, 35);
        assert_eq!(
            r.api_keys,
            vec![ApiRange {
                api_key: 18,
                min_version: 0,
                max_version: 3
            }]
        );
        p.push(0);
        assert!(decode_api_versions_v0(&p).is_err());
    }
}
