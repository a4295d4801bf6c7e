//! The bytes a pool request and its reply are carried in between
//! ractor_cluster nodes.
//!
//! ractor_cluster can only carry `BytesConvertable` fields, and
//! `BytesConvertable::from_bytes` cannot fail, so every remote message holds
//! one of the frames below as a `Vec<u8>` and is decoded here, where a bad
//! frame becomes an `Err(`[`WireError`]`)`. Decoding never panics and never
//! reserves memory from a length it has not checked against both the bytes
//! that are left and a [`Limits`] bound.
//!
//! # Encoding
//!
//! Hand-written, little-endian, no padding, no self-description:
//!
//! | Value | Bytes |
//! |-------|-------|
//! | `u8`, `bool` | 1 byte; a bool is `0` or `1`, anything else is [`WireError::Invalid`] |
//! | `u32`, `u64`, `f32` | 4, 8, 4 bytes LE; an `f32` travels as its bits (NaN payloads kept) |
//! | `usize` (item cost) | as `u64` |
//! | [`Duration`] | `u64` microseconds, rounded down; over `u64::MAX` µs (about 584,542 years, e.g. `Duration::MAX`) is sent as `u64::MAX` µs |
//! | `String` | `u32` byte length, then UTF-8 (length ≤ [`Limits::max_item_bytes`]) |
//! | `Vec<f32>`, `Vec<u32>` | `u32` element count, then the elements (count × 4 ≤ [`Limits::max_item_bytes`]) |
//! | `Option<T>` | tag `0` (none), or tag `1` then `T` |
//! | items (`Vec<T>`, see [`encode_items`]) | `u32` count (≤ [`Limits::max_items`]), then each `T` |
//! | [`Admission`] | tag `0` `Reject`, tag `1` `Wait` then a duration, or tag `2` `Default` |
//! | [`LoadReport`] | `in_flight: u32`, `capacity: u32`, `ready_workers: u32`, `per_request: duration`, `retry_after: duration`, `draining: bool` (29 bytes) |
//! | [`PoolError`] | tag `0` `Overloaded` + `retry_after: duration`; `1` `TimedOut`; `2` `WorkerLost`; `3` `ShuttingDown`; `4` `InvalidInput` + string; `5` `Backend` + string; `6` `DeadlinePassed` (strings ≤ [`Limits::max_message`] bytes) |
//! | `synthetic::Item` (feature `testing`) | `id: u64`, `cost: u64`; its fault and payload do not travel |
//! | `EmbedInput` (feature `embed`) | tag `0` then a string (`Text`), or tag `1` then a `Vec<u32>` (`Tokens`) |
//! | `EmbedOutput` (feature `embed`) | `vector: Vec<f32>`, `batch_time: duration`; `batch_started` does not travel (see below) |
//!
//! A length or count that does not fit a `u32` is written as `u32::MAX`
//! followed by that many bytes or elements, so a frame stays well formed
//! (and a receiver's limits refuse it); nothing that size is expected.
//!
//! # Frames
//!
//! Every frame starts with [`VERSION`] and a [`FrameKind`] byte, and must end
//! exactly where its last field does:
//!
//! | Frame | Layout | Made by | Read by |
//! |-------|--------|---------|---------|
//! | request | `[VERSION][1][admission][deadline: Option<duration>][items]` | [`encode_request`] | [`decode_request`] |
//! | reply | `[VERSION][2][load][0][items]` or `[VERSION][2][load][1][error][refused: bool]` | [`encode_reply`] | [`decode_reply`] |
//! | ping | `[VERSION][3]` | [`encode_ping`] | [`decode_ping`] |
//! | load | `[VERSION][4][load]` | [`encode_load`] | [`decode_load`] |
//!
//! A decoder checks the frame's size against [`Limits::max_frame`] first,
//! then the version, then the kind, then the fields, then that no bytes are
//! left over.
//!
//! # Example
//!
//! ```
//! use corral_cluster::wire::{self, Limits};
//! use corral_core::Submit;
//! use std::time::Duration;
//!
//! let request = Submit::wait(vec!["hello".to_owned()], Duration::from_secs(5));
//! let bytes = wire::encode_request(&request);
//! let back: Submit<String> = wire::decode_request(&bytes, &Limits::default())?;
//! assert_eq!(back, request);
//! # Ok::<(), wire::WireError>(())
//! ```

