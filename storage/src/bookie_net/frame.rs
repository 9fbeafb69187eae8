//! Framing on a byte stream: reading length-prefixed frame bodies into one
//! buffer (split off as `Bytes`, never copied again) and writing frames'
//! chunks with vectored writes (payload `Bytes` go to the socket as they
//! are). The frame format itself is described in [`super::protocol`].

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::protocol::{LEN_PREFIX, MIN_BODY};

/// Reads length-prefixed frames off a byte stream into one growing buffer;
/// each frame body is split off as `Bytes` (no further copy).
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_frame: usize,
}

/// Bytes asked of the socket per read when no larger frame is pending.
const READ_CHUNK: usize = 64 << 10;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Frames with a body over `max_frame` bytes are refused.
    pub fn new(inner: R, max_frame: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// The next frame body; `Ok(None)` on a clean end of stream (between
    /// frames). A length outside `MIN_BODY..=max_frame` or an end of stream
    /// inside a frame is an `InvalidData`/`UnexpectedEof` error. Allocates
    /// at most `max(max_frame + 4, 64 KiB)` ahead of received bytes.
    pub async fn next_frame(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            let mut want = LEN_PREFIX;
            if self.buf.len() >= LEN_PREFIX {
                let mut prefix = [0u8; LEN_PREFIX];
                prefix.copy_from_slice(&self.buf[..LEN_PREFIX]);
                let len = u32::from_be_bytes(prefix) as usize;
                if !(MIN_BODY..=self.max_frame).contains(&len) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("frame length {len} outside {MIN_BODY}..={} bytes", self.max_frame),
                    ));
                }
                want = LEN_PREFIX + len;
                if self.buf.len() >= want {
                    self.buf.advance(LEN_PREFIX);
                    return Ok(Some(self.buf.split_to(len).freeze()));
                }
            }
            self.buf.reserve((want - self.buf.len()).max(READ_CHUNK));
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("stream ended inside a frame ({} bytes buffered)", self.buf.len()),
                ));
            }
        }
    }
}

/// Most buffers handed to one vectored write.
const MAX_IOV: usize = 64;

/// Write every chunk in order with vectored writes (payload `Bytes` go to
/// the socket as they are), consuming `chunks`.
pub async fn write_chunks<W: AsyncWrite + Unpin>(w: &mut W, chunks: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !chunks.is_empty() {
        let written = {
            let slices: Vec<IoSlice<'_>> = chunks.iter().take(MAX_IOV).map(|c| IoSlice::new(c)).collect();
            w.write_vectored(&slices).await?
        };
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "socket accepted no bytes",
            ));
        }
        let mut left = written;
        while left > 0 {
            let Some(front) = chunks.front_mut() else { break };
            if front.len() <= left {
                left -= front.len();
                chunks.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
    }
    w.flush().await
}
