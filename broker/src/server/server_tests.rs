//! Connection-level tests over an in-memory duplex stream, with test
//! dispatchers in place of the broker's handlers.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::Decodable;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

use super::connection::{serve, Dispatcher, Outcome, RawRequest};
use crate::handlers;

/// Serves ApiVersions with the real code path; admits what the broker admits.
struct ApiVersionsOnly;

impl Dispatcher for ApiVersionsOnly {
    fn accepts(&self, api_key: ApiKey, version: i16) -> bool {
        handlers::admits(api_key, version)
    }
    async fn dispatch(self: Arc<Self>, req: RawRequest) -> Outcome {
        handlers::respond_api_versions(&req)
    }
}

/// Accepts everything. The body's first byte says what to do: 0 = respond
/// after `body[1]` ms, 1 = no response, 2 = close. The response body is the
/// correlation id; completions are logged in order. Its requests have no
/// effects: each releases its turn at once (as a long-poll fetch does), so
/// they run concurrently.
#[derive(Default)]
struct Scripted {
    completed: Mutex<Vec<i32>>,
}

impl Dispatcher for Scripted {
    fn accepts(&self, _: ApiKey, _: i16) -> bool {
        true
    }
    async fn dispatch(self: Arc<Self>, mut req: RawRequest) -> Outcome {
        req.turn.release();
        let cid = req.header.correlation_id;
        let (op, delay) = (
            req.body.first().copied().unwrap_or(0),
            req.body.get(1).copied().unwrap_or(0),
        );
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
        self.completed.lock().push(cid);
        match op {
            0 => {
                let mut b = BytesMut::new();
                b.put_i32(4);
                b.put_i32(cid);
                Outcome::Respond(b.freeze())
            }
            1 => Outcome::NoResponse,
            _ => Outcome::Close("scripted close".into()),
        }
    }
}

fn start<D: Dispatcher>(d: Arc<D>, max: usize) -> (DuplexStream, watch::Sender<bool>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (rd, wr) = tokio::io::split(server);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(serve(rd, wr, d, max, rx, "test".into()));
    (client, tx)
}

/// A request frame with a v1 header (key, version, correlation id, client id).
fn v1_request(key: i16, version: i16, cid: i32, body: &[u8]) -> Vec<u8> {
    let mut p = BytesMut::new();
    p.put_i16(key);
    p.put_i16(version);
    p.put_i32(cid);
    p.put_i16(4);
    p.put_slice(b"test");
    p.put_slice(body);
    let mut f = (p.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&p);
    f
}

/// An ApiVersions request frame at `version` (header v2: flexible).
fn api_versions_request(version: i16, cid: i32, body: &[u8]) -> Vec<u8> {
    let mut p = BytesMut::new();
    p.put_i16(18);
    p.put_i16(version);
    p.put_i32(cid);
    p.put_i16(7);
    p.put_slice(b"rdkafka");
    p.put_u8(0); // header tagged fields
    p.put_slice(body);
    let mut f = (p.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&p);
    f
}

/// Read one response frame, or `None` when the server closed the stream.
async fn read_response(c: &mut DuplexStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut size)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return None,
        Err(_) => panic!("timed out waiting for a response or close"),
    }
    let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
    c.read_exact(&mut buf).await.expect("full frame");
    Some(Bytes::from(buf))
}

#[tokio::test]
async fn api_versions_v3_round_trip() {
    let (mut c, _tx) = start(Arc::new(ApiVersionsOnly), 1 << 20);
    // Body v3: compact strings client_software_name "distlog-test", version "1.0", no tagged fields.
    let mut body = vec![13u8];
    body.extend_from_slice(b"distlog-test");
    body.push(4);
    body.extend_from_slice(b"1.0");
    body.push(0);
    c.write_all(&api_versions_request(3, 42, &body))
        .await
        .expect("write");
    let mut resp = read_response(&mut c).await.expect("a response");
    assert_eq!(resp.get_i32(), 42, "correlation id (response header v0)");
    let r = ApiVersionsResponse::decode(&mut resp, 3).expect("decodes as v3");
    assert_eq!(resp.remaining(), 0);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.throttle_time_ms, 0);
    let ranges: Vec<(i16, i16, i16)> = r
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    let expected: Vec<(i16, i16, i16)> = handlers::SUPPORTED
        .iter()
        .map(|(k, (lo, hi))| (*k as i16, *lo, *hi))
        .collect();
    assert_eq!(ranges, expected);
    assert!(ranges.contains(&(18, 0, 3)));
}

