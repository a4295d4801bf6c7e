//! The forward pass: from a packed batch of word-piece ids (each text's ids
//! one after another, with offsets — TEI's `Batch` layout) to pooled rows.
//!
//! [`Encoder`] is the seam where implementations plug in: Corral's own
//! forward ([`Encoder::Fast`], the `fast` module), which never pads, and
//! candle's BERT ([`Encoder::Candle`]), which pads for itself (texts of
//! similar length together) and drops the padding rows again. Both hand
//! packed hidden states to the one pooling implementation
//! ([`crate::pooling`]). Which one runs decides how the pool costs a batch
//! ([`crate::Embedder::batching`]): the sum of its tokens for the fast
//! engine, rows × the longest (a bound) for candle's.

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_transformers::models::bert::BertModel;
use candle_transformers::models::xlm_roberta::XLMRobertaModel;

use crate::arch::FamilyModel;
use crate::config::{Architecture, ModelConfig};
use crate::fast::{FastBert, FastBertConfig, Int8Layers};
use crate::head::{var_builder, Head};
use crate::pooling::pool;
use crate::spec::{Engine, Quantize};
use crate::{EmbedError, EmbedSpec, Pooling};

/// Tokenized texts packed one after another, no padding.
#[derive(Debug, Clone, Default)]
pub(crate) struct PackedBatch {
    /// Word-piece ids of every text, concatenated.
    pub(crate) ids: Vec<u32>,
    /// Token type of every id (pairs of texts on BERT), or empty: type 0
    /// everywhere (one sentence per text, as embeddings are).
    pub(crate) type_ids: Vec<u32>,
    /// Text `i` is `ids[offsets[i]..offsets[i + 1]]`; starts at 0, ends at
    /// `ids.len()`.
    pub(crate) offsets: Vec<usize>,
}

impl PackedBatch {
    /// An empty batch (offsets `[0]`).
    pub(crate) fn new() -> Self {
        Self {
            offsets: vec![0],
            ..Self::default()
        }
    }

    /// Appends one text.
    pub(crate) fn push(&mut self, ids: &[u32]) {
        self.ids.extend_from_slice(ids);
        self.offsets.push(self.ids.len());
    }

    /// Appends one text or pair with its token types. A batch is typed
    /// throughout or not at all: mix this with [`PackedBatch::push`] only
    /// on an empty batch.
    pub(crate) fn push_typed(&mut self, ids: &[u32], type_ids: &[u32]) {
        debug_assert_eq!(ids.len(), type_ids.len());
        debug_assert_eq!(self.type_ids.len(), self.ids.len());
        self.ids.extend_from_slice(ids);
        self.type_ids.extend_from_slice(type_ids);
        self.offsets.push(self.ids.len());
    }

    /// Number of texts.
    pub(crate) fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The longest text's length.
    pub(crate) fn max_len(&self) -> usize {
        self.offsets
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0)
    }
}

/// A loaded forward pass.
pub(crate) enum Encoder {
    /// candle-transformers' BERT, XLM-RoBERTa, NomicBert, ModernBERT or
    /// Qwen3 on candle's CPU backend.
    Candle(Box<CandleBert>),
    /// Corral's fused-kernel BERT; `threads` is its parallelism.
    Fast {
        model: Box<FastBert>,
        threads: usize,
    },
}

impl Encoder {
    /// Loads the engine `spec` asks for with `threads` threads: the fast
    /// one, falling back to candle's with a warning where it does not
    /// support the model, or candle's (fp32 whatever `spec.quantize`).
    pub(crate) fn load(
        spec: &EmbedSpec,
        config: &ModelConfig,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let dir: &Path = &spec.model_dir;
        let encoder = match spec.engine {
            Engine::Candle => {
                if spec.quantize != Quantize::None {
                    tracing::warn!(
                        "the candle engine runs fp32 only: --quantize {} runs in fp32",
                        spec.quantize
                    );
                }
                Self::load_candle(dir, &config.arch)?
            }
            Engine::Fast => match &config.fast {
                Ok(fast) => Self::load_fast(dir, fast, threads, spec.quantize),
                Err(e) => Err(EmbedError::config(dir.join("config.json"), e.clone())),
            }
            .or_else(|e| {
                let fp32 = if spec.quantize == Quantize::None {
                    String::new()
                } else {
                    format!(", so --quantize {} runs in fp32", spec.quantize)
                };
                tracing::warn!(
                    model = %dir.display(),
                    "the fast encoder does not support this model ({e}); using candle's{fp32}"
                );
                Self::load_candle(dir, &config.arch)
            })?,
        };
        Ok(encoder)
    }

