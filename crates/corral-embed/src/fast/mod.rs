//! A BERT encoder of Corral's own for the CPU, written for throughput on a
//! few cores (the pool runs one single-threaded worker per core) and for a
//! lone request's latency (a forward running alone takes every free core:
//! `share`, [`FastBert::set_max_threads`]).
//!
//! Compared with candle-transformers' `BertModel` it:
//! - drops padding: only tokens with mask 1 go through the dense layers, and
//!   attention runs per sequence over exactly its own tokens
//!   (`attention`), so a text gives the same result alone or in a batch;
//! - fuses Q, K and V into one matmul (`matmul`), through the same `gemm`
//!   crate candle uses, with the parallelism chosen per call (none for a
//!   single-threaded worker, so no thread-pool barriers);
//! - fuses what candle runs as several passes over memory: residual adds go
//!   into the matmul's accumulation, bias + layer norm is one pass
//!   (`layer_norm`), bias + exact GELU is one pass with a vectorisable erf
//!   (`activation`, `math`), the softmax runs in place;
//! - reuses all its buffers across batches.
//!
//! This module owns [`FastBert`] (loading and the forward pass) and
//! [`FastBertError`]; [`FastBertConfig`] and [`Int8Layers`] live in `config`
//! (re-exported here), and each layer of the computation lives in its own
//! private submodule, each with tests against the plain candle ops.

/// Defines `fn $name` that runs `$on` with [`Isa::current`], and `fn $on`
/// that runs the body compiled for AVX2 + FMA when given an AVX2 [`Isa`]
/// (the crate is built for baseline x86-64, where LLVM only vectorises 4
/// lanes wide) and the same body built for the baseline otherwise. The body
/// is identical, so results are too; tests call `$on` with each `Isa`.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident / $on:ident ($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            $on($crate::fast::Isa::current(), $($arg),*)
        }

        /// The same, by the kernel build `isa` selects.
        #[allow(dead_code, clippy::too_many_arguments)]
        pub(crate) fn $on(isa: $crate::fast::Isa, $($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if isa.is_avx2() {
                    // SAFETY: an AVX2 `Isa` exists only once the CPU was
                    // found to support AVX2 and FMA, the only precondition
                    // of calling `avx2`.
                    #[allow(unsafe_code)]
                    return unsafe { avx2($($arg),*) };
                }
            }
            let _ = isa;
            generic($($arg),*)
        }
    };
}

// The kernels and layers are private: FastBert is the one way in, as
// candle keeps its blocks behind its model types. `set_avx2_enabled` reaches
// the encoder bench through `crate::bench_support` only.
mod activation;
mod isa;
pub(crate) use isa::{set_avx2_enabled, Isa};

/// The name of the kernel build this process runs: `portable`, `avx2`,
/// `avx512vnni-256` or `avx512vnni-512` — the best this CPU has, or the one
/// the environment variable `CORRAL_ISA` forces (a build the CPU lacks
/// falls back to the best below it). The two AVX-512 builds also run bf16
/// dense layers ([`FastBert::quantize_bf16`]) where the CPU has AVX-512 BF16.
pub fn kernel_isa() -> &'static str {
    Isa::current().name()
}
mod attention;
mod bf16;
mod config;
pub use config::{FastBertConfig, Int8Layers};
mod embeddings;
mod layer;
mod layer_norm;
pub(crate) mod math;
mod matmul;
mod model;
pub mod op_timer;
mod qmatmul;
mod share;
#[cfg(test)]
mod test_util;
mod weights;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use attention::SeqSpan;
use embeddings::Embeddings;
use layer::{grow, EncoderLayer, Scratch};
pub(crate) use model::WeakWeights;
use model::{on_cores, Model};
use op_timer::{op_span, FORWARD, OP_TARGET};
pub use op_timer::{OpTime, OpTimer, OpTimes};
use weights::Weights;

