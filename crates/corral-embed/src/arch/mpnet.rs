//! MPNet (`all-mpnet-base-v2`, sentence-transformers' quality default),
//! written here on candle's tensor ops: candle-transformers has no MPNet.
//!
//! MPNet is a post-norm BERT-style encoder whose attention adds, per head, a
//! learned bias for the (bucketed) distance between query and key — the
//! relative position bias, one table shared by all layers — on top of
//! absolute position embeddings that start past the padding index (1), as
//! RoBERTa's do. It has no token types. Weight names are those
//! `MPNetModel.save_pretrained` writes (`embeddings.*`,
//! `encoder.layer.N.attention.attn.{q,k,v,o}`,
//! `encoder.relative_attention_bias`), bare or under `mpnet.`.

use candle_core::{DType, Module, Tensor};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

/// MPNet's padding index: its positions start at 2 (padding index + 1).
pub(crate) const PADDING_IDX: usize = 1;

/// The buckets MPNet's attention uses (transformers passes 32 whatever the
/// configuration's table size).
const NUM_BUCKETS: usize = 32;

/// `config.json` of an MPNet model (`model_type` `"mpnet"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Config {
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) intermediate_size: usize,
    #[serde(default = "gelu")]
    pub(crate) hidden_act: String,
    pub(crate) max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub(crate) layer_norm_eps: f64,
    #[serde(default = "default_buckets")]
    pub(crate) relative_attention_num_buckets: usize,
}

fn gelu() -> String {
    "gelu".into()
}

fn default_eps() -> f64 {
    1e-12
}

fn default_buckets() -> usize {
    NUM_BUCKETS
}

impl Config {
    /// Checks what this implementation supports: exact (erf) GELU, heads
    /// that split the hidden size, a bias table of at least 32 buckets.
    ///
    /// # Errors
    /// A sentence naming the setting.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (gelu is)",
                self.hidden_act
            ));
        }
        if self.num_attention_heads == 0
            || self.hidden_size == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden size {} is not a multiple of the {} attention heads",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.relative_attention_num_buckets < NUM_BUCKETS {
            return Err(format!(
                "relative_attention_num_buckets {} is under the {NUM_BUCKETS} MPNet uses",
                self.relative_attention_num_buckets
            ));
        }
        Ok(())
    }

    /// The longest input: the position table less the padding index and
    /// the row before it.
    pub(crate) fn max_tokens(&self) -> usize {
        self.max_position_embeddings.saturating_sub(PADDING_IDX + 1)
    }
}

/// The bucket of the distance `key - query` (MPNet's, T5's bidirectional
/// scheme with 32 buckets and a maximum distance of 128): 16 buckets per
/// direction (keys after the query in the upper 16), distances under 8 each
/// their own, longer ones on a log scale up to 128 and beyond in the last.
///
/// The log-scale bucket is `8 + ⌊2·log2(n/8)⌋`, computed exactly in
/// integers: the largest `k` with `n² ≥ 2^(k+6)`; PyTorch's fp32 formula
/// gives the same values (pinned by a test against its table).
pub(crate) fn relative_bucket(relative: i64) -> usize {
    let half = NUM_BUCKETS / 2;
    let max_exact = half / 2;
    let base = if relative > 0 { half } else { 0 };
    let n = relative.unsigned_abs() as usize;
    if n < max_exact {
        return base + n;
    }
    let sq = (n as u128) * (n as u128);
    let mut k = 0;
    while k + 1 < half - max_exact && sq >= 1u128 << (k + 1 + 6) {
        k += 1;
    }
    base + max_exact + k
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let attn = vb.pp("attention");
        Ok(Self {
            q: linear(h, h, attn.pp("attn.q"))?,
            k: linear(h, h, attn.pp("attn.k"))?,
            v: linear(h, h, attn.pp("attn.v"))?,
            o: linear(h, h, attn.pp("attn.o"))?,
            attn_norm: layer_norm(h, c.layer_norm_eps, attn.pp("LayerNorm"))?,
            intermediate: linear(h, c.intermediate_size, vb.pp("intermediate.dense"))?,
            output: linear(c.intermediate_size, h, vb.pp("output.dense"))?,
            out_norm: layer_norm(h, c.layer_norm_eps, vb.pp("output.LayerNorm"))?,
        })
    }

    /// One layer over `x` (`[b, s, h]`) with `bias` (`[b or 1, heads, s, s]`:
    /// position bias plus the padding mask).
    fn forward(&self, x: &Tensor, bias: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let d = h / heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, heads, d))?.transpose(1, 2)?.contiguous()
        };
        let q = split(self.q.forward(x)?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, s, h))?;
        let attn = self.attn_norm.forward(&(self.o.forward(&ctx)? + x)?)?;
        let mid = super::gelu::gelu_erf(&self.intermediate.forward(&attn)?)?;
        self.out_norm.forward(&(self.output.forward(&mid)? + attn)?)
    }
}

