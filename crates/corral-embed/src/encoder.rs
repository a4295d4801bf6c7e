//! The forward pass: from a padded batch of word-piece ids to the last hidden
//! state of every position.
//!
//! [`Encoder`] is the seam where implementations plug in: Corral's own
//! forward ([`Encoder::Fast`], the `fast` module) and candle's BERT
//! ([`Encoder::Candle`]). Tokenization, batching and pooling live outside
//! this module and are the same for both.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{self, BertModel};

use crate::fast::{FastBert, FastBertConfig, Int8Layers};
use crate::spec::Quantize;
use crate::EmbedError;

/// A batch of tokenized texts padded to the same length, row-major.
#[derive(Debug, Clone, Default)]
pub(crate) struct PaddedBatch {
    /// Number of texts.
    pub(crate) rows: usize,
    /// Length every row is padded to.
    pub(crate) seq_len: usize,
    /// Word-piece ids, `rows × seq_len`, padded with the pad id.
    pub(crate) ids: Vec<u32>,
    /// Token type ids, `rows × seq_len`.
    pub(crate) type_ids: Vec<u32>,
    /// 1 for a real token, 0 for padding, `rows × seq_len`.
    pub(crate) mask: Vec<u32>,
}

/// A loaded BERT forward pass.
pub(crate) enum Encoder {
    /// candle-transformers' BERT on candle's CPU backend.
    Candle(Box<CandleBert>),
    /// Corral's fused-kernel BERT; `threads` is its matmul parallelism. The
    /// mutex is uncontended (one embedder per worker thread); it exists
    /// because the forward reuses buffers across calls.
    Fast {
        model: Box<Mutex<FastBert>>,
        threads: usize,
    },
}

impl Encoder {
    /// Loads candle's BERT from the weights in `dir`
    /// (`model.safetensors`, else `pytorch_model.bin`).
    pub(crate) fn load_candle(dir: &Path, config: &bert::Config) -> Result<Self, EmbedError> {
        CandleBert::load(dir, config).map(|m| Self::Candle(Box::new(m)))
    }

    /// Loads the fast forward from `dir/model.safetensors`.
    ///
    /// # Errors
    /// When the model is not one it supports (no safetensors, another
    /// activation or position scheme, non-f32 weights).
    pub(crate) fn load_fast(
        dir: &Path,
        threads: usize,
        quantize: Quantize,
    ) -> Result<Self, EmbedError> {
        let config_path = dir.join("config.json");
        let json = std::fs::read_to_string(&config_path)
            .map_err(|e| EmbedError::io(format!("reading {}", config_path.display()), e))?;
        let config = FastBertConfig::from_hf_json(&json)?;
        let mut model = FastBert::load(&dir.join("model.safetensors"), &config)?;
        if quantize == Quantize::Int8 && !model.quantize(Int8Layers::DEFAULT_INT8) {
            tracing::warn!("this CPU has no AVX2: --quantize int8 runs in fp32");
        }
        Ok(Self::Fast {
            model: Box::new(Mutex::new(model)),
            threads: threads.max(1),
        })
    }

    /// Which engine this is, for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Candle(_) => "candle",
            Self::Fast { .. } => "fast",
        }
    }

    /// The last hidden state, `rows × seq_len × hidden_size`, row-major.
    pub(crate) fn forward(&self, batch: &PaddedBatch) -> Result<Vec<f32>, EmbedError> {
        match self {
            Self::Candle(model) => model.forward(batch),
            Self::Fast { model, threads } => {
                let mut model = model.lock().unwrap_or_else(PoisonError::into_inner);
                let hidden =
                    model.forward(&batch.ids, &batch.mask, batch.rows, batch.seq_len, *threads)?;
                Ok(hidden.to_vec())
            }
        }
    }
}

/// candle-transformers' [`BertModel`] and the device it runs on.
pub(crate) struct CandleBert {
    model: BertModel,
    device: Device,
}

impl CandleBert {
    fn load(dir: &Path, config: &bert::Config) -> Result<Self, EmbedError> {
        let device = Device::Cpu;
        let safetensors = dir.join("model.safetensors");
        let vb = if safetensors.is_file() {
            // SAFETY: the file is mapped read-only and candle copies every
            // tensor out of the map while loading; the usual caveat of mmap
            // (another process truncating the file meanwhile) applies.
            #[allow(unsafe_code)]
            unsafe {
                VarBuilder::from_mmaped_safetensors(&[&safetensors], DType::F32, &device)?
            }
        } else {
            VarBuilder::from_pth(dir.join("pytorch_model.bin"), DType::F32, &device)?
        };
        let model = BertModel::load(vb, config).map_err(|e| {
            EmbedError::config(
                dir,
                format!("the weights do not match config.json's BERT architecture: {e}"),
            )
        })?;
        Ok(Self { model, device })
    }

    fn forward(&self, batch: &PaddedBatch) -> Result<Vec<f32>, EmbedError> {
        let shape = (batch.rows, batch.seq_len);
        let ids = Tensor::from_slice(&batch.ids, shape, &self.device)?;
        let type_ids = Tensor::from_slice(&batch.type_ids, shape, &self.device)?;
        let mask = Tensor::from_slice(&batch.mask, shape, &self.device)?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        Ok(hidden.flatten_all()?.to_vec1::<f32>()?)
    }
}
