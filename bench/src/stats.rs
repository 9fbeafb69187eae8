//! Latency samples and their percentiles.

use serde_json::{json, Value};

/// Latency samples in microseconds. Kept whole (4 bytes a sample) so percentiles are exact;
/// ten seconds at a million messages a second is 40 MB.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples_us: Vec<u32>,
}

impl Latencies {
    /// An empty recorder with room for `capacity` samples.
    pub fn with_capacity(capacity: usize) -> Latencies {
        Latencies {
            samples_us: Vec::with_capacity(capacity),
        }
    }

    /// Records one latency in nanoseconds (saturating at ~71 minutes).
    pub fn record_ns(&mut self, ns: u64) {
        self.samples_us.push(u32::try_from(ns / 1000).unwrap_or(u32::MAX));
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples_us.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.samples_us.is_empty()
    }

    /// Appends all samples of `other`.
    pub fn merge(&mut self, other: Latencies) {
        self.samples_us.extend(other.samples_us);
    }

    /// p50/p99/p999/max in milliseconds, as JSON fields `<prefix>_p50_ms` etc. Sorting happens
    /// here, once, after the measurement.
    pub fn summary(mut self, prefix: &str) -> Vec<(String, Value)> {
        self.samples_us.sort_unstable();
        let s = &self.samples_us;
        vec![
            (format!("{prefix}_p50_ms"), json!(percentile_ms(s, 50.0))),
            (format!("{prefix}_p99_ms"), json!(percentile_ms(s, 99.0))),
            (format!("{prefix}_p999_ms"), json!(percentile_ms(s, 99.9))),
            (format!("{prefix}_max_ms"), json!(percentile_ms(s, 100.0))),
            (format!("{prefix}_samples"), json!(s.len())),
        ]
    }
}

/// The nearest-rank percentile `p` (0–100] of sorted microsecond samples, in milliseconds;
/// 0 for no samples.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    // The epsilon keeps float noise (0.999 * 1000 = 999.0000000000001) from bumping the rank.
    let rank = ((p / 100.0) * sorted_us.len() as f64 - 1e-9).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&sorted, 50.0), 500.0);
        assert_eq!(percentile_ms(&sorted, 99.0), 990.0);
        assert_eq!(percentile_ms(&sorted, 99.9), 999.0);
        assert_eq!(percentile_ms(&sorted, 100.0), 1000.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }

    #[test]
    fn summary_sorts_and_names_fields() {
        let mut l = Latencies::default();
        for ns in [3_000_000u64, 1_000_000, 2_000_000] {
            l.record_ns(ns);
        }
        let fields = l.summary("ack");
        assert_eq!(fields[0], ("ack_p50_ms".to_string(), json!(2.0)));
        assert_eq!(fields[3], ("ack_max_ms".to_string(), json!(3.0)));
        assert_eq!(fields[4], ("ack_samples".to_string(), json!(3)));
    }
}
