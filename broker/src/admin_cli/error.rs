//! The admin CLI's errors. Every message names what failed and ends with
//! what to do next (which flag to check, which command lists the valid
//! names, whether retrying helps), because the operator reading it has
//! nothing else to go on.

use kafka_protocol::error::ResponseError;

/// Why a `distlog admin` command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A TCP connection could not be opened.
    #[error("cannot reach {addr}: {reason} — is a broker running there? ({flag})")]
    Connect {
        /// The address dialled.
        addr: String,
        /// The OS error, or "timed out".
        reason: String,
        /// The flag that gave the address (`--bootstrap`, `--http`, or the
        /// broker's advertised address from Metadata).
        flag: String,
    },
    /// A request got no answer in time.
    #[error(
        "{addr} did not answer {api} within {timeout_ms} ms — is the broker overloaded or stuck? \
         retry, or raise --timeout-ms"
    )]
    Timeout {
        /// The broker's address.
        addr: String,
        /// The request (API name).
        api: String,
        /// The timeout in force.
        timeout_ms: u64,
    },
    /// The connection broke mid-request.
    #[error("the connection to {addr} failed during {api}: {reason} — retry; if it persists, check the broker's log")]
    Io {
        /// The broker's address.
        addr: String,
        /// The request (API name).
        api: String,
        /// The OS error.
        reason: String,
    },
    /// The broker answered something that does not decode.
    #[error(
        "cannot decode the {api} answer from {addr}: {reason} — the broker sent a malformed \
         response; report it together with the broker's version"
    )]
    Protocol {
        /// The broker's address.
        addr: String,
        /// The request (API name).
        api: String,
        /// What was wrong.
        reason: String,
    },
    /// A request could not be encoded at the negotiated version (a field
    /// set that the version lacks): a bug in this client.
    #[error("cannot encode the {api} v{version} request: {reason} — this is a bug in distlog admin; please report it")]
    Encode {
        /// The request (API name).
        api: String,
        /// The negotiated version.
        version: i16,
        /// The encoder's complaint.
        reason: String,
    },
    /// ApiVersions says the broker does not serve this API at all.
    #[error(
        "the broker at {addr} does not support {api} (its ApiVersions answer lacks it) — \
         upgrade the broker to a version that serves {api}"
    )]
    Unsupported {
        /// The broker's address.
        addr: String,
        /// The missing API.
        api: String,
    },
    /// The broker serves the API, but no version this client speaks.
    #[error(
        "the broker at {addr} serves {api} v{broker_min}–v{broker_max} but this client speaks \
         v{client_min}–v{client_max} — use a distlog admin CLI that matches the broker's version"
    )]
    NoCommonVersion {
        /// The broker's address.
        addr: String,
        /// The API.
        api: String,
        /// The broker's lowest version.
        broker_min: i16,
        /// The broker's highest version.
        broker_max: i16,
        /// This client's lowest version.
        client_min: i16,
        /// This client's highest version.
        client_max: i16,
    },
    /// The broker refused the request with a Kafka error code.
    #[error("{what}: {code}{message} — {hint}")]
    Kafka {
        /// What was being done ("create topic 'orders'").
        what: String,
        /// Kafka's name of the error (`TOPIC_ALREADY_EXISTS`).
        code: String,
        /// The broker's error message, with a leading ": ", or empty.
        message: String,
        /// What to do next.
        hint: String,
    },
    /// A command-line value is invalid (clap checks the shape; this is
    /// what clap cannot check).
    #[error("invalid {arg}: {reason}")]
    Usage {
        /// The argument (`--to-datetime`).
        arg: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The HTTP admin API refused or failed.
    #[error("{url} answered HTTP {status}: {message} — {hint}")]
    Http {
        /// The URL asked.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The body's `error` field, or the body.
        message: String,
        /// What to do next.
        hint: String,
    },
    /// `groups reset-offsets` on a group with members, refused as Kafka's
    /// tool refuses it.
    #[error(
        "Assignments can only be reset if the group '{group}' is inactive, but the current state is {state} \
         — stop the group's consumers first (`distlog admin groups describe {group}` lists them)"
    )]
    GroupActive {
        /// The group.
        group: String,
        /// Its state (`Stable`, `PreparingRebalance`…).
        state: String,
    },
    /// Some of several operations failed; the output lists which.
    #[error("{failed} of {total} operations failed (see the errors listed above) — fix them and rerun the command")]
    Partial {
        /// How many failed.
        failed: usize,
        /// How many were attempted.
        total: usize,
    },
    /// Writing the output failed (a closed pipe, for example).
    #[error("cannot write the output: {0} — is stdout closed?")]
    Output(String),
}

/// A `Result` with [`AdminError`].
pub type Result<T> = std::result::Result<T, AdminError>;

/// Kafka's name of an error code (`NON_EMPTY_GROUP`), or `UNKNOWN(code)`.
pub fn code_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE({c})"),
        Some(e) => screaming_snake(&format!("{e}")),
    }
}