#[tokio::test]
async fn api_versions_too_new_gets_v0_unsupported_version() {
    let (mut c, _tx) = start(Arc::new(ApiVersionsOnly), 1 << 20);
    // A version from the future with a body we cannot know.
    c.write_all(&api_versions_request(99, 5, &[0xde, 0xad, 0xbe, 0xef]))
        .await
        .expect("write");
    let mut resp = read_response(&mut c).await.expect("a response");
    assert_eq!(resp.get_i32(), 5);
    let r = ApiVersionsResponse::decode(&mut resp, 0).expect("decodes as v0");
    assert_eq!(resp.remaining(), 0);
    assert_eq!(r.error_code, 35);
    assert_eq!(r.api_keys.len(), handlers::SUPPORTED.len());
    // The connection stays usable: the client retries at v0 (header v1, empty body).
    c.write_all(&v1_request(18, 0, 6, &[])).await.expect("write");
    let mut resp = read_response(&mut c).await.expect("a response");
    assert_eq!(resp.get_i32(), 6);
    let r = ApiVersionsResponse::decode(&mut resp, 0).expect("decodes as v0");
    assert_eq!(r.error_code, 0);
}

#[tokio::test]
async fn unknown_api_key_closes() {
    let (mut c, _tx) = start(Arc::new(ApiVersionsOnly), 1 << 20);
    c.write_all(&v1_request(12345, 0, 1, &[])).await.expect("write");
    assert!(read_response(&mut c).await.is_none());
}

#[tokio::test]
async fn garbage_header_closes() {
    let (mut c, _tx) = start(Arc::new(ApiVersionsOnly), 1 << 20);
    // Api key Metadata v1, then a client id length pointing past the frame.
    let mut p = vec![0, 3, 0, 1, 0, 0, 0, 9, 0x7f, 0x00];
    let mut f = (p.len() as i32).to_be_bytes().to_vec();
    f.append(&mut p);
    c.write_all(&f).await.expect("write");
    assert!(read_response(&mut c).await.is_none());
    // Too short to hold an api key and version.
    let (mut c, _tx) = start(Arc::new(ApiVersionsOnly), 1 << 20);
    c.write_all(&[0, 0, 0, 2, 0, 18]).await.expect("write");
    assert!(read_response(&mut c).await.is_none());
}

#[tokio::test]
async fn unsupported_version_of_known_api_closes() {
    let (mut c, _tx) = start(Arc::new(ApiVersionsOnly), 1 << 20);
    c.write_all(&v1_request(ApiKey::Metadata as i16, 50, 1, &[]))
        .await
        .expect("write");
    assert!(read_response(&mut c).await.is_none());
}

#[tokio::test]
async fn undecodable_api_versions_body_closes() {
    let (mut c, _tx) = start(Arc::new(ApiVersionsOnly), 1 << 20);
    // v3 body whose compact string length runs past the frame.
    c.write_all(&api_versions_request(3, 1, &[50, b'x']))
        .await
        .expect("write");
    assert!(read_response(&mut c).await.is_none());
}

#[tokio::test]
async fn oversized_and_negative_frames_close() {
    let (mut c, _tx) = start(Arc::new(Scripted::default()), 1024);
    c.write_all(&5000i32.to_be_bytes()).await.expect("write");
    assert!(read_response(&mut c).await.is_none());
    let (mut c, _tx) = start(Arc::new(Scripted::default()), 1024);
    c.write_all(&(-7i32).to_be_bytes()).await.expect("write");
    assert!(read_response(&mut c).await.is_none());
}

#[tokio::test]
async fn pipelined_responses_keep_request_order() {
    let d = Arc::new(Scripted::default());
    let (mut c, _tx) = start(d.clone(), 1 << 20);
    let mut all = Vec::new();
    all.extend(v1_request(3, 1, 1, &[0, 200])); // slow
    all.extend(v1_request(3, 1, 2, &[0, 0])); // fast
    all.extend(v1_request(3, 1, 3, &[1, 0])); // no response (acks=0)
    all.extend(v1_request(3, 1, 4, &[0, 20]));
    c.write_all(&all).await.expect("write");
    let mut got = Vec::new();
    for _ in 0..3 {
        let mut r = read_response(&mut c).await.expect("response");
        got.push(r.get_i32());
    }
    assert_eq!(got, vec![1, 2, 4]);
    let completed = d.completed.lock().clone();
    assert_eq!(completed.len(), 4);
    assert_eq!(
        completed.last(),
        Some(&1),
        "the slow request finished last: handled concurrently"
    );
}

#[tokio::test]
async fn handler_close_writes_earlier_responses_then_closes() {
    let (mut c, _tx) = start(Arc::new(Scripted::default()), 1 << 20);
    let mut all = Vec::new();
    all.extend(v1_request(3, 1, 1, &[0, 10]));
    all.extend(v1_request(3, 1, 2, &[2, 0]));
    all.extend(v1_request(3, 1, 3, &[0, 0]));
    c.write_all(&all).await.expect("write");
    let mut r = read_response(&mut c).await.expect("first response");
    assert_eq!(r.get_i32(), 1);
    assert!(read_response(&mut c).await.is_none());
}

