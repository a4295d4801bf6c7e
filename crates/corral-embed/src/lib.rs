//! Sentence embeddings, cross-encoder reranking and sequence
//! classification from BERT- and XLM-RoBERTa-family models, run on the CPU
//! by Corral's own encoder (FastBert) or candle's, and embeddings from
//! MPNet, NomicBert, ModernBERT and Qwen3 models on candle's, as Corral
//! [`Backend`](corral_core::Backend)s.
//!
//! A model directory is served as what its `config.json` declares
//! ([`EmbedSpec::model_kind`]): a bare encoder embeds ([`Embedder`],
//! [`EmbedBackend`]); a `*ForSequenceClassification` scores texts or pairs
//! ([`Scorer`], [`ScoreBackend`]) — a reranker with one label, a
//! classifier with several. Loading one as the other fails with
//! [`EmbedError::WrongTask`].
//!
//! # Layout
//! - [`model_dir`]: where models live, the check that a directory holds one,
//!   and fetching the default model (all-MiniLM-L6-v2).
//! - `spec`: [`EmbedSpec`] (what to load) and [`Pooling`].
//! - `config`: reading `config.json` (once: the architecture, candle's and
//!   FastBert's configurations) and the sentence-transformers files
//!   (pooling mode, maximum sequence length).
//! - `tokenize`: [`EmbedTokenizer`], the one tokenizer of the workers and
//!   of front ends that tokenise first: `tokenizer.json` with padding off
//!   (texts are packed, not padded), the sentence-transformers truncation
//!   from either side, bounded work on very long texts; pairs with the
//!   model's pair template and `longest_first` truncation
//!   ([`EmbedTokenizer::encode_pair`]), and [`EmbedTokenizer::decode`].
//! - `arch`: the families beyond BERT and XLM-RoBERTa (MPNet, written
//!   here; NomicBert, ModernBERT and the Qwen3 decoder, candle-transformers'):
//!   their sizes from `config.json`, their weight names, one masked padded
//!   forward each.
//! - `encoder`: the forward pass behind one seam (FastBert or candle's
//!   BERT / XLM-RoBERTa), from one packed batch (ids + offsets, and token
//!   types for pairs) to pooled rows or, through the head, logits.
//! - [`fast`]: FastBert, Corral's own BERT / XLM-RoBERTa forward for the
//!   CPU, and [`fast::OpTimer`], its per-op profile; its kernels are
//!   private to the crate.
//! - `pooling`: the one pooling implementation (mean, `[CLS]` or last token, then
//!   [`l2_normalize`]) over packed hidden states.
//! - `embedder`: [`Embedder`], a loaded model usable without the pool —
//!   tokenizing, one packed batch per forward pass, and the rule its
//!   forward is costed by ([`Embedder::batching`]: packed or padded).
//! - `backend`: [`EmbedBackend`], the pool's view of an [`Embedder`], and
//!   [`ScoreBackend`], of a [`Scorer`]; the pool batches by their rule, so
//!   each batch is one forward.
//! - `score`: what a model with a sequence-classification head (a
//!   cross-encoder reranker or a classifier) takes and gives:
//!   [`ModelKind`], [`ScoreInput`], [`ScoreOutput`], [`Activation`],
//!   [`PairTokenized`]; and [`ScoreInfo`] ([`EmbedSpec::score_info`]:
//!   kind, labels, activation from the configuration alone).
//! - `head`: the classification head both engines share, in fp32, on each
//!   text's first row (`[CLS]` / `<s>`): BERT's pooler + `classifier`,
//!   XLM-RoBERTa's `classifier.dense` + `classifier.out_proj`.
//! - `scorer`: [`Scorer`], a loaded reranker or classifier usable without
//!   the pool — tokenizing texts and pairs, one packed forward pass, raw
//!   logits; [`Scorer::rerank`] gives `CrossEncoder.predict`'s scores.
//! - `sparse`: [`SparseEncoder`], SPLADE sparse vectors ([`SparseVector`])
//!   from a BERT masked-language model, as sentence-transformers'
//!   `SparseEncoder` gives them, and [`SparseBackend`], its pool view
//!   (texts or token ids in, [`SparseInput`]; served on TEI's
//!   `/embed_sparse`).
//! - `input`: [`EmbedInput`] (a text or pre-tokenised ids) and
//!   [`ModelInfo`], for front ends that tokenise before they submit.
//! - `wire` (feature `cluster`): the wire forms of [`EmbedInput`],
//!   [`EmbedOutput`], [`ScoreInput`] and [`ScoreOutput`]
//!   (`corral_cluster::Wire`), for pools across nodes.
//!
//! ```no_run
//! use corral_embed::{EmbedSpec, Embedder};
//! let spec = EmbedSpec::default_model()?;
//! let mut embedder = Embedder::load(&spec, 1)?;
//! let vectors = embedder.embed(&["Hello world"])?;
//! assert_eq!(vectors[0].len(), embedder.dim());
//! # Ok::<(), corral_embed::EmbedError>(())
//! ```
//!
//! ```no_run
//! use corral_embed::{EmbedSpec, Scorer};
//! let spec = EmbedSpec::new("models/ms-marco-MiniLM-L-6-v2");
//! let mut scorer = Scorer::load(&spec, 1)?;
//! let scores = scorer.rerank("what is a cat", &["a small feline", "a car"])?;
//! assert_eq!(scores.len(), 2);
//! # Ok::<(), corral_embed::EmbedError>(())
//! ```
#![warn(missing_docs, unreachable_pub)]
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

mod arch;
mod backend;
mod config;
mod embedder;
mod encoder;
mod error;
pub mod fast;
mod head;
mod input;
mod loaded;
pub mod model_dir;
mod pooling;
mod score;
mod scorer;
mod sparse;
mod spec;
mod tokenize;
#[cfg(feature = "cluster")]
mod wire;

pub use backend::{EmbedBackend, EmbedInputBackend, EmbedOutput, ScoreBackend};
pub use embedder::Embedder;
pub use error::EmbedError;
pub use input::{EmbedInput, ModelInfo};
pub use pooling::l2_normalize;
pub use score::{Activation, ModelKind, PairTokenized, ScoreInfo, ScoreInput, ScoreOutput};
pub use scorer::Scorer;
pub use sparse::{
    SparseBackend, SparseEncoder, SparseInfo, SparseInput, SparseOutput, SparseVector,
};
pub use spec::{EmbedSpec, Engine, Pooling, Prompt, Prompts, Quantize, DEFAULT_MAX_FORWARD_TOKENS};
pub use tokenize::{EmbedTokenizer, SpannedToken, Tokenized, TruncationSide};

/// What this crate's encoder bench (`benches/encoder.rs`) needs beyond the
/// public API: a bench builds as a crate of its own, so it reaches only
/// public items, and the switch below is process-wide, not something an
/// application should touch. Not part of the API: hidden from the docs and
/// free to change.
#[doc(hidden)]
pub mod bench_support {
    /// Allows (the default) or forbids the AVX2 + FMA builds of FastBert's
    /// fp32 element-wise and attention kernels, process-wide, so that the
    /// bench can profile a forward pass with and without them.
    pub fn set_avx2_enabled(on: bool) {
        crate::fast::set_avx2_enabled(on);
    }
}
