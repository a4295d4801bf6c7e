//! SPLADE: sparse vectors over the vocabulary from a BERT masked-language
//! model, as sentence-transformers' `SparseEncoder` (`MLMTransformer` then
//! `SpladePooling`) gives them — for each vocabulary entry, the largest
//! `log(1 + ReLU(logit))` over the text's tokens; entries that stay zero are
//! left out.
//!
//! [`SparseEncoder`] is a loaded model usable without the pool, on candle's
//! BERT with its MLM head (fp32); [`SparseBackend`] is the pool's view of it
//! (a text or its token ids in, its [`SparseVector`] out), which the HTTP
//! front serves on TEI's `POST /embed_sparse`.

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use candle_transformers::models::bert::BertForMaskedLM;
use corral_core::{Backend, BackendError, Batching, LoadContext};
use serde::Deserialize;

use crate::config::{Architecture, ModelConfig};
use crate::head::var_builder;
use crate::input::effective_max_len;
use crate::model_dir::check_model_dir;
use crate::tokenize::{estimate_tokens, EmbedTokenizer, TruncationSide};
use crate::{EmbedError, EmbedSpec, Pooling};

/// A sparse vector over a model's vocabulary: `indices` ascending, each
/// with its `values` entry (positive; the entries left out are zero).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseVector {
    /// Vocabulary ids, ascending.
    pub indices: Vec<u32>,
    /// The weight of each id in `indices`.
    pub values: Vec<f32>,
}

impl SparseVector {
    /// The vector written out in full, `len` entries (the vocabulary size).
    pub fn to_dense(&self, len: usize) -> Vec<f32> {
        let mut dense = vec![0.0; len];
        for (&i, &v) in self.indices.iter().zip(&self.values) {
            if let Some(slot) = dense.get_mut(i as usize) {
                *slot = v;
            }
        }
        dense
    }
}

/// What a SPLADE model directory declares, read from its configuration
/// only (no weights loaded): see [`EmbedSpec::sparse_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SparseInfo {
    /// The vocabulary size: every index of its vectors is below it.
    pub vocab_size: usize,
    /// Word pieces a text is cut to, special tokens included (the spec's
    /// limit, else the model's, capped at its position table).
    pub max_seq_length: usize,
}

impl EmbedSpec {
    /// The vocabulary size and maximum length of the SPLADE model in the
    /// directory, from its configuration only.
    ///
    /// # Errors
    /// As [`SparseEncoder::load`], minus the weights and the tokenizer.
    pub fn sparse_info(&self) -> Result<SparseInfo, EmbedError> {
        let dir: &Path = &self.model_dir;
        check_model_dir(dir)?;
        check_sparse_spec(self)?;
        let config = ModelConfig::load_sparse(dir)?;
        Ok(SparseInfo {
            vocab_size: config.vocab_size,
            max_seq_length: effective_max_len(self, &config),
        })
    }
}

/// What a [`SparseBackend`] takes: a text, tokenised by the worker (cut at
/// the end), or token ids already tokenised with the special tokens
/// around (the HTTP front's, cut as the client asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SparseInput {
    /// A text.
    Text(String),
    /// Token ids, special tokens included, within the model's length.
    Tokens(Vec<u32>),
}

impl From<String> for SparseInput {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<&str> for SparseInput {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

/// What a [`SparseBackend`] answers for one input: its vector, and the
/// batch that ran it (when it started, how long it took), for callers that
/// report queue and compute time.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseOutput {
    /// The input's sparse vector.
    pub vector: SparseVector,
    /// When the batch that ran it started.
    pub batch_started: Instant,
    /// How long that batch took.
    pub batch_time: Duration,
}

/// Whether `dir/modules.json` names a `SpladePooling` module (no
/// `modules.json` is not SPLADE).
///
/// # Errors
/// [`EmbedError::Config`] for a `modules.json` that is not JSON.
pub(crate) fn is_splade(dir: &Path) -> Result<bool, EmbedError> {
    let path = dir.join("modules.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(false);
    };
    let modules: Vec<Module> =
        serde_json::from_str(&text).map_err(|e| EmbedError::config(&path, e.to_string()))?;
    Ok(modules.iter().any(|m| m.kind.ends_with("SpladePooling")))
}

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct SpladeConfig {
    #[serde(default = "max")]
    pooling_strategy: String,
    #[serde(default = "relu")]
    activation_function: String,
}

fn max() -> String {
    "max".into()
}

fn relu() -> String {
    "relu".into()
}

/// A loaded SPLADE model.
pub struct SparseEncoder {
    tokenizer: EmbedTokenizer,
    model: BertForMaskedLM,
    vocab_size: usize,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for SparseEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseEncoder")
            .field("vocab_size", &self.vocab_size)
            .field("max_seq_length", &self.tokenizer.max_seq_length())
            .finish_non_exhaustive()
    }
}

