//! Reading a model directory's configuration: `config.json` (parsed once,
//! here, into the architecture and the configurations both engines need) and
//! the sentence-transformers files (`modules.json`, `1_Pooling/config.json`,
//! `sentence_bert_config.json`) that say how to pool and where to truncate.

use std::fs;
use std::path::{Path, PathBuf};

use candle_transformers::models::{bert, xlm_roberta};
use serde::Deserialize;

use crate::arch::Family;
use crate::fast::FastBertConfig;
use crate::{Activation, EmbedError, ModelKind, Pooling, Prompts};

/// The model families that load, with the configuration candle's model for
/// each reads.
#[derive(Debug, Clone)]
pub(crate) enum Architecture {
    /// BERT (`model_type` `"bert"`, `Bert*` architectures): all-MiniLM,
    /// bge, gte, e5.
    Bert(bert::Config),
    /// XLM-RoBERTa (`model_type` `"xlm-roberta"`, `XLMRoberta*`
    /// architectures): multilingual-e5, bge-m3's dense output.
    XlmRoberta(xlm_roberta::Config),
    /// MPNet, NomicBert, ModernBERT or Qwen3 ([`crate::arch`]): candle's engine
    /// only, embeddings only.
    Family(Family),
}

/// Everything loading learns from a model directory's JSON files.
#[derive(Debug)]
pub(crate) struct ModelConfig {
    /// The architecture, as candle reads it.
    pub(crate) arch: Architecture,
    /// What FastBert reads from the same `config.json`, or why it cannot
    /// run this model (the fast engine then falls back to candle).
    pub(crate) fast: Result<FastBertConfig, String>,
    /// `hidden_size`: the length of the embeddings.
    pub(crate) hidden_size: usize,
    /// `vocab_size`.
    pub(crate) vocab_size: usize,
    /// `type_vocab_size`: token types below this are valid.
    pub(crate) type_vocab_size: usize,
    /// Pooling declared by the sentence-transformers pooling module, if any.
    pub(crate) pooling: Option<Pooling>,
    /// Maximum sequence length in word pieces (special tokens included).
    pub(crate) max_seq_length: usize,
    /// What the model serves, with its labels and activation.
    pub(crate) task: TaskConfig,
    /// `prompts` and `default_prompt_name` of
    /// `config_sentence_transformers.json`.
    pub(crate) prompts: Prompts,
    /// `truncate_dim` of `config_sentence_transformers.json`, if it
    /// declares one (checked to be within the hidden size).
    pub(crate) truncate_dim: Option<usize>,
    /// The pooling module's `include_prompt` (default `true`): `false`
    /// means it leaves a prompt's tokens out of the pool, which Corral does
    /// not do — a prompt is then refused.
    pub(crate) include_prompt: bool,
}

/// What `config.json` (and the sentence-transformers files beside it) say
/// the model is for: embeddings, or a sequence-classification head with its
/// labels and the activation sentence-transformers' `CrossEncoder` applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskConfig {
    /// Embed, rerank (one label) or classify (several).
    pub(crate) kind: ModelKind,
    /// The architecture named (the first `*ForSequenceClassification` one
    /// for a head, else the first listed, else `model_type`).
    pub(crate) architecture: String,
    /// The labels in `id2label` order (empty for an embedder).
    pub(crate) labels: Vec<String>,
    /// How logits become scores (Identity for an embedder).
    pub(crate) activation: Activation,
}

/// The sizes both architectures share, read to check them and to bound the
/// sequence length.
#[derive(Deserialize)]
struct Sizes {
    hidden_size: usize,
    num_attention_heads: usize,
    vocab_size: usize,
    max_position_embeddings: usize,
    #[serde(default)]
    pad_token_id: Option<usize>,
    #[serde(default = "default_type_vocab_size")]
    type_vocab_size: usize,
}

/// transformers' `type_vocab_size` when a BERT configuration names none.
fn default_type_vocab_size() -> usize {
    2
}

