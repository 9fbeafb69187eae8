//! Named Kafka listeners, as Kafka's `listeners` and `advertised.listeners`.
//!
//! A node may accept Kafka clients on several sockets, each with its own
//! name and its own advertised address: in Docker Compose, containers reach
//! a node as `node1:9092` on the private network while clients on the host
//! reach it as `localhost:19092`. A client is always told the addresses of
//! the listener it connected through (Metadata, FindCoordinator), so it
//! never receives an address it cannot dial. Every listener speaks
//! PLAINTEXT; the name only selects the advertised addresses.
//!
//! Without `--listeners`, the node has one listener named `PLAINTEXT` from
//! `--kafka-listen` and `--advertised-kafka`.

use std::collections::BTreeSet;

use crate::config::split_host_port;
use crate::error::BrokerError;

/// Name of the single listener of a node configured with `--kafka-listen`.
pub const DEFAULT_LISTENER: &str = "PLAINTEXT";

/// One Kafka listener of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaListener {
    /// Listener name (`INTERNAL`, `EXTERNAL`, ...), upper case as in Kafka.
    pub name: String,
    /// Address the socket binds, `HOST:PORT`.
    pub bind: String,
    /// Host advertised to clients that connected through this listener.
    pub advertised_host: String,
    /// Port advertised to clients that connected through this listener.
    pub advertised_port: u16,
}

impl KafkaListener {
    /// A listener advertising `bind` itself (a wildcard host advertises
    /// loopback, since `0.0.0.0` cannot be dialled).
    pub fn from_bind(name: &str, bind: &str, flag: &str) -> Result<KafkaListener, BrokerError> {
        let (host, port) = split_host_port(bind, flag)?;
        let host = match host.as_str() {
            "0.0.0.0" | "::" => "127.0.0.1".to_string(),
            _ => host,
        };
        Ok(KafkaListener {
            name: name.to_string(),
            bind: bind.to_string(),
            advertised_host: host,
            advertised_port: port,
        })
    }

    /// `NAME://HOST:PORT` of the advertised address.
    pub fn advertised_url(&self) -> String {
        format!(
            "{}://{}:{}",
            self.name, self.advertised_host, self.advertised_port
        )
    }

    /// `NAME://HOST:PORT` of the bound address.
    pub fn bind_url(&self) -> String {
        format!("{}://{}", self.name, self.bind)
    }
}

/// Parse `NAME://HOST:PORT,NAME://HOST:PORT` (names unique, made of
/// letters, digits, `_` and `-`, case-insensitive and upper-cased as Kafka
/// does) into (name, `HOST:PORT`) pairs in the order given.
pub fn parse_list(text: &str, flag: &str) -> Result<Vec<(String, String)>, BrokerError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut names = BTreeSet::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| {
            BrokerError::Config(format!(
                "--{flag}: '{item}' {why}; expected NAME://HOST:PORT[,NAME://HOST:PORT...], e.g. \
                 INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:19092"
            ))
        };
        let (name, addr) = item.split_once("://").ok_or_else(|| bad("has no NAME://"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad("has an invalid listener name"));
        }
        let name = name.to_ascii_uppercase();
        split_host_port(addr, flag)?;
        if !names.insert(name.clone()) {
            return Err(bad("repeats a listener name"));
        }
        out.push((name, addr.to_string()));
    }
    if out.is_empty() {
        return Err(BrokerError::Config(format!(
            "--{flag}: name at least one listener, e.g. PLAINTEXT://127.0.0.1:9092"
        )));
    }
    Ok(out)
}

/// The listeners of a node configured with `--listeners` (and optionally
/// `--advertised-listeners`, whose names must all be listeners; a listener
/// without one advertises its bind address). The first listener is the
/// node's primary address (`kafka_listen`), used in logs and as the
/// registration of clients without named listeners.
pub fn resolve(listeners: &str, advertised: Option<&str>) -> Result<Vec<KafkaListener>, BrokerError> {
    let bound = parse_list(listeners, "listeners")?;
    let mut out = Vec::with_capacity(bound.len());
    let mut ports = BTreeSet::new();
    for (name, bind) in &bound {
        let (_, port) = split_host_port(bind, "listeners")?;
        if port != 0 && !ports.insert(port) {
            return Err(BrokerError::Config(format!(
                "--listeners: port {port} is used by two listeners; give each its own port"
            )));
        }
        out.push(KafkaListener::from_bind(name, bind, "listeners")?);
    }
    if let Some(text) = advertised {
        for (name, addr) in parse_list(text, "advertised-listeners")? {
            let Some(l) = out.iter_mut().find(|l| l.name == name) else {
                let known: Vec<&str> = bound.iter().map(|(n, _)| n.as_str()).collect();
                return Err(BrokerError::Config(format!(
                    "--advertised-listeners: {name} is not one of --listeners ({}); advertise only \
                     listeners this node binds",
                    known.join(", ")
                )));
            };
            let (host, port) = split_host_port(&addr, "advertised-listeners")?;
            l.advertised_host = host;
            l.advertised_port = port;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<Vec<KafkaListener>, BrokerError>) -> String {
        match r {
            Err(BrokerError::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn listeners_advertise_their_own_address_unless_told_otherwise() {
        let l = resolve(
            "internal://0.0.0.0:9092,EXTERNAL://0.0.0.0:19092",
            Some("INTERNAL://node1:9092,EXTERNAL://localhost:19093"),
        )
        .unwrap();
        assert_eq!(
            l.iter().map(KafkaListener::advertised_url).collect::<Vec<_>>(),
            ["INTERNAL://node1:9092", "EXTERNAL://localhost:19093"]
        );
        assert_eq!(l[1].bind, "0.0.0.0:19092");
        let l = resolve("A://127.0.0.2:9000,B://0.0.0.0:9001", Some("B://h:1")).unwrap();
        assert_eq!(l[0].advertised_url(), "A://127.0.0.2:9000");
        assert_eq!(l[1].advertised_url(), "B://h:1");
        let l = resolve("A://0.0.0.0:9000", None).unwrap();
        assert_eq!(l[0].advertised_url(), "A://127.0.0.1:9000");
        assert_eq!(l[0].bind_url(), "A://0.0.0.0:9000");
    }

    #[test]
    fn bad_listener_lists_say_what_is_wrong() {
        assert!(err(resolve("127.0.0.1:9092", None)).contains("has no NAME://"));
        assert!(err(resolve("A://x:1,a://y:2", None)).contains("repeats a listener name"));
        assert!(err(resolve("A B://x:1", None)).contains("invalid listener name"));
        assert!(err(resolve("A://x:1,B://y:1", None)).contains("port 1 is used by two listeners"));
        assert!(err(resolve("A://x:1", Some("B://y:2"))).contains("B is not one of --listeners (A)"));
        assert!(err(resolve("A://x", None)).contains("HOST:PORT"));
        assert!(err(resolve(" , ", None)).contains("name at least one listener"));
        assert!(err(resolve("A://x:1", Some(""))).contains("name at least one listener"));
    }
}
