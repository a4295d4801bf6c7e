//! The wire forms of [`EmbedInput`] and [`EmbedOutput`], and of
//! [`ScoreInput`] and [`ScoreOutput`], so that embedding and scoring
//! pools can be reached across ractor_cluster nodes (feature `cluster`):
//! this crate implements [`corral_cluster::Wire`] for its own types, as any
//! capability does, and the cluster crate knows nothing of embeddings.
//!
//! | Value | Bytes |
//! |-------|-------|
//! | [`EmbedInput`] | tag `0` then a string (`Text`), or tag `1` then a `Vec<u32>` (`Tokens`) |
//! | [`EmbedOutput`] | `vector: Vec<f32>`, `batch_time: duration`; `batch_started` does not travel (see its impl) |
//! | [`ScoreInput`] | tag `0` then a string (`Text`), tag `1` then two strings (`Pair`), or tag `2` then `ids: Vec<u32>`, `type_ids: Vec<u32>`, `truncated: bool` (`Tokens`) |
//! | [`ScoreOutput`] | `logits: Vec<f32>`, `batch_time: duration`; `batch_started` as [`EmbedOutput`]'s |
//!
//! Strings, vectors, booleans and durations are written as `corral_cluster::wire`
//! writes them, within the receiver's
//! [`Limits`](corral_cluster::wire::Limits).

use std::time::{Duration, Instant};

use corral_cluster::wire::{put_bool, Limits, Reader, Wire, WireError};

use crate::{EmbedInput, EmbedOutput, PairTokenized, ScoreInput, ScoreOutput};

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
        let (batch_started, batch_time) = decode_batch_time(r, limits)?;
        Ok(Self {
            vector,
            batch_started,
            batch_time,
        })
    }
}

/// Tag `0` and the text, tag `1` and the two texts, or tag `2` and the
/// ids, token types and truncation flag. Lengths are not checked against
/// each other here: the scorer refuses inconsistent tokens as invalid
/// input, as it does locally.
impl Wire for ScoreInput {
    const MIN_LEN: usize = 5;

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Text(s) => {
                out.push(0);
                s.encode(out);
            }
            Self::Pair(a, b) => {
                out.push(1);
                a.encode(out);
                b.encode(out);
            }
            Self::Tokens(t) => {
                out.push(2);
                t.ids.encode(out);
                t.type_ids.encode(out);
                put_bool(out, t.truncated);
            }
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        match r.tag("score input", 2)? {
            0 => String::decode(r, limits).map(Self::Text),
            1 => {
                let a = String::decode(r, limits)?;
                let b = String::decode(r, limits)?;
                Ok(Self::Pair(a, b))
            }
            _ => {
                let ids = Vec::<u32>::decode(r, limits)?;
                let type_ids = Vec::<u32>::decode(r, limits)?;
                let truncated = r.bool()?;
                Ok(Self::Tokens(PairTokenized {
                    ids,
                    type_ids,
                    truncated,
                }))
            }
        }
    }
}

/// The logits and `batch_time`; `batch_started` is set on the receiving
/// node as [`EmbedOutput`]'s is.
impl Wire for ScoreOutput {
    const MIN_LEN: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        self.logits.encode(out);
        self.batch_time.encode(out);
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        let logits = Vec::<f32>::decode(r, limits)?;
        let (batch_started, batch_time) = decode_batch_time(r, limits)?;
        Ok(Self {
            logits,
            batch_started,
            batch_time,
        })
    }
}

/// A batch's `batch_time`, and its start on this node's clock: `now -
/// batch_time`, or `now` where the clock cannot go back that far.
fn decode_batch_time(
    r: &mut Reader<'_>,
    limits: &Limits,
) -> Result<(Instant, Duration), WireError> {
    let batch_time = Duration::decode(r, limits)?;
    let now = Instant::now();
    Ok((now.checked_sub(batch_time).unwrap_or(now), batch_time))
}

#[cfg(test)]
mod tests;