#![warn(missing_docs)]

use std::time::Duration;

use corral_core::{Admission, PoolError, Submit};

/// The wire format's version, the first byte of every frame.
pub const VERSION: u8 = 1;

/// What a frame holds: its second byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A pool request ([`encode_request`]).
    Request = 1,
    /// A pool reply with the pool's load ([`encode_reply`]).
    Reply = 2,
    /// A load query ([`encode_ping`]).
    Ping = 3,
    /// The pool's load alone, the answer to a ping ([`encode_load`]).
    Load = 4,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Request),
            2 => Some(Self::Reply),
            3 => Some(Self::Ping),
            4 => Some(Self::Load),
            _ => None,
        }
    }
}

/// Room a node leaves, above the wire's [`Limits::max_frame`], for
/// ractor_cluster's own envelope around a wire frame (the message's name,
/// the target actor, the reply tag): a node accepts inbound cluster frames
/// of up to `max_frame + ENVELOPE` bytes, so that every frame a sender
/// checked against `max_frame` arrives, and nothing larger does.
pub const ENVELOPE: usize = 64 << 10;

/// Bounds a decoder holds a frame to, so a hostile or corrupt frame cannot
/// make it allocate more than about [`Limits::max_frame`] worth of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted, in bytes (default 64 MiB).
    pub max_frame: usize,
    /// Most items in one request or reply (default 65,536).
    pub max_items: usize,
    /// Largest single string or vector, in bytes (default 4 MiB).
    pub max_item_bytes: usize,
    /// Largest error message, in bytes (default 64 KiB).
    pub max_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: 64 << 20,
            max_items: 65_536,
            max_item_bytes: 4 << 20,
            max_message: 64 << 10,
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The frame ends inside a field.
    #[error(
        "truncated frame: the field at offset {at} needs {needed} byte(s), the frame ends sooner"
    )]
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Offset of the field in the frame.
        at: usize,
    },
    /// The frame was written by another version of the format.
    #[error("unsupported wire version {found} (this node speaks version {VERSION})")]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// The frame is not of the kind the decoder reads (or of no known kind).
    #[error("unexpected frame kind {found}")]
    Kind {
        /// The kind byte found.
        found: u8,
    },
    /// A length is over its [`Limits`] bound.
    #[error("{what} is too long: {len} over the limit of {limit}")]
    TooLong {
        /// What was too long ("frame", "string", "items"…).
        what: &'static str,
        /// Its length: bytes for frames, strings and messages, elements for
        /// vectors and items.
        len: usize,
        /// The bound, in the same unit.
        limit: usize,
    },
    /// A field holds a value that cannot be (bad UTF-8, unknown tag…).
    #[error("invalid frame: {0}")]
    Invalid(String),
    /// Bytes are left after the frame's last field.
    #[error("{count} unexpected byte(s) after the end of the frame")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

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

    /// A string of at most `limit` bytes.
    fn string(&mut self, what: &'static str, limit: usize) -> Result<String, WireError> {
        let len = self.length(what, limit, 1)?;
        let at = self.pos;
        let bytes = self.bytes(len)?;
        // Validated before the one allocation, whose size is now checked.
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| WireError::Invalid(format!("{what} at offset {at} is not UTF-8: {e}")))
    }

    fn tag(&mut self, what: &str, max: u8) -> Result<u8, WireError> {
        let at = self.pos;
        match self.u8()? {
            t if t <= max => Ok(t),
            t => Err(WireError::Invalid(format!(
                "unknown {what} tag {t} at offset {at}"
            ))),
        }
    }
}

/// A value with a wire form.
///
/// Decoding is strict: a value decodes only from the bytes its `encode`
/// writes, so `decode` followed by `encode` gives the same bytes back.
pub trait Wire: Sized {
    /// The fewest bytes one encoded value takes. A count of values is
    /// refused, before anything is reserved, when the frame cannot hold
    /// `count × MIN_LEN` bytes; `0` turns that check off (and nothing is
    /// reserved up front).
    const MIN_LEN: usize = 0;

