//! The four Kafka compression codecs, for the broker's own use: bounded
//! decompression of a batch's records section (hostile input never makes
//! the broker allocate more than [`MAX_DECOMPRESSED`] bytes, nor panic) and
//! compression in the byte formats Kafka's own broker writes (gzip; snappy
//! in xerial framing with 32 KiB blocks; LZ4 frames with 64 KiB independent
//! blocks; zstd frames), at Kafka's default levels.

use std::io::{Read, Write};

use super::BatchError;

/// Most bytes a batch's records may decompress to. A real batch is bounded
/// by `max.message.bytes` (1 MiB by default) times its compression ratio;
/// anything claiming more is refused as corrupt rather than allocated.
pub const MAX_DECOMPRESSED: usize = 128 << 20;

/// Kafka's `compression.gzip.level` default (Deflater's default, 6).
const GZIP_LEVEL: u32 = 6;
/// Kafka's `compression.lz4.level` default.
const LZ4_LEVEL: u32 = 9;
/// Kafka's `compression.zstd.level` default.
const ZSTD_LEVEL: i32 = 3;
/// xerial snappy-java's stream header, as Kafka's broker writes it.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// xerial's block size (`SnappyOutputStream`'s default).
const SNAPPY_BLOCK: usize = 32 * 1024;

/// A record batch compression codec (the low three attribute bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// No compression (id 0).
    None,
    /// gzip (id 1).
    Gzip,
    /// snappy (id 2).
    Snappy,
    /// LZ4 frame format (id 3).
    Lz4,
    /// Zstandard (id 4).
    Zstd,
}

impl Codec {
    /// Every codec, in id order.
    pub const ALL: [Codec; 5] = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

    /// The codec with attribute id `id`.
    pub fn from_id(id: i16) -> Result<Codec, BatchError> {
        match id {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }

    /// The attribute id.
    pub fn id(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    /// The codec's name as Kafka's configs spell it (`uncompressed` for none).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "uncompressed",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }

    /// Decompress `area` (a batch's records section in this codec) to at
    /// most `limit` bytes. Corrupt input, or output past `limit`, is
    /// [`BatchError::Decompress`] (CORRUPT_MESSAGE); never a panic.
    pub fn decompress(self, area: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
        let err = |what: &str, e: &dyn std::fmt::Display| {
            BatchError::Decompress(format!("{} {what}: {e}", self.name()))
        };
        match self {
            Codec::None => {
                if area.len() > limit {
                    return Err(too_big(limit));
                }
                Ok(area.to_vec())
            }
            Codec::Gzip => {
                read_bounded(flate2::read::MultiGzDecoder::new(area), limit).map_err(|e| err("stream", &e))?
            }
            Codec::Snappy => snappy_decompress(area, limit),
            Codec::Lz4 => {
                let decoder = lz4::Decoder::new(area).map_err(|e| err("decoder", &e))?;
                read_bounded(decoder, limit).map_err(|e| err("stream", &e))?
            }
            Codec::Zstd => {
                let decoder = zstd::stream::read::Decoder::new(area).map_err(|e| err("decoder", &e))?;
                read_bounded(decoder, limit).map_err(|e| err("stream", &e))?
            }
        }
    }

    /// Compress `raw` (a records section) in this codec, in the framing
    /// Kafka's broker writes. Fails only if a codec library does.
    pub fn compress(self, raw: &[u8]) -> Result<Vec<u8>, BatchError> {
        let err = |e: &dyn std::fmt::Display| BatchError::Compress(format!("{}: {e}", self.name()));
        match self {
            Codec::None => Ok(raw.to_vec()),
            Codec::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(raw.len() / 2 + 64),
                    flate2::Compression::new(GZIP_LEVEL),
                );
                enc.write_all(raw).map_err(|e| err(&e))?;
                enc.finish().map_err(|e| err(&e))
            }
            Codec::Snappy => {
                let mut out = Vec::with_capacity(XERIAL_HEADER.len() + raw.len() / 2 + 64);
                out.extend_from_slice(XERIAL_HEADER);
                let mut encoder = snap::raw::Encoder::new();
                for block in raw.chunks(SNAPPY_BLOCK) {
                    let compressed = encoder.compress_vec(block).map_err(|e| err(&e))?;
                    let len = u32::try_from(compressed.len()).map_err(|e| err(&e))?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&compressed);
                }
                Ok(out)
            }
            Codec::Lz4 => {
                let mut enc = lz4::EncoderBuilder::new()
                    .level(LZ4_LEVEL)
                    .block_size(lz4::BlockSize::Max64KB)
                    .block_mode(lz4::BlockMode::Independent)
                    .checksum(lz4::ContentChecksum::NoChecksum)
                    .build(Vec::with_capacity(raw.len() / 2 + 64))
                    .map_err(|e| err(&e))?;
                enc.write_all(raw).map_err(|e| err(&e))?;
                let (out, res) = enc.finish();
                res.map_err(|e| err(&e))?;
                Ok(out)
            }
            Codec::Zstd => zstd::bulk::compress(raw, ZSTD_LEVEL).map_err(|e| err(&e)),
        }
    }
}

fn too_big(limit: usize) -> BatchError {
    BatchError::Decompress(format!("records decompress to more than {limit} bytes"))
}

