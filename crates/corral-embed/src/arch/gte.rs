//! The new GTE (`gte-base-en-v1.5`, `gte-large-en-v1.5`,
//! `gte-multilingual-base`: `model_type` `"new"`, `NewModel`), written here
//! on candle's tensor ops: candle-transformers has no such model.
//!
//! A post-norm BERT-style encoder with rotary positions (no position table),
//! one packed query-key-value projection, a gated MLP (one projection gives
//! the "up" half and the gate, `act(gate) * up`, then a down projection) and
//! token-type embeddings when `type_vocab_size` is above 0 (always type 0
//! here: one text per row). The rotary frequencies are the plain ones of
//! `rope_theta`, or, under `rope_scaling` `{"type": "ntk", "factor": f}`
//! (which both English v1.5 models declare), those of the base `theta × f`
//! divided by `f^(2/head_dim)` — what the reference implementation applies
//! at every length once it is loaded. Weight names are those
//! `NewModel.save_pretrained` writes (`embeddings.*`,
//! `encoder.layer.N.attention.{qkv_proj,o_proj}`, `…mlp.{up_gate_proj,
//! down_proj}`, `…{attn_ln,mlp_ln}`), bare or under `new.`.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{
    embedding, layer_norm, linear, linear_no_bias, Embedding, LayerNorm, Linear, VarBuilder,
};
use serde::Deserialize;

/// `config.json` of a new-GTE model (`model_type` `"new"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Config {
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) intermediate_size: usize,
    #[serde(default = "gelu")]
    pub(crate) hidden_act: String,
    #[serde(default = "default_positions")]
    pub(crate) max_position_embeddings: usize,
    #[serde(default = "one")]
    pub(crate) type_vocab_size: usize,
    #[serde(default = "layer_norm_type")]
    pub(crate) layer_norm_type: String,
    #[serde(default = "default_eps")]
    pub(crate) layer_norm_eps: f64,
    #[serde(default = "rope")]
    pub(crate) position_embedding_type: String,
    #[serde(default = "default_theta")]
    pub(crate) rope_theta: f64,
    #[serde(default)]
    pub(crate) rope_scaling: Option<serde_json::Value>,
    #[serde(default = "yes")]
    pub(crate) pack_qkv: bool,
    #[serde(default)]
    pub(crate) logn_attention_scale: bool,
}

fn gelu() -> String {
    "gelu".into()
}

fn default_positions() -> usize {
    2048
}

fn one() -> usize {
    1
}

fn layer_norm_type() -> String {
    "layer_norm".into()
}

fn default_eps() -> f64 {
    1e-12
}

fn rope() -> String {
    "rope".into()
}

fn default_theta() -> f64 {
    10_000.0
}

fn yes() -> bool {
    true
}

/// How the rotary frequencies are scaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RopeScaling {
    /// The plain frequencies of `rope_theta`.
    None,
    /// Fixed NTK scaling by this factor (`{"type": "ntk", "factor": f}`).
    Ntk(f64),
}

