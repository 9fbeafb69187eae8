//! Low-level field encoding shared by requests and answers: big-endian
//! integers, optional values, index rows, short texts, and a cursor that
//! fails (never panics) when a frame runs out of bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{malformed, Frame, LEN_PREFIX, MAX_TEXT, ROW_LEN};
use crate::error::Result;
use crate::ledger::IndexRow;

pub(super) fn finish(
    mut head: BytesMut,
    payload: impl IntoIterator<Item = Bytes>,
    max_frame: usize,
) -> Result<Frame> {
    let mut chunks = Vec::with_capacity(2);
    let mut body = head.len() - LEN_PREFIX;
    let mut rest = Vec::new();
    for chunk in payload {
        if !chunk.is_empty() {
            body += chunk.len();
            rest.push(chunk);
        }
    }
    if body > max_frame {
        return Err(malformed(format!(
            "frame of {body} bytes exceeds the maximum of {max_frame}"
        )));
    }
    let prefix = u32::try_from(body).map_err(|_| malformed("frame length overflows u32"))?;
    head[..LEN_PREFIX].copy_from_slice(&prefix.to_be_bytes());
    chunks.push(head.freeze());
    chunks.extend(rest);
    Ok(Frame {
        chunks,
        len: LEN_PREFIX + body,
    })
}

pub(super) fn put_opt(b: &mut BytesMut, v: Option<u64>) {
    b.put_u8(u8::from(v.is_some()));
    b.put_u64(v.unwrap_or(0));
}

pub(super) fn put_row(b: &mut BytesMut, r: &IndexRow) {
    b.put_u64(r.entry_id);
    b.put_u64(r.first_seq);
    b.put_u32(r.record_count);
    b.put_u64(r.txid);
    b.put_u32(r.len);
}

pub(super) fn put_text(b: &mut BytesMut, s: &str) {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    b.put_u16(end as u16);
    b.put_slice(&s.as_bytes()[..end]);
}

/// Reads fixed fields off a frame body, failing (never panicking) when
/// bytes run out.
pub(super) struct Cursor {
    pub(super) buf: Bytes,
}

impl Cursor {
    pub(super) fn need(&self, n: usize, what: &str) -> Result<()> {
        if self.buf.remaining() < n {
            return Err(malformed(format!(
                "truncated frame: {what} needs {n} bytes, {} left",
                self.buf.remaining()
            )));
        }
        Ok(())
    }
    pub(super) fn u8(&mut self, what: &str) -> Result<u8> {
        self.need(1, what)?;
        Ok(self.buf.get_u8())
    }
    pub(super) fn u16(&mut self, what: &str) -> Result<u16> {
        self.need(2, what)?;
        Ok(self.buf.get_u16())
    }
    pub(super) fn u32(&mut self, what: &str) -> Result<u32> {
        self.need(4, what)?;
        Ok(self.buf.get_u32())
    }
    pub(super) fn u64(&mut self, what: &str) -> Result<u64> {
        self.need(8, what)?;
        Ok(self.buf.get_u64())
    }
    pub(super) fn opt(&mut self, what: &str) -> Result<Option<u64>> {
        let flag = self.u8(what)?;
        let v = self.u64(what)?;
        match flag {
            0 if v == 0 => Ok(None),
            0 => Err(malformed(format!("{what}: absent value must be 0"))),
            1 => Ok(Some(v)),
            f => Err(malformed(format!("{what}: bad presence flag {f}"))),
        }
    }
    pub(super) fn row(&mut self) -> Result<IndexRow> {
        self.need(ROW_LEN, "index row")?;
        Ok(IndexRow {
            entry_id: self.buf.get_u64(),
            first_seq: self.buf.get_u64(),
            record_count: self.buf.get_u32(),
            txid: self.buf.get_u64(),
            len: self.buf.get_u32(),
        })
    }
    pub(super) fn opt_row(&mut self) -> Result<Option<IndexRow>> {
        match self.u8("row flag")? {
            0 => Ok(None),
            1 => self.row().map(Some),
            f => Err(malformed(format!("bad row presence flag {f}"))),
        }
    }
    pub(super) fn text(&mut self, what: &str) -> Result<String> {
        let n = usize::from(self.u16(what)?);
        self.need(n, what)?;
        let raw = self.buf.split_to(n);
        String::from_utf8(raw.to_vec()).map_err(|_| malformed(format!("{what}: not UTF-8")))
    }
    /// Take exactly `n` more bytes (a slice of the frame, no copy).
    pub(super) fn take(&mut self, n: usize, what: &str) -> Result<Bytes> {
        self.need(n, what)?;
        Ok(self.buf.split_to(n))
    }
    pub(super) fn end(self, what: &str) -> Result<()> {
        if self.buf.has_remaining() {
            return Err(malformed(format!(
                "{what}: {} unexpected trailing bytes",
                self.buf.remaining()
            )));
        }
        Ok(())
    }
}
