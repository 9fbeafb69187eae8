//! A minimal HTTP/1.0 client for the broker's HTTP port.
//!
//! The broker's `/health`, `/metrics` and `/admin/*` endpoints are plain GETs; a raw TCP request
//! keeps the harness free of an HTTP client dependency and makes every step bounded by a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

/// A response to [`get`]: the status code and the body as (lossy) UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status code from the status line.
    pub status: u16,
    /// The response body (everything after the header block).
    pub body: String,
}

/// Sends `GET path HTTP/1.0` to `addr` and reads the whole response.
///
/// Connect, write and read are each bounded by `timeout`, so a hung server fails the caller
/// instead of hanging it. HTTP/1.0 means the server closes the connection after the body.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<HttpResponse> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect to http://{addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("send GET {path}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("read response to GET {path}"))?;
    parse_response(&raw).with_context(|| format!("parse response to GET {path}"))
}

/// Splits a raw HTTP response into status and body.
fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = match text.find("\r\n\r\n") {
        Some(i) => (&text[..i], &text[i + 4..]),
        None => match text.find("\n\n") {
            Some(i) => (&text[..i], &text[i + 2..]),
            None => (text.as_ref(), ""),
        },
    };
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        bail!("not an HTTP response: {status_line:?}");
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("no status code in {status_line:?}"))?;
    Ok(HttpResponse {
        status,
        body: body.to_string(),
    })
}

/// Sums every sample of the Prometheus metric `name` (all label sets) in `text`.
///
/// Returns `None` when the metric does not appear at all, so callers can tell "zero" from
/// "not exported".
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // Exact name match: the next character must start labels or the value.
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            found = true;
            sum += v;
        }
    }
    found.then_some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").expect("valid");
        assert_eq!(
            r,
            HttpResponse {
                status: 200,
                body: "ok".into()
            }
        );
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn sums_metric_samples_across_labels() {
        let text =
            "# HELP x\nfoo_total{api=\"a\"} 2\nfoo_total{api=\"b\"} 3\nfoo_total_other 7\nfoo_total 1\n";
        assert_eq!(metric_sum(text, "foo_total"), Some(6.0));
        assert_eq!(metric_sum(text, "bar"), None);
    }
}
