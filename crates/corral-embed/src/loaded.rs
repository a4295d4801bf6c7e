//! One copy of each fast model per process: the workers of a pool (and the
//! worker that replaces a stuck one) read the weights the first of them
//! loaded, instead of each loading, quantising and packing its own.
//!
//! A pool of N workers so holds one model, not N (MiniLM in fp32 is 90 MB
//! a copy), and only its first worker pays the load. The weights are
//! immutable once shared (each worker has buffers of its own, see
//! [`FastBert::share`]), so a worker that hangs or panics in a forward pass
//! leaves nothing behind for the one that replaces it. The cache holds the
//! weights weakly: they are freed with the last worker reading them.
//!
//! This module owns the cache, [`load_shared`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::fast::{kernel_isa, FastBert, FastBertConfig, WeakWeights};

/// What makes two loads the same model: the file (by its canonical path,
/// length and modification time, so a model rewritten on disk loads
/// afresh), the configuration, the arithmetic and the kernel build.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    file: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    config: FastBertConfig,
    int8: bool,
    isa: &'static str,
}

/// A model being loaded or loaded: `None` until its first load succeeds.
/// Its mutex is held for the whole load, so that the others wait for that
/// load instead of running their own beside it.
type Slot = Arc<Mutex<Option<WeakWeights>>>;

/// Every model this process loaded that may still be in use.
static LOADED: Mutex<Vec<(Key, Slot)>> = Mutex::new(Vec::new());

/// A lock that a panic elsewhere does not poison for good: the data under
/// these locks is a cache entry, valid whatever the panicking holder did
/// (at worst an entry still `None`, which the next load fills).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A FastBert on the weights in `file`, with the dense layers in int8 when
/// `int8`: built by `load` on the first call for this model, and sharing
/// that call's weights (with buffers of its own) on every later one while
/// any FastBert still reads them. A call that comes while another loads the
/// same model waits for it. `load` is called with nothing shared yet and
/// should return the model quantised as asked.
///
/// # Errors
/// `load`'s, when it runs; an error is not cached (the next call loads
/// again).
pub(crate) fn load_shared<E>(
    file: &Path,
    config: &FastBertConfig,
    int8: bool,
    load: impl FnOnce() -> Result<FastBert, E>,
) -> Result<FastBert, E> {
    let Some(key) = key(file, config, int8) else {
        // No metadata: `load` says why (or loads what it can).
        return load();
    };
    let slot = {
        let mut all = lock(&LOADED);
        // Forget the models nobody reads any more. A slot another call
        // holds (it took a clone under this lock and is loading, or about
        // to) stays, so that a call coming now waits for that load.
        all.retain(|(_, slot)| {
            Arc::strong_count(slot) > 1
                || slot
                    .try_lock()
                    .map(|w| w.as_ref().is_some_and(WeakWeights::is_live))
                    .unwrap_or(true)
        });
        match all.iter().find(|(k, _)| *k == key) {
            Some((_, slot)) => Arc::clone(slot),
            None => {
                let slot = Slot::default();
                all.push((key, Arc::clone(&slot)));
                slot
            }
        }
    };
    let mut held = lock(&slot);
    if let Some(model) = held.as_ref().and_then(WeakWeights::upgrade) {
        tracing::debug!(file = %file.display(), "sharing the weights already loaded");
        return Ok(model);
    }
    let mut model = load()?;
    *held = Some(model.weak_weights());
    Ok(model)
}

/// The key of `file` with `config`, or `None` when its metadata cannot be
/// read.
fn key(file: &Path, config: &FastBertConfig, int8: bool) -> Option<Key> {
    let canonical = file.canonicalize().ok()?;
    let meta = std::fs::metadata(&canonical).ok()?;
    Some(Key {
        file: canonical,
        len: meta.len(),
        modified: meta.modified().ok(),
        config: config.clone(),
        int8,
        isa: kernel_isa(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::fast::FastBertError;

    fn tiny() -> (tempfile::TempDir, PathBuf, FastBertConfig) {
        let dir = tempfile::tempdir().unwrap();
        let (path, config) = crate::fast::write_tiny_bert(dir.path(), 1);
        (dir, path, config)
    }

    fn counted(
        file: &Path,
        config: &FastBertConfig,
        loads: &AtomicUsize,
    ) -> Result<FastBert, FastBertError> {
        load_shared(file, config, false, || {
            loads.fetch_add(1, Ordering::SeqCst);
            FastBert::load(file, config)
        })
    }

    #[test]
    fn later_loads_share_the_first_ones_weights_until_the_last_is_dropped() {
        let (_dir, file, config) = tiny();
        let loads = AtomicUsize::new(0);
        let a = counted(&file, &config, &loads).unwrap();
        let b = counted(&file, &config, &loads).unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 1, "the second load shares");
        assert!(a.shares_weights_with(&b));
        drop(b);
        let c = counted(&file, &config, &loads).unwrap();
        assert!(a.shares_weights_with(&c), "one reader left is enough");
        drop((a, c));
        let d = counted(&file, &config, &loads).unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2, "freed, so loaded again");
        drop(d);
    }

    #[test]
    fn another_arithmetic_or_a_rewritten_file_loads_its_own() {
        let (dir, file, config) = tiny();
        let loads = AtomicUsize::new(0);
        let fp32 = counted(&file, &config, &loads).unwrap();
        let int8 = load_shared(&file, &config, true, || FastBert::load(&file, &config)).unwrap();
        assert!(!fp32.shares_weights_with(&int8));
        // Another length on disk is another model.
        let (more, _) = crate::fast::write_tiny_bert(dir.path(), 2);
        assert_eq!(more, file);
        let rewritten = counted(&file, &config, &loads).unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        assert!(!fp32.shares_weights_with(&rewritten));
    }

    #[test]
    fn a_failed_load_is_not_cached_and_a_panicked_one_poisons_nothing() {
        let (_dir, file, config) = tiny();
        let failed: Result<FastBert, FastBertError> = load_shared(&file, &config, false, || {
            Err(FastBertError::Config("planted".into()))
        });
        assert!(failed.is_err());
        let panicked = std::panic::catch_unwind(|| {
            let _ = load_shared::<FastBertError>(&file, &config, false, || panic!("planted"));
        });
        assert!(panicked.is_err());
        let loads = AtomicUsize::new(0);
        let model = counted(&file, &config, &loads).unwrap();
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "loaded for real after both"
        );
        drop(model);
    }

    #[test]
    fn loads_at_the_same_time_wait_for_one() {
        let (_dir, file, config) = tiny();
        let loads = AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(4);
        let models: Vec<FastBert> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        counted(&file, &config, &loads).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(models.iter().all(|m| m.shares_weights_with(&models[0])));
    }
}
