//! The model families beyond BERT and XLM-RoBERTa, on the candle engine:
//! MPNet (`all-mpnet-base-v2`: relative position bias; written here, in
//! [`mpnet`], as candle-transformers has none), the new GTE
//! (`gte-base-en-v1.5`: rotary positions with NTK scaling, a gated MLP,
//! post-norm; written here, in [`gte`]) and, through
//! candle-transformers' implementations, NomicBert
//! (`nomic-embed-text`: rotary positions, SwiGLU, fused QKV), ModernBERT
//! (`gte-modernbert`: rotary, alternating local and global attention,
//! GeGLU, no biases) and the Qwen3 decoder (`Qwen3-Embedding`: causal
//! attention, RMSNorm, grouped-query attention, rotary; pooled from its last
//! token).
//!
//! This module owns, per family: reading its sizes from `config.json`
//! ([`FamilySizes`]), the weight-name conventions its checkpoints use (bare,
//! or under the prefix a `*For…` checkpoint adds), and one padded forward
//! pass with a mask. The encoder ([`crate::encoder`]) pads a packed batch,
//! calls [`FamilyModel::forward`] and drops the padding rows again, as it
//! does for BERT.
//!
//! Padding never changes a real token's vector: MPNet, GTE, NomicBert and ModernBERT
//! honour the attention mask (candle's implementations add it to every
//! layer's scores), and the decoder is causal, so with the padding on the
//! right (where the encoder puts it) no real token ever attends to it —
//! which is also why last-token pooling needs no left padding here: the
//! packed batch knows where each text ends.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use candle_transformers::models::{modernbert, nomic_bert, qwen3};
use serde::Deserialize;

pub(crate) mod gelu;
pub(crate) mod gte;
pub(crate) mod mpnet;

/// A family of this module with the configuration candle's model reads.
#[derive(Debug, Clone)]
pub(crate) enum Family {
    /// NomicBert (`model_type` `"nomic_bert"`, `NomicBert*`).
    NomicBert(nomic_bert::Config),
    /// ModernBERT (`model_type` `"modernbert"`, `ModernBert*`).
    ModernBert(modernbert::Config),
    /// Qwen3 (`model_type` `"qwen3"`, `Qwen3*`), a decoder.
    Qwen3(qwen3::Config),
    /// MPNet (`model_type` `"mpnet"`, `MPNet*`).
    Mpnet(mpnet::Config),
    /// The new GTE (`model_type` `"new"`, `NewModel` / `NewFor*`).
    Gte(gte::Config),
}

/// The sizes of a model that loading checks and the embedder reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FamilySizes {
    /// The length of a token's vector (the embeddings' length).
    pub(crate) hidden_size: usize,
    /// Token ids below this are valid.
    pub(crate) vocab_size: usize,
    /// The longest input the position table (rotary, here) covers.
    pub(crate) max_tokens: usize,
    /// Token types below this are valid (1: only type 0, for families
    /// without token-type embeddings).
    pub(crate) type_vocab_size: usize,
}

impl Family {
    /// The family `config.json` names (its `model_type`, else an
    /// architecture's prefix), read from `json`; `None` for one this module
    /// does not serve.
    ///
    /// # Errors
    /// candle's configuration type's message when the family is named but
    /// its fields do not parse.
    pub(crate) fn from_config(
        model_type: Option<&str>,
        architectures: &[String],
        json: &serde_json::Value,
    ) -> Result<Option<Self>, String> {
        let named = |ty: &str, prefix: &str| {
            model_type == Some(ty) || architectures.iter().any(|a| a.starts_with(prefix))
        };
        let family = if named("nomic_bert", "NomicBert") {
            // candle's configuration defaults every field it misses, so a
            // configuration in transformers' own NomicBert layout
            // (`hidden_size`, …) would silently read as the hub's defaults.
            if json.get("n_embd").is_none() {
                return Err(
                    "NomicBert: config.json has no n_embd: Corral reads the layout \
                     nomic-ai publishes (n_embd, n_head, n_layer, encoder.layers.N.attn.Wqkv), \
                     not transformers' own (hidden_size, layers.N.self_attn.q_proj)"
                        .into(),
                );
            }
            Self::NomicBert(nomic_bert::Config::deserialize(json).map_err(|e| e.to_string())?)
        } else if named("modernbert", "ModernBert") {
            let json = modernbert_fields(json)?;
            Self::ModernBert(modernbert::Config::deserialize(&json).map_err(|e| e.to_string())?)
        } else if named("qwen3", "Qwen3") {
            let json = qwen3_fields(json)?;
            Self::Qwen3(qwen3::Config::deserialize(&json).map_err(|e| e.to_string())?)
        } else if named("mpnet", "MPNet") {
            Self::Mpnet(mpnet::Config::deserialize(json).map_err(|e| e.to_string())?)
        } else if model_type == Some("new")
            || architectures
                .iter()
                .any(|a| a == "NewModel" || a.starts_with("NewFor"))
        {
            Self::Gte(gte::Config::deserialize(json).map_err(|e| e.to_string())?)
        } else {
            return Ok(None);
        };
        Ok(Some(family))
    }

