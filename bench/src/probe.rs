//! The broker's own costs around a measured window: CPU time and RSS from `/proc/<pid>`, and the
//! segment store's fsyncs, bytes written and disk reads from the broker's `/metrics`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use distlog_compat_tests::http;

/// Where to look: the broker's pid (for `/proc`) and its HTTP address (for `/metrics`). Either
/// may be absent, in which case those figures are left out.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrokerProbe {
    /// The broker process id.
    pub pid: Option<i32>,
    /// The broker's HTTP listener.
    pub http: Option<SocketAddr>,
}

/// One sample of the broker's counters.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    at: Instant,
    cpu_secs: Option<f64>,
    client_cpu_secs: Option<f64>,
    fsyncs: Option<f64>,
    bytes_written: Option<f64>,
    bytes_read_disk: Option<f64>,
    tail_cache_hits: Option<f64>,
    tail_cache_misses: Option<f64>,
}

impl BrokerProbe {
    /// Samples the counters now. Failures to read are reported on stderr and leave the figure
    /// out rather than failing the scenario.
    pub fn sample(&self) -> Sample {
        let metrics = self.http.and_then(|addr| {
            http::get(addr, "/metrics", Duration::from_secs(5))
                .map_err(|e| eprintln!("distlog-bench: /metrics: {e:#}"))
                .ok()
                .map(|r| r.body)
        });
        let metric = |name: &str| metrics.as_deref().map(|text| metric_sum(text, name));
        Sample {
            at: Instant::now(),
            cpu_secs: self.pid.and_then(|pid| {
                cpu_secs(pid)
                    .map_err(|e| eprintln!("distlog-bench: cpu of {pid}: {e:#}"))
                    .ok()
            }),
            client_cpu_secs: cpu_secs(i32::try_from(std::process::id()).unwrap_or(i32::MAX)).ok(),
            fsyncs: metric("distlog_bookie_fsyncs_total"),
            bytes_written: metric("distlog_bookie_bytes_written_total"),
            bytes_read_disk: metric("distlog_bookie_bytes_read_total"),
            tail_cache_hits: metric("distlog_tail_cache_hits_total"),
            tail_cache_misses: metric("distlog_tail_cache_misses_total"),
        }
    }

    /// The current value of the broker's metric `name` (summed over labels), if `/metrics` answers.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let addr = self.http?;
        http::get(addr, "/metrics", Duration::from_secs(5))
            .map_err(|e| eprintln!("distlog-bench: /metrics: {e:#}"))
            .ok()
            .map(|r| metric_sum(&r.body, name))
    }

    /// The broker's resident set size now, in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        self.pid.and_then(|pid| {
            rss_kib(pid)
                .map_err(|e| eprintln!("distlog-bench: rss of {pid}: {e:#}"))
                .ok()
                .map(|kib| kib as f64 / 1024.0)
        })
    }

    /// The broker's costs between `before` and `after` for `client_bytes` moved by the client:
    /// CPU seconds (and per MB, and cores used), fsyncs (and per second, and bytes per fsync), disk
    /// reads, tail cache hits/misses, and the RSS now; plus the cores this load generator used, to
    /// tell a client-bound figure from a broker-bound one.
    pub fn delta(&self, before: &Sample, after: &Sample, client_bytes: u64) -> Vec<(String, Value)> {
        let secs = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let mb = client_bytes as f64 / 1e6;
        let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
        let mut out = Vec::new();
        if let Some(cpu) = diff(after.cpu_secs, before.cpu_secs) {
            out.push(("broker_cpu_s".to_string(), json!(cpu)));
            out.push(("broker_cpu_util".to_string(), json!(cpu / secs)));
            if mb > 0.0 {
                out.push(("broker_cpu_ms_per_mb".to_string(), json!(cpu * 1000.0 / mb)));
            }
        }
        if let Some(cpu) = diff(after.client_cpu_secs, before.client_cpu_secs) {
            out.push(("client_cpu_util".to_string(), json!(cpu / secs)));
        }
        let fsyncs = diff(after.fsyncs, before.fsyncs);
        if let Some(f) = fsyncs {
            out.push(("fsyncs".to_string(), json!(f)));
            out.push(("fsyncs_per_s".to_string(), json!(f / secs)));
        }
        if let Some(w) = diff(after.bytes_written, before.bytes_written) {
            out.push(("bytes_written".to_string(), json!(w)));
            if let Some(f) = fsyncs.filter(|f| *f > 0.0) {
                out.push(("bytes_per_fsync".to_string(), json!(w / f)));
            }
        }
        if let Some(r) = diff(after.bytes_read_disk, before.bytes_read_disk) {
            out.push(("disk_read_mb".to_string(), json!(r / 1e6)));
        }
        if let Some(h) = diff(after.tail_cache_hits, before.tail_cache_hits) {
            out.push(("tail_cache_hits".to_string(), json!(h)));
        }
        if let Some(m) = diff(after.tail_cache_misses, before.tail_cache_misses) {
            out.push(("tail_cache_misses".to_string(), json!(m)));
        }
        let hits = diff(after.tail_cache_hits, before.tail_cache_hits);
        let misses = diff(after.tail_cache_misses, before.tail_cache_misses);
        if let Some((h, m)) = hits.zip(misses).filter(|(h, m)| h + m > 0.0) {
            out.push(("tail_cache_hit_pct".to_string(), json!(100.0 * h / (h + m))));
        }
        if let Some(rss) = self.rss_mib() {
            out.push(("broker_rss_mib".to_string(), json!(rss)));
        }
        out
    }
}

/// Sums every sample of the Prometheus metric `name` (with or without labels) in `text`.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v)
}

/// utime + stime of `pid` in seconds, from `/proc/<pid>/stat`.
pub fn cpu_secs(pid: i32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("read /proc/<pid>/stat")?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / clock_ticks_per_sec())
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let after_comm = stat.rsplit_once(')').context("no ')' in stat")?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(11).context("no utime")?.parse().context("utime")?;
    let stime: u64 = fields.get(12).context("no stime")?.parse().context("stime")?;
    Ok(utime + stime)
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// VmRSS of `pid` in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: i32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("read /proc/<pid>/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS line")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_adds_labelled_samples_only_of_that_name() {
        let text = "# HELP distlog_bookie_fsyncs_total x\n\
                    distlog_bookie_fsyncs_total 7\n\
                    distlog_bookie_fsyncs_total_extra 100\n\
                    distlog_requests_total{api=\"produce\"} 3\n\
                    distlog_requests_total{api=\"fetch\"} 4\n";
        assert_eq!(metric_sum(text, "distlog_bookie_fsyncs_total"), 7.0);
        assert_eq!(metric_sum(text, "distlog_requests_total"), 7.0);
        assert_eq!(
            metric_sum(text, "missing").to_bits(),
            0.0f64.to_bits(),
            "+0, not -0"
        );
    }

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat).expect("parses"), 300);
    }

    #[test]
    fn own_process_has_cpu_and_rss() {
        let pid = i32::try_from(std::process::id()).expect("pid fits i32");
        assert!(cpu_secs(pid).expect("cpu") >= 0.0);
        assert!(rss_kib(pid).expect("rss") > 0);
    }
}
