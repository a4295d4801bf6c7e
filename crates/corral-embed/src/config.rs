//! Reading a model directory's configuration: `config.json` (parsed once,
//! here, into the architecture and the configurations both engines need) and
//! the sentence-transformers files (`modules.json`, `1_Pooling/config.json`,
//! `sentence_bert_config.json`) that say how to pool and where to truncate.

use std::fs;
use std::path::{Path, PathBuf};

use candle_transformers::models::{bert, xlm_roberta};
use serde::Deserialize;

use crate::fast::FastBertConfig;
use crate::{EmbedError, Pooling};

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
    /// Pooling declared by the sentence-transformers pooling module, if any.
    pub(crate) pooling: Option<Pooling>,
    /// Maximum sequence length in word pieces (special tokens included).
    pub(crate) max_seq_length: usize,
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
        let arch = if named("bert", "Bert") {
            Architecture::Bert(bert::Config::deserialize(&json).map_err(bad)?)
        } else if named("xlm-roberta", "XLMRoberta") {
            Architecture::XlmRoberta(xlm_roberta::Config::deserialize(&json).map_err(bad)?)
        } else {
            return Err(EmbedError::config(
                &config_path,
                format!(
                    "unsupported architecture (model_type {:?}, architectures {:?}): \
                     only the BERT family (model_type \"bert\") and the XLM-RoBERTa \
                     family (model_type \"xlm-roberta\") load",
                    probe.model_type, probe.architectures
                ),
            ));
        };
        let sizes = Sizes::deserialize(&json).map_err(bad)?;
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
            Architecture::Bert(_) => sizes.max_position_embeddings,
            Architecture::XlmRoberta(_) => {
                let skipped = sizes.pad_token_id.unwrap_or(1) + 1;
                sizes.max_position_embeddings.saturating_sub(skipped)
            }
        };
        let fast = FastBertConfig::from_hf_value(&json).map_err(|e| e.to_string());

        let pooling = read_pooling(dir)?;
        let st_config: Option<SentenceBertConfig> =
            read_optional_json(&dir.join("sentence_bert_config.json"))?;
        let max_seq_length = st_config
            .and_then(|c| c.max_seq_length)
            .unwrap_or(max_tokens)
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
            pooling,
            max_seq_length,
        })
    }
}

/// The pooling the sentence-transformers pooling module declares, if there is
/// one (`modules.json` names its directory; `1_Pooling` by convention).
fn read_pooling(dir: &Path) -> Result<Option<Pooling>, EmbedError> {
    let modules: Option<Vec<Module>> = read_optional_json(&dir.join("modules.json"))?;
    let pooling_dir: PathBuf = modules
        .iter()
        .flatten()
        .find(|m| m.kind.ends_with("Pooling") && !m.path.is_empty())
        .map(|m| dir.join(&m.path))
        .unwrap_or_else(|| dir.join("1_Pooling"));
    let path = pooling_dir.join("config.json");
    let Some(cfg) = read_optional_json::<PoolingConfig>(&path)? else {
        return Ok(None);
    };
    let unsupported = [
        (cfg.pooling_mode_max_tokens, "max"),
        (cfg.pooling_mode_mean_sqrt_len_tokens, "mean_sqrt_len"),
        (cfg.pooling_mode_weightedmean_tokens, "weightedmean"),
        (cfg.pooling_mode_lasttoken, "lasttoken"),
    ];
    if let Some((_, name)) = unsupported.iter().find(|(on, _)| *on) {
        return Err(EmbedError::config(
            &path,
            format!("pooling mode {name} is not supported (mean and cls are)"),
        ));
    }
    match (cfg.pooling_mode_mean_tokens, cfg.pooling_mode_cls_token) {
        (true, false) => Ok(Some(Pooling::Mean)),
        (false, true) => Ok(Some(Pooling::Cls)),
        (true, true) => Err(EmbedError::config(
            &path,
            "both mean and cls pooling are on; concatenated pooling is not supported",
        )),
        (false, false) => Ok(None),
    }
}