    /// The family's name, for messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::NomicBert(_) => "NomicBert",
            Self::ModernBert(_) => "ModernBERT",
            Self::Qwen3(_) => "Qwen3",
            Self::Mpnet(_) => "MPNet",
            Self::Gte(_) => "GTE",
        }
    }

    /// The sizes, checked: a hidden size that splits into the heads (or, for
    /// Qwen3, heads that group evenly over the key-value heads) and a
    /// position table of at least two tokens.
    ///
    /// # Errors
    /// A sentence saying which size is wrong.
    pub(crate) fn sizes(&self) -> Result<FamilySizes, String> {
        let split = |hidden: usize, heads: usize| {
            if hidden == 0 || heads == 0 || !hidden.is_multiple_of(heads) {
                Err(format!(
                    "hidden size {hidden} is not a multiple of the {heads} attention heads"
                ))
            } else {
                Ok(())
            }
        };
        let sizes = match self {
            Self::NomicBert(c) => {
                split(c.n_embd, c.n_head)?;
                if c.rotary_emb_fraction != 1.0 {
                    return Err(format!(
                        "rotary_emb_fraction {} is not supported (1.0 is)",
                        c.rotary_emb_fraction
                    ));
                }
                if c.activation_function != "swiglu" {
                    return Err(format!(
                        "activation_function {:?} is not supported (swiglu is)",
                        c.activation_function
                    ));
                }
                FamilySizes {
                    hidden_size: c.n_embd,
                    vocab_size: c.vocab_size,
                    max_tokens: c.n_positions,
                    type_vocab_size: c.type_vocab_size.max(1),
                }
            }
            Self::ModernBert(c) => {
                split(c.hidden_size, c.num_attention_heads)?;
                if c.global_attn_every_n_layers == 0 {
                    return Err("global_attn_every_n_layers must be at least 1".into());
                }
                FamilySizes {
                    hidden_size: c.hidden_size,
                    vocab_size: c.vocab_size,
                    max_tokens: c.max_position_embeddings,
                    type_vocab_size: 1,
                }
            }
            Self::Qwen3(c) => {
                if c.num_attention_heads == 0
                    || c.num_key_value_heads == 0
                    || c.head_dim == 0
                    || !c.num_attention_heads.is_multiple_of(c.num_key_value_heads)
                {
                    return Err(format!(
                        "{} attention heads do not group over {} key-value heads",
                        c.num_attention_heads, c.num_key_value_heads
                    ));
                }
                FamilySizes {
                    hidden_size: c.hidden_size,
                    vocab_size: c.vocab_size,
                    max_tokens: c.max_position_embeddings,
                    type_vocab_size: 1,
                }
            }
            Self::Mpnet(c) => {
                c.check()?;
                FamilySizes {
                    hidden_size: c.hidden_size,
                    vocab_size: c.vocab_size,
                    max_tokens: c.max_tokens(),
                    type_vocab_size: 1,
                }
            }
            Self::Gte(c) => {
                c.check()?;
                FamilySizes {
                    hidden_size: c.hidden_size,
                    vocab_size: c.vocab_size,
                    max_tokens: c.max_position_embeddings,
                    type_vocab_size: 1,
                }
            }
        };
        if sizes.max_tokens < 2 {
            return Err(format!(
                "a position table of {} tokens leaves no room for a text",
                sizes.max_tokens
            ));
        }
        Ok(sizes)
    }
}