impl SparseEncoder {
    /// Loads the SPLADE model `spec.model_dir` holds — a BERT
    /// `BertForMaskedLM` checkpoint whose `modules.json` has a
    /// `SpladePooling` module with `pooling_strategy` `max` and
    /// `activation_function` `relu`, or, with `spec.pooling`
    /// [`Pooling::Splade`], any `BertForMaskedLM` checkpoint — to run on
    /// `threads` threads. The
    /// decoder's weights may be tied to the word embeddings (left out of the
    /// checkpoint). `spec`'s maximum length applies; a dense pooling is
    /// refused; its normalisation, engine, quantisation, prompt and `truncate_dim` do not.
    ///
    /// # Errors
    /// [`EmbedError::ModelDir`] for a missing or incomplete directory;
    /// [`EmbedError::Config`] for a directory that is not such a model (no
    /// `SpladePooling`, another pooling strategy or activation, another
    /// architecture) or weights that do not match it;
    /// [`EmbedError::Tokenizer`] for a bad `tokenizer.json`.
    pub fn load(spec: &EmbedSpec, threads: usize) -> Result<Self, EmbedError> {
        let dir: &Path = &spec.model_dir;
        check_model_dir(dir)?;
        check_sparse_spec(spec)?;
        let config = ModelConfig::load_sparse(dir)?;
        let Architecture::Bert(bert) = &config.arch else {
            return Err(EmbedError::config(
                dir.join("config.json"),
                "SPLADE is supported on BERT masked-language models (BertForMaskedLM) only",
            ));
        };
        let max_seq_length = effective_max_len(spec, &config);
        let tokenizer = EmbedTokenizer::from_file(
            &dir.join("tokenizer.json"),
            max_seq_length,
            config.vocab_size,
        )?;
        let vb = var_builder(dir)?;
        // The decoder is tied to the word embeddings (and its bias kept as
        // `cls.predictions.bias`) in most checkpoints.
        let tied = !vb.contains_tensor("cls.predictions.decoder.weight");
        let untied_bias = !vb.contains_tensor("cls.predictions.decoder.bias");
        let vb = vb.rename_f(move |name: &str| match name {
            "cls.predictions.decoder.weight" if tied => {
                "bert.embeddings.word_embeddings.weight".to_owned()
            }
            "cls.predictions.decoder.bias" if untied_bias => "cls.predictions.bias".to_owned(),
            other => other.to_owned(),
        });
        let model = BertForMaskedLM::load(vb, bert).map_err(|e| {
            EmbedError::config(
                dir,
                format!("the weights are not a BERT masked-language model's: {e}"),
            )
        })?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("corral-sparse-{i}"))
            .build()
            .map_err(|e| EmbedError::ThreadPool(e.to_string()))?;
        Ok(Self {
            tokenizer,
            model,
            vocab_size: config.vocab_size,
            pool,
        })
    }

    /// The vocabulary size: every index is below it.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Word pieces a text is cut to, special tokens included.
    pub fn max_seq_length(&self) -> usize {
        self.tokenizer.max_seq_length()
    }

    /// The ids `text` becomes (special tokens around, cut at the end).
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] if the tokenizer refuses the text.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        match self.tokenizer.encode(text, TruncationSide::Right) {
            Ok(t) => Ok(t.ids),
            Err(EmbedError::Tokenizer(e)) => {
                Err(EmbedError::InvalidInput(format!("tokenizing: {e}")))
            }
            Err(e) => Err(e),
        }
    }

    /// One sparse vector per text, in order, in one padded forward pass
    /// (keep batches small: the pass holds `texts × longest × vocabulary`
    /// logits).
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] if the tokenizer refuses a text;
    /// [`EmbedError::Candle`] if the forward pass fails.
    pub fn encode<S: AsRef<str>>(&mut self, texts: &[S]) -> Result<Vec<SparseVector>, EmbedError> {
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.token_ids(t.as_ref()))
            .collect::<Result<_, _>>()?;
        self.encode_ids(&ids)
    }

    /// One sparse vector per list of token ids (special tokens included),
    /// in order, in one padded forward pass, as [`Self::encode`].
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] for an empty list, one longer than the
    /// model's length or an id outside the vocabulary;
    /// [`EmbedError::Candle`] if the forward pass fails.
    pub fn encode_ids(&mut self, ids: &[Vec<u32>]) -> Result<Vec<SparseVector>, EmbedError> {
        let max = self.max_seq_length();
        for (i, row) in ids.iter().enumerate() {
            if row.is_empty() || row.len() > max {
                return Err(EmbedError::InvalidInput(format!(
                    "input {i} has {} token ids; 1 to {max} are accepted",
                    row.len()
                )));
            }
            if let Some(&id) = row.iter().find(|&&id| id as usize >= self.vocab_size) {
                return Err(EmbedError::InvalidInput(format!(
                    "input {i}: token id {id} is outside the vocabulary (0..{})",
                    self.vocab_size
                )));
            }
        }
        let model = &self.model;
        let vocab = self.vocab_size;
        self.pool.install(|| forward(model, ids, vocab))
    }
}