    /// Appends the value's wire form to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one value from `r`, within `limits`.
    ///
    /// # Errors
    /// Any [`WireError`] for bytes that are not one value's wire form.
    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError>;
}

/// Writes `len` as a `u32` (clamped) and returns how many elements to write.
fn put_len(out: &mut Vec<u8>, len: usize) -> usize {
    let n = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    n as usize
}

fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(u8::from(b));
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let n = put_len(out, s.len());
    out.extend_from_slice(&s.as_bytes()[..n]);
}

impl Wire for u64 {
    const MIN_LEN: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }

    fn decode(r: &mut Reader<'_>, _: &Limits) -> Result<Self, WireError> {
        r.u64()
    }
}

/// Microseconds, rounded down and saturating at `u64::MAX` µs.
impl Wire for Duration {
    const MIN_LEN: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        u64::try_from(self.as_micros())
            .unwrap_or(u64::MAX)
            .encode(out);
    }

    fn decode(r: &mut Reader<'_>, _: &Limits) -> Result<Self, WireError> {
        r.u64().map(Duration::from_micros)
    }
}

/// Byte length ([`Limits::max_item_bytes`]) and UTF-8.
impl Wire for String {
    const MIN_LEN: usize = 4;

    fn encode(&self, out: &mut Vec<u8>) {
        put_str(out, self);
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        r.string("string", limits.max_item_bytes)
    }
}

/// Element count (at most [`Limits::max_item_bytes`] / 4), then the bits.
impl Wire for Vec<f32> {
    const MIN_LEN: usize = 4;

    fn encode(&self, out: &mut Vec<u8>) {
        let n = put_len(out, self.len());
        out.reserve(n * 4);
        for x in &self[..n] {
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        let n = r.length("f32 vector", limits.max_item_bytes / 4, 4)?;
        (0..n).map(|_| r.f32()).collect()
    }
}

/// Element count (at most [`Limits::max_item_bytes`] / 4), then the values.
impl Wire for Vec<u32> {
    const MIN_LEN: usize = 4;

    fn encode(&self, out: &mut Vec<u8>) {
        let n = put_len(out, self.len());
        out.reserve(n * 4);
        for x in &self[..n] {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        let n = r.length("u32 vector", limits.max_item_bytes / 4, 4)?;
        (0..n).map(|_| r.u32()).collect()
    }
}

/// Tag `0` (none) or tag `1` and the value.
impl<T: Wire> Wire for Option<T> {
    const MIN_LEN: usize = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        match r.tag("option", 1)? {
            0 => Ok(None),
            _ => T::decode(r, limits).map(Some),
        }
    }
}

/// Tag `0` `Reject`, tag `1` `Wait` and the duration, or tag `2` `Default`
/// (the receiving pool's own admission timeout).
impl Wire for Admission {
    const MIN_LEN: usize = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Admission::Reject => out.push(0),
            Admission::Wait(d) => {
                out.push(1);
                d.encode(out);
            }
            Admission::Default => out.push(2),
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        match r.tag("admission", 2)? {
            0 => Ok(Admission::Reject),
            1 => Duration::decode(r, limits).map(Admission::Wait),
            _ => Ok(Admission::Default),
        }
    }
}

/// One tag byte per variant; `Overloaded` adds its `retry_after`,
/// `InvalidInput` and `Backend` their message (at most
/// [`Limits::max_message`] bytes). `TimedOut` keeps the tag of the
/// `Timeout` it was split from (1) and `DeadlinePassed` takes the next free
/// one (6), so version 1 frames from before the split still decode.
impl Wire for PoolError {
    const MIN_LEN: usize = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            PoolError::Overloaded { retry_after } => {
                out.push(0);
                retry_after.encode(out);
            }
            PoolError::TimedOut => out.push(1),
            PoolError::WorkerLost => out.push(2),
            PoolError::ShuttingDown => out.push(3),
            PoolError::InvalidInput(m) => {
                out.push(4);
                put_str(out, m);
            }
            PoolError::Backend(m) => {
                out.push(5);
                put_str(out, m);
            }
            PoolError::DeadlinePassed => out.push(6),
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        Ok(match r.tag("pool error", 6)? {
            0 => PoolError::Overloaded {
                retry_after: Duration::decode(r, limits)?,
            },
            1 => PoolError::TimedOut,
            2 => PoolError::WorkerLost,
            3 => PoolError::ShuttingDown,
            4 => PoolError::InvalidInput(r.string("error message", limits.max_message)?),
            5 => PoolError::Backend(r.string("error message", limits.max_message)?),
            _ => PoolError::DeadlinePassed,
        })
    }
}

