//! Reading: a cursor over one frame whose every read checks that the bytes
//! are there, and every length against a bound before anything is reserved
//! for it.

use super::format::WireError;

/// A cursor over a frame: every read checks that the bytes are there.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `len` bytes.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if fewer are left.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if len > self.remaining() {
            return Err(WireError::Truncated {
                needed: len,
                at: self.pos,
            });
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    /// One byte.
    ///
    /// # Errors
    /// [`WireError::Truncated`] at the end of the frame.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u32`.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if fewer than 4 bytes are left.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if fewer than 8 bytes are left.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_le_bytes)
    }

    /// An `f32` from its little-endian bits (NaN payloads kept).
    ///
    /// # Errors
    /// [`WireError::Truncated`] if fewer than 4 bytes are left.
    pub fn f32(&mut self) -> Result<f32, WireError> {
        self.u32().map(f32::from_bits)
    }

    /// A bool: `0` or `1`.
    ///
    /// # Errors
    /// [`WireError::Truncated`] at the end of the frame,
    /// [`WireError::Invalid`] for any other byte.
    pub fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(WireError::Invalid(format!(
                "bool byte {b} at offset {}",
                self.pos - 1
            ))),
        }
    }

    /// A `u32` length or count, checked before anything is reserved for it:
    /// it must be at most `limit`, and `len × unit` bytes (`unit`: the
    /// fewest bytes one element takes) must be left in the frame.
    ///
    /// # Errors
    /// [`WireError::TooLong`] (named `what`) over `limit`,
    /// [`WireError::Truncated`] if the frame cannot hold that many elements.
    pub fn length(
        &mut self,
        what: &'static str,
        limit: usize,
        unit: usize,
    ) -> Result<usize, WireError> {
        let len = self.u32()? as usize;
        if len > limit {
            return Err(WireError::TooLong { what, len, limit });
        }
        let needed = len.saturating_mul(unit);
        if needed > self.remaining() {
            return Err(WireError::Truncated {
                needed,
                at: self.pos,
            });
        }
        Ok(len)
    }

    /// Checks that the whole frame was read.
    ///
    /// # Errors
    /// [`WireError::TrailingBytes`] if bytes are left.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(WireError::TrailingBytes { count }),
        }
    }

    /// A string of at most `limit` bytes: a `u32` byte length, then UTF-8
    /// (as [`put_str`](super::put_str) writes it). `what` names it in an
    /// error.
    ///
    /// # Errors
    /// [`WireError::TooLong`] (named `what`) over `limit`,
    /// [`WireError::Truncated`] if the frame ends sooner,
    /// [`WireError::Invalid`] for bytes that are not UTF-8.
    pub fn string(&mut self, what: &'static str, limit: usize) -> Result<String, WireError> {
        let len = self.length(what, limit, 1)?;
        let at = self.pos;
        let bytes = self.bytes(len)?;
        // Validated before the one allocation, whose size is now checked.
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| WireError::Invalid(format!("{what} at offset {at} is not UTF-8: {e}")))
    }

    /// A tag byte: which variant of an enum follows, `0..=max`. `what`
    /// names the enum in an error.
    ///
    /// # Errors
    /// [`WireError::Truncated`] at the end of the frame,
    /// [`WireError::Invalid`] for a tag over `max`.
    pub fn tag(&mut self, what: &str, max: u8) -> Result<u8, WireError> {
        let at = self.pos;
        match self.u8()? {
            t if t <= max => Ok(t),
            t => Err(WireError::Invalid(format!(
                "unknown {what} tag {t} at offset {at}"
            ))),
        }
    }
}
