//! The bookie network service over real TCP on 127.0.0.1: a real `Bookie`
//! (journal + fsync) in a temp directory served by `BookieServer`, reached
//! through `RemoteBookie`. Every wait has a deadline.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distlog_metadata::NodeId;
use distlog_storage::bookie::{Bookie, BookieConfig, LocalBookie};
use distlog_storage::bookie_net::{BookieServer, ClientConfig, RemoteBookie, ServerConfig};
use distlog_storage::ledger::handle::{Ensemble, LedgerWriter};
use distlog_storage::ledger::{AddRequest, BookieClient, Entry, IndexRow};
use distlog_storage::StorageError;
use futures::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Deadline for anything that should be quick on loopback.
const DEADLINE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {DEADLINE:?}"))
}

/// A bookie in a temp dir served on a loopback port.
struct Node {
    dir: tempfile::TempDir,
    id: NodeId,
    bookie: Option<Arc<Bookie>>,
    server: Option<BookieServer>,
    addr: SocketAddr,
}

async fn open_bookie(dir: &Path, id: NodeId) -> Arc<Bookie> {
    let config = BookieConfig {
        dir: dir.to_path_buf(),
        bookie_id: id,
    };
    tokio::task::spawn_blocking(move || Bookie::open(config))
        .await
        .expect("open task")
        .expect("bookie opens")
}

impl Node {
    async fn start(id: u32) -> Node {
        Node::start_with(id, ServerConfig::default()).await
    }

    async fn start_with(id: u32, config: ServerConfig) -> Node {
        let id = NodeId::from(id);
        let dir = tempfile::tempdir().expect("tempdir");
        let bookie = open_bookie(dir.path(), id).await;
        let server = BookieServer::bind("127.0.0.1:0", Arc::new(LocalBookie(bookie.clone())), config)
            .await
            .expect("server binds");
        let addr = server.local_addr();
        Node {
            dir,
            id,
            bookie: Some(bookie),
            server: Some(server),
            addr,
        }
    }

    /// Stop the server (closing its connections) and the bookie.
    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            within("server shutdown", server.shutdown()).await;
        }
        if let Some(bookie) = self.bookie.take() {
            tokio::task::spawn_blocking(move || {
                bookie.shutdown();
                drop(bookie);
            })
            .await
            .expect("bookie shutdown");
        }
    }

    /// Reopen the bookie on the same directory and serve it on the same port.
    async fn restart(&mut self) {
        self.stop().await;
        let bookie = open_bookie(self.dir.path(), self.id).await;
        let server = BookieServer::bind(
            self.addr,
            Arc::new(LocalBookie(bookie.clone())),
            ServerConfig::default(),
        )
        .await
        .expect("server binds the same port again");
        self.bookie = Some(bookie);
        self.server = Some(server);
    }

    fn client(&self) -> RemoteBookie {
        RemoteBookie::new(self.id, self.addr, client_config())
    }
}

fn client_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

fn payload_of(entry: u64, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u64 * 31 + entry * 7) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// Entry `e` of a test ledger: first_seq 10*e, 10 records, txid 100+e.
fn add_req(ledger: u64, e: u64, lac: Option<u64>, chunks: Vec<Bytes>) -> AddRequest {
    let len: usize = chunks.iter().map(Bytes::len).sum();
    AddRequest {
        ledger_id: ledger,
        row: row(e, len),
        prev_entry_id: e.checked_sub(1),
        lac,
        recovery: false,
        payload: chunks,
    }
}

fn row(e: u64, len: usize) -> IndexRow {
    IndexRow {
        entry_id: e,
        first_seq: 10 * e,
        record_count: 10,
        txid: 100 + e,
        len: len as u32,
    }
}

