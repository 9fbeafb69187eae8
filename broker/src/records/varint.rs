//! Zig-zag varints as used inside v2 records, read from a slice cursor.

/// Read a zig-zag varint of at most `max_bytes` bytes (5 for int32, 10 for
/// int64) at `*pos`, advancing it. `None` when the bytes end first or the
/// varint is longer than allowed.
fn read_zigzag(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Option<i64> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// A zig-zag varint that must fit an int32 (Kafka `varint`).
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    let v = read_zigzag(buf, pos, 5)?;
    i32::try_from(v).ok()
}

/// A zig-zag varlong (Kafka `varlong`).
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    read_zigzag(buf, pos, 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_zigzag_and_rejects_overlong_or_truncated() {
        let mut p = 0;
        assert_eq!(read_varint(&[0x00], &mut p), Some(0));
        p = 0;
        assert_eq!(read_varint(&[0x01], &mut p), Some(-1));
        p = 0;
        assert_eq!(read_varint(&[0x02], &mut p), Some(1));
        p = 0;
        assert_eq!(read_varint(&[0xac, 0x02], &mut p), Some(150));
        assert_eq!(p, 2);
        p = 0;
        assert_eq!(read_varint(&[0x80, 0x80], &mut p), None);
        p = 0;
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &mut p), None);
        p = 0;
        assert_eq!(
            read_varlong(&[0xfe, 0xff, 0xff, 0xff, 0x1f], &mut p),
            Some(i64::from(i32::MAX) * 2 + 1)
        );
    }
}
