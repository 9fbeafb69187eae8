//! Kafka framing: every request and response is a 4-byte big-endian size
//! followed by that many bytes.
//!
//! A frame with a negative size, a size above the configured maximum, or a
//! stream that ends inside a frame is a [`FrameError`]; the connection is
//! then closed (Kafka does the same: it cannot resynchronise a byte stream).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The size prefix is negative.
    #[error("negative frame size {0}")]
    Negative(i32),
    /// The size prefix exceeds `max_request_bytes`.
    #[error("frame of {size} bytes exceeds the maximum request size {max}")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("connection closed inside a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced (including the 4-byte prefix when it was cut).
        want: usize,
    },
    /// Socket error.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Largest allocation step while a frame's bytes arrive.
const GROWTH_STEP: usize = 1 << 20;

/// Read one frame's payload. `Ok(None)` is a clean end of stream at a frame
/// boundary. The payload is read into one buffer (grown as bytes arrive) and frozen, so request
/// bodies (record batches) are sliced from it without copies.
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    max_request_bytes: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut size_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = rd.read(&mut size_buf[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated { got, want: 4 })
            };
        }
        got += n;
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size > max_request_bytes {
        return Err(FrameError::TooLarge {
            size,
            max: max_request_bytes,
        });
    }
    // Grow the buffer as bytes arrive, so a client announcing a large frame
    // does not get the whole allocation for free.
    let mut buf = BytesMut::with_capacity(size.min(GROWTH_STEP));
    while buf.len() < size {
        let want = size - buf.len();
        buf.reserve(want.min(GROWTH_STEP));
        let n = (&mut *rd).take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                got: buf.len(),
                want: size,
            });
        }
    }
    Ok(Some(buf.freeze()))
}

/// Prefix `payload` with its size. The returned buffer is ready to write.
pub fn frame(payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Write a complete frame (size prefix already included) and flush.
pub async fn write_frame<W: AsyncWrite + Unpin>(wr: &mut W, framed: &[u8]) -> std::io::Result<()> {
    wr.write_all(framed).await?;
    wr.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: Vec<u8>, max: usize) -> Vec<Result<Option<Bytes>, FrameError>> {
        let mut rd = std::io::Cursor::new(input);
        let mut out = Vec::new();
        loop {
            let r = read_frame(&mut rd, max).await;
            let stop = !matches!(r, Ok(Some(_)));
            out.push(r);
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn reads_frames_then_clean_eof() {
        let mut input = frame(b"hello").to_vec();
        input.extend_from_slice(&frame(b""));
        input.extend_from_slice(&frame(b"xyz"));
        let r = read_all(input, 100).await;
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].as_ref().expect("ok").as_deref(), Some(&b"hello"[..]));
        assert_eq!(r[1].as_ref().expect("ok").as_deref(), Some(&b""[..]));
        assert_eq!(r[2].as_ref().expect("ok").as_deref(), Some(&b"xyz"[..]));
        assert!(matches!(r[3], Ok(None)));
    }

    #[tokio::test]
    async fn oversized_frame_is_rejected_before_reading_it() {
        let r = read_all(101i32.to_be_bytes().to_vec(), 100).await;
        assert!(matches!(r[0], Err(FrameError::TooLarge { size: 101, max: 100 })));
        // Exactly at the limit is fine.
        let mut ok = 100i32.to_be_bytes().to_vec();
        ok.extend_from_slice(&[7u8; 100]);
        let r = read_all(ok, 100).await;
        assert_eq!(r[0].as_ref().expect("ok").as_ref().map(|b| b.len()), Some(100));
    }

    #[tokio::test]
    async fn negative_size_is_rejected() {
        let r = read_all((-1i32).to_be_bytes().to_vec(), 100).await;
        assert!(matches!(r[0], Err(FrameError::Negative(-1))));
    }

    #[tokio::test]
    async fn truncated_frames_are_errors() {
        let mut body_cut = 10i32.to_be_bytes().to_vec();
        body_cut.extend_from_slice(b"abc");
        let r = read_all(body_cut, 100).await;
        assert!(matches!(r[0], Err(FrameError::Truncated { got: 3, want: 10 })));
        let r = read_all(vec![0, 0], 100).await;
        assert!(matches!(r[0], Err(FrameError::Truncated { got: 2, want: 4 })));
    }

    #[tokio::test]
    async fn large_frame_arrives_in_pieces() {
        let size = 3 * GROWTH_STEP + 17;
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let (mut client, mut server) = tokio::io::duplex(4096);
        let p2 = payload.clone();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client.write_all(&frame(&p2)).await.expect("write");
        });
        let got = read_frame(&mut server, size).await.expect("ok").expect("frame");
        writer.await.expect("join");
        assert_eq!(got.len(), size);
        assert!(got[..] == payload[..]);
    }
}
