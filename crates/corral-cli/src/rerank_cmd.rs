//! `corral rerank`: one query and its documents (a file or stdin; one per
//! line, or JSON Lines `{"text": …}` with `--jsonl`) through a pool of
//! cross-encoder workers; JSON Lines `{"index": …, "score": …, "text": …}`
//! out, in input order — sort them yourself (`jq -s 'sort_by(-.score)'`)
//! when you want a ranking. The documents stream as `corral embed`'s texts
//! do: grouped into requests, a bounded number in flight, each answer
//! written as soon as it and every one before it exist.
//!
//! Scores are what sentence-transformers' `CrossEncoder.predict` gives:
//! sigmoid of the logit, unless the model's configuration names `Identity`
//! or `--raw-scores` asks for the logit itself. A pair longer than the
//! model's limit is truncated as its tokenizer does for pairs.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corral_core::Pool;
use corral_embed::model_dir::MODEL_DIR_ENV;
use corral_embed::{Activation, ModelKind, ScoreBackend, ScoreInput};
use serde::Serialize;

use crate::embed_cmd::{requests_in_flight, ModelArgs};
use crate::lines::LineArgs;

/// Options of `corral rerank`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// The query every document is scored against.
    #[arg(long)]
    pub(crate) query: String,
    /// The documents: a file (one per line, or `--jsonl`) or stdin, and
    /// how they are grouped into requests.
    #[command(flatten)]
    pub(crate) lines: LineArgs,
    /// The cross-encoder's logits, without the activation its
    /// configuration asks for.
    #[arg(long)]
    pub(crate) raw_scores: bool,
    /// Leave the documents' text out of the output.
    #[arg(long)]
    pub(crate) no_text: bool,
    /// The model (a `*ForSequenceClassification` directory with one label)
    /// and the pool. `--model-dir` (or $CORRAL_MODEL_DIR) is required:
    /// there is no default reranker.
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    index: usize,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

/// Runs `corral rerank`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    args.lines.check()?;
    let given = args.model.model_dir.is_some()
        || std::env::var(MODEL_DIR_ENV).is_ok_and(|v| !v.trim().is_empty());
    if !given {
        bail!(
            "corral rerank needs a cross-encoder: --model-dir DIR (or ${MODEL_DIR_ENV}), \
             a directory with a *ForSequenceClassification config.json of one label"
        );
    }
    let spec = args.model.spec()?;
    let info = spec.score_info()?;
    if info.kind != ModelKind::Rerank {
        bail!(
            "{} holds a {} model, not a reranker (a cross-encoder with one label)",
            spec.model_dir.display(),
            info.kind
        );
    }
    let activation = if args.raw_scores {
        Activation::Identity
    } else {
        info.activation
    };
    let config = corral_core::PoolConfig {
        name: "corral-rerank".into(),
        ..args.model.pool_config()
    };
    let in_flight = requests_in_flight(&config);
    let load_timeout = config.load_timeout;
    let started = Instant::now();
    let handle = Pool::<ScoreBackend>::spawn(spec, config)
        .await
        .context("starting the reranking pool")?;
    handle
        .wait_ready(load_timeout)
        .await
        .context("waiting for the reranking workers to load the model")?;
    tracing::info!("reranking pool ready in {:.2?}", started.elapsed());

    let query = args.query.clone();
    let with_text = !args.no_text;
    let input = move |document: &str| ScoreInput::pair(query.clone(), document);
    let result = args
        .lines
        .stream(
            &handle,
            in_flight,
            input,
            |out, first, documents, outputs| {
                for (i, (text, output)) in documents.iter().zip(outputs).enumerate() {
                    let mut logits = output.logits;
                    activation.apply(&mut logits);
                    let score = *logits.first().context("the model answered no score")?;
                    let line = JsonOutput {
                        index: first + i,
                        score,
                        text: with_text.then_some(text.as_str()),
                    };
                    serde_json::to_writer(&mut *out, &line)?;
                    out.write_all(b"\n")?;
                }
                Ok(())
            },
        )
        .await;
    let _ = handle.shutdown(Duration::from_secs(10)).await;
    let count = result?;
    tracing::info!("scored {count} documents");
    Ok(())
}