impl Config {
    /// Checks what this implementation supports and reads the rotary
    /// scaling: exact (erf) GELU, layer norm, rotary positions, a packed
    /// QKV projection, no log-n attention scale, and no rotary scaling or
    /// fixed NTK scaling (not mixed).
    ///
    /// # Errors
    /// A sentence naming the setting that is not supported.
    pub(crate) fn check(&self) -> Result<RopeScaling, String> {
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (gelu is)",
                self.hidden_act
            ));
        }
        if self.layer_norm_type != "layer_norm" {
            return Err(format!(
                "layer_norm_type {:?} is not supported (layer_norm is)",
                self.layer_norm_type
            ));
        }
        if self.position_embedding_type != "rope" {
            return Err(format!(
                "position_embedding_type {:?} is not supported (rope is)",
                self.position_embedding_type
            ));
        }
        if !self.pack_qkv {
            return Err("pack_qkv false (separate q/k/v projections) is not supported".into());
        }
        if self.logn_attention_scale {
            return Err("logn_attention_scale is not supported".into());
        }
        if self.num_attention_heads == 0
            || self.hidden_size == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
            || !(self.hidden_size / self.num_attention_heads).is_multiple_of(2)
        {
            return Err(format!(
                "hidden size {} does not split into {} attention heads of an even size",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(format!(
                "rope_theta {} is not a positive number",
                self.rope_theta
            ));
        }
        self.rope_scaling()
    }

    fn rope_scaling(&self) -> Result<RopeScaling, String> {
        let Some(s) = self.rope_scaling.as_ref().filter(|s| !s.is_null()) else {
            return Ok(RopeScaling::None);
        };
        let kind = s
            .get("type")
            .or_else(|| s.get("rope_type"))
            .and_then(|t| t.as_str())
            .unwrap_or("");
        if kind != "ntk" {
            return Err(format!(
                "rope_scaling type {kind:?} is not supported (ntk, or none, is)"
            ));
        }
        if s.get("mixed_b").is_some_and(|b| !b.is_null()) {
            return Err("rope_scaling ntk with mixed_b (mixed NTK) is not supported".into());
        }
        match s.get("factor").and_then(serde_json::Value::as_f64) {
            Some(f) if f.is_finite() && f > 0.0 => Ok(RopeScaling::Ntk(f)),
            _ => Err("rope_scaling ntk needs a positive factor".into()),
        }
    }

    fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The rotary frequencies of a head of `dim` dimensions (`dim / 2` of
/// them) with base `theta` under `scaling`, computed in f32 as PyTorch
/// computes them: `1 / theta^(2i/dim)`, and under NTK scaling by `f`,
/// `1 / (theta·f)^(2i/dim) / f^(2/dim)`.
pub(crate) fn inv_freq(dim: usize, theta: f64, scaling: RopeScaling) -> Vec<f32> {
    let (base, divisor) = match scaling {
        RopeScaling::None => (theta, 1.0f32),
        RopeScaling::Ntk(f) => (theta * f, f.powf(2.0 / dim as f64) as f32),
    };
    let base = base as f32;
    (0..dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / dim as f32;
            1.0 / base.powf(exponent) / divisor
        })
        .collect()
}

struct Layer {
    qkv: Linear,
    o: Linear,
    attn_ln: LayerNorm,
    up_gate: Linear,
    down: Linear,
    mlp_ln: LayerNorm,
    intermediate: usize,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let i = c.intermediate_size;
        Ok(Self {
            qkv: linear(h, 3 * h, vb.pp("attention.qkv_proj"))?,
            o: linear(h, h, vb.pp("attention.o_proj"))?,
            attn_ln: layer_norm(h, c.layer_norm_eps, vb.pp("attn_ln"))?,
            up_gate: linear_no_bias(h, 2 * i, vb.pp("mlp.up_gate_proj"))?,
            down: linear(i, h, vb.pp("mlp.down_proj"))?,
            mlp_ln: layer_norm(h, c.layer_norm_eps, vb.pp("mlp_ln"))?,
            intermediate: i,
        })
    }

    /// One layer over `x` (`[b, s, h]`) with the rotary `cos`/`sin`
    /// (`[s, d/2]`) and `bias` (`[b, 1, 1, s]`: the padding mask).
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        bias: &Tensor,
        heads: usize,
    ) -> candle_core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let d = h / heads;
        let qkv = self.qkv.forward(x)?;
        let split = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(2, i * h, h)?
                .reshape((b, s, heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = candle_nn::rotary_emb::rope(&split(0)?, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&split(1)?, cos, sin)?;
        let v = split(2)?;
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, s, h))?;
        let x = self.attn_ln.forward(&(self.o.forward(&ctx)? + x)?)?;
        let up_gate = self.up_gate.forward(&x)?;
        let up = up_gate.narrow(2, 0, self.intermediate)?;
        let gate =
            super::gelu::gelu_erf(&up_gate.narrow(2, self.intermediate, self.intermediate)?)?;
        let mlp = self.down.forward(&(gate * up)?)?;
        self.mlp_ln.forward(&(mlp + x)?)
    }
}

/// A loaded new-GTE encoder.
pub(crate) struct GteModel {
    words: Embedding,
    /// Token type 0's row, added to every token, when the model has
    /// token types.
    type0: Option<Tensor>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    inv_freq: Vec<f32>,
    heads: usize,
}