#[tokio::test]
async fn shutdown_stops_reading_but_answers_in_flight() {
    let (mut c, tx) = start(Arc::new(Scripted::default()), 1 << 20);
    c.write_all(&v1_request(3, 1, 9, &[0, 100])).await.expect("write");
    tokio::time::sleep(Duration::from_millis(20)).await;
    tx.send(true).expect("send");
    let mut r = read_response(&mut c).await.expect("in-flight response");
    assert_eq!(r.get_i32(), 9);
    assert!(read_response(&mut c).await.is_none());
}

#[tokio::test]
async fn tcp_listener_serves_and_drains_on_shutdown() {
    use super::listener;
    let l = listener::bind("127.0.0.1:0", "kafka-listen").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let err = listener::bind(&addr.to_string(), "kafka-listen")
        .await
        .expect_err("port in use");
    assert!(err.to_string().contains("--kafka-listen"), "{err}");

    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(listener::run(
        l,
        Arc::new(ApiVersionsOnly),
        1 << 20,
        rx,
        Duration::from_secs(2),
    ));
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    assert!(s.nodelay().is_ok());
    s.write_all(&v1_request(18, 2, 77, &[])).await.expect("write");
    let mut size = [0u8; 4];
    s.read_exact(&mut size).await.expect("size");
    let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut buf).await.expect("body");
    let mut resp = Bytes::from(buf);
    assert_eq!(resp.get_i32(), 77);
    let r = ApiVersionsResponse::decode(&mut resp, 2).expect("v2");
    assert_eq!(r.error_code, 0);

    tx.send(true).expect("send");
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("listener stops")
        .expect("join");
    let mut rest = Vec::new();
    let n = s.read_to_end(&mut rest).await.unwrap_or(0);
    assert_eq!(n, 0, "connection closed after shutdown");
}

#[tokio::test]
async fn produce_turns_queue_in_request_order_even_when_tasks_run_out_of_order() {
    use super::connection::TurnChain;
    use std::sync::Mutex;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut chain = TurnChain::default();
    let mut turns = Vec::new();
    for i in 0..5 {
        let (turn, forward) = chain.next(true);
        tokio::spawn(forward);
        turns.push((i, turn));
    }
    // Start the tasks in reverse request order; the later ones must wait.
    let mut handles = Vec::new();
    for (i, mut turn) in turns.into_iter().rev() {
        let order = order.clone();
        handles.push(tokio::spawn(async move {
            turn.wait().await;
            order.lock().unwrap().push(i);
            if i == 2 {
                drop(turn); // an error path: dropping passes the turn too
            } else {
                turn.queued();
                // Queued is enough for the next produce: the turn is held
                // (not applied) while this one awaits its acknowledgement.
                tokio::time::sleep(Duration::from_millis(20)).await;
                turn.release();
            }
        }));
        tokio::task::yield_now().await;
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

/// Requests after a produce wait until its effects are applied; produces
/// after any other request wait until it applied its effects; signals of a
/// request never overtake those of an earlier one.
#[tokio::test]
async fn turns_order_effects_across_request_kinds() {
    use super::connection::TurnChain;
    use std::sync::Mutex;
    let log = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let mut chain = TurnChain::default();
    // 0: produce, 1: produce, 2: a read (e.g. ListOffsets), 3: produce.
    let kinds = [true, true, false, true];
    let mut turns = Vec::new();
    for after_queued in kinds {
        let (turn, forward) = chain.next(after_queued);
        tokio::spawn(forward);
        turns.push(turn);
    }
    let mut it = turns.into_iter();
    let (mut p0, mut p1, mut read, mut p3) = (
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
    );
    let l = log.clone();
    let read_task = tokio::spawn(async move {
        read.wait().await;
        l.lock().unwrap().push("read starts");
        tokio::time::sleep(Duration::from_millis(30)).await;
        l.lock().unwrap().push("read applied");
        read.release();
    });
    let l = log.clone();
    let p3_task = tokio::spawn(async move {
        p3.wait().await;
        l.lock().unwrap().push("p3 queues");
        p3.release();
    });
    let l = log.clone();
    let p1_task = tokio::spawn(async move {
        p1.wait().await;
        l.lock().unwrap().push("p1 queues");
        p1.queued();
        tokio::time::sleep(Duration::from_millis(30)).await;
        l.lock().unwrap().push("p1 acked");
        p1.release();
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(log.lock().unwrap().is_empty(), "nothing starts before p0 queues");
    p0.wait().await;
    log.lock().unwrap().push("p0 queues");
    p0.queued();
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.lock().unwrap().push("p0 acked");
    p0.release();
    for t in [p1_task, read_task, p3_task] {
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("no deadlock")
            .unwrap();
    }
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            "p0 queues",
            "p1 queues",
            "p0 acked",
            "p1 acked",
            "read starts",
            "read applied",
            "p3 queues"
        ]
    );
}