#[derive(Deserialize)]
struct ArchitectureProbe {
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
    #[serde(default = "yes")]
    include_prompt: bool,
}

fn yes() -> bool {
    true
}

/// What `config_sentence_transformers.json` says about embedding.
#[derive(Deserialize, Default)]
struct StModelConfig {
    #[serde(default)]
    prompts: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    default_prompt_name: Option<String>,
    #[serde(default)]
    truncate_dim: Option<usize>,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    #[serde(default)]
    max_seq_length: Option<usize>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EmbedError> {
    let text = fs::read_to_string(path)
        .map_err(|e| EmbedError::io(format!("reading {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| EmbedError::config(path, e.to_string()))
}

fn read_optional_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, EmbedError> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

impl ModelConfig {
    /// Reads the configuration of the model in `dir` (already checked to hold
    /// `config.json`), parsing `config.json` once.
    pub(crate) fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_as(dir, false)
    }

    /// [`ModelConfig::load`] for [`crate::SparseEncoder`]: a SPLADE model
    /// (a `SpladePooling` module in `modules.json`) is what it loads, where
    /// every other loader refuses one.
    pub(crate) fn load_sparse(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_as(dir, true)
    }

    fn load_as(dir: &Path, sparse: bool) -> Result<Self, EmbedError> {
        let config_path = dir.join("config.json");
        let json: serde_json::Value = read_json(&config_path)?;
        let bad = |e: serde_json::Error| EmbedError::config(&config_path, e.to_string());
        let probe = ArchitectureProbe::deserialize(&json).map_err(bad)?;
        let named = |model_type: &str, arch_prefix: &str| {
            probe.model_type.as_deref() == Some(model_type)
                || probe
                    .architectures
                    .iter()
                    .flatten()
                    .any(|a| a.starts_with(arch_prefix))
        };
        let architectures = probe.architectures.clone().unwrap_or_default();
        let family = Family::from_config(probe.model_type.as_deref(), &architectures, &json)
            .map_err(|m| EmbedError::config(&config_path, m))?;
        let arch = if named("bert", "Bert") {
            Architecture::Bert(bert::Config::deserialize(&json).map_err(bad)?)
        } else if named("xlm-roberta", "XLMRoberta") {
            Architecture::XlmRoberta(xlm_roberta::Config::deserialize(&json).map_err(bad)?)
        } else if let Some(family) = family {
            Architecture::Family(family)
        } else {
            return Err(EmbedError::config(
                &config_path,
                format!(
                    "unsupported architecture (model_type {:?}, architectures {:?}): \
                     the families that load are BERT (model_type \"bert\"), XLM-RoBERTa \
                     (\"xlm-roberta\"), NomicBert (\"nomic_bert\"), ModernBERT \
                     (\"modernbert\"), Qwen3 (\"qwen3\"), MPNet (\"mpnet\") and GTE (\"new\")",
                    probe.model_type, probe.architectures
                ),
            ));
        };
        let sizes = match &arch {
            Architecture::Family(family) => {
                let s = family.sizes().map_err(|m| {
                    EmbedError::config(&config_path, format!("{}: {m}", family.name()))
                })?;
                Sizes {
                    hidden_size: s.hidden_size,
                    num_attention_heads: 1,
                    vocab_size: s.vocab_size,
                    max_position_embeddings: s.max_tokens,
                    pad_token_id: None,
                    type_vocab_size: s.type_vocab_size,
                }
            }
            _ => Sizes::deserialize(&json).map_err(bad)?,
        };
        if sizes.hidden_size == 0
            || sizes.num_attention_heads == 0
            || sizes.hidden_size % sizes.num_attention_heads != 0
        {
            return Err(EmbedError::config(
                &config_path,
                format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    sizes.hidden_size, sizes.num_attention_heads
                ),
            ));
        }
        // XLM-RoBERTa's positions start past its padding index, so its
        // position table holds padding_idx + 1 fewer tokens than rows.
        let max_tokens = match &arch {
            Architecture::Bert(_) | Architecture::Family(_) => sizes.max_position_embeddings,
            Architecture::XlmRoberta(_) => {
                let skipped = sizes.pad_token_id.unwrap_or(1) + 1;
                sizes.max_position_embeddings.saturating_sub(skipped)
            }
        };
        let fast = match &arch {
            Architecture::Family(f) => Err(format!(
                "the fast engine runs BERT and XLM-RoBERTa; {} runs on candle's",
                f.name()
            )),
            _ => FastBertConfig::from_hf_value(&json).map_err(|e| e.to_string()),
        };
        let task = read_task(dir, &json, &probe)?;
        if let (Architecture::Family(f), false) = (&arch, task.kind == ModelKind::Embed) {
            return Err(EmbedError::config(
                &config_path,
                format!(
                    "{}: a {} head is not supported (a {} model embeds only)",
                    task.architecture,
                    task.kind,
                    f.name()
                ),
            ));
        }

        let (pooling, include_prompt) = if sparse {
            (None, true)
        } else {
            read_pooling(dir)?
        };
        let st_model_path = dir.join("config_sentence_transformers.json");
        let st_model: StModelConfig = read_optional_json(&st_model_path)?.unwrap_or_default();
        let prompts = Prompts {
            table: st_model.prompts.unwrap_or_default(),
            default_name: st_model.default_prompt_name,
        };
        if let Some(name) = prompts.default_name() {
            if prompts.get(name).is_none() {
                return Err(EmbedError::config(
                    &st_model_path,
                    format!("default_prompt_name {name:?} is not one of its prompts"),
                ));
            }
        }
        if let Some(d) = st_model.truncate_dim {
            if d == 0 || d > sizes.hidden_size {
                return Err(EmbedError::config(
                    &st_model_path,
                    format!(
                        "truncate_dim {d} must be between 1 and the hidden size {}",
                        sizes.hidden_size
                    ),
                ));
            }
        }
        let st_config: Option<SentenceBertConfig> =
            read_optional_json(&dir.join("sentence_bert_config.json"))?;
        // A cross-encoder's tokenizer truncates at its `model_max_length`
        // (tokenizer_config.json), which sentence-transformers caps at the
        // position table; embedders keep their rule (the position table).
        let fallback = if task.kind == ModelKind::Embed {
            max_tokens
        } else {
            read_model_max_length(dir)?.unwrap_or(max_tokens)
        };
        let max_seq_length = st_config
            .and_then(|c| c.max_seq_length)
            .unwrap_or(fallback)
            .min(max_tokens);
        if max_seq_length < 2 {
            return Err(EmbedError::config(
                dir.join("sentence_bert_config.json"),
                format!("max_seq_length {max_seq_length} leaves no room for [CLS] and [SEP]"),
            ));
        }
        Ok(Self {
            arch,
            fast,
            hidden_size: sizes.hidden_size,
            vocab_size: sizes.vocab_size,
            type_vocab_size: sizes.type_vocab_size,
            pooling,
            max_seq_length,
            task,
            prompts,
            truncate_dim: st_model.truncate_dim,
            include_prompt,
        })
    }
}

/// Checks that the model in `dir` is one [`Pooling::Splade`] applies to
/// without a `SpladePooling` module: a BERT masked-language model (an
/// architecture `BertForMaskedLM`), whose MLM head gives the logits.
///
/// # Errors
/// [`EmbedError::Config`] naming the architecture `config.json` declares.
pub(crate) fn check_mlm_head(dir: &Path) -> Result<(), EmbedError> {
    let path = dir.join("config.json");
    let json: serde_json::Value = read_json(&path)?;
    let probe = ArchitectureProbe::deserialize(&json)
        .map_err(|e| EmbedError::config(&path, e.to_string()))?;
    let architectures = probe.architectures.unwrap_or_default();
    if architectures.iter().any(|a| a == "BertForMaskedLM") {
        return Ok(());
    }
    let declared = architectures
        .first()
        .cloned()
        .or(probe.model_type)
        .unwrap_or_else(|| "no architecture".into());
    Err(EmbedError::config(
        &path,
        format!(
            "pooling splade needs a masked-language-model head (BertForMaskedLM); \
             this model is {declared}, without one"
        ),
    ))
}

/// `tokenizer_config.json`'s `model_max_length`, when the file gives one
/// that fits in a `usize` (transformers writes a huge float for "none").
fn read_model_max_length(dir: &Path) -> Result<Option<usize>, EmbedError> {
    let config: Option<serde_json::Value> = read_optional_json(&dir.join("tokenizer_config.json"))?;
    Ok(config
        .as_ref()
        .and_then(|c| c.get("model_max_length"))
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| usize::try_from(n).ok()))
}

/// transformers' `num_labels` when a configuration names none.
const DEFAULT_NUM_LABELS: usize = 2;

/// The task the configuration in `dir` declares (see [`TaskConfig`]):
/// an architecture ending in `ForSequenceClassification` has a head, with
/// as many labels as `id2label` lists (else `num_labels`, else
/// transformers' default 2); one label is a reranker, several a
/// classifier.
fn read_task(
    dir: &Path,
    json: &serde_json::Value,
    probe: &ArchitectureProbe,
) -> Result<TaskConfig, EmbedError> {
    let config_path = dir.join("config.json");
    let architectures = probe.architectures.as_deref().unwrap_or_default();
    let head = architectures
        .iter()
        .find(|a| a.ends_with("ForSequenceClassification"));
    let Some(head) = head else {
        let architecture = architectures
            .first()
            .cloned()
            .or_else(|| probe.model_type.clone())
            .unwrap_or_default();
        return Ok(TaskConfig {
            kind: ModelKind::Embed,
            architecture,
            labels: Vec::new(),
            activation: Activation::Identity,
        });
    };
    let labels = read_labels(json).map_err(|m| EmbedError::config(&config_path, m))?;
    let (kind, activation) = if labels.len() == 1 {
        (ModelKind::Rerank, read_ce_activation(dir, json)?)
    } else {
        (ModelKind::Classify, Activation::Softmax)
    };
    Ok(TaskConfig {
        kind,
        architecture: head.clone(),
        labels,
        activation,
    })
}

/// The labels in `id2label` order: `id2label` when present (keys `"0"`,
/// `"1"`, … — every id from 0 up must be there), else `LABEL_{i}` for
/// `num_labels`, else transformers' default of 2.
fn read_labels(json: &serde_json::Value) -> Result<Vec<String>, String> {
    if let Some(map) = json.get("id2label").and_then(|v| v.as_object()) {
        let mut labels: Vec<Option<String>> = vec![None; map.len()];
        for (key, value) in map {
            let id: usize = key
                .parse()
                .map_err(|_| format!("id2label key {key:?} is not a number"))?;
            let name = value
                .as_str()
                .ok_or_else(|| format!("id2label[{key}] is not a string"))?;
            let slot = labels
                .get_mut(id)
                .ok_or_else(|| format!("id2label has {} labels but id {id}", map.len()))?;
            *slot = Some(name.to_owned());
        }
        let labels: Option<Vec<String>> = labels.into_iter().collect();
        return match labels {
            Some(l) if !l.is_empty() => Ok(l),
            _ => Err("id2label must number its labels 0, 1, … without gaps".into()),
        };
    }
    let n = match json.get("num_labels") {
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("num_labels {v} is not a positive integer"))?
            as usize,
        None => DEFAULT_NUM_LABELS,
    };
    Ok((0..n).map(|i| format!("LABEL_{i}")).collect())
}

