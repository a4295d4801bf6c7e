//! Helpers for testing a [`Wire`] implementation (feature `testing`), here
//! and in each capability's crate: [`round_trip`] and [`decode_exact`] for
//! one value, [`on_the_wire`] for what a duration comes back as, and
//! [`Mutation`], one byte-level edit of an encoded frame, for the property
//! tests that hold a decoder to never panicking on damaged bytes.

use std::time::Duration;

use super::{Limits, Reader, Wire, WireError};

/// Encodes `v`, decodes it under the default [`Limits`] (all of the bytes,
/// nothing left over), checks that encoding the result gives the same
/// bytes, and returns it.
///
/// # Panics
/// If the value does not decode, leaves bytes over, or re-encodes
/// differently: the failures a test is after.
pub fn round_trip<T: Wire>(v: &T) -> T {
    let mut out = Vec::new();
    v.encode(&mut out);
    let mut r = Reader::new(&out);
    let back = T::decode(&mut r, &Limits::default()).expect("decodes");
    r.finish().expect("no trailing bytes");
    let mut again = Vec::new();
    back.encode(&mut again);
    assert_eq!(again, out, "decode then encode gives the same bytes");
    back
}

/// Decodes one `T` from exactly `bytes`.
///
/// # Errors
/// The decoder's error, or trailing bytes.
pub fn decode_exact<T: Wire>(bytes: &[u8], limits: &Limits) -> Result<T, WireError> {
    let mut r = Reader::new(bytes);
    let v = T::decode(&mut r, limits)?;
    r.finish()?;
    Ok(v)
}

/// What a duration comes back as: whole microseconds, saturating.
pub fn on_the_wire(d: Duration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// One edit of a frame's bytes. Positions are taken modulo the frame's
/// length, so any numbers make a valid edit of any frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// XOR the byte at the position with a non-zero mask.
    Flip(usize, u8),
    /// Insert a byte before the position (or at the end).
    Insert(usize, u8),
    /// Remove the byte at the position.
    Delete(usize),
    /// Cut the frame at the position.
    Truncate(usize),
}

impl Mutation {
    /// An edit from three arbitrary numbers — `kind` picks the edit
    /// (modulo 4), `at` the position, `byte` the mask or the inserted byte
    /// (a flip's zero mask becomes 1) — so that a property test's strategy
    /// is `(any::<u8>(), any::<usize>(), any::<u8>()).prop_map(Mutation::from_parts)`.
    pub fn from_parts((kind, at, byte): (u8, usize, u8)) -> Self {
        match kind % 4 {
            0 => Self::Flip(at, byte.max(1)),
            1 => Self::Insert(at, byte),
            2 => Self::Delete(at),
            _ => Self::Truncate(at),
        }
    }

    /// Applies the edit to `bytes` (an edit of an empty frame that needs a
    /// byte to act on does nothing).
    pub fn apply(&self, bytes: &mut Vec<u8>) {
        let n = bytes.len();
        match *self {
            Self::Flip(i, b) if n > 0 => bytes[i % n] ^= b,
            Self::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Self::Delete(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Self::Truncate(i) => bytes.truncate(i % (n + 1)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mutation;

    #[test]
    fn each_edit_acts_at_its_position_modulo_the_length() {
        let edit = |m: Mutation| {
            let mut b = vec![1, 2, 3];
            m.apply(&mut b);
            b
        };
        assert_eq!(edit(Mutation::from_parts((0, 4, 0))), [1, 3, 3]);
        assert_eq!(edit(Mutation::from_parts((1, 3, 9))), [1, 2, 3, 9]);
        assert_eq!(edit(Mutation::from_parts((2, 5, 0))), [1, 2]);
        assert_eq!(edit(Mutation::from_parts((7, 2, 0))), [1, 2]);
        let mut empty = vec![];
        Mutation::Flip(3, 1).apply(&mut empty);
        Mutation::Delete(3).apply(&mut empty);
        assert!(empty.is_empty());
    }
}
