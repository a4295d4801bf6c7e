//! [`EmbedBackend`]: the [`Backend`] the core pool runs — one [`Embedder`]
//! per worker, loaded with the worker's thread count.

use corral_core::{Backend, BackendError, LoadContext};

use crate::{EmbedSpec, Embedder};

/// Sentence embeddings as a Corral backend: `String` in, `Vec<f32>` out.
///
/// `cost` is a cheap word-piece estimate (no tokenizing); `run` sorts the
/// batch by length, pads per slice and answers in input order (see
/// [`Embedder::embed`]).
#[derive(Debug)]
pub struct EmbedBackend {
    embedder: Embedder,
}

impl EmbedBackend {
    /// The loaded model.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }
}

impl Backend for EmbedBackend {
    type Spec = EmbedSpec;
    type Input = String;
    type Output = Vec<f32>;

    fn load(spec: &EmbedSpec, ctx: &LoadContext) -> Result<Self, BackendError> {
        let embedder = Embedder::load(spec, ctx.threads)?;
        tracing::info!(
            pool = %ctx.pool,
            worker = ctx.worker_id,
            threads = embedder.threads(),
            pooling = %embedder.pooling(),
            normalize = embedder.normalize(),
            max_seq_length = embedder.max_seq_length(),
            "loaded embedding model from {}",
            spec.model_dir.display()
        );
        Ok(Self { embedder })
    }

    fn cost(&self, input: &String) -> usize {
        self.embedder.estimate_tokens(input)
    }

    fn run(&mut self, batch: &[&String]) -> Result<Vec<Vec<f32>>, BackendError> {
        Ok(self.embedder.embed(batch)?)
    }
}
