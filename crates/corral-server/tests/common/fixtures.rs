//! The tiny random models corral-embed commits (`tests/data/tiny-*`, with
//! PyTorch's outputs in each `golden.json`) served by real pools: one
//! worker of one thread each, as the tests share two cores.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use corral_core::PoolConfig;
use corral_embed::EmbedSpec;
use corral_server::{spawn_model, ServedModel};

/// The directory of the tiny model `name` (`tiny-xlmr`, `tiny-splade`, …).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/data")
        .join(name)
}

/// `golden.json` of the tiny model `name`, parsed as `T`; a missing
/// fixture fails the test (it is committed), naming the script that makes
/// it.
pub fn golden<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = fixture(name).join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the fixture is missing ({}: {e}); it is committed — regenerate it \
             with the scripts/make_tiny_*.py that names it",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// One worker of one thread.
pub fn small_pool() -> PoolConfig {
    PoolConfig {
        workers: 1,
        threads_per_worker: Some(1),
        ..PoolConfig::default()
    }
}

/// `spec` served as what its directory declares, by a [`small_pool`],
/// under `name`.
pub async fn serve_spec(name: &str, spec: EmbedSpec) -> Arc<dyn ServedModel> {
    spawn_model(name, spec, small_pool(), Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("serving {name}: {e}"))
}

/// The tiny model `name` served under its own name.
pub async fn serve_fixture(name: &str) -> Arc<dyn ServedModel> {
    serve_spec(name, EmbedSpec::new(fixture(name))).await
}
