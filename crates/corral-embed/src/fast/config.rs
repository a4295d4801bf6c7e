//! FastBert's configuration: [`FastBertConfig`] (read from a Hugging Face
//! `config.json`) and [`Int8Layers`] (which dense layers
//! [`FastBert::quantize`](super::FastBert::quantize) turns to int8).

use serde::Deserialize;

use super::FastBertError;

/// Which dense layers of every encoder layer
/// [`FastBert::quantize`](super::FastBert::quantize) turns to int8.
/// Attention scores, softmax, layer norms and GELU always stay in fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Int8Layers {
    /// The fused Q|K|V projection.
    pub qkv: bool,
    /// The attention output projection.
    pub attn_out: bool,
    /// The feed-forward up projection.
    pub ffn_in: bool,
    /// The feed-forward down projection (its input, after GELU, is the
    /// most heavy-tailed).
    pub ffn_out: bool,
}

impl Int8Layers {
    /// Every dense layer in int8.
    pub const ALL: Self = Self {
        qkv: true,
        attn_out: true,
        ffn_in: true,
        ffn_out: true,
    };

    /// What `--quantize int8` uses: every dense layer. Measured on the 24
    /// golden texts (minimum / mean cosine to fp32), activations in 4,096
    /// levels (the kernel's most for these widths), each kind alone: QKV
    /// 0.99949 / 0.99984, attention output 0.99994 / 0.99997, feed-forward
    /// up 0.99969 / 0.99990, feed-forward down 0.99743 / 0.99954; all four
    /// 0.99620 / 0.99925. (With 256 levels QKV alone fell to 0.99727 and
    /// all four to 0.99202, so QKV stayed fp32 then.)
    pub const DEFAULT_INT8: Self = Self {
        qkv: true,
        attn_out: true,
        ffn_in: true,
        ffn_out: true,
    };

    /// No layer.
    pub const NONE: Self = Self {
        qkv: false,
        attn_out: false,
        ffn_in: false,
        ffn_out: false,
    };

    /// The layers whose activations [`FastBert::quantize`](super::FastBert::quantize)
    /// quantises to 8 bits (`u8`, for AVX-512 VNNI's `vpdpbusd`) where the
    /// CPU has VNNI: all four, with the rows too coarse at 8 bits (a range
    /// above 16 standard deviations: tokens with outlier channels, about 7%
    /// of rows) quantised to 12 bits and multiplied as two byte rows (see
    /// `qmatmul`'s "Wide rows"). Measured on all-MiniLM-L6-v2 (minimum
    /// cosine to fp32, 24 golden texts / 2,000 corpus sentences): all four
    /// with wide rows 0.99615 / 0.99830; all four without 0.99200 /
    /// 0.99679; attention output and feed-forward down only, without wide
    /// rows (the choice before) 0.99577 / 0.99845; none 0.99624 / 0.99859.
    /// The wide rows are what keeps QKV and the feed-forward up projection,
    /// whose inputs leave a layer norm, above the 0.995 floor in 8 bits.
    pub const EIGHT_BIT_ACTIVATIONS: Self = Self::ALL;
}

/// The hyper-parameters FastBert needs (the fields of a Hugging Face
/// `config.json` with the same names), for a BERT or an XLM-RoBERTa model.
#[derive(Debug, Clone, PartialEq)]
pub struct FastBertConfig {
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `intermediate_size`.
    pub intermediate_size: usize,
    /// `layer_norm_eps`.
    pub layer_norm_eps: f64,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// `type_vocab_size`.
    pub type_vocab_size: usize,
    /// Where positions start. `None` for BERT: token `i` of a text is at
    /// position `i`. `Some(p)` for XLM-RoBERTa, `p` being its `padding_idx`
    /// (`pad_token_id`, usually 1): token `i` is at `p + 1 + i`, counting
    /// only tokens other than `p`, and a `p` token itself is at `p`.
    pub padding_idx: Option<u32>,
}

