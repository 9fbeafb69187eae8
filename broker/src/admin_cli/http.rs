//! A minimal HTTP/1.0 GET for the broker's JSON admin API (`--http`): no
//! client library, every step under the timeout, the connection closed by
//! the server after the body.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::io_reason;
use super::error::{AdminError, Result};

/// A GET's status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonResponse {
    /// HTTP status code.
    pub status: u16,
    /// The body as JSON.
    pub body: Value,
}

/// Percent-encodes a query or path component (RFC 3986 unreserved kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GETs `path` from `addr` and parses the JSON body.
pub async fn get_json(addr: &str, path: &str, timeout: Duration) -> Result<JsonResponse> {
    let url = format!("http://{addr}{path}");
    let work = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| AdminError::Connect {
            addr: addr.to_string(),
            reason: io_reason(&e),
            flag: "--http".to_string(),
        })?;
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        let io = |e: std::io::Error| AdminError::Io {
            addr: addr.to_string(),
            api: format!("GET {path}"),
            reason: io_reason(&e),
        };
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(io)?;
        parse_response(&raw).map_err(|reason| AdminError::Protocol {
            addr: addr.to_string(),
            api: format!("GET {path}"),
            reason,
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(AdminError::Timeout {
            addr: url,
            api: "the HTTP request".to_string(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

/// Splits a raw HTTP response into status and JSON body.
pub fn parse_response(raw: &[u8]) -> std::result::Result<JsonResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| "no end of the HTTP header".to_string())?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/")) {
        return Err(format!("not an HTTP response: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("no status code in {status_line:?}"))?;
    let body: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "HTTP {status} with a body that is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(200)
                .collect::<String>()
        )
    })?;
    Ok(JsonResponse { status, body })
}

/// The JSON body of a 200 answer, or an [`AdminError::Http`] carrying the
/// body's `error` and `hint`.
pub fn ok_body(addr: &str, path: &str, response: JsonResponse, hint: &str) -> Result<Value> {
    if response.status == 200 {
        return Ok(response.body);
    }
    let message = response
        .body
        .get("error")
        .and_then(Value::as_str)
        .map_or_else(|| response.body.to_string(), str::to_string);
    Err(AdminError::Http {
        url: format!("http://{addr}{path}"),
        status: response.status,
        message,
        hint: hint.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_components() {
        assert_eq!(encode_component("a.b_c-d~1"), "a.b_c-d~1");
        assert_eq!(encode_component("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn parses_status_and_json() {
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\r\n{\"error\":\"x\"}",
        )
        .expect("parses");
        assert_eq!(r.status, 404);
        assert_eq!(r.body["error"], "x");
        assert!(parse_response(b"garbage").is_err());
        let err = ok_body("h:1", "/p", r, "check it").expect_err("404");
        assert_eq!(err.to_string(), "http://h:1/p answered HTTP 404: x — check it");
    }
}