impl GteModel {
    /// Loads the weights from `vb` (bare names, or under `new.` as a
    /// `NewFor…` checkpoint keeps them).
    ///
    /// # Errors
    /// candle's, naming a tensor that is missing or misshapen; a
    /// configuration [`Config::check`] refuses.
    pub(crate) fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let scaling = c.check().map_err(candle_core::Error::msg)?;
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("new")
        };
        let h = c.hidden_size;
        let emb = vb.pp("embeddings");
        let type0 = if c.type_vocab_size > 0 {
            let types = embedding(c.type_vocab_size, h, emb.pp("token_type_embeddings"))?;
            Some(types.embeddings().get(0)?)
        } else {
            None
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), c))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            words: embedding(c.vocab_size, h, emb.pp("word_embeddings"))?,
            type0,
            emb_norm: layer_norm(h, c.layer_norm_eps, emb.pp("LayerNorm"))?,
            layers,
            inv_freq: inv_freq(c.head_dim(), c.rope_theta, scaling),
            heads: c.num_attention_heads,
        })
    }

    /// The rotary `cos` and `sin` tables (`[s, d/2]`) of positions
    /// `0..s`, in f32 as PyTorch computes them (`position × frequency`,
    /// then cos and sin).
    fn rotary(&self, s: usize, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(s * half);
        let mut sin = Vec::with_capacity(s * half);
        for p in 0..s {
            for &f in &self.inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok((
            Tensor::from_vec(cos, (s, half), device)?,
            Tensor::from_vec(sin, (s, half), device)?,
        ))
    }

    /// The last hidden states (`[b, s, h]`) of `ids` (`[b, s]`, each row's
    /// real tokens first) under `mask` (`[b, s]`, 1 real, 0 padding).
    ///
    /// # Errors
    /// candle's.
    pub(crate) fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let device = ids.device();
        let mut x = self.words.forward(ids)?;
        if let Some(type0) = &self.type0 {
            x = x.broadcast_add(type0)?;
        }
        let mut x = self.emb_norm.forward(&x)?;
        // Positions count from 0 in every row: the padding is on the right.
        let (cos, sin) = self.rotary(s, device)?;
        let keep = mask.to_dtype(DType::F32)?.reshape((b, 1, 1, s))?;
        let bias = ((1.0 - keep)? * f64::from(f32::MIN))?;
        for layer in &self.layers {
            x = layer.forward(&x, &cos, &sin, &bias, self.heads)?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> Config {
        let mut base = serde_json::json!({
            "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16,
        });
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        Config::deserialize(&base).unwrap()
    }

    #[test]
    fn the_published_rotary_settings_are_read_and_others_refused_by_name() {
        assert_eq!(config(serde_json::json!({})).check(), Ok(RopeScaling::None));
        let ntk = serde_json::json!({"rope_scaling": {"type": "ntk", "factor": 2.0}});
        assert_eq!(config(ntk).check(), Ok(RopeScaling::Ntk(2.0)));
        let refused = [
            (
                serde_json::json!({"rope_scaling": {"type": "linear", "factor": 2.0}}),
                "linear",
            ),
            (
                serde_json::json!({"rope_scaling": {"type": "ntk", "factor": 2.0, "mixed_b": 0.5}}),
                "mixed_b",
            ),
            (serde_json::json!({"hidden_act": "silu"}), "silu"),
            (
                serde_json::json!({"layer_norm_type": "rms_norm"}),
                "rms_norm",
            ),
            (
                serde_json::json!({"position_embedding_type": "absolute"}),
                "absolute",
            ),
            (serde_json::json!({"pack_qkv": false}), "pack_qkv"),
            (
                serde_json::json!({"logn_attention_scale": true}),
                "logn_attention_scale",
            ),
        ];
        for (json, word) in refused {
            let e = config(json.clone()).check().unwrap_err();
            assert!(e.contains(word), "{json}: {e}");
        }
    }

    #[test]
    fn ntk_frequencies_are_those_of_the_scaled_base() {
        // dim 8: plain 1/θ^(2i/8); NTK by 2: 1/(2θ)^(2i/8) / 2^(1/4).
        let plain = inv_freq(8, 10_000.0, RopeScaling::None);
        assert_eq!(plain[0], 1.0);
        assert!((plain[1] - 0.1).abs() < 1e-7);
        let ntk = inv_freq(8, 10_000.0, RopeScaling::Ntk(2.0));
        let want = 1.0 / 20_000f64.powf(0.25) / 2f64.powf(0.25);
        assert!((f64::from(ntk[1]) - want).abs() < 1e-7, "{}", ntk[1]);
        assert!((f64::from(ntk[0]) - 2f64.powf(-0.25)).abs() < 1e-7);
    }
}
