//! The broker's JSON log (`--log-format json`, one object per line), read back by the scenarios
//! that time what the broker did from its own log lines (scenario 10).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// One line of the log.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// When it was logged, ms since the epoch.
    pub at_ms: f64,
    /// Its `message` field.
    pub message: String,
    /// All its fields (the message included).
    pub fields: serde_json::Map<String, Value>,
}

/// Every JSON log line after byte `from` (lines that are not such objects are skipped).
pub fn log_lines(log: &Path, from: u64) -> anyhow::Result<Vec<LogLine>> {
    let mut file = std::fs::File::open(log).with_context(|| format!("open {}", log.display()))?;
    file.seek(SeekFrom::Start(from))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let t = rfc3339_ms(v.get("timestamp")?.as_str()?)?;
            let fields = v.get("fields")?.as_object()?.clone();
            let message = fields.get("message")?.as_str()?.to_string();
            Some(LogLine {
                at_ms: t,
                message,
                fields,
            })
        })
        .collect())
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (tracing's JSON timestamps) in ms since the epoch.
pub fn rfc3339_ms(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.splitn(3, ':');
    let (hh, mm) = (t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?);
    let ss = t.next()?.parse::<f64>().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days as f64 * 86_400.0) + hh * 3600.0 + mm * 60.0 + ss) * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_parse_to_epoch_ms() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(rfc3339_ms("2000-03-01T00:00:01.5Z"), Some(951_868_801_500.0));
        let t = rfc3339_ms("2026-12-07T01:16:06.123456Z").expect("parses");
        assert!((t - 1_796_606_166_123.456).abs() < 0.01, "{t}");
        assert_eq!(rfc3339_ms("2026-12-07 01:16:06"), None);
    }
}