/// Errors from loading a model or from malformed inputs.
#[derive(Debug, thiserror::Error)]
pub enum FastBertError {
    /// The weights file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The weights file is not valid safetensors.
    #[error("parsing safetensors: {0}")]
    SafeTensors(String),
    /// A tensor the model needs is absent (the name says under which prefix
    /// it was looked for: none, `bert.` or `roberta.`).
    #[error("missing tensor {0}")]
    MissingTensor(String),
    /// A tensor has the wrong dtype or shape.
    #[error("tensor {name}: {reason}")]
    BadTensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The configuration is unsupported or inconsistent.
    #[error("config: {0}")]
    Config(String),
    /// The inputs of a forward call are inconsistent.
    #[error("input: {0}")]
    Input(String),
}

/// A BERT encoder (embeddings + encoder layers, no pooler) with fused CPU
/// kernels, and one forward pass, [`FastBert::forward_packed`] (packed
/// texts, no padding, token type 0; pooling is the caller's), or
/// [`FastBert::forward_packed_typed`] with a token type per id (pairs of
/// texts for a cross-encoder). Each worker owns one, with its own buffers
/// (reused across calls); workers of one model share its weights through
/// [`FastBert::share`]. Each op of a forward runs in a TRACE-level span,
/// which [`OpTimer`] can sum per op (see [`op_timer`]).
#[derive(Debug)]
pub struct FastBert {
    config: FastBertConfig,
    /// The weights, shared read-only with the other [`FastBert::share`]s.
    model: Arc<Model>,
    scratch: Scratch,
    /// Packed hidden states, `[tokens, hidden]`.
    x: Vec<f32>,
    ids: Vec<u32>,
    /// Token types of the typed forward; empty on the untyped one.
    type_ids: Vec<u32>,
    positions: Vec<u32>,
    spans: Vec<SeqSpan>,
    /// Most threads a forward may take when the cores are free (see
    /// [`FastBert::set_max_threads`]); at most the `threads` it is given
    /// when not more.
    max_threads: usize,
    /// The cores shared with the other forward passes (the process's).
    share: &'static share::Share,
    /// The most threads any layer of the last forward ran on.
    last_threads: usize,
}

impl FastBert {
    /// Loads the weights from a safetensors file (F32; names bare or under
    /// `bert.` or `roberta.`), transposing and fusing them for the kernels.
    ///
    /// # Errors
    /// [`FastBertError::Io`] when the file cannot be read,
    /// [`FastBertError::SafeTensors`] when it is not safetensors,
    /// [`FastBertError::Config`] for an inconsistent configuration,
    /// [`FastBertError::MissingTensor`] / [`FastBertError::BadTensor`] for
    /// weights that do not match it.
    pub fn load(safetensors_path: &Path, config: &FastBertConfig) -> Result<Self, FastBertError> {
        let io = |source| FastBertError::Io {
            path: safetensors_path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(safetensors_path).map_err(io)?;
        // SAFETY: the map is read only here, while the weights are copied
        // into the model's own buffers, and dropped before `load` returns.
        // What a map cannot rule out is another process truncating the
        // file during those milliseconds (a read past the new end faults);
        // model files are not rewritten in place while a pool loads them.
        // Mapping instead of reading skips one copy of the file through a
        // buffer the size of the model (a quarter of the load's time).
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_weights(&Weights::from_bytes(&map)?, config)
    }

    /// Builds the model from `weights`: [`Embeddings::load`] from
    /// `embeddings`, then [`EncoderLayer::load`] from each
    /// `encoder.layer.{i}`.
    ///
    /// # Errors
    /// [`FastBertError::Config`] for an inconsistent configuration,
    /// [`FastBertError::MissingTensor`] / [`FastBertError::BadTensor`] for
    /// weights that do not match it.
    pub(crate) fn from_weights(
        weights: &Weights<'_>,
        config: &FastBertConfig,
    ) -> Result<Self, FastBertError> {
        config.check()?;
        let mut loaded: Vec<Option<Result<EncoderLayer, FastBertError>>> =
            (0..config.num_hidden_layers).map(|_| None).collect();
        // The embedding tables (half of a small model's bytes) beside the
        // layers, which load on every core.
        let embeddings = std::thread::scope(|s| {
            let embeddings = s.spawn(|| Embeddings::load(weights, "embeddings", config));
            on_cores(&mut loaded, |i, layer| {
                *layer = Some(EncoderLayer::load(
                    weights,
                    &format!("encoder.layer.{i}"),
                    config,
                ));
            });
            embeddings
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })?;
        let layers = loaded
            .into_iter()
            .map(|layer| layer.expect("every layer loaded"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::with_model(
            config.clone(),
            Arc::new(Model {
                embeddings,
                layers,
                packed: false,
            }),
        ))
    }

    /// A FastBert reading `model`, with empty buffers.
    fn with_model(config: FastBertConfig, model: Arc<Model>) -> Self {
        Self {
            config,
            model,
            scratch: Scratch::default(),
            x: Vec::new(),
            ids: Vec::new(),
            type_ids: Vec::new(),
            positions: Vec::new(),
            spans: Vec::new(),
            max_threads: 0,
            share: &share::PROCESS,
            last_threads: 0,
        }
    }

    /// Packs the weights for the build that runs, once (copying them first
    /// only if they are shared and not packed yet, which a shared model
    /// never is: [`FastBert::share`] packs before sharing).
    fn pack(&mut self) {
        if !self.model.packed {
            Arc::make_mut(&mut self.model).pack();
        }
    }

    /// Another FastBert on the same weights, with buffers of its own (and
    /// this one's [`FastBert::set_max_threads`]): what each further worker
    /// of a pool runs, so that N workers hold one copy of the model. Packs
    /// the weights for the build that runs first (what the first forward
    /// would do), so quantise before sharing: quantising a shared model
    /// copies its weights (copy on write), leaving the others as they are.
    pub fn share(&mut self) -> Self {
        self.pack();
        let mut other = Self::with_model(self.config.clone(), Arc::clone(&self.model));
        other.max_threads = self.max_threads;
        other
    }

    /// Whether `self` and `other` read the same weights (one was made from
    /// the other by [`FastBert::share`], and neither quantised since).
    pub fn shares_weights_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.model, &other.model)
    }

