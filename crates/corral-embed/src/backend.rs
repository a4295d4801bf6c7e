//! [`EmbedBackend`]: the [`Backend`] the core pool runs — one [`Embedder`]
//! per worker, loaded with the worker's thread count.
//!
//! Two backends over the same [`Embedder`]: [`EmbedBackend`] takes texts
//! and answers vectors; [`EmbedInputBackend`] takes texts or pre-tokenised
//! ids ([`EmbedInput`]) and answers [`EmbedOutput`], each vector with when
//! its batch started and how long it ran, so a front end can tell queue time
//! from compute time. (Two types rather than one generic one, so that
//! `EmbedBackend::load(..)` and `Pool::<EmbedBackend>` keep inferring.)
//!
//! [`ScoreBackend`] is the same over a [`Scorer`]: a text, a pair or their
//! ids in, raw logits ([`ScoreOutput`]) out, for rerankers and
//! classifiers.
//!
//! All three tell the pool how a batch is costed ([`Embedder::batching`]:
//! packed on the fast engine, padded on candle's, within
//! `max_forward_tokens` and 128 texts), so each batch the pool hands `run`
//! is one forward pass, run as it comes.

use std::time::{Duration, Instant};

use corral_core::{Backend, BackendError, Batching, LoadContext};

use crate::{EmbedInput, EmbedSpec, Embedder, ScoreInput, ScoreOutput, Scorer};

/// Sentence embeddings as a Corral backend: `String` in, `Vec<f32>` out.
///
/// `cost` is a cheap word-piece estimate (no tokenizing); `run` tokenizes
/// the batch and runs it as one packed forward pass, answering in input
/// order (see [`Embedder::embed`]).
#[derive(Debug)]
pub struct EmbedBackend {
    embedder: Embedder,
}

/// Sentence embeddings as a Corral backend for front ends that tokenise
/// first: [`EmbedInput`] in (a text, or ids with special tokens), a timed
/// [`EmbedOutput`] out. `cost` is the id count for ids.
#[derive(Debug)]
pub struct EmbedInputBackend {
    embedder: Embedder,
}

/// One answer of an [`EmbedInputBackend`] pool.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedOutput {
    /// The embedding.
    pub vector: Vec<f32>,
    /// When the batch that computed it started running.
    pub batch_started: Instant,
    /// How long that batch ran.
    pub batch_time: Duration,
}

impl EmbedBackend {
    /// The loaded model.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }
}

impl EmbedInputBackend {
    /// The loaded model.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }
}

fn load_embedder(spec: &EmbedSpec, ctx: &LoadContext) -> Result<Embedder, BackendError> {
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
    Ok(embedder)
}

impl Backend for EmbedBackend {
    type Spec = EmbedSpec;
    type Input = String;
    type Output = Vec<f32>;

    fn load(spec: &EmbedSpec, ctx: &LoadContext) -> Result<Self, BackendError> {
        load_embedder(spec, ctx).map(|embedder| Self { embedder })
    }

    fn cost(&self, input: &String) -> usize {
        self.embedder.estimate_tokens(input)
    }

    fn batching(&self) -> Batching {
        self.embedder.batching()
    }

    fn run(&mut self, batch: &[&String]) -> Result<Vec<Vec<f32>>, BackendError> {
        Ok(self.embedder.embed(batch)?)
    }
}

impl Backend for EmbedInputBackend {
    type Spec = EmbedSpec;
    type Input = EmbedInput;
    type Output = EmbedOutput;

    fn load(spec: &EmbedSpec, ctx: &LoadContext) -> Result<Self, BackendError> {
        load_embedder(spec, ctx).map(|embedder| Self { embedder })
    }

    fn cost(&self, input: &EmbedInput) -> usize {
        match input {
            EmbedInput::Text(t) => self.embedder.estimate_tokens(t),
            EmbedInput::Tokens(ids) => ids.len().clamp(1, self.embedder.max_seq_length()),
        }
    }

    fn batching(&self) -> Batching {
        self.embedder.batching()
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

/// Reranking and classification as a Corral backend: [`ScoreInput`] in (a
/// text, a pair, or ids with token types), [`ScoreOutput`] out (raw logits,
/// one per label, with the batch's timing). `cost` is
/// [`Scorer::estimate_tokens`], batching is [`Scorer::batching`] and `run`
/// is one forward pass ([`Scorer::score`]), answering in input order.
#[derive(Debug)]
pub struct ScoreBackend {
    scorer: Scorer,
}

impl ScoreBackend {
    /// The loaded model.
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }
}

impl Backend for ScoreBackend {
    type Spec = EmbedSpec;
    type Input = ScoreInput;
    type Output = ScoreOutput;

    fn load(spec: &EmbedSpec, ctx: &LoadContext) -> Result<Self, BackendError> {
        let scorer = Scorer::load(spec, ctx.threads)?;
        tracing::info!(
            pool = %ctx.pool,
            worker = ctx.worker_id,
            threads = scorer.threads(),
            kind = %scorer.kind(),
            labels = scorer.labels().len(),
            activation = %scorer.activation(),
            max_seq_length = scorer.max_seq_length(),
            "loaded scoring model from {}",
            spec.model_dir.display()
        );
        Ok(Self { scorer })
    }

    fn cost(&self, input: &ScoreInput) -> usize {
        self.scorer.estimate_tokens(input)
    }

    fn batching(&self) -> Batching {
        self.scorer.batching()
    }

    fn run(&mut self, batch: &[&ScoreInput]) -> Result<Vec<ScoreOutput>, BackendError> {
        let batch_started = Instant::now();
        let logits = self.scorer.score(batch)?;
        let batch_time = batch_started.elapsed();
        Ok(logits
            .into_iter()
            .map(|logits| ScoreOutput {
                logits,
                batch_started,
                batch_time,
            })
            .collect())
    }
}