    /// Loads candle's model for `arch` from the weights in `dir`
    /// (`model.safetensors`, else `pytorch_model.bin`).
    pub(crate) fn load_candle(dir: &Path, arch: &Architecture) -> Result<Self, EmbedError> {
        CandleBert::load(dir, arch).map(|m| Self::Candle(Box::new(m)))
    }

    /// Loads the fast forward from `dir/model.safetensors` with `config`
    /// (read from `config.json` by the caller), with the dense layers in
    /// int8 or bf16 when `quantize` says so and the CPU can — or shares the weights
    /// of the same model already loaded in this process
    /// ([`crate::loaded`]), with buffers of its own.
    ///
    /// # Errors
    /// When the model is not one it supports (no safetensors, another
    /// activation or position scheme, non-f32 weights).
    pub(crate) fn load_fast(
        dir: &Path,
        config: &FastBertConfig,
        threads: usize,
        quantize: Quantize,
    ) -> Result<Self, EmbedError> {
        let file = dir.join("model.safetensors");
        let model = crate::loaded::load_shared(&file, config, quantize, || {
            let mut model = FastBert::load(&file, config)?;
            match quantize {
                Quantize::None => {}
                Quantize::Int8 => {
                    if !model.quantize(Int8Layers::DEFAULT_INT8) {
                        tracing::warn!("this CPU has no AVX2: --quantize int8 runs in fp32");
                    }
                }
                Quantize::Bf16 => {
                    if !model.quantize_bf16() {
                        tracing::warn!(
                            isa = crate::fast::kernel_isa(),
                            "this CPU (or the kernel build CORRAL_ISA forces) has no \
                             AVX-512 BF16: --quantize bf16 runs in fp32"
                        );
                    }
                }
            }
            Ok::<_, EmbedError>(model)
        })?;
        Ok(Self::Fast {
            model: Box::new(model),
            threads: threads.max(1),
        })
    }

    /// Which engine this is.
    pub(crate) fn engine(&self) -> Engine {
        match self {
            Self::Candle(_) => Engine::Candle,
            Self::Fast { .. } => Engine::Fast,
        }
    }

    /// Which engine this is, for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Candle(_) => "candle",
            Self::Fast { .. } => "fast",
        }
    }

    /// One pooled (and, when `normalize`, L2-normalised) vector per text of
    /// `batch`.
    pub(crate) fn forward_pooled(
        &mut self,
        batch: &PackedBatch,
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            Self::Candle(model) => {
                let (hidden, h) = model.forward_packed(batch)?;
                Ok(pool(&hidden, h, &batch.offsets, pooling, normalize))
            }
            Self::Fast { model, threads } => {
                let h = model.config().hidden_size;
                let hidden = model.forward_packed(&batch.ids, &batch.offsets, *threads)?;
                Ok(pool(hidden, h, &batch.offsets, pooling, normalize))
            }
        }
    }

    /// One logit per label of `head` for each text or pair of `batch`
    /// (typed, or all type 0 when its types are empty).
    pub(crate) fn forward_scores(
        &mut self,
        batch: &PackedBatch,
        head: &Head,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            Self::Candle(model) => {
                let (hidden, _) = model.forward_packed(batch)?;
                Ok(head.forward(&hidden, &batch.offsets))
            }
            Self::Fast { model, threads } => {
                let hidden = if batch.type_ids.is_empty() {
                    model.forward_packed(&batch.ids, &batch.offsets, *threads)?
                } else {
                    model.forward_packed_typed(
                        &batch.ids,
                        &batch.type_ids,
                        &batch.offsets,
                        *threads,
                    )?
                };
                Ok(head.forward(hidden, &batch.offsets))
            }
        }
    }
}