/// Most texts in one SPLADE forward pass: its logits are texts × longest
/// × vocabulary floats.
const MAX_SPARSE_ROWS: usize = 32;

/// The pool's view of a [`SparseEncoder`]: one text or its token ids
/// ([`SparseInput`]) in, its [`SparseVector`] out (in a [`SparseOutput`],
/// with its batch's timing). Batches are costed padded (rows × the longest, in
/// estimated tokens) within the spec's `max_forward_tokens` and at most 32
/// texts, so one pass holds at most `max_forward_tokens` × vocabulary
/// logits.
pub struct SparseBackend {
    encoder: SparseEncoder,
    max_forward_tokens: usize,
}

impl std::fmt::Debug for SparseBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseBackend")
            .field("encoder", &self.encoder)
            .field("max_forward_tokens", &self.max_forward_tokens)
            .finish()
    }
}

impl Backend for SparseBackend {
    type Spec = EmbedSpec;
    type Input = SparseInput;
    type Output = SparseOutput;

    fn load(spec: &EmbedSpec, ctx: &LoadContext) -> Result<Self, BackendError> {
        let encoder = SparseEncoder::load(spec, ctx.threads)?;
        tracing::info!(
            pool = %ctx.pool,
            worker = ctx.worker_id,
            vocab_size = encoder.vocab_size(),
            max_seq_length = encoder.max_seq_length(),
            "loaded SPLADE model from {}",
            spec.model_dir.display()
        );
        Ok(Self {
            encoder,
            max_forward_tokens: spec.max_forward_tokens.max(1),
        })
    }

    fn cost(&self, input: &SparseInput) -> usize {
        match input {
            SparseInput::Text(t) => estimate_tokens(t, self.encoder.max_seq_length()),
            SparseInput::Tokens(ids) => ids.len().max(1),
        }
    }

    fn batching(&self) -> Batching {
        Batching::PADDED
            .with_max_cost(self.max_forward_tokens)
            .with_max_inputs(MAX_SPARSE_ROWS)
    }

    fn run(&mut self, batch: &[&SparseInput]) -> Result<Vec<SparseOutput>, BackendError> {
        let batch_started = Instant::now();
        let ids: Vec<Vec<u32>> = batch
            .iter()
            .map(|input| match input {
                SparseInput::Text(t) => self.encoder.token_ids(t),
                SparseInput::Tokens(ids) => Ok(ids.clone()),
            })
            .collect::<Result<_, _>>()?;
        let vectors = self.encoder.encode_ids(&ids)?;
        let batch_time = batch_started.elapsed();
        Ok(vectors
            .into_iter()
            .map(|vector| SparseOutput {
                vector,
                batch_started,
                batch_time,
            })
            .collect())
    }
}