/// The activation sentence-transformers' `CrossEncoder` applies to a
/// one-label model: the first of `config_sentence_transformers.json`'s
/// `activation_fn`, `config.json`'s `sentence_transformers.activation_fn`
/// and its `sbert_ce_default_activation_function` that is set; sigmoid
/// when none is. A dotted path ending in `Identity` is [`Activation::Identity`],
/// one ending in `Sigmoid` [`Activation::Sigmoid`]; any other is refused.
fn read_ce_activation(dir: &Path, json: &serde_json::Value) -> Result<Activation, EmbedError> {
    let st_path = dir.join("config_sentence_transformers.json");
    let st: Option<serde_json::Value> = read_optional_json(&st_path)?;
    let config_path = dir.join("config.json");
    let named = [
        (
            st.as_ref().and_then(|v| v.get("activation_fn")),
            st_path.as_path(),
        ),
        (
            json.get("sentence_transformers")
                .and_then(|v| v.get("activation_fn")),
            config_path.as_path(),
        ),
        (
            json.get("sbert_ce_default_activation_function"),
            config_path.as_path(),
        ),
    ];
    for (value, path) in named {
        let Some(name) = value.and_then(|v| v.as_str()) else {
            continue;
        };
        let last = name.rsplit('.').next().unwrap_or(name);
        return match last {
            "Identity" => Ok(Activation::Identity),
            "Sigmoid" => Ok(Activation::Sigmoid),
            _ => Err(EmbedError::config(
                path,
                format!(
                    "activation {name:?} is not supported (torch.nn.modules.linear.Identity \
                     or torch.nn.modules.activation.Sigmoid)"
                ),
            )),
        };
    }
    Ok(Activation::Sigmoid)
}