/// A loaded MPNet encoder.
pub(crate) struct MpnetModel {
    words: Embedding,
    positions: Embedding,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    relative_bias: Embedding,
    heads: usize,
}

impl MpnetModel {
    /// Loads the weights from `vb` (bare names, or under `mpnet.` as a
    /// `MPNetFor…` checkpoint keeps them).
    ///
    /// # Errors
    /// candle's, naming a tensor that is missing or misshapen.
    pub(crate) fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("mpnet")
        };
        let h = c.hidden_size;
        let emb = vb.pp("embeddings");
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), c))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            words: embedding(c.vocab_size, h, emb.pp("word_embeddings"))?,
            positions: embedding(c.max_position_embeddings, h, emb.pp("position_embeddings"))?,
            emb_norm: layer_norm(h, c.layer_norm_eps, emb.pp("LayerNorm"))?,
            layers,
            relative_bias: embedding(
                c.relative_attention_num_buckets,
                c.num_attention_heads,
                vb.pp("encoder.relative_attention_bias"),
            )?,
            heads: c.num_attention_heads,
        })
    }

    /// The last hidden states (`[b, s, h]`) of `ids` (`[b, s]`, each row's
    /// real tokens first) under `mask` (`[b, s]`, 1 real, 0 padding).
    ///
    /// # Errors
    /// candle's.
    pub(crate) fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let device = ids.device();
        // Positions as transformers derives them from the ids: the real
        // tokens count up from padding index + 1, padding sits at the
        // padding index.
        let mask_rows = mask.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let mut positions = Vec::with_capacity(b * s);
        for row in &mask_rows {
            let mut seen = 0u32;
            for &m in row {
                seen += m;
                positions.push(if m != 0 {
                    seen + PADDING_IDX as u32
                } else {
                    PADDING_IDX as u32
                });
            }
        }
        let positions = Tensor::from_vec(positions, (b, s), device)?;
        let x = (self.words.forward(ids)? + self.positions.forward(&positions)?)?;
        let mut x = self.emb_norm.forward(&x)?;

        let buckets: Vec<u32> = (0..s as i64)
            .flat_map(|q| (0..s as i64).map(move |k| relative_bucket(k - q) as u32))
            .collect();
        let buckets = Tensor::from_vec(buckets, (s, s), device)?;
        // [s, s, heads] -> [1, heads, s, s]
        let position_bias = self
            .relative_bias
            .forward(&buckets)?
            .permute((2, 0, 1))?
            .unsqueeze(0)?;
        let keep = mask.to_dtype(DType::F32)?.reshape((b, 1, 1, s))?;
        let padding = ((1.0 - keep)? * f64::from(f32::MIN))?;
        let bias = position_bias.broadcast_add(&padding)?.contiguous()?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, self.heads)?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::relative_bucket;

    #[test]
    fn buckets_match_pytorchs_table() {
        // (first distance key - query, bucket) at each change of bucket,
        // from transformers' MPNetEncoder.relative_position_bucket over
        // -600..=600 (PyTorch 2.x, fp32).
        let changes: &[(i64, usize)] = &[
            (-600, 15),
            (-90, 14),
            (-63, 13),
            (-45, 12),
            (-31, 11),
            (-22, 10),
            (-15, 9),
            (-11, 8),
            (-7, 7),
            (-6, 6),
            (-5, 5),
            (-4, 4),
            (-3, 3),
            (-2, 2),
            (-1, 1),
            (0, 0),
            (1, 17),
            (2, 18),
            (3, 19),
            (4, 20),
            (5, 21),
            (6, 22),
            (7, 23),
            (8, 24),
            (12, 25),
            (16, 26),
            (23, 27),
            (32, 28),
            (46, 29),
            (64, 30),
            (91, 31),
        ];
        for (i, &(start, bucket)) in changes.iter().enumerate() {
            let end = changes.get(i + 1).map_or(601, |c| c.0);
            for d in start..end {
                assert_eq!(relative_bucket(d), bucket, "distance {d}");
            }
        }
        assert_eq!(relative_bucket(100_000), 31);
        assert_eq!(relative_bucket(-100_000), 15);
    }
}
