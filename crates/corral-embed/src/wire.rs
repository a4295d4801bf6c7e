//! The wire forms of [`EmbedInput`] and [`EmbedOutput`], so that embedding
//! pools can be reached across ractor_cluster nodes (feature `cluster`):
//! this crate implements [`corral_cluster::Wire`] for its own types, as any
//! capability does, and the cluster crate knows nothing of embeddings.
//!
//! | Value | Bytes |
//! |-------|-------|
//! | [`EmbedInput`] | tag `0` then a string (`Text`), or tag `1` then a `Vec<u32>` (`Tokens`) |
//! | [`EmbedOutput`] | `vector: Vec<f32>`, `batch_time: duration`; `batch_started` does not travel (see its impl) |
//!
//! Strings, vectors and durations are written as `corral_cluster::wire`
//! writes them, within the receiver's
//! [`Limits`](corral_cluster::wire::Limits).

use std::time::{Duration, Instant};

use corral_cluster::wire::{Limits, Reader, Wire, WireError};

use crate::{EmbedInput, EmbedOutput};

/// Tag `0` and the text, or tag `1` and the token ids.
impl Wire for EmbedInput {
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
impl Wire for EmbedOutput {
    const MIN_LEN: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        self.vector.encode(out);
        self.batch_time.encode(out);
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        let vector = Vec::<f32>::decode(r, limits)?;
        let batch_time = Duration::decode(r, limits)?;
        let now = Instant::now();
        Ok(Self {
            vector,
            batch_started: now.checked_sub(batch_time).unwrap_or(now),
            batch_time,
        })
    }
}

#[cfg(test)]
mod tests;