/// The rotary base of `json`'s `rope_parameters` (transformers 5's
/// layout), under `kind` when the parameters are per attention kind;
/// refuses a scaled rotary (`rope_type` other than `default`), which
/// candle's models do not implement.
fn rope_theta(json: &serde_json::Value, kind: Option<&str>) -> Result<Option<f64>, String> {
    if json.get("rope_scaling").is_some_and(|v| !v.is_null()) {
        return Err("a scaled rotary (rope_scaling) is not supported".into());
    }
    let Some(mut params) = json.get("rope_parameters").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if let Some(kind) = kind {
        match params.get(kind) {
            Some(p) => params = p,
            None => return Ok(None),
        }
    }
    match params.get("rope_type").and_then(|t| t.as_str()) {
        None | Some("default") => Ok(params.get("rope_theta").and_then(|t| t.as_f64())),
        Some(other) => Err(format!("rope_type {other:?} is not supported (default is)")),
    }
}

/// `json` with the fields candle's ModernBERT configuration requires filled
/// in from the names the published checkpoints use (`norm_eps`), from
/// transformers 5's layout (`rope_parameters`, `layer_types`) or from
/// transformers' defaults.
///
/// # Errors
/// A scaled rotary, or `layer_types` that do not alternate as
/// `global_attn_every_n_layers` says.
fn modernbert_fields(json: &serde_json::Value) -> Result<serde_json::Value, String> {
    let mut json = json.clone();
    // Without global_attn_every_n_layers, transformers 5's `layer_types`
    // say it: the index of the second global layer (transformers' default 3
    // when neither is given).
    let types_every = json
        .get("layer_types")
        .and_then(|v| v.as_array())
        .map(|types| {
            types
                .iter()
                .skip(1)
                .position(|t| t.as_str() == Some("full_attention"))
                .map_or(types.len().max(1), |p| p + 1) as u64
        });
    let every = json
        .get("global_attn_every_n_layers")
        .and_then(|v| v.as_u64())
        .or(types_every)
        .unwrap_or(3);
    if let Some(types) = json.get("layer_types").and_then(|v| v.as_array()) {
        let every = usize::try_from(every).unwrap_or(usize::MAX).max(1);
        for (i, t) in types.iter().enumerate() {
            let want = if i % every == 0 {
                "full_attention"
            } else {
                "sliding_attention"
            };
            if t.as_str() != Some(want) {
                return Err(format!(
                    "layer_types[{i}] is {t}, not {want:?}: only a global layer every \
                     global_attn_every_n_layers ({every}) is supported"
                ));
            }
        }
    }
    let global = rope_theta(&json, Some("full_attention"))?;
    let local = rope_theta(&json, Some("sliding_attention"))?;
    let obj = json.as_object_mut().ok_or("config.json is not an object")?;
    let eps = obj
        .get("norm_eps")
        .cloned()
        .unwrap_or(serde_json::json!(1e-5));
    let mut fill = |key: &str, value: serde_json::Value| {
        if obj.get(key).is_none_or(serde_json::Value::is_null) {
            obj.insert(key.to_owned(), value);
        }
    };
    fill("layer_norm_eps", eps);
    fill("global_attn_every_n_layers", serde_json::json!(every));
    fill(
        "global_rope_theta",
        serde_json::json!(global.unwrap_or(160_000.0)),
    );
    fill(
        "local_rope_theta",
        serde_json::json!(local.unwrap_or(10_000.0)),
    );
    fill("local_attention", serde_json::json!(128));
    fill("pad_token_id", serde_json::json!(50_283));
    Ok(json)
}

