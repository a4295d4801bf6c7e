//! The weights a forward pass reads ([`Model`]), the handle a cache of
//! loaded models keeps on them ([`WeakWeights`]), and the scoped threads a
//! load runs its layers on ([`on_cores`]).
//!
//! This module owns [`Model`] and [`WeakWeights`].

use std::sync::{Arc, Weak};

use super::embeddings::Embeddings;
use super::layer::EncoderLayer;
use super::{FastBert, FastBertConfig, Isa};

/// The weights a forward pass reads and never writes: the embeddings and
/// the encoder layers, quantised and packed for the kernels. Every
/// [`FastBert`] made by [`FastBert::share`] reads the same one.
#[derive(Debug, Clone)]
pub(super) struct Model {
    pub(super) embeddings: Embeddings,
    pub(super) layers: Vec<EncoderLayer>,
    /// Whether the fp32 dense layers were packed for the build that runs
    /// (on the first forward or share, after any quantisation, so that a
    /// model quantised at load never packs what it then drops).
    pub(super) packed: bool,
}

impl Model {
    /// Packs the fp32 dense layers for the build that runs, once.
    pub(super) fn pack(&mut self) {
        if self.packed {
            return;
        }
        let isa = Isa::current();
        for layer in &mut self.layers {
            for dense in [
                &mut layer.qkv,
                &mut layer.attn_out,
                &mut layer.ffn_in,
                &mut layer.ffn_out,
            ] {
                dense.pack_for(isa);
            }
        }
        self.packed = true;
    }
}

/// `f(i, &mut items[i])` for every item, on up to as many scoped threads
/// as the machine has cores (each a contiguous run of items): loading and
/// quantising a model's layers, which a worker does once, on cores
/// otherwise idle while it loads. A panic in `f` is resumed here.
pub(super) fn on_cores<T: Send>(items: &mut [T], f: impl Fn(usize, &mut T) + Sync) {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let per = items.len().div_ceil(cores).max(1);
    if per >= items.len() {
        items.iter_mut().enumerate().for_each(|(i, t)| f(i, t));
        return;
    }
    let f = &f;
    std::thread::scope(|s| {
        let runs: Vec<_> = items
            .chunks_mut(per)
            .enumerate()
            .map(|(c, run)| {
                s.spawn(move || {
                    for (j, t) in run.iter_mut().enumerate() {
                        f(c * per + j, t);
                    }
                })
            })
            .collect();
        for run in runs {
            run.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
    });
}

/// Weights of a [`FastBert`] that some FastBert may still read: see
/// [`FastBert::weak_weights`].
#[derive(Debug, Clone)]
pub(crate) struct WeakWeights {
    config: FastBertConfig,
    model: Weak<Model>,
}

impl WeakWeights {
    /// A handle on `model`, read with `config`.
    pub(super) fn of(config: FastBertConfig, model: &Arc<Model>) -> Self {
        Self {
            config,
            model: Arc::downgrade(model),
        }
    }

    /// A FastBert on these weights, with buffers of its own, while any
    /// FastBert still reads them; `None` once the last is gone.
    pub(crate) fn upgrade(&self) -> Option<FastBert> {
        let model = self.model.upgrade()?;
        Some(FastBert::with_model(self.config.clone(), model))
    }

    /// Whether some FastBert still reads these weights.
    pub(crate) fn is_live(&self) -> bool {
        self.model.strong_count() > 0
    }
}
