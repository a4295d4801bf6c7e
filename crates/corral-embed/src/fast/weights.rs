//! Loading FastBert from a safetensors file, the way candle's `bert.rs`
//! does it: each part loads itself from [`Weights`] under its own prefix —
//! [`Embeddings::load`] from `embeddings`, [`EncoderLayer::load`] from
//! `encoder.layer.{i}`, [`LayerNorm::load`] and [`Weights::linear`] below
//! them — transposing and fusing what the kernels want.
//!
//! The loaders live here, apart from the kernels' modules, so that the
//! forward pass and its loading change independently.
//!
//! This module owns [`Weights`].

use super::embeddings::Embeddings;
use super::layer::{Dense, EncoderLayer};
use super::layer_norm::LayerNorm;
use super::matmul::Linear;
use super::{FastBertConfig, FastBertError};

/// The prefixes a checkpoint may put before the encoder's tensor names: none
/// (a bare `BertModel` / `XLMRobertaModel`), or the base-model attribute of
/// a model with a head (`BertForMaskedLM`, `XLMRobertaForMaskedLM`, …).
const PREFIXES: [&str; 3] = ["", "bert.", "roberta."];

/// The tensors of one safetensors file, read by name under the prefix the
/// file uses (found once, from the word embeddings).
pub(crate) struct Weights<'a> {
    st: safetensors::SafeTensors<'a>,
    prefix: &'static str,
}

impl std::fmt::Debug for Weights<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("prefix", &self.prefix)
            .field("tensors", &self.st.len())
            .finish()
    }
}

impl<'a> Weights<'a> {
    /// Parses the safetensors `bytes` and finds the prefix of its names
    /// (none, `bert.` or `roberta.`).
    ///
    /// # Errors
    /// [`FastBertError::SafeTensors`] for bytes that are not safetensors,
    /// [`FastBertError::MissingTensor`] when no prefix has
    /// `embeddings.word_embeddings.weight`.
    pub(crate) fn from_bytes(bytes: &'a [u8]) -> Result<Self, FastBertError> {
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| FastBertError::SafeTensors(e.to_string()))?;
        let probe = "embeddings.word_embeddings.weight";
        let prefix = PREFIXES
            .into_iter()
            .find(|p| st.tensor(&format!("{p}{probe}")).is_ok())
            .ok_or_else(|| {
                FastBertError::MissingTensor(format!(
                    "{probe} (also looked for it under {})",
                    PREFIXES[1..].join(" and ")
                ))
            })?;
        Ok(Self { st, prefix })
    }

    /// The F32 tensor `name` (under the file's prefix), checked to have
    /// `shape`.
    ///
    /// # Errors
    /// [`FastBertError::MissingTensor`] or [`FastBertError::BadTensor`]
    /// (another dtype or shape).
    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, FastBertError> {
        let full = format!("{}{name}", self.prefix);
        let view = self
            .st
            .tensor(&full)
            .map_err(|_| FastBertError::MissingTensor(full.clone()))?;
        let bad = |reason: String| FastBertError::BadTensor {
            name: full.clone(),
            reason,
        };
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(bad(format!("dtype {:?}, expected F32", view.dtype())));
        }
        if view.shape() != shape {
            return Err(bad(format!(
                "shape {:?}, expected {:?}",
                view.shape(),
                shape
            )));
        }
        let data = view.data();
        let mut out = vec![0.0f32; data.len() / 4];
        if cfg!(target_endian = "little") {
            // One copy of the bytes (safetensors are little-endian, as is
            // this machine): the file's tensors need not be 4-byte aligned,
            // so they are copied, not cast in place.
            bytemuck::cast_slice_mut::<f32, u8>(&mut out).copy_from_slice(data);
        } else {
            for (v, b) in out.iter_mut().zip(data.chunks_exact(4)) {
                *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Ok(out)
    }

    /// The PyTorch `nn.Linear` at `prefix` (`weight` `[n, k]`, `bias`
    /// `[n]`).
    ///
    /// # Errors
    /// As [`Weights::get`].
    pub(crate) fn linear(&self, prefix: &str, n: usize, k: usize) -> Result<Linear, FastBertError> {
        let w = self.get(&format!("{prefix}.weight"), &[n, k])?;
        let b = self.get(&format!("{prefix}.bias"), &[n])?;
        Ok(Linear::from_torch(w, b, n, k))
    }
}