/// The pooling the sentence-transformers pooling module declares, if there is
/// one (`modules.json` names its directory; `1_Pooling` by convention), and
/// its `include_prompt` (`true` without one).
fn read_pooling(dir: &Path) -> Result<(Option<Pooling>, bool), EmbedError> {
    let modules: Option<Vec<Module>> = read_optional_json(&dir.join("modules.json"))?;
    if modules
        .iter()
        .flatten()
        .any(|m| m.kind.ends_with("SpladePooling"))
    {
        return Err(EmbedError::config(
            dir.join("modules.json"),
            "a SPLADE model (SpladePooling) gives sparse vectors: load it with SparseEncoder",
        ));
    }
    let pooling_dir: PathBuf = modules
        .iter()
        .flatten()
        .find(|m| m.kind.ends_with("Pooling") && !m.path.is_empty())
        .map(|m| dir.join(&m.path))
        .unwrap_or_else(|| dir.join("1_Pooling"));
    let path = pooling_dir.join("config.json");
    let Some(cfg) = read_optional_json::<PoolingConfig>(&path)? else {
        return Ok((None, true));
    };
    let unsupported = [
        (cfg.pooling_mode_max_tokens, "max"),
        (cfg.pooling_mode_mean_sqrt_len_tokens, "mean_sqrt_len"),
        (cfg.pooling_mode_weightedmean_tokens, "weightedmean"),
    ];
    if let Some((_, name)) = unsupported.iter().find(|(on, _)| *on) {
        return Err(EmbedError::config(
            &path,
            format!("pooling mode {name} is not supported (mean, cls and lasttoken are)"),
        ));
    }
    let on: Vec<Pooling> = [
        (cfg.pooling_mode_mean_tokens, Pooling::Mean),
        (cfg.pooling_mode_cls_token, Pooling::Cls),
        (cfg.pooling_mode_lasttoken, Pooling::LastToken),
    ]
    .into_iter()
    .filter_map(|(on, p)| on.then_some(p))
    .collect();
    let pooling = match on[..] {
        [] => None,
        [one] => Some(one),
        _ => {
            return Err(EmbedError::config(
                &path,
                "several pooling modes are on; concatenated pooling is not supported",
            ))
        }
    };
    Ok((pooling, cfg.include_prompt))
}
