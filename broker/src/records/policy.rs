//! A topic's rules for the batches it stores, read per produce from the
//! topic's configs (so a changed config applies to the next produce):
//! `message.timestamp.type`, `compression.type` and the timestamp bounds
//! `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms`
//! (KIP-937). [`RecordPolicy::apply`] runs them over a validated batch in
//! Kafka's order: the timestamp checks, then recompression when the
//! topic's codec differs from the batch's. A topic with the defaults
//! (`producer`, `CreateTime`) keeps the batch's bytes untouched.

use std::collections::BTreeMap;

use bytes::BytesMut;

use super::batch::BatchSpan;
use super::codec::Codec;
use super::recompress::{decoded_records, rebuild};
use super::validate::walk_records;
use super::BatchError;
use crate::topic_config::{self, keys, DefaultValue};

/// Which timestamp a topic's records carry (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamps, checked against the bounds.
    CreateTime,
    /// The time the stream owner appended the batch.
    LogAppendTime,
}

/// The message of Kafka's INVALID_TIMESTAMP answer.
pub const INVALID_TIMESTAMP_MESSAGE: &str = "One or more records have been rejected due to invalid timestamp";

/// A topic's record settings, resolved from its config overrides (an
/// invalid or absent override means the table's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPolicy {
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `compression.type`: the codec batches are stored in, `None` for
    /// `producer` (stored as produced).
    pub codec: Option<Codec>,
    /// `message.timestamp.before.max.ms`: how far in the past a
    /// CreateTime timestamp may be.
    pub before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a
    /// CreateTime timestamp may be.
    pub after_max_ms: i64,
}

/// What [`RecordPolicy::apply`] did to a batch.
#[derive(Debug)]
pub struct Applied {
    /// The batch to store: the produced bytes, or the recompressed batch.
    pub payload: BytesMut,
    /// Whether the batch was recompressed (the payload is a new buffer).
    pub recompressed: bool,
    /// Whether the batch must be stamped with the append time.
    pub log_append_time: bool,
}

impl RecordPolicy {
    /// The policy of a topic with these config overrides.
    pub fn from_configs(overrides: &BTreeMap<String, String>) -> RecordPolicy {
        let timestamp_type = match effective(overrides, keys::MESSAGE_TIMESTAMP_TYPE).as_deref() {
            Some("LogAppendTime") => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        };
        let codec = match effective(overrides, keys::COMPRESSION_TYPE).as_deref() {
            Some("uncompressed") => Some(Codec::None),
            Some("gzip") => Some(Codec::Gzip),
            Some("snappy") => Some(Codec::Snappy),
            Some("lz4") => Some(Codec::Lz4),
            Some("zstd") => Some(Codec::Zstd),
            _ => None,
        };
        let ms = |name| {
            effective(overrides, name)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(i64::MAX)
        };
        RecordPolicy {
            timestamp_type,
            codec,
            before_max_ms: ms(keys::MESSAGE_TIMESTAMP_BEFORE_MAX_MS),
            after_max_ms: ms(keys::MESSAGE_TIMESTAMP_AFTER_MAX_MS),
        }
    }

    /// Apply the policy to `payload`, one validated batch (`span`), at
    /// wall-clock time `now_ms`: check its timestamps
    /// ([`RecordPolicy::check_timestamps`]), then recompress it when the
    /// topic's codec is not the batch's (the result must still fit
    /// `max_batch` bytes, else MESSAGE_TOO_LARGE, as Kafka re-checks a
    /// rebuilt batch).
    pub fn apply(
        &self,
        payload: BytesMut,
        span: &BatchSpan,
        max_batch: usize,
        now_ms: i64,
    ) -> Result<Applied, BatchError> {
        let source = Codec::from_id(span.header.compression())?;
        let target = self.codec.filter(|&t| t != source);
        // Records are checked before anything is rebuilt (Kafka validates
        // while it iterates, then builds), on the produced batch.
        let decoded = match target {
            Some(_) => Some(decoded_records(&payload, span)?),
            None => None,
        };
        self.check_timestamps(&payload, span, decoded.as_deref(), now_ms)?;
        let (payload, recompressed) = match (target, decoded) {
            (Some(target), Some(records)) => {
                let batch = rebuild(&payload, span, &records, target)?;
                if batch.len() > max_batch {
                    return Err(BatchError::TooLarge {
                        size: batch.len(),
                        max: max_batch,
                    });
                }
                (batch, true)
            }
            _ => (payload, false),
        };
        Ok(Applied {
            payload,
            recompressed,
            log_append_time: self.timestamp_type == TimestampType::LogAppendTime,
        })
    }

