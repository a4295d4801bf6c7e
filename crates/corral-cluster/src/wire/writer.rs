//! Writing: the primitives an encoding appends to a frame with, each the
//! counterpart of a [`Reader`](super::Reader) method. A tag (the variant of
//! an enum, see [`Reader::tag`](super::Reader::tag)) is one byte:
//! `out.push(tag)`.

/// Writes `len` as a `u32` length or count and returns how many bytes or
/// elements to write after it: `len` itself, or `u32::MAX` for a `len` that
/// does not fit a `u32`, so a frame stays well formed (and a receiver's
/// limits refuse it). Read back by [`Reader::length`](super::Reader::length).
pub fn put_len(out: &mut Vec<u8>, len: usize) -> usize {
    let n = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    n as usize
}

/// Writes a bool as one byte, `0` or `1`. Read back by
/// [`Reader::bool`](super::Reader::bool).
pub fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(u8::from(b));
}

/// Writes a string: its byte length ([`put_len`]), then its UTF-8. Read
/// back by [`Reader::string`](super::Reader::string).
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let n = put_len(out, s.len());
    out.extend_from_slice(&s.as_bytes()[..n]);
}

/// Writes a little-endian `u32`. Read back by
/// [`Reader::u32`](super::Reader::u32).
pub fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

/// Writes a little-endian `u64`. Read back by
/// [`Reader::u64`](super::Reader::u64).
pub fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

/// Writes an `f32` as its little-endian bits (NaN payloads kept). Read back
/// by [`Reader::f32`](super::Reader::f32).
pub fn put_f32(out: &mut Vec<u8>, x: f32) {
    put_u32(out, x.to_bits());
}