/// A pool's load as its node reports it: piggybacked on every reply, and
/// sent alone as the answer to a ping, so callers can route to the least
/// loaded pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadReport {
    /// Requests admitted and not yet answered.
    pub in_flight: u32,
    /// How many requests the pool admits at once.
    pub capacity: u32,
    /// Workers with a loaded model, able to run requests.
    pub ready_workers: u32,
    /// The pool's recent time per request.
    pub per_request: Duration,
    /// The pool's estimate of when a slot frees up.
    pub retry_after: Duration,
    /// Whether the pool is shutting down (it admits nothing new).
    pub draining: bool,
}

impl Wire for LoadReport {
    const MIN_LEN: usize = 29;

    fn encode(&self, out: &mut Vec<u8>) {
        for n in [self.in_flight, self.capacity, self.ready_workers] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        self.per_request.encode(out);
        self.retry_after.encode(out);
        put_bool(out, self.draining);
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        Ok(Self {
            in_flight: r.u32()?,
            capacity: r.u32()?,
            ready_workers: r.u32()?,
            per_request: Duration::decode(r, limits)?,
            retry_after: Duration::decode(r, limits)?,
            draining: r.bool()?,
        })
    }
}

/// The synthetic backend's input: its `id` and `cost` travel; its `fault`
/// and `payload` (in-process test hooks) do not, and decode as `None`.
#[cfg(feature = "testing")]
impl Wire for corral_core::synthetic::Item {
    const MIN_LEN: usize = 16;

    fn encode(&self, out: &mut Vec<u8>) {
        self.id.encode(out);
        u64::try_from(self.cost).unwrap_or(u64::MAX).encode(out);
    }

    fn decode(r: &mut Reader<'_>, _: &Limits) -> Result<Self, WireError> {
        let id = r.u64()?;
        let at = r.position();
        let cost = usize::try_from(r.u64()?)
            .map_err(|_| WireError::Invalid(format!("item cost at offset {at} overflows usize")))?;
        Ok(Self {
            id,
            cost,
            fault: None,
            payload: None,
        })
    }
}

/// Tag `0` and the text, or tag `1` and the token ids.
#[cfg(feature = "embed")]
impl Wire for corral_embed::EmbedInput {
    const MIN_LEN: usize = 5;

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Text(s) => {
                out.push(0);
                s.encode(out);
            }
            Self::Tokens(ids) => {
                out.push(1);
                ids.encode(out);
            }
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        match r.tag("embed input", 1)? {
            0 => String::decode(r, limits).map(Self::Text),
            _ => Vec::<u32>::decode(r, limits).map(Self::Tokens),
        }
    }
}

/// The vector and `batch_time`. An `Instant` means nothing on another
/// node, so `batch_started` does not travel: decoding sets it to
/// `Instant::now() - batch_time` on the receiving node, or to `now` itself
/// where the clock cannot go back that far.
#[cfg(feature = "embed")]
impl Wire for corral_embed::EmbedOutput {
    const MIN_LEN: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        self.vector.encode(out);
        self.batch_time.encode(out);
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        let vector = Vec::<f32>::decode(r, limits)?;
        let batch_time = Duration::decode(r, limits)?;
        let now = std::time::Instant::now();
        Ok(Self {
            vector,
            batch_started: now.checked_sub(batch_time).unwrap_or(now),
            batch_time,
        })
    }
}