    /// A handle on these weights that does not keep them alive (packed
    /// first, as [`FastBert::share`] does): what a cache of loaded models
    /// holds, so that a model no pool uses any more is freed.
    pub(crate) fn weak_weights(&mut self) -> WeakWeights {
        self.pack();
        WeakWeights::of(self.config.clone(), &self.model)
    }

    /// Lets each forward take up to `max` threads of the rayon pool it runs
    /// in while the process's cores are free: before each layer, a forward
    /// given `threads` (its floor) takes its share of the cores — the
    /// cores ÷ the fast forward passes running in the process now, this one
    /// included — within `threads..=max`. So a lone request on an idle pool
    /// of single-threaded workers runs on every core, and under load each
    /// forward is back to its own threads within one layer of another
    /// starting. The pool it runs in should hold `max` threads. 0 or 1 (the
    /// default): exactly the `threads` given. Results do not depend on the
    /// threads a forward ran on beyond floating-point summation order in
    /// the fp32 matmuls (int8 and attention: the same bits).
    pub fn set_max_threads(&mut self, max: usize) {
        self.max_threads = max;
    }

    /// The most threads any layer of the last forward pass ran on.
    pub fn last_threads(&self) -> usize {
        self.last_threads
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &FastBertConfig {
        &self.config
    }

    /// Quantises the dense layers `which` selects to int8 (per output
    /// channel, symmetric; activations are then quantised per token on the
    /// fly), with the activations of
    /// [`Int8Layers::EIGHT_BIT_ACTIVATIONS`] in 8 bits where the CPU has
    /// AVX-512 VNNI (the build that runs, [`kernel_isa`]) and in 12 bits
    /// elsewhere: see [`FastBert::quantize_with`]. Returns `false`,
    /// changing nothing, when the CPU lacks the int8 kernel's instructions
    /// (x86-64's AVX2 and FMA): the model stays fp32.
    pub fn quantize(&mut self, which: Int8Layers) -> bool {
        let act8 = if qmatmul::Kernel::current().has_u8() {
            Int8Layers::EIGHT_BIT_ACTIVATIONS
        } else {
            Int8Layers::NONE
        };
        self.quantize_with(which, act8)
    }

    /// [`FastBert::quantize`] with the activations of the layers `act8`
    /// selects (among `which`) quantised to 8 bits (256 levels per token)
    /// instead of 12: on AVX-512 VNNI those layers run on `vpdpbusd`
    /// (`u8 × s8`, four products per lane, about twice the rate of the
    /// 16-bit pairs), elsewhere on the same 8-bit values in 16-bit lanes
    /// (no faster, less faithful). Every kernel build gives the same bits
    /// for the same choice.
    pub fn quantize_with(&mut self, which: Int8Layers, act8: Int8Layers) -> bool {
        if !qmatmul::int8_supported() {
            return false;
        }
        let h = self.config.hidden_size;
        let layers = &mut Arc::make_mut(&mut self.model).layers;
        // Each layer on a core of its own: quantising is most of a load.
        on_cores(layers, |_, layer| {
            if which.qkv {
                // Smoothing by the norm measured worse here (min cosine
                // 0.99600 against 0.99727, with 256 activation levels), so
                // QKV is quantised plainly.
                layer.qkv.quantize_in_place();
            }
            if which.attn_out {
                layer.attn_out.quantize_in_place();
            }
            if which.ffn_in {
                let norm = layer.attn_norm.clone();
                layer.ffn_in.quantize_smoothed(&norm, h);
            }
            if which.ffn_out {
                layer.ffn_out.quantize_in_place();
            }
            for (on, dense) in [
                (act8.qkv, &mut layer.qkv),
                (act8.attn_out, &mut layer.attn_out),
                (act8.ffn_in, &mut layer.ffn_in),
                (act8.ffn_out, &mut layer.ffn_out),
            ] {
                if on {
                    dense.set_max_levels(256);
                }
            }
        });
        true
    }

    /// Turns every encoder layer's four dense layers to bf16 (weights
    /// rounded once here, activations as each product starts, products
    /// summed in fp32; see `bf16`) where the build that runs has the bf16
    /// kernel: the AVX-512 builds on a CPU with AVX-512 BF16
    /// ([`kernel_isa`]). Returns `false`, changing nothing, elsewhere: the
    /// model stays fp32. Layers already in int8 stay int8.
    pub fn quantize_bf16(&mut self) -> bool {
        if !bf16::BfLinear::supported() {
            return false;
        }
        let layers = &mut Arc::make_mut(&mut self.model).layers;
        on_cores(layers, |_, layer| {
            for dense in [
                &mut layer.qkv,
                &mut layer.attn_out,
                &mut layer.ffn_in,
                &mut layer.ffn_out,
            ] {
                dense.quantize_bf16_in_place();
            }
        });
        true
    }

    /// Takes a packed batch (see [`FastBert::forward_packed`]) into
    /// `self.ids` / `self.positions` / `self.spans`.
    fn pack_offsets(&mut self, ids: &[u32], offsets: &[usize]) -> Result<(), FastBertError> {
        let ok = offsets.first() == Some(&0)
            && offsets.last() == Some(&ids.len())
            && offsets.windows(2).all(|w| w[0] <= w[1]);
        if !ok {
            return Err(FastBertError::Input(format!(
                "offsets must rise from 0 to the {} ids, got {} offsets",
                ids.len(),
                offsets.len()
            )));
        }
        self.ids.clear();
        self.ids.extend_from_slice(ids);
        self.type_ids.clear();
        self.positions.clear();
        self.spans.clear();
        for w in offsets.windows(2) {
            self.model
                .embeddings
                .push_positions(&ids[w[0]..w[1]], &mut self.positions);
            self.spans.push(SeqSpan {
                start: w[0],
                len: w[1] - w[0],
            });
        }
        Ok(())
    }

    /// Runs embeddings and all layers over the packed tokens, leaving the
    /// result in `self.x`.
    fn run_packed(&mut self, threads: usize) -> Result<(), FastBertError> {
        self.pack();
        let max_positions = self.model.embeddings.max_positions();
        if let Some(&p) = self.positions.iter().max() {
            if p as usize >= max_positions {
                return Err(FastBertError::Input(format!(
                    "sequence length {} exceeds max_position_embeddings {max_positions}",
                    p + 1
                )));
            }
        }
        let vocab = self.model.embeddings.vocab() as u32;
        if let Some(&bad) = self.ids.iter().find(|&&id| id >= vocab) {
            return Err(FastBertError::Input(format!(
                "token id {bad} ≥ vocab size {vocab}"
            )));
        }
        let types = self.model.embeddings.type_vocab() as u32;
        if let Some(&bad) = self.type_ids.iter().find(|&&t| t >= types) {
            return Err(FastBertError::Input(format!(
                "token type {bad} ≥ type_vocab_size {types}"
            )));
        }
        let h = self.config.hidden_size;
        op_span!("embeddings").in_scope(|| {
            grow(&mut self.x, self.ids.len() * h);
            if self.type_ids.is_empty() {
                self.model
                    .embeddings
                    .forward(&self.ids, &self.positions, &mut self.x);
            } else {
                self.model.embeddings.forward_typed(
                    &self.ids,
                    &self.type_ids,
                    &self.positions,
                    &mut self.x,
                );
            }
        });
        let x = &mut self.x[..self.ids.len() * h];
        let share = self.share;
        let running = share.enter();
        let ceiling = self.max_threads.max(threads);
        self.last_threads = 0;
        for layer in &self.model.layers {
            let t = running.threads(threads, ceiling);
            self.last_threads = self.last_threads.max(t);
            layer.forward(x, &self.spans, &mut self.scratch, t);
        }
        Ok(())
    }

    /// Last hidden states of a packed batch, `[ids.len(), hidden]`: text `i`
    /// is `ids[offsets[i]..offsets[i + 1]]` (so `offsets` rises from 0 to
    /// `ids.len()`), token type 0, positions from 0 in each text (from
    /// `padding_idx + 1` for XLM-RoBERTa) — TEI's
    /// `Batch` layout, with no padding anywhere. `threads` is the forward's
    /// parallelism (1 = the calling thread only; more use the current rayon
    /// pool). The returned slice borrows a buffer reused by the next call.
    ///
    /// # Errors
    /// [`FastBertError::Input`] for offsets that do not describe `ids`, an
    /// id outside the vocabulary or a text longer than the position table.
    pub fn forward_packed(
        &mut self,
        ids: &[u32],
        offsets: &[usize],
        threads: usize,
    ) -> Result<&[f32], FastBertError> {
        let _forward = tracing::trace_span!(target: OP_TARGET, FORWARD).entered();
        self.pack_offsets(ids, offsets)?;
        self.run_packed(threads)?;
        Ok(&self.x[..ids.len() * self.config.hidden_size])
    }

    /// [`FastBert::forward_packed`] with a token type per id (`type_ids`,
    /// as long as `ids`): what a pair of texts needs on BERT, whose second
    /// text is type 1. Type 0 everywhere gives exactly what
    /// [`FastBert::forward_packed`] gives.
    ///
    /// # Errors
    /// As [`FastBert::forward_packed`], and [`FastBertError::Input`] for
    /// `type_ids` of another length or a type outside the model's
    /// `type_vocab_size`.
    pub fn forward_packed_typed(
        &mut self,
        ids: &[u32],
        type_ids: &[u32],
        offsets: &[usize],
        threads: usize,
    ) -> Result<&[f32], FastBertError> {
        let _forward = tracing::trace_span!(target: OP_TARGET, FORWARD).entered();
        if type_ids.len() != ids.len() {
            return Err(FastBertError::Input(format!(
                "{} token types for {} ids",
                type_ids.len(),
                ids.len()
            )));
        }
        self.pack_offsets(ids, offsets)?;
        self.type_ids.extend_from_slice(type_ids);
        self.run_packed(threads)?;
        Ok(&self.x[..ids.len() * self.config.hidden_size])
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::write_tiny_bert;