/// Checks that `spec` serves SPLADE vectors: without a pooling, its
/// directory declares a `SpladePooling` module ([`check_splade_module`]);
/// with [`Pooling::Splade`], that module is checked if declared, else the
/// model must be a BERT masked-language model; a dense pooling is refused.
fn check_sparse_spec(spec: &EmbedSpec) -> Result<(), EmbedError> {
    let dir: &Path = &spec.model_dir;
    match spec.pooling {
        None => check_splade_module(dir),
        Some(Pooling::Splade) if is_splade(dir)? => check_splade_module(dir),
        Some(Pooling::Splade) => crate::config::check_mlm_head(dir),
        Some(dense) => Err(EmbedError::config(
            dir,
            format!("pooling {dense} gives dense vectors; SparseEncoder gives SPLADE ones (pooling splade)"),
        )),
    }
}

/// Checks that `dir/modules.json` names a `SpladePooling` module whose
/// configuration (if any) is max pooling over ReLU.
fn check_splade_module(dir: &Path) -> Result<(), EmbedError> {
    let path = dir.join("modules.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        EmbedError::config(
            &path,
            format!("a SPLADE model needs modules.json with a SpladePooling module: {e}"),
        )
    })?;
    let modules: Vec<Module> =
        serde_json::from_str(&text).map_err(|e| EmbedError::config(&path, e.to_string()))?;
    let Some(module) = modules.iter().find(|m| m.kind.ends_with("SpladePooling")) else {
        return Err(EmbedError::config(
            &path,
            "no SpladePooling module: this is not a SPLADE model",
        ));
    };
    let cfg_path = dir.join(&module.path).join("config.json");
    if let Ok(text) = std::fs::read_to_string(&cfg_path) {
        let cfg: SpladeConfig = serde_json::from_str(&text)
            .map_err(|e| EmbedError::config(&cfg_path, e.to_string()))?;
        if cfg.pooling_strategy != "max" || cfg.activation_function != "relu" {
            return Err(EmbedError::config(
                &cfg_path,
                format!(
                    "SpladePooling {:?} over {:?} is not supported (max over relu is)",
                    cfg.pooling_strategy, cfg.activation_function
                ),
            ));
        }
    }
    Ok(())
}

/// The padded forward pass and the SPLADE pooling of each row's real
/// tokens.
fn forward(
    model: &BertForMaskedLM,
    ids: &[Vec<u32>],
    vocab: usize,
) -> Result<Vec<SparseVector>, EmbedError> {
    let rows = ids.len();
    let seq = ids.iter().map(Vec::len).max().unwrap_or(0);
    if rows == 0 || seq == 0 {
        return Ok(vec![SparseVector::default(); rows]);
    }
    let mut flat = vec![0u32; rows * seq];
    let mut mask = vec![0u32; rows * seq];
    for (r, row) in ids.iter().enumerate() {
        flat[r * seq..r * seq + row.len()].copy_from_slice(row);
        mask[r * seq..r * seq + row.len()].fill(1);
    }
    let device = Device::Cpu;
    let ids_t = Tensor::from_vec(flat, (rows, seq), &device)?;
    let types = ids_t.zeros_like()?;
    let mask_t = Tensor::from_vec(mask, (rows, seq), &device)?;
    let logits = model.forward(&ids_t, &types, Some(&mask_t))?;
    let logits = logits.flatten_all()?.to_vec1::<f32>()?;
    Ok(ids
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let mut best = vec![0f32; vocab];
            for t in 0..row.len() {
                let at = (r * seq + t) * vocab;
                for (b, &x) in best.iter_mut().zip(&logits[at..at + vocab]) {
                    let w = x.max(0.0).ln_1p();
                    if w > *b {
                        *b = w;
                    }
                }
            }
            let mut v = SparseVector::default();
            for (i, &w) in best.iter().enumerate() {
                if w > 0.0 {
                    v.indices.push(i as u32);
                    v.values.push(w);
                }
            }
            v
        })
        .collect())
}