/// `json` with the fields candle's Qwen3 configuration requires filled in
/// from transformers 5's layout (`rope_parameters`) or transformers'
/// defaults.
///
/// # Errors
/// A scaled rotary, or a sliding window (candle's Qwen3 attends to the
/// whole text).
fn qwen3_fields(json: &serde_json::Value) -> Result<serde_json::Value, String> {
    let mut json = json.clone();
    let theta = rope_theta(&json, None)?;
    if json.get("use_sliding_window").and_then(|v| v.as_bool()) == Some(true) {
        return Err("use_sliding_window is not supported".into());
    }
    let obj = json.as_object_mut().ok_or("config.json is not an object")?;
    let layers = obj.get("num_hidden_layers").cloned().unwrap_or_default();
    let head_dim = match (
        obj.get("hidden_size").and_then(|v| v.as_u64()),
        obj.get("num_attention_heads").and_then(|v| v.as_u64()),
    ) {
        (Some(h), Some(n)) if n > 0 => serde_json::json!(h / n),
        _ => serde_json::Value::Null,
    };
    let mut fill = |key: &str, value: serde_json::Value| {
        if obj.get(key).is_none_or(serde_json::Value::is_null) {
            obj.insert(key.to_owned(), value);
        }
    };
    fill("rope_theta", serde_json::json!(theta.unwrap_or(10_000.0)));
    fill("head_dim", head_dim);
    fill("attention_bias", serde_json::json!(false));
    fill("max_window_layers", layers);
    fill("use_sliding_window", serde_json::json!(false));
    fill("tie_word_embeddings", serde_json::json!(false));
    fill("hidden_act", serde_json::json!("silu"));
    fill("rms_norm_eps", serde_json::json!(1e-6));
    fill("max_position_embeddings", serde_json::json!(32_768));
    Ok(json)
}

/// A loaded model of a [`Family`].
pub(crate) enum FamilyModel {
    NomicBert(nomic_bert::NomicBertModel),
    ModernBert(modernbert::ModernBert),
    /// candle's decoder keeps a key-value cache and runs with `&mut self`;
    /// this one is never run: each forward pass runs a clone (its weights
    /// are shared, its cache starts empty).
    Qwen3(qwen3::Model),
    Mpnet(mpnet::MpnetModel),
    Gte(gte::GteModel),
}

/// `vb`, reading `name` as `prefix` + `name` would be read, when the
/// checkpoint keeps its tensors bare (`probe` present without the prefix)
/// while candle's model asks for them under `prefix`.
fn bare_if_saved_bare(
    vb: VarBuilder<'static>,
    prefix: &'static str,
    probe: &str,
) -> VarBuilder<'static> {
    if vb.contains_tensor(&format!("{prefix}{probe}")) || !vb.contains_tensor(probe) {
        return vb;
    }
    vb.rename_f(move |name: &str| name.strip_prefix(prefix).unwrap_or(name).to_owned())
}

impl FamilyModel {
    /// Loads `family`'s model from `vb` (fp32, on the CPU). Weights load
    /// bare (as `*Model.save_pretrained` writes them) or under the prefix
    /// of a `*For…` checkpoint (`model.` for ModernBERT and Qwen3,
    /// `nomic_bert.` for NomicBert, `mpnet.` for MPNet, `new.` for GTE).
    ///
    /// # Errors
    /// candle's error naming the tensor that is missing or misshapen.
    pub(crate) fn load(vb: VarBuilder<'static>, family: &Family) -> candle_core::Result<Self> {
        Ok(match family {
            Family::NomicBert(c) => Self::NomicBert(nomic_bert::NomicBertModel::load(vb, c)?),
            Family::ModernBert(c) => {
                let vb = bare_if_saved_bare(vb, "model.", "embeddings.tok_embeddings.weight");
                Self::ModernBert(modernbert::ModernBert::load(vb, c)?)
            }
            Family::Qwen3(c) => {
                let vb = bare_if_saved_bare(vb, "model.", "embed_tokens.weight");
                Self::Qwen3(qwen3::Model::new(c, vb)?)
            }
            Family::Mpnet(c) => Self::Mpnet(mpnet::MpnetModel::load(vb, c)?),
            Family::Gte(c) => Self::Gte(gte::GteModel::load(vb, c)?),
        })
    }

    /// The last hidden states (`[rows, seq, hidden]`) of `ids`
    /// (`[rows, seq]`, each row's real tokens first, then padding) with
    /// `mask` (`[rows, seq]`, 1 for a real token, 0 for padding).
    ///
    /// # Errors
    /// candle's, from the forward pass.
    pub(crate) fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::NomicBert(m) => m.forward(ids, None, Some(mask)),
            Self::ModernBert(m) => m.forward(ids, mask),
            // Causal attention: right padding cannot reach a real token.
            Self::Qwen3(m) => m.clone().forward(ids, 0),
            Self::Mpnet(m) => m.forward(ids, mask),
            Self::Gte(m) => m.forward(ids, mask),
        }
    }
}