/// Read `r` to its end, failing once it yields more than `limit` bytes.
fn read_bounded(r: impl Read, limit: usize) -> std::io::Result<Result<Vec<u8>, BatchError>> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap).read_to_end(&mut out)?;
    if out.len() > limit {
        return Ok(Err(too_big(limit)));
    }
    Ok(Ok(out))
}

/// Snappy as Kafka clients write it: xerial framing (header, then blocks
/// of a big-endian length and a raw snappy block) or, when the header is
/// absent, one raw snappy block (snappy-java's fallback, which librdkafka
/// relies on). Each block's declared length is checked against the limit
/// before anything is allocated.
fn snappy_decompress(area: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let bad = |what: String| BatchError::Decompress(format!("snappy {what}"));
    let mut decoder = snap::raw::Decoder::new();
    let mut block = |input: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
        let len = snap::raw::decompress_len(input).map_err(|e| bad(format!("block header: {e}")))?;
        if out.len().saturating_add(len) > limit {
            return Err(too_big(limit));
        }
        let at = out.len();
        out.resize(at + len, 0);
        let n = decoder
            .decompress(input, &mut out[at..])
            .map_err(|e| bad(format!("block: {e}")))?;
        out.truncate(at + n);
        Ok(())
    };
    let mut out = Vec::new();
    // Kafka's snappy-java also accepts any version/compat words after the magic.
    if area.len() >= XERIAL_HEADER.len() && area[..8] == XERIAL_HEADER[..8] {
        let mut pos = XERIAL_HEADER.len();
        while pos < area.len() {
            let Some(size) = area.get(pos..pos + 4) else {
                return Err(bad("truncated block length".to_string()));
            };
            let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
            pos += 4;
            let end = pos
                .checked_add(size)
                .filter(|&e| e <= area.len())
                .ok_or_else(|| bad("block past the end of the batch".to_string()))?;
            block(&area[pos..end], &mut out)?;
            pos = end;
        }
    } else {
        block(area, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    #[test]
    fn every_codec_round_trips_and_compresses() {
        let raw = sample();
        for codec in Codec::ALL {
            let packed = codec.compress(&raw).expect("compresses");
            if codec != Codec::None {
                assert!(packed.len() < raw.len() / 2, "{codec:?}: {} bytes", packed.len());
            }
            assert_eq!(
                codec.decompress(&packed, MAX_DECOMPRESSED).expect("decompresses"),
                raw,
                "{codec:?}"
            );
            assert_eq!(Codec::from_id(codec.id()), Ok(codec));
        }
        assert_eq!(Codec::from_id(5), Err(BatchError::UnknownCompression(5)));
    }

    #[test]
    fn output_past_the_limit_is_refused_for_every_codec() {
        let raw = vec![0u8; 1 << 20];
        for codec in Codec::ALL {
            let packed = codec.compress(&raw).expect("compresses");
            assert!(
                matches!(
                    codec.decompress(&packed, (1 << 20) - 1),
                    Err(BatchError::Decompress(_))
                ),
                "{codec:?}"
            );
            assert_eq!(codec.decompress(&packed, 1 << 20).map(|v| v.len()), Ok(1 << 20));
        }
    }

    #[test]
    fn garbage_and_truncations_are_errors_never_panics() {
        let raw = sample();
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let packed = codec.compress(&raw).expect("compresses");
            for cut in [0, 1, 5, 16, 17, 20, packed.len() / 2, packed.len() - 1] {
                // A cut stream fails or yields a prefix (an LZ4 frame cut in
                // its end mark still holds every block); it never invents bytes.
                if let Ok(out) = codec.decompress(&packed[..cut], MAX_DECOMPRESSED) {
                    assert!(raw.starts_with(&out), "{codec:?} cut at {cut}");
                    assert!(
                        out.len() < raw.len() || cut + 4 >= packed.len(),
                        "{codec:?} cut at {cut}"
                    );
                }
            }
            let mut flipped = packed.clone();
            for i in (0..flipped.len()).step_by(97) {
                flipped[i] ^= 0x5a;
            }
            if let Ok(out) = codec.decompress(&flipped, MAX_DECOMPRESSED) {
                assert!(out != raw, "{codec:?} flipped");
            }
            let garbage: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            let _ = codec.decompress(&garbage, MAX_DECOMPRESSED);
        }
    }

    #[test]
    fn snappy_accepts_raw_blocks_and_refuses_length_bombs_before_allocating() {
        let raw = b"hello hello hello hello snappy".to_vec();
        let block = snap::raw::Encoder::new().compress_vec(&raw).expect("raw");
        assert_eq!(Codec::Snappy.decompress(&block, 1024), Ok(raw));
        // A raw block claiming 2^28 bytes from 6 bytes of input.
        let bomb = [0x80, 0x80, 0x80, 0x80, 0x01, 0x00];
        assert!(matches!(
            Codec::Snappy.decompress(&bomb, MAX_DECOMPRESSED),
            Err(BatchError::Decompress(_))
        ));
        let mut framed = XERIAL_HEADER.to_vec();
        framed.extend_from_slice(&(bomb.len() as u32).to_be_bytes());
        framed.extend_from_slice(&bomb);
        assert!(matches!(
            Codec::Snappy.decompress(&framed, MAX_DECOMPRESSED),
            Err(BatchError::Decompress(_))
        ));
        // A block length past the end.
        let mut framed = XERIAL_HEADER.to_vec();
        framed.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Codec::Snappy.decompress(&framed, MAX_DECOMPRESSED),
            Err(BatchError::Decompress(_))
        ));
    }
}