/// Appends `items`: a `u32` count, then each item.
pub fn encode_items<T: Wire>(items: &[T], out: &mut Vec<u8>) {
    let n = put_len(out, items.len());
    for item in &items[..n] {
        item.encode(out);
    }
}

/// Reads what [`encode_items`] wrote: at most [`Limits::max_items`] items,
/// whose count is checked against the bytes left (`T::MIN_LEN` each) before
/// anything is reserved.
///
/// # Errors
/// [`WireError::TooLong`] over the limit, or any error decoding an item.
pub fn decode_items<T: Wire>(r: &mut Reader<'_>, limits: &Limits) -> Result<Vec<T>, WireError> {
    let n = r.length("items", limits.max_items, T::MIN_LEN)?;
    let mut items = Vec::with_capacity(if T::MIN_LEN == 0 { 0 } else { n });
    for _ in 0..n {
        items.push(T::decode(r, limits)?);
    }
    Ok(items)
}

fn frame(kind: FrameKind) -> Vec<u8> {
    vec![VERSION, kind as u8]
}

/// Checks the size, version and kind, and returns a reader past them.
fn open<'a>(bytes: &'a [u8], limits: &Limits, want: FrameKind) -> Result<Reader<'a>, WireError> {
    let mut r = Reader::new(bytes);
    match frame_kind_of(&mut r, limits)? {
        kind if kind == want => Ok(r),
        kind => Err(WireError::Kind { found: kind as u8 }),
    }
}

fn frame_kind_of(r: &mut Reader<'_>, limits: &Limits) -> Result<FrameKind, WireError> {
    if r.remaining() > limits.max_frame {
        return Err(WireError::TooLong {
            what: "frame",
            len: r.remaining(),
            limit: limits.max_frame,
        });
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(WireError::Version { found: version });
    }
    let kind = r.u8()?;
    FrameKind::from_byte(kind).ok_or(WireError::Kind { found: kind })
}

/// What `bytes` holds, from its header alone (size, version, kind), so a
/// node that takes several kinds of frame knows which decoder to call.
///
/// # Errors
/// [`WireError::TooLong`] over [`Limits::max_frame`],
/// [`WireError::Truncated`] under two bytes, [`WireError::Version`],
/// [`WireError::Kind`] for an unknown kind.
pub fn frame_kind(bytes: &[u8], limits: &Limits) -> Result<FrameKind, WireError> {
    frame_kind_of(&mut Reader::new(bytes), limits)
}

/// A request frame for `submit` (see the module docs for the layout).
pub fn encode_request<I: Wire>(submit: &Submit<I>) -> Vec<u8> {
    encode_request_parts(submit.admission, submit.deadline, &submit.inputs)
}

/// A request frame from its parts, for a caller that keeps its inputs (a
/// router re-encodes a request with what is left of its waits when it
/// tries another pool).
pub fn encode_request_parts<I: Wire>(
    admission: Admission,
    deadline: Option<Duration>,
    inputs: &[I],
) -> Vec<u8> {
    let mut out = frame(FrameKind::Request);
    admission.encode(&mut out);
    deadline.encode(&mut out);
    encode_items(inputs, &mut out);
    out
}

/// A request's inputs, encoded once, so that a router that tries several
/// pools re-frames the request with what is left of its waits
/// ([`encode_request_framed`]) without encoding the inputs again, and knows
/// the frame's size before it sends anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedInputs(Vec<u8>);

impl EncodedInputs {
    /// Encodes `inputs` as a request frame carries them.
    pub fn new<I: Wire>(inputs: &[I]) -> Self {
        let mut out = Vec::new();
        encode_items(inputs, &mut out);
        Self(out)
    }

    /// Their encoded size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was encoded (never: the count is always there).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A request frame around inputs encoded beforehand; the same bytes as
/// [`encode_request_parts`] with those inputs.
pub fn encode_request_framed(
    admission: Admission,
    deadline: Option<Duration>,
    inputs: &EncodedInputs,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 2 * 9 + inputs.len());
    out.extend_from_slice(&[VERSION, FrameKind::Request as u8]);
    admission.encode(&mut out);
    deadline.encode(&mut out);
    out.extend_from_slice(&inputs.0);
    out
}

