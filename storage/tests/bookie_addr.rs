//! Bookies named by host name: the name is resolved at each connect, so a
//! bookie is found under its name, and one whose name does not resolve
//! (its container is gone) fails as an unreachable bookie, quickly.

use std::sync::Arc;
use std::time::Duration;

use distlog_metadata::NodeId;
use distlog_storage::bookie::{Bookie, BookieConfig, LocalBookie};
use distlog_storage::bookie_net::{BookieAddr, BookieServer, ClientConfig, RemoteBookie, ServerConfig};
use distlog_storage::ledger::BookieClient;
use distlog_storage::StorageError;

#[tokio::test]
async fn a_bookie_is_reached_by_name_and_an_unresolvable_name_is_an_unreachable_bookie() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = BookieConfig {
        dir: dir.path().to_path_buf(),
        bookie_id: NodeId::new(4),
    };
    let bookie = tokio::task::spawn_blocking(move || Bookie::open(config))
        .await
        .expect("open task")
        .expect("bookie opens");
    let server = BookieServer::bind(
        "127.0.0.1:0",
        Arc::new(LocalBookie(bookie.clone())),
        ServerConfig::default(),
    )
    .await
    .expect("server binds");
    let port = server.local_addr().port();
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };

    assert_eq!(
        BookieAddr::parse(&format!("127.0.0.1:{port}")),
        BookieAddr::Socket(server.local_addr())
    );
    let by_name = RemoteBookie::new(
        NodeId::new(4),
        BookieAddr::parse(&format!("localhost:{port}")),
        config.clone(),
    );
    assert_eq!(by_name.addr().to_string(), format!("localhost:{port}"));
    // The bookie itself answers: the ledger does not exist there.
    match by_name.fence(77).await {
        Err(StorageError::NoSuchLedger(77)) | Ok(None) => {}
        other => panic!("expected the bookie's own answer for ledger 77, got {other:?}"),
    }

    let gone = RemoteBookie::new(
        NodeId::new(5),
        BookieAddr::parse("no-such-bookie.invalid:3181"),
        config,
    );
    let started = std::time::Instant::now();
    match gone.fence(77).await {
        Err(e @ StorageError::Io { .. }) => {
            assert!(e.to_string().contains("no-such-bookie.invalid:3181"), "{e}");
        }
        other => panic!("expected an unreachable-bookie error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded by the connect timeout"
    );

    server.shutdown().await;
    tokio::task::spawn_blocking(move || bookie.shutdown())
        .await
        .expect("bookie shutdown");
}