    /// Kafka's per-record timestamp rule (`LogValidator.validateTimestamp`):
    /// in a CreateTime topic every record timestamp other than -1 must lie
    /// within `[now - before.max.ms, now + after.max.ms]`; a producer may
    /// not send a LogAppendTime batch to a LogAppendTime topic. Failures
    /// are INVALID_TIMESTAMP with one record error per offending record.
    ///
    /// `payload` is the batch (`span.header` is its header either way);
    /// `decoded` its decompressed records when already at hand. A
    /// compressed batch is decompressed for the check only when the
    /// before-bound is set; with only the after-bound set (Kafka 4's
    /// default of one hour), its `maxTimestamp` is checked, which bounds
    /// every record timestamp of a well-formed batch.
    pub fn check_timestamps(
        &self,
        payload: &[u8],
        span: &BatchSpan,
        decoded: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<(), BatchError> {
        let h = &span.header;
        if self.timestamp_type == TimestampType::LogAppendTime {
            if h.log_append_time() {
                return Err(lat_from_producer(h.record_count));
            }
            return Ok(());
        }
        if self.before_max_ms == i64::MAX && self.after_max_ms == i64::MAX {
            return Ok(());
        }
        let mut errors = Vec::new();
        let mut check = |index: i32, ts: i64| {
            if let Some(e) = self.out_of_bounds(index, ts, now_ms) {
                errors.push(e);
            }
        };
        if h.log_append_time() {
            // Every record of such a batch reads as its max timestamp.
            if h.max_timestamp == -1 {
                return Err(lat_from_producer(h.record_count));
            }
            for index in 0..h.record_count.max(0) {
                check(index, h.max_timestamp);
            }
        } else {
            let owned;
            let records = if h.compression() == 0 {
                Some(&payload[span.records_range()])
            } else if decoded.is_some() {
                decoded
            } else if self.before_max_ms != i64::MAX {
                owned = decoded_records(payload, span)?;
                Some(&owned[..])
            } else {
                None
            };
            match records {
                Some(records) => walk_records(records, h.record_count, |r| {
                    check(r.index, h.base_timestamp.saturating_add(r.timestamp_delta));
                })?,
                None => check(0, h.max_timestamp),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(BatchError::InvalidTimestamp(errors))
        }
    }

    /// The record error of a timestamp outside the bounds, if it is.
    fn out_of_bounds(&self, index: i32, ts: i64, now_ms: i64) -> Option<(i32, String)> {
        if ts == -1 {
            return None;
        }
        let diff = i128::from(now_ms) - i128::from(ts);
        if diff <= i128::from(self.before_max_ms) && -diff <= i128::from(self.after_max_ms) {
            return None;
        }
        Some((
            index,
            format!(
                "Timestamp {ts} of message with offset {index} is out of range. The timestamp should be \
                 within [{}, {}]",
                now_ms.saturating_sub(self.before_max_ms),
                now_ms.saturating_add(self.after_max_ms)
            ),
        ))
    }
}

fn lat_from_producer(record_count: i32) -> BatchError {
    BatchError::InvalidTimestamp(
        (0..record_count.max(0))
            .map(|i| {
                (
                    i,
                    "Invalid timestamp type in message. Producer should not set timestamp type to \
                     LogAppendTime."
                        .to_string(),
                )
            })
            .collect(),
    )
}

/// The topic's valid override of `name`, else the row's built-in default.
fn effective(overrides: &BTreeMap<String, String>, name: &str) -> Option<String> {
    let row = topic_config::key(name)?;
    if let Some(v) = overrides.get(name).filter(|v| row.validate(v).is_ok()) {
        return Some(v.clone());
    }
    match row.default {
        DefaultValue::Fixed(v) => Some(v.to_string()),
        DefaultValue::Node(_) | DefaultValue::Derived(_) => None,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
