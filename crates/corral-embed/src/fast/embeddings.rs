//! The embedding layer: word + token-type (type 0 for embeddings; the
//! token's own type for a pair of texts) + absolute position embeddings, summed and layer-normalised in one pass per token,
//! written straight into the packed token rows; and where each token's
//! position is (BERT counts from 0, XLM-RoBERTa from past its padding
//! index).
//!
//! This module owns [`Embeddings`].

use super::layer_norm::LayerNorm;

/// Embedding tables and their layer norm.
#[derive(Debug, Clone)]
pub(crate) struct Embeddings {
    /// `[vocab, hidden]`.
    pub(crate) word: Vec<f32>,
    /// `[max_positions, hidden]`.
    pub(crate) position: Vec<f32>,
    /// Row 0 of the token-type table, `[hidden]`.
    pub(crate) token_type0: Vec<f32>,
    /// The whole token-type table, `[type_vocab_size, hidden]` (row 0 is
    /// `token_type0`).
    pub(crate) token_types: Vec<f32>,
    /// The layer norm applied to the sum.
    pub(crate) norm: LayerNorm,
    /// Hidden size.
    pub(crate) hidden: usize,
    /// XLM-RoBERTa's padding index, past which positions start (see
    /// [`Embeddings::push_positions`]); `None` for BERT.
    pub(crate) padding_idx: Option<u32>,
}

impl Embeddings {
    /// Number of rows in the word table.
    pub(crate) fn vocab(&self) -> usize {
        self.word.len() / self.hidden
    }

    /// Number of rows in the token-type table.
    pub(crate) fn type_vocab(&self) -> usize {
        self.token_types.len() / self.hidden
    }

    /// Number of rows in the position table.
    pub(crate) fn max_positions(&self) -> usize {
        self.position.len() / self.hidden
    }

    /// Appends the positions of one text's tokens `ids` to `out`: `0..n`
    /// for BERT; for XLM-RoBERTa what Hugging Face's
    /// `create_position_ids_from_input_ids` gives — `padding_idx + 1 + i`
    /// for the `i`-th token that is not `padding_idx`, and `padding_idx`
    /// for a token that is.
    pub(crate) fn push_positions(&self, ids: &[u32], out: &mut Vec<u32>) {
        match self.padding_idx {
            None => out.extend(0..ids.len() as u32),
            Some(pad) => {
                let mut next = pad + 1;
                out.extend(ids.iter().map(|&id| {
                    if id == pad {
                        pad
                    } else {
                        next += 1;
                        next - 1
                    }
                }));
            }
        }
    }

    /// Writes the normalised embedding of token `ids[t]` at position
    /// `positions[t]` into row `t` of `out` (`[ids.len(), hidden]`).
    /// Callers have checked that ids and positions are in range.
    pub(crate) fn forward(&self, ids: &[u32], positions: &[u32], out: &mut [f32]) {
        let h = self.hidden;
        assert_eq!(ids.len(), positions.len());
        assert!(out.len() >= ids.len() * h);
        for ((&id, &pos), row) in ids.iter().zip(positions).zip(out.chunks_exact_mut(h)) {
            let w = &self.word[id as usize * h..(id as usize + 1) * h];
            let p = &self.position[pos as usize * h..(pos as usize + 1) * h];
            // Same association order as candle-transformers: (word + type) + position.
            for (((o, w), t), p) in row.iter_mut().zip(w).zip(&self.token_type0).zip(p) {
                *o = (w + t) + p;
            }
        }
        self.norm.forward_in_place(&mut out[..ids.len() * h], None);
    }