#[derive(Deserialize)]
struct HfConfig {
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    vocab_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_pos")]
    position_embedding_type: String,
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    pad_token_id: Option<u32>,
}
fn default_eps() -> f64 {
    1e-12
}
fn default_type_vocab() -> usize {
    2
}
fn default_act() -> String {
    "gelu".into()
}
fn default_pos() -> String {
    "absolute".into()
}

impl FastBertConfig {
    /// Parses a Hugging Face `config.json` (see
    /// [`FastBertConfig::from_hf_value`]).
    ///
    /// # Errors
    /// As [`FastBertConfig::from_hf_value`], and for text that is not JSON.
    pub fn from_hf_json(json: &str) -> Result<Self, FastBertError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| FastBertError::Config(e.to_string()))?;
        Self::from_hf_value(&value)
    }

    /// Reads an already parsed Hugging Face `config.json` of a BERT model,
    /// or of an XLM-RoBERTa one (`model_type` `"xlm-roberta"` or an
    /// `XLMRoberta*` architecture: positions past `pad_token_id`, see
    /// [`FastBertConfig::padding_idx`]). Fails for
    /// what FastBert does not implement: an activation other than exact
    /// `gelu`, or position embeddings other than `absolute`.
    ///
    /// # Errors
    /// [`FastBertError::Config`] naming the unsupported or missing field.
    pub fn from_hf_value(value: &serde_json::Value) -> Result<Self, FastBertError> {
        let c = HfConfig::deserialize(value).map_err(|e| FastBertError::Config(e.to_string()))?;
        if c.hidden_act != "gelu" {
            return Err(FastBertError::Config(format!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                c.hidden_act
            )));
        }
        if c.position_embedding_type != "absolute" {
            return Err(FastBertError::Config(format!(
                "position_embedding_type {:?} is not supported",
                c.position_embedding_type
            )));
        }
        // The same rule as the embedder's: BERT first, by model_type or
        // architecture.
        let named = |model_type: &str, arch_prefix: &str| {
            c.model_type.as_deref() == Some(model_type)
                || c.architectures
                    .iter()
                    .flatten()
                    .any(|a| a.starts_with(arch_prefix))
        };
        let xlm_roberta = !named("bert", "Bert") && named("xlm-roberta", "XLMRoberta");
        let padding_idx = xlm_roberta.then(|| c.pad_token_id.unwrap_or(1));
        let config = Self {
            hidden_size: c.hidden_size,
            num_attention_heads: c.num_attention_heads,
            num_hidden_layers: c.num_hidden_layers,
            intermediate_size: c.intermediate_size,
            layer_norm_eps: c.layer_norm_eps,
            vocab_size: c.vocab_size,
            max_position_embeddings: c.max_position_embeddings,
            type_vocab_size: c.type_vocab_size,
            padding_idx,
        };
        config.check()?;
        Ok(config)
    }

    /// The longest text the position table holds, special tokens included:
    /// `max_position_embeddings`, less `padding_idx + 1` for XLM-RoBERTa.
    pub fn max_tokens(&self) -> usize {
        let skipped = self.padding_idx.map_or(0, |p| p as usize + 1);
        self.max_position_embeddings.saturating_sub(skipped)
    }

    /// Checks that the sizes are consistent.
    pub(super) fn check(&self) -> Result<(), FastBertError> {
        let (h, heads) = (self.hidden_size, self.num_attention_heads);
        if h == 0 || heads == 0 || h % heads != 0 {
            return Err(FastBertError::Config(format!(
                "hidden_size {h} is not a positive multiple of num_attention_heads {heads}"
            )));
        }
        if self.type_vocab_size == 0 {
            return Err(FastBertError::Config("type_vocab_size is 0".into()));
        }
        if self.max_tokens() == 0 {
            return Err(FastBertError::Config(format!(
                "max_position_embeddings {} leaves no position past padding_idx {:?}",
                self.max_position_embeddings, self.padding_idx
            )));
        }
        Ok(())
    }
}
