//! Reading a model directory's configuration: the BERT `config.json` and the
//! sentence-transformers files (`modules.json`, `1_Pooling/config.json`,
//! `sentence_bert_config.json`) that say how to pool and where to truncate.

use std::fs;
use std::path::{Path, PathBuf};

use candle_transformers::models::bert;
use serde::Deserialize;

use crate::{EmbedError, Pooling};

/// Everything loading learns from a model directory's JSON files.
#[derive(Debug, Clone)]
pub(crate) struct ModelConfig {
    /// The BERT architecture, as candle's BERT reads it.
    pub(crate) bert: bert::Config,
    /// Pooling declared by the sentence-transformers pooling module, if any.
    pub(crate) pooling: Option<Pooling>,
    /// Maximum sequence length in word pieces (special tokens included).
    pub(crate) max_seq_length: usize,
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
    /// `config.json`).
    pub(crate) fn load(dir: &Path) -> Result<Self, EmbedError> {
        let config_path = dir.join("config.json");
        let probe: ArchitectureProbe = read_json(&config_path)?;
        let is_bert = probe.model_type.as_deref() == Some("bert")
            || probe
                .architectures
                .iter()
                .flatten()
                .any(|a| a.starts_with("Bert"));
        if !is_bert {
            return Err(EmbedError::config(
                &config_path,
                format!(
                    "not a BERT-architecture model (model_type {:?}, architectures {:?}); \
                     only BERT-family models are supported",
                    probe.model_type, probe.architectures
                ),
            ));
        }
        let bert: bert::Config = read_json(&config_path)?;
        if bert.hidden_size == 0
            || bert.num_attention_heads == 0
            || bert.hidden_size % bert.num_attention_heads != 0
        {
            return Err(EmbedError::config(
                &config_path,
                format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    bert.hidden_size, bert.num_attention_heads
                ),
            ));
        }

        let pooling = read_pooling(dir)?;
        let st_config: Option<SentenceBertConfig> =
            read_optional_json(&dir.join("sentence_bert_config.json"))?;
        let max_seq_length = st_config
            .and_then(|c| c.max_seq_length)
            .unwrap_or(bert.max_position_embeddings)
            .min(bert.max_position_embeddings);
        if max_seq_length < 2 {
            return Err(EmbedError::config(
                dir.join("sentence_bert_config.json"),
                format!("max_seq_length {max_seq_length} leaves no room for [CLS] and [SEP]"),
            ));
        }
        Ok(Self {
            bert,
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