#[tokio::test]
async fn add_and_read_round_trip_exact_bytes() {
    let mut node = Node::start(1).await;
    let client = node.client();
    let big = payload_of(2, 1 << 20);
    let sent: Vec<Vec<Bytes>> = vec![
        vec![Bytes::from_static(b"hello "), Bytes::from_static(b"world")],
        vec![],
        vec![big.slice(..300_000), big.slice(300_000..)],
        vec![payload_of(3, 4096)],
    ];
    for (e, chunks) in sent.iter().enumerate() {
        let e = e as u64;
        within(
            "add",
            client.add_entry(add_req(5, e, e.checked_sub(1), chunks.clone())),
        )
        .await
        .expect("add succeeds");
    }
    let expected: Vec<Entry> = sent
        .iter()
        .enumerate()
        .map(|(e, chunks)| {
            let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            Entry {
                row: row(e as u64, joined.len()),
                payload: Bytes::from(joined),
            }
        })
        .collect();
    let got = within("read", client.read_entries(5, 0, 10, usize::MAX))
        .await
        .expect("read");
    assert_eq!(got, expected);
    // A byte budget stops the read after the entry that reaches it.
    let got = within("read", client.read_entries(5, 1, 3, 100))
        .await
        .expect("read");
    assert_eq!(got, expected[1..2].to_vec());

    let c = &client;
    assert_eq!(c.entry_for_seq(5, 25).await.expect("seq"), Some(row(2, 1 << 20)));
    assert_eq!(c.entry_for_txid(5, 103).await.expect("txid"), Some(row(3, 4096)));
    assert_eq!(c.entry_for_txid(5, 104).await.expect("txid"), None);
    assert_eq!(c.last_entry(5).await.expect("last"), Some(row(3, 4096)));
    assert_eq!(
        c.read_entries(6, 0, 10, 1024).await.expect("unknown ledger"),
        vec![]
    );
    assert_eq!(c.last_entry(6).await.expect("unknown ledger"), None);

    // Out-of-order adds come back as the bookie's own error, with the
    // bookie's last entry and the add's previous entry.
    match c.add_entry(add_req(5, 9, None, vec![])).await {
        Err(StorageError::OutOfOrder {
            ledger: 5,
            last: Some(3),
            prev: Some(8),
        }) => {}
        other => panic!("expected OutOfOrder, got {other:?}"),
    }
    c.delete(5).await.expect("delete");
    assert_eq!(c.last_entry(5).await.expect("deleted"), None);
    node.stop().await;
}

#[tokio::test]
async fn a_thousand_pipelined_adds_are_confirmed_in_order() {
    // Small budgets on both sides so backpressure is exercised too.
    let mut node = Node::start_with(
        2,
        ServerConfig {
            max_in_flight_requests: 16,
            max_in_flight_bytes: 64 << 10,
            ..ServerConfig::default()
        },
    )
    .await;
    let client = RemoteBookie::new(
        node.id,
        node.addr,
        ClientConfig {
            max_in_flight_requests: 32,
            max_in_flight_bytes: 128 << 10,
            ..client_config()
        },
    );
    // Every add is enqueued before any is awaited.
    let futures: Vec<_> = (0..1000u64)
        .map(|e| {
            client.add_entry(add_req(
                1,
                e,
                e.checked_sub(1),
                vec![payload_of(e, 100 + (e as usize % 900))],
            ))
        })
        .collect();
    let results = within("1000 adds", join_all(futures)).await;
    for (e, r) in results.into_iter().enumerate() {
        r.unwrap_or_else(|err| panic!("add {e} failed: {err}"));
    }
    let mut read = Vec::new();
    while (read.len() as u64) < 1000 {
        let next = read.len() as u64;
        let batch = within("read", client.read_entries(1, next, 999, 1 << 20))
            .await
            .expect("read");
        assert!(!batch.is_empty(), "entries {next}.. missing");
        read.extend(batch);
    }
    for (e, entry) in read.iter().enumerate() {
        let e = e as u64;
        let len = 100 + (e as usize % 900);
        assert_eq!(entry.row, row(e, len));
        assert_eq!(entry.payload, payload_of(e, len));
    }
    let stats = node.bookie.as_ref().expect("running").stats();
    assert_eq!(stats.entries_added, 1000);
    node.stop().await;
}