/// The code of a Kafka error name (the inverse of [`code_name`]).
pub fn code_of(name: &str) -> Option<i16> {
    (-1..=200).find(|c| *c != 0 && code_name(*c) == name)
}

/// `NonEmptyGroup` → `NON_EMPTY_GROUP`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// What an operator should do about a Kafka error code.
pub fn hint(code: i16) -> &'static str {
    use ResponseError as E;
    match ResponseError::try_from_code(code) {
        Some(E::UnknownTopicOrPartition | E::UnknownTopicId) => {
            "check the topic and partition (`distlog admin topics list` / `topics describe`)"
        }
        Some(E::TopicAlreadyExists) => "choose another name, or delete the topic first",
        Some(E::InvalidConfig) => {
            "check the config key and value (`distlog admin topics describe` lists the current ones)"
        }
        Some(E::InvalidPartitions) => {
            "give a partition count larger than the current one (`topics describe` shows it)"
        }
        Some(E::InvalidReplicationFactor) => {
            "use a replication factor no larger than the number of brokers (`cluster describe`)"
        }
        Some(E::InvalidTopicException) => {
            "use a name of letters, digits, '.', '_' and '-' (at most 249 characters)"
        }
        Some(E::PolicyViolation) => "the broker's policy refuses this; see its message",
        Some(E::NonEmptyGroup) => {
            "stop the group's consumers first (`distlog admin groups describe GROUP` lists them)"
        }
        Some(E::GroupIdNotFound) => "check the group name (`distlog admin groups list`)",
        Some(E::UnknownMemberId | E::IllegalGeneration | E::RebalanceInProgress) => {
            "the group has active members; stop its consumers first (`groups describe GROUP`)"
        }
        Some(E::OffsetOutOfRange) => {
            "pick an offset between the partition's log start and its high watermark"
        }
        Some(
            E::NotController
            | E::NotLeaderOrFollower
            | E::NotCoordinator
            | E::CoordinatorNotAvailable
            | E::CoordinatorLoadInProgress
            | E::LeaderNotAvailable
            | E::RequestTimedOut,
        ) => "the cluster is moving leadership; retry in a moment",
        Some(E::UnsupportedVersion) => "the broker does not serve this request version; upgrade the broker",
        Some(E::InvalidRequest) => "the broker refused the request as invalid; see its message",
        Some(E::ClusterAuthorizationFailed | E::TopicAuthorizationFailed | E::GroupAuthorizationFailed) => {
            "the broker refuses this client; check its ACLs"
        }
        _ => "see the broker's log for details",
    }
}

impl AdminError {
    /// An error for a Kafka error code answered to `what`, with the
    /// broker's message if it sent one.
    pub fn kafka(what: impl Into<String>, code: i16, message: Option<&str>) -> AdminError {
        AdminError::Kafka {
            what: what.into(),
            code: code_name(code),
            message: message
                .filter(|m| !m.is_empty())
                .map(|m| format!(": {m}"))
                .unwrap_or_default(),
            hint: hint(code).to_string(),
        }
    }

    /// A usage error for `arg`.
    pub fn usage(arg: &str, reason: impl Into<String>) -> AdminError {
        AdminError::Usage {
            arg: arg.to_string(),
            reason: reason.into(),
        }
    }
}

/// `Err` of [`AdminError::kafka`] when `code` is not 0.
pub fn check(what: impl FnOnce() -> String, code: i16, message: Option<&str>) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(AdminError::kafka(what(), code, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes_as_kafka_does() {
        assert_eq!(code_name(68), "NON_EMPTY_GROUP");
        assert_eq!(code_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(code_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(code_name(0), "NONE");
        assert_eq!(code_name(-999), "UNKNOWN_ERROR_CODE(-999)");
        assert_eq!(code_of("NON_EMPTY_GROUP"), Some(68));
        assert_eq!(code_of("NO_ANSWER"), None);
    }

    #[test]
    fn kafka_errors_say_what_to_do() {
        let e = AdminError::kafka("create topic 'a'", 36, Some("Topic 'a' already exists."));
        assert_eq!(
            e.to_string(),
            "create topic 'a': TOPIC_ALREADY_EXISTS: Topic 'a' already exists. — choose another name, or delete the topic first"
        );
        let e = AdminError::kafka("delete group 'g'", 68, None);
        assert!(e
            .to_string()
            .starts_with("delete group 'g': NON_EMPTY_GROUP — stop the group's consumers first"));
    }

    #[test]
    fn connect_errors_name_the_flag() {
        let e = AdminError::Connect {
            addr: "127.0.0.1:9092".into(),
            reason: "connection refused".into(),
            flag: "--bootstrap".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach 127.0.0.1:9092: connection refused — is a broker running there? (--bootstrap)"
        );
    }
}
