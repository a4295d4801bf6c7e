//! The one pooling implementation: from the packed last hidden states of a
//! batch (`[tokens, hidden]`, each text's real tokens one after another, no
//! padding) and the texts' offsets to one vector per text — mean, `[CLS]`
//! or last-token pooling, then L2 normalisation when asked ([`l2_normalize`], the one
//! implementation, public so that a front end that cuts or reshapes vectors
//! scales them the same way).
//!
//! Both engines hand their output here packed (the candle engine drops its
//! padding rows first), so pooling never sees a mask.

use crate::{EmbedError, EmbedSpec, Pooling};

/// The dense pooling an embedder with `spec` uses: the spec's, else the
/// one the directory declares (`declared`), else mean.
///
/// # Errors
/// [`EmbedError::Config`] when that is [`Pooling::Splade`], which gives
/// sparse vectors ([`crate::SparseEncoder`]), not embeddings.
pub(crate) fn dense_pooling(
    spec: &EmbedSpec,
    declared: Option<Pooling>,
) -> Result<Pooling, EmbedError> {
    match spec.pooling.or(declared).unwrap_or(Pooling::Mean) {
        Pooling::Splade => Err(EmbedError::config(
            spec.model_dir.join("config.json"),
            "pooling splade gives sparse vectors over the vocabulary, not embeddings: \
             load the model with SparseEncoder (corral serve answers it on POST /embed_sparse)",
        )),
        dense => Ok(dense),
    }
}

/// Pools `hidden` (`[offsets.last(), h]` row-major) into one `h`-vector per
/// text: text `i` owns rows `offsets[i]..offsets[i + 1]`. A text without
/// tokens pools to zeros (and stays zero after normalisation).
pub(crate) fn pool(
    hidden: &[f32],
    h: usize,
    offsets: &[usize],
    pooling: Pooling,
    normalize: bool,
) -> Vec<Vec<f32>> {
    offsets
        .windows(2)
        .map(|w| {
            let rows = &hidden[w[0] * h..w[1] * h];
            let mut v = match pooling {
                Pooling::Cls => rows.get(..h).map_or_else(|| vec![0.0; h], <[f32]>::to_vec),
                Pooling::LastToken => rows
                    .len()
                    .checked_sub(h)
                    .map_or_else(|| vec![0.0; h], |last| rows[last..].to_vec()),
                Pooling::Mean => {
                    let mut sum = vec![0f32; h];
                    for row in rows.chunks_exact(h) {
                        for (s, x) in sum.iter_mut().zip(row) {
                            *s += x;
                        }
                    }
                    let inv = 1.0 / (w[1] - w[0]).max(1) as f32;
                    sum.iter_mut().for_each(|s| *s *= inv);
                    sum
                }
                // The embedder refuses it at load (`dense_pooling`).
                Pooling::Splade => unreachable!("splade pooling is sparse, not pooled here"),
            };
            if normalize {
                l2_normalize(&mut v);
            }
            v
        })
        .collect()
}

/// Scales `v` to unit L2 norm, dividing by the norm or `1e-12`, whichever
/// is larger (as PyTorch's `F.normalize`, which sentence-transformers uses):
/// a zero vector stays zero.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_cls_last_token_and_normalisation_over_packed_rows() {
        // Two texts of 2 and 1 tokens, then an empty one; h = 2.
        let hidden = [1.0, 2.0, 3.0, 6.0, -4.0, 0.0];
        let offsets = [0, 2, 3, 3];
        let mean = pool(&hidden, 2, &offsets, Pooling::Mean, false);
        assert_eq!(mean, vec![vec![2.0, 4.0], vec![-4.0, 0.0], vec![0.0, 0.0]]);
        let cls = pool(&hidden, 2, &offsets, Pooling::Cls, false);
        assert_eq!(cls, vec![vec![1.0, 2.0], vec![-4.0, 0.0], vec![0.0, 0.0]]);
        let last = pool(&hidden, 2, &offsets, Pooling::LastToken, false);
        assert_eq!(last, vec![vec![3.0, 6.0], vec![-4.0, 0.0], vec![0.0, 0.0]]);
        let unit = pool(&hidden, 2, &offsets, Pooling::Mean, true);
        let n = 20f32.sqrt();
        assert_eq!(unit[0], vec![2.0 / n, 4.0 / n]);
        assert_eq!(unit[1], vec![-1.0, 0.0]);
        assert_eq!(unit[2], vec![0.0, 0.0]);
    }
}