#[tokio::test]
async fn fencing_through_the_network_fails_the_next_add() {
    let mut node = Node::start(3).await;
    let writer = node.client();
    let recoverer = node.client();
    for e in 0..3 {
        writer
            .add_entry(add_req(8, e, None, vec![payload_of(e, 10)]))
            .await
            .expect("add");
    }
    let last = within("fence", recoverer.fence(8)).await.expect("fence");
    assert_eq!(last, Some(row(2, 10)));
    match within(
        "add after fence",
        writer.add_entry(add_req(8, 3, Some(2), vec![payload_of(3, 10)])),
    )
    .await
    {
        Err(StorageError::Fenced(8)) => {}
        other => panic!("expected Fenced(8), got {other:?}"),
    }
    // Entries before the fence stay readable.
    assert_eq!(writer.last_entry(8).await.expect("last"), Some(row(2, 10)));
    node.stop().await;
}

#[tokio::test]
async fn read_lac_long_poll_wakes_on_a_later_add_and_times_out_otherwise() {
    let mut node = Node::start(4).await;
    let writer = node.client();
    let reader = Arc::new(node.client());
    for e in 0..3 {
        writer
            .add_entry(add_req(2, e, e.checked_sub(1), vec![payload_of(e, 8)]))
            .await
            .expect("add");
    }
    assert_eq!(
        reader.read_lac(2, None, Duration::ZERO).await.expect("lac"),
        Some(1)
    );

    // Nothing newer arrives: answers with the current value after the wait.
    let started = Instant::now();
    let lac = within(
        "idle long poll",
        reader.read_lac(2, Some(1), Duration::from_millis(300)),
    )
    .await
    .expect("lac");
    let waited = started.elapsed();
    assert_eq!(lac, Some(1));
    assert!(
        waited >= Duration::from_millis(300),
        "returned early after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "took {waited:?}");

    // A later add carrying LAC 2 wakes a waiting reader.
    let poll = {
        let reader = reader.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let lac = reader.read_lac(2, Some(1), Duration::from_secs(15)).await;
            (lac, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    writer
        .add_entry(add_req(2, 3, Some(2), vec![payload_of(3, 8)]))
        .await
        .expect("add");
    let (lac, waited) = within("woken long poll", poll).await.expect("task");
    assert_eq!(lac.expect("lac"), Some(2));
    assert!(waited < Duration::from_secs(5), "not woken promptly: {waited:?}");
    node.stop().await;
}

#[tokio::test]
async fn client_reconnects_after_a_server_restart() {
    let mut node = Node::start(5).await;
    let client = node.client();
    for e in 0..5 {
        client
            .add_entry(add_req(4, e, None, vec![payload_of(e, 64)]))
            .await
            .expect("add");
    }
    assert!(client.is_connected());
    node.stop().await;

    // The client notices the closed connection.
    let started = Instant::now();
    while client.is_connected() {
        assert!(
            started.elapsed() < DEADLINE,
            "client never noticed the closed connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // While the bookie is down, calls fail fast with a connection error.
    match within("call while down", client.last_entry(4)).await {
        Err(StorageError::Io { path, source }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused, "{source}");
            assert_eq!(path, format!("bookie 5 at {}", node.addr));
        }
        other => panic!("expected a connection error, got {other:?}"),
    }

    node.restart().await;
    // Acknowledged entries survived; the next call reconnects on its own.
    assert_eq!(
        within("last", client.last_entry(4)).await.expect("reconnects"),
        Some(row(4, 64))
    );
    client
        .add_entry(add_req(4, 5, Some(4), vec![payload_of(5, 64)]))
        .await
        .expect("add after restart");
    let all = client.read_entries(4, 0, 10, usize::MAX).await.expect("read");
    assert_eq!(all.len(), 6);
    assert_eq!(all[5].payload, payload_of(5, 64));
    node.stop().await;
}

#[tokio::test]
async fn in_flight_requests_fail_with_a_connection_error_when_the_server_goes_away() {
    let mut node = Node::start(6).await;
    let client = node.client();
    client.add_entry(add_req(1, 0, None, vec![])).await.expect("add");
    // A long poll is in flight when the server shuts down.
    let poll = client.read_lac(1, Some(100), Duration::from_secs(30));
    let stop = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        node.stop().await;
    };
    let (result, ()) = within("poll fails", async { tokio::join!(poll, stop) }).await;
    match result {
        Err(StorageError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionAborted, "{source}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test]
async fn undecodable_frames_close_only_that_connection() {
    let mut node = Node::start(7).await;
    let good = node.client();
    good.add_entry(add_req(1, 0, None, vec![])).await.expect("add");
    let hostile: [&[u8]; 3] = [
        // Announces a 4 GiB frame.
        &[0xff, 0xff, 0xff, 0xff, 0, 0, 0],
        // A well-sized frame with an unknown op code.
        &[0, 0, 0, 9, 0xee, 0, 0, 0, 0, 0, 0, 0, 1],
        // A Fence request with a byte missing.
        &[0, 0, 0, 16, 6, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    ];
    for bytes in hostile {
        let mut s = within("connect", tokio::net::TcpStream::connect(node.addr))
            .await
            .expect("connect");
        s.write_all(bytes).await.expect("write");
        let mut buf = [0u8; 64];
        // The server closes the connection without answering.
        let n = within("server closes", s.read(&mut buf)).await.unwrap_or(0);
        assert_eq!(n, 0, "server answered a bad frame");
    }
    // Other connections are unaffected.
    assert_eq!(good.last_entry(1).await.expect("still served"), Some(row(0, 0)));
    node.stop().await;
}

#[tokio::test]
async fn ensemble_of_three_remote_bookies_survives_one_loss_and_fails_on_two() {
    let mut nodes = Vec::new();
    for id in 11..14 {
        nodes.push(Node::start(id).await);
    }
    let clients: Vec<Arc<RemoteBookie>> = nodes.iter().map(|n| Arc::new(n.client())).collect();
    let bookies: Vec<Arc<dyn BookieClient>> = clients
        .iter()
        .map(|c| c.clone() as Arc<dyn BookieClient>)
        .collect();
    let ensemble = Ensemble::new(bookies, 3, 2).expect("3/3/2 is valid");
    let ledger = 42;
    let mut writer = LedgerWriter::new(ledger, ensemble);

    // 500 pipelined entries, confirmed in order.
    let mut pending = Vec::new();
    for e in 0..500u64 {
        let (id, fut) = writer.add(10 * e, 10, 100 + e, vec![payload_of(e, 256)]);
        assert_eq!(id, e);
        pending.push(fut);
    }
    for (e, fut) in pending.into_iter().enumerate() {
        within("quorum add", fut)
            .await
            .unwrap_or_else(|err| panic!("entry {e}: {err}"));
        writer.confirm(e as u64);
    }
    // Every entry is on at least Qa = 2 bookies (with Qw = 3, on all three
    // once every add has been answered).
    let mut copies = [0usize; 500];
    for c in &clients {
        let mut next = 0u64;
        loop {
            let batch = within("read", c.read_entries(ledger, next, 499, 1 << 20))
                .await
                .expect("read");
            if batch.is_empty() {
                break;
            }
            for entry in &batch {
                assert_eq!(entry.payload, payload_of(entry.row.entry_id, 256));
                copies[entry.row.entry_id as usize] += 1;
            }
            next = batch.last().expect("non-empty").row.entry_id + 1;
        }
    }
    for (e, n) in copies.iter().enumerate() {
        assert!(*n >= 2, "entry {e} on only {n} bookies");
    }

    // One bookie down: Qa = 2 is still reachable.
    nodes[0].stop().await;
    for e in 500..520u64 {
        let (_, fut) = writer.add(10 * e, 10, 100 + e, vec![payload_of(e, 256)]);
        within("add with one bookie down", fut)
            .await
            .unwrap_or_else(|err| panic!("entry {e} with one bookie down: {err}"));
        writer.confirm(e);
    }
    for c in &clients[1..] {
        assert_eq!(c.last_entry(ledger).await.expect("last"), Some(row(519, 256)));
    }

    // Two down: the add fails (a refused connection fails at once; a
    // silent bookie would fail after ClientConfig::request_timeout).
    nodes[1].stop().await;
    let (_, fut) = writer.add(5200, 10, 620, vec![payload_of(520, 256)]);
    let started = Instant::now();
    // The quorum loss is the retriable NotEnoughBookies, naming each bookie's failure.
    match within("add with two bookies down", fut).await {
        Err(StorageError::NotEnoughBookies(msg)) => {
            assert!(
                msg.contains("entry 520 cannot reach the ack quorum of 2: 2 bookies of its write set failed"),
                "{msg}"
            );
            assert_eq!(msg.matches("I/O error on bookie").count(), 2, "{msg}");
        }
        other => panic!("expected NotEnoughBookies, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failure took {:?}",
        started.elapsed()
    );
    nodes[2].stop().await;
}

#[tokio::test]
async fn a_bookie_that_never_answers_times_out_and_the_connection_is_closed() {
    // Accepts and reads, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            held.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            }));
        }
    });
    let client = RemoteBookie::new(
        NodeId::new(9),
        addr,
        ClientConfig {
            request_timeout: Duration::from_millis(300),
            ..client_config()
        },
    );
    let started = Instant::now();
    let add = client.add_entry(add_req(1, 0, None, vec![payload_of(0, 10)]));
    let second = client.add_entry(add_req(1, 1, Some(0), vec![payload_of(1, 10)]));
    match within("silent bookie", add).await {
        Err(StorageError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::TimedOut, "{source}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "timed out early: {waited:?}"
    );
    // The other request in flight fails with it, and the connection is closed.
    assert!(within("second add", second).await.is_err());
    assert!(!client.is_connected());
    silent.abort();
}

/// Issue two 500 ms long polls and then a quick lookup on one connection;
/// returns how long the lookup took.
async fn lookup_behind_two_polls(client: &RemoteBookie) -> Duration {
    let started = Instant::now();
    let poll_a = client.read_lac(77, Some(0), Duration::from_millis(500));
    let poll_b = client.read_lac(78, Some(0), Duration::from_millis(500));
    let lookup = async {
        let r = client.last_entry(1).await;
        (r, started.elapsed())
    };
    let (a, b, (r, took)) = within("polls and lookup", async { tokio::join!(poll_a, poll_b, lookup) }).await;
    assert_eq!(a.expect("poll"), None);
    assert_eq!(b.expect("poll"), None);
    assert_eq!(r.expect("lookup"), Some(row(0, 0)));
    took
}

#[tokio::test]
async fn in_flight_limits_hold_requests_back_on_both_sides() {
    // Server side: two requests in flight per connection at most, so the
    // lookup is not even read until a poll has been answered.
    let mut node = Node::start_with(
        21,
        ServerConfig {
            max_in_flight_requests: 2,
            ..ServerConfig::default()
        },
    )
    .await;
    let client = node.client();
    client.add_entry(add_req(1, 0, None, vec![])).await.expect("add");
    let took = lookup_behind_two_polls(&client).await;
    assert!(
        took >= Duration::from_millis(450),
        "server read past its limit: {took:?}"
    );
    node.stop().await;

    // Client side: the same with a roomy server and a client that keeps at
    // most two requests in flight.
    let mut node = Node::start(22).await;
    let client = RemoteBookie::new(
        node.id,
        node.addr,
        ClientConfig {
            max_in_flight_requests: 2,
            ..client_config()
        },
    );
    client.add_entry(add_req(1, 0, None, vec![])).await.expect("add");
    let took = lookup_behind_two_polls(&client).await;
    assert!(
        took >= Duration::from_millis(450),
        "client wrote past its limit: {took:?}"
    );
    // Without limits the lookup does not wait for the polls.
    let roomy = node.client();
    let took = lookup_behind_two_polls(&roomy).await;
    assert!(
        took < Duration::from_millis(450),
        "lookup waited {took:?} with no limit in the way"
    );
    node.stop().await;
}
