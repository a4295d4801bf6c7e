//! [`TextLen`]: a synthetic backend whose inputs are texts, so that a test
//! node's requests can be as large as the wire allows (the synthetic
//! `Item` crosses the wire as 16 bytes). It answers each text's length in
//! bytes, after a set time per text.

use std::time::Duration;

use corral_core::{Backend, BackendError, LoadContext};

/// Texts in, their byte lengths out.
pub(crate) struct TextLen {
    per_item: Duration,
}

impl Backend for TextLen {
    /// The time each text takes.
    type Spec = Duration;
    type Input = String;
    type Output = u64;

    fn load(spec: &Duration, _: &LoadContext) -> Result<Self, BackendError> {
        Ok(Self { per_item: *spec })
    }

    fn cost(&self, _: &String) -> usize {
        1
    }

    fn run(&mut self, batch: &[&String]) -> Result<Vec<u64>, BackendError> {
        let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        std::thread::sleep(self.per_item.saturating_mul(n));
        Ok(batch
            .iter()
            .map(|t| u64::try_from(t.len()).unwrap_or(u64::MAX))
            .collect())
    }
}
