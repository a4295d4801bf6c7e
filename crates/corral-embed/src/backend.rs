//! [`EmbedBackend`]: the [`Backend`] the core pool runs — one [`Embedder`]
//! per worker, loaded with the worker's thread count.
//!
//! Two input types: `EmbedBackend` (= `EmbedBackend<String>`) takes texts
//! and answers vectors; `EmbedBackend<EmbedInput>` takes texts or
//! pre-tokenised ids and answers [`EmbedOutput`], each vector with when its
//! batch started and how long it ran, so a front end can tell queue time
//! from compute time.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use corral_core::{Backend, BackendError, LoadContext};

use crate::{EmbedInput, EmbedSpec, Embedder};

/// Sentence embeddings as a Corral backend: `I` in (`String` by default,
/// or [`EmbedInput`]), one vector out per input.
///
/// `cost` is a cheap word-piece estimate for a text (no tokenizing) and the
/// id count for pre-tokenised input; `run` sorts the batch by length, pads
/// per slice and answers in input order (see [`Embedder::embed`]).
#[derive(Debug)]
pub struct EmbedBackend<I = String> {
    embedder: Embedder,
    input: PhantomData<fn(I)>,
}

/// One answer of an `EmbedBackend<EmbedInput>` pool.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedOutput {
    /// The embedding.
    pub vector: Vec<f32>,
    /// When the batch that computed it started running.
    pub batch_started: Instant,
    /// How long that batch ran.
    pub batch_time: Duration,
}

impl<I> EmbedBackend<I> {
    /// The loaded model.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    fn load_embedder(spec: &EmbedSpec, ctx: &LoadContext) -> Result<Self, BackendError> {
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
        Ok(Self {
            embedder,
            input: PhantomData,
        })
    }
}

impl Backend for EmbedBackend<String> {
    type Spec = EmbedSpec;
    type Input = String;
    type Output = Vec<f32>;

    fn load(spec: &EmbedSpec, ctx: &LoadContext) -> Result<Self, BackendError> {
        Self::load_embedder(spec, ctx)
    }

    fn cost(&self, input: &String) -> usize {
        self.embedder.estimate_tokens(input)
    }

    fn run(&mut self, batch: &[&String]) -> Result<Vec<Vec<f32>>, BackendError> {
        Ok(self.embedder.embed(batch)?)
    }
}

impl Backend for EmbedBackend<EmbedInput> {
    type Spec = EmbedSpec;
    type Input = EmbedInput;
    type Output = EmbedOutput;

    fn load(spec: &EmbedSpec, ctx: &LoadContext) -> Result<Self, BackendError> {
        Self::load_embedder(spec, ctx)
    }

    fn cost(&self, input: &EmbedInput) -> usize {
        match input {
            EmbedInput::Text(t) => self.embedder.estimate_tokens(t),
            EmbedInput::Tokens(ids) => ids.len().clamp(1, self.embedder.max_seq_length()),
        }
    }

    fn run(&mut self, batch: &[&EmbedInput]) -> Result<Vec<EmbedOutput>, BackendError> {
        let batch_started = Instant::now();
        let vectors = self.embedder.embed_inputs(batch)?;
        let batch_time = batch_started.elapsed();
        Ok(vectors
            .into_iter()
            .map(|vector| EmbedOutput {
                vector,
                batch_started,
                batch_time,
            })
            .collect())
    }
}
