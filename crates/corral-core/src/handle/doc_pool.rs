// The pool the handle's and `Call`'s examples run: a backend that
// upper-cases strings, two workers, loaded. Included by those doc-tests
// (`# include!(…)`), once, instead of a copy in each; not a module of the
// crate.

struct Upper;

impl corral_core::Backend for Upper {
    type Spec = ();
    type Input = String;
    type Output = String;
    fn load(
        _: &(),
        _: &corral_core::LoadContext,
    ) -> Result<Self, corral_core::BackendError> {
        Ok(Upper)
    }
    fn cost(&self, s: &String) -> usize {
        s.len().max(1)
    }
    fn run(&mut self, batch: &[&String]) -> Result<Vec<String>, corral_core::BackendError> {
        Ok(batch.iter().map(|s| s.to_uppercase()).collect())
    }
}

async fn doc_pool() -> Result<corral_core::PoolHandle<Upper>, Box<dyn std::error::Error>> {
    let config = corral_core::PoolConfig {
        workers: 2,
        ..corral_core::PoolConfig::default()
    };
    let pool = corral_core::Pool::<Upper>::spawn((), config).await?;
    pool.wait_ready(std::time::Duration::from_secs(10)).await?;
    Ok(pool)
}
