//! The encodings of values: the [`Wire`] trait, the item lists a frame
//! carries, and the wire forms of the standard and runtime types a frame is
//! built from (durations, strings, vectors, [`Admission`], [`PoolError`],
//! [`LoadReport`], the synthetic backend's item).

use std::time::Duration;

use corral_core::{Admission, PoolError};

use super::format::{Limits, WireError};
use super::reader::Reader;
use super::writer::{put_bool, put_len, put_str};

/// A value with a wire form.
///
/// Decoding is strict: a value decodes only from the bytes its `encode`
/// writes, so `decode` followed by `encode` gives the same bytes back.
///
/// This is how a capability makes its inputs and outputs travel: implement
/// it in the crate that defines them, with the [`Reader`] methods and the
/// `put_*` writers (see [the module docs](super#extending)). An
/// implementation must
/// - never panic, whatever the bytes;
/// - size nothing from the frame without checking it first: lengths and
///   counts through [`Reader::length`] or [`Reader::string`], within a
///   [`Limits`] bound;
/// - keep [`Wire::MIN_LEN`] at most the size of its smallest encoding.
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
            PoolError::TooLarge(m) => {
                out.push(7);
                put_str(out, m);
            }
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        Ok(match r.tag("pool error", 7)? {
            0 => PoolError::Overloaded {
                retry_after: Duration::decode(r, limits)?,
            },
            1 => PoolError::TimedOut,
            2 => PoolError::WorkerLost,
            3 => PoolError::ShuttingDown,
            4 => PoolError::InvalidInput(r.string("error message", limits.max_message)?),
            5 => PoolError::Backend(r.string("error message", limits.max_message)?),
            6 => PoolError::DeadlinePassed,
            _ => PoolError::TooLarge(r.string("error message", limits.max_message)?),
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