/// The size of the frame [`encode_request_framed`] makes, without making
/// it.
pub fn request_frame_len(
    admission: Admission,
    deadline: Option<Duration>,
    inputs: &EncodedInputs,
) -> usize {
    let mut head = Vec::with_capacity(2 * 9);
    admission.encode(&mut head);
    deadline.encode(&mut head);
    2 + head.len() + inputs.len()
}

/// Reads a request frame.
///
/// # Errors
/// Any [`WireError`]; see [`frame_kind`] for the header's.
pub fn decode_request<I: Wire>(bytes: &[u8], limits: &Limits) -> Result<Submit<I>, WireError> {
    let mut r = open(bytes, limits, FrameKind::Request)?;
    let admission = Admission::decode(&mut r, limits)?;
    let deadline = Option::<Duration>::decode(&mut r, limits)?;
    let inputs = decode_items(&mut r, limits)?;
    r.finish()?;
    Ok(Submit {
        inputs,
        admission,
        deadline,
    })
}

/// A pool's answer to a remote request.
#[derive(Debug, Clone, PartialEq)]
pub enum WireReply<O> {
    /// One output per input, in order.
    Done(Vec<O>),
    /// The request failed.
    Failed {
        /// Why.
        error: PoolError,
        /// `true` when the request never ran (refused at the door, or
        /// timed out waiting for room), so the caller may send it to
        /// another pool; `false` when it may have run.
        refused: bool,
    },
}

impl<O> WireReply<O> {
    /// The outputs, or the error.
    ///
    /// # Errors
    /// The pool's error for a failed request.
    pub fn into_result(self) -> Result<Vec<O>, PoolError> {
        match self {
            Self::Done(outputs) => Ok(outputs),
            Self::Failed { error, .. } => Err(error),
        }
    }
}

/// A reply frame: the pool's `load`, then `reply`.
pub fn encode_reply<O: Wire>(load: &LoadReport, reply: &WireReply<O>) -> Vec<u8> {
    let mut out = frame(FrameKind::Reply);
    load.encode(&mut out);
    match reply {
        WireReply::Done(outputs) => {
            out.push(0);
            encode_items(outputs, &mut out);
        }
        WireReply::Failed { error, refused } => {
            out.push(1);
            error.encode(&mut out);
            put_bool(&mut out, *refused);
        }
    }
    out
}

/// Reads a reply frame: the pool's load and its answer.
///
/// # Errors
/// Any [`WireError`]; see [`frame_kind`] for the header's.
pub fn decode_reply<O: Wire>(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(LoadReport, WireReply<O>), WireError> {
    let mut r = open(bytes, limits, FrameKind::Reply)?;
    let load = LoadReport::decode(&mut r, limits)?;
    let reply = match r.tag("reply", 1)? {
        0 => WireReply::Done(decode_items(&mut r, limits)?),
        _ => WireReply::Failed {
            error: PoolError::decode(&mut r, limits)?,
            refused: r.bool()?,
        },
    };
    r.finish()?;
    Ok((load, reply))
}

/// A ping frame: asks a pool for its [`LoadReport`].
pub fn encode_ping() -> Vec<u8> {
    frame(FrameKind::Ping)
}

/// Checks a ping frame.
///
/// # Errors
/// Any [`WireError`]; see [`frame_kind`] for the header's.
pub fn decode_ping(bytes: &[u8], limits: &Limits) -> Result<(), WireError> {
    open(bytes, limits, FrameKind::Ping)?.finish()
}

/// A load frame: the answer to a ping.
pub fn encode_load(load: &LoadReport) -> Vec<u8> {
    let mut out = frame(FrameKind::Load);
    load.encode(&mut out);
    out
}

/// Reads a load frame.
///
/// # Errors
/// Any [`WireError`]; see [`frame_kind`] for the header's.
pub fn decode_load(bytes: &[u8], limits: &Limits) -> Result<LoadReport, WireError> {
    let mut r = open(bytes, limits, FrameKind::Load)?;
    let load = LoadReport::decode(&mut r, limits)?;
    r.finish()?;
    Ok(load)
}

#[cfg(test)]
mod tests;
