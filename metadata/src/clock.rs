//! Wall-clock time as the metadata records it.

/// Milliseconds since the Unix epoch: the unit of every wall-clock field in
/// the metadata (broker leases, segment and topic creation, commit times).
/// A clock before 1970 reads as 0.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