/// One of candle-transformers' encoders.
enum CandleModel {
    Bert(BertModel),
    /// XLM-RoBERTa pads with its `pad_token_id`, from which it derives the
    /// positions.
    XlmRoberta {
        model: XLMRobertaModel,
        pad_id: u32,
    },
    /// NomicBert, ModernBERT or Qwen3 ([`crate::arch`]), padded with id 0
    /// on the right under a mask.
    Family(FamilyModel),
}

/// candle-transformers' [`BertModel`] or [`XLMRobertaModel`] and the device
/// it runs on.
pub(crate) struct CandleBert {
    model: CandleModel,
    device: Device,
    hidden: usize,
}

impl CandleBert {
    fn load(dir: &Path, arch: &Architecture) -> Result<Self, EmbedError> {
        let device = Device::Cpu;
        let vb = var_builder(dir)?;
        let mismatch = |name: &str, e: candle_core::Error| {
            EmbedError::config(
                dir,
                format!("the weights do not match config.json's {name} architecture: {e}"),
            )
        };
        let (model, hidden) = match arch {
            Architecture::Bert(config) => (
                CandleModel::Bert(BertModel::load(vb, config).map_err(|e| mismatch("BERT", e))?),
                config.hidden_size,
            ),
            Architecture::XlmRoberta(config) => {
                // Checkpoints of models with a head keep the encoder under
                // `roberta.`; candle's model reads bare names.
                let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
                    vb
                } else {
                    vb.pp("roberta")
                };
                let model =
                    XLMRobertaModel::new(config, vb).map_err(|e| mismatch("XLM-RoBERTa", e))?;
                let pad_id = config.pad_token_id;
                (
                    CandleModel::XlmRoberta { model, pad_id },
                    config.hidden_size,
                )
            }
            Architecture::Family(family) => {
                let hidden = family
                    .sizes()
                    .map_err(|m| EmbedError::config(dir, m))?
                    .hidden_size;
                let model =
                    FamilyModel::load(vb, family).map_err(|e| mismatch(family.name(), e))?;
                (CandleModel::Family(model), hidden)
            }
        };
        Ok(Self {
            model,
            device,
            hidden,
        })
    }

    /// Runs `batch` as one or more padded forwards of texts of similar
    /// length ([`length_groups`]: as sentence-transformers sorts by length
    /// before batching, but within the batch it is given) and returns the
    /// real tokens' hidden states packed in `batch`'s order (`[tokens, h]`)
    /// with `h`.
    fn forward_packed(&self, batch: &PackedBatch) -> Result<(Vec<f32>, usize), EmbedError> {
        let lens: Vec<usize> = batch.offsets.windows(2).map(|w| w[1] - w[0]).collect();
        let groups = length_groups(&lens, self.hidden);
        if groups.len() <= 1 {
            return self.forward_padded(batch);
        }
        let h = self.hidden;
        let mut packed = vec![0f32; batch.ids.len() * h];
        for group in groups {
            let mut sub = PackedBatch::new();
            for &r in &group {
                let (a, b) = (batch.offsets[r], batch.offsets[r + 1]);
                if batch.type_ids.is_empty() {
                    sub.push(&batch.ids[a..b]);
                } else {
                    sub.push_typed(&batch.ids[a..b], &batch.type_ids[a..b]);
                }
            }
            let (hidden, sub_h) = self.forward_padded(&sub)?;
            debug_assert_eq!(sub_h, h);
            let mut at = 0;
            for &r in &group {
                let (a, b) = (batch.offsets[r] * h, batch.offsets[r + 1] * h);
                packed[a..b].copy_from_slice(&hidden[at..at + (b - a)]);
                at += b - a;
            }
        }
        Ok((packed, h))
    }

    /// Pads `batch` to its longest text, runs the model, and returns the
    /// real tokens' hidden states packed again (`[tokens, h]`) with `h`.
    fn forward_padded(&self, batch: &PackedBatch) -> Result<(Vec<f32>, usize), EmbedError> {
        let (rows, seq) = (batch.rows(), batch.max_len());
        let pad = match &self.model {
            CandleModel::Bert(_) | CandleModel::Family(_) => 0,
            CandleModel::XlmRoberta { pad_id, .. } => *pad_id,
        };
        let mut ids = vec![pad; rows * seq];
        let mut type_ids = vec![0u32; rows * seq];
        let mut mask = vec![0u32; rows * seq];
        for (r, w) in batch.offsets.windows(2).enumerate() {
            let len = w[1] - w[0];
            ids[r * seq..r * seq + len].copy_from_slice(&batch.ids[w[0]..w[1]]);
            if !batch.type_ids.is_empty() {
                type_ids[r * seq..r * seq + len].copy_from_slice(&batch.type_ids[w[0]..w[1]]);
            }
            mask[r * seq..r * seq + len].fill(1);
        }
        if rows == 0 || seq == 0 {
            return Ok((Vec::new(), self.hidden));
        }
        let shape = (rows, seq);
        let ids = Tensor::from_slice(&ids, shape, &self.device)?;
        let type_ids = Tensor::from_slice(&type_ids, shape, &self.device)?;
        let mask_t = Tensor::from_slice(&mask, shape, &self.device)?;
        let hidden = match &self.model {
            CandleModel::Bert(model) => model.forward(&ids, &type_ids, Some(&mask_t))?,
            CandleModel::XlmRoberta { model, .. } => {
                model.forward(&ids, &mask_t, &type_ids, None, None, None)?
            }
            CandleModel::Family(model) => model.forward(&ids, &mask_t)?,
        };
        let h = hidden.dim(2)?;
        let padded = hidden.flatten_all()?.to_vec1::<f32>()?;
        let mut packed = Vec::with_capacity(batch.ids.len() * h);
        for (i, &m) in mask.iter().enumerate() {
            if m != 0 {
                packed.extend_from_slice(&padded[i * h..(i + 1) * h]);
            }
        }
        Ok((packed, h))
    }
}

