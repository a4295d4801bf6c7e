//! What a model with a sequence-classification head takes and gives: the
//! [`ModelKind`] its `config.json` declares, the [`ScoreInput`] a scoring
//! pool takes (a text, a pair of texts, or their ids), the raw
//! [`ScoreOutput`] it answers, and the [`Activation`] that turns logits
//! into the scores clients see.
//!
//! A cross-encoder reranker is a classifier with one label: a (query,
//! document) pair in, one logit out, and sigmoid where its configuration
//! asks for it. A classifier with several labels answers one logit per
//! label, and softmax gives the probabilities.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::config::ModelConfig;
use crate::input::effective_max_len;
use crate::model_dir::check_model_dir;
use crate::{EmbedError, EmbedSpec};

/// What a model directory serves, as its `config.json` declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModelKind {
    /// A bare encoder (`BertModel`, `XLMRobertaModel`, or no head at all):
    /// sentence embeddings.
    Embed,
    /// A `*ForSequenceClassification` with one label: a cross-encoder
    /// that scores a (query, document) pair.
    Rerank,
    /// A `*ForSequenceClassification` with several labels: one score per
    /// label (`id2label`) for a text or a pair.
    Classify,
    /// A SPLADE masked-language model (a `SpladePooling` module in
    /// `modules.json`): a sparse vector over the vocabulary per text.
    SparseEmbed,
}

impl ModelKind {
    /// The task's name, as the CLI, `/info` and the cluster's group names
    /// spell it: `embed`, `rerank`, `classify`, `sparse-embed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embed => "embed",
            Self::Rerank => "rerank",
            Self::Classify => "classify",
            Self::SparseEmbed => "sparse-embed",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "embed" | "embedding" | "embeddings" => Ok(Self::Embed),
            "rerank" | "reranker" => Ok(Self::Rerank),
            "classify" | "classifier" | "classification" => Ok(Self::Classify),
            "sparse-embed" | "sparse" | "splade" => Ok(Self::SparseEmbed),
            other => Err(format!(
                "unknown task {other:?} (embed, rerank, classify, sparse-embed)"
            )),
        }
    }
}

/// How a classifier's logits become the scores clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// The raw logits (a reranker whose configuration names `Identity`).
    Identity,
    /// `1 / (1 + e^-x)` per logit: a one-label cross-encoder's default, as
    /// sentence-transformers' `CrossEncoder` applies it.
    Sigmoid,
    /// Probabilities over the labels: a classifier with several labels.
    Softmax,
}

impl Activation {
    /// Applies the activation to one input's logits, in place.
    pub fn apply(self, logits: &mut [f32]) {
        match self {
            Self::Identity => {}
            Self::Sigmoid => {
                for x in logits.iter_mut() {
                    *x = 1.0 / (1.0 + (-*x).exp());
                }
            }
            Self::Softmax => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for x in logits.iter_mut() {
                    *x = (*x - max).exp();
                    sum += *x;
                }
                if sum > 0.0 {
                    for x in logits.iter_mut() {
                        *x /= sum;
                    }
                }
            }
        }
    }

    /// The name (`identity`, `sigmoid`, `softmax`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Sigmoid => "sigmoid",
            Self::Softmax => "softmax",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tokenised text or pair, ready for [`ScoreInput::Tokens`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PairTokenized {
    /// Word-piece ids with the model's special tokens (`[CLS] a [SEP] b
    /// [SEP]` for BERT, `<s> a </s></s> b </s>` for XLM-RoBERTa), at most
    /// the maximum sequence length.
    pub ids: Vec<u32>,
    /// One token type per id: 0 for the first text and its special tokens,
    /// 1 for the second on models that have two types (BERT); all 0 on
    /// XLM-RoBERTa.
    pub type_ids: Vec<u32>,
    /// Whether anything was cut to fit.
    pub truncated: bool,
}

/// One input to a scoring pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScoreInput {
    /// One text (a classifier's usual input); the worker tokenises it.
    Text(String),
    /// A pair (query, document) for a cross-encoder, or (premise,
    /// hypothesis) for a pair classifier; the worker tokenises it,
    /// truncating as the model's tokenizer does for pairs.
    Pair(String, String),
    /// Ids and token types as [`crate::EmbedTokenizer::encode_pair`]
    /// gives them, special tokens included. The lengths must agree and
    /// stay within the maximum sequence length, and every id and type must
    /// be in range; otherwise the request fails as invalid input.
    Tokens(PairTokenized),
}

impl ScoreInput {
    /// A (query, document) pair.
    pub fn pair(first: impl Into<String>, second: impl Into<String>) -> Self {
        Self::Pair(first.into(), second.into())
    }
}