impl LayerNorm {
    /// The layer norm at `prefix` (`weight`/`bias`, or `gamma`/`beta` in
    /// old checkpoints) over `h` features.
    ///
    /// # Errors
    /// As [`Weights::get`].
    pub(crate) fn load(
        w: &Weights<'_>,
        prefix: &str,
        h: usize,
        eps: f32,
    ) -> Result<Self, FastBertError> {
        let gamma = w
            .get(&format!("{prefix}.weight"), &[h])
            .or_else(|_| w.get(&format!("{prefix}.gamma"), &[h]))?;
        let beta = w
            .get(&format!("{prefix}.bias"), &[h])
            .or_else(|_| w.get(&format!("{prefix}.beta"), &[h]))?;
        Ok(Self { gamma, beta, eps })
    }
}

impl Embeddings {
    /// The embedding tables at `prefix` (`embeddings`): word, position,
    /// token type (row 0 apart, for the untyped path), and their layer norm; positions start past
    /// [`FastBertConfig::padding_idx`] when it is set.
    ///
    /// # Errors
    /// As [`Weights::get`].
    pub(crate) fn load(
        w: &Weights<'_>,
        prefix: &str,
        config: &FastBertConfig,
    ) -> Result<Self, FastBertError> {
        let h = config.hidden_size;
        let types = w.get(
            &format!("{prefix}.token_type_embeddings.weight"),
            &[config.type_vocab_size, h],
        )?;
        Ok(Self {
            word: w.get(
                &format!("{prefix}.word_embeddings.weight"),
                &[config.vocab_size, h],
            )?,
            position: w.get(
                &format!("{prefix}.position_embeddings.weight"),
                &[config.max_position_embeddings, h],
            )?,
            token_type0: types[..h].to_vec(),
            token_types: types,
            norm: LayerNorm::load(
                w,
                &format!("{prefix}.LayerNorm"),
                h,
                config.layer_norm_eps as f32,
            )?,
            hidden: h,
            padding_idx: config.padding_idx,
        })
    }
}

impl EncoderLayer {
    /// The encoder layer at `prefix` (`encoder.layer.{i}`), fp32, with Q, K
    /// and V fused into one projection.
    ///
    /// # Errors
    /// As [`Weights::get`].
    pub(crate) fn load(
        w: &Weights<'_>,
        prefix: &str,
        config: &FastBertConfig,
    ) -> Result<Self, FastBertError> {
        let (h, inter) = (config.hidden_size, config.intermediate_size);
        let eps = config.layer_norm_eps as f32;
        let p = prefix;
        let q = w.linear(&format!("{p}.attention.self.query"), h, h)?;
        let k = w.linear(&format!("{p}.attention.self.key"), h, h)?;
        let v = w.linear(&format!("{p}.attention.self.value"), h, h)?;
        Ok(Self {
            qkv: Dense::F32(Linear::concat_outputs(&[q, k, v])),
            attn_out: Dense::F32(w.linear(&format!("{p}.attention.output.dense"), h, h)?),
            attn_norm: LayerNorm::load(w, &format!("{p}.attention.output.LayerNorm"), h, eps)?,
            ffn_in: Dense::F32(w.linear(&format!("{p}.intermediate.dense"), inter, h)?),
            ffn_out: Dense::F32(w.linear(&format!("{p}.output.dense"), h, inter)?),
            ffn_norm: LayerNorm::load(w, &format!("{p}.output.LayerNorm"), h, eps)?,
            heads: config.num_attention_heads,
        })
    }
}