    /// [`Embeddings::forward`] with token `t` of type `types[t]` rather
    /// than 0 (callers have checked the types are in range).
    pub(crate) fn forward_typed(
        &self,
        ids: &[u32],
        types: &[u32],
        positions: &[u32],
        out: &mut [f32],
    ) {
        let h = self.hidden;
        assert_eq!(ids.len(), positions.len());
        assert_eq!(ids.len(), types.len());
        assert!(out.len() >= ids.len() * h);
        let rows = ids.iter().zip(types).zip(positions);
        for (((&id, &ty), &pos), row) in rows.zip(out.chunks_exact_mut(h)) {
            let w = &self.word[id as usize * h..(id as usize + 1) * h];
            let t = &self.token_types[ty as usize * h..(ty as usize + 1) * h];
            let p = &self.position[pos as usize * h..(pos as usize + 1) * h];
            for (((o, w), t), p) in row.iter_mut().zip(w).zip(t).zip(p) {
                *o = (w + t) + p;
            }
        }
        self.norm.forward_in_place(&mut out[..ids.len() * h], None);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{candle_mat, max_abs_diff, random_vec};
    use super::*;
    use candle_core::{Device, Module, Tensor};

    #[test]
    fn matches_candle_embedding_sum_and_norm() {
        let (vocab, maxpos, h) = (11, 9, 7);
        let word = random_vec(vocab * h, 50);
        let position = random_vec(maxpos * h, 51);
        let types = random_vec(2 * h, 52);
        let gamma = random_vec(h, 53);
        let beta = random_vec(h, 54);
        let emb = Embeddings {
            word: word.clone(),
            position: position.clone(),
            token_type0: types[..h].to_vec(),
            token_types: types.clone(),
            norm: LayerNorm {
                gamma: gamma.clone(),
                beta: beta.clone(),
                eps: 1e-12,
            },
            hidden: h,
            padding_idx: None,
        };
        let ids = [3u32, 10, 0, 5, 5];
        let pos = [0u32, 1, 2, 3, 8];
        let mut got = vec![0.0; ids.len() * h];
        emb.forward(&ids, &pos, &mut got);

        let dev = Device::Cpu;
        let e = |t: &[f32], rows| candle_nn::Embedding::new(candle_mat(t, rows, h), h);
        let idt = Tensor::new(&ids[..], &dev).unwrap();
        let post = Tensor::new(&pos[..], &dev).unwrap();
        let zeros = Tensor::new(&[0u32; 5][..], &dev).unwrap();
        let sum = ((e(&word, vocab).forward(&idt).unwrap()
            + e(&types, 2).forward(&zeros).unwrap())
        .unwrap()
            + e(&position, maxpos).forward(&post).unwrap())
        .unwrap();
        let ln = candle_nn::LayerNorm::new(
            Tensor::new(&gamma[..], &dev).unwrap(),
            Tensor::new(&beta[..], &dev).unwrap(),
            1e-12,
        );
        let want: Vec<f32> = ln
            .forward(&sum)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-5);

        // With token types: type 0 everywhere is bit for bit the untyped
        // path; mixed types match candle's sum with those rows.
        let mut typed = vec![0.0; ids.len() * h];
        emb.forward_typed(&ids, &[0; 5], &pos, &mut typed);
        assert_eq!(typed, got);
        let tys = [0u32, 0, 1, 1, 1];
        emb.forward_typed(&ids, &tys, &pos, &mut typed);
        let tyt = Tensor::new(&tys[..], &dev).unwrap();
        let sum = ((e(&word, vocab).forward(&idt).unwrap() + e(&types, 2).forward(&tyt).unwrap())
            .unwrap()
            + e(&position, maxpos).forward(&post).unwrap())
        .unwrap();
        let want: Vec<f32> = ln
            .forward(&sum)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(max_abs_diff(&typed, &want) < 1e-5);
        assert!(max_abs_diff(&typed, &got) > 1e-3, "type 1 must change rows");
    }

    #[test]
    fn positions_count_from_zero_or_past_the_padding_index() {
        let mut emb = Embeddings {
            word: vec![0.0; 4],
            position: vec![0.0; 4],
            token_type0: vec![0.0; 2],
            token_types: vec![0.0; 2],
            norm: LayerNorm {
                gamma: vec![1.0; 2],
                beta: vec![0.0; 2],
                eps: 1e-12,
            },
            hidden: 2,
            padding_idx: None,
        };
        let mut out = vec![9];
        emb.push_positions(&[0, 5, 1, 7], &mut out);
        assert_eq!(out, [9, 0, 1, 2, 3]);
        emb.padding_idx = Some(1);
        out.clear();
        // The pad id itself sits at the padding index and is not counted.
        emb.push_positions(&[0, 5, 1, 7], &mut out);
        assert_eq!(out, [2, 3, 1, 4]);
    }
}