impl From<&str> for ScoreInput {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for ScoreInput {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl<A: Into<String>, B: Into<String>> From<(A, B)> for ScoreInput {
    fn from((a, b): (A, B)) -> Self {
        Self::pair(a, b)
    }
}

impl From<PairTokenized> for ScoreInput {
    fn from(t: PairTokenized) -> Self {
        Self::Tokens(t)
    }
}

/// One answer of a scoring pool: the raw logits (one per label), with when
/// the batch that computed them started and how long it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOutput {
    /// One raw logit per label, in `id2label` order (one for a reranker).
    /// Apply the model's [`Activation`] for the scores clients see.
    pub logits: Vec<f32>,
    /// When the batch that computed them started running.
    pub batch_started: Instant,
    /// How long that batch ran.
    pub batch_time: Duration,
}

/// What a model directory scores, read from its configuration only (no
/// weights): see [`EmbedSpec::score_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreInfo {
    /// What the model is for.
    pub kind: ModelKind,
    /// The labels, in `id2label` order: one for a reranker, several for a
    /// classifier, none for an embedder.
    pub labels: Vec<String>,
    /// How logits become scores: softmax for several labels; for one,
    /// sigmoid unless the configuration names `Identity`.
    pub activation: Activation,
    /// Word pieces per input (a pair counts as one), special tokens
    /// included: the spec's own limit, else `sentence_bert_config.json`'s
    /// `max_seq_length`, else (rerankers and classifiers)
    /// `tokenizer_config.json`'s `model_max_length`, each capped at the
    /// position table.
    pub max_seq_length: usize,
}

impl EmbedSpec {
    /// What the model directory serves, as its `config.json` declares it:
    /// an architecture `*ForSequenceClassification` is
    /// [`ModelKind::Rerank`] with one label (`id2label`'s length, else
    /// `num_labels`, else transformers' default 2) and
    /// [`ModelKind::Classify`] with several; anything else is
    /// [`ModelKind::Embed`] — except a directory whose `modules.json`
    /// names a `SpladePooling` module, or a masked-language model with
    /// the spec's pooling [`crate::Pooling::Splade`]:
    /// [`ModelKind::SparseEmbed`]. Reads the configuration only.
    ///
    /// # Errors
    /// As [`EmbedSpec::validate`], minus the tokenizer; a dense pooling on
    /// a SPLADE directory, or splade on a model without a masked-language
    /// head, refused by name.
    pub fn model_kind(&self) -> Result<ModelKind, EmbedError> {
        check_model_dir(&self.model_dir)?;
        if self.serves_sparse()? {
            return Ok(ModelKind::SparseEmbed);
        }
        Ok(ModelConfig::load(&self.model_dir)?.task.kind)
    }

    /// The kind, labels, activation and maximum length of the model, read
    /// from its configuration only. The activation is the one
    /// sentence-transformers' `CrossEncoder` applies: for one label,
    /// `config_sentence_transformers.json`'s `activation_fn`, else
    /// `config.json`'s `sentence_transformers.activation_fn`, else its
    /// `sbert_ce_default_activation_function`, else sigmoid; softmax for
    /// several labels (a classifier's probabilities); identity for an
    /// embedder.
    ///
    /// # Errors
    /// As [`EmbedSpec::model_kind`]; [`EmbedError::Config`] for an
    /// activation other than identity or sigmoid, or labels that are not
    /// numbered from 0.
    pub fn score_info(&self) -> Result<ScoreInfo, EmbedError> {
        check_model_dir(&self.model_dir)?;
        if self.serves_sparse()? {
            return Err(EmbedError::config(
                self.model_dir.join("config.json"),
                "a SPLADE model (pooling splade) gives sparse vectors, not scores",
            ));
        }
        let config = ModelConfig::load(&self.model_dir)?;
        Ok(ScoreInfo {
            kind: config.task.kind,
            labels: config.task.labels.clone(),
            activation: config.task.activation,
            max_seq_length: effective_max_len(self, &config),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_and_softmax_are_the_textbook_functions() {
        let mut s = [0.0, 2.0, -2.0];
        Activation::Sigmoid.apply(&mut s);
        assert_eq!(s[0], 0.5);
        assert!((s[1] - 0.880_797).abs() < 1e-6);
        assert!((s[1] + s[2] - 1.0).abs() < 1e-6);
        let mut p = [1.0, 2.0, 3.0];
        Activation::Softmax.apply(&mut p);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[2] - 0.665_240_9).abs() < 1e-6);
        // Large logits do not overflow.
        let mut big = [1000.0, 0.0];
        Activation::Softmax.apply(&mut big);
        assert_eq!(big, [1.0, 0.0]);
        let mut same = [3.5, -1.0];
        Activation::Identity.apply(&mut same);
        assert_eq!(same, [3.5, -1.0]);
    }

    #[test]
    fn task_names_round_trip() {
        for k in [ModelKind::Embed, ModelKind::Rerank, ModelKind::Classify] {
            assert_eq!(k.as_str().parse::<ModelKind>(), Ok(k));
        }
        assert!("summarise".parse::<ModelKind>().is_err());
    }
}