/// Splits rows of lengths `lens` into groups to pad and run apart, each a
/// run of the rows sorted by length, minimising the estimated work of a
/// hidden size `h` model: a padded token costs about `6h + seq` (the dense
/// layers' `12h²` multiply-adds, the attention's `2·seq·h`, per layer, in
/// units of `2h`), and a forward a fixed 8 tokens' worth. Row indices
/// ascend by length within and across groups; one group (or none, for no
/// rows) means "run as it is".
pub(crate) fn length_groups(lens: &[usize], h: usize) -> Vec<Vec<usize>> {
    let n = lens.len();
    if n <= 1 {
        return vec![(0..n).collect()];
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&r| lens[r]);
    let token = |seq: usize| (6 * h + seq) as u128;
    let fixed = 8 * token(0);
    // best[j]: least cost of the first j sorted rows; cut[j]: where its
    // last group starts.
    let mut best = vec![0u128; n + 1];
    let mut cut = vec![0usize; n + 1];
    for j in 1..=n {
        let seq = lens[order[j - 1]];
        let (mut least, mut at) = (u128::MAX, 0);
        for (i, &before) in best[..j].iter().enumerate() {
            let cost = before + fixed + (j - i) as u128 * seq as u128 * token(seq);
            if cost < least {
                (least, at) = (cost, i);
            }
        }
        best[j] = least;
        cut[j] = at;
    }
    let mut groups = Vec::new();
    let mut j = n;
    while j > 0 {
        groups.push(order[cut[j]..j].to_vec());
        j = cut[j];
    }
    groups.reverse();
    groups
}

#[cfg(test)]
mod tests {
    use super::length_groups;

    #[test]
    fn equal_lengths_stay_one_group() {
        assert_eq!(length_groups(&[10, 10, 10], 384), vec![vec![0, 1, 2]]);
        assert_eq!(length_groups(&[], 384), vec![Vec::<usize>::new()]);
        assert_eq!(length_groups(&[7], 384), vec![vec![0]]);
    }

    #[test]
    fn long_and_short_rows_part_and_every_row_is_kept() {
        let lens = [300, 12, 14, 302, 11, 13, 12, 301];
        let groups = length_groups(&lens, 768);
        assert_eq!(groups, vec![vec![4, 1, 6, 5, 2], vec![0, 7, 3]]);
        let mut all: Vec<usize> = groups.concat();
        all.sort_unstable();
        assert_eq!(all, (0..lens.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_lone_short_row_does_not_get_its_own_forward() {
        // Padding 1 row from 20 to 21 tokens costs less than a forward.
        assert_eq!(length_groups(&[21, 20, 21], 384), vec![vec![1, 0, 2]]);
    }
}
